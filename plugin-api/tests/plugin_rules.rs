//! The plugin rule, enforced: a plugin crate (`plugins/*`) depends on `promax-plugin-api`
//! and serialisation crates only, and computes through the kernel table the host lends it;
//! its `cdylib` crate adds only its own plugin crate and `abi_stable` (for the export
//! macro). A plugin that reached for `promax-kernels` or another plugin fails here.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// Dependencies any plugin crate may have (normal, dev or build).
const ALLOWED: &[&str] = &["promax-plugin-api", "serde", "serde_json", "toml"];

#[test]
fn plugin_crates_depend_on_the_plugin_api_alone() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--no-deps",
            "--offline",
            "--format-version",
            "1",
        ])
        .current_dir(&root)
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).expect("cargo metadata is JSON");
    let plugins = root
        .join("plugins")
        .canonicalize()
        .expect("plugins/ exists");
    let mut checked = 0;
    for pkg in meta["packages"].as_array().expect("packages") {
        let manifest = Path::new(pkg["manifest_path"].as_str().expect("manifest_path"));
        if !manifest.starts_with(&plugins) {
            continue;
        }
        let name = pkg["name"].as_str().expect("name");
        // A cdylib crate `promax-x-cdylib` exports `promax-x`.
        let exported = name.strip_suffix("-cdylib");
        for dep in pkg["dependencies"].as_array().expect("dependencies") {
            let d = dep["name"].as_str().expect("dependency name");
            let ok =
                ALLOWED.contains(&d) || exported.is_some_and(|own| d == own || d == "abi_stable");
            assert!(
                ok,
                "plugin crate `{name}` depends on `{d}`: plugins may use only {ALLOWED:?}"
            );
        }
        checked += 1;
    }
    assert!(
        checked >= 12,
        "found only {checked} plugin crates under plugins/"
    );
}
