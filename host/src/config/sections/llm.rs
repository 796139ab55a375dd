//! `[llm]`: the OpenAI-compatible endpoint of the profile pipeline (re-ranking, profiles,
//! embeddings). The client's own use of these settings is in `crate::llm`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::check::{bad, Raw};
use crate::config::ConfigError;

/// Where and how to reach an OpenAI-compatible server (vLLM, llama.cpp, OpenAI, …).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LlmConfig {
    /// API root that `/chat/completions` and `/embeddings` are appended to.
    pub base_url: String,
    /// API root of chat requests when it differs from `base_url` (llama.cpp serves one
    /// model per process); empty: `base_url`.
    pub chat_base_url: String,
    /// API root of embedding requests when it differs from `base_url`; empty: `base_url`.
    pub embedding_base_url: String,
    /// Model name sent with chat requests; needed only when `chat` is used.
    pub chat_model: String,
    /// Model name sent with embedding requests; needed only when `embed` is used.
    pub embedding_model: String,
    /// NAME of the environment variable that holds the API key (the key itself never
    /// lives in a config file). Empty: no `Authorization` header.
    pub api_key_env: String,
    /// Seconds a request may take, connection to last byte of the answer; a chat request
    /// gets `timeout_ms_per_token` more per token of `max_tokens`, for generation.
    pub timeout_secs: u64,
    /// Seconds to open a connection (a server that is down fails fast).
    pub connect_timeout_secs: u64,
    /// Milliseconds of generation a chat request may take per token of `max_tokens`, on
    /// top of `timeout_secs` (100: 10 tokens/s, a small model on a 2-core CPU).
    pub timeout_ms_per_token: u64,
    /// Retries after the first attempt for 429, 408, 5xx, timeouts and connection errors.
    pub max_retries: u32,
    /// First backoff ceiling; it doubles with every retry (full jitter below it).
    pub backoff_base_ms: u64,
    /// Upper bound of any wait between attempts, `Retry-After` included.
    pub backoff_max_ms: u64,
    /// Requests in flight at once in `chat_many` / `embed_many`.
    pub concurrency: usize,
    /// Folder of the response cache (created when missing).
    pub cache_dir: PathBuf,
    /// Sampling temperature of chat requests (0: as deterministic as the server allows).
    pub temperature: f64,
    /// Upper bound of tokens in a chat answer; an answer cut there is an error.
    pub max_tokens: u32,
    /// Structured output for the steps whose answer is JSON (profiles, re-ranking):
    /// `json_schema` sends each step's schema, `json_object` asks for any JSON object,
    /// `none` sends nothing (for servers that refuse `response_format`).
    pub response_format: String,
    /// Merged into every request body, for server-specific options (`top_k`,
    /// `cache_prompt`, …). Part of the cache key. It may not set what promax sets itself
    /// ([`RESERVED_BODY_KEYS`]).
    pub extra_body: serde_json::Map<String, serde_json::Value>,
}

/// The body fields promax writes itself, which `extra_body` may not override.
pub const RESERVED_BODY_KEYS: [&str; 6] = [
    "model",
    "messages",
    "input",
    "temperature",
    "max_tokens",
    "response_format",
];

/// The values `response_format` takes.
pub const RESPONSE_FORMATS: [&str; 3] = ["none", "json_object", "json_schema"];

/// Largest `timeout_ms_per_token` (a minute per token).
pub const MAX_MS_PER_TOKEN: u64 = 60_000;

impl Default for LlmConfig {
    fn default() -> Self {
        Self {
            base_url: "http://localhost:8000/v1".into(),
            chat_base_url: String::new(),
            embedding_base_url: String::new(),
            chat_model: String::new(),
            embedding_model: String::new(),
            api_key_env: String::new(),
            timeout_secs: 60,
            connect_timeout_secs: 10,
            timeout_ms_per_token: 100,
            max_retries: 5,
            backoff_base_ms: 500,
            backoff_max_ms: 30_000,
            concurrency: 4,
            cache_dir: PathBuf::from("cache/llm"),
            temperature: 0.0,
            max_tokens: 1024,
            response_format: "json_schema".into(),
            extra_body: serde_json::Map::new(),
        }
    }
}

