//! Layered run configuration (figment).
//!
//! Layers, later wins: built-in defaults ← the `extends` chain of the config file (parents
//! first) ← the file itself ← `PROMAX_*` environment variables ← each `--set key=value`.
//! Every value keeps the layer that set it, so an unknown key, a wrong type or an
//! out-of-range value is reported with its full dotted key, the file (or variable, or
//! `--set` argument) it came from, and for a typo the nearest valid key.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use crate::augment::{AugmentConfig, RERANK_MODES};
use crate::llm::LlmConfig;
use crate::profile::{EmbedConfig, ProfileConfig, MAX_EMBED_BATCH};
use figment::error::Kind;
use figment::value::{Dict, Map, Num, Tag, Value};
use figment::{Figment, Metadata, Profile, Provider, Source};
use promax_plugin_api::sdk::{edit_distance, nearest};
use serde::{Deserialize, Serialize};

/// Prefix of the environment variables that override config keys (`PROMAX_TRAIN__SEED=7`).
pub const ENV_PREFIX: &str = "PROMAX_";

/// `PROMAX_*` variables that are not config keys, so the environment layer skips them
/// instead of reporting them as unknown keys. `PROMAX_PLUGIN_PATH` is read by the plugin
/// registry as an extra plugin search path.
pub const ENV_NOT_CONFIG: &[&str] = &["PROMAX_PLUGIN_PATH"];

/// Names accepted by `device`.
pub const DEVICES: &[&str] = &["auto", "cpu", "cuda"];
/// Names accepted by `data.kind`.
pub const DATA_KINDS: &[&str] = &["files", "synthetic"];
/// Names accepted by `data.duplicates`.
pub const DUPLICATE_POLICIES: &[&str] = &["error", "drop"];
/// Names accepted by `augment.reduction`.
pub const REDUCTIONS: &[&str] = &["separate", "joint"];
/// Metric names accepted before the `@K` of `eval.metric`.
pub const METRICS: &[&str] = &["recall", "ndcg", "precision", "hitrate", "mrr"];

/// The whole resolved configuration of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Extra folders scanned for `cdylib` plugins (besides `PROMAX_PLUGIN_PATH`).
    pub plugin_dirs: Vec<PathBuf>,
    /// Compute backend: `"auto"`, `"cpu"` or `"cuda"`.
    pub device: String,
    /// Which interactions to train and evaluate on.
    pub data: DataConfig,
    /// Which backbone and augmenters to compose.
    pub model: ModelConfig,
    /// Per-plugin hyperparameter tables (`[plugins.lightgcn] layers = 3`); each plugin
    /// validates its own table, so the host only checks that every entry is a table.
    pub plugins: BTreeMap<String, serde_json::Value>,
    /// Optimisation settings.
    pub train: TrainConfig,
    /// Validation / early-stopping settings.
    pub eval: EvalConfig,
    /// Where results go.
    pub run: RunConfig,
    /// `promax profile`: written user and item profiles through the chat endpoint.
    pub profile: ProfileConfig,
    /// `promax embed`: profile texts to `.npy` tables through the embeddings endpoint.
    pub embed: EmbedConfig,
    /// `promax augment`: profile-guided retrieval and the sparsity level shift.
    pub augment: AugmentConfig,
    /// The OpenAI-compatible endpoint of the profile pipeline (re-ranking, profiles,
    /// embeddings).
    pub llm: LlmConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            plugin_dirs: Vec::new(),
            device: "cpu".into(),
            data: DataConfig::default(),
            model: ModelConfig::default(),
            plugins: BTreeMap::new(),
            train: TrainConfig::default(),
            eval: EvalConfig::default(),
            run: RunConfig::default(),
            profile: ProfileConfig::default(),
            embed: EmbedConfig::default(),
            augment: AugmentConfig::default(),
            llm: LlmConfig::default(),
        }
    }
}

/// The dataset: a folder of split files, or the built-in synthetic generator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    /// `"files"` (read `path`) or `"synthetic"` (generate from `synthetic`).
    pub kind: String,
    /// Folder a relative `path` resolves against, itself relative to the working directory
    /// (not to the config file), as a shell user would expect; `""` = the working
    /// directory. One setting (or `PROMAX_DATA__ROOT`) moves every dataset config to
    /// wherever the datasets live.
    pub root: PathBuf,
    /// Folder holding `train.tsv`, `valid.tsv`, `test.tsv`; a relative path resolves
    /// against `root`.
    pub path: PathBuf,
    /// Display name; `""` = the folder name, or `"synthetic"`.
    pub name: String,
    /// Declared number of users; 0 = infer as max id + 1 over all splits.
    pub n_users: usize,
    /// Declared number of items; 0 = infer as max id + 1 over all splits.
    pub n_items: usize,
    /// What a repeated (user, item) line in one split file does: `"error"` or `"drop"`.
    pub duplicates: String,
    /// 0-based fields of the user and item ids in the split files (`[0, 1]`), for files
    /// with more columns; empty = every line has exactly two fields, user and item.
    pub columns: Vec<usize>,
    /// Generator settings, used when `kind = "synthetic"`.
    pub synthetic: SyntheticConfig,
    /// User and item profile embeddings: `.npy` files, seeded random ones, or none.
    pub profiles: ProfilesConfig,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            kind: "files".into(),
            root: PathBuf::new(),
            path: PathBuf::new(),
            name: String::new(),
            n_users: 0,
            n_items: 0,
            duplicates: "error".into(),
            columns: Vec::new(),
            synthetic: SyntheticConfig::default(),
            profiles: ProfilesConfig::default(),
        }
    }
}

impl DataConfig {
    /// The dataset folder: `path` resolved against `root` (an absolute `path` stands as
    /// given).
    pub fn dir(&self) -> PathBuf {
        self.root.join(&self.path)
    }

    /// `data.columns` as `[user, item]` field indices, `None` when empty (exactly two
    /// fields per line); else `(value, reason)`. Shared by [`Config::validate`] and the data
    /// loader (which may be handed a `DataConfig` built in code).
    pub fn split_columns(&self) -> Result<Option<[usize; 2]>, (String, String)> {
        match self.columns[..] {
            [] => Ok(None),
            [u, i] if u != i => Ok(Some([u, i])),
            _ => Err((
                format!("{:?}", self.columns),
                "must name two distinct 0-based fields, [user, item], or be empty \
                 (exactly two fields per line)"
                    .into(),
            )),
        }
    }
}

/// Where the profile embeddings come from. All defaults = none (the synthetic dataset
/// then keeps its generated ones).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProfilesConfig {
    /// `.npy` float32 array `n_users × D`; a relative path resolves against `data.path`
    /// (the dataset folder, where the profiles live beside the splits); `""` = none.
    pub users: PathBuf,
    /// `.npy` float32 array `n_items × D`, resolved like `users`.
    pub items: PathBuf,
    /// `> 0`: instead of files, seeded standard-normal profiles of this dimension for every
    /// user and item (REFERENCE.md's stand-in that isolates what the profiles contribute).
    pub random_dim: usize,
    /// Seed of the random profiles; separate from `train.seed` so that the profiles stay
    /// fixed while training seeds vary.
    pub random_seed: u64,
}

impl ProfilesConfig {
    /// Whether any profile source is configured (files or random).
    pub fn is_set(&self) -> bool {
        !self.users.as_os_str().is_empty()
            || !self.items.as_os_str().is_empty()
            || self.random_dim > 0
    }

    /// The configuration's consistency, shared by [`Config::validate`] and the data
    /// loader (which may be handed a `DataConfig` built in code): `(key, value, reason)`
    /// of the first problem.
    pub fn problem(&self) -> Option<(&'static str, String, String)> {
        let (users, items) = (
            !self.users.as_os_str().is_empty(),
            !self.items.as_os_str().is_empty(),
        );
        if self.random_dim > 0 && (users || items) {
            let key = if users {
                "data.profiles.users"
            } else {
                "data.profiles.items"
            };
            return Some((
                "data.profiles.random_dim",
                self.random_dim.to_string(),
                format!(
                    "cannot be combined with {key}: use either profile files \
                     (data.profiles.users and data.profiles.items) or random profiles \
                     (data.profiles.random_dim > 0), not both"
                ),
            ));
        }
        if users != items {
            // Reported on the key that was set, so that the error names the layer that set
            // it (the empty one comes from the defaults).
            let (given, missing, path) = if users {
                ("data.profiles.users", "data.profiles.items", &self.users)
            } else {
                ("data.profiles.items", "data.profiles.users", &self.items)
            };
            return Some((
                given,
                format!("{:?}", path.display().to_string()),
                format!("is set but {missing} is empty: give both profile files or neither"),
            ));
        }
        None
    }
}

