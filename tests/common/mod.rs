//! Helpers shared by the integration tests that drive the `promax` binary.
#![allow(dead_code)] // each test crate uses a subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root (the tests run the binary from there, as a user would).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs `promax ARGS` from the repository root, with no plugin folders from the
/// environment.
pub fn promax(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_promax"))
        .args(args)
        .current_dir(repo())
        .env_remove("PROMAX_PLUGIN_PATH")
        .output()
        .expect("running promax")
}

/// stdout and stderr as text.
pub fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// stdout of a run that must have succeeded (both streams shown otherwise).
pub fn ok(o: &Output) -> String {
    let (out, err) = text(o);
    assert!(o.status.success(), "stdout:\n{out}\nstderr:\n{err}");
    out
}

/// The message of a command that must have failed cleanly: exit status 1 (an error, not a
/// panic's 101, not an abort's 134, not a signal), and an `error:` line on stderr.
pub fn fails(o: &Output) -> String {
    let (out, err) = text(o);
    assert_eq!(
        o.status.code(),
        Some(1),
        "expected a clean failure (exit 1); status {:?}\nstdout:\n{out}\nstderr:\n{err}",
        o.status
    );
    assert!(
        !err.contains("panicked") && err.contains("error:"),
        "no clean error message:\n{err}"
    );
    err
}

/// Runs `promax ARGS` from `dir` (for relative paths in a scratch folder).
pub fn promax_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_promax"))
        .args(args)
        .current_dir(dir)
        .env_remove("PROMAX_PLUGIN_PATH")
        .output()
        .expect("running promax")
}
