//! The plugin registry: built-in plugins linked statically, plus `cdylib` plugins discovered
//! in `plugin_dirs` and `PROMAX_PLUGIN_PATH`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use abi_stable::library::{lib_header_from_path, LibraryError};
use promax_plugin_api::sdk::nearest;
use promax_plugin_api::{PluginInfo, PluginKind, PluginModRef, ABI_VERSION};

/// Where a plugin came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    BuiltIn,
    File(PathBuf),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::BuiltIn => write!(f, "built-in"),
            Origin::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// A loaded plugin: its root module and description.
#[derive(Clone)]
pub struct PluginEntry {
    pub info: PluginInfo,
    pub module: PluginModRef,
    pub origin: Origin,
}

/// Why a plugin could not be loaded or found. Messages are one or two lines.
#[derive(thiserror::Error, Debug)]
pub enum RegistryError {
    #[error("cannot load plugin {path}: {reason}")]
    Load { path: PathBuf, reason: String },
    #[error("plugin name `{name}` is provided twice: by {first} and by {second}")]
    Clash {
        name: String,
        first: String,
        second: String,
    },
    #[error("unknown plugin `{name}`{hint}")]
    Unknown { name: String, hint: String },
    #[error("plugin `{name}` is a {is}, but it is used as a {wanted}")]
    WrongKind {
        name: String,
        is: &'static str,
        wanted: &'static str,
    },
    #[error("plugin folder {path}: {reason}")]
    Dir { path: PathBuf, reason: String },
}

/// All plugins known to this process, by name.
#[derive(Clone, Default)]
pub struct Registry {
    entries: BTreeMap<String, PluginEntry>,
}

/// The root modules of the plugins compiled into the host.
fn builtin_modules() -> Vec<PluginModRef> {
    vec![
        promax_mf::root_module(),
        promax_lightgcn::root_module(),
        promax_promax::root_module(),
        promax_rlmrec_con::root_module(),
        promax_rlmrec_gen::root_module(),
        promax_gccf::root_module(),
        promax_simgcl::root_module(),
    ]
}

/// Library file names a plugin folder may contain on this platform.
fn is_library(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("so") | Some("dylib") | Some("dll")
    )
}

/// abi_stable's layout report runs to hundreds of lines; keep its first and last meaningful
/// lines so the user sees what and where.
pub fn summarize_abi_error(text: &str) -> String {
    if let Some(found) = layout_errors(text) {
        return found;
    }
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| l.len() > 3 && l.chars().any(char::is_alphanumeric))
        .collect();
    match lines.as_slice() {
        [] => "incompatible plugin".to_owned(),
        [one] => (*one).to_owned(),
        [first, .., last] => format!("{first} … {last}"),
    }
}

/// The layout checker's own verdicts (`Error:too many fields`, then `Expected:` and
/// `Found:` values on the lines below), in one line; `None` when the text has none.
fn layout_errors(text: &str) -> Option<String> {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let value_after = |i: usize, key: &str| {
        lines
            .get(i..)?
            .iter()
            .position(|l| l.starts_with(key))
            .and_then(|j| lines.get(i + j + 1))
            .copied()
    };
    let verdicts: Vec<String> = lines
        .iter()
        .enumerate()
        .filter_map(|(i, l)| {
            let what = l.strip_prefix("Error:")?.trim();
            Some(
                match (value_after(i, "Expected:"), value_after(i, "Found:")) {
                    (Some(e), Some(f)) => {
                        format!("{what} (this host expects {e}, the plugin has {f})")
                    }
                    _ => what.to_owned(),
                },
            )
        })
        .collect();
    (!verdicts.is_empty()).then(|| verdicts.join("; "))
}

fn describe_library_error(e: &LibraryError) -> String {
    tracing::debug!("the plugin loader's full report:\n{e}");
    match e {
        LibraryError::OpenError { .. } => {
            format!(
                "not a loadable library ({})",
                summarize_abi_error(&e.to_string())
            )
        }
        LibraryError::GetSymbolError { .. } => {
            "not a promax plugin (it exports no abi_stable root module)".to_owned()
        }
        LibraryError::IncompatibleVersionNumber {
            expected_version,
            actual_version,
            ..
        } => format!(
            "built against promax-plugin-api {actual_version}, this host uses {expected_version}: \
             rebuild the plugin against promax-plugin-api {expected_version}"
        ),
        LibraryError::AbiInstability(_) => format!(
            "its ABI layout differs from this host's: {}; rebuild it against promax-plugin-api \
             {} (RUST_LOG=debug prints the full layout report)",
            summarize_abi_error(&e.to_string()),
            promax_plugin_api::PLUGIN_API_VERSION
        ),
        other => summarize_abi_error(&other.to_string()),
    }
}

fn info_of(module: PluginModRef) -> Result<PluginInfo, String> {
    let info = (module.info())()
        .into_result()
        .map_err(|e| e.into_string())?;
    if info.abi_version != ABI_VERSION {
        return Err(format!(
            "built for plugin ABI version {}, this host speaks version {ABI_VERSION}: rebuild the plugin",
            info.abi_version
        ));
    }
    Ok(info)
}

impl Registry {
    /// The built-in plugins only.
    pub fn builtin() -> Registry {
        let mut r = Registry::default();
        for module in builtin_modules() {
            // Built-ins are compiled with this very ABI; a failure here is a host bug.
            let info = info_of(module).expect("built-in plugin info");
            r.entries.insert(
                info.name.to_string(),
                PluginEntry {
                    info,
                    module,
                    origin: Origin::BuiltIn,
                },
            );
        }
        r
    }

