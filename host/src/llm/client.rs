//! The client: cache lookup, then HTTP with retries, then validation and caching.

use std::net::IpAddr;
use std::time::Duration;

use rand::Rng;
use reqwest::blocking::{Client, Response};
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use serde_json::Value;
use tracing::{debug, warn};

use super::cache::{cache_key, canonical_json, DiskCache};
use super::config::LlmConfig;
use super::error::{snippet, LlmError};
use super::pool::map_bounded;
use super::stats::{Counters, LlmStats};
use super::wire::{self, AnswerSchema, ChatAnswer, ChatMessage, Usage, CHAT_PATH, EMBED_PATH};

/// Retries spent at most on 200 answers that fail validation. A flaky proxy or an
/// overloaded server can cut a body short once; a server that answers garbage every
/// time will not mend, so it is not worth `max_retries` attempts with long waits.
pub const MALFORMED_RETRIES: u32 = 2;

/// A blocking client for an OpenAI-compatible server, with a disk cache, retries and
/// bounded concurrency. Shareable across threads (`&self` everywhere).
#[derive(Debug)]
pub struct LlmClient {
    cfg: LlmConfig,
    /// One HTTP client per endpoint, each with or without proxies for its own host.
    chat_http: Client,
    embed_http: Client,
    cache: DiskCache,
    counters: Counters,
}

/// What one HTTP attempt came to, before any decision about retrying.
struct Failure {
    error: LlmError,
    retry_after: Option<Duration>,
}

/// Validation of a 200 body: the value, and the token counts the server reported.
type Parse<'a, T> = &'a dyn Fn(&str) -> Result<(T, Usage), LlmError>;

impl LlmClient {
    /// Checks `cfg`, reads the API key from the environment and creates the cache folder.
    pub fn new(cfg: LlmConfig) -> Result<Self, LlmError> {
        cfg.check()?;
        let (chat_http, embed_http) = (
            http_client(&cfg, CHAT_PATH)?,
            http_client(&cfg, EMBED_PATH)?,
        );
        std::fs::create_dir_all(&cfg.cache_dir).map_err(|source| LlmError::Io {
            path: cfg.cache_dir.clone(),
            source,
        })?;
        let cache = DiskCache::new(&cfg.cache_dir);
        Ok(Self {
            cfg,
            chat_http,
            embed_http,
            cache,
            counters: Counters::default(),
        })
    }

    /// The settings this client was built with.
    pub fn config(&self) -> &LlmConfig {
        &self.cfg
    }

    /// A snapshot of the counters since this client was built.
    pub fn stats(&self) -> LlmStats {
        self.counters.snapshot()
    }

    /// One chat completion (`POST {base_url}/chat/completions`), cached.
    pub fn chat(&self, messages: &[ChatMessage]) -> Result<ChatAnswer, LlmError> {
        self.chat_checked(messages, &|_| Ok(()))
    }

    /// [`chat`](Self::chat) whose answer text must also pass `check` (e.g. "holds a JSON
    /// object with a non-empty `summarization`"). An answer that fails is
    /// [`LlmError::Rejected`]: never cached, retried only above temperature 0, and a
    /// cached answer that fails is fetched again, so a rerun asks again only for what
    /// failed before.
    pub fn chat_checked(
        &self,
        messages: &[ChatMessage],
        check: &(dyn Fn(&str) -> Result<(), String> + Sync),
    ) -> Result<ChatAnswer, LlmError> {
        self.chat_structured(messages, None, check)
    }

    /// [`chat_checked`](Self::chat_checked) for a step whose answer is JSON of `schema`:
    /// the request asks for it as `llm.response_format` says.
    pub fn chat_structured(
        &self,
        messages: &[ChatMessage],
        schema: Option<&AnswerSchema>,
        check: &(dyn Fn(&str) -> Result<(), String> + Sync),
    ) -> Result<ChatAnswer, LlmError> {
        if self.cfg.chat_model.trim().is_empty() {
            return self.failed(LlmError::Config("chat_model is empty".into()));
        }
        let max_tokens = self.cfg.max_tokens;
        let body = wire::chat_body(
            &self.cfg.chat_model,
            messages,
            self.cfg.temperature,
            max_tokens,
            schema.map(|s| (self.cfg.response_format.as_str(), s)),
            &self.cfg.extra_body,
        );
        self.request(CHAT_PATH, &body, &|text| {
            let (answer, usage) = wire::parse_chat(text, max_tokens)?;
            check(&answer.content).map_err(|why| LlmError::Rejected {
                endpoint: CHAT_PATH.into(),
                why,
                snippet: snippet(&answer.content),
            })?;
            Ok((answer, usage))
        })
    }

