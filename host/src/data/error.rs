//! Why a dataset could not be loaded or generated, and the pieces its messages share.

use std::path::PathBuf;

use super::pairs::{IDS_PER_INTERACTION, SLACK_IDS};

/// Why a dataset could not be loaded or generated.
#[derive(thiserror::Error, Debug)]
pub enum DataError {
    /// The dataset folder does not exist (or is not a folder).
    #[error("dataset folder {} not found", path.display())]
    MissingDir {
        /// The folder as configured.
        path: PathBuf,
    },
    /// A RecBole atomic file the settings need is absent.
    #[error("{} not found ({why})", path.display())]
    MissingAtomic {
        /// The file looked for.
        path: PathBuf,
        /// Which setting needs it.
        why: String,
    },
    /// A RecBole dataset whose train, valid or test split came out empty.
    #[error("{}: the {split} split is empty: {why}", path.display())]
    EmptyRecboleSplit {
        /// The file the split comes from.
        path: PathBuf,
        /// `train`, `valid` or `test`.
        split: &'static str,
        /// Which setting made it so.
        why: String,
    },
    /// A required split file is absent.
    #[error("{} not found (a dataset folder needs train.tsv, valid.tsv and test.tsv)", path.display())]
    MissingFile {
        /// The missing file.
        path: PathBuf,
    },
    /// A split path that exists but is a directory, FIFO, device or socket.
    #[error("{} is {what}", path.display())]
    NotAFile {
        /// The path.
        path: PathBuf,
        /// What it is instead, in words.
        what: String,
    },
    /// A declared user or item count no dataset of these files can need; allocating
    /// per-user (per-item) tables for it could exhaust memory.
    #[error("data config: `{key}` = {declared} is above the limit of {limit} for these split files ({interactions} interactions; the limit is {} + {} per interaction, at most 2^31): almost surely a typo", SLACK_IDS, IDS_PER_INTERACTION)]
    AbsurdCount {
        /// `data.n_users` or `data.n_items`.
        key: &'static str,
        /// The declared count.
        declared: usize,
        /// The largest count accepted.
        limit: usize,
        /// Interactions in all three splits.
        interactions: usize,
    },
    /// A file exists but cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A line that is not `user<TAB>item` / `user,item` with non-negative integer ids.
    #[error("{}:{line}: {reason}: \"{text}\"", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
        /// The offending text (shortened when long).
        text: String,
    },
    /// An id at or above the declared user/item count.
    #[error("{}:{line}: {what} id {id} is out of range: data.n_{what}s = {declared} allows ids 0..{declared}", path.display())]
    IdOutOfRange {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// `"user"` or `"item"`.
        what: &'static str,
        /// The id found.
        id: u32,
        /// The declared count.
        declared: usize,
    },
    /// A split file with no interaction in it.
    #[error("{}: no interactions (the file is empty or holds only blank lines)", path.display())]
    EmptySplit {
        /// The file.
        path: PathBuf,
    },
    /// The same (user, item) pair twice in one file, under `duplicates = "error"`.
    #[error("{}:{line}: duplicate pair (user {user}, item {item}), first at line {first_line} (set data.duplicates = \"drop\" to keep the first)", path.display())]
    DuplicatePair {
        /// The file.
        path: PathBuf,
        /// 1-based line of the repeat.
        line: usize,
        /// 1-based line of the first occurrence.
        first_line: usize,
        /// The user id.
        user: u32,
        /// The item id.
        item: u32,
    },
    /// An inferred count far above the number of distinct ids: almost surely a corrupt id,
    /// and allocating tables for it could exhaust memory.
    #[error("{}:{line}: {what} id {id} implies {} {what}s but only {distinct} distinct {what} ids occur; ids must be contiguous from 0 (declare data.n_{what}s to accept the gap)", path.display(), *id as u64 + 1)]
    SparseIds {
        /// The file holding the largest id.
        path: PathBuf,
        /// 1-based line of the largest id.
        line: usize,
        /// `"user"` or `"item"`.
        what: &'static str,
        /// The largest id.
        id: u32,
        /// How many distinct ids occur.
        distinct: usize,
    },
    /// A data setting that cannot be used (no file involved).
    #[error("data config: `{key}` {reason}")]
    Config {
        /// Dotted config key.
        key: String,
        /// What is wrong with its value.
        reason: String,
    },
    /// A profile file named in `[data.profiles]` does not exist.
    #[error("{} not found (named by {key}; a relative path resolves against data.path)", path.display())]
    MissingProfiles {
        /// The file, as resolved.
        path: PathBuf,
        /// The config key naming it.
        key: &'static str,
    },
    /// A profile file that cannot be used: not a 2-D float32 `.npy` array, a row count
    /// other than the dataset's, a dimension other than the other table's, a NaN or
    /// infinite value (the reason names its 0-based row and column).
    #[error("{} ({key}): {reason}", path.display())]
    BadProfiles {
        /// The file.
        path: PathBuf,
        /// The config key naming it.
        key: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// How many ids a message lists.
const EXAMPLE_IDS: usize = 5;

/// `"3, 7, 9"` or `"3, 7, 9, 12, 15, ..."`: the first few of `ids`.
pub(super) fn examples<T: ToString>(ids: &[T]) -> String {
    let mut s = ids
        .iter()
        .take(EXAMPLE_IDS)
        .map(T::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    if ids.len() > EXAMPLE_IDS {
        s.push_str(", ...");
    }
    s
}

/// A non-regular file's kind, for error messages.
pub(super) fn file_kind(meta: &std::fs::Metadata) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let t = meta.file_type();
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_char_device() || t.is_block_device() {
            return "a device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    if meta.is_dir() {
        "a directory"
    } else {
        "not a plain file"
    }
}
