//! The commands on a dataset folder: `promax data stats`, and the profile pipeline
//! `promax profile`, `promax embed` and `promax augment`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Subcommand;
use promax::augment;
use promax::config::{self, Config, DataConfig, RerankMode};
use promax::data::{load_dataset, profile_table_rows, read_pairs, stats};
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

pub fn cmd_augment(
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
