//! The Slurm executor of `promax compare` and `promax tune` (`--executor slurm`): the
//! unfinished cells of a run become one job array (`--array=0-(n-1)%K`, K = `--jobs`),
//! each task `promax train` on one cell folder of the shared file system, exactly the
//! command the local executor would run (a fresh config, or `--resume` from a checkpoint),
//! so that either executor resumes the other's folders. The tasks' states come from
//! `squeue` while they are queued or running and from `scontrol` (or `sacct`) once they
//! have left the queue; a cell's result is its folder. A watch (tune's pruner) that stops
//! a running cell cancels its task with `scancel`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use super::runner::{
    ended, last_line, mark_stopped, prepare_cell, CellEnd, Event, Prepared, Watch,
};
use super::spec::Cell;
use crate::runfolder::write_atomic;

/// `[slurm]` in a compare or tune file: how the tasks are submitted.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlurmOptions {
    /// `--partition`; "" = the cluster's default.
    #[serde(default)]
    pub partition: String,
    /// `--time` of each task (e.g. "02:00:00"); "" = the partition's default.
    #[serde(default)]
    pub time: String,
    /// `--cpus-per-task`, and the training threads of a cell that sets none.
    #[serde(default = "one")]
    pub cpus_per_task: usize,
    /// `--mem` of each task (e.g. "8G"); "" = the partition's default.
    #[serde(default)]
    pub mem: String,
    /// Further `sbatch` flags, passed as given (e.g. ["--qos=short"]).
    #[serde(default)]
    pub sbatch_args: Vec<String>,
}

fn one() -> usize {
    1
}

impl Default for SlurmOptions {
    fn default() -> Self {
        SlurmOptions {
            partition: String::new(),
            time: String::new(),
            cpus_per_task: 1,
            mem: String::new(),
            sbatch_args: Vec::new(),
        }
    }
}

/// `'text'` for a POSIX shell.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The array's batch script: task `i` trains cell `i`, its output appended to the cell's
/// `train.log` (a resumed cell's log continues the interrupted one's).
fn script(exe: &Path, cells: &[Prepared]) -> String {
    let mut s = String::from(
        "#!/bin/bash\n# Written by promax: one array task per cell folder.\nset -u\n\
         case \"${SLURM_ARRAY_TASK_ID:-}\" in\n",
    );
    for (i, p) in cells.iter().enumerate() {
        let args: Vec<String> = p.args.iter().map(|a| quote(&a.to_string_lossy())).collect();
        let _ = writeln!(
            s,
            "{i}) exec {} {} >> {} 2>&1 ;;",
            quote(&exe.to_string_lossy()),
            args.join(" "),
            quote(&p.log.to_string_lossy())
        );
    }
    s.push_str(
        "*) echo \"no cell for array task ${SLURM_ARRAY_TASK_ID:-}\" >&2; exit 2 ;;\nesac\n",
    );
    s
}

fn run_tool(cmd: &mut Command, what: &str) -> Result<String> {
    let o = cmd
        .output()
        .with_context(|| format!("running {what} (is Slurm installed and on PATH?)"))?;
    if !o.status.success() {
        bail!(
            "{what} failed ({}): {}",
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

/// Submits the array; returns its job id.
fn submit(
    dir: &Path,
    name: &str,
    n: usize,
    k: usize,
    opts: &SlurmOptions,
    script: &Path,
) -> Result<String> {
    let mut cmd = Command::new("sbatch");
    cmd.arg("--parsable")
        .arg(format!("--array=0-{}%{k}", n - 1))
        .arg(format!("--job-name={name}"))
        .arg(format!("--output={}", dir.join("%A_%a.out").display()))
        .arg(format!("--cpus-per-task={}", opts.cpus_per_task));
    for (flag, v) in [
        ("partition", &opts.partition),
        ("time", &opts.time),
        ("mem", &opts.mem),
    ] {
        if !v.is_empty() {
            cmd.arg(format!("--{flag}={v}"));
        }
    }
    cmd.args(&opts.sbatch_args).arg(script);
    let out = run_tool(&mut cmd, "sbatch")?;
    let id = out.trim().split(';').next().unwrap_or("").to_owned();
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
        bail!("sbatch answered {:?}, not a job id", out.trim());
    }
    Ok(id)
}

/// The array's tasks still in the queue, with their state (`PENDING`, `RUNNING`, ...).
fn queued(job: &str) -> Result<BTreeMap<usize, String>> {
    let mut cmd = Command::new("squeue");
    // SQUEUE_STATES=all (and its like) in the user's environment would list ended tasks.
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("SQUEUE_") {
            cmd.env_remove(k);
        }
    }
    let out = run_tool(cmd.args(["-h", "-r", "-j", job, "-o", "%K|%T"]), "squeue")?;
    Ok(out
        .lines()
        .filter_map(|l| {
            let (task, state) = l.trim().split_once('|')?;
            Some((task.parse().ok()?, state.to_owned()))
        })
        .collect())
}

/// A task's final state once it has left the queue (`COMPLETED`, `FAILED`, `CANCELLED`,
/// `TIMEOUT`, `OUT_OF_MEMORY`, ...), from `scontrol`, else `sacct`.
fn final_state(job: &str, task: usize) -> String {
    let id = format!("{job}_{task}");
    let from_scontrol = Command::new("scontrol")
        .args(["show", "job", "-o", &id])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .find_map(|f| f.strip_prefix("JobState=").map(str::to_owned))
        });
    from_scontrol
        .or_else(|| {
            let o = Command::new("sacct")
                .args(["-n", "-X", "-P", "-j", &id, "-o", "State"])
                .output()
                .ok()?;
            let s = String::from_utf8_lossy(&o.stdout).trim().to_owned();
            (!s.is_empty()).then_some(s)
        })
        .unwrap_or_else(|| "UNKNOWN (no longer known to scontrol or sacct)".into())
}

