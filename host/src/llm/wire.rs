//! Request bodies and answer validation for the two OpenAI endpoints used.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::LlmError;

pub(crate) const CHAT_PATH: &str = "chat/completions";
pub(crate) const EMBED_PATH: &str = "embeddings";

/// One message of a chat conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// "system", "user" or "assistant".
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    pub fn system(content: impl Into<String>) -> Self {
        Self::new("system", content)
    }
    pub fn user(content: impl Into<String>) -> Self {
        Self::new("user", content)
    }
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new("assistant", content)
    }
    fn new(role: &str, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// A complete (not truncated) chat answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatAnswer {
    pub content: String,
    /// As the server gave it ("stop", …); `None` when it gave none.
    pub finish_reason: Option<String>,
}

/// Token counts of one answer, when the server reports them.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub(crate) struct Usage {
    #[serde(default)]
    pub prompt_tokens: Option<u64>,
    #[serde(default)]
    pub completion_tokens: Option<u64>,
}

/// The JSON Schema of a step's answer, for `response_format` (see [`chat_body`]).
#[derive(Debug, Clone, PartialEq)]
pub struct AnswerSchema {
    /// A name for the schema (`[a-zA-Z0-9_-]`, as OpenAI requires).
    pub name: &'static str,
    pub schema: Value,
}

impl AnswerSchema {
    /// An object whose `fields` are all required, non-empty strings of at most
    /// `max_chars` characters, nothing else allowed. The bound keeps a small model that repeats itself
    /// inside a string from running into `max_tokens` (a grammar-constrained server must
    /// close the string there).
    pub fn strings(name: &'static str, fields: &[&str], max_chars: usize) -> Self {
        let props: serde_json::Map<String, Value> = fields
            .iter()
            .map(|f| {
                let p =
                    serde_json::json!({"type": "string", "minLength": 1, "maxLength": max_chars});
                (f.to_string(), p)
            })
            .collect();
        AnswerSchema {
            name,
            schema: serde_json::json!({
                "type": "object",
                "properties": props,
                "required": fields,
                "additionalProperties": false,
            }),
        }
    }
}

/// A chat request body. With a `schema` (the step's answer is JSON), `response_format`
/// says how to ask for it: `json_schema` sends the schema (OpenAI, vLLM, llama.cpp and
/// Ollama accept it), `json_object` any JSON object, `none` nothing. `extra` is merged in.
///
/// The schema goes with `strict: false`: local servers (llama.cpp, vLLM, Ollama) compile
/// it into a grammar either way, while OpenAI's strict mode refuses keywords such as the
/// length bounds of the profile schema; the answer is checked here in any case.
pub(crate) fn chat_body(
    model: &str,
    messages: &[ChatMessage],
    temperature: f64,
    max_tokens: u32,
    structured: Option<(&str, &AnswerSchema)>,
    extra: &serde_json::Map<String, Value>,
) -> Value {
    let mut body = serde_json::json!({
        "model": model,
        "messages": messages,
        "temperature": temperature,
        "max_tokens": max_tokens,
    });
    let format = match structured {
        Some(("json_schema", s)) => Some(serde_json::json!({
            "type": "json_schema",
            "json_schema": {"name": s.name, "schema": s.schema, "strict": false},
        })),
        Some(("json_object", _)) => Some(serde_json::json!({"type": "json_object"})),
        _ => None,
    };
    if let Some(f) = format {
        body["response_format"] = f;
    }
    merge(&mut body, extra);
    body
}

pub(crate) fn embed_body(
    model: &str,
    inputs: &[String],
    extra: &serde_json::Map<String, Value>,
) -> Value {
    let mut body = serde_json::json!({ "model": model, "input": inputs });
    merge(&mut body, extra);
    body
}

