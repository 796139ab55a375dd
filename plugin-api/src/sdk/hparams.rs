//! Hyperparameters across the ABI: parsing JSON or TOML text into a plugin's `Hparams`
//! type with errors that name the key (and suggest the nearest one), and the
//! [`PluginInfo`] that `promax plugins show` prints, docs read from the fields' `///`.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::{Hparams, PluginMeta, PluginResult};
use crate::abi::*;

/// Levenshtein distance, for "did you mean" suggestions.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The candidate closest to `key`, if it is plausibly a typo of it.
pub fn nearest<'c>(key: &str, candidates: impl IntoIterator<Item = &'c str>) -> Option<&'c str> {
    candidates
        .into_iter()
        .map(|c| (edit_distance(key, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min()
        .map(|(_, c)| c)
}

fn defaults_object<H: Hparams>() -> Map<String, Value> {
    match serde_json::to_value(H::default()) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

/// Parses hyperparameters given as JSON or TOML text into `H`, starting from its defaults.
/// Errors name the offending key and, for an unknown key, the nearest valid one.
pub fn parse_hparams<H: Hparams>(text: &str) -> PluginResult<H> {
    let text = text.trim();
    let given: Value = if text.is_empty() {
        Value::Object(Map::new())
    } else if text.starts_with('{') {
        serde_json::from_str(text)
            .map_err(|e| format!("hyperparameters are not valid JSON: {e}"))?
    } else {
        let t: toml::Value =
            toml::from_str(text).map_err(|e| format!("hyperparameters are not valid TOML: {e}"))?;
        serde_json::to_value(t).map_err(|e| e.to_string())?
    };
    let Value::Object(given) = given else {
        return Err("hyperparameters must be a table of key = value".into());
    };
    let defaults = defaults_object::<H>();
    let mut merged = defaults.clone();
    for (key, value) in &given {
        if !defaults.contains_key(key) {
            let hint = nearest(key, defaults.keys().map(String::as_str))
                .map(|n| format!("; did you mean `{n}`?"))
                .unwrap_or_else(|| {
                    let all: Vec<&str> = defaults.keys().map(String::as_str).collect();
                    format!("; valid keys: {}", all.join(", "))
                });
            return Err(format!("unknown hyperparameter `{key}`{hint}"));
        }
        let mut one = defaults.clone();
        one.insert(key.clone(), value.clone());
        if let Err(e) = serde_json::from_value::<H>(Value::Object(one)) {
            return Err(format!("hyperparameter `{key}` = {value}: {e}"));
        }
        merged.insert(key.clone(), value.clone());
    }
    serde_json::from_value(Value::Object(merged)).map_err(|e| e.to_string())
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "table",
    }
}

/// JSON text of a default value. A float that is exactly an `f32` is written as the `f32`
/// (`0.8`, not `0.800000011920929`, which is how the f64 JSON value of `0.8f32` prints).
fn default_text(v: &Value) -> String {
    match v.as_f64() {
        Some(x) if v.is_f64() && f64::from(x as f32) == x && x.is_finite() => {
            let s = (x as f32).to_string();
            if s.contains('.') {
                s
            } else {
                format!("{s}.0")
            }
        }
        _ => v.to_string(),
    }
}

/// The doc of a hyperparameter whose field has no `///` comment: the gap shows in
/// `promax plugins show` (and fails the built-in plugins' test) instead of an empty column.
pub const UNDOCUMENTED: &str = "(undocumented: the field has no /// comment)";

/// Each hyperparameter's `///` comment on one line, by its serde name.
fn hparam_docs<H: Hparams>() -> BTreeMap<String, String> {
    let schema = schemars::schema_for!(H);
    let Some(Value::Object(fields)) = schema.get("properties") else {
        return BTreeMap::new();
    };
    fields
        .iter()
        .filter_map(|(name, field)| {
            // schemars splits a doc that opens with a `# heading` into title and description.
            let text = |key| field.get(key).and_then(Value::as_str).unwrap_or_default();
            let words: Vec<&str> = [text("title"), text("description")]
                .into_iter()
                .flat_map(str::split_whitespace)
                .collect();
            (!words.is_empty()).then(|| (name.clone(), words.join(" ")))
        })
        .collect()
}

/// The [`PluginInfo`] of a plugin type; hyperparameters come from its `Default` and the
/// fields' `///` comments.
pub fn plugin_info<P: PluginMeta>(kind: PluginKind) -> PluginInfo {
    let defaults = defaults_object::<P::Hparams>();
    let docs = hparam_docs::<P::Hparams>();
    let hparams = defaults
        .iter()
        .map(|(name, v)| HparamInfo {
            name: name.as_str().into(),
            ty: json_type(v).into(),
            default: default_text(v).into(),
            doc: docs.get(name).map_or(UNDOCUMENTED, String::as_str).into(),
        })
        .collect();
    PluginInfo {
        name: P::NAME.into(),
        kind,
        version: P::VERSION.into(),
        abi_version: ABI_VERSION,
        description: P::DESCRIPTION.into(),
        hparams,
    }
}
