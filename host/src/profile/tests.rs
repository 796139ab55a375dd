//! Profiles and embeddings against the scripted loopback server (llm/testserver.rs).

use std::path::Path;

use serde_json::{json, Value};

use super::*;
use crate::augment::Prompt;
use crate::config::Config;
use crate::llm::testserver::{Recorded, Reply, TestServer};
use crate::llm::LlmConfig;

const ITEMS: &str = "0\tToy Story (1995)\tAnimation|Children's\t1\n\
                     1\tHeat (1995)\tAction|Crime\t6\n\
                     2\tCasino (1995)\tDrama\t16\n\
                     3\tSecret Title (2000)\tMystery\t99\n";

/// Item 3 is only in valid/test; user 2's test item 1 is in user 1's train.
fn dataset() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
    write("items.tsv", ITEMS);
    write("train.tsv", "0\t2\n0\t0\n1\t1\n1\t0\n2\t2\n");
    write("valid.tsv", "0\t3\n1\t2\n2\t0\n");
    write("test.tsv", "0\t1\n1\t3\n2\t1\n");
    dir
}

/// Fast retries so that failure tests take milliseconds.
fn config(server: &TestServer, cache: &Path) -> Config {
    let llm = LlmConfig {
        base_url: server.base_url(),
        chat_model: "chat-m".into(),
        embedding_model: "embed-m".into(),
        timeout_secs: 5,
        max_retries: 3,
        backoff_base_ms: 1,
        backoff_max_ms: 5,
        cache_dir: cache.to_path_buf(),
        ..LlmConfig::default()
    };
    Config {
        llm,
        ..Config::default()
    }
}

fn chat(content: &str, finish: &str) -> String {
    json!({
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                     "finish_reason": finish}]
    })
    .to_string()
}

/// The item title of an item prompt; `None` for a user prompt.
fn item_title(req: &Recorded) -> Option<String> {
    let text = req.last_message();
    let line = text.lines().find(|l| l.starts_with("Title: "))?;
    Some(line["Title: ".len()..].to_string())
}

/// The titles shown in a user prompt (its JSON lines).
fn user_titles(req: &Recorded) -> Vec<String> {
    req.last_message()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["title"].as_str().map(str::to_string))
        .collect()
}

/// A well-behaved model: items are "fans of <title>" (with a line break to flatten), users
/// "likes <titles>".
fn healthy(req: &Recorded) -> Reply {
    let summary = match item_title(req) {
        Some(t) => format!("fans of\n{t}"),
        None => format!("likes {}", user_titles(req).join(" + ")),
    };
    let answer = json!({"summarization": summary, "reasoning": "because"}).to_string();
    Reply::json(200, chat(&format!("```json\n{answer}\n```"), "stop"))
}

