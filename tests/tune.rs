//! `promax tune` end to end on a small synthetic dataset: a study interrupted and resumed
//! writes exactly the trials.csv of one run straight through; the median pruner stops a
//! trial whose curve falls below the earlier ones; best.toml is a run config that trains
//! to the best trial's validation value; a bad tune file fails before anything trains.

use std::path::{Path, PathBuf};

mod common;
use common::{fails, ok, promax, repo};

/// A tune file over the quick start (smaller), validated every 2 epochs.
fn tune_file(dir: &Path, body: &str) -> PathBuf {
    let quick = repo().join("configs/experiments/quickstart.toml");
    let p = dir.join("study.toml");
    std::fs::write(
        &p,
        format!(
            "config = {:?}\nsets = [\"data.synthetic.n_users=160\", \"data.synthetic.n_items=120\", \
             \"train.max_epochs=12\", \"eval.every=2\", \"eval.patience=3\", \"train.threads=1\"]\n\
             metric = \"recall@20\"\n{body}",
            quick.display().to_string()
        ),
    )
    .unwrap();
    p
}

fn tune(file: &Path, out: &Path, extra: &[&str]) -> String {
    common::run_file("tune", file, out, extra)
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

const TPE: &str = "sampler = \"tpe\"\ntrials = 6\nstartup = 3\nseeds = [5, 6]\nseed = 1\n\
                   [prune]\nenabled = false\n\
                   [space]\n\"train.lr\" = { log_uniform = [1e-4, 3e-2] }\n\
                   \"plugins.lightgcn.layers\" = { int_uniform = [1, 3] }\n\
                   \"plugins.lightgcn.keep_rate\" = { choice = [1.0, 0.8] }\n";

#[test]
fn an_interrupted_study_resumes_to_the_same_trials() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tune_file(tmp.path(), TPE);
    let straight = tmp.path().join("straight");
    tune(&file, &straight, &[]);
    let resumed = tmp.path().join("resumed");
    // Stopped after 5 of the 12 runs (in the middle of trial 2), then run again.
    let first = tune(&file, &resumed, &["--max-cells", "5"]);
    assert!(first.contains("run the same command again"), "{first}");
    // A study shows validation figures per run, never test ones.
    assert!(
        first.contains("valid recall@20") && !first.contains("test recall@20"),
        "{first}"
    );
    assert!(!resumed.join("trials.csv").exists());
    tune(&file, &resumed, &["--jobs", "2"]);
    let csv = read(&straight.join("trials.csv"));
    assert_eq!(csv, read(&resumed.join("trials.csv")));
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows.len(), 7, "{csv}");
    assert!(rows[0].starts_with("trial,state,value,plugins.lightgcn.keep_rate,plugins.lightgcn.layers,train.lr,value_s5,epoch_s5"));
    // Every value is the mean of its two seeds' validation metrics, read from the runs.
    for row in &rows[1..] {
        let f: Vec<&str> = row.split(',').collect();
        assert_eq!(f[1], "finished");
        let (v, a, b): (f64, f64, f64) = (
            f[2].parse().unwrap(),
            f[6].parse().unwrap(),
            f[8].parse().unwrap(),
        );
        assert!((v - (a + b) / 2.0).abs() < 2e-6, "{row}");
        let lr: f64 = f[5].parse().unwrap();
        assert!((1e-4..=3e-2).contains(&lr), "{row}");
        let layers: i64 = f[4].parse().unwrap();
        assert!((1..=3).contains(&layers), "{row}");
        let trial: usize = f[0].parse().unwrap();
        let m: serde_json::Value = serde_json::from_str(&read(
            &straight.join(format!("cells/trial{trial:04}-s5/metrics.json")),
        ))
        .unwrap();
        assert!((m["valid"]["recall@20"].as_f64().unwrap() - a).abs() < 2e-6);
    }
    // best.toml is a complete run config: training it repeats the best trial's first seed.
    let j: serde_json::Value = serde_json::from_str(&read(&straight.join("trials.json"))).unwrap();
    let best = j["best"]["trial"].as_u64().unwrap() as usize;
    let best_value = j["best"]["value"].as_f64().unwrap();
    let max = rows[1..]
        .iter()
        .map(|r| r.split(',').nth(2).unwrap().parse::<f64>().unwrap())
        .fold(f64::MIN, f64::max);
    assert!((best_value - max).abs() < 2e-6);
    assert!(j["best"]["test"]["recall@20"].as_f64().is_some());
    // report.html: the metric over trials and one scatter per key, as well-formed SVG.
    let html = read(&straight.join("report.html"));
    let svgs: Vec<&str> = html.split("<svg").skip(1).collect();
    assert_eq!(svgs.len(), 4, "one chart over trials and one per key");
    for svg in svgs {
        let end = svg.find("</svg>").expect("a closed <svg>") + "</svg>".len();
        roxmltree::Document::parse(&format!("<svg{}", &svg[..end])).expect("SVG parses as XML");
    }
    assert!(
        html.contains("Its test metrics"),
        "the best trial's test metrics are shown"
    );
    let again = tmp.path().join("again");
    ok(&promax(&[
        "train",
        straight.join("best.toml").to_str().unwrap(),
        "--out",
        again.to_str().unwrap(),
    ]));
    let a: serde_json::Value = serde_json::from_str(&read(&again.join("metrics.json"))).unwrap();
    let t: serde_json::Value = serde_json::from_str(&read(
        &straight.join(format!("cells/trial{best:04}-s5/metrics.json")),
    ))
    .unwrap();
    assert_eq!(a["valid"], t["valid"]);
}

