//! Bad-input cases: run folders (overwrite, mixed files, resume, locks), checkpoints, compare folders.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::common::{fails, ok, promax_in, repo};

/// A two-epoch quick start config in `dir`, with `extra` TOML appended.
fn quick(dir: &Path, extra: &str) -> PathBuf {
    let p = dir.join("quick.toml");
    let body = format!(
        "extends = {:?}\n{extra}\n[train]\nmax_epochs = 2\nthreads = 1\n[eval]\nevery = 1\n",
        repo()
            .join("configs/experiments/quickstart.toml")
            .display()
            .to_string()
    );
    std::fs::write(&p, body).unwrap();
    p
}

/// One finished run, trained once for every case that only reads it (copied before a case
/// changes anything).
fn finished_run() -> &'static Path {
    static RUN: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, run) = RUN.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = quick(tmp.path(), "");
        let run = tmp.path().join("run");
        ok(&promax_in(
            tmp.path(),
            &[
                "train",
                cfg.to_str().unwrap(),
                "--out",
                run.to_str().unwrap(),
            ],
        ));
        (tmp, run)
    });
    run
}

/// A copy of the finished run in `dir`.
fn copy_run(dir: &Path, name: &str) -> PathBuf {
    let to = dir.join(name);
    std::fs::create_dir_all(&to).unwrap();
    for e in std::fs::read_dir(finished_run()).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
    to
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A second finished run of another seed, for mixing files.
fn other_run(dir: &Path) -> PathBuf {
    let cfg = quick(dir, "");
    let run = dir.join("other");
    ok(&promax_in(
        dir,
        &["train", s(&cfg), "--out", s(&run), "--set", "train.seed=9"],
    ));
    run
}

#[test]
fn train_over_a_finished_run_is_refused_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let run = copy_run(tmp.path(), "run");
    let before: Vec<Vec<u8>> = ["metrics.json", "config.toml", "epochs.csv"]
        .iter()
        .map(|f| std::fs::read(run.join(f)).unwrap())
        .collect();
    let cfg = quick(tmp.path(), "");
    let err = fails(&promax_in(
        tmp.path(),
        &["train", s(&cfg), "--out", s(&run)],
    ));
    assert!(
        err.contains("finished run") && err.contains(s(&run)),
        "{err}"
    );
    let after: Vec<Vec<u8>> = ["metrics.json", "config.toml", "epochs.csv"]
        .iter()
        .map(|f| std::fs::read(run.join(f)).unwrap())
        .collect();
    assert_eq!(before, after);
}

#[test]
fn a_fixed_run_name_over_a_finished_run_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let runs = tmp.path().join("runs");
    std::fs::create_dir_all(&runs).unwrap();
    copy_run(&runs, "mine");
    let cfg = quick(
        tmp.path(),
        &format!("[run]\nout_dir = {:?}\nname = \"mine\"", s(&runs)),
    );
    let err = fails(&promax_in(tmp.path(), &["train", s(&cfg)]));
    assert!(err.contains("finished run"), "{err}");
}

#[test]
fn a_run_name_cannot_escape_the_out_dir() {
    let tmp = tempfile::tempdir().unwrap();
    for name in ["../escape", "/tmp/abs", "a/b", ".."] {
        let cfg = quick(tmp.path(), "");
        let err = fails(&promax_in(
            tmp.path(),
            &["train", s(&cfg), "--set", &format!("run.name={name:?}")],
        ));
        assert!(err.contains("run.name"), "{name}: {err}");
    }
    assert!(!tmp.path().join("escape").exists());
}

#[test]
fn resume_of_a_finished_run_has_nothing_to_do() {
    let tmp = tempfile::tempdir().unwrap();
    let run = copy_run(tmp.path(), "run");
    let err = fails(&promax_in(tmp.path(), &["train", "--resume", s(&run)]));
    assert!(err.contains("nothing to resume"), "{err}");
}

#[test]
fn resume_of_a_folder_without_config_names_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let err = fails(&promax_in(tmp.path(), &["train", "--resume", s(&empty)]));
    assert!(err.contains("config.toml"), "{err}");
}

#[test]
fn resume_of_a_folder_written_before_run_ids_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let run = copy_run(tmp.path(), "legacy");
    let text = std::fs::read_to_string(run.join("config.toml")).unwrap();
    let body = text.split_once('\n').unwrap().1;
    std::fs::write(run.join("config.toml"), body).unwrap();
    for f in ["metrics.json", "epochs.csv", "model.safetensors"] {
        std::fs::remove_file(run.join(f)).unwrap();
    }
    let err = fails(&promax_in(tmp.path(), &["train", "--resume", s(&run)]));
    assert!(err.contains("no run id"), "{err}");
}

