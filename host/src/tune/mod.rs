//! `promax tune TUNE_FILE`: a hyperparameter study chosen on the VALIDATION split. The
//! sampler (grid, random, TPE) proposes trials in batches from the trials before them;
//! every trial trains one ordinary run folder per seed through the compare runner (so a
//! study resumes exactly as a compare matrix does), the median pruner may stop a trial
//! early, and the study writes `trials.csv` / `trials.json`, `report.html` and `best.toml`, a ready
//! experiment file of the best trial, whose test metrics are the only ones reported.
//!
//! - spec.rs: the tune file, checked before anything trains
//! - sampler.rs: grid / random / TPE proposals
//! - prune.rs: the median rule
//! - html.rs: report.html, the metric over trials and per key

pub mod html;
pub mod prune;
pub mod sampler;
pub mod spec;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::compare::runner::{self, cell_dir, stopped_at, NoWatch, RunOptions, Watch};
use crate::compare::{Cell, ExecutorKind, Plan};
use crate::config;
use crate::runfolder::{self, write_atomic};

use prune::{curve_of, Curve, MedianPruner};
use sampler::{Point, Told};
use spec::Study;

/// What `promax tune` was asked to do.
#[derive(Debug, Clone)]
pub struct TuneArgs {
    pub config: PathBuf,
    /// `key=value` overrides of every trial (after the tune file's own sets).
    pub sets: Vec<String>,
    /// Output folder; default `runs/<tune file name>`.
    pub out: Option<PathBuf>,
    /// Runs trained at the same time (the seeds and trials of one batch).
    pub jobs: usize,
    /// Stop after starting this many runs (hidden; tests of resumption).
    pub max_cells: Option<usize>,
    /// Train the runs as local child processes or as Slurm tasks.
    pub executor: ExecutorKind,
}

/// How a trial ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Finished,
    Pruned,
}

/// One run of a trial.
#[derive(Debug, Clone, Serialize)]
pub struct SeedRun {
    pub seed: u64,
    /// Its validation metric: at its best epoch, or the best before it was stopped.
    pub value: f64,
    /// Its best epoch, or the epoch it was stopped at.
    pub epoch: usize,
    pub pruned: bool,
    pub seconds: f64,
    #[serde(skip)]
    pub test: BTreeMap<String, f64>,
}

/// One trial of the study.
#[derive(Debug, Clone, Serialize)]
pub struct Trial {
    pub trial: usize,
    pub state: State,
    /// Mean over seeds of the validation metric.
    pub value: f64,
    #[serde(serialize_with = "as_table")]
    pub params: Vec<(String, toml::Value)>,
    pub runs: Vec<SeedRun>,
}

fn as_table<S: serde::Serializer>(v: &[(String, toml::Value)], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut m = s.serialize_map(Some(v.len()))?;
    for (k, x) in v {
        m.serialize_entry(k, x)?;
    }
    m.end()
}

/// The cells of one trial: one per seed.
fn trial_cells(study: &Study, trial: usize, point: &Point) -> Result<Vec<Cell>> {
    cells_of(study, &format!("trial{trial:04}"), point, &study.seeds)
}

/// The runs `<name>-s<seed>` of a point, one per seed.
fn cells_of(study: &Study, name: &str, point: &Point, seeds: &[u64]) -> Result<Vec<Cell>> {
    let sets: Vec<String> = (study.space.iter().zip(&point.0))
        .map(|((k, _), v)| spec::set_of(k, v))
        .collect();
    seeds
        .iter()
        .map(|&seed| {
            let config = study.trial_config(&sets, seed)?;
            Ok(Cell {
                dataset: "tune".into(),
                backbone: config.model.backbone.clone(),
                method: name.to_owned(),
                seed,
                name: format!("{name}-s{seed}"),
                config,
            })
        })
        .collect()
}

/// The runs of a batch (or the final runs) as a plan for compare's runner.
fn plan_of(study: &Study, title: String, cells: Vec<Cell>) -> Plan {
    let mut methods: Vec<String> = Vec::new();
    let mut seeds: Vec<u64> = Vec::new();
    for c in &cells {
        if !methods.contains(&c.method) {
            methods.push(c.method.clone());
        }
        if !seeds.contains(&c.seed) {
            seeds.push(c.seed);
        }
    }
    Plan {
        path: study.path.clone(),
        title,
        baseline: String::new(),
        metrics: vec![study.metric.clone()],
        seeds,
        datasets: vec!["tune".into()],
        backbones: Vec::new(),
        methods,
        cells,
        slurm: study.slurm.clone(),
    }
}

