//! `[data]`: which interactions to train and evaluate on, and the profile embeddings.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::check::{bad, in_range, unit_share, Raw};
use crate::config::{limits, ConfigError};

named_options! {
    /// `data.kind`: where the interactions come from.
    DataKind {
        /// A folder of split files, `data.path`.
        Files = "files",
        /// The built-in planted-cluster generator, `[data.synthetic]`.
        Synthetic = "synthetic",
        /// RecBole atomic files (`NAME.inter`, optional `.user` / `.item`) in `data.path`,
        /// read as `[data.recbole]` says.
        Recbole = "recbole",
    }
}

named_options! {
    /// `data.recbole.split`: how a RecBole dataset becomes train, valid and test.
    RecboleSplit {
        /// Each user's interactions split by `data.recbole.ratios` (RecBole's `RS`).
        Ratio = "ratio",
        /// RecBole's pre-split files `NAME.train.inter`, `.valid.inter`, `.test.inter`.
        Presplit = "presplit",
    }
}

named_options! {
    /// `data.recbole.order`: the order of each user's interactions before a ratio split.
    RecboleOrder {
        /// Shuffled, seeded by `data.recbole.seed` (RecBole's `RO`).
        Random = "random",
        /// By timestamp, the latest held out (RecBole's `TO`; needs the timestamp field).
        Time = "time",
    }
}

named_options! {
    /// `data.duplicates`: what a repeated (user, item) pair within one split file does.
    DuplicatePolicy {
        /// Refuse the file, naming both lines.
        Error = "error",
        /// Keep the first occurrence and warn with the count and the first line numbers.
        Drop = "drop",
    }
}

/// The dataset: a folder of split files, or the built-in synthetic generator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    /// `"files"` (read `path`) or `"synthetic"` (generate from `synthetic`).
    pub kind: DataKind,
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
    pub duplicates: DuplicatePolicy,
    /// 0-based fields of the user and item ids in the split files (`[0, 1]`), for files
    /// with more columns; empty = every line has exactly two fields, user and item.
    pub columns: Vec<usize>,
    /// Generator settings, used when `kind = "synthetic"`.
    pub synthetic: SyntheticConfig,
    /// How RecBole atomic files are read and split, used when `kind = "recbole"`.
    pub recbole: RecboleConfig,
    /// User and item profile embeddings: `.npy` files, seeded random ones, or none.
    pub profiles: ProfilesConfig,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            kind: DataKind::Files,
            root: PathBuf::new(),
            path: PathBuf::new(),
            name: String::new(),
            n_users: 0,
            n_items: 0,
            duplicates: DuplicatePolicy::Error,
            columns: Vec::new(),
            synthetic: SyntheticConfig::default(),
            recbole: RecboleConfig::default(),
            profiles: ProfilesConfig::default(),
        }
    }
}

/// RecBole atomic files: a tab-separated `NAME.inter` whose typed header
/// (`user_id:token item_id:token rating:float timestamp:float`, any column order) names its
/// fields; optional `NAME.user` / `NAME.item` list the users and items in the order that
/// becomes their contiguous ids. String ids (tokens) are mapped to `0..n` and the mapping
/// is saved beside every run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecboleConfig {
    /// The files' stem (`ml-100k` for `ml-100k.inter`); `""` = the folder's name, as
    /// RecBole lays its datasets out.
    pub name: String,
    /// The field holding the user token.
    pub user_field: String,
    /// The field holding the item token.
    pub item_field: String,
    /// The field `min_rating` reads.
    pub rating_field: String,
    /// The field `order = "time"` sorts by.
    pub timestamp_field: String,
    /// Keep only interactions rated at least this (the rows below are counted in the log);
    /// unset = every interaction.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_rating: Option<f64>,
    /// `"ratio"` (split each user's interactions by `ratios`) or `"presplit"` (read
    /// `NAME.train.inter`, `NAME.valid.inter`, `NAME.test.inter`).
    pub split: RecboleSplit,
    /// Train, valid and test shares of each user's interactions (`split = "ratio"`).
    pub ratios: Vec<f64>,
    /// `"random"` (seeded shuffle) or `"time"` (latest last) before a ratio split.
    pub order: RecboleOrder,
    /// Seed of the `random` order.
    pub seed: u64,
}

impl Default for RecboleConfig {
    fn default() -> Self {
        RecboleConfig {
            name: String::new(),
            user_field: "user_id".into(),
            item_field: "item_id".into(),
            rating_field: "rating".into(),
            timestamp_field: "timestamp".into(),
            min_rating: None,
            split: RecboleSplit::Ratio,
            ratios: vec![0.8, 0.1, 0.1],
            order: RecboleOrder::Random,
            seed: 2025,
        }
    }
}