#[test]
fn the_median_pruner_stops_a_trial_below_the_earlier_ones() {
    let tmp = tempfile::tempdir().unwrap();
    // A grid in order: two sound learning rates, then one too small to learn in 12 epochs.
    let file = tune_file(
        tmp.path(),
        "sampler = \"grid\"\nseeds = [5]\nfinal_seeds = [7, 8]\n\
         [prune]\nenabled = true\nwarmup = 4\nmin_trials = 2\n\
         [space]\n\"train.lr\" = { choice = [0.01, 0.005, 1e-6] }\n",
    );
    let out = tmp.path().join("study");
    tune(&file, &out, &[]);
    let csv = read(&out.join("trials.csv"));
    let rows: Vec<Vec<&str>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    assert_eq!(rows.len(), 3, "{csv}");
    assert_eq!((rows[0][1], rows[1][1]), ("finished", "finished"), "{csv}");
    assert_eq!(rows[2][1], "pruned", "{csv}");
    let epoch: usize = rows[2][5].parse().unwrap();
    assert!(epoch >= 4, "{csv}");
    let stop: serde_json::Value =
        serde_json::from_str(&read(&out.join("cells/trial0002-s5/stopped.json"))).unwrap();
    assert_eq!(stop["epoch"].as_u64(), Some(epoch as u64));
    let j: serde_json::Value = serde_json::from_str(&read(&out.join("trials.json"))).unwrap();
    assert_ne!(j["best"]["trial"].as_u64(), Some(2));
    // The best trial trained again over the final seeds: their mean test metrics.
    let best = j["best"]["trial"].as_u64().unwrap();
    let mean: f64 = [7, 8]
        .iter()
        .map(|s| {
            let m: serde_json::Value = serde_json::from_str(&read(
                &out.join(format!("cells/trial{best:04}-final-s{s}/metrics.json")),
            ))
            .unwrap();
            assert!(m["valid"]["recall@20"].as_f64().unwrap() > 0.0);
            m["test"]["recall@20"].as_f64().unwrap() / 2.0
        })
        .sum();
    let fin = &j["best"]["final"];
    assert_eq!(fin["seeds"], serde_json::json!([7, 8]));
    assert!(
        (fin["test"]["recall@20"].as_f64().unwrap() - mean).abs() < 1e-12,
        "{fin}"
    );
    let cfg = read(&out.join(format!("cells/trial{best:04}-final-s7/config.toml")));
    let lr = ["0.01", "0.005"][best as usize];
    assert!(cfg.contains(&format!("lr = {lr}")), "{cfg}");
    // Run again: nothing trains, the same file comes out.
    tune(&file, &out, &[]);
    assert_eq!(csv, read(&out.join("trials.csv")));
    // Another pruning rule would have stopped other trials: the folder is refused.
    let text = read(&file).replace("warmup = 4", "warmup = 6");
    std::fs::write(&file, text).unwrap();
    let err = fails(&promax(&[
        "tune",
        file.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]));
    assert!(
        err.contains("holds the trials of another study (its `prune` differs"),
        "{err}"
    );
}

