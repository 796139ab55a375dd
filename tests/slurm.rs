//! `--executor slurm` on a real cluster: `.ci/run` starts a one-node Slurm cluster
//! (`.ci/slurm-one-node`: munged, slurmctld, slurmd); a small compare matrix and a small
//! tune study run through it give the same report and trials as the local executor, and
//! a matrix half run locally finishes through Slurm. Without `sbatch` on PATH the tests
//! skip with one line.

use std::path::Path;
use std::process::Command;

mod common;
use common::{promax, repo};

/// Whether Slurm is here to test; a cluster that does not answer is a failure, not a skip.
fn have_slurm() -> bool {
    if Command::new("sbatch").arg("--version").output().is_err() {
        eprintln!("skipped: no sbatch on PATH (CI starts a cluster with .ci/slurm-one-node)");
        return false;
    }
    let o = Command::new("sinfo")
        .args(["-h", "-o", "%t"])
        .output()
        .expect("sinfo");
    let state = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && ["idle", "mix", "alloc"].iter().any(|s| state.contains(s)),
        "sbatch is installed but no node takes jobs (sinfo: {state:?}); start one with \
         .ci/slurm-one-node"
    );
    true
}

/// report.md without its timing section.
fn report_without_timings(out: &Path) -> String {
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    md.split("\n## Efficiency").next().unwrap().to_owned()
}

fn compare(file: &Path, out: &Path, extra: &[&str]) -> String {
    common::run_file("compare", file, out, extra)
}

#[test]
fn a_compare_matrix_through_slurm_reports_as_the_local_one() {
    if !have_slurm() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let file = common::tiny_compare(tmp.path(), 4, 120, 90);
    let local = tmp.path().join("local");
    compare(&file, &local, &[]);
    let slurm = tmp.path().join("slurm");
    let log = compare(&file, &slurm, &["--executor", "slurm", "--jobs", "2"]);
    assert!(
        log.contains("submitted 8 cells as Slurm job array"),
        "{log}"
    );
    assert_eq!(
        report_without_timings(&local),
        report_without_timings(&slurm)
    );
    // Half run locally, finished through Slurm: the cells are the same folders.
    let mixed = tmp.path().join("mixed");
    compare(&file, &mixed, &["--max-cells", "3"]);
    let log = compare(&file, &mixed, &["--executor", "slurm", "--jobs", "2"]);
    assert!(
        log.contains("3 finished already") && log.contains("submitted 5 cells"),
        "{log}"
    );
    assert_eq!(
        report_without_timings(&local),
        report_without_timings(&mixed)
    );
}

#[test]
fn a_failed_task_is_reported_with_its_slurm_state_and_log() {
    if !have_slurm() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let file = common::tiny_compare(tmp.path(), 2, 120, 90);
    // LightGCN refuses 0 layers when it is built, inside the task.
    let out = tmp.path().join("bad");
    let o = promax(&[
        "compare",
        file.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--executor",
        "slurm",
        "--set",
        "plugins.lightgcn.layers=0",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(
        err.contains("cells failed") && err.contains("train.log"),
        "{err}"
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("Slurm task")
            && stdout.contains(": FAILED; log ")
            && stdout.contains("`layers` must be at least 1"),
        "{stdout}"
    );
}

#[test]
fn a_tune_study_through_slurm_gives_the_local_trials() {
    if !have_slurm() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let quick = repo().join("configs/experiments/quickstart.toml");
    let file = tmp.path().join("study.toml");
    std::fs::write(
        &file,
        format!(
            "config = {:?}\nsets = [\"data.synthetic.n_users=120\", \"data.synthetic.n_items=90\", \
             \"train.max_epochs=8\", \"eval.every=2\", \"train.threads=1\"]\n\
             metric = \"recall@20\"\nsampler = \"tpe\"\ntrials = 4\nstartup = 2\nseeds = [5, 6]\n\
             batch = 2\n[prune]\nwarmup = 2\nmin_trials = 1\n\
             [space]\n\"train.lr\" = {{ log_uniform = [1e-5, 3e-2] }}\n\
             [slurm]\ncpus_per_task = 1\n",
            quick.display().to_string()
        ),
    )
    .unwrap();
    let run = |out: &Path, extra: &[&str]| common::run_file("tune", &file, out, extra);
    let local = tmp.path().join("local");
    run(&local, &[]);
    let slurm = tmp.path().join("slurm");
    run(&slurm, &["--executor", "slurm", "--jobs", "4"]);
    let read = |p: &Path| std::fs::read_to_string(p.join("trials.csv")).unwrap();
    assert_eq!(read(&local), read(&slurm));
}