/// Settings of the planted-cluster synthetic dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyntheticConfig {
    /// Number of users.
    pub n_users: usize,
    /// Number of items.
    pub n_items: usize,
    /// Number of planted clusters shared by users and items.
    pub n_clusters: usize,
    /// Typical number of interactions per user (each user gets at least 5).
    pub mean_interactions: usize,
    /// Share of a user's interactions drawn from their own cluster, in [0, 1].
    pub affinity: f64,
    /// Dimension of the generated profile embeddings.
    pub profile_dim: usize,
    /// Share of the profile embedding's variance that carries the planted cluster signal,
    /// in [0, 1]; 0 = pure noise.
    pub profile_signal: f64,
    /// Generator seed.
    pub seed: u64,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        SyntheticConfig {
            n_users: 600,
            n_items: 400,
            n_clusters: 8,
            mean_interactions: 25,
            affinity: 0.8,
            profile_dim: 32,
            profile_signal: 0.7,
            seed: 7,
        }
    }
}

/// Which plugins make up the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    /// Backbone plugin name (e.g. `"lightgcn"`, `"mf"`).
    pub backbone: String,
    /// Augmenter plugin names, applied together.
    pub augmenters: Vec<String>,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            backbone: "lightgcn".into(),
            augmenters: Vec::new(),
        }
    }
}

/// Optimisation settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Seed for initialisation, shuffling and negative sampling.
    pub seed: u64,
    /// Upper bound on epochs; early stopping usually ends the run first.
    pub max_epochs: usize,
    /// Training interactions per batch.
    pub batch_size: usize,
    /// Adam learning rate.
    pub lr: f64,
    /// L2 weight on all trainable tables.
    pub reg_weight: f64,
    /// Worker threads; 0 = all cores.
    pub threads: usize,
    /// Write the resumable checkpoint every this many epochs; 0 = at each evaluation.
    pub checkpoint_every: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            seed: 2025,
            max_epochs: 1000,
            batch_size: 4096,
            lr: 1e-3,
            reg_weight: 1e-6,
            threads: 0,
            checkpoint_every: 0,
        }
    }
}

/// Validation and early stopping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvalConfig {
    /// Validate every this many epochs.
    pub every: usize,
    /// Stop after this many evaluations without improvement of `metric`.
    pub patience: usize,
    /// Cut-offs K reported for every metric.
    pub ks: Vec<usize>,
    /// Early-stopping metric on validation, `"<name>@K"` with K in `ks`.
    pub metric: String,
    /// Users scored per tile in full-ranking evaluation (bounds scratch memory).
    pub user_tile: usize,
}

impl Default for EvalConfig {
    fn default() -> Self {
        EvalConfig {
            every: 3,
            patience: 5,
            ks: vec![5, 10, 20],
            metric: "recall@20".into(),
            user_tile: 256,
        }
    }
}

/// Where a run writes its results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunConfig {
    /// Parent folder of run folders.
    pub out_dir: PathBuf,
    /// Run folder name; `""` = generated.
    pub name: String,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            out_dir: "runs".into(),
            name: String::new(),
        }
    }
}

/// Why a configuration could not be loaded.
#[derive(thiserror::Error, Debug)]
pub enum ConfigError {
    /// The config file given on the command line does not exist.
    #[error("config file {} not found", path.display())]
    Missing {
        /// The missing file.
        path: PathBuf,
    },
    /// A file named in `extends` does not exist.
    #[error("config file {} not found (named in `extends` of {})", path.display(), named_by.display())]
    MissingExtends {
        /// The missing file, resolved against the folder of `named_by`.
        path: PathBuf,
        /// The file whose `extends` names it.
        named_by: PathBuf,
    },
    /// A config file exists but cannot be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Io {
        /// The unreadable file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A config file is not valid TOML.
    #[error("{}:{line}:{column}: invalid TOML: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// The parser's message.
        message: String,
    },
    /// `extends` is neither a string nor an array of strings.
    #[error("{}: `extends` must be a file name or an array of file names, found {found}", path.display())]
    BadExtends {
        /// The file.
        path: PathBuf,
        /// What was there instead.
        found: String,
    },
    /// The `extends` chain loops back on itself.
    #[error("config `extends` cycle: {chain}")]
    Cycle {
        /// The files of the loop, joined by arrows.
        chain: String,
    },
    /// A `--set` argument is not `key=value`.
    #[error("--set {arg}: {reason}")]
    BadSet {
        /// The argument as given.
        arg: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A `PROMAX_*` variable whose name does not map to a dotted key.
    #[error("environment variable {var}: {reason}")]
    BadEnv {
        /// The variable's name.
        var: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A key that no config section has.
    #[error("unknown config key `{key}` in {origin}{}{}",
        suggestion.as_ref().map(|s| format!("; did you mean `{s}`?")).unwrap_or_default(),
        if *others > 0 { format!(" ({others} more unknown key(s) after it)") } else { String::new() })]
    UnknownKey {
        /// Full dotted key, e.g. `train.sed`.
        key: String,
        /// The layer that set it: a file path, a `PROMAX_` variable or a `--set` argument.
        origin: String,
        /// The nearest valid key, when one is plausibly meant.
        suggestion: Option<String>,
        /// How many further unknown keys were found (only the first is described).
        others: usize,
    },
    /// A value of the wrong type.
    #[error("config key `{key}` in {origin}: expected {expected}, found {found}")]
    WrongType {
        /// Full dotted key.
        key: String,
        /// The layer that set it.
        origin: String,
        /// What was found, e.g. `string "abc"`.
        found: String,
        /// What the key takes, e.g. `f64`.
        expected: String,
    },
    /// A well-typed value outside its allowed range or set.
    #[error("config key `{key}` = {value}{}: {reason}",
        origin.as_ref().map(|s| format!(" (from {s})")).unwrap_or_default())]
    Invalid {
        /// Full dotted key.
        key: String,
        /// The offending value, as written in TOML.
        value: String,
        /// What is allowed.
        reason: String,
        /// The layer that set it, when known.
        origin: Option<String>,
    },
}

/// Loads the configuration at `path`, layered over its `extends` chain and the built-in
/// defaults, then the `PROMAX_*` environment, then each `--set key=value` in `sets`.
pub fn load(path: &Path, sets: &[String]) -> Result<Config, ConfigError> {
    load_optional(Some(path), sets)
}

/// A run folder's `config.toml` exactly as written: no `PROMAX_*` environment and no
/// `--set`, so that nothing from outside changes a stored run when it is evaluated,
/// resumed or compared.
pub fn load_run(path: &Path) -> Result<Config, ConfigError> {
    load_with_env(Some(path), &[], std::iter::empty())
}

/// [`load`], or with no file only the defaults, the environment and `sets` (commands such
/// as `promax augment DATASET_DIR` that run without an experiment file).
pub fn load_optional(path: Option<&Path>, sets: &[String]) -> Result<Config, ConfigError> {
    load_with_env(
        path,
        sets,
        std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
    )
}

/// [`load`] over several config files layered in order (later wins), each with its own
/// `extends` chain, then the environment and `sets`. A file reached twice (named twice, or
/// through `extends`) is merged once, at its first position, as in one `extends` chain.
/// `promax compare` builds every cell's configuration this way.
pub fn load_layers(files: &[&Path], sets: &[String]) -> Result<Config, ConfigError> {
    load_layers_with_env(
        files,
        sets,
        std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
    )
}

