//! The first two steps of the LLM pipeline (docs/architecture.md, "LLM pipeline"): written profiles
//! through the chat endpoint (`promax profile`), then their embeddings through the
//! embeddings endpoint (`promax embed`), the `.npy` tables `[data.profiles]` and
//! `promax augment` read.
//!
//! **Profiles** ([`profile_items`], [`profile_users`]), in the spirit of RLMRec:
//! - an item's prompt holds its title and description (the item metadata file,
//!   `id<TAB>title<TAB>free text…`) and asks what kinds of users would enjoy it;
//! - a user's prompt holds, for up to `max_user_items` of the user's TRAIN items (ascending
//!   id; valid and test are never read), the title and the item's written profile, and asks
//!   what the user prefers.
//!
//! Both answers are JSON `{"summarization": "...", "reasoning": "..."}`; the summarization is
//! the profile. An answer with no such object, an empty summarization or one cut at
//! `max_tokens` is retried like a malformed answer, never cached, and finally counted
//! missing: the file is then NOT written and the command fails naming the missing ids.
//! Every usable answer is in the client's disk cache, so running the same command again
//! asks the server only for the missing ones.
//!
//! **Embeddings** ([`embed_table`]): every id of a profile file needs a non-empty text; the
//! texts go out in id order, `batch_size` per request; the vectors must share one
//! dimension; the table is written as float32 `.npy` (row i = id i) through a temporary
//! file and a rename.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::llm::LlmError;

mod chat;
mod embed;
mod texts;

#[cfg(test)]
mod tests;

pub use crate::config::{EmbedConfig, ProfileConfig, MAX_EMBED_BATCH};
pub use chat::{
    profile_items, profile_users, run_profile, ProfileReport, DEFAULT_ITEM_PROMPT,
    DEFAULT_USER_PROMPT,
};
pub use embed::{embed_table, run_embed, EmbedReport};
pub use texts::{parse_summary, read_items, read_text_table, ItemMeta};

/// Which tables a command works on (`--what`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum What {
    Items,
    Users,
    /// Items first: user prompts need the item profiles.
    Both,
}

impl What {
    /// Whether items are done.
    pub fn items(self) -> bool {
        matches!(self, What::Items | What::Both)
    }
    /// Whether users are done.
    pub fn users(self) -> bool {
        matches!(self, What::Users | What::Both)
    }
}

impl FromStr for What {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "items" => Ok(What::Items),
            "users" => Ok(What::Users),
            "both" => Ok(What::Both),
            other => Err(format!(
                "--what {other:?}: must be \"items\", \"users\" or \"both\""
            )),
        }
    }
}

/// Why profiling or embedding failed.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// A missing or malformed input file, or settings that cannot work; names file and line
    /// or the key.
    #[error("{0}")]
    Input(String),
    /// The server failed for good (after the client's retries); nothing was written.
    #[error("{what}: {error} ({done} answers so far are cached: rerun to resume)")]
    Llm {
        /// The request that failed ("item 12", "user ids 64..128").
        what: String,
        /// Requests answered (and cached) in this step.
        done: usize,
        error: LlmError,
    },
    /// Some profiles got no usable answer; the file was not written.
    #[error(
        "{missing} of {total} {kind} profiles are missing (no usable answer for {kind}s \
         {ids}); {} was not written. Every usable answer is cached: run the same command \
         again and only the missing ones are asked again (for answers cut at max_tokens, \
         raise llm.max_tokens first)",
        path.display()
    )]
    Incomplete {
        kind: &'static str,
        missing: usize,
        total: usize,
        /// The first missing ids, comma-separated.
        ids: String,
        path: PathBuf,
    },
    /// Reading the training interactions failed.
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
    /// Writing an output file failed.
    #[error("{0}")]
    Write(String),
}

/// `path`, relative ones taken inside `dir`.
fn resolve(dir: &Path, path: &Path) -> PathBuf {
    dir.join(path)
}

/// The output folder: `out_dir`, or the dataset folder when it is empty.
fn out_folder(dataset_dir: &Path, out_dir: &Path) -> PathBuf {
    if out_dir.as_os_str().is_empty() {
        dataset_dir.to_path_buf()
    } else {
        out_dir.to_path_buf()
    }
}

/// Up to `n` ids, comma-separated, with the count of the rest.
fn list_ids(ids: &[u32], n: usize) -> String {
    let mut s = ids
        .iter()
        .take(n)
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    if ids.len() > n {
        s.push_str(&format!(" and {} more", ids.len() - n));
    }
    s
}

/// `bytes` to `path` through a temporary file beside it and a rename.
fn write_file(path: &Path, bytes: &[u8]) -> Result<(), ProfileError> {
    crate::runfolder::write_atomic(path, bytes).map_err(|e| ProfileError::Write(format!("{e:#}")))
}
