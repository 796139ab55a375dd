//! `promax profile` and `promax embed` end to end against a tiny OpenAI-compatible server
//! on 127.0.0.1 (chat: "fans of <title>" / "likes <n> items"; embeddings: [length, 1]),
//! then `promax augment` over the tables they wrote.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::{json, Value};

mod common;
use common::{ok, promax};

/// A server thread answering one request per connection; lives until the test ends.
struct Server {
    base_url: String,
    requests: Arc<AtomicUsize>,
    /// While set, the item "Heat" gets an answer that is no JSON.
    garbage: Arc<AtomicBool>,
}

fn start() -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base_url = format!("http://{}/v1", listener.local_addr().unwrap());
    let requests = Arc::new(AtomicUsize::new(0));
    let garbage = Arc::new(AtomicBool::new(false));
    let (r, g) = (Arc::clone(&requests), Arc::clone(&garbage));
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            r.fetch_add(1, Ordering::SeqCst);
            let garbage = g.load(Ordering::SeqCst);
            std::thread::spawn(move || serve(conn, garbage));
        }
    });
    Server {
        base_url,
        requests,
        garbage,
    }
}

fn serve(conn: TcpStream, garbage: bool) -> std::io::Result<()> {
    let (path, body) = common::read_request(&conn)?;
    let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let answer = if path.ends_with("/embeddings") {
        embeddings(&req)
    } else {
        chat(&req, garbage)
    };
    let mut conn = conn;
    write!(
        conn,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{answer}",
        answer.len()
    )?;
    conn.flush()
}

fn chat(req: &Value, garbage: bool) -> String {
    let prompt = req["messages"]
        .as_array()
        .and_then(|m| m.last())
        .and_then(|m| m["content"].as_str())
        .unwrap_or("");
    let content = match prompt.lines().find_map(|l| l.strip_prefix("Title: ")) {
        Some(t) if garbage && t.starts_with("Heat") => "Sorry, no.".to_string(),
        Some(t) => json!({"summarization": format!("fans of {t}"), "reasoning": "r"}).to_string(),
        None => {
            let n = prompt
                .lines()
                .filter(|l| l.starts_with("{\"title\": "))
                .count();
            let summary = format!("likes {n} items\n(for instance {})", prompt.len() % 7);
            json!({"summarization": summary, "reasoning": "r"}).to_string()
        }
    };
    json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                        "finish_reason": "stop"}]})
    .to_string()
}

fn embeddings(req: &Value) -> String {
    let data: Vec<Value> = req["input"]
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(index, t)| {
            let len = t.as_str().unwrap_or("").chars().count() as f64;
            json!({"index": index, "embedding": [len, 1.0, index as f64]})
        })
        .collect();
    json!({"object": "list", "data": data}).to_string()
}

/// 4 items (item 3 only in valid/test), 3 users.
fn dataset(dir: &Path) {
    let write = |name: &str, text: &str| std::fs::write(dir.join(name), text).unwrap();
    write(
        "items.tsv",
        "0\tToy Story (1995)\tAnimation|Comedy\n1\tHeat (1995)\tAction|Crime\n\
         2\tCasino (1995)\tDrama\n3\tSecret Title (2000)\tMystery\n",
    );
    write("train.tsv", "0\t0\n0\t2\n1\t0\n1\t1\n2\t2\n2\t1\n");
    write("valid.tsv", "0\t3\n1\t2\n2\t0\n");
    write("test.tsv", "0\t1\n1\t3\n2\t3\n");
}