impl RecboleConfig {
    /// The first problem of the settings as `(key, value, reason)`; shared by the config
    /// check and the loader (which may be handed a `DataConfig` built in code).
    pub fn problem(&self) -> Option<(&'static str, String, String)> {
        for (key, v) in [
            ("data.recbole.user_field", &self.user_field),
            ("data.recbole.item_field", &self.item_field),
        ] {
            if v.is_empty() {
                return Some((
                    key,
                    "\"\"".into(),
                    "must name a field of the .inter header".into(),
                ));
            }
        }
        if self.user_field == self.item_field {
            return Some((
                "data.recbole.item_field",
                format!("{:?}", self.item_field),
                "must differ from data.recbole.user_field".into(),
            ));
        }
        if let Some(r) = self.min_rating.filter(|r| !r.is_finite()) {
            return Some((
                "data.recbole.min_rating",
                r.to_string(),
                "must be finite".into(),
            ));
        }
        let r = &self.ratios;
        let shares_ok = r.len() == 3
            && r.iter().all(|x| x.is_finite() && *x > 0.0)
            && r.iter().sum::<f64>().is_finite();
        if !shares_ok {
            return Some((
                "data.recbole.ratios",
                format!("{r:?}"),
                "must be three finite shares [train, valid, test], each > 0 (every split \
                 must hold interactions)"
                    .into(),
            ));
        }
        None
    }
}

impl DataConfig {
    /// The dataset folder: `path` resolved against `root` (an absolute `path` stands as
    /// given).
    pub fn dir(&self) -> PathBuf {
        self.root.join(&self.path)
    }

    /// `data.columns` as `[user, item]` field indices, `None` when empty (exactly two
    /// fields per line); else `(value, reason)`. Shared by [`DataConfig::validate`] and the data
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
    /// user and item (docs/methods.md's stand-in that isolates what the profiles contribute).
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

    /// The configuration's consistency, shared by [`DataConfig::validate`] and the data
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

impl DataConfig {
    /// `[data]` and its subsections; `[data.synthetic]` is checked whatever `kind` says,
    /// so that a typo in an unused section does not surface only when someone switches
    /// to it.
    pub(in crate::config) fn validate(&self) -> Result<(), ConfigError> {
        if let Err((value, reason)) = self.split_columns() {
            return Err(bad("data.columns", Raw(value), reason));
        }
        if let Some((key, value, reason)) = self.recbole.problem() {
            return Err(bad(key, Raw(value), reason));
        }
        if self.kind == DataKind::Recbole && self.path.as_os_str().is_empty() {
            return Err(bad(
                "data.path",
                "",
                "must name the folder holding the RecBole atomic files when data.kind = \"recbole\"",
            ));
        }
        if self.kind == DataKind::Files && self.path.as_os_str().is_empty() {
            return Err(bad(
                "data.path",
                "",
                "must name the folder holding train.tsv, valid.tsv and test.tsv when data.kind = \"files\"",
            ));
        }
        // Ids are u32 everywhere past the loader.
        in_range("data.n_users", self.n_users, 0, limits::MAX_IDS)?;
        in_range("data.n_items", self.n_items, 0, limits::MAX_IDS)?;
        self.synthetic.validate()?;
        self.profiles.validate()
    }
}

impl ProfilesConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if let Some((key, value, reason)) = self.problem() {
            return Err(bad(key, Raw(value), reason));
        }
        in_range(
            "data.profiles.random_dim",
            self.random_dim,
            0,
            limits::MAX_PROFILE_DIM,
        )
    }
}

impl SyntheticConfig {
    /// The generator's sizes, bounded so that it cannot be asked for absurd allocations.
    fn validate(&self) -> Result<(), ConfigError> {
        unit_share("data.synthetic.affinity", self.affinity)?;
        unit_share("data.synthetic.profile_signal", self.profile_signal)?;
        in_range(
            "data.synthetic.n_users",
            self.n_users,
            1,
            limits::MAX_SYNTHETIC,
        )?;
        if self.n_items < 5 {
            return Err(bad(
                "data.synthetic.n_items",
                self.n_items,
                "must be at least 5 (every user gets at least 5 items)",
            ));
        }
        in_range(
            "data.synthetic.n_items",
            self.n_items,
            5,
            limits::MAX_SYNTHETIC,
        )?;
        if self.n_clusters == 0 || self.n_clusters > self.n_items {
            return Err(bad(
                "data.synthetic.n_clusters",
                self.n_clusters,
                format!("must be between 1 and n_items ({})", self.n_items),
            ));
        }
        in_range(
            "data.synthetic.mean_interactions",
            self.mean_interactions,
            0,
            limits::MAX_MEAN_INTERACTIONS,
        )?;
        // Each user gets about max(mean_interactions, 5) pairs.
        let pairs = self.n_users.saturating_mul(self.mean_interactions.max(5));
        if pairs > limits::MAX_SYNTHETIC_PAIRS {
            return Err(bad(
                "data.synthetic.mean_interactions",
                self.mean_interactions,
                format!(
                    "n_users × mean_interactions = {pairs} interactions; at most {} (lower \
                     mean_interactions or n_users)",
                    limits::MAX_SYNTHETIC_PAIRS
                ),
            ));
        }
        in_range(
            "data.synthetic.profile_dim",
            self.profile_dim,
            1,
            limits::MAX_PROFILE_DIM,
        )?;
        // Both tables together: (n_users + n_items) × profile_dim floats.
        let values = (self.n_users + self.n_items).saturating_mul(self.profile_dim);
        if values > limits::MAX_SYNTHETIC_PROFILE_VALUES {
            return Err(bad(
                "data.synthetic.profile_dim",
                self.profile_dim,
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
