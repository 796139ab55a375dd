//! Typing of `--set` and environment values, which arrive as text: the key's type in the
//! schema decides what the text means.

use figment::value::{Dict, Num, Value};

/// Parses a command-line or environment value with figment's value syntax, then lets the
/// key's type in the schema settle what the syntax cannot: a string key keeps the text as
/// given (`run.name=2024` is a name, not a number), and a numeric key accepts exponent
/// notation that figment's parser leaves as a string (`1e-3`).
pub(super) fn typed_value(key: &str, raw: &str, schema: &Dict) -> Value {
    // figment 0.10's escape decoder slices by char index as if it were a byte index, and
    // panics on a `\` after a non-ASCII character: such text is taken as given, as text
    // figment cannot parse already is.
    let parsed: Value = if raw.contains('\\') && !raw.is_ascii() {
        Value::from(raw.to_string())
    } else {
        raw.parse().unwrap_or_else(|_| Value::from(raw.to_string()))
    };
    let expected = find(schema, key);
    coerce(parsed, expected, Some(raw.trim()))
}

pub(super) fn find<'a>(dict: &'a Dict, key: &str) -> Option<&'a Value> {
    let (head, rest) = match key.split_once('.') {
        Some((h, r)) => (h, Some(r)),
        None => (key, None),
    };
    let v = dict.get(head)?;
    match (rest, v) {
        (None, v) => Some(v),
        (Some(r), Value::Dict(_, d)) => find(d, r),
        _ => None,
    }
}

fn coerce(value: Value, expected: Option<&Value>, raw: Option<&str>) -> Value {
    match (expected, value) {
        (Some(Value::String(..)), v @ Value::String(..)) => v,
        (Some(Value::String(..)), v) => {
            Value::from(raw.map(str::to_string).unwrap_or_else(|| scalar_text(&v)))
        }
        (Some(Value::Array(_, proto)), Value::Array(tag, items)) => {
            let proto = proto.first();
            Value::Array(
                tag,
                items.into_iter().map(|i| coerce(i, proto, None)).collect(),
            )
        }
        // A numeric key takes any float syntax (`1e-3`, `inf`: the range check then
        // reports it); an untyped plugin key only text that looks like a number.
        (Some(Value::Num(..)), Value::String(tag, s)) => match s.parse::<f64>() {
            Ok(f) => Value::Num(tag, Num::F64(f)),
            Err(_) => Value::String(tag, s),
        },
        (_, Value::String(tag, s)) if s.bytes().any(|b| b.is_ascii_digit()) => {
            match s.parse::<f64>() {
                Ok(f) => Value::Num(tag, Num::F64(f)),
                Err(_) => Value::String(tag, s),
            }
        }
        (_, Value::Array(tag, items)) => Value::Array(
            tag,
            items.into_iter().map(|i| coerce(i, None, None)).collect(),
        ),
        (_, v) => v,
    }
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(_, s) => s.clone(),
        Value::Char(_, c) => c.to_string(),
        Value::Bool(_, b) => b.to_string(),
        Value::Num(_, n) => n
            .to_u128()
            .map(|u| u.to_string())
            .or_else(|| n.to_i128().map(|i| i.to_string()))
            .or_else(|| n.to_f64().map(|f| f.to_string()))
            .unwrap_or_default(),
        other => format!("{other:?}"),
    }
}