/// [`load`] with the environment given explicitly, so tests do not depend on (or race on)
/// the process environment.
fn load_with_env(
    path: Option<&Path>,
    sets: &[String],
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, ConfigError> {
    load_layers_with_env(path.as_slice(), sets, env)
}

/// [`load_layers`] with the environment given explicitly.
fn load_layers_with_env(
    paths: &[&Path],
    sets: &[String],
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, ConfigError> {
    let schema = schema();
    let mut figment = Figment::from(Layer::new(
        Metadata::named("built-in defaults"),
        defaults_dict(),
    ));

    let mut files = Vec::new();
    let mut seen = HashSet::new();
    for path in paths {
        collect_chain(path, None, &mut Vec::new(), &mut seen, &mut files)?;
    }
    for (file, dict) in files {
        figment = figment.merge(Layer::new(
            Metadata::from("config file", Source::File(file)),
            dict,
        ));
    }
    for layer in env_layers(env, &schema)? {
        figment = figment.merge(layer);
    }
    for arg in sets {
        figment = figment.merge(set_layer(arg, &schema)?);
    }

    check_unknown_keys(&figment, &schema)?;
    let cfg: Config = figment.extract().map_err(extract_error)?;
    cfg.validate().map_err(|e| match e {
        ConfigError::Invalid {
            key,
            value,
            reason,
            origin: None,
        } => {
            let origin = figment.find_metadata(&key).map(describe_source);
            ConfigError::Invalid {
                key,
                value,
                reason,
                origin,
            }
        }
        other => other,
    })?;
    Ok(cfg)
}

/// The resolved configuration as TOML, loadable again by [`load`]; written beside every
/// run's results so that the run can be repeated from its folder.
pub fn to_toml(cfg: &Config) -> String {
    match toml::to_string(cfg) {
        Ok(body) => {
            format!("# promax resolved configuration: every key, after all layers.\n{body}")
        }
        // Only a non-UTF-8 path can fail, and `load` never produces one (TOML, environment
        // and `--set` text is UTF-8). Should a hand-built Config hit it, the written file
        // names the problem and `load` refuses it (unknown key) instead of running defaults.
        Err(e) => format!(
            "# promax could not serialise this configuration: {e}\nunserialisable_config = true\n"
        ),
    }
}

impl Config {
    /// Checks every value's range; errors name the dotted key (the layer is added by [`load`]).
    pub fn validate(&self) -> Result<(), ConfigError> {
        use check::{bad, in_range, one_of};

        one_of("device", &self.device, DEVICES)?;
        self.validate_augment()?;
        if let Some((key, value, reason)) = self.llm.problem() {
            return Err(bad(key, Raw(value), reason));
        }
        let p = &self.profile;
        if p.items_file.as_os_str().is_empty() {
            return Err(bad(
                "profile.items_file",
                "",
                "must name the item metadata file",
            ));
        }
        in_range(
            "profile.max_user_items",
            p.max_user_items,
            1,
            limits::MAX_USER_ITEMS,
        )?;
        let e = &self.embed;
        for (key, path) in [
            ("embed.user_texts", &e.user_texts),
            ("embed.item_texts", &e.item_texts),
        ] {
            if path.as_os_str().is_empty() {
                return Err(bad(key, "", "must name an `id<TAB>text` profile file"));
            }
        }
        in_range("embed.batch_size", e.batch_size, 1, MAX_EMBED_BATCH)?;

        let d = &self.data;
        one_of("data.kind", &d.kind, DATA_KINDS)?;
        one_of("data.duplicates", &d.duplicates, DUPLICATE_POLICIES)?;
        if let Err((value, reason)) = d.split_columns() {
            return Err(bad("data.columns", Raw(value), reason));
        }
        if d.kind == "files" && d.path.as_os_str().is_empty() {
            return Err(bad(
                "data.path",
                "",
                "must name the folder holding train.tsv, valid.tsv and test.tsv when data.kind = \"files\"",
            ));
        }
        // Ids are u32 everywhere past the loader.
        in_range("data.n_users", d.n_users, 0, limits::MAX_IDS)?;
        in_range("data.n_items", d.n_items, 0, limits::MAX_IDS)?;
        self.validate_synthetic()?;
        if let Some((key, value, reason)) = d.profiles.problem() {
            return Err(bad(key, Raw(value), reason));
        }
        in_range(
            "data.profiles.random_dim",
            d.profiles.random_dim,
            0,
            limits::MAX_PROFILE_DIM,
        )?;

        if self.model.backbone.trim().is_empty() {
            return Err(bad(
                "model.backbone",
                &self.model.backbone,
                "must name a backbone plugin",
            ));
        }
        if let Some((name, v)) = self.plugins.iter().find(|(_, v)| !v.is_object()) {
            return Err(bad(
                &format!("plugins.{name}"),
                Raw(v.to_string()),
                "must be a table of that plugin's hyperparameters",
            ));
        }

        let t = &self.train;
        for (key, seed) in [
            ("train.seed", t.seed),
            ("data.synthetic.seed", d.synthetic.seed),
            ("data.profiles.random_seed", d.profiles.random_seed),
        ] {
            if seed > limits::MAX_SEED {
                return Err(bad(
                    key,
                    seed,
                    format!(
                        "must be at most {}: every run writes its resolved config as TOML, \
                         whose integers are 64-bit signed",
                        limits::MAX_SEED
                    ),
                ));
            }
        }
        in_range("train.max_epochs", t.max_epochs, 1, limits::MAX_EPOCHS)?;
        in_range("train.batch_size", t.batch_size, 1, limits::MAX_BATCH)?;
        in_range("train.threads", t.threads, 0, limits::MAX_THREADS)?;
        in_range(
            "train.checkpoint_every",
            t.checkpoint_every,
            0,
            limits::MAX_EPOCHS,
        )?;
        if !(t.lr.is_finite() && t.lr > 0.0) {
            return Err(bad("train.lr", t.lr, "must be a positive finite number"));
        }
        if !(t.reg_weight.is_finite() && t.reg_weight >= 0.0) {
            return Err(bad(
                "train.reg_weight",
                t.reg_weight,
                "must be a finite number >= 0",
            ));
        }

        let e = &self.eval;
        if e.every == 0 {
            return Err(bad(
                "eval.every",
                e.every,
                "must be at least 1 (validate every N epochs)",
            ));
        }
        in_range("eval.every", e.every, 1, limits::MAX_EPOCHS)?;
        in_range("eval.patience", e.patience, 1, limits::MAX_EPOCHS)?;
        if e.ks.is_empty() || e.ks.contains(&0) {
            return Err(bad(
                "eval.ks",
                &e.ks,
                "must be a non-empty list of cut-offs K >= 1",
            ));
        }
        // Evaluation keeps K ids and scores per user of a tile: an absurd K must stop here,
        // before anything is sized by it.
        if let Some(&k) = e.ks.iter().find(|&&k| k > limits::MAX_K) {
            return Err(bad(
                "eval.ks",
                &e.ks,
                format!(
                    "K = {k} is too large: every cut-off must be between 1 and {}",
                    limits::MAX_K
                ),
            ));
        }
        in_range("eval.user_tile", e.user_tile, 1, limits::MAX_USER_TILE)?;
        let metric_ok = e.metric.split_once('@').is_some_and(|(name, k)| {
            METRICS.contains(&name) && k.parse::<usize>().is_ok_and(|k| e.ks.contains(&k))
        });
        if !metric_ok {
            return Err(bad(
                "eval.metric",
                &e.metric,
                format!(
                    "must be <{}>@K with K one of eval.ks {:?}",
                    METRICS.join("|"),
                    e.ks
                ),
            ));
        }
        Ok(())
    }

    /// `[augment]`: every count bounded, so that budgets and candidate lists stay small.
    fn validate_augment(&self) -> Result<(), ConfigError> {
        let a = &self.augment;
        check::one_of("augment.rerank", &a.rerank, RERANK_MODES)?;
        check::one_of("augment.reduction", &a.reduction, REDUCTIONS)?;
        check::in_range("augment.knn", a.knn, 1, limits::MAX_KNN)?;
        check::in_range(
            "augment.max_candidates",
            a.max_candidates,
            1,
            limits::MAX_CANDIDATES,
        )?;
        check::in_range(
            "augment.target_offset",
            a.target_offset,
            0,
            limits::MAX_TARGET_OFFSET,
        )?;
        check::in_range(
            "augment.reduce_dim",
            a.reduce_dim,
            0,
            limits::MAX_PROFILE_DIM,
        )?;
        check::unit_share("augment.max_unusable_share", a.max_unusable_share)
    }

    /// `[data.synthetic]`: the generator's sizes, bounded so that it cannot be asked for
    /// absurd allocations. Checked whatever `data.kind` says, so that a typo in an unused
    /// section does not surface only when someone switches to it.
    fn validate_synthetic(&self) -> Result<(), ConfigError> {
        let s = &self.data.synthetic;
        check::unit_share("data.synthetic.affinity", s.affinity)?;
        check::unit_share("data.synthetic.profile_signal", s.profile_signal)?;
        check::in_range(
            "data.synthetic.n_users",
            s.n_users,
            1,
            limits::MAX_SYNTHETIC,
        )?;
        if s.n_items < 5 {
            return Err(check::bad(
                "data.synthetic.n_items",
                s.n_items,
                "must be at least 5 (every user gets at least 5 items)",
            ));
        }
        check::in_range(
            "data.synthetic.n_items",
            s.n_items,
            5,
            limits::MAX_SYNTHETIC,
        )?;
        if s.n_clusters == 0 || s.n_clusters > s.n_items {
            return Err(check::bad(
                "data.synthetic.n_clusters",
                s.n_clusters,
                format!("must be between 1 and n_items ({})", s.n_items),
            ));
        }
        check::in_range(
            "data.synthetic.mean_interactions",
            s.mean_interactions,
            0,
            limits::MAX_MEAN_INTERACTIONS,
        )?;
        // Each user gets about max(mean_interactions, 5) pairs.
        let pairs = s.n_users.saturating_mul(s.mean_interactions.max(5));
        if pairs > limits::MAX_SYNTHETIC_PAIRS {
            return Err(check::bad(
                "data.synthetic.mean_interactions",
                s.mean_interactions,
                format!(
                    "n_users × mean_interactions = {pairs} interactions; at most {} (lower \
                     mean_interactions or n_users)",
                    limits::MAX_SYNTHETIC_PAIRS
                ),
            ));
        }
        check::in_range(
            "data.synthetic.profile_dim",
            s.profile_dim,
            1,
            limits::MAX_PROFILE_DIM,
        )?;
        // Both tables together: (n_users + n_items) × profile_dim floats.
        let values = (s.n_users + s.n_items).saturating_mul(s.profile_dim);
        if values > limits::MAX_SYNTHETIC_PROFILE_VALUES {
            return Err(check::bad(
                "data.synthetic.profile_dim",
                s.profile_dim,
                format!(
                    "(n_users + n_items) × profile_dim = {values} profile values; at most {} \
                     (lower profile_dim or the sizes)",
                    limits::MAX_SYNTHETIC_PROFILE_VALUES
                ),
            ));
        }
        Ok(())
    }
}

/// The range helpers of [`Config::validate`]: errors name the dotted key and the value
/// (the layer is added by [`load`]).
mod check {
    use super::{nearest, quoted_list, ConfigError};
    use std::fmt;

    pub(super) fn bad(key: &str, value: impl fmt::Debug, reason: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            key: key.into(),
            value: format!("{value:?}"),
            reason: reason.into(),
            origin: None,
        }
    }
    pub(super) fn one_of(key: &str, value: &str, allowed: &[&str]) -> Result<(), ConfigError> {
        if allowed.contains(&value) {
            return Ok(());
        }
        let hint = nearest(value, allowed.iter().copied())
            .map(|s| format!(" (did you mean \"{s}\"?)"))
            .unwrap_or_default();
        Err(bad(
            key,
            value,
            format!("must be one of {}{hint}", quoted_list(allowed)),
        ))
    }
    pub(super) fn unit_share(key: &str, v: f64) -> Result<(), ConfigError> {
        if (0.0..=1.0).contains(&v) {
            Ok(())
        } else {
            Err(bad(key, v, "must be a share between 0 and 1"))
        }
    }

    pub(super) fn in_range<T: PartialOrd + fmt::Display + fmt::Debug>(
        key: &str,
        v: T,
        lo: T,
        hi: T,
    ) -> Result<(), ConfigError> {
        if lo <= v && v <= hi {
            Ok(())
        } else {
            Err(bad(key, v, format!("must be between {lo} and {hi}")))
        }
    }
}

/// The upper bounds [`Config::validate`] enforces. Each is far above what a real run
/// uses and far below what would exhaust memory or overflow the arithmetic sized by it.
pub mod limits {
    /// `train.max_epochs`, `eval.every`, `eval.patience`.
    pub const MAX_EPOCHS: usize = 1_000_000;
    /// `train.batch_size`: 16 Mi interactions.
    pub const MAX_BATCH: usize = 1 << 24;
    /// `train.threads` (0 = all cores): more threads than this only adds overhead on any
    /// machine promax runs on.
    pub const MAX_THREADS: usize = 1024;
    /// Every K of `eval.ks` (a top-K list per user is kept for the largest).
    pub const MAX_K: usize = 10_000;
    /// `eval.user_tile`: a tile holds user_tile × n_items scores.
    pub const MAX_USER_TILE: usize = 65_536;
    /// `data.n_users`, `data.n_items`: ids are u32.
    pub const MAX_IDS: usize = u32::MAX as usize;
    /// `data.synthetic.n_users`, `data.synthetic.n_items`.
    pub const MAX_SYNTHETIC: usize = 10_000_000;
    /// `data.synthetic.mean_interactions`.
    pub const MAX_MEAN_INTERACTIONS: usize = 10_000;
    /// `n_users × mean_interactions` of the synthetic dataset: 2 GiB of (u32, u32) pairs.
    pub const MAX_SYNTHETIC_PAIRS: usize = 1 << 28;
    /// `(n_users + n_items) × profile_dim` of the synthetic profiles: 1 GiB of f32.
    pub const MAX_SYNTHETIC_PROFILE_VALUES: usize = 1 << 28;
    /// Profile dimensions: `data.synthetic.profile_dim`, `data.profiles.random_dim`,
    /// `augment.reduce_dim` (the largest embedding models give 4096).
    pub const MAX_PROFILE_DIM: usize = 65_536;
    /// `augment.knn`.
    pub const MAX_KNN: usize = 10_000;
    /// `augment.max_candidates` (each is shown to an LLM).
    pub const MAX_CANDIDATES: usize = 10_000;
    /// `augment.target_offset`: items added per user beyond the next quartile.
    pub const MAX_TARGET_OFFSET: u32 = 100_000;
    /// `profile.max_user_items`.
    pub const MAX_USER_ITEMS: usize = 10_000;
    /// Seeds: the largest TOML integer, so that `to_toml` can write every valid config.
    pub const MAX_SEED: u64 = i64::MAX as u64;
}

/// Shows a value already written as TOML/JSON text without Debug's quotes.
struct Raw(String);

impl fmt::Debug for Raw {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn quoted_list(items: &[&str]) -> String {
    items
        .iter()
        .map(|s| format!("\"{s}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One figment layer: a dictionary plus the metadata that names where it came from.
/// figment's own `Toml` provider is not used because it silently ignores a missing file
/// (FINDINGS.md) and would pass `extends` through to the extracted config.
struct Layer {
    metadata: Metadata,
    dict: Dict,
}

impl Layer {
    fn new(metadata: Metadata, dict: Dict) -> Self {
        Layer { metadata, dict }
    }
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        self.metadata.clone()
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.dict.clone()))
    }
}

fn defaults_dict() -> Dict {
    match Value::serialize(Config::default()) {
        Ok(Value::Dict(_, d)) => d,
        // Config is plain data with string keys: serialising it cannot fail.
        _ => Dict::new(),
    }
}

/// Every valid key, as the defaults' value tree. Empty lists get one placeholder element so
/// that the element type is known when coercing `--set` / environment values.
fn schema() -> Dict {
    let probe = Config {
        plugin_dirs: vec![PathBuf::new()],
        model: ModelConfig {
            augmenters: vec![String::new()],
            ..ModelConfig::default()
        },
        ..Config::default()
    };
    match Value::serialize(probe) {
        Ok(Value::Dict(_, d)) => d,
        _ => Dict::new(),
    }
}

/// Reads `path` and, depth-first and parents first, every file its `extends` names.
/// A file reached twice (a diamond) is merged once, at its first position, so a shared
/// parent cannot re-apply its values over a sibling that overrode them.
fn collect_chain(
    path: &Path,
    named_by: Option<&Path>,
    stack: &mut Vec<(PathBuf, PathBuf)>,
    seen: &mut HashSet<PathBuf>,
    out: &mut Vec<(PathBuf, Dict)>,
) -> Result<(), ConfigError> {
    let missing = || match named_by {
        Some(parent) => ConfigError::MissingExtends {
            path: path.to_path_buf(),
            named_by: parent.to_path_buf(),
        },
        None => ConfigError::Missing {
            path: path.to_path_buf(),
        },
    };
    // Checked here because figment's file providers would silently skip a missing file.
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(missing()),
        Err(source) => {
            return Err(ConfigError::Io {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let canonical = std::fs::canonicalize(path).map_err(|_| missing())?;
    if let Some(pos) = stack.iter().position(|(c, _)| *c == canonical) {
        let mut chain: Vec<String> = stack[pos..]
            .iter()
            .map(|(_, p)| p.display().to_string())
            .collect();
        chain.push(path.display().to_string());
        return Err(ConfigError::Cycle {
            chain: chain.join(" → "),
        });
    }
    if !seen.insert(canonical.clone()) {
        return Ok(());
    }

    let mut table: toml::Table = toml::from_str(&text).map_err(|e| {
        let (line, column) = e.span().map(|s| line_col(&text, s.start)).unwrap_or((1, 1));
        ConfigError::Parse {
            path: path.to_path_buf(),
            line,
            column,
            // toml's message can span lines ("invalid string\nexpected `\"`"): keep it on one.
            message: e.message().trim().replace('\n', "; "),
        }
    })?;
    let parents = match table.remove("extends") {
        None => Vec::new(),
        Some(toml::Value::String(s)) => vec![s],
        Some(toml::Value::Array(items)) => items
            .into_iter()
            .map(|v| match v {
                toml::Value::String(s) => Ok(s),
                other => Err(ConfigError::BadExtends {
                    path: path.to_path_buf(),
                    found: format!("an array holding {other}"),
                }),
            })
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(ConfigError::BadExtends {
                path: path.to_path_buf(),
                found: other.to_string(),
            })
        }
    };

    stack.push((canonical, path.to_path_buf()));
    let dir = path.parent().unwrap_or_else(|| Path::new(""));
    for parent in parents {
        collect_chain(&dir.join(parent), Some(path), stack, seen, out)?;
    }
    stack.pop();

    let dict = match Value::serialize(&table) {
        Ok(Value::Dict(_, d)) => d,
        _ => Dict::new(),
    };
    out.push((path.to_path_buf(), dict));
    Ok(())
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// One layer per `PROMAX_*` variable, sorted by name, with the same key mapping as
/// `Env::prefixed("PROMAX_").split("__")` (prefix case-insensitive, key lowercased, `__`
/// nests). Built by hand so that each variable is its own named source in error messages.
fn env_layers(
    vars: impl IntoIterator<Item = (String, String)>,
    schema: &Dict,
) -> Result<Vec<Layer>, ConfigError> {
    let mut vars: Vec<(String, String)> = vars
        .into_iter()
        .filter(|(k, _)| {
            k.get(..ENV_PREFIX.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(ENV_PREFIX))
                && k.len() > ENV_PREFIX.len()
                && !ENV_NOT_CONFIG.iter().any(|n| n.eq_ignore_ascii_case(k))
        })
        .collect();
    vars.sort();
    vars.into_iter()
        .map(|(var, raw)| {
            let key = var[ENV_PREFIX.len()..].to_ascii_lowercase().replace("__", ".");
            if key.split('.').any(str::is_empty) {
                let reason = "after PROMAX_, sections are separated by a double underscore (PROMAX_TRAIN__SEED)";
                return Err(ConfigError::BadEnv { var, reason: reason.into() });
            }
            let value = typed_value(&key, &raw, schema);
            let dict = nest_dict(&key, value);
            Ok(Layer::new(Metadata::named(format!("PROMAX_ environment ({var})")), dict))
        })
        .collect()
}

/// The layer of one `--set key=value` argument.
fn set_layer(arg: &str, schema: &Dict) -> Result<Layer, ConfigError> {
    let bad = |reason: &str| ConfigError::BadSet {
        arg: arg.to_string(),
        reason: reason.to_string(),
    };
    let (key, raw) = arg
        .split_once('=')
        .ok_or_else(|| bad("expected key=value, e.g. train.lr=1e-3"))?;
    let key = key.trim();
    if key.is_empty() || key.split('.').any(|part| part.trim().is_empty()) {
        return Err(bad("the key must be a dotted name such as train.seed"));
    }
    let value = typed_value(key, raw, schema);
    Ok(Layer::new(
        Metadata::named(format!("--set {arg}")),
        nest_dict(key, value),
    ))
}

fn nest_dict(key: &str, value: Value) -> Dict {
    match figment::util::nest(key, value) {
        Value::Dict(_, d) => d,
        // `nest` with a non-empty key always returns a dictionary.
        other => Dict::from([(key.to_string(), other)]),
    }
}

/// Parses a command-line or environment value with figment's value syntax, then lets the
/// key's type in the schema settle what the syntax cannot: a string key keeps the text as
/// given (`run.name=2024` is a name, not a number), and a numeric key accepts exponent
/// notation that figment's parser leaves as a string (`1e-3`).
fn typed_value(key: &str, raw: &str, schema: &Dict) -> Value {
    // figment 0.10's escape decoder slices by char index as if it were a byte index, and
    // panics on a `\` after a non-ASCII character: such text is taken as given, as text
    // figment cannot parse already is.
    let parsed: Value = if raw.contains('\\') && !raw.is_ascii() {
        Value::from(raw.to_string())
    } else {
        raw.parse().unwrap_or_else(|_| Value::from(raw.to_string()))
    };
    let expected = find(schema, key);
    coerce(parsed, expected, Some(raw.trim()))
}

fn find<'a>(dict: &'a Dict, key: &str) -> Option<&'a Value> {
    let (head, rest) = match key.split_once('.') {
        Some((h, r)) => (h, Some(r)),
        None => (key, None),
    };
    let v = dict.get(head)?;
    match (rest, v) {
        (None, v) => Some(v),
        (Some(r), Value::Dict(_, d)) => find(d, r),
        _ => None,
    }
}

fn coerce(value: Value, expected: Option<&Value>, raw: Option<&str>) -> Value {
    match (expected, value) {
        (Some(Value::String(..)), v @ Value::String(..)) => v,
        (Some(Value::String(..)), v) => {
            Value::from(raw.map(str::to_string).unwrap_or_else(|| scalar_text(&v)))
        }
        (Some(Value::Array(_, proto)), Value::Array(tag, items)) => {
            let proto = proto.first();
            Value::Array(
                tag,
                items.into_iter().map(|i| coerce(i, proto, None)).collect(),
            )
        }
        // A numeric key takes any float syntax (`1e-3`, `inf`: the range check then
        // reports it); an untyped plugin key only text that looks like a number.
        (Some(Value::Num(..)), Value::String(tag, s)) => match s.parse::<f64>() {
            Ok(f) => Value::Num(tag, Num::F64(f)),
            Err(_) => Value::String(tag, s),
        },
        (_, Value::String(tag, s)) if s.bytes().any(|b| b.is_ascii_digit()) => {
            match s.parse::<f64>() {
                Ok(f) => Value::Num(tag, Num::F64(f)),
                Err(_) => Value::String(tag, s),
            }
        }
        (_, Value::Array(tag, items)) => Value::Array(
            tag,
            items.into_iter().map(|i| coerce(i, None, None)).collect(),
        ),
        (_, v) => v,
    }
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(_, s) => s.clone(),
        Value::Char(_, c) => c.to_string(),
        Value::Bool(_, b) => b.to_string(),
        Value::Num(_, n) => n
            .to_u128()
            .map(|u| u.to_string())
            .or_else(|| n.to_i128().map(|i| i.to_string()))
            .or_else(|| n.to_f64().map(|f| f.to_string()))
            .unwrap_or_default(),
        other => format!("{other:?}"),
    }
}

/// The layer that set a value, for messages: a file path, a `PROMAX_` variable, a `--set`.
fn describe_source(md: &Metadata) -> String {
    match &md.source {
        Some(Source::File(p)) => p.display().to_string(),
        _ => md.name.to_string(),
    }
}

fn source_of(figment: &Figment, tag: Tag) -> String {
    figment
        .get_metadata(tag)
        .map(describe_source)
        .unwrap_or_else(|| "an unknown source".into())
}

/// Walks the merged value tree against the schema; the first key the schema lacks is an
/// error naming its layer and the nearest valid key. Done before extraction because
/// serde's `deny_unknown_fields` reports only the bare field name.
fn check_unknown_keys(figment: &Figment, schema: &Dict) -> Result<(), ConfigError> {
    let data = figment.data().map_err(extract_error)?;
    let Some(merged) = data.get(&Profile::Default) else {
        return Ok(());
    };
    let mut unknown = Vec::new();
    walk_unknown(merged, schema, "", &mut unknown);
    let others = unknown.len().saturating_sub(1);
    let Some((key, tag)) = unknown.into_iter().next() else {
        return Ok(());
    };
    let suggestion = suggest(&key, schema);
    Err(ConfigError::UnknownKey {
        origin: source_of(figment, tag),
        key,
        suggestion,
        others,
    })
}

fn walk_unknown(given: &Dict, schema: &Dict, prefix: &str, out: &mut Vec<(String, Tag)>) {
    for (k, v) in given {
        let full = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match schema.get(k) {
            None => out.push((full, v.tag())),
            // Plugin tables are open: each plugin validates its own keys.
            Some(_) if full == "plugins" => {}
            Some(Value::Dict(_, sub)) => {
                if let Value::Dict(_, given_sub) = v {
                    walk_unknown(given_sub, sub, &full, out);
                }
            }
            Some(_) => {}
        }
    }
}

fn all_keys(dict: &Dict, prefix: &str, out: &mut Vec<String>) {
    for (k, v) in dict {
        let full = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        if let Value::Dict(_, sub) = v {
            if full != "plugins" {
                all_keys(sub, &full, out);
            }
        }
        out.push(full);
    }
}

/// The valid key a user most plausibly meant: a near sibling (`train.sed` → `train.seed`),
/// else the same or a near name in another section (`train.ks` → `eval.ks`).
fn suggest(key: &str, schema: &Dict) -> Option<String> {
    let (parent, leaf) = key.rsplit_once('.').unwrap_or(("", key));
    let siblings: Vec<&str> = if parent.is_empty() {
        schema.keys().map(String::as_str).collect()
    } else {
        match find(schema, parent) {
            Some(Value::Dict(_, d)) => d.keys().map(String::as_str).collect(),
            _ => Vec::new(),
        }
    };
    let mut keys = Vec::new();
    all_keys(schema, "", &mut keys);
    // The exact name in another section beats a fuzzy sibling: `train.ks` means `eval.ks`.
    if let Some(k) = keys.iter().find(|k| k.rsplit('.').next() == Some(leaf)) {
        return Some(k.clone());
    }
    // `nearest` allows 2 edits, which for a 2-letter key is any 2-letter key: require
    // the match to keep at least one character of the original.
    if let Some(s) =
        nearest(leaf, siblings).filter(|s| edit_distance(leaf, s) < leaf.chars().count())
    {
        return Some(if parent.is_empty() {
            s.to_string()
        } else {
            format!("{parent}.{s}")
        });
    }
    keys.iter()
        .filter_map(|k| {
            let k_leaf = k.rsplit('.').next().unwrap_or(k);
            let d = edit_distance(leaf, k_leaf);
            (d <= 1.max(k_leaf.len() / 4)).then_some((d, k))
        })
        .min()
        .map(|(_, k)| k.clone())
        .or_else(|| nearest(key, keys.iter().map(String::as_str)).map(str::to_string))
}

/// Turns figment's extraction error into one of ours, naming the full key and its layer.
fn extract_error(err: figment::Error) -> ConfigError {
    let key = err.path.join(".");
    let origin = err
        .metadata
        .as_ref()
        .map(describe_source)
        .unwrap_or_else(|| "an unknown source".into());
    let key_or_root = if key.is_empty() {
        "(top level)".to_string()
    } else {
        key.clone()
    };
    match &err.kind {
        Kind::InvalidType(found, expected) => ConfigError::WrongType {
            key: key_or_root,
            origin,
            found: found.to_string(),
            expected: expected.clone(),
        },
        Kind::InvalidValue(found, expected) => ConfigError::WrongType {
            key: key_or_root,
            origin,
            found: found.to_string(),
            expected: expected.clone(),
        },
        Kind::InvalidLength(len, expected) => ConfigError::WrongType {
            key: key_or_root,
            origin,
            found: format!("{len} element(s)"),
            expected: expected.clone(),
        },
        Kind::UnknownField(field, _) => {
            let full = if key.is_empty() {
                field.clone()
            } else {
                format!("{key}.{field}")
            };
            let suggestion = suggest(&full, &schema());
            ConfigError::UnknownKey {
                key: full,
                origin,
                suggestion,
                others: 0,
            }
        }
        _ => ConfigError::WrongType {
            key: key_or_root,
            origin,
            found: err.kind.to_string(),
            expected: "a valid value".into(),
        },
    }
}

#[cfg(test)]
#[path = "config_props.rs"]
mod props;

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).unwrap();
        }
        fs::write(&p, text).unwrap();
        p
    }

    /// Loads with an empty environment (tests must not see the developer's PROMAX_ vars).
    fn load_clean(path: &Path, sets: &[&str]) -> Result<Config, ConfigError> {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        load_with_env(Some(path), &sets, Vec::new())
    }

    const VALID: &str = "[data]\nkind = \"synthetic\"\n";

    #[test]
    fn defaults_match_the_documented_values() {
        let c = Config::default();
        assert_eq!(c.device, "cpu");
        assert!(c.plugin_dirs.is_empty() && c.plugins.is_empty());
        assert_eq!(c.data.kind, "files");
        assert_eq!(c.data.duplicates, "error");
        assert_eq!((c.data.n_users, c.data.n_items), (0, 0));
        let s = &c.data.synthetic;
        assert_eq!(
            (s.n_users, s.n_items, s.n_clusters, s.mean_interactions),
            (600, 400, 8, 25)
        );
        assert_eq!(
            (s.affinity, s.profile_dim, s.profile_signal, s.seed),
            (0.8, 32, 0.7, 7)
        );
        assert_eq!(c.model.backbone, "lightgcn");
        assert!(c.model.augmenters.is_empty());
        let t = &c.train;
        assert_eq!(
            (t.seed, t.max_epochs, t.batch_size, t.threads),
            (2025, 1000, 4096, 0)
        );
        assert_eq!((t.lr, t.reg_weight), (1e-3, 1e-6));
        let e = &c.eval;
        assert_eq!((e.every, e.patience, e.user_tile), (3, 5, 256));
        assert_eq!(e.ks, vec![5, 10, 20]);
        assert_eq!(e.metric, "recall@20");
        assert_eq!(c.run.out_dir, PathBuf::from("runs"));
        assert_eq!(c.run.name, "");
    }

    #[test]
    fn a_minimal_file_gets_every_default() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "c.toml", VALID);
        let c = load_clean(&p, &[]).unwrap();
        let mut want = Config::default();
        want.data.kind = "synthetic".into();
        assert_eq!(c, want);
    }

    #[test]
    fn extends_chain_precedence_env_then_set() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "base.toml", "[train]\nseed = 1\nlr = 0.5\nbatch_size = 100\nmax_epochs = 10\n[data]\nkind = \"synthetic\"\n");
        write(
            dir.path(),
            "mid/model.toml",
            "[train]\nlr = 0.25\nbatch_size = 200\n",
        );
        let p = write(
            dir.path(),
            "exp/child.toml",
            "extends = [\"../base.toml\", \"../mid/model.toml\"]\n[train]\nbatch_size = 300\nmax_epochs = 20\nseed = 3\n",
        );
        let c = load_clean(&p, &[]).unwrap();
        assert_eq!(c.train.lr, 0.25, "second parent overrides the first");
        assert_eq!(c.train.batch_size, 300, "child overrides parents");
        assert_eq!(
            c.data.kind, "synthetic",
            "parent value kept when nobody overrides it"
        );

        let env = vec![
            ("PROMAX_TRAIN__MAX_EPOCHS".to_string(), "40".to_string()),
            ("PROMAX_TRAIN__SEED".to_string(), "4".to_string()),
            ("promax_run__name".to_string(), "from-env".to_string()),
            ("PROMAX_PLUGIN_PATH".to_string(), "/somewhere".to_string()),
            ("OTHER_TRAIN__SEED".to_string(), "99".to_string()),
        ];
        let c = load_with_env(Some(&p), &["train.seed=5".to_string()], env).unwrap();
        assert_eq!(c.train.max_epochs, 40, "env overrides the file");
        assert_eq!(c.train.seed, 5, "--set overrides env");
        assert_eq!(c.run.name, "from-env");
    }

    #[test]
    fn diamond_parent_is_merged_once() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "base.toml",
            "device = \"cpu\"\n[data]\nkind = \"synthetic\"\n",
        );
        write(
            dir.path(),
            "a.toml",
            "extends = \"base.toml\"\ndevice = \"cuda\"\n",
        );
        write(
            dir.path(),
            "b.toml",
            "extends = \"base.toml\"\n[train]\nseed = 9\n",
        );
        let p = write(
            dir.path(),
            "top.toml",
            "extends = [\"a.toml\", \"b.toml\"]\n",
        );
        let c = load_clean(&p, &[]).unwrap();
        assert_eq!(
            c.device, "cuda",
            "b's copy of base must not undo a's override"
        );
        assert_eq!(c.train.seed, 9);
    }

    #[test]
    fn extends_cycle_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a.toml", "extends = \"b.toml\"\n");
        let p = write(dir.path(), "b.toml", "extends = \"a.toml\"\n");
        let err = load_clean(&p, &[]).unwrap_err().to_string();
        assert!(
            err.contains("cycle") && err.contains("a.toml") && err.contains("b.toml"),
            "{err}"
        );
    }

    #[test]
    fn bad_extends_type_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "a.toml", "extends = 3\n");
        let err = load_clean(&p, &[]).unwrap_err().to_string();
        assert!(err.contains("a.toml") && err.contains("extends"), "{err}");
    }

    #[test]
    fn unknown_key_names_key_file_and_suggestion() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "typo.toml", "devise = \"cpu\"\n");
        let err = load_clean(&p, &[]).unwrap_err().to_string();
        assert!(
            err.contains("`devise`") && err.contains("typo.toml") && err.contains("`device`"),
            "{err}"
        );
    }

    #[test]
    fn unknown_key_in_nested_table() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "typo.toml", "[data.synthetic]\nafinity = 0.5\n");
        let err = load_clean(&p, &[]).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("`data.synthetic.afinity`"), "{msg}");
        assert!(msg.contains("typo.toml"), "{msg}");
        assert!(msg.contains("`data.synthetic.affinity`"), "{msg}");

        // A key in the wrong section points at the section that has it.
        let p = write(dir.path(), "wrong.toml", "[train]\nks = [5]\n");
        let msg = load_clean(&p, &[]).unwrap_err().to_string();
        assert!(
            msg.contains("`train.ks`") && msg.contains("`eval.ks`"),
            "{msg}"
        );
    }

    #[test]
    fn unknown_key_from_env_and_set_names_that_layer() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "c.toml", VALID);
        let err = load_with_env(
            Some(&p),
            &[],
            vec![("PROMAX_TRAIN__SED".into(), "3".into())],
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("`train.sed`")
                && err.contains("PROMAX_ environment")
                && err.contains("`train.seed`"),
            "{err}"
        );
        let err = load_clean(&p, &["eval.paitence=3"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`eval.paitence`")
                && err.contains("--set")
                && err.contains("`eval.patience`"),
            "{err}"
        );
    }

    #[test]
    fn malformed_env_name_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "c.toml", VALID);
        let env = vec![("PROMAX_TRAIN___SEED".to_string(), "3".to_string())];
        let msg = load_with_env(Some(&p), &[], env).unwrap_err().to_string();
        assert!(msg.contains("PROMAX_TRAIN___SEED"), "{msg}");
    }

    #[test]
    fn plugin_tables_are_open_but_must_be_tables() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "c.toml",
            "[data]\nkind = \"synthetic\"\n[plugins.lightgcn]\nlayers = 2\nanything_goes = true\n",
        );
        let c = load_clean(&p, &["plugins.lightgcn.keep_rate=0.5"]).unwrap();
        assert_eq!(c.plugins["lightgcn"]["layers"], 2);
        assert_eq!(c.plugins["lightgcn"]["keep_rate"], 0.5);
        let err = load_clean(&p, &["plugins.mf=3"]).unwrap_err().to_string();
        assert!(err.contains("plugins.mf") && err.contains("--set"), "{err}");
    }

    #[test]
    fn missing_main_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("nope.toml");
        let err = load_clean(&p, &[]).unwrap_err();
        assert!(matches!(err, ConfigError::Missing { .. }));
        assert!(err.to_string().contains("nope.toml"), "{err}");
    }

    #[test]
    fn missing_extends_member_names_both_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "exp/child.toml",
            "extends = [\"../gone.toml\"]\n",
        );
        let err = load_clean(&p, &[]).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, ConfigError::MissingExtends { .. }));
        assert!(
            msg.contains("gone.toml") && msg.contains("child.toml"),
            "{msg}"
        );
    }

    #[test]
    fn invalid_toml_names_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "bad.toml", "[train]\nseed = 1\nlr = = 3\n");
        let msg = load_clean(&p, &[]).unwrap_err().to_string();
        assert!(msg.contains("bad.toml:3:"), "{msg}");
    }

    #[test]
    fn wrong_type_names_key_source_found_and_expected() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "c.toml",
            "[data]\nkind = \"synthetic\"\n[train]\nlr = \"fast\"\n",
        );
        let err = load_clean(&p, &[]).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, ConfigError::WrongType { .. }), "{msg}");
        assert!(
            msg.contains("`train.lr`")
                && msg.contains("c.toml")
                && msg.contains("fast")
                && msg.contains("f64"),
            "{msg}"
        );

        let p = write(
            dir.path(),
            "d.toml",
            "[data]\nkind = \"synthetic\"\n[eval]\nks = [5, \"x\"]\n",
        );
        let msg = load_clean(&p, &[]).unwrap_err().to_string();
        assert!(msg.contains("eval.ks") && msg.contains("d.toml"), "{msg}");

        let p = write(dir.path(), "e.toml", VALID);
        let msg = load_clean(&p, &["train.batch_size=-4"])
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("`train.batch_size`") && msg.contains("--set train.batch_size=-4"),
            "{msg}"
        );
    }

    #[test]
    fn set_values_are_typed() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "c.toml", VALID);
        let c = load_clean(
            &p,
            &[
                "train.max_epochs=3",
                "train.lr=1e-3",
                "train.reg_weight=0.5",
                "eval.ks=[5,10]",
                "eval.metric=ndcg@10",
                "device=cuda",
                "run.name=2024",
                "model.augmenters=[promax, rlmrec-con]",
                "plugin_dirs=[plugins, 42]",
                "plugins.x.flag=true",
                "plugins.x.rate=2e-2",
            ],
        )
        .unwrap();
        assert_eq!(c.train.max_epochs, 3);
        assert_eq!(c.train.lr, 1e-3);
        assert_eq!(c.train.reg_weight, 0.5);
        assert_eq!(c.eval.ks, vec![5, 10]);
        assert_eq!(c.eval.metric, "ndcg@10");
        assert_eq!(c.device, "cuda");
        assert_eq!(c.run.name, "2024", "a string key keeps digits as text");
        assert_eq!(c.model.augmenters, vec!["promax", "rlmrec-con"]);
        assert_eq!(
            c.plugin_dirs,
            vec![PathBuf::from("plugins"), PathBuf::from("42")]
        );
        assert_eq!(c.plugins["x"]["flag"], true);
        assert_eq!(c.plugins["x"]["rate"], 2e-2);

        for bad in ["train.seed", "=3", "train..seed=3"] {
            let err = load_clean(&p, &[bad]).unwrap_err();
            assert!(matches!(err, ConfigError::BadSet { .. }), "{bad}: {err}");
        }
    }

    #[test]
    fn out_of_range_values_name_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "c.toml", VALID);
        let cases: &[(&[&str], &str)] = &[
            (&["train.batch_size=0"], "train.batch_size"),
            (&["train.lr=0"], "train.lr"),
            (&["train.lr=-1e-3"], "train.lr"),
            (&["train.lr=inf"], "train.lr"),
            (&["train.reg_weight=-1.0"], "train.reg_weight"),
            (&["eval.every=0"], "eval.every"),
            (&["eval.ks=[]"], "eval.ks"),
            (&["eval.ks=[0, 20]"], "eval.ks"),
            (&["eval.metric=recall@50"], "eval.metric"),
            (&["eval.metric=auc@20"], "eval.metric"),
            (&["eval.metric=recall"], "eval.metric"),
            (&["eval.ks=[5,10]"], "eval.metric"),
            (&["eval.user_tile=0"], "eval.user_tile"),
            (&["device=gpu"], "device"),
            (&["data.kind=folder"], "data.kind"),
            (&["data.duplicates=keep"], "data.duplicates"),
            (&["data.columns=[1]"], "data.columns"),
            (&["data.columns=[2, 2]"], "data.columns"),
            (&["data.columns=[0, 1, 2]"], "data.columns"),
            (&["data.kind=files"], "data.path"),
            (&["data.synthetic.affinity=1.5"], "data.synthetic.affinity"),
            (
                &["data.synthetic.profile_signal=-0.1"],
                "data.synthetic.profile_signal",
            ),
            (
                &["data.synthetic.n_clusters=0"],
                "data.synthetic.n_clusters",
            ),
            (&["data.synthetic.n_items=3"], "data.synthetic.n_items"),
            (&["model.backbone="], "model.backbone"),
            (&["train.seed=18446744073709551615"], "train.seed"),
            (&["train.max_epochs=0"], "train.max_epochs"),
            (&["eval.patience=0"], "eval.patience"),
            (&["eval.ks=[5, 20, 100000]"], "eval.ks"),
            (&["llm.timeout_secs=0"], "llm.timeout_secs"),
            (&["llm.temperature=2.5"], "llm.temperature"),
            (&["augment.target_offset=1000000"], "augment.target_offset"),
            (
                &["augment.max_unusable_share=-0.1"],
                "augment.max_unusable_share",
            ),
        ];
        for (sets, key) in cases {
            let err = load_clean(&p, sets).unwrap_err();
            let msg = err.to_string();
            assert!(
                matches!(err, ConfigError::Invalid { .. }),
                "{sets:?}: {msg}"
            );
            assert!(msg.contains(&format!("`{key}`")), "{sets:?}: {msg}");
        }
        let msg = load_clean(&p, &["device=cude"]).unwrap_err().to_string();
        assert!(
            msg.contains("--set device=cude") && msg.contains("\"cuda\""),
            "{msg}"
        );
    }

    /// Two layers: the base sets one `llm.*` key, the experiment a bad other one; the error
    /// names the bad key and the experiment, not whichever layer last touched `[llm]`.
    #[test]
    fn llm_errors_blame_the_layer_of_their_own_key() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "base.toml",
            "[data]\nkind = \"synthetic\"\n[llm]\nchat_model = \"m\"\n",
        );
        let p = write(
            dir.path(),
            "experiment.toml",
            "extends = \"base.toml\"\n[llm]\ntimeout_secs = 0\n",
        );
        let msg = load_clean(&p, &[]).unwrap_err().to_string();
        assert!(
            msg.contains("`llm.timeout_secs` = 0") && msg.contains("experiment.toml"),
            "{msg}"
        );
        let q = write(
            dir.path(),
            "other.toml",
            "extends = \"base.toml\"\n[llm]\nbackoff_base_ms = 10\nbackoff_max_ms = 5\n",
        );
        let msg = load_clean(&q, &[]).unwrap_err().to_string();
        assert!(
            msg.contains("`llm.backoff_base_ms`") && msg.contains("other.toml"),
            "{msg}"
        );
    }

    #[test]
    fn to_toml_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "c.toml",
            "plugin_dirs = [\"p\"]\n[data]\nkind = \"synthetic\"\n[model]\naugmenters = [\"promax\"]\n\
             [plugins.lightgcn]\nlayers = 3\nkeep_rate = 0.8\ninclude_layer0 = true\n\
             [train]\nlr = 0.002\n[eval]\nks = [1, 20]\n",
        );
        let c = load_clean(&p, &["run.name=x", "data.synthetic.seed=11"]).unwrap();
        let text = to_toml(&c);
        assert!(!text.contains("extends"));
        let q = write(dir.path(), "resolved.toml", &text);
        assert_eq!(load_clean(&q, &[]).unwrap(), c, "{text}");
    }

    fn configs_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs")
    }

    fn toml_files(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in fs::read_dir(dir).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                toml_files(&p, out);
            } else if p.extension().is_some_and(|e| e == "toml") {
                out.push(p);
            }
        }
    }

    #[test]
    fn every_shipped_config_loads() {
        let mut files = Vec::new();
        toml_files(&configs_dir(), &mut files);
        assert!(files.len() >= 9, "{files:?}");
        for f in &files {
            // Compare files (`promax compare`) have their own format; compare's tests load them.
            if crate::compare::is_compare_file(f) {
                continue;
            }
            // base.toml and the model fragments name no dataset, and a "files" dataset
            // without a path is rightly invalid; give them the synthetic one.
            let fragment =
                f.ends_with("base.toml") || f.parent().is_some_and(|d| d.ends_with("models"));
            let sets: &[&str] = if fragment {
                &["data.kind=synthetic"]
            } else {
                &[]
            };
            if let Err(e) = load_clean(f, sets) {
                panic!("{}: {e}", f.display());
            }
        }
    }

    #[test]
    fn base_toml_spells_out_every_default() {
        let base = configs_dir().join("base.toml");
        let c = load_clean(&base, &["data.kind=synthetic"]).unwrap();
        let mut want = Config::default();
        want.data.kind = "synthetic".into();
        assert_eq!(c, want);
        // Every key written explicitly: the file alone (no defaults layer) has them all.
        let table: toml::Table = toml::from_str(&fs::read_to_string(&base).unwrap()).unwrap();
        let written = match Value::serialize(&table) {
            Ok(Value::Dict(_, d)) => d,
            _ => unreachable!(),
        };
        let (mut want_keys, mut have_keys) = (Vec::new(), Vec::new());
        all_keys(&defaults_dict(), "", &mut want_keys);
        all_keys(&written, "", &mut have_keys);
        want_keys.sort();
        have_keys.sort();
        assert_eq!(have_keys, want_keys);
    }

    #[test]
    fn profiles_default_to_none_and_take_files_or_random() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "c.toml", VALID);
        let c = load_clean(&p, &[]).unwrap();
        assert_eq!(c.data.profiles, ProfilesConfig::default());
        assert!(!c.data.profiles.is_set());

        let p = write(
            dir.path(),
            "f.toml",
            "[data]\nkind = \"synthetic\"\n[data.profiles]\nusers = \"u.npy\"\nitems = \"i.npy\"\n",
        );
        let c = load_clean(&p, &[]).unwrap();
        assert_eq!(c.data.profiles.users, PathBuf::from("u.npy"));
        assert_eq!(c.data.profiles.items, PathBuf::from("i.npy"));
        let c = load_with_env(
            Some(&write(dir.path(), "r.toml", VALID)),
            &[],
            vec![
                ("PROMAX_DATA__PROFILES__RANDOM_DIM".into(), "1536".into()),
                ("PROMAX_DATA__PROFILES__RANDOM_SEED".into(), "9".into()),
            ],
        )
        .unwrap();
        assert_eq!(
            (c.data.profiles.random_dim, c.data.profiles.random_seed),
            (1536, 9)
        );
        assert!(c.data.profiles.is_set());
    }

    #[test]
    fn profiles_files_and_random_conflict_and_come_in_pairs() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "f.toml",
            "[data]\nkind = \"synthetic\"\n[data.profiles]\nusers = \"u.npy\"\nitems = \"i.npy\"\n",
        );
        let err = load_clean(&p, &["data.profiles.random_dim=16"]).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, ConfigError::Invalid { .. }), "{msg}");
        assert!(
            msg.contains("`data.profiles.random_dim`")
                && msg.contains("data.profiles.users")
                && msg.contains("--set data.profiles.random_dim=16"),
            "{msg}"
        );

        let q = write(dir.path(), "c.toml", VALID);
        let msg = load_clean(&q, &["data.profiles.items=i.npy"])
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("`data.profiles.items`")
                && msg.contains("data.profiles.users is empty")
                && msg.contains("--set data.profiles.items=i.npy"),
            "{msg}"
        );
        let msg = load_clean(&q, &["data.profiles.users=u.npy"])
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("`data.profiles.users`") && msg.contains("data.profiles.items is empty"),
            "{msg}"
        );
        // Clearing the files makes random profiles legal again.
        let c = load_clean(
            &p,
            &[
                "data.profiles.users=",
                "data.profiles.items=",
                "data.profiles.random_dim=8",
            ],
        )
        .unwrap();
        assert_eq!(c.data.profiles.random_dim, 8);

        // A typo inside the section is an unknown key with the nearest valid one.
        let msg = load_clean(&q, &["data.profiles.random_sed=3"])
            .unwrap_err()
            .to_string();
        assert!(msg.contains("`data.profiles.random_seed`"), "{msg}");
    }

    #[test]
    fn shipped_experiments_resolve_as_documented() {
        let exp = configs_dir().join("experiments");
        let c = load_clean(&exp.join("lightgcn-amazon.toml"), &[]).unwrap();
        assert_eq!(c.data.kind, "files");
        assert_eq!(c.data.path, PathBuf::from("amazon"));
        assert_eq!(c.data.root, PathBuf::from("data"));
        assert_eq!(c.data.name, "amazon");
        assert_eq!(c.model.backbone, "lightgcn");
        assert_eq!(c.plugins["lightgcn"]["layers"], 3);
        assert_eq!(c.plugins["lightgcn"]["include_layer0"], true);
        assert_eq!(c.plugins["lightgcn"]["keep_rate"], 0.8);
        assert_eq!(
            (
                c.train.reg_weight,
                c.train.lr,
                c.train.batch_size,
                c.train.seed
            ),
            (1e-6, 1e-3, 4096, 2025)
        );
        assert_eq!((c.eval.every, c.eval.patience), (3, 5));

        let c = load_clean(&exp.join("mf-amazon.toml"), &[]).unwrap();
        assert_eq!(c.model.backbone, "mf");
        assert_eq!(c.data.name, "amazon");

        let c = load_clean(&exp.join("quickstart.toml"), &[]).unwrap();
        assert_eq!(c.data.kind, "synthetic");
        assert_eq!(c.model.backbone, "lightgcn");
        assert_eq!(
            (c.train.max_epochs, c.eval.every, c.eval.patience),
            (30, 3, 5)
        );
    }

    #[test]
    fn ml100k_dataset_config_loads_its_profiles_by_default() {
        let c = load_clean(&configs_dir().join("datasets/ml100k.toml"), &[]).unwrap();
        assert_eq!(c.data.path, PathBuf::from("ml100k"));
        assert_eq!(c.data.profiles.users, PathBuf::from("user_profiles.npy"));
        assert_eq!(c.data.profiles.items, PathBuf::from("item_profiles.npy"));
        assert_eq!(c.data.profiles.random_dim, 0);
    }

    #[test]
    fn data_root_comes_from_the_environment_and_resolves_the_path() {
        let amazon = configs_dir().join("datasets/amazon.toml");
        let c = load_clean(&amazon, &[]).unwrap();
        assert_eq!(c.data.dir(), PathBuf::from("data/amazon"));
        let env = vec![("PROMAX_DATA__ROOT".into(), "/srv/datasets".into())];
        let c = load_with_env(Some(&amazon), &[], env).unwrap();
        assert_eq!(c.data.root, PathBuf::from("/srv/datasets"));
        assert_eq!(c.data.dir(), PathBuf::from("/srv/datasets/amazon"));
        // The default root is the working directory; an absolute path ignores the root.
        assert_eq!(Config::default().data.root, PathBuf::new());
        let c = load_clean(&amazon, &["data.path=/elsewhere/amazon"]).unwrap();
        assert_eq!(c.data.dir(), PathBuf::from("/elsewhere/amazon"));
    }

    #[test]
    fn real_environment_is_read_by_load() {
        // `load` itself must accept the shipped quick start in a normal environment.
        let q = configs_dir().join("experiments/quickstart.toml");
        let has_promax_vars = std::env::vars_os().any(|(k, _)| {
            k.to_string_lossy()
                .to_ascii_uppercase()
                .starts_with(ENV_PREFIX)
        });
        if !has_promax_vars {
            assert!(load(&q, &[]).is_ok());
        }
    }
}
