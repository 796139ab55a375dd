//! Why a configuration could not be loaded: every variant names the file, variable or
//! `--set` argument involved, and for a value its full dotted key.

use std::path::PathBuf;

/// Why a configuration could not be loaded.
#[derive(thiserror::Error, Debug)]
pub enum ConfigError {
    /// The config file given on the command line does not exist.
    #[error("config file {} not found", path.display())]
    Missing {
        /// The missing file.
        path: PathBuf,
    },
    /// A file named in `extends` does not exist.
    #[error("config file {} not found (named in `extends` of {})", path.display(), named_by.display())]
    MissingExtends {
        /// The missing file, resolved against the folder of `named_by`.
        path: PathBuf,
        /// The file whose `extends` names it.
        named_by: PathBuf,
    },
    /// A config file exists but cannot be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Io {
        /// The unreadable file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A config file is not valid TOML.
    #[error("{}:{line}:{column}: invalid TOML: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// The parser's message.
        message: String,
    },
    /// `extends` is neither a string nor an array of strings.
    #[error("{}: `extends` must be a file name or an array of file names, found {found}", path.display())]
    BadExtends {
        /// The file.
        path: PathBuf,
        /// What was there instead.
        found: String,
    },
    /// The `extends` chain loops back on itself.
    #[error("config `extends` cycle: {chain}")]
    Cycle {
        /// The files of the loop, joined by arrows.
        chain: String,
    },
    /// A `--set` argument is not `key=value`.
    #[error("--set {arg}: {reason}")]
    BadSet {
        /// The argument as given.
        arg: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A `PROMAX_*` variable whose name does not map to a dotted key.
    #[error("environment variable {var}: {reason}")]
    BadEnv {
        /// The variable's name.
        var: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A key that no config section has.
    #[error("unknown config key `{key}` in {origin}{}{}",
        suggestion.as_ref().map(|s| format!("; did you mean `{s}`?")).unwrap_or_default(),
        if *others > 0 { format!(" ({others} more unknown key(s) after it)") } else { String::new() })]
    UnknownKey {
        /// Full dotted key, e.g. `train.sed`.
        key: String,
        /// The layer that set it: a file path, a `PROMAX_` variable or a `--set` argument.
        origin: String,
        /// The nearest valid key, when one is plausibly meant.
        suggestion: Option<String>,
        /// How many further unknown keys were found (only the first is described).
        others: usize,
    },
    /// A value of the wrong type.
    #[error("config key `{key}` in {origin}: expected {expected}, found {found}")]
    WrongType {
        /// Full dotted key.
        key: String,
        /// The layer that set it.
        origin: String,
        /// What was found, e.g. `string "abc"`.
        found: String,
        /// What the key takes, e.g. `f64`.
        expected: String,
    },
    /// A well-typed value outside its allowed range or set.
    #[error("config key `{key}` = {value}{}: {reason}",
        origin.as_ref().map(|s| format!(" (from {s})")).unwrap_or_default())]
    Invalid {
        /// Full dotted key.
        key: String,
        /// The offending value, as written in TOML.
        value: String,
        /// What is allowed.
        reason: String,
        /// The layer that set it, when known.
        origin: Option<String>,
    },
}
