//! The path a third party takes: build the out-of-tree example plugin with plain
//! `cargo build` as a cdylib, then load it from a plugin folder and train with it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use promax::registry::{Origin, Registry};
use promax_plugin_api::PluginKind;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Builds examples/scaled-mf-plugin once per test process; returns the folder holding the
/// library.
fn plugin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let target = repo().join("target/example-plugin");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--quiet", "--manifest-path"])
            .arg(repo().join("examples/scaled-mf-plugin/Cargo.toml"))
            .arg("--target-dir")
            .arg(&target)
            .status()
            .expect("running cargo");
        assert!(status.success(), "building the example plugin failed");
        target.join("debug")
    })
}

#[test]
fn example_plugin_loads_from_a_folder() {
    let mut r = Registry::builtin();
    r.load_dir(plugin_dir()).unwrap();
    let e = r.get("scaled-mf", PluginKind::Backbone).unwrap();
    assert!(matches!(&e.origin, Origin::File(p) if p.starts_with(plugin_dir())));
    assert!(e.info.hparams.iter().any(|h| h.name.as_str() == "scale"));
    // The same library found twice is a name clash, reported with both origins.
    let lib = match &e.origin {
        Origin::File(p) => p.clone(),
        Origin::BuiltIn => unreachable!(),
    };
    let err = r.load_file(&lib).err().unwrap().to_string();
    assert!(err.contains("scaled-mf") && err.contains("twice"), "{err}");
}

#[test]
fn example_plugin_trains_from_config_through_the_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let quick = repo().join("configs/experiments/quickstart.toml");
    let cfg = tmp.path().join("scaled.toml");
    std::fs::write(
        &cfg,
        format!(
            "extends = {:?}\n[model]\nbackbone = \"scaled-mf\"\n[plugins.scaled-mf]\nscale = 0.5\n[train]\nmax_epochs = 3\n",
            quick.display().to_string()
        ),
    )
    .unwrap();
    let run = tmp.path().join("run");
    let run_cli = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_promax"))
            .args(args)
            .env("PROMAX_PLUGIN_PATH", plugin_dir())
            .output()
            .unwrap()
    };
    let o = run_cli(&["plugins"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.lines()
            .any(|l| l.starts_with("scaled-mf") && l.contains(".so")),
        "{out}"
    );
    let o = run_cli(&[
        "train",
        cfg.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(m["backbone"], "scaled-mf");
}

/// The example predates input masks: it declares no node-input tables, so pairing it with
/// RLMRec-Gen (which masks input rows) is refused, naming both plugins, before training.
#[test]
fn a_backbone_without_node_inputs_is_refused_with_rlmrec_gen() {
    let tmp = tempfile::tempdir().unwrap();
    let quick = repo().join("configs/experiments/quickstart.toml");
    let gen = repo().join("configs/models/rlmrec-gen.toml");
    let cfg = tmp.path().join("scaled-gen.toml");
    std::fs::write(
        &cfg,
        format!(
            "extends = [{:?}, {:?}]\n[model]\nbackbone = \"scaled-mf\"\n[train]\nmax_epochs = 1\n",
            quick.display().to_string(),
            gen.display().to_string()
        ),
    )
    .unwrap();
    let run = tmp.path().join("run");
    let o = Command::new(env!("CARGO_BIN_EXE_promax"))
        .args([
            "train",
            cfg.to_str().unwrap(),
            "--out",
            run.to_str().unwrap(),
        ])
        .env("PROMAX_PLUGIN_PATH", plugin_dir())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "scaled-mf + rlmrec-gen trained: {err}");
    assert!(
        err.contains("augmenter `rlmrec-gen`")
            && err.contains("backbone `scaled-mf` declares no node-input tables"),
        "{err}"
    );
    assert!(!run.join("metrics.json").exists());
}
