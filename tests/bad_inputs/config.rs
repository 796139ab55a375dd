//! Bad-input cases: config files, `--set`, ranges of every number, LLM settings and answers, augment outputs.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::{fails, ok, promax_in, repo};

/// A config that extends the quick start with one epoch, plus `extra` TOML.
fn quick(dir: &Path, name: &str, extra: &str) -> PathBuf {
    let quick = repo().join("configs/experiments/quickstart.toml");
    let p = dir.join(name);
    let body = format!("extends = {:?}\n{extra}\n", quick.display().to_string());
    std::fs::write(&p, body).unwrap();
    p
}

/// `promax train` of the one-epoch quick start in a scratch folder, with `--set`s.
fn train(sets: &[&str]) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = quick(tmp.path(), "quick.toml", "[train]\nmax_epochs = 1\n");
    train_file(tmp.path(), &cfg, sets)
}

fn train_file(dir: &Path, cfg: &Path, sets: &[&str]) -> String {
    let mut args = vec!["train", cfg.to_str().unwrap(), "--out", "run"];
    for s in sets {
        args.extend(["--set", s]);
    }
    fails(&promax_in(dir, &args))
}

/// The message names the key in backquotes and every fragment in `also`.
fn names(msg: &str, key: &str, also: &[&str]) {
    assert!(msg.contains(&format!("`{key}`")), "no `{key}` in:\n{msg}");
    for a in also {
        assert!(msg.contains(a), "no {a:?} in:\n{msg}");
    }
}

/// Out-of-range values given with `--set`: each error names the key, the `--set` layer
/// and the allowed range or rule.
fn out_of_range(set: &str, key: &str, rule: &str) {
    let msg = train(&[set]);
    names(&msg, key, &[&format!("--set {set}"), rule]);
}

#[test]
fn unknown_key_names_file_and_suggestion() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = quick(
        tmp.path(),
        "typo.toml",
        "[train]\nmax_epochs = 1\nsed = 3\n",
    );
    let msg = train_file(tmp.path(), &cfg, &[]);
    names(
        &msg,
        "train.sed",
        &["typo.toml", "did you mean `train.seed`"],
    );
}

#[test]
fn wrong_type_names_key_and_file() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = quick(
        tmp.path(),
        "typed.toml",
        "[train]\nmax_epochs = 1\nlr = \"fast\"\n",
    );
    let msg = train_file(tmp.path(), &cfg, &[]);
    names(&msg, "train.lr", &["typed.toml", "fast"]);
}

#[test]
fn max_epochs_zero() {
    out_of_range("train.max_epochs=0", "train.max_epochs", "between 1 and");
}

#[test]
fn patience_zero() {
    out_of_range("eval.patience=0", "eval.patience", "between 1 and");
}

#[test]
fn threads_huge() {
    out_of_range(
        "train.threads=100000",
        "train.threads",
        "between 0 and 1024",
    );
}

#[test]
fn batch_size_zero_and_huge() {
    out_of_range("train.batch_size=0", "train.batch_size", "between 1 and");
    out_of_range(
        "train.batch_size=1000000000000",
        "train.batch_size",
        "between 1 and",
    );
}

#[test]
fn ks_huge_is_an_error_not_an_abort() {
    out_of_range(
        "eval.ks=[20, 1000000000000]",
        "eval.ks",
        "K = 1000000000000 is too large",
    );
}

#[test]
fn lr_nan_and_negative() {
    out_of_range("train.lr=nan", "train.lr", "positive finite");
    out_of_range("train.lr=-0.01", "train.lr", "positive finite");
}

#[test]
fn reg_weight_negative() {
    out_of_range("train.reg_weight=-1e-6", "train.reg_weight", ">= 0");
}

#[test]
fn metric_not_in_ks() {
    out_of_range("eval.metric=recall@50", "eval.metric", "K one of eval.ks");
}

#[test]
fn user_tile_huge() {
    out_of_range(
        "eval.user_tile=100000000",
        "eval.user_tile",
        "between 1 and",
    );
}

