//! The client against the scripted loopback server (testserver.rs).

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;

use super::cache::{cache_key, canonical_json};
use super::client::backoff;
use super::testserver::{Recorded, Reply, TestServer};
use super::wire::parse_embeddings;
use super::*;

/// Fast retries so that failure tests take milliseconds.
fn cfg(server: &TestServer, cache: &Path) -> LlmConfig {
    LlmConfig {
        base_url: server.base_url(),
        chat_model: "chat-m".into(),
        embedding_model: "embed-m".into(),
        timeout_secs: 5,
        max_retries: 3,
        backoff_base_ms: 1,
        backoff_max_ms: 5,
        cache_dir: cache.to_path_buf(),
        ..LlmConfig::default()
    }
}

fn chat_body(content: &str, finish: &str) -> String {
    json!({
        "id": "x", "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                     "finish_reason": finish}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
    })
    .to_string()
}

/// A deterministic chat answer derived from the request: "profile of <last message>".
fn echo(req: &Recorded) -> Reply {
    let last = req.last_message();
    Reply::json(200, chat_body(&format!("profile of {last}"), "stop"))
}

fn conversations(n: usize) -> Vec<Vec<ChatMessage>> {
    (0..n)
        .map(|i| {
            vec![
                ChatMessage::system("You write user profiles."),
                ChatMessage::user(format!("user {i}")),
            ]
        })
        .collect()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn chat_returns_content_and_records_usage() {
    let server = TestServer::start(echo);
    let dir = tempfile::tempdir().unwrap();
    let client = LlmClient::new(cfg(&server, dir.path())).unwrap();
    let answer = client.chat(&conversations(1)[0]).unwrap();
    assert_eq!(answer.content, "profile of user 0");
    assert_eq!(answer.finish_reason.as_deref(), Some("stop"));

    let reqs = server.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].path, "/v1/chat/completions");
    let body = reqs[0].json();
    assert_eq!(body["model"], "chat-m");
    assert_eq!(body["temperature"], 0.0);
    assert_eq!(body["max_tokens"], 1024);
    assert_eq!(body["messages"][1]["role"], "user");
    assert_eq!(reqs[0].header("authorization"), None);

    let stats = client.stats();
    assert_eq!(
        (stats.calls, stats.prompt_tokens, stats.completion_tokens),
        (1, 11, 7)
    );
    assert!(stats.to_string().contains("1 calls"), "{stats}");
}

#[test]
fn embeddings_are_reordered_by_index() {
    let body = json!({
        "object": "list",
        "data": [
            {"object": "embedding", "index": 2, "embedding": [2.0, 2.5]},
            {"object": "embedding", "index": 0, "embedding": [0.0, 0.5]},
            {"object": "embedding", "index": 1, "embedding": [1.0, 1.5]}
        ],
        "usage": {"prompt_tokens": 9, "total_tokens": 9}
    });
    let server = TestServer::queue(vec![Reply::json(200, body.to_string())]);
    let dir = tempfile::tempdir().unwrap();
    let client = LlmClient::new(cfg(&server, dir.path())).unwrap();
    let got = client.embed(&strings(&["a", "b", "c"])).unwrap();
    assert_eq!(got, vec![vec![0.0, 0.5], vec![1.0, 1.5], vec![2.0, 2.5]]);
    let reqs = server.requests();
    assert_eq!(reqs[0].path, "/v1/embeddings");
    assert_eq!(reqs[0].json()["input"], json!(["a", "b", "c"]));
    assert_eq!(reqs[0].json()["model"], "embed-m");
    assert_eq!(client.stats().prompt_tokens, 9);
    // No inputs, no request.
    assert!(client.embed(&[]).unwrap().is_empty());
    assert_eq!(server.count(), 1);
}

