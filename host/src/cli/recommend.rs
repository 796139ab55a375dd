//! `promax recommend`.

use std::path::Path;

use anyhow::{Context, Result};
use promax::recommend::Recommender;
use promax::runfolder::{self, write_atomic};

/// Refuses to write over an existing file unless asked, and ever over a run's own files.
fn check_new_output(path: &Path, run: &Path, overwrite: bool) -> Result<()> {
    let same_dir = match (path.parent(), run.canonicalize()) {
        (Some(p), Ok(r)) => p.canonicalize().is_ok_and(|p| p == r),
        _ => false,
    };
    if same_dir
        && path.file_name().is_some_and(|n| {
            n == "config.toml" || runfolder::identity::RESULT_FILES.iter().any(|f| n == *f)
        })
    {
        anyhow::bail!(
            "--out {} is a file of the run itself; choose another path",
            path.display()
        );
    }
    if path.exists() && !overwrite {
        anyhow::bail!(
            "--out {} exists; pass --overwrite to replace it, or choose another path",
            path.display()
        );
    }
    Ok(())
}

pub fn cmd_recommend(
    run: &Path,
    users: &[String],
    all: bool,
    (out, overwrite): (Option<&Path>, bool),
    k: usize,
) -> Result<()> {
    if let Some(path) = out {
        check_new_output(path, run, overwrite)?;
    }
    let rec = Recommender::from_run(run)?;
    let users = rec.user_ids(users)?;
    let users = users.as_slice();
    if all {
        let out = out.context("--all needs --out FILE")?;
        rec.write_all(k, out)?;
        println!(
            "wrote {} recommendations for {} users to {}",
            k,
            rec.n_users(),
            out.display()
        );
        return Ok(());
    }
    if users.is_empty() {
        anyhow::bail!("name users with --users 1,2,3, or use --all --out FILE");
    }
    match out {
        Some(path) => {
            let mut text = Vec::new();
            rec.write(users, k, &mut text)?;
            write_atomic(path, &text)?;
        }
        None => rec.write(users, k, &mut std::io::stdout().lock())?,
    }
    Ok(())
}
