//! Training a run folder, fresh, resumed or replaced: what `promax train` does, as a
//! library call (the command line and the Python bindings both go through it).
//!
//! The run trains on a thread pool of `train.threads` workers (the caller's own when it
//! already has that many), so that one process can train runs of different widths one
//! after another, as a notebook does; results do not depend on the thread count.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::augment;
use crate::config::{self, Config, KernelPathChoice};
use crate::data::load_dataset;
use crate::model::Model;
use crate::registry::Registry;
use crate::runfolder::lock::Lock;
use crate::runfolder::{self, identity, write_atomic, FolderState, RunSummary};
use crate::trainer::{self, EpochHook};

/// Runs `f` on `threads` rayon workers: on the current pool when it has that many (or
/// `threads` is 0, rayon's default), else on a pool built for it.
pub fn with_threads<T: Send>(threads: usize, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    if threads == 0 || rayon::current_num_threads() == threads {
        return f();
    }
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .context("setting up the thread pool")?
        .install(f)
}

/// Sets the process's kernel path to `train.kernel_path` (process-wide: one run at a time
/// per process, as every entry point here trains); a level the CPU lacks is an error.
pub fn use_kernel_path(cfg: &Config) -> Result<()> {
    use promax_kernels::KernelPath;
    let path = match cfg.train.kernel_path {
        KernelPathChoice::Auto => None,
        KernelPathChoice::Avx512 => Some(KernelPath::Avx512),
        KernelPathChoice::Avx2 => Some(KernelPath::Avx2),
        KernelPathChoice::Portable => Some(KernelPath::Portable),
    };
    promax_kernels::simd::force(path).map_err(|e| {
        anyhow::anyhow!(
            "config key `train.kernel_path` = {:?}: {e}",
            cfg.train.kernel_path.as_str()
        )
    })
}

/// Where and how a run trains: its output folder (default: the run's own folder under
/// `runs/`), whether a finished run there may be replaced, and a hook called after every
/// epoch.
#[derive(Default, Clone, Copy)]
pub struct TrainOptions<'a> {
    pub out: Option<&'a Path>,
    pub overwrite: bool,
    pub on_epoch: Option<&'a EpochHook<'a>>,
}

/// Trains the config `config` (with `key=value` `sets`) as `opts` say. Returns the run
/// folder and its summary.
pub fn train(
    config: &Path,
    sets: &[String],
    opts: TrainOptions<'_>,
) -> Result<(PathBuf, RunSummary)> {
    let cfg = config::load(config, sets)?;
    cfg.device.ensure_available()?;
    use_kernel_path(&cfg)?;
    with_threads(cfg.train.threads, || train_config(&cfg, opts))
}

fn train_config(cfg: &Config, opts: TrainOptions<'_>) -> Result<(PathBuf, RunSummary)> {
    let (out, overwrite) = (opts.out, opts.overwrite);
    let registry = Registry::discover(&cfg.plugin_dirs)?;
    let ds = load_dataset(&cfg.data)?;
    let model = Model::build(cfg, &registry, &ds, &augment::cache::SourceViews)?;
    let dir = trainer::run_dir(cfg, &ds, out)?;
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
    let text = config::to_toml(cfg);
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
        on_epoch: opts.on_epoch,
    };
    let s = match trainer::train(cfg, &ds, model, &target) {
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
    Ok((dir, s))
}

/// Continues the interrupted run in `dir` from its checkpoint (`on_epoch` as for
/// [`train`]).
pub fn resume(dir: &Path, on_epoch: Option<&EpochHook<'_>>) -> Result<RunSummary> {
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
    use_kernel_path(&cfg)?;
    with_threads(cfg.train.threads, || {
        let s = resume_config(&cfg, dir, &run_id, on_epoch)?;
        lock.release();
        Ok(s)
    })
}

fn resume_config(
    cfg: &Config,
    dir: &Path,
    run_id: &str,
    on_epoch: Option<&EpochHook<'_>>,
) -> Result<RunSummary> {
    let registry = Registry::discover(&cfg.plugin_dirs)?;
    let ds = load_dataset(&cfg.data)?;
    let model = Model::build(cfg, &registry, &ds, &augment::cache::SourceViews)?;
    if !dir.join(runfolder::resume::CHECKPOINT).exists() {
        tracing::info!(
            "{}: no checkpoint yet, training from epoch 1",
            dir.display()
        );
    }
    let target = trainer::RunTarget {
        dir,
        run_id,
        resume: true,
        on_epoch,
    };
    trainer::train(cfg, &ds, model, &target)
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
