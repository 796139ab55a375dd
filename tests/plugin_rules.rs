//! The plugin rules, checked: a plugin crate depends on the plugin API alone (so that any
//! host, with any kernel backend, can load it), and every built-in plugin documents each
//! of its hyperparameters.

use std::path::{Path, PathBuf};
use std::process::Command;

use promax::registry::Registry;
use promax_plugin_api::sdk::UNDOCUMENTED;
use serde_json::Value;

mod common;
use common::repo;

/// What any plugin crate may depend on: the plugin API and the formats it parses.
const ALLOWED: &[&str] = &["promax-plugin-api", "serde", "serde_json", "toml"];

/// What a `cdylib` crate may depend on besides [`ALLOWED`] and its own plugin crate:
/// `export_plugin!` expands abi_stable's `#[export_root_module]`, whose code names
/// `::abi_stable` directly.
const CDYLIB_ALSO: &[&str] = &["abi_stable"];

/// The packages `cargo metadata` lists for the workspace of `manifest` (members only, read
/// offline: the rule is about declared dependencies, not what they resolve to).
fn members(manifest: &Path) -> Vec<Value> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .arg("--locked")
        .arg("--manifest-path")
        .arg(manifest)
        .output()
        .expect("running cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata of {}: {}",
        manifest.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON");
    v["packages"].as_array().cloned().unwrap_or_default()
}

/// The root workspace and every example, which is a workspace of its own.
fn manifests(root: &Path) -> Vec<PathBuf> {
    let mut all = vec![root.join("Cargo.toml")];
    let examples = std::fs::read_dir(root.join("examples")).expect("reading examples/");
    all.extend(
        examples
            .map(|e| e.expect("reading examples/").path().join("Cargo.toml"))
            .filter(|m| m.is_file()),
    );
    all
}

fn is_cdylib(package: &Value) -> bool {
    package["targets"].as_array().is_some_and(|targets| {
        targets
            .iter()
            .filter_map(|t| t["crate_types"].as_array())
            .flatten()
            .any(|kind| kind == "cdylib")
    })
}

/// `name (kind)` of every dependency of `package` that the rules do not allow.
fn offending(package: &Value) -> Vec<String> {
    let dir = Path::new(package["manifest_path"].as_str().unwrap_or_default())
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let cdylib = is_cdylib(package);
    let own_plugin = |dep: &Value| {
        // The plugin crate a cdylib exports is the one in the folder above it.
        cdylib && dep["path"].as_str().map(Path::new) == dir.parent()
    };
    let deps = package["dependencies"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    deps.iter()
        .filter(|dep| {
            let name = dep["name"].as_str().unwrap_or_default();
            !(ALLOWED.contains(&name) || (cdylib && CDYLIB_ALSO.contains(&name)) || own_plugin(dep))
        })
        .map(|dep| {
            let kind = dep["kind"].as_str().unwrap_or("normal");
            format!("{} ({kind})", dep["name"].as_str().unwrap_or_default())
        })
        .collect()
}

#[test]
fn plugin_crates_depend_on_the_plugin_api_alone() {
    let root = repo().canonicalize().expect("the repository root");
    let plugin_dirs = [root.join("plugins"), root.join("examples")];
    let mut broken = Vec::new();
    let mut checked = 0;
    for manifest in manifests(&root) {
        for package in members(&manifest) {
            let path = Path::new(package["manifest_path"].as_str().unwrap_or_default());
            let Ok(relative) = path.strip_prefix(&root) else {
                continue;
            };
            if !plugin_dirs.iter().any(|d| path.starts_with(d)) {
                continue;
            }
            checked += 1;
            let bad = offending(&package);
            if !bad.is_empty() {
                broken.push(format!(
                    "{} ({}) depends on {}",
                    package["name"].as_str().unwrap_or_default(),
                    relative.display(),
                    bad.join(", ")
                ));
            }
        }
    }
    assert!(
        checked > 0,
        "no plugin crate found under {}",
        root.display()
    );
    assert!(
        broken.is_empty(),
        "a plugin crate may depend only on {} (a cdylib also on {} and its own plugin \
         crate):\n  {}",
        ALLOWED.join(", "),
        CDYLIB_ALSO.join(", "),
        broken.join("\n  ")
    );
}

#[test]
fn every_built_in_hyperparameter_has_a_doc() {
    let registry = Registry::builtin();
    let undocumented: Vec<String> = registry
        .entries()
        .flat_map(|e| {
            e.info
                .hparams
                .iter()
                .filter(|h| h.doc.as_str() == UNDOCUMENTED || h.doc.trim().is_empty())
                .map(|h| format!("{}.{}", e.info.name, h.name))
        })
        .collect();
    assert!(
        undocumented.is_empty(),
        "hyperparameters without a `///` comment on their field: {}",
        undocumented.join(", ")
    );
}
