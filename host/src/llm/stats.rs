//! Counters of what a client did, shared by its worker threads.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of a client's counters (see [`super::LlmClient::stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LlmStats {
    /// HTTP requests sent (every attempt, retries included).
    pub calls: u64,
    /// Requests answered from the disk cache, without an HTTP request.
    pub cache_hits: u64,
    /// Attempts after a first one (transient errors and malformed answers).
    pub retries: u64,
    /// Requests that ended in an error.
    pub failures: u64,
    /// Complete answers the step's check refused (each attempt counted).
    pub rejected: u64,
    /// Tokens the server reported for answers fetched now (cache hits add nothing).
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

impl fmt::Display for LlmStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "llm: {} calls, {} cache hits, {} retries, {} failures, {} rejected answers, {} prompt + {} completion tokens",
            self.calls,
            self.cache_hits,
            self.retries,
            self.failures,
            self.rejected,
            self.prompt_tokens,
            self.completion_tokens
        )
    }
}

/// The live counters behind [`LlmStats`]; relaxed atomics: they are tallies, nothing
/// is ordered by them.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub calls: AtomicU64,
    pub cache_hits: AtomicU64,
    pub retries: AtomicU64,
    pub failures: AtomicU64,
    pub rejected: AtomicU64,
    pub prompt_tokens: AtomicU64,
    pub completion_tokens: AtomicU64,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> LlmStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        LlmStats {
            calls: get(&self.calls),
            cache_hits: get(&self.cache_hits),
            retries: get(&self.retries),
            failures: get(&self.failures),
            rejected: get(&self.rejected),
            prompt_tokens: get(&self.prompt_tokens),
            completion_tokens: get(&self.completion_tokens),
        }
    }
}
