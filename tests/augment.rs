//! `promax augment` end to end: the sparsity level shift against the published Amazon-Book
//! augmented set (for every source), the dense-retrieval pipeline on ML-100k, the random,
//! popular and cf sources, the held-out evaluation, augmentation named in a run's config
//! (built once, cached, reused), and the input errors.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::Output;

mod common;
use common::{fails, ok, promax, repo, shared_data as shared, text};

fn err(o: &Output) -> String {
    assert!(!o.status.success(), "expected a failure");
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn pairs(path: &Path) -> HashSet<(u32, u32)> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .filter_map(|l| {
            let mut it = l.split('\t');
            Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
        })
        .collect()
}

fn per_user(p: &HashSet<(u32, u32)>) -> HashMap<u32, u32> {
    let mut c = HashMap::new();
    for &(u, _) in p {
        *c.entry(u).or_insert(0) += 1;
    }
    c
}

fn budgets(path: &Path) -> HashMap<u32, u32> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("user\tbudget"));
    lines
        .map(|l| {
            let (u, b) = l.split_once('\t').unwrap();
            (u.parse().unwrap(), b.parse().unwrap())
        })
        .collect()
}

/// The rule, from train counts alone, gives exactly the published number of added items for
/// at least 96% of the users the published set lifted (docs/methods.md: 7,625 of 7,892).
#[test]
fn budget_rule_reproduces_the_published_amazon_lift() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("budgets.tsv");
    let dir = shared("amazon");
    let msg = ok(&promax(&[
        "augment",
        dir.to_str().unwrap(),
        "--budgets-only",
        out.to_str().unwrap(),
    ]));
    assert!(msg.contains("[5.0, 7.0, 11.0]"), "{msg}");
    let b = budgets(&out);
    assert_eq!(b.len(), 11_000);
    let train = per_user(&pairs(&dir.join("train.tsv")));
    let aug = per_user(&pairs(&dir.join("augmented.tsv")));
    let lifted: Vec<u32> = aug
        .iter()
        .filter(|(u, &n)| n > train[u])
        .map(|(&u, _)| u)
        .collect();
    let exact = lifted.iter().filter(|u| aug[u] - train[u] == b[u]).count();
    assert_eq!(lifted.len(), 7_892);
    let share = exact as f64 / lifted.len() as f64;
    assert!(share >= 0.96, "{exact} of {} users: {share}", lifted.len());

    // Every source adds under the same rule: the random and popular sets (which need no
    // profiles) give each lifted user the published number of added items as often.
    let train_pairs = pairs(&dir.join("train.tsv"));
    for source in ["random", "popular"] {
        let out = tmp.path().join(format!("{source}.tsv"));
        let msg = ok(&promax(&[
            "augment",
            dir.to_str().unwrap(),
            "--source",
            source,
            "--out",
            out.to_str().unwrap(),
        ]));
        assert!(msg.contains(&format!("source: {source}")), "{msg}");
        let got = pairs(&out);
        assert!(got.is_superset(&train_pairs));
        let added = per_user(&got.difference(&train_pairs).copied().collect());
        let n = |u: &u32| added.get(u).copied().unwrap_or(0);
        assert!(
            b.iter().all(|(u, &want)| n(u) == want),
            "{source}: budgets exactly"
        );
        let exact = lifted.iter().filter(|u| aug[u] - train[u] == n(u)).count();
        let share = exact as f64 / lifted.len() as f64;
        assert!(share >= 0.96, "{source}: {exact} of {} users", lifted.len());
    }
}

/// A small dataset folder: user u has 3 + (7u mod 18) train items, then one valid and one
/// test item, all from the sequence (13u + 17j) mod 80 (distinct for j < 80).
fn small_dataset(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let (mut train, mut valid, mut test) = (String::new(), String::new(), String::new());
    for u in 0..120u32 {
        let n = 3 + (7 * u % 18);
        let item = |j: u32| (13 * u + 17 * j) % 80;
        for j in 0..n {
            train.push_str(&format!("{u}\t{}\n", item(j)));
        }
        valid.push_str(&format!("{u}\t{}\n", item(n)));
        test.push_str(&format!("{u}\t{}\n", item(n + 1)));
    }
    for (name, body) in [
        ("train.tsv", train),
        ("valid.tsv", valid),
        ("test.tsv", test),
    ] {
        std::fs::write(dir.join(name), body).unwrap();
    }
}