/// Adds `extra`'s fields (the config refuses those promax sets itself).
fn merge(body: &mut Value, extra: &serde_json::Map<String, Value>) {
    if let Value::Object(map) = body {
        for (k, v) in extra {
            map.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
}

/// The token counts of any response body that has them (also of an answer that was
/// rejected: its tokens were spent).
pub(crate) fn usage_of(body: &str) -> Usage {
    #[derive(Deserialize)]
    struct WithUsage {
        #[serde(default)]
        usage: Option<Usage>,
    }
    serde_json::from_str::<WithUsage>(body)
        .ok()
        .and_then(|w| w.usage)
        .unwrap_or_default()
}

#[derive(Deserialize)]
struct ChatResponse {
    choices: Vec<ChatChoice>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct ChatChoice {
    message: ChatChoiceMessage,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct ChatChoiceMessage {
    #[serde(default)]
    content: Option<String>,
}

/// The first choice of a chat completion; `Truncated` when it stopped at `max_tokens`.
pub(crate) fn parse_chat(body: &str, max_tokens: u32) -> Result<(ChatAnswer, Usage), LlmError> {
    let bad = |detail: String| LlmError::malformed(CHAT_PATH, detail, body);
    let resp: ChatResponse = serde_json::from_str(body).map_err(|e| bad(e.to_string()))?;
    let Some(choice) = resp.choices.into_iter().next() else {
        return Err(bad("no choices".into()));
    };
    if choice.finish_reason.as_deref() == Some("length") {
        return Err(LlmError::Truncated { max_tokens });
    }
    let Some(content) = choice.message.content else {
        return Err(bad("choices[0].message.content is missing or null".into()));
    };
    let answer = ChatAnswer {
        content,
        finish_reason: choice.finish_reason,
    };
    Ok((answer, resp.usage.unwrap_or_default()))
}

#[derive(Deserialize)]
struct EmbedResponse {
    data: Vec<EmbedItem>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct EmbedItem {
    embedding: Vec<f64>,
    index: usize,
}

/// One embedding per input, in input order (by `index`), all of one dimension, all finite.
pub(crate) fn parse_embeddings(
    body: &str,
    n_inputs: usize,
) -> Result<(Vec<Vec<f32>>, Usage), LlmError> {
    let bad = |detail: String| LlmError::malformed(EMBED_PATH, detail, body);
    let resp: EmbedResponse = serde_json::from_str(body).map_err(|e| bad(e.to_string()))?;
    if resp.data.len() != n_inputs {
        return Err(bad(format!(
            "{} embeddings for {n_inputs} inputs",
            resp.data.len()
        )));
    }
    let mut slots: Vec<Option<Vec<f32>>> = vec![None; n_inputs];
    let mut dim = None;
    for item in resp.data {
        let i = item.index;
        let slot = slots
            .get_mut(i)
            .ok_or_else(|| bad(format!("index {i} out of range for {n_inputs} inputs")))?;
        if slot.is_some() {
            return Err(bad(format!("index {i} appears twice")));
        }
        let d = *dim.get_or_insert(item.embedding.len());
        if item.embedding.is_empty() || item.embedding.len() != d {
            return Err(bad(format!(
                "embedding {i} has dimension {}, expected {d} (and > 0)",
                item.embedding.len()
            )));
        }
        // f64 on the wire, f32 in memory: a value finite in f64 can still overflow f32.
        let v: Vec<f32> = item.embedding.iter().map(|&x| x as f32).collect();
        if let Some(j) = v.iter().position(|x| !x.is_finite()) {
            return Err(bad(format!("embedding {i} has a non-finite value at {j}")));
        }
        *slot = Some(v);
    }
    // n_inputs items, each index in range and none twice: every slot is filled.
    let out: Vec<Vec<f32>> = slots.into_iter().flatten().collect();
    Ok((out, resp.usage.unwrap_or_default()))
}

/// At most this many `{` positions of an answer are tried as the start of its JSON object
/// (prose or a reasoning trace before it may hold braces of its own).
const MAX_OBJECT_STARTS: usize = 64;

/// The JSON objects that start at a `{` of `content` (the first
/// `MAX_OBJECT_STARTS` braces tried), each parsed up to its own closing brace, so that
/// prose, code fences or another brace after an object do not spoil it.
pub fn json_objects(content: &str) -> impl Iterator<Item = serde_json::Map<String, Value>> + '_ {
    content
        .match_indices('{')
        .take(MAX_OBJECT_STARTS)
        .filter_map(|(start, _)| {
            let mut stream =
                serde_json::Deserializer::from_str(&content[start..]).into_iter::<Value>();
            match stream.next() {
                Some(Ok(Value::Object(map))) => Some(map),
                _ => None,
            }
        })
}

#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    /// Any JSON value, nested a few levels.
    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            "\\PC{0,8}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
                proptest::collection::btree_map(
                    prop_oneof![
                        Just("data".to_string()),
                        Just("embedding".to_string()),
                        Just("index".to_string()),
                        "[a-z]{1,6}"
                    ],
                    inner,
                    0..4,
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn any_embeddings_body_parses_or_errs(
            body in prop_oneof![
                any::<String>(),
                proptest::collection::vec(any::<u8>(), 0..64)
                    .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
                json_value().prop_map(|v| v.to_string()),
                json_value().prop_map(|v| serde_json::json!({"data": v}).to_string()),
            ],
            n in 0usize..5,
        ) {
            if let Ok((vectors, _)) = parse_embeddings(&body, n) {
                prop_assert_eq!(vectors.len(), n);
            }
        }

        #[test]
        fn valid_embeddings_bodies_round_trip(
            (vectors, order) in (1usize..6, 1usize..9).prop_flat_map(|(n, dim)| {
                let v = proptest::collection::vec(
                    proptest::collection::vec(-1e30f32..1e30, dim), n);
                (v, Just((0..n).collect::<Vec<usize>>()).prop_shuffle())
            }),
        ) {
            // The server may list the items in any order; `index` says whose each is.
            let data: Vec<Value> = order
                .iter()
                .map(|&i| serde_json::json!({"index": i, "embedding": vectors[i]}))
                .collect();
            let body = serde_json::json!({"object": "list", "data": data}).to_string();
            let (got, _) = parse_embeddings(&body, vectors.len()).unwrap();
            prop_assert_eq!(got, vectors);
        }
    }
}