    /// Embeddings of `inputs` in input order (`POST {base_url}/embeddings`), cached as one
    /// request. No inputs: no request.
    pub fn embed(&self, inputs: &[String]) -> Result<Vec<Vec<f32>>, LlmError> {
        if inputs.is_empty() {
            return Ok(Vec::new());
        }
        if self.cfg.embedding_model.trim().is_empty() {
            return self.failed(LlmError::Config("embedding_model is empty".into()));
        }
        let body = wire::embed_body(&self.cfg.embedding_model, inputs, &self.cfg.extra_body);
        let n = inputs.len();
        self.request(EMBED_PATH, &body, &|text| wire::parse_embeddings(text, n))
    }

    /// [`chat`](Self::chat) for every conversation, `concurrency` at a time; one result
    /// per conversation, in input order, each failure kept to its own item.
    pub fn chat_many(
        &self,
        conversations: &[Vec<ChatMessage>],
    ) -> Vec<Result<ChatAnswer, LlmError>> {
        map_bounded(conversations, self.cfg.concurrency, |m| self.chat(m))
    }

    /// [`embed`](Self::embed) for every batch of inputs, `concurrency` at a time; one
    /// result per batch, in input order.
    pub fn embed_many(&self, batches: &[Vec<String>]) -> Vec<Result<Vec<Vec<f32>>, LlmError>> {
        map_bounded(batches, self.cfg.concurrency, |b| self.embed(b))
    }

    fn failed<T>(&self, error: LlmError) -> Result<T, LlmError> {
        Counters::add(&self.counters.failures, 1);
        Err(error)
    }

    /// The cached answer when there is a valid one, else the server's (then cached).
    fn request<T>(&self, endpoint: &str, body: &Value, parse: Parse<T>) -> Result<T, LlmError> {
        let canonical = canonical_json(body);
        let key = cache_key(endpoint, &canonical_json(&answer_defining(body)));
        let fresh = match self.cached(&key, parse) {
            Ok(Some(hit)) => return Ok(hit),
            Ok(None) => self.fetch(endpoint, &canonical, parse),
            Err(e) => Err(e),
        };
        match fresh {
            Ok((value, raw)) => match self.cache.put(&key, &raw) {
                Ok(()) => Ok(value),
                Err(e) => self.failed(e),
            },
            Err(e) => self.failed(e),
        }
    }

    /// A cache entry that no longer validates (edited by hand, written by an older
    /// version) is a miss: it is fetched again and overwritten.
    fn cached<T>(&self, key: &str, parse: Parse<T>) -> Result<Option<T>, LlmError> {
        let Some(raw) = self.cache.get(key)? else {
            return Ok(None);
        };
        match parse(&raw) {
            Ok((value, _)) => {
                Counters::add(&self.counters.cache_hits, 1);
                Ok(Some(value))
            }
            Err(e) => {
                let path = self.cache.path(key);
                warn!("ignoring cache entry {}: {e}", path.display());
                Ok(None)
            }
        }
    }

    /// Sends until an answer validates, a failure is final, or the retries run out.
    /// Returns the value and the raw body to cache.
    fn fetch<T>(
        &self,
        endpoint: &str,
        body: &str,
        parse: Parse<T>,
    ) -> Result<(T, String), LlmError> {
        let url = self.cfg.url(endpoint);
        let max_retries = self.cfg.max_retries;
        // At temperature 0 the server gives the same answer again: asking again only
        // pays for it twice.
        let resample = self.cfg.temperature > 0.0;
        let mut malformed = 0;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let failure = match self.send_once(endpoint, &url, body) {
                Ok(text) => match parse(&text) {
                    Ok((value, usage)) => {
                        self.record_usage(usage);
                        return Ok((value, text));
                    }
                    Err(e) => {
                        // A complete body that fails still cost its tokens.
                        self.record_usage(wire::usage_of(&text));
                        let retry = match &e {
                            LlmError::Rejected { .. } => {
                                Counters::add(&self.counters.rejected, 1);
                                resample
                            }
                            LlmError::Malformed { .. } => true,
                            _ => false,
                        };
                        if !(retry && attempt <= max_retries && malformed < MALFORMED_RETRIES) {
                            return Err(e);
                        }
                        malformed += 1;
                        Failure {
                            error: e,
                            retry_after: None,
                        }
                    }
                },
                Err(f) if !f.error.is_transient() => return Err(f.error),
                Err(f) if attempt > max_retries => {
                    warn!(
                        "{endpoint}: giving up after {attempt} attempts: {}",
                        f.error
                    );
                    let last = Box::new(f.error);
                    return Err(LlmError::RetriesExhausted {
                        attempts: attempt,
                        last,
                    });
                }
                Err(f) => f,
            };
            let wait = backoff(&self.cfg, attempt - 1, failure.retry_after);
            debug!(
                "{endpoint}: attempt {attempt} failed ({}); retrying in {wait:?}",
                failure.error
            );
            Counters::add(&self.counters.retries, 1);
            std::thread::sleep(wait);
        }
    }

    /// One POST; a non-2xx status is a failure carrying the body's start.
    fn send_once(&self, endpoint: &str, url: &str, body: &str) -> Result<String, Failure> {
        Counters::add(&self.counters.calls, 1);
        let http = if endpoint == CHAT_PATH {
            &self.chat_http
        } else {
            &self.embed_http
        };
        let timeout = self.cfg.timeout_for(endpoint);
        let resp = http
            .post(url)
            .timeout(timeout)
            .header(CONTENT_TYPE, "application/json")
            .body(body.to_owned())
            .send()
            .map_err(|e| transport_failure(&e, timeout))?;
        let status = resp.status().as_u16();
        let retry_after = retry_after(&resp);
        let text = resp.text().map_err(|e| transport_failure(&e, timeout))?;
        if (200..300).contains(&status) {
            return Ok(text);
        }
        let error = LlmError::Http {
            status,
            body: snippet(&text),
        };
        Err(Failure { error, retry_after })
    }

    fn record_usage(&self, usage: Usage) {
        let c = &self.counters;
        Counters::add(&c.prompt_tokens, usage.prompt_tokens.unwrap_or(0));
        Counters::add(&c.completion_tokens, usage.completion_tokens.unwrap_or(0));
    }
}