/// `promax augment DIR ARGS...`, which must succeed; returns stdout.
fn augment_ok(dir: &Path, args: &[&str]) -> String {
    ok(&promax(
        &[&["augment", dir.to_str().unwrap()], args].concat(),
    ))
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Each user's added items follow the budgets `--budgets-only` writes, none in train.
fn assert_budgets(dir: &Path, set: &Path, tmp: &Path) {
    let b_file = tmp.join("budgets.tsv");
    if !b_file.exists() {
        augment_ok(dir, &["--budgets-only", b_file.to_str().unwrap()]);
    }
    let (train, aug) = (pairs(&dir.join("train.tsv")), pairs(set));
    assert!(aug.is_superset(&train));
    let added = per_user(&aug.difference(&train).copied().collect());
    for (u, want) in budgets(&b_file) {
        assert_eq!(added.get(&u).copied().unwrap_or(0), want, "user {u}");
    }
}

#[test]
fn random_and_popular_need_no_profiles_and_random_is_seeded() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    small_dataset(&dir);
    let out = |name: &str| tmp.path().join(name);
    // Profile files that do not exist: these sources must not try to read them.
    let no_profiles = [
        "--set",
        "data.profiles.users=missing.npy",
        "--set",
        "data.profiles.items=missing.npy",
    ];
    let run = |name: &str, extra: &[&str]| {
        let o = out(name);
        augment_ok(
            &dir,
            &[&["--out", o.to_str().unwrap()], &no_profiles[..], extra].concat(),
        );
        std::fs::read(&o).unwrap()
    };
    let a = run("a.tsv", &["--source", "random"]);
    assert_eq!(
        run("b.tsv", &["--source", "random"]),
        a,
        "same seed, same set"
    );
    let c = run("c.tsv", &["--source", "random", "--set", "augment.seed=3"]);
    assert_ne!(c, a, "another seed, another set");
    // The config key does what the flag does, and the flag wins over it.
    assert_eq!(run("d.tsv", &["--set", "augment.source=random"]), a);
    let p = run(
        "p.tsv",
        &["--set", "augment.source=random", "--source", "popular"],
    );
    assert_ne!(p, a);
    for name in ["a.tsv", "c.tsv", "p.tsv"] {
        assert_budgets(&dir, &out(name), tmp.path());
    }
    let report = |name: &str| json(&out(&format!("{name}.report.json")));
    assert_eq!(report("a.tsv")["source"]["name"], "random");
    assert_eq!(
        report("a.tsv")["source"]["seed"],
        2025,
        "train.seed by default"
    );
    assert_eq!(report("c.tsv")["source"]["seed"], 3);
    assert_eq!(report("p.tsv")["source"]["name"], "popular");
    assert_eq!(report("p.tsv")["short_pairs"], 0);
    assert!(report("a.tsv").get("evaluation").is_none());

    // --evaluate after a build: printed, and in the report under its own key.
    let e = out("e.tsv");
    let msg = augment_ok(
        &dir,
        &[
            "--source",
            "popular",
            "--evaluate",
            "--out",
            e.to_str().unwrap(),
        ],
    );
    assert!(msg.contains("reads the held-out splits"), "{msg}");
    let ev = &report("e.tsv")["evaluation"];
    assert_eq!(ev["added_pairs"], report("e.tsv")["added_pairs"]);
    // --evaluate FILE: an existing set, nothing built; its report gets the key.
    let msg = augment_ok(&dir, &["--evaluate", out("a.tsv").to_str().unwrap()]);
    assert!(
        msg.contains("reads the held-out splits") && msg.contains("in valid"),
        "{msg}"
    );
    let ev = &report("a.tsv")["evaluation"];
    assert_eq!(ev["added_pairs"], report("a.tsv")["added_pairs"]);
    let (hits, added) = (
        ev["in_valid"].as_u64().unwrap(),
        ev["added_pairs"].as_f64().unwrap(),
    );
    assert_eq!(ev["share_valid"].as_f64().unwrap(), hits as f64 / added);
}