/// Where a queued task stands.
#[derive(Debug, PartialEq, Eq)]
enum Phase {
    Waiting,
    Running,
    Ended,
}

fn phase(state: Option<&str>) -> Phase {
    match state {
        Some(
            "PENDING" | "CONFIGURING" | "REQUEUED" | "REQUEUE_HOLD" | "RESIZING" | "SUSPENDED",
        ) => Phase::Waiting,
        Some("RUNNING" | "COMPLETING" | "STAGE_OUT" | "SIGNALING") => Phase::Running,
        _ => Phase::Ended,
    }
}

/// Cancels a task and waits until it has left the queue (a task that ended meanwhile is
/// no error).
fn cancel(job: &str, task: usize) -> Result<()> {
    if let Err(e) = run_tool(
        Command::new("scancel").arg(format!("{job}_{task}")),
        "scancel",
    ) {
        if queued(job)?.contains_key(&task) {
            return Err(e);
        }
    }
    let start = Instant::now();
    while queued(job)?.contains_key(&task) {
        if start.elapsed() > Duration::from_secs(120) {
            bail!("task {job}_{task} is still queued two minutes after scancel");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

/// One job array to run: the cells, where they live, and how.
pub(super) struct Array<'a, 'b> {
    pub cells: &'b [&'a Cell],
    pub out: &'b Path,
    pub exe: &'b Path,
    /// Tasks running at the same time (`%K`).
    pub k: usize,
    pub opts: &'b SlurmOptions,
    pub watch: &'b dyn Watch,
}

/// Trains the cells as one job array of at most `k` tasks at a time and reports each once,
/// as the local workers do, on `tx`: a cell the array could not train (sbatch refused, the
/// queue could not be read) is reported failed with the reason.
pub(super) fn run<'a>(array: &Array<'a, '_>, tx: &Sender<Event<'a>>) {
    let mut done = BTreeSet::new();
    let mut job = None;
    if let Err(e) = run_array(array, tx, &mut done, &mut job) {
        // Tasks left in the queue would start later in folders a rerun prepares again.
        if let Some(job) = &job {
            let _ = Command::new("scancel").arg(job).output();
        }
        let msg = format!("{e:#}");
        for (_, cell) in array
            .cells
            .iter()
            .enumerate()
            .filter(|(i, _)| !done.contains(i))
        {
            let _ = tx.send(Event::Done(
                cell,
                Box::new(Err(anyhow::anyhow!("{msg}"))),
                0.0,
            ));
        }
    }
}

/// The file naming the job array a run of this folder submitted, until it has ended.
const ACTIVE: &str = "active-job";

/// Refuses a folder whose earlier job array still has tasks queued or running: they would
/// train in the folders this run prepares.
fn check_no_active_job(dir: &Path) -> Result<()> {
    let path = dir.join(ACTIVE);
    let Ok(job) = std::fs::read_to_string(&path) else {
        return Ok(());
    };
    let job = job.trim();
    if !job.is_empty() && !queued(job)?.is_empty() {
        bail!(
            "Slurm job array {job}, submitted by an earlier run into {}, still has tasks \
             queued or running; wait for it or cancel it (scancel {job}), then run again",
            dir.display()
        );
    }
    std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))
}

