//! Running the cells of a plan: each cell is `promax train OUT/cells/<cell>/config.toml
//! --out OUT/cells/<cell>` in a child process of the current executable, one at a time or
//! `jobs` at a time; a cell folder with `metrics.json` is finished and skipped, one with a
//! checkpoint of the same configuration (an interrupted run) continues from it
//! (`promax train --resume`), any other unfinished one is removed and run again. Children
//! die with the compare process, and a cell a live process trains in is never touched. A
//! [`Watch`] (tune's pruner) may stop a cell for good: its `stopped.json` marks it finished.
//! With [`Executor::Slurm`] the same commands run as the tasks of a job array
//! (`slurm.rs`); those outlive this process.

use std::collections::VecDeque;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{mpsc, Mutex};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};

use super::spec::{Cell, Plan};
use crate::config::{self, Config};
use crate::runfolder::identity;
use crate::runfolder::lock::live_owner;
use crate::runfolder::resume::CHECKPOINT;
use crate::runfolder::{self, write_atomic, RunSummary};

/// How to run a plan.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The output folder (cells under `cells/`, reports beside).
    pub out: PathBuf,
    /// Cells trained at the same time (child processes).
    pub jobs: usize,
    /// Stop after starting this many cells (tests of resumption); `None` = all.
    pub max_cells: Option<usize>,
    /// The `promax` executable the children run.
    pub exe: PathBuf,
    /// Where the cells train.
    pub executor: Executor,
    /// Print each finished cell's validation metrics instead of its test metrics.
    pub valid_only: bool,
}

/// Where cells train: child processes of this one, or tasks of a Slurm job array.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Executor {
    #[default]
    Local,
    Slurm(super::slurm::SlurmOptions),
}

/// What a run of the matrix did.
#[derive(Debug, Default)]
pub struct RunOutcome {
    /// Cells already finished before this run (skipped).
    pub skipped: usize,
    /// Cells trained now.
    pub ran: usize,
    /// Cells that failed now: (name, log file).
    pub failed: Vec<(String, PathBuf)>,
    /// Cells not finished when the run ended (failed, or left by `max_cells`).
    pub unfinished: usize,
}

/// The folder of a cell.
pub fn cell_dir(out: &Path, cell: &Cell) -> PathBuf {
    out.join("cells").join(&cell.name)
}

/// The marker a [`Watch`] leaves in a cell it stopped (`promax tune`'s pruning): the epoch
/// it stopped at, and the run's identity.
pub const STOPPED: &str = "stopped.json";

/// Whether a cell has finished: its `metrics.json` exists (the trainer writes it last), or
/// a [`Watch`] stopped it for good.
pub fn is_finished(out: &Path, cell: &Cell) -> bool {
    let dir = cell_dir(out, cell);
    dir.join("metrics.json").is_file() || dir.join(STOPPED).is_file()
}

/// The epoch a [`Watch`] stopped a cell at, if it did.
pub fn stopped_at(out: &Path, cell: &Cell) -> Result<Option<usize>> {
    let path = cell_dir(out, cell).join(STOPPED);
    if !path.is_file() {
        return Ok(None);
    }
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let epoch = v["epoch"]
        .as_u64()
        .with_context(|| format!("{}: no `epoch`", path.display()))?;
    Ok(Some(epoch as usize))
}

/// Looks at a cell while it trains (and once more when it ends): `Some(epoch)` stops it
/// for good, as if it had ended at that epoch. The decision must depend on the cell's
/// `epochs.csv` rows alone, never on when it is asked, so that a rerun decides the same.
pub trait Watch: Sync {
    fn stop_at(&self, cell: &Cell, dir: &Path) -> Option<usize>;
}

/// The watch of `promax compare`: never stops a cell.
pub struct NoWatch;

impl Watch for NoWatch {
    fn stop_at(&self, _: &Cell, _: &Path) -> Option<usize> {
        None
    }
}

/// How a cell ended.
#[derive(Debug)]
pub enum CellEnd {
    Trained(Box<RunSummary>),
    /// A [`Watch`] stopped it at this epoch.
    Stopped(usize),
}

