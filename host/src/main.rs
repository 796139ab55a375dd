//! The `promax` command line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use promax::augment;
use promax::config::{self, Config, DataConfig};
use promax::data::{load_dataset, profile_table_rows, read_pairs, stats};
use promax::model::Model;
use promax::profile;
use promax::recommend::Recommender;
use promax::registry::Registry;
use promax::runfolder::lock::Lock;
use promax::runfolder::{self, identity, write_atomic, FolderState};
use promax::trainer;

#[derive(Parser)]
#[command(
    name = "promax",
    version,
    about = "Train and compare collaborative-filtering recommenders, with LLM-derived profiles"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
        /// Stop after starting this many cells (for tests of resumption).
        #[arg(long, hide = true)]
        max_cells: Option<usize>,
    },
    /// List plugins (built-in and found in plugin folders), or show one's hyperparameters.
    Plugins {
        #[command(subcommand)]
        action: Option<PluginsAction>,
        /// Read `plugin_dirs` from this config as well.
        #[arg(long, global = true)]
        config: Option<PathBuf>,
    },
    /// Dataset utilities.
    Data {
        #[command(subcommand)]
        action: DataAction,
    },
    /// Write item and user profiles with an LLM (chat endpoint, [llm]): items from the item
    /// metadata file, users from their TRAIN items; answers cached, a rerun asks only for
    /// what is missing.
    Profile {
        /// Folder with the item metadata file ([profile] items_file) and train.tsv; config
        /// with [profile] and [llm].
        #[command(flatten)]
        data: DatasetArgs,
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
        data: DatasetArgs,
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
        data: DatasetArgs,
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
    },
    /// Top-K recommendations from a trained run folder (train items excluded).
    Recommend {
        run_dir: PathBuf,
        /// Comma-separated user ids, e.g. `--users 1,2,3` (printed to stdout).
        #[arg(long, value_delimiter = ',', conflicts_with = "all")]
        users: Vec<u32>,
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
        what: BenchWhat,
    },
}

/// A dataset folder and the config layers of the profile-pipeline commands.
#[derive(clap::Args)]
struct DatasetArgs {
    /// The dataset folder (train.tsv, profile files, ...).
    dataset_dir: PathBuf,
    /// Config file with the command's sections; built-in defaults without.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Override a config key, e.g. `--set llm.chat_model=qwen2.5:7b` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
}

