//! `promax compare CONFIG`: an experiment matrix from one file (datasets × backbones ×
//! methods × seeds), each cell an ordinary run folder trained by `promax train`, and a
//! comparison report (mean ± std over seeds, improvement over a baseline method, paired
//! t-test p-values, per-user-group results, efficiency) as Markdown, CSV, JSON and a
//! self-contained HTML page with SVG charts.
//!
//! - spec.rs: the compare file and the plan of cells (configs built by `config::load_layers`)
//! - runner.rs: running the cells (child processes, resumable)
//! - slurm.rs: or as the tasks of a Slurm job array (`--executor slurm`)
//! - stats.rs: mean, sample std, paired t-test
//! - results.rs: what the report shows (rows, curves), shared by its writers
//! - report.rs: the statistics and the md / csv / json files
//! - html.rs: report.html and its charts

pub mod html;
pub mod report;
pub mod results;
pub mod runner;
pub mod slurm;
pub mod spec;
pub mod stats;

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

pub use spec::{is_compare_file, load, Cell, Plan};

/// What `promax compare` was asked to do.
#[derive(Debug, Clone)]
pub struct CompareArgs {
    pub config: PathBuf,
    /// `key=value` overrides of every cell (after the compare file's own).
    pub sets: Vec<String>,
    /// Output folder; default `runs/<compare file name>`.
    pub out: Option<PathBuf>,
    /// Cells trained at the same time.
    pub jobs: usize,
    /// Only (re)write the report from the finished cells.
    pub report_only: bool,
    /// Stop after starting this many cells (hidden; tests of resumption).
    pub max_cells: Option<usize>,
    /// Train the cells as local child processes or as Slurm tasks.
    pub executor: ExecutorKind,
}

/// `--executor`: where cells train.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ExecutorKind {
    #[default]
    Local,
    Slurm,
}

impl ExecutorKind {
    /// The executor, with the compare or tune file's `[slurm]` options.
    pub fn with(self, slurm: &slurm::SlurmOptions) -> runner::Executor {
        match self {
            ExecutorKind::Local => runner::Executor::Local,
            ExecutorKind::Slurm => runner::Executor::Slurm(slurm.clone()),
        }
    }
}

/// Runs the matrix (unless `report_only`) and writes the report; `exe` is the `promax`
/// executable the cells run in.
pub fn compare(args: &CompareArgs, exe: &Path) -> Result<()> {
    let plan = spec::load(&args.config, &args.sets)?;
    spec::check_plugins(&plan)?;
    let out = args.out.clone().unwrap_or_else(|| plan.default_out());
    if !args.report_only {
        let outcome = runner::run(
            &plan,
            &runner::RunOptions {
                out: out.clone(),
                jobs: args.jobs,
                max_cells: args.max_cells,
                exe: exe.to_owned(),
                valid_only: false,
                executor: args.executor.with(&plan.slurm),
            },
        )?;
        if !outcome.failed.is_empty() {
            let list: Vec<String> = outcome
                .failed
                .iter()
                .map(|(name, log)| format!("  {name} (log: {})", log.display()))
                .collect();
            bail!(
                "{} of {} cells failed; fix the cause and run the same command again (finished \
                 cells are kept):\n{}",
                outcome.failed.len(),
                plan.cells.len(),
                list.join("\n")
            );
        }
        if outcome.unfinished > 0 {
            println!(
                "stopped with {} of {} cells unfinished; run the same command again to resume",
                outcome.unfinished,
                plan.cells.len()
            );
            return Ok(());
        }
    }
    if args.report_only {
        for cell in plan.cells.iter().filter(|c| runner::is_finished(&out, c)) {
            if let Some(why) = runner::config_change(&out, cell) {
                eprintln!(
                    "warning: cell {} was run with another configuration: {why}",
                    cell.name
                );
            }
        }
    }
    let report = report::build(&plan, &out)?;
    if report.missing.len() == plan.cells.len() {
        bail!(
            "no finished cell in {}: nothing to report (run without --report-only first)",
            out.display()
        );
    }
    report::write_all(&report, &out)?;
    print!("{}", report::main_table(&report));
    if !report.missing.is_empty() {
        println!(
            "{} unfinished cells left out: {}",
            report.missing.len(),
            report.missing.join(", ")
        );
    }
    println!(
        "wrote {}/report.md, report.csv, report.json, report.html",
        out.display()
    );
    Ok(())
}