/// Runs whose failure or interruption ends the command, as compare's do.
fn check_outcome(outcome: &runner::RunOutcome, what: &str) -> Result<bool> {
    if !outcome.failed.is_empty() {
        let list: Vec<String> = (outcome.failed.iter())
            .map(|(name, log)| format!("  {name} (log: {})", log.display()))
            .collect();
        bail!(
            "{} runs of the study failed; fix the cause and run the same command again \
             (finished trials are kept):\n{}",
            outcome.failed.len(),
            list.join("\n")
        );
    }
    if outcome.unfinished > 0 {
        println!("stopped with {what} unfinished; run the same command again to resume");
        return Ok(false);
    }
    Ok(true)
}

/// Reads a finished trial back from its cells.
fn read_trial(
    study: &Study,
    out: &Path,
    trial: usize,
    point: &Point,
    cells: &[Cell],
) -> Result<(Trial, Vec<Curve>)> {
    let column = format!("valid_{}", study.metric);
    let mut runs = Vec::new();
    let mut curves = Vec::new();
    for cell in cells {
        let dir = cell_dir(out, cell);
        let stop = stopped_at(out, cell)?;
        let curve = curve_of(&dir, &column, stop);
        let run = match stop {
            Some(epoch) => SeedRun {
                seed: cell.seed,
                value: curve.last().map_or(f64::NAN, |&(_, v)| v),
                epoch,
                pruned: true,
                seconds: f64::NAN,
                test: BTreeMap::new(),
            },
            None => {
                let m = runfolder::read_metrics(&dir)?;
                let value = *m.valid.get(&study.metric).with_context(|| {
                    format!("{}: no validation {}", dir.display(), study.metric)
                })?;
                SeedRun {
                    seed: cell.seed,
                    value,
                    epoch: m.best_epoch,
                    pruned: false,
                    seconds: m.total_seconds,
                    test: m.test,
                }
            }
        };
        runs.push(run);
        curves.push(curve);
    }
    let value = runs.iter().map(|r| r.value).sum::<f64>() / runs.len() as f64;
    let state = if runs.iter().any(|r| r.pruned) {
        State::Pruned
    } else {
        State::Finished
    };
    let params = (study.space.iter().zip(&point.0))
        .map(|((k, _), v)| (k.clone(), v.clone()))
        .collect();
    Ok((
        Trial {
            trial,
            state,
            value,
            params,
            runs,
        },
        curves,
    ))
}

/// Runs the study (resuming whatever an earlier run of it finished) and writes its files;
/// `exe` is the `promax` executable the trials run in.
pub fn tune(args: &TuneArgs, exe: &Path) -> Result<()> {
    let study = spec::load(&args.config, &args.sets)?;
    let out = args.out.clone().unwrap_or_else(|| study.default_out());
    let n = sampler::n_trials(&study);
    println!(
        "{}: {n} trials ({:?} sampler, {} seed(s) each, batches of {}), maximising validation {}{} into {}",
        study.title,
        study.sampler,
        study.seeds.len(),
        study.batch,
        study.metric,
        match study.prune {
            Some(p) => format!(", median pruning after epoch {}", p.warmup),
            None => String::new(),
        },
        out.display()
    );
    check_identity(&study, &out)?;
    let mut trials: Vec<Trial> = Vec::new();
    let mut told: Vec<Told> = Vec::new();
    let mut curves: BTreeMap<u64, Vec<Curve>> = BTreeMap::new();
    let mut budget = args.max_cells;
    for start in (0..n).step_by(study.batch) {
        let ids: Vec<usize> = (start..(start + study.batch).min(n)).collect();
        let mut batch = Vec::new();
        for &i in &ids {
            let point = sampler::propose(&study, i, &told)?;
            let cells = trial_cells(&study, i, &point)?;
            batch.push((i, point, cells));
        }
        let plan = plan_of(
            &study,
            format!("{}, trial {} of {n}", study.title, start + 1),
            batch
                .iter()
                .flat_map(|(_, _, c)| c.iter().cloned())
                .collect(),
        );
        if budget == Some(0) {
            println!("stopped before trial {start}; run the same command again to resume");
            return Ok(());
        }
        let pruner = study.prune.map(|rule| MedianPruner {
            rule,
            column: format!("valid_{}", study.metric),
            earlier: curves.clone(),
        });
        let watch: &dyn Watch = match &pruner {
            Some(p) => p,
            None => &NoWatch,
        };
        let outcome = runner::run_watched(
            &plan,
            &RunOptions {
                out: out.clone(),
                jobs: args.jobs,
                max_cells: budget,
                exe: exe.to_owned(),
                valid_only: true,
                executor: args.executor.with(&study.slurm),
            },
            watch,
        )?;
        budget = budget.map(|b| b.saturating_sub(outcome.ran + outcome.failed.len()));
        if !check_outcome(&outcome, &format!("trial {start}"))? {
            return Ok(());
        }
        // A run that finished while nothing watched it (the study was killed, or a Slurm
        // task ended unobserved) gets the decision its rows call for, as a watched one would.
        if let Some(p) = &pruner {
            for cell in batch.iter().flat_map(|(_, _, c)| c) {
                let dir = cell_dir(&out, cell);
                if stopped_at(&out, cell)?.is_none() {
                    if let Some(epoch) = p.stop_at(cell, &dir) {
                        runner::mark_stopped(&dir, epoch)?;
                    }
                }
            }
        }
        for (i, point, cells) in &batch {
            let (trial, trial_curves) = read_trial(&study, &out, *i, point, cells)?;
            for (cell, c) in cells.iter().zip(trial_curves) {
                curves.entry(cell.seed).or_default().push(c);
            }
            told.push(Told {
                point: point.clone(),
                value: trial.value,
            });
            trials.push(trial);
        }
    }
    let last = match (best(&trials), study.final_seeds.is_empty()) {
        (Some(b), false) => match final_runs(&study, &out, args, exe, b, budget)? {
            Some(f) => Some(f),
            None => return Ok(()),
        },
        _ => None,
    };
    write_study(&study, &out, &trials, last.as_ref())
}