    /// Built-ins plus every library in `dirs` and in the folders of `PROMAX_PLUGIN_PATH`.
    pub fn discover(dirs: &[PathBuf]) -> Result<Registry, RegistryError> {
        let mut r = Registry::builtin();
        let mut all: Vec<PathBuf> = dirs.to_vec();
        if let Some(p) = std::env::var_os("PROMAX_PLUGIN_PATH") {
            all.extend(std::env::split_paths(&p).filter(|p| !p.as_os_str().is_empty()));
        }
        for dir in all {
            r.load_dir(&dir)?;
        }
        Ok(r)
    }

    /// Loads every library file directly inside `dir` (not recursive).
    pub fn load_dir(&mut self, dir: &Path) -> Result<(), RegistryError> {
        let read = std::fs::read_dir(dir).map_err(|e| RegistryError::Dir {
            path: dir.to_owned(),
            reason: e.to_string(),
        })?;
        let mut files: Vec<PathBuf> = read
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && is_library(p))
            .collect();
        files.sort();
        for f in files {
            self.load_file(&f)?;
        }
        Ok(())
    }

    /// Loads one plugin library, checking its ABI layout and version.
    pub fn load_file(&mut self, path: &Path) -> Result<(), RegistryError> {
        let fail = |reason: String| RegistryError::Load {
            path: path.to_owned(),
            reason,
        };
        let header = lib_header_from_path(path).map_err(|e| fail(describe_library_error(&e)))?;
        let module = header
            .init_root_module::<PluginModRef>()
            .map_err(|e| fail(describe_library_error(&e)))?;
        let info = info_of(module).map_err(fail)?;
        let name = info.name.to_string();
        if let Some(existing) = self.entries.get(&name) {
            // The built-in plugins' own cdylib copies sit in target/ folders: same plugin.
            let same_builtin =
                existing.origin == Origin::BuiltIn && existing.info.version == info.version;
            if same_builtin {
                tracing::debug!(
                    "{} duplicates built-in plugin `{name}`; using the built-in",
                    path.display()
                );
                return Ok(());
            }
            return Err(RegistryError::Clash {
                name,
                first: existing.origin.to_string(),
                second: path.display().to_string(),
            });
        }
        self.entries.insert(
            name,
            PluginEntry {
                info,
                module,
                origin: Origin::File(path.to_owned()),
            },
        );
        Ok(())
    }

    /// All plugins, sorted by name.
    pub fn entries(&self) -> impl Iterator<Item = &PluginEntry> {
        self.entries.values()
    }

    /// The plugin called `name`, which must be of `kind`.
    pub fn get(&self, name: &str, kind: PluginKind) -> Result<&PluginEntry, RegistryError> {
        let entry = self.find(name)?;
        if entry.info.kind != kind {
            return Err(RegistryError::WrongKind {
                name: name.to_owned(),
                is: entry.info.kind.as_str(),
                wanted: kind.as_str(),
            });
        }
        Ok(entry)
    }

    /// The plugin called `name`, of any kind.
    pub fn find(&self, name: &str) -> Result<&PluginEntry, RegistryError> {
        self.entries.get(name).ok_or_else(|| {
            let hint = match nearest(name, self.entries.keys().map(String::as_str)) {
                Some(n) => format!("; did you mean `{n}`?"),
                None => {
                    let names: Vec<&str> = self.entries.keys().map(String::as_str).collect();
                    format!("; known plugins: {}", names.join(", "))
                }
            };
            RegistryError::Unknown {
                name: name.to_owned(),
                hint,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_are_listed_with_their_kind() {
        let r = Registry::builtin();
        let mf = r.get("mf", PluginKind::Backbone).unwrap();
        assert_eq!(mf.origin, Origin::BuiltIn);
        assert!(r.get("lightgcn", PluginKind::Backbone).is_ok());
        let err = r
            .get("lightgcn", PluginKind::Augmenter)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("is a backbone"), "{err}");
    }

    #[test]
    fn unknown_plugin_suggests_nearest() {
        let r = Registry::builtin();
        let err = r.find("lightgnc").err().unwrap().to_string();
        assert!(err.contains("did you mean `lightgcn`"), "{err}");
    }

    #[test]
    fn non_plugin_library_is_refused_in_one_line() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("libfake.so");
        std::fs::write(&fake, b"this is not an ELF file").unwrap();
        let err = Registry::builtin()
            .load_file(&fake)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("libfake.so"), "{err}");
        assert!(err.contains("not a loadable library"), "{err}");
        assert!(err.lines().count() <= 2, "{err}");
    }

    #[test]
    fn missing_plugin_dir_is_an_error() {
        let err = Registry::discover(&[PathBuf::from("/no/such/plugin/dir")])
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("/no/such/plugin/dir"), "{err}");
    }

    #[test]
    fn layout_verdicts_are_kept_in_one_line() {
        let report = "Compared <this>:\n  type:VTable\n  fields: 7\n\n\nError:too many fields\n\
                      Expected:\n    7\nFound:\n    5\n\n";
        assert_eq!(
            summarize_abi_error(report),
            "too many fields (this host expects 7, the plugin has 5)"
        );
    }

    #[test]
    fn long_layout_reports_are_summarised() {
        let long: String = (0..900).map(|i| format!("line {i}\n")).collect();
        let s = summarize_abi_error(&format!("Layout mismatch in field x\n{long}--\n"));
        assert_eq!(s, "Layout mismatch in field x … line 899");
    }
}
