//! Naming a problem's key and layer: unknown keys with the nearest valid one, and figment's
//! extraction errors turned into ours.

use figment::error::Kind;
use figment::value::{Dict, Tag, Value};
use figment::{Figment, Metadata, Profile, Provider, Source};
use promax_plugin_api::sdk::{edit_distance, nearest};

use super::check;
use super::coerce::find;
use super::schema::schema;
use super::ConfigError;

/// The layer that set a value, for messages: a file path, a `PROMAX_` variable, a `--set`.
pub(super) fn describe_source(md: &Metadata) -> String {
    match &md.source {
        Some(Source::File(p)) => p.display().to_string(),
        _ => md.name.to_string(),
    }
}

fn source_of(figment: &Figment, tag: Tag) -> String {
    figment
        .get_metadata(tag)
        .map(describe_source)
        .unwrap_or_else(|| "an unknown source".into())
}

/// Walks the merged value tree against the schema; the first key the schema lacks is an
/// error naming its layer and the nearest valid key. Done before extraction because
/// serde's `deny_unknown_fields` reports only the bare field name.
pub(super) fn check_unknown_keys(figment: &Figment, schema: &Dict) -> Result<(), ConfigError> {
    let data = figment.data().map_err(extract_error)?;
    let Some(merged) = data.get(&Profile::Default) else {
        return Ok(());
    };
    let mut unknown = Vec::new();
    walk_unknown(merged, schema, "", &mut unknown);
    let others = unknown.len().saturating_sub(1);
    let Some((key, tag)) = unknown.into_iter().next() else {
        return Ok(());
    };
    let suggestion = suggest(&key, schema);
    Err(ConfigError::UnknownKey {
        origin: source_of(figment, tag),
        key,
        suggestion,
        others,
    })
}

/// Tables whose keys the schema does not list.
const OPEN_TABLES: [&str; 2] = ["plugins", "llm.extra_body"];

fn walk_unknown(given: &Dict, schema: &Dict, prefix: &str, out: &mut Vec<(String, Tag)>) {
    for (k, v) in given {
        let full = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match schema.get(k) {
            None => out.push((full, v.tag())),
            // Open tables: each plugin validates its own keys, and `llm.extra_body` is
            // passed to the server as it is.
            Some(_) if OPEN_TABLES.contains(&full.as_str()) => {}
            Some(Value::Dict(_, sub)) => {
                if let Value::Dict(_, given_sub) = v {
                    walk_unknown(given_sub, sub, &full, out);
                }
            }
            Some(_) => {}
        }
    }
}

pub(super) fn all_keys(dict: &Dict, prefix: &str, out: &mut Vec<String>) {
    for (k, v) in dict {
        let full = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        if let Value::Dict(_, sub) = v {
            if full != "plugins" {
                all_keys(sub, &full, out);
            }
        }
        out.push(full);
    }
}

/// The valid key a user most plausibly meant: a near sibling (`train.sed` → `train.seed`),
/// else the same or a near name in another section (`train.ks` → `eval.ks`).
fn suggest(key: &str, schema: &Dict) -> Option<String> {
    let (parent, leaf) = key.rsplit_once('.').unwrap_or(("", key));
    let siblings: Vec<&str> = if parent.is_empty() {
        schema.keys().map(String::as_str).collect()
    } else {
        match find(schema, parent) {
            Some(Value::Dict(_, d)) => d.keys().map(String::as_str).collect(),
            _ => Vec::new(),
        }
    };
    let mut keys = Vec::new();
    all_keys(schema, "", &mut keys);
    // The exact name in another section beats a fuzzy sibling: `train.ks` means `eval.ks`.
    if let Some(k) = keys.iter().find(|k| k.rsplit('.').next() == Some(leaf)) {
        return Some(k.clone());
    }
    // `nearest` allows 2 edits, which for a 2-letter key is any 2-letter key: require
    // the match to keep at least one character of the original.
    if let Some(s) =
        nearest(leaf, siblings).filter(|s| edit_distance(leaf, s) < leaf.chars().count())
    {
        return Some(if parent.is_empty() {
            s.to_string()
        } else {
            format!("{parent}.{s}")
        });
    }
    keys.iter()
        .filter_map(|k| {
            let k_leaf = k.rsplit('.').next().unwrap_or(k);
            let d = edit_distance(leaf, k_leaf);
            (d <= 1.max(k_leaf.len() / 4)).then_some((d, k))
        })
        .min()
        .map(|(_, k)| k.clone())
        .or_else(|| nearest(key, keys.iter().map(String::as_str)).map(str::to_string))
}

/// Turns figment's extraction error into one of ours, naming the full key and its layer.
pub(super) fn extract_error(err: figment::Error) -> ConfigError {
    let key = err.path.join(".");
    let origin = err
        .metadata
        .as_ref()
        .map(describe_source)
        .unwrap_or_else(|| "an unknown source".into());
    let key_or_root = if key.is_empty() {
        "(top level)".to_string()
    } else {
        key.clone()
    };
    match &err.kind {
        Kind::InvalidType(found, expected) => ConfigError::WrongType {
            key: key_or_root,
            origin,
            found: found.to_string(),
            expected: expected.clone(),
        },
        Kind::InvalidValue(found, expected) => ConfigError::WrongType {
            key: key_or_root,
            origin,
            found: found.to_string(),
            expected: expected.clone(),
        },
        // An option's name outside its enum: reported like an out-of-range value, with
        // its key's own layer filled in by the loader.
        Kind::UnknownVariant(found, allowed) => ConfigError::Invalid {
            key: key_or_root,
            value: format!("{found:?}"),
            reason: check::one_of_reason(found, allowed),
            origin: None,
        },
        Kind::InvalidLength(len, expected) => ConfigError::WrongType {
            key: key_or_root,
            origin,
            found: format!("{len} element(s)"),
            expected: expected.clone(),
        },
        Kind::UnknownField(field, _) => {
            let full = if key.is_empty() {
                field.clone()
            } else {
                format!("{key}.{field}")
            };
            let suggestion = suggest(&full, &schema());
            ConfigError::UnknownKey {
                key: full,
                origin,
                suggestion,
                others: 0,
            }
        }
        _ => ConfigError::WrongType {
            key: key_or_root,
            origin,
            found: err.kind.to_string(),
            expected: "a valid value".into(),
        },
    }
}