#[test]
fn eval_refuses_metrics_of_another_run() {
    let tmp = tempfile::tempdir().unwrap();
    let run = copy_run(tmp.path(), "run");
    let other = other_run(tmp.path());
    std::fs::copy(other.join("metrics.json"), run.join("metrics.json")).unwrap();
    for args in [
        vec!["eval", s(&run)],
        vec!["eval", s(&run), "--add-groups"],
        vec!["recommend", s(&run), "--users", "1"],
    ] {
        let err = fails(&promax_in(tmp.path(), &args));
        assert!(
            err.contains("mixes runs") && err.contains("metrics.json"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn eval_refuses_a_model_of_another_run() {
    let tmp = tempfile::tempdir().unwrap();
    let run = copy_run(tmp.path(), "run");
    let other = other_run(tmp.path());
    std::fs::copy(
        other.join("model.safetensors"),
        run.join("model.safetensors"),
    )
    .unwrap();
    let err = fails(&promax_in(tmp.path(), &["eval", s(&run)]));
    assert!(err.contains("model.safetensors carries run"), "{err}");
}

#[test]
fn eval_refuses_an_epochs_csv_of_another_run() {
    let tmp = tempfile::tempdir().unwrap();
    let run = copy_run(tmp.path(), "run");
    let other = other_run(tmp.path());
    std::fs::copy(other.join("epochs.csv"), run.join("epochs.csv")).unwrap();
    let err = fails(&promax_in(tmp.path(), &["eval", s(&run)]));
    assert!(err.contains("epochs.csv carries run"), "{err}");
}

#[test]
fn an_epochs_csv_mixing_two_runs_names_the_line() {
    let tmp = tempfile::tempdir().unwrap();
    let run = copy_run(tmp.path(), "run");
    let text = std::fs::read_to_string(run.join("epochs.csv")).unwrap();
    let mixed: Vec<String> = text
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if i == 2 {
                let (head, _) = l.rsplit_once(',').unwrap();
                format!("{head},0123456789abcdef")
            } else {
                l.to_owned()
            }
        })
        .collect();
    std::fs::write(run.join("epochs.csv"), mixed.join("\n") + "\n").unwrap();
    let err = fails(&promax_in(tmp.path(), &["eval", s(&run)]));
    assert!(
        err.contains("epochs.csv") && err.contains("line 3"),
        "{err}"
    );
}

#[test]
fn an_edited_config_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let run = copy_run(tmp.path(), "run");
    let text = std::fs::read_to_string(run.join("config.toml")).unwrap();
    std::fs::write(
        run.join("config.toml"),
        text.replace("max_epochs = 2", "max_epochs = 3"),
    )
    .unwrap();
    let err = fails(&promax_in(tmp.path(), &["eval", s(&run)]));
    assert!(
        err.contains("config.toml") && err.contains("edited"),
        "{err}"
    );
}

#[test]
fn eval_and_recommend_refuse_an_unfinished_run() {
    let tmp = tempfile::tempdir().unwrap();
    let run = copy_run(tmp.path(), "run");
    std::fs::remove_file(run.join("metrics.json")).unwrap();
    for args in [
        vec!["eval", s(&run)],
        vec!["recommend", s(&run), "--users", "1"],
    ] {
        let err = fails(&promax_in(tmp.path(), &args));
        assert!(err.contains("no finished run"), "{args:?}: {err}");
    }
}

#[test]
fn a_garbage_model_file_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let run = copy_run(tmp.path(), "run");
    // A header length that claims more than the file holds.
    let mut bytes = (1u64 << 60).to_le_bytes().to_vec();
    bytes.extend_from_slice(b"{\"x\": 1}");
    std::fs::write(run.join("model.safetensors"), bytes).unwrap();
    let err = fails(&promax_in(tmp.path(), &["eval", s(&run)]));
    assert!(err.contains("model.safetensors"), "{err}");
    std::fs::write(run.join("model.safetensors"), b"abc").unwrap();
    let err = fails(&promax_in(
        tmp.path(),
        &["recommend", s(&run), "--users", "1"],
    ));
    assert!(err.contains("model.safetensors"), "{err}");
}

/// A started run: the finished one with its metrics removed and a checkpoint made from
/// `bytes`.
fn started_with_checkpoint(dir: &Path, bytes: &[u8]) -> PathBuf {
    let run = copy_run(dir, "started");
    std::fs::remove_file(run.join("metrics.json")).unwrap();
    std::fs::write(run.join("checkpoint.safetensors"), bytes).unwrap();
    run
}

#[test]
fn a_truncated_checkpoint_is_named_on_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let run = started_with_checkpoint(tmp.path(), b"\x10\x00\x00");
    let err = fails(&promax_in(tmp.path(), &["train", "--resume", s(&run)]));
    assert!(err.contains("checkpoint.safetensors"), "{err}");
}

#[test]
fn a_checkpoint_of_another_run_is_refused_on_resume() {
    let tmp = tempfile::tempdir().unwrap();
    // Any safetensors file carrying another run id: the other run's model file.
    let other = other_run(tmp.path());
    let bytes = std::fs::read(other.join("model.safetensors")).unwrap();
    let run = started_with_checkpoint(tmp.path(), &bytes);
    let err = fails(&promax_in(tmp.path(), &["train", "--resume", s(&run)]));
    assert!(err.contains("checkpoint.safetensors carries run"), "{err}");
}

