//! `[eval]`: validation and early stopping.

use serde::{Deserialize, Serialize};

use crate::config::check::{bad, in_range};
use crate::config::{limits, ConfigError};

/// Metric names accepted before the `@K` of `eval.metric`.
pub const METRICS: &[&str] = &["recall", "ndcg", "precision", "hitrate", "mrr"];

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

impl EvalConfig {
    pub(in crate::config) fn validate(&self) -> Result<(), ConfigError> {
        if self.every == 0 {
            return Err(bad(
                "eval.every",
                self.every,
                "must be at least 1 (validate every N epochs)",
            ));
        }
        in_range("eval.every", self.every, 1, limits::MAX_EPOCHS)?;
        in_range("eval.patience", self.patience, 1, limits::MAX_EPOCHS)?;
        if self.ks.is_empty() || self.ks.contains(&0) {
            return Err(bad(
                "eval.ks",
                &self.ks,
                "must be a non-empty list of cut-offs K >= 1",
            ));
        }
        // Evaluation keeps K ids and scores per user of a tile: an absurd K must stop here,
        // before anything is sized by it.
        if let Some(&k) = self.ks.iter().find(|&&k| k > limits::MAX_K) {
            return Err(bad(
                "eval.ks",
                &self.ks,
                format!(
                    "K = {k} is too large: every cut-off must be between 1 and {}",
                    limits::MAX_K
                ),
            ));
        }
        in_range("eval.user_tile", self.user_tile, 1, limits::MAX_USER_TILE)?;
        let metric_ok = self.metric.split_once('@').is_some_and(|(name, k)| {
            METRICS.contains(&name) && k.parse::<usize>().is_ok_and(|k| self.ks.contains(&k))
        });
        if !metric_ok {
            return Err(bad(
                "eval.metric",
                &self.metric,
                format!(
                    "must be <{}>@K with K one of eval.ks {:?}",
                    METRICS.join("|"),
                    self.ks
                ),
            ));
        }
        Ok(())
    }
}