#[derive(Subcommand)]
enum BenchWhat {
    /// The fused softmax-over-all-items cross-entropy (ProMax SDR), forward + backward,
    /// against a dense matmul of the same shape measured in the same run.
    Sdr {
        #[arg(long, default_value_t = 3000)]
        users: usize,
        #[arg(long, default_value_t = 9332)]
        items: usize,
        #[arg(long, default_value_t = 32)]
        dim: usize,
        /// Timed repetitions (the best is reported).
        #[arg(long, default_value_t = 5)]
        reps: usize,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum PluginsAction {
    /// Hyperparameters of one plugin, with defaults and docs.
    Show { name: String },
}

#[derive(Subcommand)]
enum DataAction {
    /// Counts, density and per-user statistics of a dataset folder.
    Stats { dataset_dir: PathBuf },
}

fn init_threads(threads: usize) -> Result<()> {
    if threads > 0 {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build_global()
            .context("setting up the thread pool")?;
    }
    Ok(())
}

fn cmd_train(
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
    let model = Model::build(&cfg, &registry, &ds)?;
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
fn resume_run(dir: &Path) -> Result<()> {
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
    let model = Model::build(&cfg, &registry, &ds)?;
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

/// The config of a dataset command: `data.path` is the dataset folder, set before the
/// other layers' `--set`s.
/// The config of a profile-pipeline command: the folder is `data.path` (profile files
/// resolve against it), set before validation, then the user's layers.
fn dataset_config(args: &DatasetArgs) -> Result<Config> {
    // DATASET_DIR is a shell path: relative to the working directory, not to data.root.
    let mut all_sets = vec![
        format!("data.path={}", args.dataset_dir.display()),
        "data.root=".into(),
    ];
    all_sets.extend(args.sets.iter().cloned());
    Ok(config::load_optional(args.config.as_deref(), &all_sets)?)
}

fn cmd_profile(args: &DatasetArgs, what: &str) -> Result<()> {
    let cfg = dataset_config(args)?;
    let what = what.parse().map_err(anyhow::Error::msg)?;
    profile::run_profile(&args.dataset_dir, &cfg, what, |r| println!("{r}"))?;
    Ok(())
}

fn cmd_embed(args: &DatasetArgs, what: &str) -> Result<()> {
    let cfg = dataset_config(args)?;
    let what = what.parse().map_err(anyhow::Error::msg)?;
    profile::run_embed(&args.dataset_dir, &cfg, what, |r| println!("{r}"))?;
    Ok(())
}

fn cmd_augment(
    args: &DatasetArgs,
    out: Option<&Path>,
    budgets_only: Option<&Path>,
    overwrite: bool,
) -> Result<()> {
    let cfg = dataset_config(args)?;
    let dataset_dir = args.dataset_dir.as_path();
    // Checked before any work: an LLM re-ranking is slow, and its result must not be lost
    // to a refusal at the end.
    if let Some(path) = budgets_only {
        augment::check_output(path, dataset_dir, overwrite)?;
    }
    let out = out.map_or_else(|| dataset_dir.join("augmented.tsv"), Path::to_path_buf);
    let mut report_path = out.clone().into_os_string();
    report_path.push(".report.json");
    let report_path = PathBuf::from(report_path);
    if budgets_only.is_none() {
        augment::check_output(&out, dataset_dir, overwrite)?;
        augment::check_output(&report_path, dataset_dir, overwrite)?;
    }
    let train_path = dataset_dir.join("train.tsv");
    let train = read_pairs(&train_path, None, None, cfg.data.duplicates)?;
    let n_users = train
        .iter()
        .map(|&(u, _)| u as usize + 1)
        .max()
        .unwrap_or(0);
    if let Some(path) = budgets_only {
        let counts = augment::counts(&train, n_users);
        let q = augment::quartiles(&counts);
        let budgets = augment::budgets(&counts, &q, cfg.augment.target_offset)?;
        let mut text = String::from("user\tbudget\n");
        for (u, b) in budgets.iter().enumerate() {
            text.push_str(&format!("{u}\t{b}\n"));
        }
        write_atomic(path, text.as_bytes())?;
        println!(
            "{}: budgets of {n_users} users (quartiles {:?}, target = next quartile + {}), \
             {} items in all",
            path.display(),
            q,
            cfg.augment.target_offset,
            budgets.iter().map(|&b| u64::from(b)).sum::<u64>()
        );
        return Ok(());
    }
    let n_items = train
        .iter()
        .map(|&(_, i)| i as usize + 1)
        .max()
        .unwrap_or(0);
    let profiles = load_augment_profiles(&cfg, n_users, n_items)?;
    let n_users = profiles.users.len() / profiles.dim;
    let (pu, pi, dim) = augment::retrieval_profiles(&profiles, &cfg.augment)?;
    let counts = augment::counts(&train, n_users);
    let q = augment::quartiles(&counts);
    let budgets = augment::budgets(&counts, &q, cfg.augment.target_offset)?;
    let candidates = augment::retrieve(&train, &pu, &pi, dim, &cfg.augment, &budgets)?;
    let n_items = pi.len() / dim;
    let rerank = reranker(&cfg, n_users, n_items)?;
    let (pairs, report) =
        augment::augment(&train, &counts, &cfg.augment, &candidates, rerank.as_ref())?;
    if let Err(e) = augment::check_unusable(&report, cfg.augment.max_unusable_share) {
        println!("{report}");
        return Err(e.into());
    }
    write_atomic(&out, augment::pairs_tsv(&pairs).as_bytes())?;
    write_atomic(
        &report_path,
        serde_json::to_string_pretty(&report)?.as_bytes(),
    )?;
    println!("{report}");
    println!("wrote {} and {}", out.display(), report_path.display());
    Ok(())
}

/// `augment.rerank`: the LLM when asked for (or, with "auto", when a chat model is
/// configured), else the dense-retrieval order.
fn reranker(cfg: &Config, n_users: usize, n_items: usize) -> Result<Box<dyn augment::Rerank>> {
    let a = &cfg.augment;
    let use_llm = match a.rerank.as_str() {
        "llm" => true,
        "dense" => false,
        _ => !cfg.llm.chat_model.is_empty(),
    };
    if !use_llm {
        return Ok(Box::new(augment::DenseOrder));
    }
    if cfg.llm.chat_model.is_empty() {
        anyhow::bail!("augment.rerank = \"llm\" needs llm.chat_model (and llm.base_url)");
    }
    let prompt_text = if a.rerank_prompt.as_os_str().is_empty() {
        augment::DEFAULT_RERANK_PROMPT.to_string()
    } else {
        std::fs::read_to_string(&a.rerank_prompt)
            .with_context(|| format!("augment.rerank_prompt: {}", a.rerank_prompt.display()))?
    };
    let prompt = augment::Prompt::parse(&prompt_text)
        .map_err(|e| anyhow::anyhow!("augment.rerank_prompt: {e}"))?;
    let dir = &cfg.data.path;
    let user_texts =
        augment::read_texts(&dir.join(&a.user_texts), n_users).context("augment.user_texts")?;
    let item_texts =
        augment::read_texts(&dir.join(&a.item_texts), n_items).context("augment.item_texts")?;
    let client = promax::llm::LlmClient::new(cfg.llm.clone())?;
    Ok(Box::new(augment::LlmRerank::new(
        client, prompt, user_texts, item_texts,
    )))
}

/// The profile tables `[data.profiles]` names (files resolved against the dataset folder,
/// or random), sized by their own rows; at least `n_users` users.
fn load_augment_profiles(
    cfg: &Config,
    n_users: usize,
    n_items: usize,
) -> Result<promax::data::Profiles> {
    let p = &cfg.data.profiles;
    if !p.is_set() {
        anyhow::bail!(
            "augment needs profile embeddings: set data.profiles.users and data.profiles.items \
             (e.g. --set data.profiles.users=user_profiles.npy --set \
             data.profiles.items=item_profiles.npy), or use --budgets-only"
        );
    }
    let (n_u, n_i) = if p.random_dim > 0 {
        (n_users.max(cfg.data.n_users), n_items.max(cfg.data.n_items))
    } else {
        // The header alone, checked against the file's size: a corrupt shape is an error
        // here, not an allocation failure.
        let dir = &cfg.data.path;
        (
            profile_table_rows(&dir.join(&p.users), "data.profiles.users", "user")?,
            profile_table_rows(&dir.join(&p.items), "data.profiles.items", "item")?,
        )
    };
    for (key, rows, need, what) in [
        ("data.profiles.users", n_u, n_users, "users"),
        ("data.profiles.items", n_i, n_items, "items"),
    ] {
        if rows < need {
            anyhow::bail!(
                "{key} has {rows} rows but train.tsv has {what} up to id {}",
                need - 1
            );
        }
    }
    promax::data::load_profiles(&cfg.data, n_u, n_i)?.context("no profiles configured")
}

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

fn cmd_recommend(
    run: &Path,
    users: &[u32],
    all: bool,
    (out, overwrite): (Option<&Path>, bool),
    k: usize,
) -> Result<()> {
    if let Some(path) = out {
        check_new_output(path, run, overwrite)?;
    }
    let rec = Recommender::from_run(run)?;
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

fn cmd_compare(args: promax::compare::CompareArgs) -> Result<()> {
    let exe = std::env::current_exe().context("finding the promax executable")?;
    promax::compare::compare(&args, &exe)
}

fn cmd_eval(run: &Path, add_groups: bool) -> Result<()> {
    runfolder::require_finished(run)?;
    let cfg = config::load_run(&run.join("config.toml"))?;
    init_threads(cfg.train.threads)?;
    let registry = Registry::discover(&cfg.plugin_dirs)?;
    let ds = load_dataset(&cfg.data)?;
    let model = Model::build(&cfg, &registry, &ds)?;
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

fn cmd_plugins(action: Option<PluginsAction>, config: Option<&Path>) -> Result<()> {
    let dirs = match config {
        Some(c) => config::load(c, &[])?.plugin_dirs,
        None => Vec::new(),
    };
    let registry = Registry::discover(&dirs)?;
    match action {
        None => {
            println!(
                "{:<16} {:<10} {:<9} {:<10} hyperparameters (defaults; `plugins show NAME` documents them)",
                "name", "kind", "version", "origin"
            );
            for e in registry.entries() {
                let hparams: Vec<String> = e
                    .info
                    .hparams
                    .iter()
                    .map(|h| format!("{}={}", h.name, h.default))
                    .collect();
                println!(
                    "{:<16} {:<10} {:<9} {:<10} {}",
                    e.info.name,
                    e.info.kind.as_str(),
                    e.info.version,
                    e.origin.to_string(),
                    hparams.join(" ")
                );
            }
        }
        Some(PluginsAction::Show { name }) => {
            let e = registry.find(&name)?;
            println!(
                "{} ({}, v{}, {})",
                e.info.name,
                e.info.kind.as_str(),
                e.info.version,
                e.origin
            );
            println!("{}\n", e.info.description);
            println!("hyperparameters ([plugins.{}] in a config):", e.info.name);
            for h in e.info.hparams.iter() {
                println!(
                    "  {:<16} {:<8} default {:<8} {}",
                    h.name, h.ty, h.default, h.doc
                );
            }
        }
    }
    Ok(())
}

fn cmd_data_stats(dir: &Path) -> Result<()> {
    let mut dc = DataConfig {
        path: dir.to_owned(),
        ..Config::default().data
    };
    // Profiles are reported when the folder has them under the conventional names; a path
    // there that is not a regular file is then refused by the reader, not skipped.
    let (users, items) = ("user_profiles.npy", "item_profiles.npy");
    if dir.join(users).exists() && dir.join(items).exists() {
        dc.profiles.users = users.into();
        dc.profiles.items = items.into();
    }
    let ds = load_dataset(&dc)?;
    println!("{}", stats(&ds));
    Ok(())
}

fn cmd_bench(what: BenchWhat) -> Result<()> {
    match what {
        BenchWhat::Sdr {
            users,
            items,
            dim,
            reps,
            json,
        } => {
            promax::bench::check_sizes(users, items, dim, reps)?;
            let r = promax::bench::sdr(users, items, dim, reps)?;
            if json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                println!(
                    "SDR kernel (fwd+bwd) B={users} N={items} d={dim}, {} threads: {:.1} GFLOP/s ({:.1} ms); \
                     dense matmul same run: {:.1} GFLOP/s; kernel extra memory {:.2} MiB \
                     (a dense B×N matrix: {:.1} MiB)",
                    r.threads,
                    r.kernel_gflops,
                    r.kernel_seconds * 1e3,
                    r.matmul_gflops,
                    r.extra_bytes as f64 / (1 << 20) as f64,
                    r.dense_matrix_bytes as f64 / (1 << 20) as f64
                );
            }
            Ok(())
        }
    }
}

/// Counts allocations so that `promax bench` can report peak memory as measured.
#[global_allocator]
static ALLOC: promax::alloc::Counting = promax::alloc::Counting;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Train {
            config,
            sets,
            out,
            resume,
            overwrite,
        } => cmd_train(
            config.as_deref(),
            &sets,
            out.as_deref(),
            resume.as_deref(),
            overwrite,
        ),
        Command::Eval {
            run_dir,
            add_groups,
        } => cmd_eval(&run_dir, add_groups),
        Command::Compare {
            config,
            sets,
            out,
            jobs,
            report_only,
            max_cells,
        } => cmd_compare(promax::compare::CompareArgs {
            config,
            sets,
            out,
            jobs: jobs as usize,
            report_only,
            max_cells,
        }),
        Command::Plugins { action, config } => cmd_plugins(action, config.as_deref()),
        Command::Data {
            action: DataAction::Stats { dataset_dir },
        } => cmd_data_stats(&dataset_dir),
        Command::Bench { what } => cmd_bench(what),
        Command::Recommend {
            run_dir,
            users,
            all,
            out,
            overwrite,
            k,
        } => cmd_recommend(&run_dir, &users, all, (out.as_deref(), overwrite), k),
        Command::Profile { data, what } => cmd_profile(&data, &what),
        Command::Embed { data, what } => cmd_embed(&data, &what),
        Command::Augment {
            data,
            out,
            budgets_only,
            overwrite,
        } => cmd_augment(&data, out.as_deref(), budgets_only.as_deref(), overwrite),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
