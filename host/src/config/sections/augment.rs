//! `[augment]`: settings of `promax augment`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::check::{in_range, seed, unit_share};
use crate::config::{limits, ConfigError};

named_options! {
    /// `augment.reduction`: how the profiles are reduced before retrieval.
    ReductionMode {
        /// A PCA basis per table (users, items), as ProMax.
        Separate = "separate",
        /// One basis for both tables.
        Joint = "joint",
    }
}

named_options! {
    /// `augment.rerank`: who orders each user's candidates.
    RerankMode {
        /// The LLM when `[llm] chat_model` is set, else the dense-retrieval order.
        Auto = "auto",
        /// The LLM; an error without `llm.chat_model`.
        Llm = "llm",
        /// The dense-retrieval order.
        Dense = "dense",
    }
}

named_options! {
    /// `augment.source`: where the added items come from (every source under the same
    /// per-user budgets; docs/methods.md, "Augmentation sources").
    AugmentSource {
        /// Uniform over each user's unseen items, seeded (`augment.seed`).
        Random = "random",
        /// The most popular (train degree) unseen items, ties to the lower id.
        Popular = "popular",
        /// The top unseen items of a trained run's final embeddings (`augment.from_run`).
        Cf = "cf",
        /// Profile-guided retrieval (+ optional LLM re-ranking): ProMax's own set.
        Profiles = "profiles",
    }
}

/// `[augment]`: settings of `promax augment`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AugmentConfig {
    /// Where `promax augment`'s added items come from: `"profiles"` (ProMax's retrieval),
    /// `"random"`, `"popular"` or `"cf"` (`--source` overrides it). A run names its source
    /// in a graph view's interactions instead (`source:NAME`); the other keys here apply.
    pub source: AugmentSource,
    /// Seed of the `random` source; unset = the run's `train.seed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// The finished run folder whose final embeddings the `cf` source ranks by (relative:
    /// to the working directory).
    pub from_run: PathBuf,
    /// Number of most similar users (by profile cosine) whose items are candidates.
    pub knn: usize,
    /// Candidates kept per user after the item-side ranking (what an LLM is shown).
    pub max_candidates: usize,
    /// Users are lifted to the next quartile + this (published data: 1).
    pub target_offset: u32,
    /// PCA dimension of the profiles before retrieval; 0 = raw profiles.
    pub reduce_dim: usize,
    /// `"separate"` (a basis per table, as ProMax) or `"joint"`.
    pub reduction: ReductionMode,
    /// Whiten the reduced profiles (ProMax: true).
    pub whiten: bool,
    /// `"auto"` (LLM when `[llm] chat_model` is set, else dense), `"llm"` or `"dense"`.
    pub rerank: RerankMode,
    /// Prompt template file for LLM re-ranking; `""` = the built-in one
    /// (`configs/prompts/rerank.txt`).
    pub rerank_prompt: PathBuf,
    /// `id<TAB>text` written user profiles for the prompt (relative: in the dataset folder).
    pub user_texts: PathBuf,
    /// `id<TAB>text` item descriptions for the prompt (relative: in the dataset folder).
    pub item_texts: PathBuf,
    /// Largest share, in [0, 1], of re-ranked users whose LLM answer may be unusable (no
    /// JSON id list, cut at `max_tokens`, or no id among the candidates) before
    /// `promax augment` fails instead of writing a set that is mostly the dense order.
    pub max_unusable_share: f64,
}

impl Default for AugmentConfig {
    fn default() -> Self {
        AugmentConfig {
            source: AugmentSource::Profiles,
            seed: None,
            from_run: PathBuf::new(),
            knn: 20,
            max_candidates: 30,
            target_offset: 1,
            reduce_dim: 32,
            reduction: ReductionMode::Separate,
            whiten: true,
            rerank: RerankMode::Auto,
            rerank_prompt: PathBuf::new(),
            user_texts: "user_profiles.tsv".into(),
            item_texts: "item_profiles.tsv".into(),
            max_unusable_share: 0.2,
        }
    }
}

impl AugmentConfig {
    /// The seed of the `random` source: `augment.seed`, else the run's `train.seed`.
    pub fn seed_or(&self, train_seed: u64) -> u64 {
        self.seed.unwrap_or(train_seed)
    }

    /// Every count bounded, so that budgets and candidate lists stay small.
    pub(in crate::config) fn validate(&self) -> Result<(), ConfigError> {
        if let Some(s) = self.seed {
            seed("augment.seed", s)?;
        }
        in_range("augment.knn", self.knn, 1, limits::MAX_KNN)?;
        in_range(
            "augment.max_candidates",
            self.max_candidates,
            1,
            limits::MAX_CANDIDATES,
        )?;
        in_range(
            "augment.target_offset",
            self.target_offset,
            0,
            limits::MAX_TARGET_OFFSET,
        )?;
        in_range(
            "augment.reduce_dim",
            self.reduce_dim,
            0,
            limits::MAX_PROFILE_DIM,
        )?;
        unit_share("augment.max_unusable_share", self.max_unusable_share)
    }
}
