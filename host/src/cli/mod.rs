//! The `promax` subcommands: their flags and help texts, and one file per command group
//! holding the handlers.

mod bench;
mod compare;
mod dataset;
mod plugins;
mod recommend;
mod train;

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};

/// `--executor` of compare and tune.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Executor {
    Local,
    Slurm,
}

impl From<Executor> for promax::compare::ExecutorKind {
    fn from(e: Executor) -> Self {
        match e {
            Executor::Local => promax::compare::ExecutorKind::Local,
            Executor::Slurm => promax::compare::ExecutorKind::Slurm,
        }
    }
}

#[derive(Parser)]
#[command(
    name = "promax",
    version,
    about = "Train and compare collaborative-filtering recommenders, with LLM-derived profiles"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Train the model a config file describes and write a run folder (or continue an
    /// interrupted one with --resume).
    Train {
        /// Experiment config (TOML; may `extends` others).
        #[arg(required_unless_present = "resume")]
        config: Option<PathBuf>,
        /// Override a config key, e.g. `--set train.seed=7` (repeatable; applied last).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
        /// Run folder (default: run.out_dir/<dataset>-<model>-s<seed>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Continue the interrupted run in RUN_DIR from its last checkpoint (its own
        /// config.toml; same results as an uninterrupted run).
        #[arg(long, value_name = "RUN_DIR", conflicts_with_all = ["config", "sets", "out", "overwrite"])]
        resume: Option<PathBuf>,
        /// Replace the run already in the folder: the new run trains in a hidden sibling
        /// folder and is swapped in when finished, so a kill leaves the old run intact.
        #[arg(long)]
        overwrite: bool,
    },
    /// Re-evaluate a finished run from its folder (config.toml + model.safetensors).
    Eval {
        run_dir: PathBuf,
        /// Also write the per-user-group test metrics into the folder's `metrics.json`
        /// (for folders written before it had them); refused unless the re-evaluation
        /// reproduces the stored test metrics.
        #[arg(long)]
        add_groups: bool,
    },
    /// Run an experiment matrix (datasets × backbones × methods × seeds, from a compare
    /// file) and write the comparison report; resumable (finished cells are kept).
    Compare {
        /// Compare file (TOML: seeds, baseline, [[datasets]], [[backbones]], [[methods]]).
        config: PathBuf,
        /// Override a config key in every cell, e.g. `--set train.max_epochs=3` (repeatable;
        /// after the compare file's own overrides).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
        /// Output folder: cells/<dataset>-<backbone>-<method>-s<seed>/ and report.* (default
        /// runs/<compare file name>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Cells trained at the same time, each a `promax train` child process with the
        /// cores shared among them (train.threads, unless a cell sets it).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
        jobs: u32,
        /// Only write the report from the finished cells; train nothing.
        #[arg(long)]
        report_only: bool,
        /// Where the cells train: `local` child processes, or the tasks of one `slurm`
        /// job array (`--jobs` at a time; options from the compare file's [slurm]).
        #[arg(long, value_enum, default_value_t = Executor::Local)]
        executor: Executor,
        /// Stop after starting this many cells (for tests of resumption).
        #[arg(long, hide = true)]
        max_cells: Option<usize>,
    },
    /// Tune hyperparameters on the VALIDATION split (grid, random or TPE over config keys,
    /// median pruning) from a tune file; every trial is an ordinary run folder per seed;
    /// resumable. Writes trials.csv / trials.json and best.toml (a ready experiment file).
    Tune {
        /// Tune file (TOML: config, metric, sampler, trials, seeds, [space]).
        config: PathBuf,
        /// Override a config key in every trial (repeatable; after the tune file's sets).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
        /// Output folder: cells/trial<N>-s<seed>/, trials.*, best.toml (default
        /// runs/<tune file name>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Runs trained at the same time (the seeds and trials of a batch); the study's
        /// results do not depend on it.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
        jobs: u32,
        /// Where the runs train: `local` child processes, or Slurm job arrays, one per
        /// batch (options from the tune file's [slurm]).
        #[arg(long, value_enum, default_value_t = Executor::Local)]
        executor: Executor,
        /// Stop after starting this many runs (for tests of resumption).
        #[arg(long, hide = true)]
        max_cells: Option<usize>,
    },
    /// List plugins (built-in and found in plugin folders), or show one's hyperparameters.
    Plugins {
        #[command(subcommand)]
        action: Option<plugins::PluginsAction>,
        /// Read `plugin_dirs` from this config as well.
        #[arg(long, global = true)]
        config: Option<PathBuf>,
    },
    /// Dataset utilities.
    Data {
        #[command(subcommand)]
        action: dataset::DataAction,
    },
    /// Write item and user profiles with an LLM (chat endpoint, [llm]): items from the item
    /// metadata file, users from their TRAIN items; answers cached, a rerun asks only for
    /// what is missing.
    Profile {
        /// Folder with the item metadata file ([profile] items_file) and train.tsv; config
        /// with [profile] and [llm].
        #[command(flatten)]
        data: dataset::DatasetArgs,
        /// Which profiles: items, users (needs the item profiles) or both (items first).
        #[arg(long, default_value = "both", value_parser = ["items", "users", "both"])]
        what: String,
    },
    /// Embed the written profiles (embeddings endpoint, [llm]) into user_profiles.npy and
    /// item_profiles.npy, the tables [data.profiles] and `promax augment` read.
    Embed {
        /// Folder with the profile texts ([embed] user_texts / item_texts); config with
        /// [embed] and [llm].
        #[command(flatten)]
        data: dataset::DatasetArgs,
        /// Which tables: items, users or both.
        #[arg(long, default_value = "both", value_parser = ["items", "users", "both"])]
        what: String,
    },
    /// Build ProMax's augmented interaction set for a dataset folder: profile-guided
    /// retrieval from TRAIN interactions and [data.profiles], the sparsity level shift, and
    /// LLM re-ranking (or the dense-retrieval order without an endpoint).
    Augment {
        /// Folder with train.tsv (and the profile files [data.profiles] names); config with
        /// [augment], [data.profiles] (and [llm]).
        #[command(flatten)]
        data: dataset::DatasetArgs,
        /// Where to write the augmented set (default DATASET_DIR/augmented.tsv); a report
        /// goes beside it (`.report.json`).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Only write `user<TAB>budget` from the train counts to this file (no profiles).
        #[arg(long, value_name = "OUT.tsv")]
        budgets_only: Option<PathBuf>,
        /// Replace an existing output (and its report); a split of the dataset folder
        /// (train.tsv, valid.tsv, test.tsv) is never replaced.
        #[arg(long)]
        overwrite: bool,
        /// Where the added items come from (overrides augment.source): profiles (the
        /// retrieval above), random (uniform over unseen items, augment.seed), popular
        /// (train degree) or cf (a trained run's scores, --from-run); the same budgets.
        #[arg(long, value_parser = ["random", "popular", "cf", "profiles"])]
        source: Option<String>,
        /// The finished run folder the cf source scores with (overrides augment.from_run).
        #[arg(long, value_name = "RUN_DIR")]
        from_run: Option<PathBuf>,
        /// Also report the share of ADDED pairs that are in valid.tsv and test.tsv (an
        /// evaluation: it reads the held-out splits, the build does not); `--evaluate FILE`
        /// evaluates an existing augmented set instead of building one.
        #[arg(long, value_name = "FILE", num_args = 0..=1, conflicts_with = "budgets_only")]
        evaluate: Option<Option<PathBuf>>,
    },
    /// Top-K recommendations from a trained run folder (train items excluded).
    Recommend {
        run_dir: PathBuf,
        /// Comma-separated user ids, e.g. `--users 1,2,3` (printed to stdout); a dataset
        /// with string ids (RecBole's) takes and prints its own tokens.
        #[arg(long, value_delimiter = ',', conflicts_with = "all")]
        users: Vec<String>,
        /// Every user, streamed to `--out`.
        #[arg(long, requires = "out")]
        all: bool,
        /// Output file for `--all` (`user<TAB>rank<TAB>item<TAB>score`).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Replace `--out` if it exists (it is never replaced without asking).
        #[arg(long, requires = "out")]
        overwrite: bool,
        /// Items per user.
        #[arg(short, long, default_value_t = 20)]
        k: usize,
    },
    /// Micro-benchmarks of the hot paths.
    Bench {
        #[command(subcommand)]
        what: bench::BenchWhat,
    },
}

