//! End-to-end tests of the `promax` command line on the built-in synthetic dataset and on
//! small hand-written dataset folders.

use std::path::{Path, PathBuf};

mod common;
use common::{fails, promax, repo, text};

/// A config that extends the quick start with fewer epochs.
fn quick_config(dir: &Path, extra: &str) -> PathBuf {
    let quick = repo().join("configs/experiments/quickstart.toml");
    let p = dir.join("quick.toml");
    let body = format!(
        "extends = {:?}\n[train]\nmax_epochs = 6\n{extra}\n",
        quick.display().to_string()
    );
    std::fs::write(&p, body).unwrap();
    p
}

fn metrics(run: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(run.join("metrics.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Trains the quick config into `dir/run` and returns the run folder.
fn train_quick(dir: &Path) -> PathBuf {
    let cfg = quick_config(dir, "");
    let run = dir.join("run");
    let o = promax(&[
        "train",
        cfg.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
    ]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "stdout:\n{out}\nstderr:\n{err}");
    run
}

#[test]
fn train_writes_a_complete_run_folder_and_eval_reproduces_it() {
    let tmp = tempfile::tempdir().unwrap();
    let run = train_quick(tmp.path());
    for f in [
        "config.toml",
        "metrics.json",
        "epochs.csv",
        "model.safetensors",
    ] {
        assert!(run.join(f).is_file(), "missing {f}");
    }
    let m = metrics(&run);
    for key in [
        "dataset",
        "backbone",
        "augmenters",
        "seed",
        "best_epoch",
        "epochs_run",
        "seconds_per_epoch",
        "eval_seconds",
    ] {
        assert!(m.get(key).is_some(), "metrics.json lacks {key}: {m}");
    }
    let r20 = m["test"]["recall@20"].as_f64().unwrap();
    assert!(r20 > 0.0 && r20 <= 1.0, "{m}");
    assert!(m["valid"]["ndcg@5"].as_f64().is_some());
    assert_eq!(m["epochs_run"].as_u64(), Some(6));

    let csv = std::fs::read_to_string(run.join("epochs.csv")).unwrap();
    let header = csv.lines().next().unwrap();
    for col in ["epoch", "bpr", "reg", "valid_recall@20", "seconds"] {
        assert!(header.split(',').any(|c| c == col), "{header}");
    }
    assert_eq!(csv.lines().count(), 7, "{csv}");

    let o = promax(&["eval", run.to_str().unwrap()]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let again: serde_json::Value = serde_json::from_str(&out).unwrap();
    let r = again["test"]["recall@20"].as_f64().unwrap();
    assert!((r - r20).abs() < 1e-9, "eval {r} vs train {r20}");
    assert_eq!(again["test_groups"], m["test_groups"]);
}

/// Rewrites a run's `metrics.json` through `edit`.
fn edit_metrics(run: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let mut m = metrics(run);
    edit(&mut m);
    std::fs::write(run.join("metrics.json"), m.to_string()).unwrap();
}

#[test]
fn eval_add_groups_restores_the_groups_of_an_older_run_folder_and_refuses_a_foreign_one() {
    let tmp = tempfile::tempdir().unwrap();
    let run = train_quick(tmp.path());
    let original = metrics(&run);
    let groups = original["test_groups"].as_array().unwrap().clone();
    assert_eq!(groups.len(), 4, "{original}");
    let users: u64 = groups.iter().map(|g| g["users"].as_u64().unwrap()).sum();
    assert!(users > 0, "{original}");

    // A folder from before metrics.json had test_groups.
    edit_metrics(&run, |m| {
        m.as_object_mut().unwrap().remove("test_groups");
    });
    let o = promax(&["eval", run.to_str().unwrap(), "--add-groups"]);
    assert!(o.status.success(), "{}", text(&o).1);
    assert_eq!(metrics(&run), original);

    // Stored numbers the checkpoint does not reproduce: refused, the file left as it was.
    edit_metrics(&run, |m| {
        m.as_object_mut().unwrap().remove("test_groups");
        m["test"]["recall@20"] = serde_json::json!(0.5);
    });
    let before = std::fs::read_to_string(run.join("metrics.json")).unwrap();
    let o = promax(&["eval", run.to_str().unwrap(), "--add-groups"]);
    let (_, err) = text(&o);
    assert!(!o.status.success());
    assert!(
        err.contains("recall@20") && err.contains("0.5") && err.contains("metrics.json"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(run.join("metrics.json")).unwrap(),
        before
    );
}

#[test]
fn same_seed_gives_the_same_numbers_and_another_seed_does_not() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = quick_config(tmp.path(), "");
    let run_with = |name: &str, seed: &str| {
        let run = tmp.path().join(name);
        let o = promax(&[
            "train",
            cfg.to_str().unwrap(),
            "--set",
            &format!("train.seed={seed}"),
            "--out",
            run.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", text(&o).1);
        metrics(&run)
    };
    let (a, b, c) = (
        run_with("a", "11"),
        run_with("b", "11"),
        run_with("c", "12"),
    );
    assert_eq!(a["test"], b["test"]);
    assert_eq!(a["valid"], b["valid"]);
    assert_ne!(a["test"], c["test"]);
}

fn write_dataset(dir: &Path, train: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("train.tsv"), train).unwrap();
    std::fs::write(dir.join("valid.tsv"), "0\t2\n1\t0\n").unwrap();
    std::fs::write(dir.join("test.tsv"), "0\t3\n1\t3\n").unwrap();
}

#[test]
fn malformed_train_line_names_file_and_line_without_panicking() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("bad");
    write_dataset(&data, "0\t0\n1\tx\n1\t1\n");
    let cfg = quick_config(
        tmp.path(),
        &format!(
            "[data]\nkind = \"files\"\npath = {:?}\n",
            data.display().to_string()
        ),
    );
    let o = promax(&[
        "train",
        cfg.to_str().unwrap(),
        "--out",
        tmp.path().join("r").to_str().unwrap(),
    ]);
    let (_, err) = text(&o);
    assert!(!o.status.success());
    assert!(err.contains("train.tsv:2:"), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    let o = promax(&["data", "stats", data.to_str().unwrap()]);
    let (_, err) = text(&o);
    assert!(!o.status.success());
    assert!(err.contains("train.tsv:2:"), "{err}");
}

#[test]
fn data_stats_on_a_good_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("good");
    write_dataset(&data, "0\t0\n0\t1\n1\t1\n1\t2\n");
    let o = promax(&["data", "stats", data.to_str().unwrap()]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        out.contains('2') && out.to_lowercase().contains("users"),
        "{out}"
    );
}

#[test]
fn config_errors_are_clear() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = quick_config(tmp.path(), "lrr = 0.1");
    let o = promax(&["train", cfg.to_str().unwrap()]);
    let (_, err) = text(&o);
    assert!(!o.status.success());
    assert!(err.contains("lrr") && err.contains("train.lr"), "{err}");

    let o = promax(&["train", "configs/experiments/no-such-file.toml"]);
    let (_, err) = text(&o);
    assert!(!o.status.success());
    assert!(err.contains("no-such-file.toml"), "{err}");

    let cfg = quick_config(tmp.path(), "[plugins.lightgcn]\nlayers = \"three\"\n");
    let o = promax(&["train", cfg.to_str().unwrap()]);
    let (_, err) = text(&o);
    assert!(!o.status.success());
    assert!(err.contains("layers"), "{err}");

    let cfg = quick_config(tmp.path(), "[plugins.lightgnc]\nlayers = 2\n");
    let o = promax(&["train", cfg.to_str().unwrap()]);
    let (_, err) = text(&o);
    assert!(!o.status.success());
    assert!(
        err.contains("lightgnc") && err.contains("lightgcn"),
        "{err}"
    );
}

#[test]
fn plugins_are_listed_and_shown() {
    let o = promax(&["plugins"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    for (name, kind) in [
        ("mf", "backbone"),
        ("gccf", "backbone"),
        ("lightgcn", "backbone"),
        ("simgcl", "backbone"),
        ("promax", "augmenter"),
        ("rlmrec-con", "augmenter"),
    ] {
        let line = out
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_default();
        assert!(line.contains(kind) && line.contains("built-in"), "{out}");
    }
    let o = promax(&["plugins", "show", "lightgcn"]);
    let (out, _) = text(&o);
    assert!(o.status.success());
    for h in ["layers", "include_layer0", "keep_rate", "dim"] {
        assert!(out.contains(h), "{out}");
    }
}

#[test]
fn bench_sdr_prints_the_documented_json() {
    let o = promax(&[
        "bench", "sdr", "--users", "64", "--items", "300", "--dim", "8", "--reps", "1", "--json",
    ]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    for key in ["kernel_gflops", "matmul_gflops", "extra_bytes"] {
        assert!(v[key].as_f64().is_some_and(|x| x > 0.0), "{key}: {v}");
    }
    // The counting allocator saw the kernel's scratch, and it is small.
    assert!(v["extra_bytes"].as_u64().unwrap() < 64 << 20, "{v}");
    assert!(
        ["avx512", "avx2", "portable"].contains(&v["path"].as_str().unwrap()),
        "{v}"
    );
    // A forced path is measured and named; portable runs anywhere, a typo is refused.
    let o = promax(&[
        "bench", "sdr", "--users", "64", "--items", "300", "--dim", "8", "--reps", "1", "--json",
        "--path", "portable",
    ]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["path"], "portable");
    let err = fails(&promax(&["bench", "sdr", "--path", "avx3"]));
    assert!(
        err.contains("--path \"avx3\": expected avx512, avx2 or portable"),
        "{err}"
    );
}

/// A run names its kernel path in metrics.json, and train.kernel_path forces one.
#[test]
fn a_run_names_its_kernel_path() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg_path = quick_config(tmp.path(), "");
    let out = tmp.path().join("run");
    let args = [
        "train",
        cfg_path.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--set",
        "train.kernel_path=\"portable\"",
    ];
    let o = promax(&args);
    assert!(o.status.success(), "{:?}", text(&o));
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(m["kernel_path"], "portable");
}

/// `promax recommend`: named users to stdout, every user to a file; train items never
/// recommended; ranks ordered by score; an unknown user is an error.
#[test]
fn recommend_from_a_trained_run() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg_path = quick_config(tmp.path(), "");
    let run = tmp.path().join("run");
    let o = promax(&[
        "train",
        cfg_path.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{:?}", text(&o));
    let cfg = promax::config::load(&cfg_path, &[]).unwrap();
    let ds = promax::data::load_dataset(&cfg.data).unwrap();
    let train: std::collections::HashSet<(u32, u32)> = ds.train.iter().copied().collect();

    let parse = |body: &str| -> Vec<(u32, usize, u32, f32)> {
        let mut lines = body.lines();
        assert_eq!(lines.next(), Some("user\trank\titem\tscore"));
        lines
            .map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                (
                    f[0].parse().unwrap(),
                    f[1].parse().unwrap(),
                    f[2].parse().unwrap(),
                    f[3].parse().unwrap(),
                )
            })
            .collect()
    };
    let o = promax(&[
        "recommend",
        run.to_str().unwrap(),
        "--users",
        "0,5",
        "-k",
        "7",
    ]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let recs = parse(&out);
    assert_eq!(recs.len(), 14);
    for (n, w) in recs.iter().zip(recs.iter().skip(1)) {
        if n.0 == w.0 {
            assert_eq!(w.1, n.1 + 1);
            assert!(w.3 <= n.3, "scores best first: {n:?} {w:?}");
        }
    }
    assert!(recs.iter().all(|r| !train.contains(&(r.0, r.2))));

    let file = tmp.path().join("recs.tsv");
    let o = promax(&[
        "recommend",
        run.to_str().unwrap(),
        "--all",
        "--out",
        file.to_str().unwrap(),
        "-k",
        "3",
    ]);
    assert!(o.status.success(), "{:?}", text(&o));
    let all = parse(&std::fs::read_to_string(&file).unwrap());
    assert_eq!(all.len(), ds.n_users * 3);
    assert!(all.iter().all(|r| !train.contains(&(r.0, r.2))));
    // The named users' lines are the same as in the full file.
    let firsts: Vec<_> = all.iter().filter(|r| r.0 == 5).map(|r| r.2).collect();
    let named: Vec<_> = recs
        .iter()
        .filter(|r| r.0 == 5)
        .take(3)
        .map(|r| r.2)
        .collect();
    assert_eq!(firsts, named);
    let leftovers = std::fs::read_dir(tmp.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains(".tmp")
        })
        .count();
    assert_eq!(leftovers, 0);

    // A checkpoint without final embeddings (written by older versions) is rebuilt through
    // its plugins and recommends the same; a final table with NaN is refused, named.
    let bytes = std::fs::read(run.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (finals, tables): (Vec<_>, Vec<_>) = st
        .tensors()
        .into_iter()
        .partition(|(name, _)| name.starts_with("final/"));
    assert_eq!(finals.len(), 2);
    let write_run = |name: &str, tensors: Vec<(String, safetensors::tensor::TensorView<'_>)>| {
        // A folder as older versions wrote it: no run identity in any file.
        let dir = tmp.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let config = std::fs::read_to_string(run.join("config.toml")).unwrap();
        let config = config.split_once('\n').unwrap().1;
        std::fs::write(dir.join("config.toml"), config).unwrap();
        let mut m = metrics(&run);
        m.as_object_mut().unwrap().remove("run_id");
        std::fs::write(dir.join("metrics.json"), m.to_string()).unwrap();
        let body = safetensors::serialize(tensors, &None).unwrap();
        std::fs::write(dir.join("model.safetensors"), body).unwrap();
        dir
    };
    let older = write_run("older", tables.clone());
    let o = promax(&[
        "recommend",
        older.to_str().unwrap(),
        "--users",
        "0,5",
        "-k",
        "7",
    ]);
    let (again, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert_eq!(again, out);
    let (users, shape) = finals
        .iter()
        .find(|(n, _)| n == "final/users")
        .map(|(_, t)| (t.data().to_vec(), t.shape().to_vec()))
        .unwrap();
    let mut poisoned = users;
    poisoned[4..8].copy_from_slice(&f32::NAN.to_le_bytes());
    let mut with_nan = tables;
    with_nan.extend(finals.iter().filter(|(n, _)| n == "final/items").cloned());
    with_nan.push((
        "final/users".into(),
        safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape, &poisoned).unwrap(),
    ));
    let bad = write_run("nan", with_nan);
    let o = promax(&["recommend", bad.to_str().unwrap(), "--users", "0"]);
    let (_, err) = text(&o);
    assert!(
        !o.status.success() && err.contains("final/users") && err.contains("NaN"),
        "{err}"
    );

    let o = promax(&["recommend", run.to_str().unwrap(), "--users", "99999"]);
    let (_, err) = text(&o);
    assert!(
        !o.status.success() && err.contains("user 99999 is out of range"),
        "{err}"
    );
}