/// Worker threads per cell: the cell's own `train.threads` when it sets one, else the
/// cores shared among the jobs.
fn cell_config(cell: &Cell, jobs: usize) -> Config {
    let mut cfg = cell.config.clone();
    if jobs > 1 && cfg.train.threads == 0 {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        cfg.train.threads = (cores / jobs).max(1);
    }
    cfg
}

/// The first line where a finished cell's `config.toml` differs from what the compare file
/// now resolves to (`train.threads` aside: results do not depend on it), if any.
pub fn config_change(out: &Path, cell: &Cell) -> Option<String> {
    let path = cell_dir(out, cell).join("config.toml");
    let stored = match config::load_run(&path) {
        Ok(c) => c,
        Err(e) => return Some(format!("cannot read {}: {e}", path.display())),
    };
    let mut now = cell.config.clone();
    now.train.threads = stored.train.threads;
    if stored == now {
        return None;
    }
    let (a, b) = (config::to_toml(&stored), config::to_toml(&now));
    let (mut section, mut found) = (String::new(), None);
    for (x, y) in a.lines().zip(b.lines()) {
        if x.starts_with('[') {
            section = x.to_owned();
        }
        if x != y {
            found = Some(format!(
                "{section} `{x}` was run, the compare file now gives `{y}`"
            ));
            break;
        }
    }
    Some(found.unwrap_or_else(|| "the resolved configuration differs".into()))
}