/// Garbage for "Heat", a cut answer for "Casino", healthy otherwise.
fn flaky(req: &Recorded) -> Reply {
    match item_title(req).as_deref() {
        Some("Heat (1995)") => Reply::json(200, chat("I'd rather not say.", "stop")),
        Some("Casino (1995)") => Reply::json(200, chat(r#"{"summarization": "fans of"#, "length")),
        _ => healthy(req),
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn items_are_profiled_from_the_metadata_file() {
    let data = dataset();
    let cache = tempfile::tempdir().unwrap();
    let server = TestServer::start(healthy);
    let cfg = config(&server, cache.path());
    let report = profile_items(data.path(), &cfg).unwrap();
    assert!(report.written && report.missing.is_empty());
    assert_eq!((report.total, report.llm.calls), (4, 4));
    assert_eq!(
        read(&data.path().join("item_profiles.tsv")),
        "0\tfans of Toy Story (1995)\n1\tfans of Heat (1995)\n\
         2\tfans of Casino (1995)\n3\tfans of Secret Title (2000)\n"
    );
    let reqs = server.requests();
    let toy = reqs
        .iter()
        .find(|r| item_title(r).as_deref() == Some("Toy Story (1995)"))
        .unwrap();
    let body = toy.json();
    assert_eq!(body["messages"][0]["role"], "system");
    assert!(
        toy.last_message()
            .contains("Description: Animation|Children's; 1"),
        "every field after the title is description: {}",
        toy.last_message()
    );
    assert!(report.to_string().contains("4 of 4"), "{report}");

    // A rerun is answered from the cache.
    let again = profile_items(data.path(), &cfg).unwrap();
    assert_eq!((again.llm.calls, again.llm.cache_hits), (0, 4));

    // profile.item_columns = [2]: the genres only, not the id column after them.
    std::fs::remove_file(data.path().join("item_profiles.tsv")).unwrap();
    let mut genres = cfg.clone();
    genres.profile.item_columns = vec![2];
    profile_items(data.path(), &genres).unwrap();
    let reqs = server.requests();
    let toy = reqs[reqs.len() - 4..]
        .iter()
        .find(|r| item_title(r).as_deref() == Some("Toy Story (1995)"))
        .unwrap();
    assert!(
        toy.last_message()
            .contains("Description: Animation|Children's\n")
            || toy
                .last_message()
                .ends_with("Description: Animation|Children's"),
        "{}",
        toy.last_message()
    );
}

#[test]
fn missing_answers_write_nothing_and_a_rerun_asks_only_for_them() {
    let data = dataset();
    let cache = tempfile::tempdir().unwrap();
    let out = data.path().join("item_profiles.tsv");

    let bad = TestServer::start(flaky);
    let report = profile_items(data.path(), &config(&bad, cache.path())).unwrap();
    let ids: Vec<u32> = report.missing.iter().map(|m| m.0).collect();
    assert_eq!(ids, vec![1, 2]);
    assert!(report.missing[0].1.contains("no JSON object"), "{report}");
    assert!(report.missing[1].1.contains("max_tokens"), "{report}");
    assert!(!report.written && !out.exists());
    // At temperature 0 neither a refused answer nor a cut one is asked twice.
    assert_eq!(bad.count(), 2 + 1 + 1);
    let msg = report.incomplete().unwrap().to_string();
    assert!(
        msg.contains("2 of 4 item profiles are missing")
            && msg.contains("items 1, 2")
            && msg.contains("not written")
            && msg.contains("only the missing ones"),
        "{msg}"
    );
    // Through run_profile the step fails, and users are not attempted.
    let e = run_profile(data.path(), &config(&bad, cache.path()), What::Both, |_| {}).unwrap_err();
    assert!(
        matches!(e, ProfileError::Incomplete { missing: 2, .. }),
        "{e}"
    );
    assert!(!data.path().join("user_profiles.tsv").exists());

    // The same cache, a healthy server: only the two missing items are asked.
    let good = TestServer::start(healthy);
    let report = profile_items(data.path(), &config(&good, cache.path())).unwrap();
    assert!(report.written);
    let asked: Vec<String> = good.requests().iter().filter_map(item_title).collect();
    assert_eq!(asked.len(), 2);
    assert!(asked.contains(&"Heat (1995)".to_string()));
    assert!(asked.contains(&"Casino (1995)".to_string()));
    assert_eq!(report.llm.cache_hits, 2);

    // The result equals one clean run.
    let clean = dataset();
    let clean_cache = tempfile::tempdir().unwrap();
    profile_items(clean.path(), &config(&good, clean_cache.path())).unwrap();
    assert_eq!(read(&out), read(&clean.path().join("item_profiles.tsv")));
}

#[test]
fn users_are_profiled_from_train_items_only() {
    let data = dataset();
    let cache = tempfile::tempdir().unwrap();
    let server = TestServer::start(healthy);
    let mut cfg = config(&server, cache.path());

    let e = profile_users(data.path(), &cfg).unwrap_err().to_string();
    assert!(e.contains("--what items"), "{e}");

    let mut reports = Vec::new();
    run_profile(data.path(), &cfg, What::Both, |r| reports.push(r.clone())).unwrap();
    assert_eq!(reports.len(), 2);
    assert_eq!((reports[0].kind, reports[1].kind), ("item", "user"));
    let users: Vec<Recorded> = server
        .requests()
        .into_iter()
        .filter(|r| item_title(r).is_none())
        .collect();
    assert_eq!(users.len(), 3);
    for r in &users {
        let body = &r.body;
        assert!(
            !body.contains("Secret Title"),
            "a valid/test-only item: {body}"
        );
    }
    // Ascending item id; the item profiles are in the prompt.
    let shown: Vec<Vec<String>> = users.iter().map(user_titles).collect();
    assert!(shown.contains(&vec!["Toy Story (1995)".into(), "Casino (1995)".into()]));
    assert!(shown.contains(&vec!["Toy Story (1995)".into(), "Heat (1995)".into()]));
    assert!(shown.contains(&vec!["Casino (1995)".into()]));
    assert!(users
        .iter()
        .any(|r| r.last_message().contains("fans of Heat (1995)")));
    assert_eq!(
        read(&data.path().join("user_profiles.tsv")),
        "0\tlikes Toy Story (1995) + Casino (1995)\n\
         1\tlikes Toy Story (1995) + Heat (1995)\n\
         2\tlikes Casino (1995)\n"
    );

    // At most max_user_items, lowest ids first; into out_dir.
    let out = tempfile::tempdir().unwrap();
    std::fs::copy(
        data.path().join("item_profiles.tsv"),
        out.path().join("item_profiles.tsv"),
    )
    .unwrap();
    cfg.profile.max_user_items = 1;
    cfg.profile.out_dir = out.path().to_path_buf();
    profile_users(data.path(), &cfg).unwrap();
    let text = read(&out.path().join("user_profiles.tsv"));
    assert!(text.starts_with("0\tlikes Toy Story (1995)\n"), "{text}");
}

#[test]
fn users_need_train_items_with_metadata() {
    let data = dataset();
    let cache = tempfile::tempdir().unwrap();
    let server = TestServer::start(healthy);
    let cfg = config(&server, cache.path());
    profile_items(data.path(), &cfg).unwrap();
    std::fs::write(data.path().join("train.tsv"), "0\t0\n2\t1\n").unwrap();
    let e = profile_users(data.path(), &cfg).unwrap_err().to_string();
    assert!(
        e.contains("users 1") && e.contains("no train interactions"),
        "{e}"
    );
    std::fs::write(data.path().join("train.tsv"), "0\t0\n1\t7\n").unwrap();
    let e = profile_users(data.path(), &cfg).unwrap_err().to_string();
    assert!(e.contains("item 7") && e.contains("items.tsv"), "{e}");
}

#[test]
fn a_dead_server_stops_the_run_and_writes_nothing() {
    let data = dataset();
    let cache = tempfile::tempdir().unwrap();
    let server = TestServer::start(|_| Reply::json(400, r#"{"error": "no such model"}"#));
    let mut cfg = config(&server, cache.path());
    cfg.llm.concurrency = 1;
    let e = profile_items(data.path(), &cfg).unwrap_err().to_string();
    assert!(e.contains("item 0") && e.contains("rerun to resume"), "{e}");
    assert_eq!(server.count(), 1, "the other items are not sent");
    assert!(!data.path().join("item_profiles.tsv").exists());
}

#[test]
fn answers_are_json_with_a_summarization() {
    let ok = |s: &str| parse_summary(s).unwrap();
    assert_eq!(
        ok(r#"{"summarization": "Fans of\n\tnoir.", "reasoning": "x"}"#),
        "Fans of noir."
    );
    assert_eq!(
        ok("<think>{maybe}</think> Sure: {\"summarization\": \"a\"} hope it helps {"),
        "a"
    );
    for (garbage, why) in [
        ("no json here", "no JSON object"),
        (r#"{"reasoning": "x"}"#, "non-empty"),
        (r#"{"summarization": "  "}"#, "non-empty"),
        (r#"{"summarization": ["a"]}"#, "non-empty"),
        (r#"{"summarization": "cut"#, "no JSON object"),
    ] {
        let e = parse_summary(garbage).unwrap_err();
        assert!(e.contains(why), "{garbage}: {e}");
    }
}

#[test]
fn prompts_render_their_placeholders_once() {
    let p = Prompt::parse_with(DEFAULT_ITEM_PROMPT, &["title", "description"]).unwrap();
    let m = p.render_with(&[("title", "Heat {description}"), ("description", "Crime")]);
    assert_eq!(m.len(), 2);
    assert!(m[1]
        .content
        .contains("Title: Heat {description}\nDescription: Crime"));
    assert!(
        m[1].content.contains(r#"{"summarization": "#),
        "JSON braces stay"
    );
    let e = Prompt::parse_with("sys\n---\nabout {title}", &["title", "description"]).unwrap_err();
    assert!(e.contains("{description}"), "{e}");
    Prompt::parse_with(DEFAULT_USER_PROMPT, &["items"]).unwrap();
}

#[test]
fn metadata_and_text_files_errors_name_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t.tsv");
    std::fs::write(&p, "1\tB\n\n0\tA\t\tx\ty\n").unwrap();
    let items = read_items(&p, &[]).unwrap();
    assert_eq!(items[0].title, "A");
    assert_eq!(items[0].description, "x; y");
    assert_eq!(items[1].description, "");
    // Chosen columns, in the order given; a column a line lacks is no text.
    let items = read_items(&p, &[4, 3, 9]).unwrap();
    assert_eq!(items[0].description, "y; x");
    assert_eq!(items[1].description, "");
    for (body, want) in [
        ("0\tA\nx\tB\n", ":2: `x` is not an id"),
        ("0 A\n", ":1: expected `id<TAB>text`"),
        ("0\tA\n0\tB\n", ":2: id 0 appears twice (first on line 1)"),
        (
            "0\tA\n3\tB\n",
            "2 of the ids 0..4 have no line (first: 1, 2)",
        ),
        ("0\t\tgenre\n", "item 0 has an empty title"),
    ] {
        std::fs::write(&p, body).unwrap();
        let e = read_items(&p, &[]).unwrap_err().to_string();
        assert!(e.contains(want), "{e}");
    }
    std::fs::write(&p, "0\ta\n1\t \n2\tc\n").unwrap();
    let e = read_text_table(&p).unwrap_err().to_string();
    assert!(e.contains("ids 1"), "{e}");
}

/// Embeddings of "text <i>": [i, 10 i, 1]; "bad" texts get 2 dimensions; "zero" texts all
/// zeros, "flat" texts [7, 7, 7].
fn embedder(req: &Recorded) -> Reply {
    let inputs = req.json()["input"].as_array().cloned().unwrap_or_default();
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(index, t)| {
            let t = t.as_str().unwrap_or("");
            let i: f64 = t
                .rsplit(' ')
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(-1.0);
            let v = if t.starts_with("bad") {
                json!([i, i + 0.5])
            } else if t.starts_with("zero") {
                json!([0.0, 0.0, 0.0])
            } else if t.starts_with("flat") {
                json!([7.0, 7.0, 7.0])
            } else {
                json!([i, 10.0 * i, 1.0])
            };
            json!({"object": "embedding", "index": index, "embedding": v})
        })
        .collect();
    Reply::json(200, json!({"object": "list", "data": data}).to_string())
}

fn write_texts(dir: &Path, name: &str, n: usize, prefix: &str) {
    let text: String = (0..n).map(|i| format!("{i}\t{prefix} {i}\n")).collect();
    std::fs::write(dir.join(name), text).unwrap();
}

#[test]
fn embeddings_go_in_id_order_batches_into_npy() {
    let data = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    write_texts(data.path(), "item_profiles.tsv", 5, "text");
    write_texts(data.path(), "user_profiles.tsv", 3, "user");
    let server = TestServer::start(embedder);
    let mut cfg = config(&server, cache.path());
    cfg.embed.batch_size = 2;
    cfg.llm.concurrency = 3;
    let mut reports = Vec::new();
    run_embed(data.path(), &cfg, What::Both, |r| reports.push(r.clone())).unwrap();
    // ceil(5 / 2) + ceil(3 / 2) requests.
    assert_eq!(server.count(), 3 + 2);
    let mut inputs: Vec<Value> = server
        .requests()
        .iter()
        .map(|r| r.json()["input"].clone())
        .collect();
    inputs.sort_by_key(|v| v.to_string());
    assert!(inputs.contains(&json!(["text 0", "text 1"])));
    assert!(inputs.contains(&json!(["text 2", "text 3"])));
    assert!(inputs.contains(&json!(["text 4"])));
    assert_eq!(reports[0].kind, "item");
    assert_eq!(
        (reports[0].rows, reports[0].dim, reports[0].batches),
        (5, 3, 3)
    );

    for (name, n) in [("item_profiles.npy", 5), ("user_profiles.npy", 3)] {
        let a: ndarray::Array2<f32> = ndarray_npy::read_npy(data.path().join(name)).unwrap();
        assert_eq!(a.dim(), (n, 3));
        for (i, row) in a.rows().into_iter().enumerate() {
            let i = i as f32;
            assert_eq!(row.to_vec(), vec![i, 10.0 * i, 1.0], "{name} row {i}");
        }
    }
    // What [data.profiles] reads.
    let (_, dim) = crate::data::read_profile_table(
        &data.path().join("user_profiles.npy"),
        "data.profiles.users",
        "user",
        3,
    )
    .unwrap();
    assert_eq!(dim, 3);
}

#[test]
fn a_wrong_dimension_is_an_error_and_nothing_is_written() {
    let data = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let mut text: String = (0..4).map(|i| format!("{i}\ttext {i}\n")).collect();
    text.push_str("4\tbad 4\n");
    std::fs::write(data.path().join("item_profiles.tsv"), text).unwrap();
    let server = TestServer::start(embedder);
    let mut cfg = config(&server, cache.path());
    cfg.embed.batch_size = 2;
    let e = run_embed(data.path(), &cfg, What::Items, |_| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains("dimension 2 for item ids 4..5 but 3"), "{e}");
    assert!(!data.path().join("item_profiles.npy").exists());

    // Users and items from different models.
    write_texts(data.path(), "item_profiles.tsv", 2, "text");
    write_texts(data.path(), "user_profiles.tsv", 2, "bad");
    let e = run_embed(data.path(), &cfg, What::Both, |_| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains("same embedding model"), "{e}");
    assert!(!data.path().join("item_profiles.npy").exists());
}

#[test]
fn degenerate_embeddings_are_refused_naming_the_ids() {
    let data = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let text = "0\ttext 0\n1\tzero 1\n2\ttext 2\n3\tflat 3\n4\ttext 4\n";
    std::fs::write(data.path().join("item_profiles.tsv"), text).unwrap();
    let server = TestServer::start(embedder);
    let mut cfg = config(&server, cache.path());
    cfg.embed.batch_size = 2;
    let e = run_embed(data.path(), &cfg, What::Items, |_| {})
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("2 item text(s): ids 1 (all zeros), 3 (constant)"),
        "{e}"
    );
    assert!(!data.path().join("item_profiles.npy").exists());
    assert_eq!(
        super::embed::degenerate(&[1.0, f32::NAN]),
        Some("not finite")
    );
    assert_eq!(
        super::embed::degenerate(&[3.0]),
        None,
        "one value is a direction"
    );
}

#[test]
fn a_missing_text_is_named_before_any_request() {
    let data = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    std::fs::write(data.path().join("item_profiles.tsv"), "0\ta\n1\tb\n3\td\n").unwrap();
    write_texts(data.path(), "user_profiles.tsv", 2, "text");
    let server = TestServer::start(embedder);
    let cfg = config(&server, cache.path());
    let e = run_embed(data.path(), &cfg, What::Both, |_| {})
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("item_profiles.tsv") && e.contains("0..4 have no line (first: 2)"),
        "{e}"
    );
    assert_eq!(server.count(), 0);

    let e = run_embed(data.path(), &Config::default(), What::Users, |_| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains("llm.embedding_model"), "{e}");
}

#[test]
fn config_sections_are_validated() {
    type Edit = fn(&mut Config);
    let edits: [(Edit, &str); 4] = [
        (|c| c.embed.batch_size = 0, "embed.batch_size"),
        (|c| c.embed.batch_size = 5000, "embed.batch_size"),
        (|c| c.profile.max_user_items = 0, "profile.max_user_items"),
        (|c| c.profile.items_file = "".into(), "profile.items_file"),
    ];
    for (edit, key) in edits {
        // Validated directly: `load` reads the process environment, which other tests set.
        let mut c = Config::default();
        c.data.path = "x".into();
        edit(&mut c);
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains(key), "{key}: {e}");
    }
    assert!("all".parse::<What>().is_err());
}

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn any_profile_answer_parses_or_errs(
            content in prop_oneof![
                any::<String>(),
                "\\PC{0,10}\\{\"summarization\": \\PC{0,20}\\}\\PC{0,10}",
            ],
        ) {
            if let Ok(s) = parse_summary(&content) {
                prop_assert!(!s.is_empty() && !s.contains('\n'));
            }
        }

        #[test]
        fn valid_profile_answers_round_trip(
            summary in "\\PC*[a-z]\\PC*",
            reasoning in any::<String>(),
            prose in "[^{}]{0,20}",
        ) {
            let object = json!({"summarization": summary, "reasoning": reasoning});
            let content = format!("{prose}\n```json\n{object}\n```");
            let want = summary.split_whitespace().collect::<Vec<_>>().join(" ");
            prop_assert_eq!(parse_summary(&content), Ok(want));
        }
    }
}