#[test]
fn synthetic_sizes_are_bounded() {
    out_of_range(
        "data.synthetic.n_users=100000000000",
        "data.synthetic.n_users",
        "between 1 and",
    );
    // Each size within its bound, their product (the profile tables) not.
    let msg = train(&[
        "data.synthetic.n_users=5000000",
        "data.synthetic.profile_dim=64",
    ]);
    names(
        &msg,
        "data.synthetic.profile_dim",
        &["--set data.synthetic.profile_dim=64", "profile values"],
    );
}

#[test]
fn target_offset_huge() {
    out_of_range(
        "augment.target_offset=4000000000",
        "augment.target_offset",
        "between 0 and",
    );
}

#[test]
fn knn_zero_and_max_candidates_huge() {
    out_of_range("augment.knn=0", "augment.knn", "between 1 and");
    out_of_range(
        "augment.max_candidates=99999999",
        "augment.max_candidates",
        "between 1 and",
    );
}

#[test]
fn max_unusable_share_outside_a_share() {
    out_of_range(
        "augment.max_unusable_share=1.5",
        "augment.max_unusable_share",
        "share between 0 and 1",
    );
}

#[test]
fn temperature_five() {
    out_of_range("llm.temperature=5", "llm.temperature", "between 0 and 2");
}

#[test]
fn timeouts_and_llm_counts() {
    out_of_range("llm.timeout_secs=0", "llm.timeout_secs", "between 1 and");
    out_of_range("llm.max_tokens=0", "llm.max_tokens", "between 1 and");
    out_of_range(
        "llm.concurrency=1000000",
        "llm.concurrency",
        "between 1 and",
    );
}

/// An `[llm]` error blames the layer that set that key, not the last layer that set any
/// `llm.*` key.
#[test]
fn llm_errors_name_the_layer_that_set_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let base = quick(
        tmp.path(),
        "base.toml",
        "[train]\nmax_epochs = 1\n[llm]\ntimeout_secs = 0\n",
    );
    std::fs::write(
        tmp.path().join("experiment.toml"),
        "extends = \"base.toml\"\n[llm]\nchat_model = \"m\"\n",
    )
    .unwrap();
    let msg = train_file(tmp.path(), &tmp.path().join("experiment.toml"), &[]);
    names(&msg, "llm.timeout_secs", &["base.toml"]);
    assert!(!msg.contains("experiment.toml"), "{msg}");

    // And the other way round: the experiment sets the bad key over a base that set
    // another llm key.
    std::fs::write(
        &base,
        format!(
            "extends = {:?}\n[train]\nmax_epochs = 1\n[llm]\nchat_model = \"m\"\n",
            repo()
                .join("configs/experiments/quickstart.toml")
                .display()
                .to_string()
        ),
    )
    .unwrap();
    std::fs::write(
        tmp.path().join("experiment.toml"),
        "extends = \"base.toml\"\n[llm]\ntimeout_secs = 0\n",
    )
    .unwrap();
    let msg = train_file(tmp.path(), &tmp.path().join("experiment.toml"), &[]);
    names(
        &msg,
        "llm.timeout_secs",
        &["experiment.toml", "between 1 and"],
    );
}

#[test]
fn plugin_dimension_huge_is_an_error_before_allocation() {
    let msg = train(&["plugins.lightgcn.dim=10000000000"]);
    assert!(
        msg.contains("`lightgcn`") && msg.contains("table") && msg.contains("[plugins.lightgcn]"),
        "{msg}"
    );
}

#[test]
fn plugin_tables_beyond_the_machines_memory_are_an_error_before_allocation() {
    // 1000 nodes × 2·10^6 = 2·10^9 parameters: under the per-plugin cap, but 37 GiB of
    // training copies; skipped on a machine that has that much.
    let have_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            let line = t.lines().find(|l| l.starts_with("MemTotal:"))?.to_owned();
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(0, |kib| kib >> 20);
    if have_gib == 0 || have_gib >= 37 {
        return;
    }
    let msg = train(&["plugins.lightgcn.dim=2000000"]);
    assert!(
        msg.contains("`lightgcn`") && msg.contains("GiB") && msg.contains("[plugins.lightgcn]"),
        "{msg}"
    );
}

