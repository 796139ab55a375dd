//! `promax train` (fresh, `--resume`d or `--overwrite`n) and `promax eval`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use promax::augment;
use promax::config;
use promax::data::load_dataset;
use promax::model::Model;
use promax::registry::Registry;
use promax::runfolder::lock::Lock;
use promax::runfolder::{self, identity, write_atomic, FolderState};
use promax::trainer;

use super::init_threads;

pub fn cmd_train(
    config: Option<&Path>,
    sets: &[String],
    out: Option<&Path>,
    resume: Option<&Path>,
    overwrite: bool,
) -> Result<()> {
    if let Some(dir) = resume {
        return resume_run(dir);
    }
    let config = config.context("a config file is needed (or --resume RUN_DIR)")?;
    let cfg = config::load(config, sets)?;
    cfg.device.ensure_available()?;
    init_threads(cfg.train.threads)?;
    let registry = Registry::discover(&cfg.plugin_dirs)?;
    let ds = load_dataset(&cfg.data)?;
    let model = Model::build(&cfg, &registry, &ds, &augment::cache::SourceViews)?;
    let dir = trainer::run_dir(&cfg, &ds, out)?;
    // Held until the run has finished (and, when replacing, been swapped in): nobody else
    // can start, resume or replace a run here while this one decides and trains.
    let lock = Lock::acquire(&dir)?;
    let state = runfolder::folder_state(&dir);
    let replace = match (&state, overwrite) {
        (FolderState::Fresh, _) => false,
        (_, true) => true,
        (FolderState::Finished, false) => anyhow::bail!(
            "{} holds a finished run (metrics.json); results are never overwritten without \
             asking: pass --overwrite to replace it, or choose another --out / run.name",
            dir.display()
        ),
        (FolderState::Started(files), false) => anyhow::bail!(
            "{} holds a started run ({}); `promax train --resume {}` continues it, --overwrite \
             replaces it",
            dir.display(),
            files.join(", "),
            dir.display()
        ),
    };
    let text = config::to_toml(&cfg);
    let run_id = identity::run_id(&text);
    // A replacement trains beside the old run and is swapped in only when it has finished.
    let work = if replace {
        sibling(&dir, "new")?
    } else {
        dir.clone()
    };
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    write_atomic(
        &work.join("config.toml"),
        identity::config_file(&text).as_bytes(),
    )?;
    tracing::info!(
        "training {} on {} ({} users, {} items, {} train pairs) into {} (run {run_id})",
        cfg.model.backbone,
        ds.name,
        ds.n_users,
        ds.n_items,
        ds.train.len(),
        dir.display()
    );
    let target = trainer::RunTarget {
        dir: &work,
        run_id: &run_id,
        resume: false,
    };
    let s = match trainer::train(&cfg, &ds, model, &target) {
        Ok(s) => s,
        Err(e) if replace => {
            // A failed replacement is of no use: the old run stays as it was.
            let _ = std::fs::remove_dir_all(&work);
            return Err(e.context(format!(
                "the replacement run failed; the run in {} is untouched",
                dir.display()
            )));
        }
        Err(e) => return Err(e),
    };
    if replace {
        swap_in(&work, &dir)?;
    }
    lock.release();
    print_summary(&dir, &s);
    Ok(())
}

