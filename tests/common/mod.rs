//! Helpers shared by the integration tests that drive the `promax` binary.
#![allow(dead_code)] // each test crate uses a subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root (the tests run the binary from there, as a user would).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Where the tests (and CI) find the published datasets, relative to the repository root.
const SHARED_DATA: &str = "../shared/data";

/// The folder of the published dataset `name` (`amazon`, `ml100k`).
pub fn shared_data(name: &str) -> PathBuf {
    repo().join(SHARED_DATA).join(name)
}

/// `promax` with no plugin folders from the environment, and the shipped dataset configs
/// (`data.root = "data"`) pointed at the datasets the tests read, unless the environment
/// already points them somewhere. Every spawn goes through it: `data.root` is part of a
/// run's resolved config, so two spawns must agree on it to resume each other's runs.
pub fn promax_command() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_promax"));
    cmd.env_remove("PROMAX_PLUGIN_PATH");
    if std::env::var_os("PROMAX_DATA__ROOT").is_none() {
        cmd.env("PROMAX_DATA__ROOT", repo().join(SHARED_DATA));
    }
    cmd
}

/// Runs `promax ARGS` from the repository root.
pub fn promax(args: &[&str]) -> Output {
    promax_command()
        .args(args)
        .current_dir(repo())
        .output()
        .expect("running promax")
}

/// `promax CMD FILE --out OUT EXTRA...` from the repository root; its stdout, which it
/// must have succeeded.
pub fn run_file(cmd: &str, file: &Path, out: &Path, extra: &[&str]) -> String {
    let mut args = vec![cmd, file.to_str().unwrap(), "--out", out.to_str().unwrap()];
    args.extend(extra);
    ok(&promax(&args))
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
    promax_command()
        .args(args)
        .current_dir(dir)
        .output()
        .expect("running promax")
}

/// A 2 backbones (MF, LightGCN) × 2 methods (bare, ProMax SDR) × 2 seeds (11, 12) compare
/// file on the synthetic data with `users` × `items`, `max_epochs` epochs validated every
/// epoch on one thread, written to `dir/tiny.toml`.
pub fn tiny_compare(dir: &Path, max_epochs: usize, users: usize, items: usize) -> PathBuf {
    let c = repo().join("configs");
    let p = |s: &str| c.join(s).display().to_string();
    let body = format!(
        "title = \"tiny\"\nlayers = [{base:?}]\n\
         sets = [\"train.max_epochs={max_epochs}\", \"eval.every=1\", \"train.threads=1\"]\n\
         seeds = [11, 12]\nbaseline = \"base\"\n\
         [[datasets]]\nname = \"syn\"\nconfig = {ds:?}\n\
         sets = [\"data.synthetic.n_users={users}\", \"data.synthetic.n_items={items}\"]\n\
         [[backbones]]\nname = \"mf\"\nconfig = {mf:?}\n\
         [[backbones]]\nname = \"lightgcn\"\nconfig = {lgn:?}\n\
         [[methods]]\nname = \"base\"\nconfig = []\n\
         [[methods]]\nname = \"promax\"\nconfig = [{pm:?}]\n\
         sets = [\"plugins.promax.s2dr=false\", \"plugins.promax.reduction=joint\"]\n",
        base = p("base.toml"),
        ds = p("datasets/synthetic.toml"),
        mf = p("models/mf.toml"),
        lgn = p("models/lightgcn.toml"),
        pm = p("models/promax.toml"),
    );
    let path = dir.join("tiny.toml");
    std::fs::write(&path, body).unwrap();
    path
}

/// Reads one HTTP/1.1 request from a loopback test server's connection: its path and body
/// (the body as long as its `Content-Length`).
pub fn read_request(conn: &std::net::TcpStream) -> std::io::Result<(String, Vec<u8>)> {
    use std::io::{BufRead, Read};
    let mut reader = std::io::BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
    let mut len = 0;
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0; len];
    reader.read_exact(&mut body)?;
    Ok((path, body))
}
