//! `[run]`: where a run writes its results.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

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