#[test]
fn unknown_plugin_key() {
    let msg = train(&["plugins.lightgcn.dimm=3"]);
    assert!(
        msg.contains("dimm") && msg.contains("[plugins.lightgcn]"),
        "{msg}"
    );
}

#[test]
fn set_without_equals_and_set_unknown_key() {
    let msg = train(&["train.seed"]);
    assert!(
        msg.contains("--set train.seed") && msg.contains("key=value"),
        "{msg}"
    );
    let msg = train(&["train.sed=3"]);
    names(&msg, "train.sed", &["--set train.sed=3", "`train.seed`"]);
}

#[test]
fn env_value_of_the_wrong_type() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = quick(tmp.path(), "quick.toml", "[train]\nmax_epochs = 1\n");
    let o = Command::new(env!("CARGO_BIN_EXE_promax"))
        .args(["train", cfg.to_str().unwrap(), "--out", "run"])
        .current_dir(tmp.path())
        .env_remove("PROMAX_PLUGIN_PATH")
        .env("PROMAX_TRAIN__SEED", "abc")
        .output()
        .unwrap();
    let msg = fails(&o);
    names(&msg, "train.seed", &["PROMAX_TRAIN__SEED", "abc"]);
    assert!(!tmp.path().join("run").exists());
}

#[test]
fn bench_sizes_huge() {
    let tmp = tempfile::tempdir().unwrap();
    let bench = |args: &[&str]| fails(&promax_in(tmp.path(), &[&["bench", "sdr"], args].concat()));
    let msg = bench(&["--users", "100000000000"]);
    assert!(msg.contains("--users 100000000000"), "{msg}");
    let msg = bench(&["--users", "1000000", "--items", "1000000"]);
    assert!(
        msg.contains("--items") && msg.contains("users × items"),
        "{msg}"
    );
    let msg = bench(&["--dim", "100000"]);
    assert!(msg.contains("--dim 100000"), "{msg}");
    let msg = bench(&["--reps", "0"]);
    assert!(msg.contains("--reps 0"), "{msg}");
}

/// A dataset folder with train, valid and test splits, and written profiles for the
/// re-ranking prompt.
fn dataset(dir: &Path) {
    let mut train = String::new();
    for u in 0..12u32 {
        for k in 0..(2 + u % 5) {
            train.push_str(&format!("{u}\t{}\n", (u * 3 + k * 5) % 30));
        }
    }
    let write = |name: &str, text: &str| std::fs::write(dir.join(name), text).unwrap();
    write("train.tsv", &train);
    write("valid.tsv", "0\t29\n");
    write("test.tsv", "1\t28\n");
    let texts =
        |n: u32, what: &str| -> String { (0..n).map(|i| format!("{i}\t{what} {i}\n")).collect() };
    write("user_profiles.tsv", &texts(12, "user"));
    write("item_profiles.tsv", &texts(30, "item"));
}

/// `promax augment DIR` with random profiles and the dense order, plus `args`.
fn augment(dir: &Path, args: &[&str]) -> Output {
    let base = [
        "augment",
        ".",
        "--set",
        "data.profiles.random_dim=8",
        "--set",
        "augment.reduce_dim=0",
        "--set",
        "augment.rerank=dense",
    ];
    promax_in(dir, &[&base[..], args].concat())
}