#[test]
fn profile_then_embed_then_augment() {
    let server = start();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    dataset(&data);
    let url = format!("llm.base_url={}", server.base_url);
    let cache = format!("llm.cache_dir={}", tmp.path().join("cache").display());
    let dir = data.to_str().unwrap();
    let llm = [
        "--set",
        &url,
        "--set",
        &cache,
        "--set",
        "llm.chat_model=m",
        "--set",
        "llm.embedding_model=e",
        "--set",
        "llm.backoff_base_ms=1",
        "--set",
        "llm.backoff_max_ms=2",
    ];

    // One unusable item answer: the run fails, names it, and writes no profile file.
    server.garbage.store(true, Ordering::SeqCst);
    let o = promax(&[&["profile", dir][..], &llm].concat());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("1 of 4 item profiles are missing") && err.contains("items 1"),
        "{err}"
    );
    assert!(!data.join("item_profiles.tsv").exists());
    assert!(!data.join("user_profiles.tsv").exists());

    // A healthy server: only the missing item is asked again, then the users.
    server.garbage.store(false, Ordering::SeqCst);
    let before = server.requests.load(Ordering::SeqCst);
    let out = ok(&promax(
        &[&["profile", dir, "--what", "both"][..], &llm].concat(),
    ));
    assert_eq!(server.requests.load(Ordering::SeqCst) - before, 1 + 3);
    assert!(
        out.contains("item profiles: 4 of 4") && out.contains("user profiles: 3 of 3"),
        "{out}"
    );
    assert!(out.contains("llm: "), "{out}");
    let items = std::fs::read_to_string(data.join("item_profiles.tsv")).unwrap();
    assert_eq!(
        items,
        "0\tfans of Toy Story (1995)\n1\tfans of Heat (1995)\n2\tfans of Casino (1995)\n\
         3\tfans of Secret Title (2000)\n"
    );
    let users = std::fs::read_to_string(data.join("user_profiles.tsv")).unwrap();
    let lines: Vec<&str> = users.lines().collect();
    assert_eq!(lines.len(), 3);
    for (u, l) in lines.iter().enumerate() {
        assert!(
            l.starts_with(&format!("{u}\tlikes 2 items (for instance ")),
            "{l}"
        );
    }

    // Embeddings, 2 texts per request.
    let before = server.requests.load(Ordering::SeqCst);
    let out = ok(&promax(
        &[&["embed", dir, "--set", "embed.batch_size=2"][..], &llm].concat(),
    ));
    assert_eq!(server.requests.load(Ordering::SeqCst) - before, 2 + 2);
    assert!(out.contains("item profiles: 4 × 3"), "{out}");
    let items: ndarray::Array2<f32> =
        ndarray_npy::read_npy(data.join("item_profiles.npy")).unwrap();
    assert_eq!(items.dim(), (4, 3));
    let first = "fans of Toy Story (1995)".len() as f32;
    assert_eq!(items.row(0).to_vec(), vec![first, 1.0, 0.0]);
    assert_eq!(items.row(3)[2], 1.0, "index within its batch");
    let users: ndarray::Array2<f32> =
        ndarray_npy::read_npy(data.join("user_profiles.npy")).unwrap();
    assert_eq!(users.dim(), (3, 3));

    // The tables are what [data.profiles] and augment read.
    let out_file = tmp.path().join("augmented.tsv");
    ok(&promax(&[
        "augment",
        dir,
        "--set",
        "data.profiles.users=user_profiles.npy",
        "--set",
        "data.profiles.items=item_profiles.npy",
        "--set",
        "augment.reduce_dim=0",
        "--set",
        "augment.rerank=dense",
        "--out",
        out_file.to_str().unwrap(),
    ]));
    assert!(out_file.is_file());
}

#[test]
fn embed_names_a_missing_text() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("item_profiles.tsv"), "0\ta\n2\tc\n").unwrap();
    std::fs::write(tmp.path().join("user_profiles.tsv"), "0\ta\n").unwrap();
    let o = promax(&[
        "embed",
        tmp.path().to_str().unwrap(),
        "--set",
        "llm.embedding_model=e",
        "--set",
        "llm.base_url=http://127.0.0.1:9/v1",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("have no line (first: 1)"), "{err}");
}