/// The whole command line: logs to stderr (`RUST_LOG`, default `info`), parses `args`
/// (the program name first), runs the subcommand, prints an error as `error: …`; returns
/// the exit status (0, 1 on error, clap's own for a usage error, 0 for `--help`).
pub fn main<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    init_logging();
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return e.exit_code();
        }
    };
    match run(cli.command) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    }
}

/// Log lines to stderr, once per process (a second call, as from Python, keeps the first).
pub fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// Runs one subcommand.
pub fn run(command: Command) -> Result<()> {
    match command {
        Command::Train {
            config,
            sets,
            out,
            resume,
            overwrite,
        } => train::cmd_train(
            config.as_deref(),
            &sets,
            out.as_deref(),
            resume.as_deref(),
            overwrite,
        ),
        Command::Eval {
            run_dir,
            add_groups,
        } => train::cmd_eval(&run_dir, add_groups),
        Command::Compare {
            config,
            sets,
            out,
            jobs,
            report_only,
            executor,
            max_cells,
        } => compare::cmd_compare(promax::compare::CompareArgs {
            config,
            sets,
            out,
            jobs: jobs as usize,
            report_only,
            max_cells,
            executor: executor.into(),
        }),
        Command::Tune {
            config,
            sets,
            out,
            jobs,
            executor,
            max_cells,
        } => compare::cmd_tune(promax::tune::TuneArgs {
            config,
            sets,
            out,
            jobs: jobs as usize,
            max_cells,
            executor: executor.into(),
        }),
        Command::Plugins { action, config } => plugins::cmd_plugins(action, config.as_deref()),
        Command::Data {
            action: dataset::DataAction::Stats { dataset_dir },
        } => dataset::cmd_data_stats(&dataset_dir),
        Command::Bench { what } => bench::cmd_bench(what),
        Command::Recommend {
            run_dir,
            users,
            all,
            out,
            overwrite,
            k,
        } => recommend::cmd_recommend(&run_dir, &users, all, (out.as_deref(), overwrite), k),
        Command::Profile { data, what } => dataset::cmd_profile(&data, &what),
        Command::Embed { data, what } => dataset::cmd_embed(&data, &what),
        Command::Augment {
            data,
            out,
            budgets_only,
            overwrite,
            source,
            from_run,
            evaluate,
        } => dataset::cmd_augment(
            &data,
            dataset::AugmentOpts {
                out: out.as_deref(),
                budgets_only: budgets_only.as_deref(),
                overwrite,
                source: source.as_deref().map(dataset::parse_source).transpose()?,
                from_run: from_run.as_deref(),
                evaluate: evaluate.as_ref().map(|f| f.as_deref()),
            },
        ),
    }
}

/// Sizes rayon's global pool to `train.threads`; 0 keeps rayon's default of one thread per
/// core.
pub fn init_threads(threads: usize) -> Result<()> {
    if threads > 0 {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build_global()
            .context("setting up the thread pool")?;
    }
    Ok(())
}
