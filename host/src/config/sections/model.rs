//! `[model]`: which plugins make up the model.

use serde::{Deserialize, Serialize};

use crate::config::check::bad;
use crate::config::ConfigError;

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

impl ModelConfig {
    pub(in crate::config) fn validate(&self) -> Result<(), ConfigError> {
        if self.backbone.trim().is_empty() {
            return Err(bad(
                "model.backbone",
                &self.backbone,
                "must name a backbone plugin",
            ));
        }
        Ok(())
    }
}
