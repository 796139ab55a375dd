//! The layers of a configuration, later wins: built-in defaults ← the `extends` chain of
//! the config file (parents first) ← the file itself ← `PROMAX_*` environment variables ←
//! each `--set key=value`. Every layer is a named figment provider, so that each value
//! keeps where it came from.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider, Source};

use super::coerce::typed_value;
use super::diagnose::{check_unknown_keys, describe_source, extract_error};
use super::schema::{defaults_dict, schema};
use super::{Config, ConfigError};

/// Prefix of the environment variables that override config keys (`PROMAX_TRAIN__SEED=7`).
pub const ENV_PREFIX: &str = "PROMAX_";

/// `PROMAX_*` variables that are not config keys, so the environment layer skips them
/// instead of reporting them as unknown keys. `PROMAX_PLUGIN_PATH` is read by the plugin
/// registry as an extra plugin search path.
pub const ENV_NOT_CONFIG: &[&str] = &["PROMAX_PLUGIN_PATH"];

/// Loads the configuration at `path`, layered over its `extends` chain and the built-in
/// defaults, then the `PROMAX_*` environment, then each `--set key=value` in `sets`.
pub fn load(path: &Path, sets: &[String]) -> Result<Config, ConfigError> {
    load_optional(Some(path), sets)
}

/// A run folder's `config.toml` exactly as written: no `PROMAX_*` environment and no
/// `--set`, so that nothing from outside changes a stored run when it is evaluated,
/// resumed or compared.
pub fn load_run(path: &Path) -> Result<Config, ConfigError> {
    load_with_env(Some(path), &[], std::iter::empty())
}

/// [`load`], or with no file only the defaults, the environment and `sets` (commands such
/// as `promax augment DATASET_DIR` that run without an experiment file).
pub fn load_optional(path: Option<&Path>, sets: &[String]) -> Result<Config, ConfigError> {
    load_with_env(path, sets, process_env())
}

/// [`load`] over several config files layered in order (later wins), each with its own
/// `extends` chain, then the environment and `sets`. A file reached twice (named twice, or
/// through `extends`) is merged once, at its first position, as in one `extends` chain.
/// `promax compare` builds every cell's configuration this way.
pub fn load_layers(files: &[&Path], sets: &[String]) -> Result<Config, ConfigError> {
    load_layers_with_env(files, sets, process_env())
}

/// The process environment's variables whose name and value are text.
fn process_env() -> impl Iterator<Item = (String, String)> {
    std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
}

/// [`load`] with the environment given explicitly, so tests do not depend on (or race on)
/// the process environment.
pub(super) fn load_with_env(
    path: Option<&Path>,
    sets: &[String],
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, ConfigError> {
    load_layers_with_env(path.as_slice(), sets, env)
}

/// [`load_layers`] with the environment given explicitly.
pub(crate) fn load_layers_with_env(
    paths: &[&Path],
    sets: &[String],
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, ConfigError> {
    let schema = schema();
    let mut figment = Figment::from(Layer::new(
        Metadata::named("built-in defaults"),
        defaults_dict(),
    ));

    let mut files = Vec::new();
    let mut seen = HashSet::new();
    for path in paths {
        collect_chain(path, None, &mut Vec::new(), &mut seen, &mut files)?;
    }
    for (file, dict) in files {
        figment = figment.merge(Layer::new(
            Metadata::from("config file", Source::File(file)),
            dict,
        ));
    }
    for layer in env_layers(env, &schema)? {
        figment = figment.merge(layer);
    }
    for arg in sets {
        figment = figment.merge(set_layer(arg, &schema)?);
    }

    check_unknown_keys(&figment, &schema)?;
    let cfg: Config = figment
        .extract()
        .map_err(extract_error)
        .and_then(|cfg: Config| cfg.validate().map(|()| cfg))
        .map_err(|e| blame_layer(e, &figment))?;
    Ok(cfg)
}

/// An out-of-range value (or an option's unknown name) with the layer that set its key:
/// that key's own layer, not whichever layer last touched its section.
fn blame_layer(e: ConfigError, figment: &Figment) -> ConfigError {
    match e {
        ConfigError::Invalid {
            key,
            value,
            reason,
            origin: None,
        } => {
            let origin = figment.find_metadata(&key).map(describe_source);
            ConfigError::Invalid {
                key,
                value,
                reason,
                origin,
            }
        }
        other => other,
    }
}

/// One figment layer: a dictionary plus the metadata that names where it came from.
/// figment's own `Toml` provider is not used because it silently ignores a missing file
/// (a known figment behaviour) and would pass `extends` through to the extracted config.
struct Layer {
    metadata: Metadata,
    dict: Dict,
}

impl Layer {
    fn new(metadata: Metadata, dict: Dict) -> Self {
        Layer { metadata, dict }
    }
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        self.metadata.clone()
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.dict.clone()))
    }
}

