//! Resumable training and process hygiene, through the binary: a run killed with SIGKILL
//! at several points and resumed ends with exactly the metrics of the same run
//! uninterrupted (LightGCN, and LightGCN + ProMax with SDR and S2DR, on the synthetic
//! data); a compare matrix killed five times and resumed gives the report of an
//! uninterrupted one and leaves no orphaned child.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

mod common;
use common::{ok, promax, promax_command, repo};

fn json(p: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// A short LightGCN run on the synthetic data, validated every epoch (so that there are
/// checkpoints to kill between), with `extra` TOML appended.
fn config(dir: &Path, base: &str, extra: &str) -> PathBuf {
    let p = dir.join("run.toml");
    let body = format!(
        "extends = {:?}\n{extra}\n[train]\nmax_epochs = 9\nthreads = 1\n\
         [eval]\nevery = 1\npatience = 4\n",
        repo().join(base).display().to_string()
    );
    std::fs::write(&p, body).unwrap();
    p
}

/// ProMax with SDR and S2DR: the synthetic data has no augmented set, so one is written
/// (three items per user that the reference code would have added).
fn promax_config(dir: &Path) -> PathBuf {
    let aug = dir.join("augmented.tsv");
    let mut text = String::new();
    for u in 0..600u32 {
        for k in 0..3u32 {
            text.push_str(&format!("{u}\t{}\n", (u * 7 + k * 131) % 400));
        }
    }
    std::fs::write(&aug, text).unwrap();
    config(
        dir,
        "configs/experiments/promax-lightgcn-synthetic.toml",
        &format!(
            "[plugins.promax]\ns2dr = true\naugmented = {:?}\n",
            aug.display().to_string()
        ),
    )
}

/// Runs `promax ARGS` and kills it (SIGKILL) as soon as its log shows a line containing
/// `at`; returns whether the kill landed before the command finished.
fn run_and_kill(args: &[&str], at: &str) -> bool {
    let mut child = promax_command()
        .args(args)
        .current_dir(repo())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    for line in BufReader::new(stderr).lines() {
        if line.unwrap().contains(at) {
            child.kill().unwrap();
            break;
        }
    }
    !child.wait().unwrap().success()
}

/// `promax train CONFIG --out OUT`, killed at the first log line containing `at`.
fn train_and_kill(cfg: &Path, out: &Path, at: &str) -> bool {
    run_and_kill(
        &[
            "train",
            cfg.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        at,
    )
}

fn resume(out: &Path) -> String {
    ok(&promax(&["train", "--resume", out.to_str().unwrap()]))
}

/// The numbers that must not depend on interruptions (timings aside).
fn results(run: &Path) -> serde_json::Value {
    let m = json(&run.join("metrics.json"));
    serde_json::json!({
        "valid": m["valid"], "test": m["test"], "test_groups": m["test_groups"],
        "best_epoch": m["best_epoch"], "epochs_run": m["epochs_run"],
        "stopped_early": m["stopped_early"], "run_id": m["run_id"],
    })
}

/// The `epochs.csv` columns that do not hold timings.
fn curve(run: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(run.join("epochs.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let keep: Vec<usize> = (0..header.len())
        .filter(|&i| !header[i].contains("seconds"))
        .collect();
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            keep.iter().map(|&i| f[i]).collect::<Vec<_>>().join(",")
        })
        .collect()
}

fn killed_runs_resume_to_the_same_result(cfg: &Path, tmp: &Path, kill_points: &[&[&str]]) {
    let whole = tmp.join("whole");
    ok(&promax(&[
        "train",
        cfg.to_str().unwrap(),
        "--out",
        whole.to_str().unwrap(),
    ]));
    let want = results(&whole);
    for (n, points) in kill_points.iter().enumerate() {
        let out = tmp.join(format!("killed-{n}"));
        // The first kill, then one more during each resume.
        assert!(train_and_kill(cfg, &out, points[0]), "{:?}", points);
        for at in &points[1..] {
            assert!(
                run_and_kill(&["train", "--resume", out.to_str().unwrap()], at),
                "{points:?}"
            );
        }
        assert!(!out.join("metrics.json").exists(), "{points:?}");
        resume(&out);
        assert_eq!(results(&out), want, "killed at {points:?}");
        assert_eq!(curve(&out), curve(&whole), "killed at {points:?}");
        assert!(!out.join("checkpoint.safetensors").exists());
        assert!(!out.join("train.lock").exists());
    }
}

#[test]
fn lightgcn_killed_at_three_points_resumes_to_the_uninterrupted_result() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(
        tmp.path(),
        "configs/experiments/lightgcn-synthetic.toml",
        "",
    );
    killed_runs_resume_to_the_same_result(
        &cfg,
        tmp.path(),
        &[
            // Before any checkpoint: the resume starts from epoch 1.
            &["training lightgcn"],
            &["epoch 2:"],
            // Killed again while resuming.
            &["epoch 5:", "epoch 7:"],
        ],
    );
}

#[test]
fn promax_sdr_s2dr_killed_and_resumed_gives_the_uninterrupted_result() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = promax_config(tmp.path());
    killed_runs_resume_to_the_same_result(
        &cfg,
        tmp.path(),
        &[&["epoch 3:"], &["epoch 1:", "epoch 6:"]],
    );
}