#[test]
fn rate_limit_honours_retry_after() {
    let server = TestServer::queue(vec![
        Reply::json(429, r#"{"error":"slow down"}"#).header("Retry-After", "0"),
        Reply::json(200, chat_body("ok", "stop")),
    ]);
    let dir = tempfile::tempdir().unwrap();
    // A jittered wait would be up to a minute: finishing fast shows Retry-After won.
    let c = LlmConfig {
        backoff_base_ms: 60_000,
        backoff_max_ms: 60_000,
        ..cfg(&server, dir.path())
    };
    let client = LlmClient::new(c).unwrap();
    let t = Instant::now();
    assert_eq!(client.chat(&conversations(1)[0]).unwrap().content, "ok");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    let stats = client.stats();
    assert_eq!((stats.calls, stats.retries, stats.failures), (2, 1, 0));
}

#[test]
fn server_errors_exhaust_retries() {
    let server = TestServer::queue(vec![Reply::json(500, "boom: model crashed")]);
    let dir = tempfile::tempdir().unwrap();
    let client = LlmClient::new(LlmConfig {
        max_retries: 2,
        ..cfg(&server, dir.path())
    })
    .unwrap();
    let err = client.chat(&conversations(1)[0]).unwrap_err();
    let msg = err.to_string();
    match err {
        LlmError::RetriesExhausted { attempts, last } => {
            assert_eq!(attempts, 3);
            assert!(
                matches!(*last, LlmError::Http { status: 500, ref body } if body.contains("boom"))
            );
        }
        other => panic!("expected RetriesExhausted, got {other:?}"),
    }
    assert!(
        msg.contains("3 attempts") && msg.contains("500") && msg.contains("boom"),
        "{msg}"
    );
    assert_eq!(server.count(), 3);
    let stats = client.stats();
    assert_eq!((stats.calls, stats.retries, stats.failures), (3, 2, 1));
}

#[test]
fn client_errors_are_not_retried() {
    let server = TestServer::queue(vec![Reply::json(400, r#"{"error":"unknown model"}"#)]);
    let dir = tempfile::tempdir().unwrap();
    let client = LlmClient::new(cfg(&server, dir.path())).unwrap();
    let err = client.chat(&conversations(1)[0]).unwrap_err();
    assert!(
        matches!(err, LlmError::Http { status: 400, ref body } if body.contains("unknown model")),
        "{err:?}"
    );
    assert_eq!(server.count(), 1);
}

#[test]
fn hanging_server_times_out() {
    let server = TestServer::start(|_| {
        Reply::json(200, chat_body("late", "stop")).delay(Duration::from_secs(3))
    });
    let dir = tempfile::tempdir().unwrap();
    let client = LlmClient::new(LlmConfig {
        timeout_secs: 1,
        timeout_ms_per_token: 0,
        max_retries: 1,
        ..cfg(&server, dir.path())
    })
    .unwrap();
    let t = Instant::now();
    let err = client.chat(&conversations(1)[0]).unwrap_err();
    assert!(
        matches!(err, LlmError::RetriesExhausted { attempts: 2, ref last } if matches!(**last, LlmError::Timeout { secs: 1 })),
        "{err:?}"
    );
    assert!(
        t.elapsed() < Duration::from_millis(3500),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(server.count(), 2);
}

#[test]
fn malformed_body_is_retried_a_little_and_not_cached() {
    let server = TestServer::queue(vec![Reply::json(200, "<html>gateway</html>")]);
    let dir = tempfile::tempdir().unwrap();
    let client = LlmClient::new(cfg(&server, dir.path())).unwrap();
    let err = client.chat(&conversations(1)[0]).unwrap_err();
    assert!(
        matches!(err, LlmError::Malformed { ref snippet, .. } if snippet.contains("gateway")),
        "{err:?}"
    );
    // max_retries is 3, but malformed answers get MALFORMED_RETRIES.
    assert_eq!(server.count(), 1 + MALFORMED_RETRIES as usize);
    client.chat(&conversations(1)[0]).unwrap_err();
    assert_eq!(server.count(), 2 * (1 + MALFORMED_RETRIES as usize));
}

#[test]
fn malformed_body_once_then_good() {
    let server = TestServer::queue(vec![
        Reply::json(200, r#"{"choices": [{"message": "#),
        Reply::json(200, chat_body("fine", "stop")),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let client = LlmClient::new(cfg(&server, dir.path())).unwrap();
    assert_eq!(client.chat(&conversations(1)[0]).unwrap().content, "fine");
    assert_eq!(client.stats().retries, 1);
}

#[test]
fn truncated_answer_is_its_own_error_and_not_retried() {
    let server = TestServer::queue(vec![Reply::json(200, chat_body("half an ans", "length"))]);
    let dir = tempfile::tempdir().unwrap();
    let client = LlmClient::new(cfg(&server, dir.path())).unwrap();
    let err = client.chat(&conversations(1)[0]).unwrap_err();
    assert!(
        matches!(err, LlmError::Truncated { max_tokens: 1024 }),
        "{err:?}"
    );
    assert_eq!(server.count(), 1);
    // Not cached: asking again asks the server again.
    client.chat(&conversations(1)[0]).unwrap_err();
    assert_eq!(server.count(), 2);
}

#[test]
fn wrong_number_of_embeddings_is_an_error() {
    let body =
        json!({"data": [{"index": 0, "embedding": [1.0]}, {"index": 1, "embedding": [2.0]}]});
    let server = TestServer::queue(vec![Reply::json(200, body.to_string())]);
    let dir = tempfile::tempdir().unwrap();
    let client = LlmClient::new(LlmConfig {
        max_retries: 0,
        ..cfg(&server, dir.path())
    })
    .unwrap();
    let err = client.embed(&strings(&["a", "b", "c"])).unwrap_err();
    assert!(
        err.to_string().contains("2 embeddings for 3 inputs"),
        "{err}"
    );
    assert_eq!(server.count(), 1);
}

#[test]
fn embedding_validation() {
    let check = |data: serde_json::Value, n: usize| {
        let body = json!({ "data": data }).to_string();
        parse_embeddings(&body, n).map(|(v, _)| v)
    };
    let err = |data, n| check(data, n).unwrap_err().to_string();
    assert!(err(
        json!([{"index": 0, "embedding": [1.0, 2.0]}, {"index": 1, "embedding": [1.0]}]),
        2
    )
    .contains("dimension 1, expected 2"));
    assert!(err(
        json!([{"index": 0, "embedding": [1.0]}, {"index": 0, "embedding": [1.0]}]),
        2
    )
    .contains("twice"));
    assert!(err(json!([{"index": 5, "embedding": [1.0]}]), 1).contains("out of range"));
    assert!(err(json!([{"index": 0, "embedding": [1e39]}]), 1).contains("non-finite"));
    assert!(err(json!([{"index": 0, "embedding": []}]), 1).contains("dimension 0"));
    assert!(err(json!([{"embedding": [1.0]}]), 1).contains("index"));
    assert!(parse_embeddings("{\"data\": [{\"index\": 0, \"embedding\": [NaN]}]}", 1).is_err());
    assert_eq!(
        check(json!([{"index": 0, "embedding": [0.25]}]), 1).unwrap(),
        vec![vec![0.25]]
    );
}

#[test]
fn second_client_answers_from_cache() {
    let embed_body = json!({"data": [{"index": 0, "embedding": [0.5, -0.5]}]}).to_string();
    let server = TestServer::start(move |req| {
        if req.path.ends_with("/embeddings") {
            Reply::json(200, embed_body.clone())
        } else {
            echo(req)
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let first = LlmClient::new(cfg(&server, dir.path())).unwrap();
    let chat = first.chat(&conversations(1)[0]).unwrap();
    let emb = first.embed(&strings(&["item 3"])).unwrap();
    assert_eq!(server.count(), 2);

    // The layout promised in the module docs, and no temporary file left behind.
    let body = canonical_json(&server.requests()[1].json());
    let key = cache_key("embeddings", &body);
    let entry = dir.path().join(&key[..2]).join(format!("{key}.json"));
    assert!(entry.is_file(), "{entry:?}");
    let leftovers = std::fs::read_dir(entry.parent().unwrap()).unwrap().count();
    assert_eq!(leftovers, 1);

    let second = LlmClient::new(cfg(&server, dir.path())).unwrap();
    assert_eq!(second.chat(&conversations(1)[0]).unwrap(), chat);
    assert_eq!(second.embed(&strings(&["item 3"])).unwrap(), emb);
    assert_eq!(server.count(), 2);
    let stats = second.stats();
    assert_eq!((stats.calls, stats.cache_hits), (0, 2));
    // A different setting is a different request.
    let hotter = LlmClient::new(LlmConfig {
        temperature: 0.7,
        ..cfg(&server, dir.path())
    })
    .unwrap();
    hotter.chat(&conversations(1)[0]).unwrap();
    assert_eq!(server.count(), 3);
}

#[test]
fn corrupt_cache_entry_is_fetched_again() {
    let server = TestServer::start(echo);
    let dir = tempfile::tempdir().unwrap();
    let client = LlmClient::new(cfg(&server, dir.path())).unwrap();
    let good = client.chat(&conversations(1)[0]).unwrap();
    let mut body = server.requests()[0].json();
    body.as_object_mut().unwrap().remove("max_tokens");
    let key = cache_key("chat/completions", &canonical_json(&body));
    let entry = dir.path().join(&key[..2]).join(format!("{key}.json"));
    std::fs::write(&entry, r#"{"choices": [{"mess"#).unwrap();
    assert_eq!(client.chat(&conversations(1)[0]).unwrap(), good);
    assert_eq!(server.count(), 2);
    // Overwritten with the good body: the next one is a hit.
    assert_eq!(client.chat(&conversations(1)[0]).unwrap(), good);
    assert_eq!(server.count(), 2);
}

#[test]
fn interrupted_run_resumes_with_only_the_missing_calls() {
    let n = 8;
    let convs = conversations(n);
    let odd = |req: &Recorded| {
        req.json()["messages"][1]["content"]
            .as_str()
            .and_then(|s| s.strip_prefix("user "))
            .and_then(|i| i.parse::<usize>().ok())
            .is_some_and(|i| i % 2 == 1)
    };
    // The reference: one uninterrupted run on its own cache.
    let healthy = TestServer::start(echo);
    let ref_dir = tempfile::tempdir().unwrap();
    let reference: Vec<ChatAnswer> = LlmClient::new(cfg(&healthy, ref_dir.path()))
        .unwrap()
        .chat_many(&convs)
        .into_iter()
        .map(Result::unwrap)
        .collect();

    // A run where half the requests fail for good (no retries).
    let dir = tempfile::tempdir().unwrap();
    let flaky = TestServer::start(move |req| {
        if odd(req) {
            Reply::json(503, "down")
        } else {
            echo(req)
        }
    });
    let c = LlmConfig {
        max_retries: 0,
        ..cfg(&flaky, dir.path())
    };
    let first = LlmClient::new(c).unwrap().chat_many(&convs);
    assert_eq!(first.iter().filter(|r| r.is_err()).count(), n / 2);
    for (i, r) in first.iter().enumerate() {
        assert_eq!(r.is_ok(), i % 2 == 0, "item {i}: {r:?}");
    }

    // The rerun sends only the failed half and ends where the reference did.
    let healthy2 = TestServer::start(echo);
    let rerun = LlmClient::new(cfg(&healthy2, dir.path())).unwrap();
    let resumed: Vec<ChatAnswer> = rerun
        .chat_many(&convs)
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(healthy2.count(), n / 2);
    assert!(healthy2.requests().iter().all(odd));
    assert_eq!(rerun.stats().cache_hits, (n / 2) as u64);
    assert_eq!(resumed, reference);
}

#[test]
fn requests_run_concurrently_in_input_order() {
    let server = TestServer::start(|req| echo(req).delay(Duration::from_millis(200)));
    let dir = tempfile::tempdir().unwrap();
    let client = LlmClient::new(LlmConfig {
        concurrency: 4,
        ..cfg(&server, dir.path())
    })
    .unwrap();
    let t = Instant::now();
    let got = client.chat_many(&conversations(8));
    let took = t.elapsed();
    // Serially 8 × 200 ms = 1.6 s; four at a time about 0.4 s.
    assert!(took < Duration::from_millis(1200), "{took:?}");
    for (i, r) in got.iter().enumerate() {
        assert_eq!(r.as_ref().unwrap().content, format!("profile of user {i}"));
    }
    assert_eq!(server.count(), 8);
}

#[test]
fn unset_api_key_variable_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let c = LlmConfig {
        api_key_env: "PROMAX_LLM_TEST_SURELY_UNSET_KEY".into(),
        cache_dir: dir.path().to_path_buf(),
        ..LlmConfig::default()
    };
    let err = LlmClient::new(c).unwrap_err();
    assert!(matches!(err, LlmError::Config(_)), "{err:?}");
    assert!(
        err.to_string().contains("PROMAX_LLM_TEST_SURELY_UNSET_KEY"),
        "{err}"
    );
}

#[test]
fn api_key_is_sent_as_bearer() {
    // A name no other test uses, outside the PROMAX_ prefix (config loading in concurrent
    // tests reads PROMAX_* as config keys); edition 2021: set_var is safe, std serialises
    // env access.
    std::env::set_var("PROMAXTEST_LLM_KEY_SET", "sk-test-123");
    let server = TestServer::start(echo);
    let dir = tempfile::tempdir().unwrap();
    let client = LlmClient::new(LlmConfig {
        api_key_env: "PROMAXTEST_LLM_KEY_SET".into(),
        ..cfg(&server, dir.path())
    })
    .unwrap();
    client.chat(&conversations(1)[0]).unwrap();
    assert_eq!(
        server.requests()[0].header("Authorization"),
        Some("Bearer sk-test-123")
    );
    assert!(!format!("{client:?}").contains("sk-test-123"));
}

#[test]
fn config_defaults_unknown_keys_and_ranges() {
    let c: LlmConfig = toml::from_str("chat_model = \"m\"\nconcurrency = 8").unwrap();
    assert_eq!((c.timeout_secs, c.max_retries, c.concurrency), (60, 5, 8));
    assert_eq!(
        (c.backoff_base_ms, c.backoff_max_ms, c.max_tokens),
        (500, 30_000, 1024)
    );
    let err = toml::from_str::<LlmConfig>("concurency = 8")
        .unwrap_err()
        .to_string();
    assert!(err.contains("concurency"), "{err}");
    let bad = |c: LlmConfig| c.check().unwrap_err().to_string();
    assert!(bad(LlmConfig {
        concurrency: 0,
        ..c.clone()
    })
    .contains("concurrency"));
    assert!(bad(LlmConfig {
        timeout_secs: 0,
        ..c.clone()
    })
    .contains("timeout_secs"));
    assert!(bad(LlmConfig {
        base_url: "localhost:8000".into(),
        ..c.clone()
    })
    .contains("base_url"));
    assert!(bad(LlmConfig {
        temperature: f64::NAN,
        ..c.clone()
    })
    .contains("temperature"));
    assert!(bad(LlmConfig {
        backoff_base_ms: 10,
        backoff_max_ms: 1,
        ..c.clone()
    })
    .contains("backoff"));
    assert_eq!(c.url("embeddings"), "http://localhost:8000/v1/embeddings");
    let slash = LlmConfig {
        base_url: "http://h/v1/".into(),
        ..c
    };
    assert_eq!(slash.url("embeddings"), "http://h/v1/embeddings");
}

#[test]
fn missing_model_is_a_config_error() {
    let server = TestServer::start(echo);
    let dir = tempfile::tempdir().unwrap();
    let client = LlmClient::new(LlmConfig {
        chat_model: String::new(),
        ..cfg(&server, dir.path())
    })
    .unwrap();
    let err = client.chat(&conversations(1)[0]).unwrap_err();
    assert!(err.to_string().contains("chat_model"), "{err}");
    assert_eq!(server.count(), 0);
}

#[test]
fn backoff_is_jittered_and_capped() {
    let c = LlmConfig {
        backoff_base_ms: 100,
        backoff_max_ms: 1000,
        ..LlmConfig::default()
    };
    for retry in 0..50 {
        let ceiling = (100u64 << retry.min(20)).min(1000);
        let wait = backoff(&c, retry, None);
        assert!(
            wait <= Duration::from_millis(ceiling),
            "retry {retry}: {wait:?}"
        );
    }
    let long = Some(Duration::from_secs(3600));
    assert_eq!(backoff(&c, 0, long), Duration::from_millis(1000));
    assert_eq!(backoff(&c, 3, Some(Duration::ZERO)), Duration::ZERO);
}

#[test]
fn cache_keys_ignore_key_order_but_not_endpoint() {
    let a = json!({"model": "m", "input": ["x"], "nested": {"b": 1, "a": [1.5, "é\n"]}});
    let b = json!({"nested": {"a": [1.5, "é\n"], "b": 1}, "input": ["x"], "model": "m"});
    assert_eq!(canonical_json(&a), canonical_json(&b));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&canonical_json(&a)).unwrap(),
        a
    );
    let ka = cache_key("embeddings", &canonical_json(&a));
    assert_eq!(ka, cache_key("embeddings", &canonical_json(&b)));
    assert_ne!(ka, cache_key("chat/completions", &canonical_json(&a)));
    assert_eq!(ka.len(), 64);
}

#[test]
fn map_bounded_keeps_input_order() {
    let items: Vec<u64> = (0..100).collect();
    let out = map_bounded(&items, 7, |&x| {
        std::thread::sleep(Duration::from_micros(100 * (x % 5)));
        x * x
    });
    assert_eq!(out, items.iter().map(|x| x * x).collect::<Vec<_>>());
    assert!(map_bounded(&Vec::<u8>::new(), 4, |&x| x).is_empty());
}

#[test]
fn raising_max_tokens_reasks_only_the_truncated_answers() {
    // User 1's answer needs more than 8 tokens; the others fit.
    let server = TestServer::start(|req| {
        if req.last_message() == "user 1" && req.json()["max_tokens"].as_u64() < Some(64) {
            Reply::json(200, chat_body("{\"summarization\": \"cut", "length"))
        } else {
            echo(req)
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let short = LlmClient::new(LlmConfig {
        max_tokens: 8,
        ..cfg(&server, dir.path())
    })
    .unwrap();
    let first = short.chat_many(&conversations(3));
    assert!(matches!(
        first[1],
        Err(LlmError::Truncated { max_tokens: 8 })
    ));
    assert!(first[0].is_ok() && first[2].is_ok());
    assert_eq!(server.count(), 3);
    let long = LlmClient::new(LlmConfig {
        max_tokens: 64,
        ..cfg(&server, dir.path())
    })
    .unwrap();
    let second = long.chat_many(&conversations(3));
    assert!(second.iter().all(Result::is_ok), "{second:?}");
    assert_eq!(
        server.count(),
        4,
        "only the truncated answer is asked again"
    );
    assert_eq!(server.requests()[3].last_message(), "user 1");
    assert_eq!(long.stats().cache_hits, 2);
}

#[test]
fn a_refused_answer_is_asked_once_at_temperature_zero_and_its_tokens_count() {
    let server = TestServer::start(|_| Reply::json(200, chat_body("I cannot do that.", "stop")));
    let dir = tempfile::tempdir().unwrap();
    let wants_json = |content: &str| {
        if content.contains('{') {
            Ok(())
        } else {
            Err("no JSON object".to_string())
        }
    };
    let client = LlmClient::new(cfg(&server, dir.path())).unwrap();
    let err = client
        .chat_checked(&conversations(1)[0], &wants_json)
        .unwrap_err();
    assert!(
        matches!(err, LlmError::Rejected { ref why, .. } if why == "no JSON object"),
        "{err:?}"
    );
    assert_eq!(server.count(), 1);
    let s = client.stats();
    assert_eq!(
        (s.rejected, s.prompt_tokens, s.completion_tokens),
        (1, 11, 7)
    );
    assert_eq!((s.retries, s.failures), (0, 1));
    // Not cached: a rerun asks again.
    client
        .chat_checked(&conversations(1)[0], &wants_json)
        .unwrap_err();
    assert_eq!(server.count(), 2);
    // Sampling can change the answer: then it is retried like a malformed one.
    let sampling = LlmClient::new(LlmConfig {
        temperature: 0.7,
        ..cfg(&server, dir.path())
    })
    .unwrap();
    sampling
        .chat_checked(&conversations(1)[0], &wants_json)
        .unwrap_err();
    assert_eq!(server.count(), 2 + 1 + MALFORMED_RETRIES as usize);
    assert_eq!(
        sampling.stats().completion_tokens,
        7 * (1 + u64::from(MALFORMED_RETRIES))
    );
}

#[test]
fn structured_output_and_extra_body_reach_the_server_and_the_cache_key() {
    let server = TestServer::start(|_| {
        Reply::json(
            200,
            chat_body(r#"{"summarization": "s", "reasoning": "r"}"#, "stop"),
        )
    });
    let dir = tempfile::tempdir().unwrap();
    let schema = AnswerSchema::strings("profile", &["summarization", "reasoning"], 1000);
    let ok = |_: &str| Ok(());
    let with = |format: &str, extra: serde_json::Value| {
        let c = LlmConfig {
            response_format: format.into(),
            extra_body: extra.as_object().cloned().unwrap_or_default(),
            ..cfg(&server, dir.path())
        };
        LlmClient::new(c).unwrap()
    };
    let client = with("json_schema", json!({"top_k": 5}));
    client
        .chat_structured(&conversations(1)[0], Some(&schema), &ok)
        .unwrap();
    let body = server.requests()[0].json();
    assert_eq!(body["response_format"]["type"], "json_schema");
    assert_eq!(
        body["response_format"]["json_schema"]["schema"],
        schema.schema
    );
    assert_eq!(body["response_format"]["json_schema"]["strict"], false);
    assert_eq!(body["top_k"], 5);
    // Plain chat asks for no format.
    client.chat(&conversations(1)[0]).unwrap();
    assert!(server.requests()[1].json().get("response_format").is_none());
    // Each format is its own cache entry; the same request again is a hit.
    with("json_object", json!({"top_k": 5}))
        .chat_structured(&conversations(1)[0], Some(&schema), &ok)
        .unwrap();
    assert_eq!(
        server.requests()[2].json()["response_format"],
        json!({"type": "json_object"})
    );
    // `none` sends what plain chat sent: the same request, answered from the cache.
    with("none", json!({"top_k": 5}))
        .chat_structured(&conversations(1)[0], Some(&schema), &ok)
        .unwrap();
    assert_eq!(server.count(), 3);
    with("json_schema", json!({"top_k": 5}))
        .chat_structured(&conversations(1)[0], Some(&schema), &ok)
        .unwrap();
    assert_eq!(server.count(), 3);
    // extra_body is part of the key.
    with("json_schema", json!({"top_k": 6}))
        .chat_structured(&conversations(1)[0], Some(&schema), &ok)
        .unwrap();
    assert_eq!(server.count(), 4);
    assert_eq!(server.requests()[3].json()["top_k"], 6);
}

#[test]
fn chat_and_embeddings_can_live_on_two_servers() {
    let chat = TestServer::start(echo);
    let embed = TestServer::start(|_| {
        Reply::json(200, r#"{"data": [{"index": 0, "embedding": [1.0, 2.0]}]}"#)
    });
    let dir = tempfile::tempdir().unwrap();
    let client = LlmClient::new(LlmConfig {
        // Nothing listens here: every request must go to its own server.
        base_url: "http://127.0.0.1:9/v1".into(),
        chat_base_url: chat.base_url(),
        embedding_base_url: embed.base_url(),
        ..cfg(&chat, dir.path())
    })
    .unwrap();
    client.chat(&conversations(1)[0]).unwrap();
    assert_eq!(
        client.embed(&strings(&["a"])).unwrap(),
        vec![vec![1.0, 2.0]]
    );
    assert_eq!((chat.count(), embed.count()), (1, 1));
    assert_eq!(embed.requests()[0].path, "/v1/embeddings");
}

#[test]
fn new_keys_are_checked_and_named() {
    let c = LlmConfig {
        chat_model: "m".into(),
        ..LlmConfig::default()
    };
    let bad = |c: LlmConfig| c.check().unwrap_err().to_string();
    let e = bad(LlmConfig {
        response_format: "json".into(),
        ..c.clone()
    });
    assert!(
        e.contains("response_format") && e.contains("json_schema"),
        "{e}"
    );
    let e = bad(LlmConfig {
        extra_body: json!({"max_tokens": 5}).as_object().cloned().unwrap(),
        ..c.clone()
    });
    assert!(e.contains("extra_body.max_tokens"), "{e}");
    let e = bad(LlmConfig {
        embedding_base_url: "localhost:1".into(),
        ..c.clone()
    });
    assert!(e.contains("embedding_base_url"), "{e}");
    let e = bad(LlmConfig {
        connect_timeout_secs: 0,
        ..c.clone()
    });
    assert!(e.contains("connect_timeout_secs"), "{e}");
    // A chat request's timeout covers its generation; an embedding request's does not.
    let t = LlmConfig {
        timeout_secs: 10,
        timeout_ms_per_token: 50,
        max_tokens: 200,
        ..c
    };
    assert_eq!(t.timeout_for("chat/completions"), Duration::from_secs(20));
    assert_eq!(t.timeout_for("embeddings"), Duration::from_secs(10));
}

#[test]
fn string_schemas_bound_their_fields() {
    let s = AnswerSchema::strings("p", &["b", "a"], 7);
    assert_eq!(
        s.schema,
        json!({
            "type": "object",
            "properties": {
                "a": {"type": "string", "minLength": 1, "maxLength": 7},
                "b": {"type": "string", "minLength": 1, "maxLength": 7},
            },
            "required": ["b", "a"],
            "additionalProperties": false,
        })
    );
}
