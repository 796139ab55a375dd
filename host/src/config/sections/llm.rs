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
    /// Model name sent with chat requests; needed only when `chat` is used.
    pub chat_model: String,
    /// Model name sent with embedding requests; needed only when `embed` is used.
    pub embedding_model: String,
    /// NAME of the environment variable that holds the API key (the key itself never
    /// lives in a config file). Empty: no `Authorization` header.
    pub api_key_env: String,
    /// Seconds a request may take, connection to last byte of the answer.
    pub timeout_secs: u64,
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
}

impl Default for LlmConfig {
    fn default() -> Self {
        Self {
            base_url: "http://localhost:8000/v1".into(),
            chat_model: String::new(),
            embedding_model: String::new(),
            api_key_env: String::new(),
            timeout_secs: 60,
            max_retries: 5,
            backoff_base_ms: 500,
            backoff_max_ms: 30_000,
            concurrency: 4,
            cache_dir: PathBuf::from("cache/llm"),
            temperature: 0.0,
            max_tokens: 1024,
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
    pub fn problem(&self) -> Option<(&'static str, String, String)> {
        let url = self.base_url.trim();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Some((
                "llm.base_url",
                format!("{:?}", self.base_url),
                "must start with http:// or https://".into(),
            ));
        }
        let ranges: [(&'static str, u64, u64, u64); 6] = [
            ("llm.timeout_secs", self.timeout_secs, 1, MAX_TIMEOUT_SECS),
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
            Some((key, value, reason)) => Err(bad(key, Raw(value), reason)),
            None => Ok(()),
        }
    }
}