/// Reads `path` and, depth-first and parents first, every file its `extends` names.
/// A file reached twice (a diamond) is merged once, at its first position, so a shared
/// parent cannot re-apply its values over a sibling that overrode them.
fn collect_chain(
    path: &Path,
    named_by: Option<&Path>,
    stack: &mut Vec<(PathBuf, PathBuf)>,
    seen: &mut HashSet<PathBuf>,
    out: &mut Vec<(PathBuf, Dict)>,
) -> Result<(), ConfigError> {
    let missing = || match named_by {
        Some(parent) => ConfigError::MissingExtends {
            path: path.to_path_buf(),
            named_by: parent.to_path_buf(),
        },
        None => ConfigError::Missing {
            path: path.to_path_buf(),
        },
    };
    // Checked here because figment's file providers would silently skip a missing file.
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(missing()),
        Err(source) => {
            return Err(ConfigError::Io {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let canonical = std::fs::canonicalize(path).map_err(|_| missing())?;
    if let Some(pos) = stack.iter().position(|(c, _)| *c == canonical) {
        let mut chain: Vec<String> = stack[pos..]
            .iter()
            .map(|(_, p)| p.display().to_string())
            .collect();
        chain.push(path.display().to_string());
        return Err(ConfigError::Cycle {
            chain: chain.join(" → "),
        });
    }
    if !seen.insert(canonical.clone()) {
        return Ok(());
    }

    let mut table: toml::Table = toml::from_str(&text).map_err(|e| {
        let (line, column) = e.span().map(|s| line_col(&text, s.start)).unwrap_or((1, 1));
        ConfigError::Parse {
            path: path.to_path_buf(),
            line,
            column,
            // toml's message can span lines ("invalid string\nexpected `\"`"): keep it on one.
            message: e.message().trim().replace('\n', "; "),
        }
    })?;
    let parents = match table.remove("extends") {
        None => Vec::new(),
        Some(toml::Value::String(s)) => vec![s],
        Some(toml::Value::Array(items)) => items
            .into_iter()
            .map(|v| match v {
                toml::Value::String(s) => Ok(s),
                other => Err(ConfigError::BadExtends {
                    path: path.to_path_buf(),
                    found: format!("an array holding {other}"),
                }),
            })
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(ConfigError::BadExtends {
                path: path.to_path_buf(),
                found: other.to_string(),
            })
        }
    };

    stack.push((canonical, path.to_path_buf()));
    let dir = path.parent().unwrap_or_else(|| Path::new(""));
    for parent in parents {
        collect_chain(&dir.join(parent), Some(path), stack, seen, out)?;
    }
    stack.pop();

    let dict = match Value::serialize(&table) {
        Ok(Value::Dict(_, d)) => d,
        _ => Dict::new(),
    };
    out.push((path.to_path_buf(), dict));
    Ok(())
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// One layer per `PROMAX_*` variable, sorted by name, with the same key mapping as
/// `Env::prefixed("PROMAX_").split("__")` (prefix case-insensitive, key lowercased, `__`
/// nests). Built by hand so that each variable is its own named source in error messages.
fn env_layers(
    vars: impl IntoIterator<Item = (String, String)>,
    schema: &Dict,
) -> Result<Vec<Layer>, ConfigError> {
    let mut vars: Vec<(String, String)> = vars
        .into_iter()
        .filter(|(k, _)| {
            k.get(..ENV_PREFIX.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(ENV_PREFIX))
                && k.len() > ENV_PREFIX.len()
                && !ENV_NOT_CONFIG.iter().any(|n| n.eq_ignore_ascii_case(k))
        })
        .collect();
    vars.sort();
    vars.into_iter()
        .map(|(var, raw)| {
            let key = var[ENV_PREFIX.len()..].to_ascii_lowercase().replace("__", ".");
            if key.split('.').any(str::is_empty) {
                let reason = "after PROMAX_, sections are separated by a double underscore (PROMAX_TRAIN__SEED)";
                return Err(ConfigError::BadEnv { var, reason: reason.into() });
            }
            let value = typed_value(&key, &raw, schema);
            let dict = nest_dict(&key, value);
            Ok(Layer::new(Metadata::named(format!("PROMAX_ environment ({var})")), dict))
        })
        .collect()
}

/// The layer of one `--set key=value` argument.
fn set_layer(arg: &str, schema: &Dict) -> Result<Layer, ConfigError> {
    let bad = |reason: &str| ConfigError::BadSet {
        arg: arg.to_string(),
        reason: reason.to_string(),
    };
    let (key, raw) = arg
        .split_once('=')
        .ok_or_else(|| bad("expected key=value, e.g. train.lr=1e-3"))?;
    let key = key.trim();
    if key.is_empty() || key.split('.').any(|part| part.trim().is_empty()) {
        return Err(bad("the key must be a dotted name such as train.seed"));
    }
    let value = typed_value(key, raw, schema);
    Ok(Layer::new(
        Metadata::named(format!("--set {arg}")),
        nest_dict(key, value),
    ))
}

fn nest_dict(key: &str, value: Value) -> Dict {
    match figment::util::nest(key, value) {
        Value::Dict(_, d) => d,
        // `nest` with a non-empty key always returns a dictionary.
        other => Dict::from([(key.to_string(), other)]),
    }
}