/// Upper bounds of the numeric `[llm]` keys: far above any real server's needs, low
/// enough that no setting can ask for absurd waits, thread counts or answer sizes.
pub const MAX_TIMEOUT_SECS: u64 = 86_400;
/// Most retries after the first attempt.
pub const MAX_RETRIES: u32 = 100;
/// Longest wait between attempts (one hour), `backoff_base_ms` and `backoff_max_ms`.
pub const MAX_BACKOFF_MS: u64 = 3_600_000;
/// Most requests in flight (each is a thread).
pub const MAX_CONCURRENCY: usize = 1024;
/// Largest `max_tokens` (no served model answers more in one go).
pub const MAX_TOKENS: u32 = 1_000_000;

impl LlmConfig {
    /// `(dotted key, value as TOML, what is allowed)` of the first out-of-range value, so
    /// that the loader can blame the layer that set that key.
    pub fn problem(&self) -> Option<(String, String, String)> {
        if let Some(k) = self
            .extra_body
            .keys()
            .find(|k| RESERVED_BODY_KEYS.contains(&k.as_str()))
        {
            return Some((
                format!("llm.extra_body.{k}"),
                self.extra_body[k].to_string(),
                format!(
                    "promax sets `{k}` itself ({}); use the llm key of that name",
                    RESERVED_BODY_KEYS.join(", ")
                ),
            ));
        }
        self.fixed_key_problem()
            .map(|(k, v, why)| (k.to_string(), v, why))
    }

    fn fixed_key_problem(&self) -> Option<(&'static str, String, String)> {
        for (key, url, may_be_empty) in [
            ("llm.base_url", &self.base_url, false),
            ("llm.chat_base_url", &self.chat_base_url, true),
            ("llm.embedding_base_url", &self.embedding_base_url, true),
        ] {
            let u = url.trim();
            if (u.is_empty() && may_be_empty)
                || u.starts_with("http://")
                || u.starts_with("https://")
            {
                continue;
            }
            return Some((
                key,
                format!("{url:?}"),
                "must start with http:// or https://".into(),
            ));
        }
        if !RESPONSE_FORMATS.contains(&self.response_format.as_str()) {
            return Some((
                "llm.response_format",
                format!("{:?}", self.response_format),
                format!("must be one of {}", RESPONSE_FORMATS.join(", ")),
            ));
        }
        let ranges: [(&'static str, u64, u64, u64); 8] = [
            ("llm.timeout_secs", self.timeout_secs, 1, MAX_TIMEOUT_SECS),
            (
                "llm.connect_timeout_secs",
                self.connect_timeout_secs,
                1,
                MAX_TIMEOUT_SECS,
            ),
            (
                "llm.timeout_ms_per_token",
                self.timeout_ms_per_token,
                0,
                MAX_MS_PER_TOKEN,
            ),
            (
                "llm.max_retries",
                self.max_retries.into(),
                0,
                MAX_RETRIES.into(),
            ),
            (
                "llm.backoff_base_ms",
                self.backoff_base_ms,
                0,
                MAX_BACKOFF_MS,
            ),
            ("llm.backoff_max_ms", self.backoff_max_ms, 0, MAX_BACKOFF_MS),
            (
                "llm.concurrency",
                self.concurrency as u64,
                1,
                MAX_CONCURRENCY as u64,
            ),
            (
                "llm.max_tokens",
                self.max_tokens.into(),
                1,
                MAX_TOKENS.into(),
            ),
        ];
        for (key, v, lo, hi) in ranges {
            if !(lo..=hi).contains(&v) {
                return Some((key, v.to_string(), format!("must be between {lo} and {hi}")));
            }
        }
        if self.backoff_base_ms > self.backoff_max_ms {
            return Some((
                "llm.backoff_base_ms",
                self.backoff_base_ms.to_string(),
                format!(
                    "exceeds llm.backoff_max_ms = {}: the first wait cannot be longer than \
                     every wait's cap",
                    self.backoff_max_ms
                ),
            ));
        }
        if !(self.temperature.is_finite() && (0.0..=2.0).contains(&self.temperature)) {
            return Some((
                "llm.temperature",
                self.temperature.to_string(),
                "must be between 0 and 2".into(),
            ));
        }
        if self.cache_dir.as_os_str().is_empty() {
            return Some((
                "llm.cache_dir",
                "\"\"".into(),
                "must name the folder of the response cache".into(),
            ));
        }
        None
    }

    pub(in crate::config) fn validate(&self) -> Result<(), ConfigError> {
        match self.problem() {
            Some((key, value, reason)) => Err(bad(&key, Raw(value), reason)),
            None => Ok(()),
        }
    }
}