/// The best trial trained again over the study's `final_seeds`.
#[derive(Debug, Clone, Serialize)]
pub struct Final {
    pub seeds: Vec<u64>,
    pub valid: BTreeMap<String, f64>,
    pub test: BTreeMap<String, f64>,
}

/// Trains the best trial over `final_seeds` (`best-s<seed>`); `None` when interrupted.
fn final_runs(
    study: &Study,
    out: &Path,
    args: &TuneArgs,
    exe: &Path,
    best: &Trial,
    budget: Option<usize>,
) -> Result<Option<Final>> {
    let point = Point(best.params.iter().map(|(_, v)| v.clone()).collect());
    // Named by the trial: a longer study whose best trial changes trains new final runs.
    let name = format!("trial{:04}-final", best.trial);
    let cells = cells_of(study, &name, &point, &study.final_seeds)?;
    let title = format!(
        "{}, the best trial ({}) over its final seeds",
        study.title, best.trial
    );
    let plan = plan_of(study, title, cells.clone());
    let outcome = runner::run(
        &plan,
        &RunOptions {
            out: out.to_owned(),
            jobs: args.jobs,
            max_cells: budget,
            exe: exe.to_owned(),
            valid_only: false,
            executor: args.executor.with(&study.slurm),
        },
    )?;
    if !check_outcome(&outcome, "the final runs")? {
        return Ok(None);
    }
    let mut valid: BTreeMap<String, f64> = BTreeMap::new();
    let mut test: BTreeMap<String, f64> = BTreeMap::new();
    for cell in &cells {
        let m = runfolder::read_metrics(&cell_dir(out, cell))?;
        for (sum, part) in [(&mut valid, &m.valid), (&mut test, &m.test)] {
            for (k, v) in part {
                *sum.entry(k.clone()).or_default() += v / cells.len() as f64;
            }
        }
    }
    Ok(Some(Final {
        seeds: study.final_seeds.clone(),
        valid,
        test,
    }))
}

/// What makes a study's trials what they are, besides their run configs (which the runner
/// checks per cell): the metric, the sampler and its seed, the batches, the pruning rule,
/// the space and the seeds. The number of trials may grow: a longer study extends a
/// shorter one.
fn identity(study: &Study) -> serde_json::Value {
    serde_json::json!({
        "metric": study.metric,
        "sampler": format!("{:?}", study.sampler).to_lowercase(),
        "seed": study.seed,
        "startup": study.startup,
        "batch": study.batch,
        "prune": study.prune.map(|p| serde_json::json!({"warmup": p.warmup, "min_trials": p.min_trials})),
        "space": study.space.iter().map(|(k, d)| (k.clone(), format!("{d:?}"))).collect::<BTreeMap<_, _>>(),
        "seeds": study.seeds,
    })
}

