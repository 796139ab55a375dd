//! The profile augmenters (ProMax, RLMRec-Con, RLMRec-Gen) end to end on the built-in
//! synthetic dataset: profiles that carry the planted signal lift the backbone's test
//! recall, noise profiles do not.

use std::path::Path;

mod common;
use common::{ok, promax};

/// The augmenters under test, each against lightgcn-synthetic.toml.
const WITH_PROFILES: [&str; 2] = [
    "configs/experiments/promax-lightgcn-synthetic.toml",
    "configs/experiments/rlmrec-con-lightgcn-synthetic.toml",
];

fn test_recall(config: &str, sets: &[&str], out: &Path) -> f64 {
    let out_s = out.to_str().unwrap();
    let mut args = vec!["train", config, "--out", out_s];
    for s in sets {
        args.extend(["--set", s]);
    }
    ok(&promax(&args));
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
    m["test"]["recall@20"].as_f64().unwrap()
}

/// Test recall@20 of the bare backbone and of each augmenter, on the same data.
fn recalls(sets: &[&str]) -> (f64, Vec<(&'static str, f64)>) {
    let tmp = tempfile::tempdir().unwrap();
    let base = test_recall(
        "configs/experiments/lightgcn-synthetic.toml",
        sets,
        &tmp.path().join("base"),
    );
    let with = WITH_PROFILES
        .iter()
        .enumerate()
        .map(|(i, c)| (*c, test_recall(c, sets, &tmp.path().join(i.to_string()))))
        .collect();
    (base, with)
}

#[test]
fn signal_carrying_profiles_raise_test_recall() {
    let (base, with) = recalls(&[]);
    for (config, r) in with {
        assert!(r > base + 0.03, "{config}: {r:.4} vs LightGCN {base:.4}");
    }
}

#[test]
fn without_signal_the_profiles_do_not_help() {
    let (base, with) = recalls(&["data.synthetic.profile_signal=0"]);
    for (config, r) in with {
        assert!(
            r < base + 0.01,
            "noise profiles should not help: {config}: {r:.4} vs LightGCN {base:.4}"
        );
    }
}

/// RLMRec-Gen's regime: it hides 15% of all input rows at every step, BPR included, so it
/// trains slower than the bare backbone and needs runs to convergence (at the 90-epoch cap
/// of lightgcn-synthetic.toml it is still behind), and it pays off where interactions are
/// sparse enough that the profiles carry what they lack (5 per user here).
const GEN_REGIME: [&str; 3] = [
    "data.synthetic.mean_interactions=5",
    "train.max_epochs=600",
    "eval.patience=10",
];

#[test]
fn rlmrec_gen_lifts_with_signal_and_not_with_noise() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |config: &str, extra: &[&str], name: &str| {
        let sets: Vec<&str> = GEN_REGIME.iter().chain(extra).copied().collect();
        test_recall(config, &sets, &tmp.path().join(name))
    };
    let gen = "configs/experiments/rlmrec-gen-lightgcn-synthetic.toml";
    // The interactions do not depend on profile_signal, so one bare run is the base of both.
    let base = run("configs/experiments/lightgcn-synthetic.toml", &[], "base");
    let with_signal = run(gen, &[], "gen");
    let with_noise = run(gen, &["data.synthetic.profile_signal=0"], "gen-noise");
    assert!(
        with_signal > base + 0.05,
        "RLMRec-Gen {with_signal:.4} vs LightGCN {base:.4}"
    );
    assert!(
        with_noise < base + 0.01,
        "noise profiles should not help RLMRec-Gen: {with_noise:.4} vs LightGCN {base:.4}"
    );
}