/// A config training LightGCN + ProMax's S2DR for 2 epochs on `data`, its augmented view
/// named by `augmented`.
fn s2dr_config(dir: &Path, data: &str, augmented: &str) -> std::path::PathBuf {
    let c = repo().join("configs");
    let p = |s: &str| c.join(s).display().to_string();
    let body = format!(
        "extends = [{:?}, {:?}, {:?}]\n{data}\n[plugins.promax]\nsdr = false\n\
         augmented = {augmented:?}\n[train]\nmax_epochs = 2\nthreads = 1\n[eval]\nevery = 1\n",
        p("base.toml"),
        p("models/lightgcn.toml"),
        p("models/promax.toml"),
    );
    let path = dir.join("s2dr.toml");
    std::fs::write(&path, body).unwrap();
    path
}

/// A [`small_dataset`] at `tmp/name` and an [`s2dr_config`] training on it.
fn folder_run(tmp: &Path, name: &str, augmented: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let data = tmp.join(name);
    small_dataset(&data);
    let toml = format!(
        "[data]\nroot = \"\"\npath = {:?}",
        data.display().to_string()
    );
    (data.clone(), s2dr_config(tmp, &toml, augmented))
}

/// `promax train config --out dir/out --set …`.
fn train_output(config: &Path, dir: &Path, out: &str, sets: &[&str]) -> Output {
    let run = dir.join(out);
    let mut args = vec![
        "train",
        config.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
    ];
    for s in sets {
        args.extend(["--set", s]);
    }
    promax(&args)
}

/// Trains `config` into `dir/out` with `sets`; returns stderr (the log).
fn train(config: &Path, dir: &Path, out: &str, sets: &[&str]) -> String {
    let o = train_output(config, dir, out, sets);
    ok(&o);
    text(&o).1
}

fn cache_files(data: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = match std::fs::read_dir(data.join("augmented")) {
        Ok(rd) => rd.map(|e| e.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    };
    v.retain(|p| p.extension().is_some_and(|e| e == "tsv"));
    v.sort();
    v
}

#[test]
fn augmentation_named_in_config_is_built_once_cached_and_reused() {
    use std::os::unix::fs::MetadataExt;
    let tmp = tempfile::tempdir().unwrap();
    let (data, cfg) = folder_run(tmp.path(), "data", "source:random");

    let log = train(&cfg, tmp.path(), "r1", &[]);
    let files = cache_files(&data);
    assert_eq!(files.len(), 1, "{files:?}");
    let set = &files[0];
    assert!(
        log.contains("built") && log.contains(&set.display().to_string()),
        "{log}"
    );
    let name = set.file_name().unwrap().to_str().unwrap();
    assert!(
        name.starts_with("random-") && name.len() == "random-".len() + 12 + 4,
        "{name}"
    );
    assert_budgets(&data, set, tmp.path());
    let report_path = std::path::PathBuf::from(format!("{}.report.json", set.display()));
    let report = json(&report_path);
    assert_eq!(
        report["source"]["seed"], 2025,
        "train.seed without augment.seed"
    );
    let key = report["cache"]["key"].as_str().unwrap().to_string();
    assert!(name.contains(&key));
    let (bytes, inode) = (std::fs::read(set).unwrap(), set.metadata().unwrap().ino());

    // A second run reuses it: the same file, not rewritten.
    let log = train(&cfg, tmp.path(), "r2", &[]);
    assert!(log.contains("reused"), "{log}");
    assert_eq!(set.metadata().unwrap().ino(), inode, "not rewritten");
    assert_eq!(std::fs::read(set).unwrap(), bytes);

    // A tampered report does not vouch for the set: it is rebuilt (same bytes) and replaced.
    let mut bad = report.clone();
    bad["cache"]["key"] = "000000000000".into();
    std::fs::write(&report_path, bad.to_string()).unwrap();
    let log = train(&cfg, tmp.path(), "r3", &[]);
    assert!(
        log.contains("rebuilding") && log.contains("000000000000"),
        "{log}"
    );
    assert_eq!(std::fs::read(set).unwrap(), bytes);
    assert_eq!(json(&report_path)["cache"]["key"], key.as_str());
    // So is a tampered set.
    std::fs::write(set, "0\t1\n").unwrap();
    let log = train(&cfg, tmp.path(), "r4", &[]);
    assert!(log.contains("do not hash"), "{log}");
    assert_eq!(std::fs::read(set).unwrap(), bytes);

    // Another seed is another set: augment.seed, or the run's train.seed without it.
    train(&cfg, tmp.path(), "r5", &["augment.seed=5"]);
    train(&cfg, tmp.path(), "r6", &["train.seed=7"]);
    assert_eq!(cache_files(&data).len(), 3);

    // cf through the config: the first run's own embeddings.
    let r1 = tmp.path().join("r1");
    let log = train(
        &cfg,
        tmp.path(),
        "r7",
        &[
            "plugins.promax.augmented=source:cf",
            &format!("augment.from_run={}", r1.display()),
        ],
    );
    assert!(log.contains("source:cf: built"), "{log}");
    let cf: Vec<_> = cache_files(&data)
        .into_iter()
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with("cf-"))
        .collect();
    assert_eq!(cf.len(), 1);
    assert_budgets(&data, &cf[0], tmp.path());

    // An unknown source names the key and the allowed values.
    let e = fails(&train_output(
        &cfg,
        tmp.path(),
        "bad",
        &["plugins.promax.augmented=source:rand"],
    ));
    assert!(
        e.contains("plugins.promax.augmented")
            && e.contains("\"source:random\"")
            && e.contains("\"source:cf\"")
            && e.contains("did you mean"),
        "{e}"
    );

    // Where the cache cannot be written, the error names the path.
    let (blocked, cfg) = folder_run(tmp.path(), "blocked", "source:popular");
    std::fs::write(blocked.join("augmented"), "a file, not a folder").unwrap();
    let e = fails(&train_output(&cfg, tmp.path(), "blocked-run", &[]));
    assert!(
        e.contains("cannot write the augmented-set cache") && e.contains("blocked"),
        "{e}"
    );
}

