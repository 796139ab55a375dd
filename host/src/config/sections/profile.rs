//! `[profile]` and `[embed]`: settings of `promax profile` and `promax embed`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::check::{bad, in_range};
use crate::config::{limits, ConfigError};

/// `[profile]`: settings of `promax profile`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProfileConfig {
    /// Item metadata, `id<TAB>title<TAB>free text…` (relative: in the dataset folder).
    pub items_file: PathBuf,
    /// Prompt template file for item profiles; `""` = the built-in one
    /// (`configs/prompts/item_profile.txt`).
    pub item_prompt: PathBuf,
    /// Prompt template file for user profiles; `""` = the built-in one
    /// (`configs/prompts/user_profile.txt`).
    pub user_prompt: PathBuf,
    /// Most TRAIN items of a user shown in its prompt (the lowest item ids).
    pub max_user_items: usize,
    /// Folder of `item_profiles.tsv` / `user_profiles.tsv`; `""` = the dataset folder.
    pub out_dir: PathBuf,
    /// Columns of `items_file` (0 = the id, 1 = the title) whose text makes an item's
    /// description, in this order; empty: every column after the title. An id column
    /// (ML-100k's original movie id) is left out this way.
    pub item_columns: Vec<usize>,
}

/// Highest column `profile.item_columns` may name.
pub const MAX_ITEM_COLUMN: usize = 64;

impl Default for ProfileConfig {
    fn default() -> Self {
        ProfileConfig {
            items_file: "items.tsv".into(),
            item_prompt: PathBuf::new(),
            user_prompt: PathBuf::new(),
            max_user_items: 30,
            out_dir: PathBuf::new(),
            item_columns: Vec::new(),
        }
    }
}

/// `[embed]`: settings of `promax embed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmbedConfig {
    /// `id<TAB>text` user profiles to embed (relative: in the dataset folder).
    pub user_texts: PathBuf,
    /// `id<TAB>text` item profiles to embed (relative: in the dataset folder).
    pub item_texts: PathBuf,
    /// Texts per embeddings request.
    pub batch_size: usize,
    /// Folder of `user_profiles.npy` / `item_profiles.npy`; `""` = the dataset folder.
    pub out_dir: PathBuf,
}

impl Default for EmbedConfig {
    fn default() -> Self {
        EmbedConfig {
            user_texts: "user_profiles.tsv".into(),
            item_texts: "item_profiles.tsv".into(),
            batch_size: 64,
            out_dir: PathBuf::new(),
        }
    }
}

/// Most texts per embeddings request (OpenAI's limit; local servers take fewer well).
pub const MAX_EMBED_BATCH: usize = 2048;

impl ProfileConfig {
    pub(in crate::config) fn validate(&self) -> Result<(), ConfigError> {
        if self.items_file.as_os_str().is_empty() {
            return Err(bad(
                "profile.items_file",
                "",
                "must name the item metadata file",
            ));
        }
        for (i, &c) in self.item_columns.iter().enumerate() {
            if !(2..=MAX_ITEM_COLUMN).contains(&c) {
                return Err(bad(
                    "profile.item_columns",
                    c,
                    format!(
                        "columns are counted from 0 (the id; 1 is the title, which the prompt \
                         gets on its own): a description column is between 2 and \
                         {MAX_ITEM_COLUMN}"
                    ),
                ));
            }
            if self.item_columns[..i].contains(&c) {
                return Err(bad("profile.item_columns", c, "names this column twice"));
            }
        }
        in_range(
            "profile.max_user_items",
            self.max_user_items,
            1,
            limits::MAX_USER_ITEMS,
        )
    }
}

impl EmbedConfig {
    pub(in crate::config) fn validate(&self) -> Result<(), ConfigError> {
        for (key, path) in [
            ("embed.user_texts", &self.user_texts),
            ("embed.item_texts", &self.item_texts),
        ] {
            if path.as_os_str().is_empty() {
                return Err(bad(key, "", "must name an `id<TAB>text` profile file"));
            }
        }
        in_range("embed.batch_size", self.batch_size, 1, MAX_EMBED_BATCH)
    }
}
