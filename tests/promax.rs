//! ProMax end to end on the built-in synthetic dataset: profiles that carry the planted
//! signal lift the backbone's test recall.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn test_recall(config: &str, sets: &[&str], out: &Path) -> f64 {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_promax"));
    cmd.arg("train")
        .arg(repo().join(config))
        .arg("--out")
        .arg(out);
    for s in sets {
        cmd.args(["--set", s]);
    }
    let o = cmd.current_dir(repo()).output().expect("running promax");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
    m["test"]["recall@20"].as_f64().unwrap()
}

#[test]
fn signal_carrying_profiles_raise_test_recall() {
    let tmp = tempfile::tempdir().unwrap();
    let base = test_recall(
        "configs/experiments/lightgcn-synthetic.toml",
        &[],
        &tmp.path().join("a"),
    );
    let pm = test_recall(
        "configs/experiments/promax-lightgcn-synthetic.toml",
        &[],
        &tmp.path().join("b"),
    );
    assert!(pm > base + 0.03, "ProMax {pm:.4} vs LightGCN {base:.4}");
}

#[test]
fn without_signal_the_profiles_do_not_help() {
    let tmp = tempfile::tempdir().unwrap();
    let noise = ["data.synthetic.profile_signal=0"];
    let base = test_recall(
        "configs/experiments/lightgcn-synthetic.toml",
        &noise,
        &tmp.path().join("a"),
    );
    let pm = test_recall(
        "configs/experiments/promax-lightgcn-synthetic.toml",
        &noise,
        &tmp.path().join("b"),
    );
    assert!(
        pm < base + 0.01,
        "noise profiles should not help: ProMax {pm:.4} vs {base:.4}"
    );
}
