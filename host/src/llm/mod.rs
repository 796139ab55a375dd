//! A blocking client for OpenAI-compatible servers (`/chat/completions`,
//! `/embeddings`): the network side of the LLM profile pipeline (docs/architecture.md, "LLM pipeline").
//!
//! ```no_run
//! use promax::llm::{ChatMessage, LlmClient, LlmConfig};
//! let cfg = LlmConfig { chat_model: "qwen2.5-7b".into(), ..LlmConfig::default() };
//! let client = LlmClient::new(cfg)?;
//! let answers = client.chat_many(&[vec![ChatMessage::user("Describe user 7.")]]);
//! eprintln!("{}", client.stats());
//! # Ok::<(), promax::llm::LlmError>(())
//! ```
//!
//! # What is cached
//! Every successful, validated answer: its raw response body, stored under
//! `{cache_dir}/{2 hex}/{sha256 hex}.json`, where the hash is of the endpoint path and
//! the request body as canonical JSON (keys sorted) without `max_tokens`. The key holds
//! the model, the messages or inputs, `temperature`, the `response_format` sent and
//! `extra_body`, so changing any of them is a new entry. `max_tokens` is left out: a
//! complete answer does not depend on it, and truncated answers are never stored, so
//! raising it after truncations re-asks only the truncated items. `base_url` and the API
//! key are not part of it either, so moving to another server that serves the same model
//! name reuses the cache. A cache hit sends no HTTP request. Errors, truncated answers
//! and answers that fail validation are never stored. Entries are re-validated when read;
//! one that fails is fetched again and overwritten. (Caches written before `max_tokens`
//! left the key are not found by this version: their requests are asked once more.)
//!
//! # How resume works
//! There is no journal: the cache is the record. An entry is written to a temporary
//! file in its folder and renamed into place, so a run killed at any moment leaves only
//! complete entries (plus perhaps a stray hidden `.tmp` file, never read). Running the
//! same requests again answers the finished ones from disk and sends only the rest; the
//! results equal those of an uninterrupted run.
//!
//! # Retry policy
//! - 429, 408, 5xx, timeouts and connection errors are retried up to `max_retries`
//!   times. The wait is the server's `Retry-After` (seconds) when given, else full
//!   jitter: uniform in [0, min(`backoff_max_ms`, `backoff_base_ms` · 2^retry)]; every
//!   wait is capped at `backoff_max_ms`. When retries run out the error is
//!   [`LlmError::RetriesExhausted`] with the number of attempts and the last error
//!   (status and the start of the body, or the timeout).
//! - Other 4xx are final at once ([`LlmError::Http`]): the request itself is wrong.
//! - A 200 whose body fails validation ([`LlmError::Malformed`]) is retried at most
//!   [`MALFORMED_RETRIES`] times (and never more than `max_retries`): a body cut short
//!   by a flaky proxy mends, a server that always answers garbage does not.
//! - A complete answer that the step's check refuses ([`LlmError::Rejected`]) is retried
//!   the same way only above temperature 0; at 0 the server would answer the same again.
//!   Its tokens are counted either way.
//!
//! # Timeouts
//! A connection must open within `connect_timeout_secs`; an embedding request must end
//! within `timeout_secs`, a chat request within `timeout_secs` plus
//! `timeout_ms_per_token` × `max_tokens` (generation time).
//! - `finish_reason: "length"` is [`LlmError::Truncated`], never retried: at the same
//!   settings the server would cut the answer again.
//!
//! `chat_many` / `embed_many` run `concurrency` requests at a time on scoped threads and
//! return one `Result` per request in input order.

mod cache;
mod client;
mod config;
mod error;
mod pool;
mod progress;
mod stats;
mod wire;

#[cfg(test)]
mod tests;
#[cfg(test)]
pub(crate) mod testserver;

pub use client::{LlmClient, MALFORMED_RETRIES};
pub use config::{
    LlmConfig, MAX_BACKOFF_MS, MAX_CONCURRENCY, MAX_RETRIES, MAX_TIMEOUT_SECS, MAX_TOKENS,
    RESERVED_BODY_KEYS, RESPONSE_FORMATS,
};
pub use error::LlmError;
pub use pool::map_bounded;
pub use progress::Progress;
pub use stats::LlmStats;
pub use wire::{json_objects, AnswerSchema, ChatAnswer, ChatMessage};