#[test]
fn bad_tune_files_fail_before_training() {
    let tmp = tempfile::tempdir().unwrap();
    let cases = [
        (
            "sampler = \"random\"\ntrials = 2\nseeds = [5]\nmetric2 = 1\n[space]\n\"train.lr\" = { uniform = [0.001, 0.01] }\n",
            "unknown field `metric2`",
        ),
        (
            "sampler = \"random\"\ntrials = 2\nseeds = [5]\n[space]\n\"train.lrr\" = { uniform = [0.001, 0.01] }\n",
            "did you mean `train.lr`?",
        ),
        (
            "sampler = \"random\"\ntrials = 2\nseeds = [5]\n[space]\n\"plugins.lightgcn.layer\" = { int_uniform = [1, 3] }\n",
            "did you mean \"layers\"?",
        ),
        (
            "sampler = \"grid\"\nseeds = [5]\n[space]\n\"train.lr\" = { uniform = [0.001, 0.01] }\n",
            "the grid sampler needs `choice` values",
        ),
        (
            "sampler = \"tpe\"\ntrials = 2\nseeds = [5]\n[space]\n\"train.lr\" = { log_uniform = [0.0, 0.01] }\n",
            "0 < low < high",
        ),
        (
            "sampler = \"random\"\ntrials = 2\nseeds = [5]\n[space]\n\"train.batch_size\" = { choice = [\"big\"] }\n",
            "train.batch_size",
        ),
        (
            "sampler = \"random\"\ntrials = 2\nseeds = [5]\n[space]\n\"plugins.lightgcn.keep_rate\" = { uniform = [0.5, 1.5] }\n",
            "`keep_rate` = 1.5 must be in (0, 1]",
        ),
        (
            "sampler = \"random\"\ntrials = 2\nseeds = [5]\n[space]\n\"plugins.promax.tau\" = { choice = [0.2] }\n",
            "plugin `promax` is not in the base experiment",
        ),
    ];
    for (body, want) in cases {
        let file = tune_file(tmp.path(), body);
        let out = tmp.path().join("never");
        let err = fails(&promax(&[
            "tune",
            file.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]));
        assert!(err.contains(want), "{body}\n{err}");
        assert!(
            !out.join("cells").exists(),
            "{body}: trained before failing"
        );
    }
    // A test metric is refused: trials are chosen on validation only.
    let file = tune_file(tmp.path(), "sampler = \"random\"\ntrials = 2\nseeds = [5]\n[space]\n\"train.lr\" = { uniform = [0.001, 0.01] }\n");
    let text = read(&file).replace("metric = \"recall@20\"", "metric = \"test_recall@20\"");
    std::fs::write(&file, text).unwrap();
    let err = fails(&promax(&["tune", file.to_str().unwrap()]));
    assert!(err.contains("is a test metric"), "{err}");
}

/// The acceptance case: the same study killed (SIGKILL, mid-run) and run again writes the
/// trials.csv of a run straight through.
#[test]
fn a_killed_study_resumes_to_the_same_trials() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tune_file(tmp.path(), &TPE.replace("trials = 6", "trials = 4"));
    // Longer runs, so that the kill lands inside one.
    let text = read(&file)
        .replace("train.max_epochs=12", "train.max_epochs=40")
        .replace("eval.patience=3", "eval.patience=20");
    std::fs::write(&file, text).unwrap();
    let straight = tmp.path().join("straight");
    tune(&file, &straight, &[]);
    let killed = tmp.path().join("killed");
    let mut child = common::promax_command()
        .args([
            "tune",
            file.to_str().unwrap(),
            "--out",
            killed.to_str().unwrap(),
        ])
        .current_dir(repo())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill once the second trial's first run has written some epochs.
    let rows = killed.join("cells/trial0001-s5/epochs.csv");
    let start = std::time::Instant::now();
    while std::fs::read_to_string(&rows).map_or(0, |t| t.lines().count()) < 4 {
        assert!(
            start.elapsed().as_secs() < 120,
            "the study never reached trial 1"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!killed.join("trials.csv").exists());
    // The train child dies with the study (PR_SET_PDEATHSIG); wait until its lock is free.
    std::thread::sleep(std::time::Duration::from_millis(500));
    tune(&file, &killed, &[]);
    assert_eq!(
        read(&straight.join("trials.csv")),
        read(&killed.join("trials.csv"))
    );
}

/// Batches of trials proposed together, pruned against earlier batches: the trials do not
/// depend on how many run at once.
#[test]
fn batched_pruned_studies_do_not_depend_on_jobs() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tune_file(
        tmp.path(),
        "sampler = \"grid\"\nbatch = 2\nseeds = [5, 6]\n\
         [prune]\nenabled = true\nwarmup = 4\nmin_trials = 2\n\
         [space]\n\"train.lr\" = { choice = [0.02, 0.01, 1e-6, 0.005, 2e-6, 0.015] }\n",
    );
    let one = tmp.path().join("one");
    tune(&file, &one, &["--jobs", "1"]);
    let three = tmp.path().join("three");
    tune(&file, &three, &["--jobs", "3"]);
    let csv = read(&one.join("trials.csv"));
    assert_eq!(csv, read(&three.join("trials.csv")));
    // The rule had something to decide: the first batch is never pruned, the tiny rates are.
    let states: Vec<&str> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap())
        .collect();
    assert_eq!(&states[..2], ["finished", "finished"], "{csv}");
    assert_eq!(states[2], "pruned", "{csv}");
    assert_eq!(states[4], "pruned", "{csv}");
}