fn transport_failure(e: &reqwest::Error, timeout: Duration) -> Failure {
    let error = if e.is_timeout() {
        LlmError::Timeout {
            secs: timeout.as_secs_f64().ceil() as u64,
        }
    } else {
        LlmError::Transport(error_chain(e))
    };
    Failure {
        error,
        retry_after: None,
    }
}

/// What defines an answer, for its cache key: the body without `max_tokens`. A complete
/// answer does not depend on how far it was allowed to run (truncated ones are never
/// cached), so raising `max_tokens` after truncations re-asks only the truncated ones.
fn answer_defining(body: &Value) -> Value {
    let mut key = body.clone();
    if let Value::Object(map) = &mut key {
        map.remove("max_tokens");
    }
    key
}

/// The HTTP client of `endpoint`: its connect timeout, the API key, and no proxy for a
/// server on this machine.
fn http_client(cfg: &LlmConfig, endpoint: &str) -> Result<Client, LlmError> {
    let base = cfg.base_for(endpoint);
    let url = reqwest::Url::parse(base)
        .map_err(|e| LlmError::Config(format!("the API root {base:?} of {endpoint}: {e}")))?;
    let mut builder = Client::builder()
        .connect_timeout(Duration::from_secs(cfg.connect_timeout_secs))
        .default_headers(auth_headers(cfg)?);
    if is_loopback(&url) {
        // A server on this machine is never behind a proxy; an HTTP(S)_PROXY meant
        // for the outside world would otherwise swallow local requests.
        builder = builder.no_proxy();
    }
    builder
        .build()
        .map_err(|e| LlmError::Config(format!("HTTP client: {}", error_chain(&e))))
}

/// The `Authorization` header when `api_key_env` names a key, marked sensitive so that
/// it never shows in debug output.
fn auth_headers(cfg: &LlmConfig) -> Result<HeaderMap, LlmError> {
    let mut headers = HeaderMap::new();
    if let Some(key) = cfg.api_key()? {
        let mut value = HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| {
            LlmError::Config(format!(
                "the value of {} is not a valid HTTP header value",
                cfg.api_key_env.trim()
            ))
        })?;
        value.set_sensitive(true);
        headers.insert(AUTHORIZATION, value);
    }
    Ok(headers)
}

fn is_loopback(url: &reqwest::Url) -> bool {
    match url.host_str() {
        Some("localhost") => true,
        Some(host) => host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    }
}

/// `Retry-After` in seconds (the HTTP-date form is rare from API servers and ignored:
/// the jittered backoff applies instead).
fn retry_after(resp: &Response) -> Option<Duration> {
    let secs: f64 = resp
        .headers()
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

/// The wait before retry number `retry` (0-based): the server's `Retry-After` when it
/// gave one, else full jitter, uniform in [0, min(max, base · 2^retry)] (spreads the
/// retries of many workers apart). Both capped at `backoff_max_ms`.
pub(crate) fn backoff(cfg: &LlmConfig, retry: u32, retry_after: Option<Duration>) -> Duration {
    let max = cfg.backoff_max_ms;
    if let Some(wait) = retry_after {
        return wait.min(Duration::from_millis(max));
    }
    let ceiling = cfg
        .backoff_base_ms
        .saturating_mul(1u64 << retry.min(40))
        .min(max);
    Duration::from_millis(rand::thread_rng().gen_range(0..=ceiling))
}

/// An error and its causes on one line (reqwest's own message omits the cause).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