fn progress(len: u64, pos: u64) -> ProgressBar {
    if !std::io::stdout().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template("cells [{bar:30}] {pos}/{len} {elapsed_precise} {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    pb.set_position(pos);
    pb.enable_steady_tick(std::time::Duration::from_secs(1));
    pb
}

/// What a worker reports to the thread that prints progress.
pub(crate) enum Event<'a> {
    Started(&'a Cell),
    Done(&'a Cell, Box<Result<CellEnd>>, f64),
}

/// A line printed above the progress bar, or on stdout when there is none.
fn say(pb: &ProgressBar, line: &str) {
    if pb.is_hidden() {
        println!("{line}");
    } else {
        pb.println(line);
    }
}

/// Whether an unfinished cell can continue from its checkpoint: one is there, every file
/// belongs to the run its config.toml describes, and that config is what the compare file
/// gives now.
fn resumable(out: &Path, cell: &Cell) -> bool {
    let dir = cell_dir(out, cell);
    dir.join(CHECKPOINT).is_file()
        && matches!(identity::verify(&dir), Ok(Some(_)))
        && config_change(out, cell).is_none()
}

/// Makes a child die with this process (Linux: `PR_SET_PDEATHSIG`), so that a killed
/// compare leaves no `promax train` writing into a cell that its resume would run again.
#[cfg(target_os = "linux")]
fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id();
    // SAFETY: the closure runs in the forked child before exec and calls only
    // async-signal-safe functions (prctl, getppid).
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl: then nobody would kill us.
            if libc::getppid() as u32 != parent {
                return Err(std::io::Error::other("the compare process has ended"));
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn die_with_parent(_cmd: &mut Command) {}

/// A cell made ready to train: its folder cleared or kept for resuming, its config
/// written, and the `promax` arguments that train it.
pub(crate) struct Prepared {
    pub dir: PathBuf,
    pub args: Vec<std::ffi::OsString>,
    pub log: PathBuf,
}

/// Makes a cell ready to train (`threads`: the worker threads of a cell that sets none).
pub(crate) fn prepare_cell(out: &Path, cell: &Cell, threads: usize) -> Result<Prepared> {
    let dir = cell_dir(out, cell);
    if let Some(owner) = live_owner(&dir) {
        bail!("process {} is training in {}", owner.pid, dir.display());
    }
    let resume = resumable(out, cell);
    if !resume && dir.exists() {
        std::fs::remove_dir_all(&dir)
            .with_context(|| format!("removing the unfinished {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let cfg_path = dir.join("config.toml");
    let mut args: Vec<std::ffi::OsString> = vec!["train".into()];
    if resume {
        args.extend(["--resume".into(), dir.clone().into_os_string()]);
    } else {
        let mut cfg = cell.config.clone();
        if cfg.train.threads == 0 {
            cfg.train.threads = threads;
        }
        write_atomic(&cfg_path, config::to_toml(&cfg).as_bytes())?;
        args.extend([
            cfg_path.into_os_string(),
            "--out".into(),
            dir.clone().into_os_string(),
        ]);
    }
    let log = dir.join("train.log");
    Ok(Prepared { dir, args, log })
}

/// The last non-empty line of a log (what a failed run said last).
pub(crate) fn last_line(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .to_owned()
}

/// How a cell that ran to its end (not stopped while running) ended: stopped after all
/// when its rows say so (a run may end between two looks), else its metrics.
pub(crate) fn ended(cell: &Cell, dir: &Path, watch: &dyn Watch) -> Result<CellEnd> {
    if let Some(epoch) = watch.stop_at(cell, dir) {
        return mark_stopped(dir, epoch);
    }
    runfolder::read_metrics(dir).map(|m| CellEnd::Trained(Box::new(m)))
}

/// Trains one cell in a child process; its output goes to `train.log` in the cell folder.
fn run_cell(
    exe: &Path,
    out: &Path,
    cell: &Cell,
    jobs: usize,
    watch: &dyn Watch,
) -> Result<CellEnd> {
    let threads = cell_config(cell, jobs).train.threads;
    let Prepared { dir, args, log } = prepare_cell(out, cell, threads)?;
    let mut cmd = Command::new(exe);
    cmd.args(&args);
    // A resumed cell's log continues the interrupted one's.
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .with_context(|| format!("creating {}", log.display()))?;
    die_with_parent(&mut cmd);
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file)
        .spawn()
        .with_context(|| format!("starting {}", exe.display()))?;
    let status = loop {
        let done = child.try_wait().inspect_err(|_| {
            let _ = child.kill();
        })?;
        if let Some(status) = done {
            break status;
        }
        if let Some(epoch) = watch.stop_at(cell, &dir) {
            // The decision reads the rows alone, so killing now or later stops the same
            // trial at the same epoch.
            let _ = child.kill();
            let _ = child.wait();
            return mark_stopped(&dir, epoch);
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    if !status.success() {
        bail!("{status}: {}", last_line(&log));
    }
    ended(cell, &dir, watch)
}

/// Leaves the [`STOPPED`] marker in a cell folder.
pub fn mark_stopped(dir: &Path, epoch: usize) -> Result<CellEnd> {
    let run_id = identity::config_id(dir)?.unwrap_or_default();
    let text = serde_json::json!({ "run_id": run_id, "epoch": epoch }).to_string();
    write_atomic(&dir.join(STOPPED), text.as_bytes())?;
    Ok(CellEnd::Stopped(epoch))
}

/// Runs every unfinished cell of `plan` (in plan order, `jobs` at a time).
pub fn run(plan: &Plan, opts: &RunOptions) -> Result<RunOutcome> {
    run_watched(plan, opts, &NoWatch)
}

/// [`run`], with `watch` looking at every cell while it trains.
pub fn run_watched(plan: &Plan, opts: &RunOptions, watch: &dyn Watch) -> Result<RunOutcome> {
    let out = &opts.out;
    std::fs::create_dir_all(out.join("cells"))
        .with_context(|| format!("creating {}", out.display()))?;
    let changed: Vec<String> = plan
        .cells
        .iter()
        .filter(|c| is_finished(out, c))
        .filter_map(|c| config_change(out, c).map(|why| format!("  {}: {why}", c.name)))
        .collect();
    if !changed.is_empty() {
        bail!(
            "finished cells in {} were run with another configuration than the compare file \
             now gives; delete their folders to run them again, or use another --out:\n{}",
            out.join("cells").display(),
            changed.join("\n")
        );
    }
    let busy: Vec<String> = plan
        .cells
        .iter()
        .filter_map(|c| {
            live_owner(&cell_dir(out, c)).map(|o| format!("  {}: pid {}", c.name, o.pid))
        })
        .collect();
    if !busy.is_empty() {
        bail!(
            "cells in {} are being trained by live processes (another promax compare on the \
             same --out?); wait for them or stop them:\n{}",
            out.join("cells").display(),
            busy.join("\n")
        );
    }
    let total = plan.cells.len();
    let todo: Vec<&Cell> = plan.cells.iter().filter(|c| !is_finished(out, c)).collect();
    let resumed = todo.iter().filter(|c| resumable(out, c)).count();
    let half = todo.iter().filter(|c| cell_dir(out, c).exists()).count() - resumed;
    let mut outcome = RunOutcome {
        skipped: total - todo.len(),
        ..RunOutcome::default()
    };
    let limit = opts.max_cells.unwrap_or(usize::MAX).min(todo.len());
    let jobs = opts.jobs.max(1);
    println!(
        "{}: {total} cells, {} finished already, {} to run{}{} ({} at a time) into {}",
        plan.title,
        outcome.skipped,
        todo.len(),
        if resumed > 0 {
            format!(" ({resumed} resumed from their checkpoint)")
        } else {
            String::new()
        },
        if half > 0 {
            format!(" ({half} unfinished, redone)")
        } else {
            String::new()
        },
        jobs.min(limit.max(1)),
        out.display()
    );
    let pb = progress(total as u64, outcome.skipped as u64);
    let queue = Mutex::new(todo[..limit].iter().copied().collect::<VecDeque<&Cell>>());
    let (tx, rx) = mpsc::channel::<Event>();
    let mut running: Vec<&str> = Vec::new();
    std::thread::scope(|s| {
        if let Executor::Slurm(slurm) = &opts.executor {
            let tx = tx.clone();
            let cells: Vec<&Cell> = todo[..limit].to_vec();
            s.spawn(move || {
                let array = super::slurm::Array {
                    cells: &cells,
                    out,
                    exe: &opts.exe,
                    k: jobs,
                    opts: slurm,
                    watch,
                };
                super::slurm::run(&array, &tx)
            });
        }
        let workers = match opts.executor {
            Executor::Local => jobs.min(limit),
            Executor::Slurm(_) => 0,
        };
        for _ in 0..workers {
            let tx = tx.clone();
            let queue = &queue;
            s.spawn(move || loop {
                let next = queue.lock().ok().and_then(|mut q| q.pop_front());
                let Some(cell) = next else { break };
                if tx.send(Event::Started(cell)).is_err() {
                    break;
                }
                let start = Instant::now();
                let r = run_cell(&opts.exe, out, cell, jobs, watch);
                if tx
                    .send(Event::Done(
                        cell,
                        Box::new(r),
                        start.elapsed().as_secs_f64(),
                    ))
                    .is_err()
                {
                    break;
                }
            });
        }
        drop(tx);
        for event in rx {
            let (cell, r, secs) = match event {
                Event::Started(cell) => {
                    running.push(&cell.name);
                    pb.set_message(format!("running {}", running.join(", ")));
                    continue;
                }
                Event::Done(cell, r, secs) => (cell, *r, secs),
            };
            running.retain(|n| *n != cell.name);
            pb.set_message(format!("running {}", running.join(", ")));
            pb.inc(1);
            let done = pb.position();
            match r {
                Ok(CellEnd::Stopped(epoch)) => {
                    outcome.ran += 1;
                    say(
                        &pb,
                        &format!("[{done}/{total}] {}: stopped at epoch {epoch}", cell.name),
                    );
                }
                Ok(CellEnd::Trained(sum)) => {
                    outcome.ran += 1;
                    // A study chooses on validation: it shows no test figure per run.
                    let (split, shown) = match opts.valid_only {
                        true => ("valid", &sum.valid),
                        false => ("test", &sum.test),
                    };
                    let m = |k: &str| shown.get(k).copied().unwrap_or(f64::NAN);
                    say(
                        &pb,
                        &format!(
                            "[{done}/{total}] {}: {split} recall@20 {:.4} ndcg@20 {:.4}, best \
                             epoch {} of {}, {:.2} s/epoch, {secs:.1} s",
                            cell.name,
                            m("recall@20"),
                            m("ndcg@20"),
                            sum.best_epoch,
                            sum.epochs_run,
                            sum.seconds_per_epoch
                        ),
                    );
                }
                Err(e) => {
                    let log = cell_dir(out, cell).join("train.log");
                    say(
                        &pb,
                        &format!(
                            "[{done}/{total}] {}: FAILED ({e:#}); log: {}",
                            cell.name,
                            log.display()
                        ),
                    );
                    outcome.failed.push((cell.name.clone(), log));
                }
            }
        }
    });
    pb.finish_and_clear();
    outcome.unfinished = plan.cells.iter().filter(|c| !is_finished(out, c)).count();
    Ok(outcome)
}
