//! Settings of the LLM client: plain data, checked once by [`LlmConfig::check`].

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::error::LlmError;

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

impl LlmConfig {
    /// Every out-of-range value, as a `Config` error naming the key.
    pub fn check(&self) -> Result<(), LlmError> {
        let bad = |msg: String| Err(LlmError::Config(msg));
        let url = self.base_url.trim();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return bad(format!(
                "base_url = {:?}: must start with http:// or https://",
                self.base_url
            ));
        }
        if self.timeout_secs == 0 {
            return bad("timeout_secs must be at least 1".into());
        }
        if self.concurrency == 0 {
            return bad("concurrency must be at least 1".into());
        }
        if self.backoff_base_ms > self.backoff_max_ms {
            return bad(format!(
                "backoff_base_ms = {} exceeds backoff_max_ms = {}",
                self.backoff_base_ms, self.backoff_max_ms
            ));
        }
        if !(self.temperature.is_finite() && (0.0..=2.0).contains(&self.temperature)) {
            return bad(format!(
                "temperature = {}: must be in [0, 2]",
                self.temperature
            ));
        }
        if self.max_tokens == 0 {
            return bad("max_tokens must be at least 1".into());
        }
        if self.cache_dir.as_os_str().is_empty() {
            return bad("cache_dir is empty".into());
        }
        Ok(())
    }

    /// The API key from the variable `api_key_env` names; `None` when no variable is named.
    pub fn api_key(&self) -> Result<Option<String>, LlmError> {
        let name = self.api_key_env.trim();
        if name.is_empty() {
            return Ok(None);
        }
        match std::env::var(name) {
            Ok(key) if !key.trim().is_empty() => Ok(Some(key.trim().to_string())),
            Ok(_) => Err(LlmError::Config(format!(
                "api_key_env names {name}, which is set but empty"
            ))),
            Err(std::env::VarError::NotPresent) => Err(LlmError::Config(format!(
                "api_key_env names {name}, which is not set in the environment"
            ))),
            Err(std::env::VarError::NotUnicode(_)) => Err(LlmError::Config(format!(
                "api_key_env names {name}, whose value is not valid UTF-8"
            ))),
        }
    }

    /// `{base_url}/{path}` with exactly one slash between them.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base_url.trim().trim_end_matches('/'), path)
    }
}