#[test]
fn a_finished_or_started_run_is_never_overwritten_without_asking() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(
        tmp.path(),
        "configs/experiments/lightgcn-synthetic.toml",
        "",
    );
    let (cfg_s, out) = (cfg.to_str().unwrap(), tmp.path().join("run"));
    let out_s = out.to_str().unwrap();
    ok(&promax(&["train", cfg_s, "--out", out_s]));
    let before = std::fs::read(out.join("metrics.json")).unwrap();
    let err = common::fails(&promax(&[
        "train",
        cfg_s,
        "--out",
        out_s,
        "--set",
        "train.seed=3",
    ]));
    assert!(
        err.contains("finished run") && err.contains("--overwrite"),
        "{err}"
    );
    assert_eq!(std::fs::read(out.join("metrics.json")).unwrap(), before);
    let err = common::fails(&promax(&["train", "--resume", out_s]));
    assert!(err.contains("nothing to resume"), "{err}");

    // --overwrite replaces it whole: a new identity in every file, no leftovers.
    ok(&promax(&[
        "train",
        cfg_s,
        "--out",
        out_s,
        "--overwrite",
        "--set",
        "train.seed=3",
    ]));
    let m = json(&out.join("metrics.json"));
    assert_eq!(m["seed"], 3);
    ok(&promax(&["eval", out_s]));
    let hidden: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(hidden.is_empty(), "{hidden:?}");

    // A started run (killed) is refused too, and named for --resume.
    let killed = tmp.path().join("killed");
    assert!(train_and_kill(&cfg, &killed, "epoch 2:"));
    let err = common::fails(&promax(&[
        "train",
        cfg_s,
        "--out",
        killed.to_str().unwrap(),
    ]));
    assert!(
        err.contains("started run") && err.contains("--resume"),
        "{err}"
    );
    let err = common::fails(&promax(&["eval", killed.to_str().unwrap()]));
    assert!(err.contains("no finished run"), "{err}");
}

/// The processes whose command line mentions `needle` (other than this test).
fn processes_mentioning(needle: &str) -> Vec<u32> {
    let me = std::process::id();
    std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
                .filter(|&pid| pid != me)
                .filter(|pid| {
                    std::fs::read(format!("/proc/{pid}/cmdline"))
                        .is_ok_and(|c| String::from_utf8_lossy(&c).contains(needle))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// report.json without the timings (which differ between any two runs).
fn report_results(out: &Path) -> serde_json::Value {
    let mut r = json(&out.join("report.json"));
    for row in r["rows"].as_array_mut().unwrap() {
        row.as_object_mut().unwrap().remove("efficiency");
    }
    r.as_object_mut().unwrap().remove("compare_file");
    r
}

#[test]
fn compare_killed_five_times_resumes_to_the_same_report_and_leaves_no_orphan() {
    let tmp = tempfile::tempdir().unwrap();
    // About 5 s in all on 2 cores: long enough for kills to land inside cells.
    let cfg = common::tiny_compare(tmp.path(), 12, 2000, 1500);
    let cfg_s = cfg.to_str().unwrap();
    let whole = tmp.path().join("whole");
    let start = Instant::now();
    ok(&promax(&[
        "compare",
        cfg_s,
        "--out",
        whole.to_str().unwrap(),
        "--jobs",
        "2",
    ]));
    let whole_ms = start.elapsed().as_millis() as u64;

    let out = tmp.path().join("killed");
    let out_s = out.to_str().unwrap();
    // Five kills, each after a pseudo-random 5–20% of the uninterrupted run time, so that
    // most of the matrix is trained in interrupted pieces.
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    for round in 0..5 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let after = Duration::from_millis(whole_ms / 20 + x % (whole_ms * 3 / 20).max(1));
        let mut child = promax_command()
            .args(["compare", cfg_s, "--out", out_s, "--jobs", "2"])
            .current_dir(repo())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(after);
        child.kill().unwrap();
        child.wait().unwrap();
        // The children get SIGKILL from the kernel when their parent dies; give it a moment.
        let start = Instant::now();
        let mut left = processes_mentioning(out_s);
        while !left.is_empty() && start.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(50));
            left = processes_mentioning(out_s);
        }
        assert!(left.is_empty(), "round {round}: orphaned children {left:?}");
    }
    ok(&promax(&["compare", cfg_s, "--out", out_s]));
    assert_eq!(report_results(&out), report_results(&whole));
    // The kills landed inside cells, which then continued from their checkpoints.
    let resumed = std::fs::read_dir(out.join("cells"))
        .unwrap()
        .filter(|e| {
            let log = e.as_ref().unwrap().path().join("train.log");
            std::fs::read_to_string(log).unwrap().contains("resuming")
        })
        .count();
    assert!(resumed > 0, "no cell was resumed from a checkpoint");
}