fn run_array<'a>(
    array: &Array<'a, '_>,
    tx: &Sender<Event<'a>>,
    done: &mut BTreeSet<usize>,
    submitted: &mut Option<String>,
) -> Result<()> {
    let Array {
        cells,
        out,
        exe,
        k,
        opts,
        watch,
    } = *array;
    if cells.is_empty() {
        return Ok(());
    }
    let dir = out.join("slurm");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    check_no_active_job(&dir)?;
    let prepared: Vec<Prepared> = cells
        .iter()
        .map(|c| prepare_cell(out, c, opts.cpus_per_task))
        .collect::<Result<_>>()?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let script_path: PathBuf = dir.join(format!("array-{stamp}-{}.sh", std::process::id()));
    write_atomic(&script_path, script(exe, &prepared).as_bytes())?;
    let name = format!(
        "promax-{}",
        out.file_name()
            .map_or("run".into(), |n| n.to_string_lossy())
    );
    let job = submit(&dir, &name, cells.len(), k.max(1), opts, &script_path)?;
    *submitted = Some(job.clone());
    write_atomic(&dir.join(ACTIVE), job.as_bytes())?;
    println!(
        "submitted {} cells as Slurm job array {job} ({} at a time)",
        cells.len(),
        k.max(1)
    );
    let start = Instant::now();
    let mut started = BTreeSet::new();
    // Poll often at first and back off to 5 s while nothing changes: a busy controller
    // should not answer a squeue every 300 ms for hours.
    let mut wait = Duration::from_millis(300);
    while done.len() < cells.len() {
        std::thread::sleep(wait);
        wait = (wait * 2).min(Duration::from_secs(5));
        let before = (done.len(), started.len());
        let live = match queued(&job) {
            Ok(l) => l,
            // One failed squeue (a controller restart) is retried at the next look.
            Err(_) => queued(&job)?,
        };
        for (i, (cell, p)) in cells.iter().zip(&prepared).enumerate() {
            if done.contains(&i) {
                continue;
            }
            let report = |r: Result<CellEnd>| {
                let _ = tx.send(Event::Done(
                    cell,
                    Box::new(r),
                    start.elapsed().as_secs_f64(),
                ));
            };
            match phase(live.get(&i).map(String::as_str)) {
                Phase::Waiting => {}
                Phase::Running => {
                    if started.insert(i) {
                        let _ = tx.send(Event::Started(cell));
                    }
                    if let Some(epoch) = watch.stop_at(cell, &p.dir) {
                        cancel(&job, i)?;
                        report(mark_stopped(&p.dir, epoch));
                        done.insert(i);
                    }
                }
                Phase::Ended => {
                    if started.insert(i) {
                        let _ = tx.send(Event::Started(cell));
                    }
                    let metrics = p.dir.join("metrics.json");
                    let state = (!metrics.is_file()).then(|| final_state(&job, i));
                    // A task that completed may leave its files visible here a little later.
                    let r = match state {
                        None => ended(cell, &p.dir, watch),
                        Some(s) if s.starts_with("COMPLETED") && appears(&metrics) => {
                            ended(cell, &p.dir, watch)
                        }
                        Some(s) => Err(anyhow::anyhow!(
                            "Slurm task {job}_{i}: {s}; log {}: {}",
                            p.log.display(),
                            last_line(&p.log)
                        )),
                    };
                    report(r);
                    done.insert(i);
                }
            }
        }
        if (done.len(), started.len()) != before {
            wait = Duration::from_millis(300);
        }
    }
    std::fs::remove_file(dir.join(ACTIVE))
        .with_context(|| format!("removing {}", dir.display()))?;
    Ok(())
}

/// Whether a file a task wrote is visible here, allowing a shared file system a few
/// seconds to show it after the task has left the queue.
fn appears(path: &Path) -> bool {
    let start = Instant::now();
    while !path.is_file() {
        if start.elapsed() > Duration::from_secs(10) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_the_shell() {
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        let p = Prepared {
            dir: "/x/c d".into(),
            args: vec!["train".into(), "--resume".into(), "/x/c d".into()],
            log: "/x/c d/train.log".into(),
        };
        let s = script(Path::new("/bin/promax"), &[p]);
        assert!(
            s.contains(
                "0) exec '/bin/promax' 'train' '--resume' '/x/c d' >> '/x/c d/train.log' 2>&1 ;;"
            ),
            "{s}"
        );
        assert!(s.contains("*) echo"), "{s}");
    }
}