#[test]
fn train_into_a_started_run_names_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let run = copy_run(tmp.path(), "run");
    std::fs::remove_file(run.join("metrics.json")).unwrap();
    let cfg = quick(tmp.path(), "");
    let err = fails(&promax_in(
        tmp.path(),
        &["train", s(&cfg), "--out", s(&run)],
    ));
    assert!(
        err.contains("started run") && err.contains("--resume"),
        "{err}"
    );
}

/// Holds `dir/train.lock` as a live `promax train` would (an exclusive flock), naming
/// this process; released when the returned file is dropped.
fn hold_lock(dir: &Path) -> std::fs::File {
    use std::os::fd::AsRawFd;
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("train.lock");
    std::fs::write(&path, format!("{} on test\n", std::process::id())).unwrap();
    let f = std::fs::File::open(&path).unwrap();
    // SAFETY: flock on the descriptor `f` owns.
    let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    assert_eq!(r, 0);
    f
}

#[test]
fn a_folder_locked_by_a_live_process_is_refused_with_its_pid() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("busy");
    let me = std::process::id();
    let held = hold_lock(&run);
    let cfg = quick(tmp.path(), "");
    let err = fails(&promax_in(
        tmp.path(),
        &["train", s(&cfg), "--out", s(&run)],
    ));
    assert!(
        err.contains(&me.to_string()) && err.contains("locked"),
        "{err}"
    );
    let err = fails(&promax_in(
        tmp.path(),
        &["train", s(&cfg), "--out", s(&run), "--overwrite"],
    ));
    assert!(err.contains(&me.to_string()), "{err}");
    // The same file, no longer held (its process ended): the run goes ahead.
    drop(held);
    assert!(run.join("train.lock").exists());
    ok(&promax_in(
        tmp.path(),
        &["train", s(&cfg), "--out", s(&run)],
    ));
    assert!(!run.join("train.lock").exists());
}

/// A one-cell compare file in `dir`.
fn one_cell_compare(dir: &Path) -> PathBuf {
    let c = repo().join("configs");
    let body = format!(
        "title = \"one\"\nlayers = [{:?}]\nsets = [\"train.max_epochs=2\", \"train.threads=1\"]\n\
         seeds = [1]\nbaseline = \"base\"\n\
         [[datasets]]\nname = \"syn\"\nconfig = {:?}\n\
         [[backbones]]\nname = \"mf\"\nconfig = {:?}\n\
         [[methods]]\nname = \"base\"\nconfig = []\n",
        c.join("base.toml").display().to_string(),
        c.join("datasets/synthetic.toml").display().to_string(),
        c.join("models/mf.toml").display().to_string(),
    );
    let p = dir.join("one.toml");
    std::fs::write(&p, body).unwrap();
    p
}

#[test]
fn compare_refuses_a_cell_a_live_process_trains_in() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = one_cell_compare(tmp.path());
    let out = tmp.path().join("out");
    let cell = out.join("cells/syn-mf-base-s1");
    let me = std::process::id();
    let _held = hold_lock(&cell);
    let err = fails(&promax_in(
        tmp.path(),
        &["compare", s(&cfg), "--out", s(&out)],
    ));
    assert!(
        err.contains("syn-mf-base-s1") && err.contains(&format!("pid {me}")),
        "{err}"
    );
}

#[test]
fn a_compare_report_over_a_mixed_cell_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = one_cell_compare(tmp.path());
    let out = tmp.path().join("out");
    ok(&promax_in(
        tmp.path(),
        &["compare", s(&cfg), "--out", s(&out)],
    ));
    let cell = out.join("cells/syn-mf-base-s1");
    let other = other_run(tmp.path());
    std::fs::copy(other.join("metrics.json"), cell.join("metrics.json")).unwrap();
    let err = fails(&promax_in(
        tmp.path(),
        &["compare", s(&cfg), "--out", s(&out), "--report-only"],
    ));
    assert!(
        err.contains("syn-mf-base-s1") && err.contains("mixes runs"),
        "{err}"
    );
}

#[test]
fn recommend_never_writes_over_a_file_without_asking() {
    let tmp = tempfile::tempdir().unwrap();
    let run = copy_run(tmp.path(), "run");
    let out = tmp.path().join("recs.tsv");
    std::fs::write(&out, "keep me\n").unwrap();
    let err = fails(&promax_in(
        tmp.path(),
        &["recommend", s(&run), "--all", "--out", s(&out)],
    ));
    assert!(
        err.contains("recs.tsv") && err.contains("--overwrite"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "keep me\n");
    // Not even with --overwrite over the run's own files.
    let metrics = run.join("metrics.json");
    let before = std::fs::read(&metrics).unwrap();
    let err = fails(&promax_in(
        tmp.path(),
        &[
            "recommend",
            s(&run),
            "--all",
            "--out",
            s(&metrics),
            "--overwrite",
        ],
    ));
    assert!(err.contains("file of the run"), "{err}");
    assert_eq!(std::fs::read(&metrics).unwrap(), before);
    ok(&promax_in(
        tmp.path(),
        &[
            "recommend",
            s(&run),
            "--all",
            "--out",
            s(&out),
            "--overwrite",
        ],
    ));
    assert!(std::fs::read_to_string(&out).unwrap().lines().count() > 1);
}