/// Writes `study.json` in a new output folder, or refuses a folder whose trials another
/// study (another sampler, seed, pruning rule, space ...) made: its trials would not be
/// this study's.
fn check_identity(study: &Study, out: &Path) -> Result<()> {
    let path = out.join("study.json");
    let now = identity(study);
    if path.is_file() {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let then: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        if then != now {
            let key = now
                .as_object()
                .and_then(|o| o.iter().find(|(k, v)| then.get(k.as_str()) != Some(*v)))
                .map_or("?".to_owned(), |(k, _)| k.clone());
            bail!(
                "{} holds the trials of another study (its `{key}` differs from what {} now \
                 gives); use another --out, or delete the folder to start again",
                out.display(),
                study.path.display()
            );
        }
        return Ok(());
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    write_atomic(&path, serde_json::to_string_pretty(&now)?.as_bytes())
}

/// The finished trial with the highest value (the earliest among equals).
pub fn best(trials: &[Trial]) -> Option<&Trial> {
    trials
        .iter()
        .filter(|t| t.state == State::Finished && t.value.is_finite())
        .fold(None, |b: Option<&Trial>, t| match b {
            Some(b) if b.value >= t.value => Some(b),
            _ => Some(t),
        })
}

/// `trials.csv`: one row per trial (no timings, so that a rerun writes the same bytes).
pub fn trials_csv(study: &Study, trials: &[Trial]) -> String {
    let mut s = String::from("trial,state,value");
    for (k, _) in &study.space {
        let _ = write!(s, ",{k}");
    }
    for seed in &study.seeds {
        let _ = write!(s, ",value_s{seed},epoch_s{seed}");
    }
    s.push('\n');
    for t in trials {
        let state = match t.state {
            State::Finished => "finished",
            State::Pruned => "pruned",
        };
        let _ = write!(s, "{},{state},{:.6}", t.trial, t.value);
        for (_, v) in &t.params {
            let text = match v {
                toml::Value::String(x) => x.clone(),
                other => other.to_string(),
            };
            let _ = write!(s, ",{}", csv_field(&text));
        }
        for r in &t.runs {
            let _ = write!(s, ",{:.6},{}", r.value, r.epoch);
        }
        s.push('\n');
    }
    s
}

fn csv_field(v: &str) -> String {
    if v.contains([',', '"', '\n']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v.to_owned()
    }
}

/// The best trial's test metrics, the mean over its seeds.
pub(crate) fn test_means(t: &Trial) -> BTreeMap<String, f64> {
    let mut sums: BTreeMap<String, f64> = BTreeMap::new();
    for r in &t.runs {
        for (k, v) in &r.test {
            *sums.entry(k.clone()).or_default() += v;
        }
    }
    let n = t.runs.len() as f64;
    sums.into_iter().map(|(k, v)| (k, v / n)).collect()
}

fn write_study(study: &Study, out: &Path, trials: &[Trial], last: Option<&Final>) -> Result<()> {
    write_atomic(
        &out.join("trials.csv"),
        trials_csv(study, trials).as_bytes(),
    )?;
    let best = best(trials);
    let json = serde_json::json!({
        "title": study.title,
        "metric": format!("valid {}", study.metric),
        "sampler": format!("{:?}", study.sampler).to_lowercase(),
        "seeds": study.seeds,
        "trials": trials,
        "best": best.map(|b| serde_json::json!({
            "trial": b.trial,
            "value": b.value,
            "params": serde_json::to_value(b).ok().and_then(|v| v.get("params").cloned()),
            "test": test_means(b),
            "final": last,
        })),
    });
    write_atomic(
        &out.join("trials.json"),
        serde_json::to_string_pretty(&json)?.as_bytes(),
    )?;
    write_atomic(
        &out.join("report.html"),
        html::page(study, trials, best, last)?.as_bytes(),
    )?;
    let pruned = trials.iter().filter(|t| t.state == State::Pruned).count();
    println!(
        "{} trials ({pruned} pruned); wrote {}/trials.csv, trials.json, report.html",
        trials.len(),
        out.display()
    );
    let Some(b) = best else {
        println!("no trial finished unpruned: no best.toml");
        return Ok(());
    };
    let sets: Vec<String> = b.params.iter().map(|(k, v)| spec::set_of(k, v)).collect();
    let cfg = study.trial_config(&sets, study.seeds[0])?;
    let mut text = format!(
        "# The best trial ({}) of the study {} ({}): validation {} {:.4}, mean over seeds \
         {:?}.\n# Its values: {}\n# The complete resolved config; `promax train` it, with \
         --set train.seed=S for the other seeds.\n",
        b.trial,
        study.path.display(),
        study.title,
        study.metric,
        b.value,
        study.seeds,
        sets.join(", ")
    );
    text.push_str(&config::to_toml(&cfg));
    write_atomic(&out.join("best.toml"), text.as_bytes())?;
    let show = |m: &BTreeMap<String, f64>| -> String {
        let v: Vec<String> = (m.iter())
            .filter(|(k, _)| k.ends_with("@20"))
            .map(|(k, v)| format!("{k} {v:.4}"))
            .collect();
        v.join(", ")
    };
    let test = match last {
        Some(f) => format!(
            "its test metrics over the final seeds {:?}: {} (validation {})",
            f.seeds,
            show(&f.test),
            show(&f.valid)
        ),
        None => format!(
            "its test metrics (mean over seeds): {}",
            show(&test_means(b))
        ),
    };
    println!(
        "best: trial {} ({}), validation {} {:.4}; {test}; wrote {}/best.toml",
        b.trial,
        sets.join(", "),
        study.metric,
        b.value,
        out.display()
    );
    Ok(())
}