#[test]
fn a_synthetic_run_builds_its_named_augmentation_in_memory() {
    let tmp = tempfile::tempdir().unwrap();
    let data = "[data]\nkind = \"synthetic\"\nname = \"synthetic\"";
    let cfg = s2dr_config(tmp.path(), data, "source:popular");
    let log = train(&cfg, tmp.path(), "run", &[]);
    assert!(log.contains("source:popular: built in memory"), "{log}");
    let m = json(&tmp.path().join("run/metrics.json"));
    assert!(m["test"]["recall@20"].as_f64().unwrap() > 0.0);
}

#[test]
fn cf_augments_from_a_trained_run_and_names_a_bad_one() {
    let tmp = tempfile::tempdir().unwrap();
    // S2DR between the train split and itself: a run with nothing to build.
    let (data, cfg) = folder_run(tmp.path(), "data", "train.tsv");
    train(&cfg, tmp.path(), "run", &[]);
    let run = tmp.path().join("run");
    let out = tmp.path().join("cf.tsv");
    let msg = augment_ok(
        &data,
        &[
            "--source",
            "cf",
            "--from-run",
            run.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert!(msg.contains("source: cf"), "{msg}");
    assert_budgets(&data, &out, tmp.path());
    let report = json(&tmp.path().join("cf.tsv.report.json"));
    assert_eq!(report["source"]["from_run"], run.display().to_string());

    let cf_error = |run: Option<&Path>| {
        let mut args = vec!["augment", data.to_str().unwrap(), "--source", "cf"];
        if let Some(r) = run {
            args.extend(["--from-run", r.to_str().unwrap()]);
        }
        fails(&promax(&args))
    };
    let e = cf_error(Some(&tmp.path().join("no-such-run")));
    assert!(
        e.contains("no-such-run") && e.contains("augment.from_run"),
        "{e}"
    );
    let e = cf_error(None);
    assert!(e.contains("augment.from_run"), "{e}");
    std::fs::remove_file(run.join("metrics.json")).unwrap();
    let e = cf_error(Some(&run));
    assert!(
        e.contains("no finished run") && e.contains(run.to_str().unwrap()),
        "{e}"
    );
}

/// Dense fallback on ML-100k: every user below Q3 gets exactly its budget of new items,
/// none of them already in train, and the report says no LLM re-ranked anything.
#[test]
fn ml100k_dense_augmentation_follows_the_rule() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = shared("ml100k");
    let (out, budget_file) = (tmp.path().join("aug.tsv"), tmp.path().join("b.tsv"));
    let cfg = repo().join("configs/experiments/lightgcn-ml100k.toml");
    let args = [
        "augment",
        dir.to_str().unwrap(),
        "--config",
        cfg.to_str().unwrap(),
    ];
    let msg = ok(&promax(
        &[&args[..], &["--out", out.to_str().unwrap()]].concat(),
    ));
    assert!(msg.contains("dense retrieval order"), "{msg}");
    ok(&promax(
        &[
            &args[..],
            &["--budgets-only", budget_file.to_str().unwrap()],
        ]
        .concat(),
    ));
    let (train, aug) = (pairs(&dir.join("train.tsv")), pairs(&out));
    assert!(aug.is_superset(&train));
    let added = per_user(&aug.difference(&train).copied().collect());
    let b = budgets(&budget_file);
    for (u, &want) in &b {
        assert_eq!(added.get(u).copied().unwrap_or(0), want, "user {u}");
    }
    assert!(aug.iter().all(|&(u, i)| u < 943 && i < 1574));
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(tmp.path().join("aug.tsv.report.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(report["added_pairs"], aug.len() - train.len());
    assert_eq!(report["groups"][3]["added"], 0);
    assert!(!tmp.path().join("aug.tsv.tmp").exists());
}

#[test]
fn augment_errors_name_the_problem() {
    let tmp = tempfile::tempdir().unwrap();
    let e = err(&promax(&[
        "augment",
        tmp.path().to_str().unwrap(),
        "--budgets-only",
        "x.tsv",
    ]));
    assert!(e.contains("train.tsv"), "{e}");
    std::fs::write(tmp.path().join("train.tsv"), "0\t1\n1\t0\n").unwrap();
    let e = err(&promax(&["augment", tmp.path().to_str().unwrap()]));
    assert!(e.contains("data.profiles.users"), "{e}");
    let e = err(&promax(&[
        "augment",
        tmp.path().to_str().unwrap(),
        "--set",
        "augment.rerank=best",
    ]));
    assert!(e.contains("augment.rerank"), "{e}");
    let e = err(&promax(&[
        "augment",
        tmp.path().to_str().unwrap(),
        "--set",
        "data.profiles.users=u.npy",
        "--set",
        "data.profiles.items=i.npy",
    ]));
    assert!(e.contains("u.npy"), "{e}");
}

/// `source:train` is the train split itself, nothing added: the same run as naming the
/// train file, and the control where a dataset has no file to name (synthetic data).
#[test]
fn the_train_source_is_the_train_split_itself() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, by_file) = folder_run(tmp.path(), "data", "train.tsv");
    train(&by_file, tmp.path(), "file", &[]);
    let named = format!("plugins.promax.augmented={:?}", "source:train");
    train(&by_file, tmp.path(), "named", &[&named]);
    let test = |run: &str| json(&tmp.path().join(run).join("metrics.json"))["test"].clone();
    assert_eq!(test("file"), test("named"));
    assert!(cache_files(&data).is_empty(), "nothing to cache");

    let synthetic = "[data]\nkind = \"synthetic\"\nname = \"synthetic\"";
    std::fs::create_dir_all(tmp.path().join("syn")).unwrap();
    let cfg = s2dr_config(&tmp.path().join("syn"), synthetic, "source:train");
    train(&cfg, tmp.path(), "syn-run", &[]);
    let typo = "plugins.promax.augmented=\"source:trian\"";
    let e = fails(&train_output(&cfg, tmp.path(), "typo", &[typo]));
    assert!(e.contains("did you mean \"source:train\"?"), "{e}");
}
