//! The errors of the LLM client, one variant per way a request can end badly.

use std::path::PathBuf;

/// How many characters of a server's body an error quotes: enough to read an error
/// message, short enough for a log line.
const SNIPPET_CHARS: usize = 300;

/// Why an LLM request failed.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// The configuration (or the environment it names) is unusable; nothing was sent.
    #[error("llm config: {0}")]
    Config(String),
    /// The server answered with a status that is not worth retrying (4xx other than 408/429).
    #[error("HTTP {status} from the LLM server: {body}")]
    Http { status: u16, body: String },
    /// No complete answer within the request's timeout (`timeout_secs`, plus the
    /// generation allowance for chat).
    #[error("no answer from the LLM server within {secs} s (llm.timeout_secs, plus llm.timeout_ms_per_token × llm.max_tokens for chat)")]
    Timeout { secs: u64 },
    /// The connection could not be made or broke off (refused, reset, DNS, TLS).
    #[error("could not reach the LLM server: {0}")]
    Transport(String),
    /// A 200 answer that is not what the endpoint promises (bad JSON, missing fields,
    /// wrong number of embeddings, mixed dimensions, NaN/Inf).
    #[error("malformed answer from {endpoint}: {detail}; body starts: {snippet}")]
    Malformed {
        endpoint: String,
        detail: String,
        snippet: String,
    },
    /// A complete chat answer that the step's check refused (not the JSON it asked for, a
    /// required field empty, …). Retried only when sampling can change it (temperature
    /// above 0), at most `MALFORMED_RETRIES` times; never cached.
    #[error("answer from {endpoint} rejected: {why}; answer starts: {snippet}")]
    Rejected {
        endpoint: String,
        why: String,
        snippet: String,
    },
    /// The chat answer stopped at `max_tokens` (`finish_reason: "length"`). Not retried:
    /// at the same settings the server would cut it again.
    #[error("chat answer truncated at max_tokens = {max_tokens} (finish_reason \"length\"); raise llm.max_tokens: only the truncated answers are asked again")]
    Truncated { max_tokens: u32 },
    /// A transient failure (429, 5xx, timeout, connection) outlasted every retry.
    #[error("gave up after {attempts} attempts; last error: {last}")]
    RetriesExhausted { attempts: u32, last: Box<LlmError> },
    /// Reading or writing the disk cache failed.
    #[error("llm cache {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl LlmError {
    /// Whether waiting and sending the same request again may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            LlmError::Http { status, .. } => is_transient_status(*status),
            LlmError::Timeout { .. } | LlmError::Transport(_) => true,
            _ => false,
        }
    }

    /// A `Malformed` error for `endpoint` quoting the start of `body`.
    pub(crate) fn malformed(endpoint: &str, detail: impl Into<String>, body: &str) -> Self {
        LlmError::Malformed {
            endpoint: endpoint.to_string(),
            detail: detail.into(),
            snippet: snippet(body),
        }
    }
}

/// 429 (rate limit), 408 (request timeout) and 5xx are the statuses a later try can fix.
pub(crate) fn is_transient_status(status: u16) -> bool {
    status == 429 || status == 408 || (500..600).contains(&status)
}

/// The first `SNIPPET_CHARS` characters of `body`, marked when cut.
pub(crate) fn snippet(body: &str) -> String {
    let mut chars = body.chars();
    let head: String = chars.by_ref().take(SNIPPET_CHARS).collect();
    if chars.next().is_some() {
        format!("{head}…")
    } else {
        head
    }
}
