//! What the LLM client does with its settings ([`LlmConfig`], defined with the other
//! config sections): the check it runs once, the API key, the endpoint URLs.

use super::error::LlmError;

pub use crate::config::{
    LlmConfig, MAX_BACKOFF_MS, MAX_CONCURRENCY, MAX_RETRIES, MAX_TIMEOUT_SECS, MAX_TOKENS,
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

    /// `{base_url}/{path}` with exactly one slash between them.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base_url.trim().trim_end_matches('/'), path)
    }
}