#[test]
fn augment_never_overwrites_without_overwrite() {
    let tmp = tempfile::tempdir().unwrap();
    dataset(tmp.path());
    let out = tmp.path().join("augmented.tsv");
    std::fs::write(&out, "keep me\n").unwrap();
    let msg = fails(&augment(tmp.path(), &[]));
    assert!(
        msg.contains("augmented.tsv") && msg.contains("--overwrite"),
        "{msg}"
    );
    assert_eq!(std::fs::read(&out).unwrap(), b"keep me\n");
    assert!(!tmp.path().join("augmented.tsv.report.json").exists());

    // The report beside it is protected too.
    std::fs::remove_file(&out).unwrap();
    let report = tmp.path().join("augmented.tsv.report.json");
    std::fs::write(&report, "{}").unwrap();
    let msg = fails(&augment(tmp.path(), &[]));
    assert!(msg.contains("augmented.tsv.report.json"), "{msg}");
    assert_eq!(std::fs::read(&report).unwrap(), b"{}");
    assert!(!out.exists());

    // --overwrite replaces both.
    ok(&augment(tmp.path(), &["--overwrite"]));
    assert!(std::fs::read_to_string(&out).unwrap().starts_with("0\t"));

    // --budgets-only likewise.
    let budgets = tmp.path().join("budgets.tsv");
    std::fs::write(&budgets, "old").unwrap();
    let msg = fails(&augment(tmp.path(), &["--budgets-only", "budgets.tsv"]));
    assert!(
        msg.contains("budgets.tsv") && msg.contains("--overwrite"),
        "{msg}"
    );
    assert_eq!(std::fs::read(&budgets).unwrap(), b"old");
}

#[test]
fn augment_never_writes_over_a_split_even_with_overwrite() {
    let tmp = tempfile::tempdir().unwrap();
    dataset(tmp.path());
    std::fs::create_dir(tmp.path().join("sub")).unwrap();
    let before: Vec<Vec<u8>> = ["train.tsv", "valid.tsv", "test.tsv"]
        .iter()
        .map(|s| std::fs::read(tmp.path().join(s)).unwrap())
        .collect();
    for out in ["train.tsv", "./sub/../test.tsv", "valid.tsv"] {
        let msg = fails(&augment(tmp.path(), &["--out", out, "--overwrite"]));
        assert!(msg.contains(out) && msg.contains("another --out"), "{msg}");
    }
    let msg = fails(&augment(
        tmp.path(),
        &["--budgets-only", "sub/../train.tsv", "--overwrite"],
    ));
    assert!(msg.contains("train.tsv"), "{msg}");
    let after: Vec<Vec<u8>> = ["train.tsv", "valid.tsv", "test.tsv"]
        .iter()
        .map(|s| std::fs::read(tmp.path().join(s)).unwrap())
        .collect();
    assert_eq!(before, after);
}

/// A loopback chat server whose every answer is prose without an id list.
fn garbage_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || answer_garbage(conn));
        }
    });
    url
}

fn answer_garbage(conn: TcpStream) -> std::io::Result<()> {
    crate::common::read_request(&conn)?;
    let answer = serde_json::json!({"choices": [{"index": 0,
        "message": {"role": "assistant", "content": "I would pick the nice ones."},
        "finish_reason": "stop"}]})
    .to_string();
    let mut conn = conn;
    write!(
        conn,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{answer}",
        answer.len()
    )?;
    conn.flush()
}

#[test]
fn augment_fails_when_llm_answers_are_mostly_unusable() {
    let tmp = tempfile::tempdir().unwrap();
    dataset(tmp.path());
    let url = format!("llm.base_url={}", garbage_server());
    let cache = format!("llm.cache_dir={}", tmp.path().join("cache").display());
    let o = augment(
        tmp.path(),
        &[
            "--set",
            "augment.rerank=llm",
            "--set",
            "llm.chat_model=m",
            "--set",
            &url,
            "--set",
            &cache,
            "--set",
            "llm.max_retries=0",
        ],
    );
    let msg = fails(&o);
    assert!(
        msg.contains("augment.max_unusable_share = 0.2")
            && msg.contains("answers were unusable")
            && msg.contains("share 1.000"),
        "{msg}"
    );
    assert!(!tmp.path().join("augmented.tsv").exists());
}
