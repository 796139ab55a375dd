//! What the LLM client does with its settings ([`LlmConfig`], defined with the other
//! config sections): the check it runs once, the API key, the endpoint URLs.

use std::time::Duration;

use super::error::LlmError;
use super::wire::CHAT_PATH;

pub use crate::config::{
    LlmConfig, MAX_BACKOFF_MS, MAX_CONCURRENCY, MAX_RETRIES, MAX_TIMEOUT_SECS, MAX_TOKENS,
    RESERVED_BODY_KEYS, RESPONSE_FORMATS,
};

impl LlmConfig {
    /// The first out-of-range value, as a `Config` error naming the key.
    pub fn check(&self) -> Result<(), LlmError> {
        match self.problem() {
            Some((key, value, reason)) => Err(LlmError::Config(format!(
                "{} = {value}: {reason}",
                key.trim_start_matches("llm.")
            ))),
            None => Ok(()),
        }
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

    /// The API root of `endpoint`: its own (`chat_base_url`, `embedding_base_url`) when
    /// set, else `base_url`.
    pub(crate) fn base_for(&self, endpoint: &str) -> &str {
        let own = if endpoint == CHAT_PATH {
            &self.chat_base_url
        } else {
            &self.embedding_base_url
        };
        if own.trim().is_empty() {
            self.base_url.trim()
        } else {
            own.trim()
        }
    }

    /// `{base}/{endpoint}` with exactly one slash between them.
    pub(crate) fn url(&self, endpoint: &str) -> String {
        format!(
            "{}/{}",
            self.base_for(endpoint).trim_end_matches('/'),
            endpoint
        )
    }

    /// How long a request to `endpoint` may take: `timeout_secs`, plus for chat the
    /// generation allowance of `max_tokens` tokens at `timeout_ms_per_token`.
    pub(crate) fn timeout_for(&self, endpoint: &str) -> Duration {
        let base = Duration::from_secs(self.timeout_secs);
        if endpoint != CHAT_PATH {
            return base;
        }
        base + Duration::from_millis(self.timeout_ms_per_token * u64::from(self.max_tokens))
    }
}
