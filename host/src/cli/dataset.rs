//! The commands on a dataset folder: `promax data stats`, and the profile pipeline
//! `promax profile`, `promax embed` and `promax augment`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Subcommand;
use promax::augment::{self, AugmentSource, Source};
use promax::config::{self, Config, DataConfig, RerankMode};
use promax::data::{load_dataset, profile_table_rows, read_pairs, stats, DuplicatePolicy, Pairs};
use promax::profile;
use promax::runfolder::write_atomic;

/// A dataset folder and the config layers of the profile-pipeline commands.
#[derive(clap::Args)]
pub struct DatasetArgs {
    /// The dataset folder (train.tsv, profile files, ...).
    pub dataset_dir: PathBuf,
    /// Config file with the command's sections; built-in defaults without.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Override a config key, e.g. `--set llm.chat_model=qwen2.5:7b` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
}

#[derive(Subcommand)]
pub enum DataAction {
    /// Counts, density and per-user statistics of a dataset folder.
    Stats { dataset_dir: PathBuf },
}

/// The config of a profile-pipeline command: the folder is `data.path` (profile files
/// resolve against it), set before validation, then the user's layers.
pub fn dataset_config(args: &DatasetArgs) -> Result<Config> {
    // DATASET_DIR is a shell path: relative to the working directory, not to data.root.
    let mut all_sets = vec![
        format!("data.path={}", args.dataset_dir.display()),
        "data.root=".into(),
    ];
    all_sets.extend(args.sets.iter().cloned());
    Ok(config::load_optional(args.config.as_deref(), &all_sets)?)
}

pub fn cmd_profile(args: &DatasetArgs, what: &str) -> Result<()> {
    let cfg = dataset_config(args)?;
    let what = what.parse().map_err(anyhow::Error::msg)?;
    profile::run_profile(&args.dataset_dir, &cfg, what, |r| println!("{r}"))?;
    Ok(())
}

pub fn cmd_embed(args: &DatasetArgs, what: &str) -> Result<()> {
    let cfg = dataset_config(args)?;
    let what = what.parse().map_err(anyhow::Error::msg)?;
    profile::run_embed(&args.dataset_dir, &cfg, what, |r| println!("{r}"))?;
    Ok(())
}

/// `--source NAME`.
pub fn parse_source(name: &str) -> Result<AugmentSource> {
    augment::cache::source_named(name).with_context(|| {
        format!(
            "--source {name:?}: must be one of {:?}",
            AugmentSource::NAMES
        )
    })
}

/// The flags of `promax augment` besides the dataset folder and config layers.
pub struct AugmentOpts<'a> {
    pub out: Option<&'a Path>,
    pub budgets_only: Option<&'a Path>,
    pub overwrite: bool,
    /// `--source` (overrides `augment.source`).
    pub source: Option<AugmentSource>,
    /// `--from-run` (overrides `augment.from_run`).
    pub from_run: Option<&'a Path>,
    /// `--evaluate` (after building: `Some(None)`) or `--evaluate FILE` (no build).
    pub evaluate: Option<Option<&'a Path>>,
}