/// Continues the interrupted run in `dir` from its checkpoint.
pub fn resume_run(dir: &Path) -> Result<()> {
    if !dir.join("config.toml").is_file() {
        anyhow::bail!("{}: no config.toml, not a run folder", dir.display());
    }
    // Taken before anything is checked, so that a run finishing meanwhile is seen finished.
    let lock = Lock::acquire(dir)?;
    let run_id = identity::verify(dir)?.with_context(|| {
        format!(
            "{}: written before runs could be resumed (no run id in config.toml)",
            dir.display()
        )
    })?;
    if runfolder::folder_state(dir) == FolderState::Finished {
        anyhow::bail!(
            "{} holds a finished run (metrics.json): nothing to resume",
            dir.display()
        );
    }
    let cfg = config::load_run(&dir.join("config.toml"))?;
    init_threads(cfg.train.threads)?;
    let registry = Registry::discover(&cfg.plugin_dirs)?;
    let ds = load_dataset(&cfg.data)?;
    let model = Model::build(&cfg, &registry, &ds, &augment::cache::SourceViews)?;
    if !dir.join(runfolder::resume::CHECKPOINT).exists() {
        tracing::info!(
            "{}: no checkpoint yet, training from epoch 1",
            dir.display()
        );
    }
    let target = trainer::RunTarget {
        dir,
        run_id: &run_id,
        resume: true,
    };
    let s = trainer::train(&cfg, &ds, model, &target)?;
    lock.release();
    print_summary(dir, &s);
    Ok(())
}

fn print_summary(dir: &Path, s: &promax::runfolder::RunSummary) {
    println!(
        "{}: best epoch {} of {}, test recall@20 {:.4} ndcg@20 {:.4} ({:.3} s/epoch, {:.3} s/eval)",
        dir.display(),
        s.best_epoch,
        s.epochs_run,
        s.test.get("recall@20").copied().unwrap_or(f64::NAN),
        s.test.get("ndcg@20").copied().unwrap_or(f64::NAN),
        s.seconds_per_epoch,
        s.eval_seconds
    );
}

/// A hidden folder beside `dir` for `what` (`new`, `old`), unique to this process.
fn sibling(dir: &Path, what: &str) -> Result<PathBuf> {
    let name = dir
        .file_name()
        .with_context(|| format!("{}: not a folder name", dir.display()))?
        .to_string_lossy();
    let parent = dir.parent().unwrap_or(Path::new(""));
    Ok(parent.join(format!(".{name}.{what}-{}", std::process::id())))
}

/// Replaces the run in `dir` by the finished one in `new`: the old folder is renamed
/// aside, the new one renamed into place, then the old one removed. A kill between the
/// renames leaves both runs whole under their hidden names, never a folder mixing them.
fn swap_in(new: &Path, dir: &Path) -> Result<()> {
    let old = sibling(dir, "old")?;
    std::fs::rename(dir, &old).with_context(|| {
        format!(
            "moving {} aside; the new run is kept in {}",
            dir.display(),
            new.display()
        )
    })?;
    std::fs::rename(new, dir).with_context(|| {
        format!(
            "renaming {} to {}; the old run is kept in {}",
            new.display(),
            dir.display(),
            old.display()
        )
    })?;
    std::fs::remove_dir_all(&old).with_context(|| format!("removing {}", old.display()))
}

pub fn cmd_eval(run: &Path, add_groups: bool) -> Result<()> {
    runfolder::require_finished(run)?;
    let cfg = config::load_run(&run.join("config.toml"))?;
    init_threads(cfg.train.threads)?;
    let registry = Registry::discover(&cfg.plugin_dirs)?;
    let ds = load_dataset(&cfg.data)?;
    let model = Model::build(&cfg, &registry, &ds, &augment::cache::SourceViews)?;
    let (valid, test) = trainer::evaluate_run(&cfg, &ds, model, run)?;
    let groups =
        promax::eval::user_groups(&test, &augment::counts(&ds.train, ds.n_users), &cfg.eval.ks);
    if add_groups {
        // Evaluation is deterministic; the tolerance only absorbs summation-order noise.
        promax::runfolder::add_test_groups(run, &test.metrics, groups.clone(), 1e-6)?;
    }
    let out = serde_json::json!({
        "valid": valid.metrics,
        "test": test.metrics,
        "test_groups": groups,
        "valid_users": valid.users.len(),
        "test_users": test.users.len(),
        "valid_seconds": valid.seconds,
        "test_seconds": test.seconds,
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}
