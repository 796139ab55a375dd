//! RecBole atomic files end to end: a RecBole copy of ML-100k with string ids (written
//! here from the shared TSVs) trains to exactly the metrics of the TSV original, and
//! `promax recommend` names its users and items by their tokens; a small `.inter` file is
//! read, split by ratio and trained, its id mapping saved beside the run.

use std::fmt::Write as _;
use std::path::Path;

mod common;
use common::{fails, ok, promax, repo, shared_data};

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The pairs of a `user<TAB>item` TSV as `(item, user)` token lines, a rating column
/// between them: another column order than the TSV's.
fn inter_copy(tsv: &Path) -> String {
    let mut out = String::from("item_id:token\trating:float\tuser_id:token\n");
    for line in read(tsv).lines().filter(|l| !l.is_empty()) {
        let (u, i) = line.split_once('\t').unwrap();
        writeln!(out, "i{i}\t4\tu{u}").unwrap();
    }
    out
}

fn entity_file(field: &str, prefix: &str, n: usize) -> String {
    let mut out = format!("{field}:token\tnote:token_seq\n");
    for id in 0..n {
        writeln!(out, "{prefix}{id}\tx y").unwrap();
    }
    out
}

/// `metrics.json`'s held-out metrics and epochs: what must agree between the two runs.
fn results(run: &Path) -> serde_json::Value {
    let m: serde_json::Value = serde_json::from_str(&read(&run.join("metrics.json"))).unwrap();
    serde_json::json!([m["valid"], m["test"], m["best_epoch"], m["epochs_run"]])
}

#[test]
fn a_recbole_copy_of_ml100k_trains_to_the_tsv_metrics() {
    let src = shared_data("ml100k");
    if !src.is_dir() {
        eprintln!("skipped: {} not present", src.display());
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let copy = tmp.path().join("ml");
    std::fs::create_dir(&copy).unwrap();
    for split in ["train", "valid", "test"] {
        let text = inter_copy(&src.join(format!("{split}.tsv")));
        std::fs::write(copy.join(format!("ml.{split}.inter")), text).unwrap();
    }
    std::fs::write(copy.join("ml.user"), entity_file("user_id", "u", 943)).unwrap();
    std::fs::write(copy.join("ml.item"), entity_file("item_id", "i", 1574)).unwrap();

    let cfg = repo().join("configs/experiments/lightgcn-ml100k.toml");
    let common_sets = [
        "train.max_epochs=3",
        "eval.every=1",
        "train.threads=1",
        "data.profiles.users=\"\"",
        "data.profiles.items=\"\"",
    ];
    let train = |out: &Path, extra: &[String]| {
        let mut args = vec![
            "train".to_string(),
            cfg.display().to_string(),
            "--out".into(),
            out.display().to_string(),
        ];
        for s in common_sets
            .iter()
            .map(|s| s.to_string())
            .chain(extra.iter().cloned())
        {
            args.extend(["--set".into(), s]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ok(&promax(&args));
    };
    let (tsv_run, rb_run) = (tmp.path().join("tsv"), tmp.path().join("rb"));
    train(&tsv_run, &[]);
    let rb_sets = [
        "data.kind=\"recbole\"".to_string(),
        format!("data.path={:?}", copy.display().to_string()),
        "data.recbole.split=\"presplit\"".into(),
    ];
    train(&rb_run, &rb_sets);
    assert_eq!(results(&tsv_run), results(&rb_run));

    // The mapping beside the run, and recommendations named by tokens: the TSV run's
    // items for the same user, prefixed.
    let users = read(&rb_run.join("user_ids.tsv"));
    assert!(users.starts_with("user\ttoken\n0\tu0\n1\tu1\n"), "{users}");
    let rec = |run: &Path, user: &str| {
        let run = run.display().to_string();
        ok(&promax(&["recommend", &run, "--users", user, "--k", "5"]))
    };
    let tsv_lines = rec(&tsv_run, "7");
    let want: String = tsv_lines
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            if f[0] == "user" {
                format!("{l}\n")
            } else {
                format!("u{}\t{}\ti{}\t{}\n", f[0], f[1], f[2], f[3])
            }
        })
        .collect();
    assert_eq!(rec(&rb_run, "u7"), want);
    let err = fails(&promax(&[
        "recommend",
        &rb_run.display().to_string(),
        "--users",
        "7",
    ]));
    assert!(
        err.contains("user \"7\" is not in the run's dataset"),
        "{err}"
    );
}

#[test]
fn a_small_inter_file_is_split_by_ratio_and_trained() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("toy");
    std::fs::create_dir(&data).unwrap();
    let mut inter = String::from("user_id:token\titem_id:token\trating:float\ttimestamp:float\n");
    for u in 0..40 {
        for k in 0..12 {
            let item = (u * 7 + k * 3) % 50;
            writeln!(inter, "user-{u}\titem-{item}\t{}\t{}", 1 + k % 5, 1000 + k).unwrap();
        }
    }
    std::fs::write(data.join("toy.inter"), inter).unwrap();
    let cfg = tmp.path().join("toy.toml");
    std::fs::write(
        &cfg,
        format!(
            "extends = [{:?}, {:?}]\n[data]\nkind = \"recbole\"\npath = {:?}\n\
             [data.recbole]\nmin_rating = 2.0\norder = \"time\"\n\
             [train]\nmax_epochs = 2\nthreads = 1\n[eval]\nevery = 1\n",
            repo().join("configs/base.toml").display().to_string(),
            repo().join("configs/models/mf.toml").display().to_string(),
            data.display().to_string(),
        ),
    )
    .unwrap();
    let out = tmp.path().join("run");
    let args = [
        "train",
        cfg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    let o = promax(&args);
    let (_, log) = common::text(&o);
    ok(&o);
    assert!(out.join("metrics.json").is_file(), "{log}");
    let items = read(&out.join("item_ids.tsv"));
    assert_eq!(items.lines().count(), 1 + 50, "{items}");
    // Ratings 2..5 kept: 9 of each user's 12 (three are rated 1), cut 7 / 1 / 1 by time.
    assert!(log.contains("kept 360 of 480 interactions"), "{log}");
    assert!(
        log.contains("(40 users, 50 items, 280 train pairs)"),
        "{log}"
    );
    // A key typo in the section is named with the nearest key.
    let err = fails(&promax(&[
        "train",
        cfg.to_str().unwrap(),
        "--set",
        "data.recbole.min_ratin=3",
    ]));
    assert!(err.contains("min_rating"), "{err}");
}