pub fn cmd_augment(args: &DatasetArgs, o: AugmentOpts<'_>) -> Result<()> {
    let mut cfg = dataset_config(args)?;
    if let Some(source) = o.source {
        cfg.augment.source = source;
    }
    if let Some(run) = o.from_run {
        cfg.augment.from_run = run.to_path_buf();
    }
    let dataset_dir = args.dataset_dir.as_path();
    if let Some(Some(file)) = o.evaluate {
        return evaluate_file(dataset_dir, &cfg, file);
    }
    // Checked before any work: an LLM re-ranking is slow, and its result must not be lost
    // to a refusal at the end.
    if let Some(path) = o.budgets_only {
        augment::check_output(path, dataset_dir, o.overwrite)?;
    }
    let out = o
        .out
        .map_or_else(|| dataset_dir.join("augmented.tsv"), Path::to_path_buf);
    let report_path = augment::cache::report_path(&out);
    if o.budgets_only.is_none() {
        augment::check_output(&out, dataset_dir, o.overwrite)?;
        augment::check_output(&report_path, dataset_dir, o.overwrite)?;
    }
    let train_path = dataset_dir.join("train.tsv");
    let train = read_pairs(&train_path, None, None, cfg.data.duplicates)?;
    if let Some(path) = o.budgets_only {
        return write_budgets(&cfg, &train, path);
    }
    let (pairs, mut report) = build_set(&cfg, &train)?;
    if let Err(e) = augment::check_unusable(&report, cfg.augment.max_unusable_share) {
        println!("{report}");
        return Err(e.into());
    }
    if o.evaluate.is_some() {
        let (valid, test) = held_out(dataset_dir, &cfg)?;
        report.evaluation = Some(augment::evaluate(&train, &pairs, &valid, &test));
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

/// Users and items of a train split: the largest ids + 1, or `data.n_users` /
/// `data.n_items` when larger (items seen only in valid or test are unknown to a build,
/// which reads train alone).
fn train_sizes(train: &Pairs, cfg: &Config) -> (usize, usize) {
    let max = |f: fn(&(u32, u32)) -> u32| train.iter().map(|p| f(p) as usize + 1).max();
    (
        max(|p| p.0).unwrap_or(0).max(cfg.data.n_users),
        max(|p| p.1).unwrap_or(0).max(cfg.data.n_items),
    )
}

/// `--budgets-only`: `user<TAB>budget` from the train counts.
fn write_budgets(cfg: &Config, train: &Pairs, path: &Path) -> Result<()> {
    let n_users = train
        .iter()
        .map(|&(u, _)| u as usize + 1)
        .max()
        .unwrap_or(0);
    let counts = augment::counts(train, n_users);
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
    Ok(())
}

/// The augmented set of `augment.source` from `train`: only `profiles` reads profiles
/// (and, to re-rank, the LLM).
fn build_set(cfg: &Config, train: &Pairs) -> Result<(Pairs, augment::AugmentReport)> {
    let a = &cfg.augment;
    let (n_users, n_items) = train_sizes(train, cfg);
    let built = match a.source {
        AugmentSource::Random => {
            let seed = a.seed_or(cfg.train.seed);
            augment::build(train, n_users, n_items, a, Source::Random { seed })?
        }
        AugmentSource::Popular => augment::build(train, n_users, n_items, a, Source::Popular)?,
        AugmentSource::Cf => {
            let run = augment::CfRun::open(&a.from_run, train)?;
            let (n_users, n_items) = run.sizes();
            augment::build(train, n_users, n_items, a, Source::Cf(&run))?
        }
        AugmentSource::Profiles => {
            let inferred = train_sizes(train, &Config::default());
            let profiles = load_augment_profiles(cfg, inferred.0, inferred.1)?;
            let n_users = profiles.users.len() / profiles.dim;
            let n_items = profiles.items.len() / profiles.dim;
            let rerank = reranker(cfg, n_users, n_items)?;
            let source = Source::Profiles {
                profiles: &profiles,
                rerank: rerank.as_ref(),
            };
            augment::build(train, n_users, n_items, a, source)?
        }
    };
    Ok(built)
}

/// valid.tsv and test.tsv of the dataset folder: read only to evaluate a set.
fn held_out(dataset_dir: &Path, cfg: &Config) -> Result<(Pairs, Pairs)> {
    let read = |f: &str| read_pairs(&dataset_dir.join(f), None, None, cfg.data.duplicates);
    Ok((read("valid.tsv")?, read("test.tsv")?))
}

/// `--evaluate FILE`: the held-out shares of an existing augmented set's added pairs,
/// printed and, when the set has a report, recorded in it under `evaluation`.
fn evaluate_file(dataset_dir: &Path, cfg: &Config, file: &Path) -> Result<()> {
    let train = read_pairs(
        &dataset_dir.join("train.tsv"),
        None,
        None,
        cfg.data.duplicates,
    )?;
    let pairs = read_pairs(file, None, None, DuplicatePolicy::Error)?;
    let (valid, test) = held_out(dataset_dir, cfg)?;
    let e = augment::evaluate(&train, &pairs, &valid, &test);
    println!("{}:\n{e}", file.display());
    let report_path = augment::cache::report_path(file);
    if report_path.is_file() {
        let text = std::fs::read_to_string(&report_path)
            .with_context(|| format!("reading {}", report_path.display()))?;
        let mut report: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("parsing {}", report_path.display()))?;
        let Some(obj) = report.as_object_mut() else {
            anyhow::bail!("{}: not a JSON object", report_path.display());
        };
        obj.insert("evaluation".into(), serde_json::to_value(&e)?);
        write_atomic(
            &report_path,
            serde_json::to_string_pretty(&report)?.as_bytes(),
        )?;
        println!("recorded under `evaluation` in {}", report_path.display());
    }
    Ok(())
}

/// `augment.rerank`: the LLM when asked for (or, with "auto", when a chat model is
/// configured), else the dense-retrieval order.
fn reranker(cfg: &Config, n_users: usize, n_items: usize) -> Result<Box<dyn augment::Rerank>> {
    let a = &cfg.augment;
    let use_llm = match a.rerank {
        RerankMode::Llm => true,
        RerankMode::Dense => false,
        RerankMode::Auto => !cfg.llm.chat_model.is_empty(),
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

pub fn cmd_data_stats(dir: &Path) -> Result<()> {
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
