//! Datasets: train/valid/test interaction files on disk, or the built-in synthetic
//! generator (planted clusters plus profile embeddings carrying a controllable share of
//! that signal), and the summary statistics printed before a run.
//!
//! Bad input never panics and never silently loses rows: every error names the file and,
//! where there is one, the 1-based line.
//!
//! Profile embeddings (`[data.profiles]`) come from two `.npy` float32 tables (row i =
//! user / item i), or are drawn at random (seeded standard normal), or are absent; the
//! synthetic dataset keeps its generated ones unless `[data.profiles]` says otherwise.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io::{Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use ndarray::ArrayD;
use ndarray_npy::{ReadNpyError, ReadNpyExt};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::config::{DataConfig, SyntheticConfig};

mod npy;
#[cfg(test)]
mod proptests;

/// (user, item) interactions with 0-based ids.
pub type Pairs = Vec<(u32, u32)>;

/// Names of the three split files a dataset folder must hold.
pub const SPLIT_FILES: [&str; 3] = ["train.tsv", "valid.tsv", "test.tsv"];

/// Dense user and item profile embeddings (row-major).
#[derive(Debug, Clone, PartialEq)]
pub struct Profiles {
    /// Embedding dimension.
    pub dim: usize,
    /// `n_users × dim` values.
    pub users: Vec<f32>,
    /// `n_items × dim` values.
    pub items: Vec<f32>,
}

/// A loaded dataset: ids are dense, `0..n_users` and `0..n_items`.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// Display name (folder name, configured name, or "synthetic").
    pub name: String,
    /// The folder it was read from; `None` when generated.
    pub dir: Option<PathBuf>,
    /// Number of users (declared, or max id + 1 over all splits).
    pub n_users: usize,
    /// Number of items (declared, or max id + 1 over all splits).
    pub n_items: usize,
    /// Training interactions.
    pub train: Pairs,
    /// Validation interactions (early stopping).
    pub valid: Pairs,
    /// Test interactions (reported at the best validation epoch).
    pub test: Pairs,
    /// Profile embeddings: loaded or drawn per `[data.profiles]`, or the synthetic
    /// dataset's generated ones; `None` when there are none.
    pub profiles: Option<Profiles>,
}

/// What a repeated (user, item) pair within one split file does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DuplicatePolicy {
    /// Refuse the file, naming both lines.
    Error,
    /// Keep the first occurrence and warn with the count and the first line numbers.
    Drop,
}

impl FromStr for DuplicatePolicy {
    type Err = DataError;

    fn from_str(s: &str) -> Result<Self, DataError> {
        match s {
            "error" => Ok(DuplicatePolicy::Error),
            "drop" => Ok(DuplicatePolicy::Drop),
            other => Err(DataError::Config {
                key: "data.duplicates".into(),
                reason: format!("is \"{other}\"; must be \"error\" or \"drop\""),
            }),
        }
    }
}

/// Why a dataset could not be loaded or generated.
#[derive(thiserror::Error, Debug)]
pub enum DataError {
    /// The dataset folder does not exist (or is not a folder).
    #[error("dataset folder {} not found", path.display())]
    MissingDir {
        /// The folder as configured.
        path: PathBuf,
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

/// Loads the dataset `cfg` describes: reads the split files of a folder, or generates the
/// synthetic dataset.
pub fn load_dataset(cfg: &DataConfig) -> Result<Dataset, DataError> {
    // A contradictory [data.profiles] is reported before any (possibly large) file is read.
    if let Some((key, _, reason)) = cfg.profiles.problem() {
        return Err(DataError::Config {
            key: key.into(),
            reason,
        });
    }
    match cfg.kind.as_str() {
        "files" => load_files(cfg),
        "synthetic" => {
            let s = &cfg.synthetic;
            for (key, declared, generated) in [
                ("data.n_users", cfg.n_users, s.n_users),
                ("data.n_items", cfg.n_items, s.n_items),
            ] {
                if declared != 0 && declared != generated {
                    let reason = format!("is {declared} but the synthetic dataset has {generated} (set data.synthetic.{} instead)", key.trim_start_matches("data."));
                    return Err(DataError::Config {
                        key: key.into(),
                        reason,
                    });
                }
            }
            let mut ds = generate(s)?.dataset;
            if !cfg.name.is_empty() {
                ds.name = cfg.name.clone();
            }
            // The generated profiles stay unless [data.profiles] names another source.
            if cfg.profiles.is_set() {
                ds.profiles = load_profiles(cfg, ds.n_users, ds.n_items)?;
            }
            Ok(ds)
        }
        other => Err(DataError::Config {
            key: "data.kind".into(),
            reason: format!("is \"{other}\"; must be \"files\" or \"synthetic\""),
        }),
    }
}

fn load_files(cfg: &DataConfig) -> Result<Dataset, DataError> {
    if cfg.path.as_os_str().is_empty() {
        return Err(DataError::Config {
            key: "data.path".into(),
            reason: "is empty; it must name the folder holding train.tsv, valid.tsv and test.tsv"
                .into(),
        });
    }
    let dir = &cfg.dir();
    if !dir.is_dir() {
        return Err(DataError::MissingDir { path: dir.clone() });
    }
    let policy: DuplicatePolicy = cfg.duplicates.parse()?;
    let declared_users = (cfg.n_users != 0).then_some(cfg.n_users);
    let declared_items = (cfg.n_items != 0).then_some(cfg.n_items);
    // Every file is checked to exist before any is parsed, so a missing one is reported
    // first rather than after a long read.
    let paths = SPLIT_FILES.map(|f| dir.join(f));
    for p in &paths {
        check_split_file(p)?;
    }
    let columns = cfg
        .split_columns()
        .map_err(|(value, reason)| DataError::Config {
            key: "data.columns".into(),
            reason: format!("= {value} {reason}"),
        })?;
    let mut splits = Vec::with_capacity(3);
    for p in &paths {
        splits.push(read_split(
            p,
            declared_users,
            declared_items,
            policy,
            columns,
        )?);
    }
    let interactions = splits.iter().map(|s| s.pairs.len()).sum();
    check_declared("data.n_users", declared_users, interactions)?;
    check_declared("data.n_items", declared_items, interactions)?;

    let n_users = match declared_users {
        Some(n) => n,
        None => inferred_count(&paths, &splits, "user", |s| s.max_user, |&(u, _)| u)?,
    };
    let n_items = match declared_items {
        Some(n) => n,
        None => inferred_count(&paths, &splits, "item", |s| s.max_item, |&(_, i)| i)?,
    };
    warn_unseen(&paths, &splits, n_users, n_items);
    let name = if !cfg.name.is_empty() {
        cfg.name.clone()
    } else {
        folder_name(dir)
    };
    let mut splits = splits.into_iter().map(|s| s.pairs);
    let (train, valid, test) = (
        splits.next().unwrap_or_default(),
        splits.next().unwrap_or_default(),
        splits.next().unwrap_or_default(),
    );
    let profiles = load_profiles(cfg, n_users, n_items)?;
    let ds = Dataset {
        name,
        dir: Some(dir.clone()),
        n_users,
        n_items,
        train,
        valid,
        test,
        profiles,
    };
    let st = stats(&ds);
    if st.train_valid_overlap + st.train_test_overlap > 0 {
        // Not an error: published splits sometimes leak, and the user should see it, not
        // be blocked by it.
        tracing::warn!(
            dataset = %ds.name,
            "{} validation and {} test pairs also occur in train: held-out results will be inflated",
            st.train_valid_overlap,
            st.train_test_overlap
        );
    }
    Ok(ds)
}

fn folder_name(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_owned())
        .or_else(|| {
            std::fs::canonicalize(dir)
                .ok()
                .and_then(|c| c.file_name().map(|n| n.to_owned()))
        })
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "dataset".into())
}

/// Ids a declared count may have beyond [`IDS_PER_INTERACTION`] per interaction.
const SLACK_IDS: usize = 1000;
/// Ids a declared count may have per interaction in the split files: far more than any
/// real dataset's share of users (items) without an interaction, yet small enough that the
/// per-id tables stay a few times the size of the files themselves.
const IDS_PER_INTERACTION: usize = 64;
/// Absolute bound on a declared count (node ids of the graph are u32).
const MAX_DECLARED: usize = 1 << 31;

/// Refuses a declared count that the split files cannot plausibly need, before anything of
/// that size is allocated: ids are checked against it, but every per-user (per-item)
/// table is sized by it.
fn check_declared(
    key: &'static str,
    declared: Option<usize>,
    interactions: usize,
) -> Result<(), DataError> {
    let limit = interactions
        .saturating_mul(IDS_PER_INTERACTION)
        .saturating_add(SLACK_IDS)
        .min(MAX_DECLARED);
    match declared {
        Some(n) if n > limit => Err(DataError::AbsurdCount {
            key,
            declared: n,
            limit,
            interactions,
        }),
        _ => Ok(()),
    }
}

/// Warns (without failing) about ids a model cannot learn or that no split uses: users and
/// items of valid/test that never occur in train, and ids below the count that occur in no
/// split (a stray large id creates that many phantom users or items).
fn warn_unseen(paths: &[PathBuf; 3], splits: &[SplitRead], n_users: usize, n_items: usize) {
    warn_unseen_ids(paths, splits, "user", n_users, |&(u, _)| u);
    warn_unseen_ids(paths, splits, "item", n_items, |&(_, i)| i);
}

fn warn_unseen_ids(
    paths: &[PathBuf; 3],
    splits: &[SplitRead],
    what: &str,
    n: usize,
    id_of: fn(&(u32, u32)) -> u32,
) {
    let mut in_train = vec![false; n];
    mark(&mut in_train, splits[0].pairs.iter().map(id_of));
    for (path, split) in paths.iter().zip(splits).skip(1) {
        let mut cold: Vec<u32> = split
            .pairs
            .iter()
            .map(id_of)
            .filter(|&id| !in_train.get(id as usize).copied().unwrap_or(false))
            .collect();
        cold.sort_unstable();
        cold.dedup();
        if !cold.is_empty() {
            tracing::warn!(
                file = %path.display(),
                "{} {what}(s) occur here but never in {}: a model cannot learn them, \
                 so they only count as misses (e.g. {what} {})",
                cold.len(),
                paths[0].display(),
                examples(&cold)
            );
        }
    }
    let mut anywhere = in_train;
    for split in &splits[1..] {
        mark(&mut anywhere, split.pairs.iter().map(id_of));
    }
    let gaps: Vec<usize> = (0..n).filter(|&id| !anywhere[id]).collect();
    if !gaps.is_empty() {
        tracing::warn!(
            "{} of the {n} {what} ids 0..{n} occur in no split file (e.g. {}): each is a \
             phantom {what} with a learned embedding but no data; a stray large id causes this",
            gaps.len(),
            examples(&gaps)
        );
    }
}

fn mark(seen: &mut [bool], ids: impl Iterator<Item = u32>) {
    for id in ids {
        if let Some(s) = seen.get_mut(id as usize) {
            *s = true;
        }
    }
}

/// max id + 1 over all splits, refused when it is far above the number of distinct ids.
fn inferred_count(
    paths: &[PathBuf; 3],
    splits: &[SplitRead],
    what: &'static str,
    max_of: impl Fn(&SplitRead) -> Option<(u32, usize)>,
    id_of: impl Fn(&(u32, u32)) -> u32,
) -> Result<usize, DataError> {
    let Some((file, (id, line))) = splits
        .iter()
        .enumerate()
        .filter_map(|(f, s)| max_of(s).map(|m| (f, m)))
        .max_by_key(|&(f, (id, _))| (id, std::cmp::Reverse(f)))
    else {
        return Ok(0);
    };
    let n = id as usize + 1;
    // Cheap check first: only count distinct ids when the count could be implausible.
    if n > 1000 {
        let distinct: HashSet<u32> = splits
            .iter()
            .flat_map(|s| s.pairs.iter().map(&id_of))
            .collect();
        if n > 1000 + 4 * distinct.len() {
            return Err(DataError::SparseIds {
                path: paths[file].clone(),
                line,
                what,
                id,
                distinct: distinct.len(),
            });
        }
    }
    Ok(n)
}

/// One parsed split file plus where its largest ids are (for error messages).
struct SplitRead {
    pairs: Pairs,
    max_user: Option<(u32, usize)>,
    max_item: Option<(u32, usize)>,
}

/// Reads one interaction file. `n_users` / `n_items`, when given, bound the ids.
pub fn read_pairs(
    path: &Path,
    n_users: Option<usize>,
    n_items: Option<usize>,
    duplicates: DuplicatePolicy,
) -> Result<Pairs, DataError> {
    read_split(path, n_users, n_items, duplicates, None).map(|s| s.pairs)
}

/// Refuses a split path that is missing or is not a regular file, before it is opened:
/// reading a FIFO would block, and a directory is not "not found".
fn check_split_file(path: &Path) -> Result<(), DataError> {
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => DataError::MissingFile {
            path: path.to_path_buf(),
        },
        _ => DataError::Io {
            path: path.to_path_buf(),
            source: e,
        },
    })?;
    if meta.is_file() {
        return Ok(());
    }
    let what = if meta.is_dir() {
        "a directory, not a file".to_string()
    } else {
        format!(
            "not a regular file ({}); split files must be plain text files",
            file_kind(&meta)
        )
    };
    Err(DataError::NotAFile {
        path: path.to_path_buf(),
        what,
    })
}

/// Reads one split file. `columns`: which fields hold the user and item ids (`None`:
/// exactly two fields per line).
fn read_split(
    path: &Path,
    n_users: Option<usize>,
    n_items: Option<usize>,
    duplicates: DuplicatePolicy,
    columns: Option<[usize; 2]>,
) -> Result<SplitRead, DataError> {
    check_split_file(path)?;
    let bytes = std::fs::read(path).map_err(|e| DataError::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    let mut out = SplitRead {
        pairs: Vec::new(),
        max_user: None,
        max_item: None,
    };
    let mut first_seen: HashMap<(u32, u32), usize> = HashMap::new();
    let mut dropped: Vec<(usize, usize)> = Vec::new();

    for (index, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line_no = index + 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let raw = if index == 0 {
            raw.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(raw)
        } else {
            raw
        };
        let malformed = |reason: String| DataError::Malformed {
            path: path.to_path_buf(),
            line: line_no,
            reason,
            text: shorten(&String::from_utf8_lossy(raw)),
        };
        let line = std::str::from_utf8(raw).map_err(|_| malformed("not UTF-8 text".into()))?;
        // Only spaces make a line blank: a tab separates (empty) fields.
        if line.trim_matches(' ').is_empty() {
            continue;
        }
        let (user_field, item_field) = split_fields(line, columns).map_err(&malformed)?;
        let user = parse_id(user_field, "user").map_err(&malformed)?;
        let item = parse_id(item_field, "item").map_err(&malformed)?;
        for (what, id, declared) in [("user", user, n_users), ("item", item, n_items)] {
            if let Some(declared) = declared {
                if id as usize >= declared {
                    return Err(DataError::IdOutOfRange {
                        path: path.to_path_buf(),
                        line: line_no,
                        what,
                        id,
                        declared,
                    });
                }
            }
        }
        if let Some(&first_line) = first_seen.get(&(user, item)) {
            match duplicates {
                DuplicatePolicy::Error => {
                    return Err(DataError::DuplicatePair {
                        path: path.to_path_buf(),
                        line: line_no,
                        first_line,
                        user,
                        item,
                    });
                }
                DuplicatePolicy::Drop => {
                    dropped.push((line_no, first_line));
                    continue;
                }
            }
        }
        first_seen.insert((user, item), line_no);
        if out.max_user.is_none_or(|(m, _)| user > m) {
            out.max_user = Some((user, line_no));
        }
        if out.max_item.is_none_or(|(m, _)| item > m) {
            out.max_item = Some((item, line_no));
        }
        out.pairs.push((user, item));
    }

    if out.pairs.is_empty() {
        return Err(DataError::EmptySplit {
            path: path.to_path_buf(),
        });
    }
    if !dropped.is_empty() {
        let examples: Vec<String> = dropped
            .iter()
            .take(5)
            .map(|(l, f)| format!("line {l} (first at {f})"))
            .collect();
        tracing::warn!(
            file = %path.display(),
            "dropped {} duplicate (user, item) line(s): {}{}",
            dropped.len(),
            examples.join(", "),
            if dropped.len() > 5 { ", ..." } else { "" }
        );
    }
    Ok(out)
}

/// The user and item fields of a non-blank line. A line uses one delimiter, tab or comma,
/// and has exactly two fields unless `columns` names which of its fields hold the ids:
/// a stray third column or a mix of delimiters is a sign of a different file format,
/// whose ids would otherwise be read from the wrong place.
fn split_fields(line: &str, columns: Option<[usize; 2]>) -> Result<(&str, &str), String> {
    let delim = match (line.contains('\t'), line.contains(',')) {
        (true, true) => {
            return Err("mixes tab and comma delimiters; a line must use one of them".into())
        }
        (true, false) => '\t',
        (false, true) => ',',
        (false, false) => {
            let hint = if line.contains(' ') {
                " (spaces do not separate fields)"
            } else {
                ""
            };
            return Err(format!(
                "expected `user<TAB>item` or `user,item`, found one field{hint}"
            ));
        }
    };
    let n = line.matches(delim).count() + 1;
    let [u, i] = match columns {
        None if n == 2 => [0, 1],
        None => {
            return Err(format!(
                "{n} fields, expected 2 (user, item); set data.columns = [USER, ITEM] \
                 (0-based) to read two columns of a wider file"
            ))
        }
        Some([u, i]) if n > u.max(i) => [u, i],
        Some([u, i]) => {
            return Err(format!(
                "{n} field(s), but data.columns = [{u}, {i}] needs at least {}",
                u.max(i) + 1
            ))
        }
    };
    let field = |k: usize| line.split(delim).nth(k).unwrap_or("");
    Ok((field(u), field(i)))
}

/// A plain non-negative decimal id: ASCII digits only, no sign, no spaces, no radix prefix,
/// no fraction. Rust's `parse::<u32>` alone would accept `+5`.
fn parse_id(field: &str, what: &str) -> Result<u32, String> {
    if field.is_empty() {
        return Err(format!("the {what} id is empty"));
    }
    if field.bytes().all(|b| b.is_ascii_digit()) {
        // All digits: the only way left to fail is overflow.
        return field
            .parse::<u32>()
            .map_err(|_| format!("the {what} id {field} is too large (ids must be below 2^32)"));
    }
    Err(format!("the {what} id `{field}` {}", not_an_id(field)))
}

/// Why a field that is not all ASCII digits is not an id, for the error message.
fn not_an_id(field: &str) -> &'static str {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if field.trim() != field {
        "has spaces around it; fields are not trimmed"
    } else if field.strip_prefix('-').is_some_and(digits) {
        "is negative; ids are 0-based"
    } else if field.starts_with('+') {
        "has a sign; ids are plain digits"
    } else if field.starts_with("0x") || field.starts_with("0X") {
        "is hexadecimal; ids are plain decimal digits"
    } else if field.chars().any(|c| !c.is_ascii() && c.is_numeric()) {
        "holds non-ASCII digits; ids are written with 0-9"
    } else if field.parse::<f64>().is_ok() {
        "is not an integer; ids are whole numbers"
    } else {
        "is not a non-negative integer"
    }
}

/// Error messages quote the line; a runaway line (a binary file, say) is cut short.
fn shorten(text: &str) -> String {
    const MAX: usize = 80;
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_string(),
    }
}

/// The profiles `cfg.profiles` asks for, for a dataset of `n_users` × `n_items`: `None`
/// when it names no source, else the two files (resolved against `data.path`) or seeded
/// random profiles.
pub fn load_profiles(
    cfg: &DataConfig,
    n_users: usize,
    n_items: usize,
) -> Result<Option<Profiles>, DataError> {
    let p = &cfg.profiles;
    if let Some((key, _, reason)) = p.problem() {
        return Err(DataError::Config {
            key: key.into(),
            reason,
        });
    }
    if p.random_dim > 0 {
        return random_profiles(n_users, n_items, p.random_dim, p.random_seed).map(Some);
    }
    if !p.is_set() {
        return Ok(None);
    }
    let users_path = resolve_profile_path(cfg, &p.users);
    let items_path = resolve_profile_path(cfg, &p.items);
    let (users, dim) = read_profile_table(&users_path, "data.profiles.users", "user", n_users)?;
    let (items, item_dim) =
        read_profile_table(&items_path, "data.profiles.items", "item", n_items)?;
    if item_dim != dim {
        return Err(DataError::BadProfiles {
            path: items_path,
            key: "data.profiles.items",
            reason: format!(
                "has dimension {item_dim} but the user profiles ({}) have dimension {dim}: \
                 both tables must come from the same embedding model",
                users_path.display()
            ),
        });
    }
    Ok(Some(Profiles { dim, users, items }))
}

/// Profile files live beside the splits, so a relative path means "in the dataset folder";
/// with no `data.path` (the synthetic dataset) it stays relative to `data.root`, the
/// working directory by default.
fn resolve_profile_path(cfg: &DataConfig, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        cfg.dir().join(p)
    }
}

/// Reads one `.npy` profile table: a 2-D float32 array (C or Fortran order, either byte
/// order) with `expected_rows` rows, every value finite, no degenerate rows. Returns the
/// values row-major and the dimension. The header is checked against the file's length
/// before anything is allocated for the data.
pub fn read_profile_table(
    path: &Path,
    key: &'static str,
    what: &str,
    expected_rows: usize,
) -> Result<(Vec<f32>, usize), DataError> {
    let bad = |reason: String| DataError::BadProfiles {
        path: path.to_path_buf(),
        key,
        reason,
    };
    let (mut file, rows, dim) = open_profile_table(path, key, what)?;
    if rows != expected_rows {
        return Err(bad(format!(
            "has {rows} rows but the dataset has {expected_rows} {what}s (row i must be the \
             profile of {what} i)"
        )));
    }
    if dim == 0 {
        return Err(bad(format!(
            "has shape {}: no columns",
            py_shape(&[rows, dim])
        )));
    }
    file.seek(SeekFrom::Start(0)).map_err(|e| DataError::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    // Read with a dynamic dimension: the rank was checked above, and ndarray-npy then
    // handles byte order and Fortran order.
    let arr = ArrayD::<f32>::read_npy(std::io::BufReader::new(file))
        .map_err(|e| bad(npy_error_reason(e)))?;
    // Fortran-order files come back column-major; `iter` walks the logical row-major order.
    let values: Vec<f32> = if arr.is_standard_layout() {
        let (v, offset) = arr.into_raw_vec_and_offset();
        debug_assert!(offset.unwrap_or(0) == 0);
        v
    } else {
        arr.iter().copied().collect()
    };
    // A NaN or infinity would silently poison every cosine and PCA downstream.
    if let Some(pos) = values.iter().position(|x| !x.is_finite()) {
        return Err(bad(format!(
            "row {}, column {} (0-based; row = {what} id) is {}; profiles must be finite",
            pos / dim,
            pos % dim,
            values[pos]
        )));
    }
    if let Some(reason) = degenerate_rows(&values, dim, what) {
        return Err(bad(reason));
    }
    Ok((values, dim))
}

/// The number of rows of a `.npy` profile table, from its header alone (checked like
/// [`read_profile_table`]'s: float32, 2-D, as many data bytes as the shape needs).
pub fn profile_table_rows(path: &Path, key: &'static str, what: &str) -> Result<usize, DataError> {
    open_profile_table(path, key, what).map(|(_, rows, _)| rows)
}

/// Opens a profile table and checks its header: a regular file holding a 2-D float32
/// array whose shape accounts for exactly the bytes after the header. Returns the file and
/// the shape; nothing of the data is read or allocated.
fn open_profile_table(
    path: &Path,
    key: &'static str,
    what: &str,
) -> Result<(std::fs::File, usize, usize), DataError> {
    let bad = |reason: String| DataError::BadProfiles {
        path: path.to_path_buf(),
        key,
        reason,
    };
    let io = |e: std::io::Error| DataError::Io {
        path: path.to_path_buf(),
        source: e,
    };
    // Metadata before opening: opening a FIFO would block until a writer appears.
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => DataError::MissingProfiles {
            path: path.to_path_buf(),
            key,
        },
        _ => io(e),
    })?;
    if meta.is_dir() {
        return Err(bad("is a folder, not a .npy file".into()));
    }
    if !meta.is_file() {
        return Err(bad(format!(
            "is not a regular file ({}); profile tables must be .npy files",
            file_kind(&meta)
        )));
    }
    let file_len = meta.len();
    let mut file = std::fs::File::open(path).map_err(io)?;
    let header = npy::read_header(&mut std::io::BufReader::new(&mut file), file_len)
        .map_err(|e| bad(format!("not a .npy file: {e}")))?;
    let code = header.descr.trim_start_matches(['<', '>', '=', '|']);
    if code != "f4" {
        let desc = format!("'{}'", header.descr);
        return Err(bad(format!(
            "holds {} values (dtype {desc}), not float32; profile tables must be \
             float32 '<f4' (np.save(path, a.astype(np.float32)))",
            dtype_name(&desc)
        )));
    }
    let shape = &header.shape;
    if shape.len() != 2 {
        return Err(bad(format!(
            "holds a {}-D float32 array of shape {}, not a 2-D ({what}s × dimension) table",
            shape.len(),
            py_shape(shape)
        )));
    }
    let available = file_len.saturating_sub(header.data_offset);
    match header.data_bytes(4) {
        Some(need) if need == available => Ok((file, shape[0], shape[1])),
        Some(need) if need < available => Err(bad(format!(
            "has {} bytes after the array its header describes (shape {})",
            available - need,
            py_shape(shape)
        ))),
        need => Err(bad(format!(
            "its header claims shape {} ({} of float32 data) but the file is only {file_len} \
             bytes: the file is truncated or corrupt",
            py_shape(shape),
            need.map_or_else(
                || "more than 2^64 bytes".to_string(),
                |n| format!("{n} bytes")
            )
        ))),
    }
}

/// ndarray-npy's errors in words; the header was checked already, so these are rare.
fn npy_error_reason(e: ReadNpyError) -> String {
    match e {
        ReadNpyError::WrongDescriptor(desc) => {
            let desc = desc.to_string();
            format!(
                "holds {} values (dtype {desc}), not float32; profile tables must be \
                 float32 '<f4' (np.save(path, a.astype(np.float32)))",
                dtype_name(&desc)
            )
        }
        ReadNpyError::ParseHeader(e) => format!("not a .npy file: {e}"),
        ReadNpyError::MissingData => {
            "is truncated: it holds less data than its header's shape promises".into()
        }
        ReadNpyError::ExtraBytes(n) => {
            format!("has {n} bytes after the array its header describes")
        }
        ReadNpyError::Io(e) => format!("cannot read it as .npy: {e}"),
        other => format!("cannot read it as .npy: {other}"),
    }
}

/// How many ids a message lists.
const EXAMPLE_IDS: usize = 5;

/// `"3, 7, 9"` or `"3, 7, 9, 12, 15, ..."`: the first few of `ids`.
fn examples<T: ToString>(ids: &[T]) -> String {
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

/// Why a table's rows cannot serve as profiles, if they cannot: an all-zero row has no
/// direction (its cosine to anything is undefined), a row holding one value in every
/// column carries nothing but a norm, and a table whose rows are all the same makes every
/// user (item) look alike: all signs of a failed or placeholder embedding run.
fn degenerate_rows(values: &[f32], dim: usize, what: &str) -> Option<String> {
    let rows: Vec<&[f32]> = values.chunks_exact(dim).collect();
    let zero: Vec<usize> = (0..rows.len())
        .filter(|&r| rows[r].iter().all(|&x| x == 0.0))
        .collect();
    if !zero.is_empty() {
        return Some(format!(
            "{} row(s) are all zeros (0-based row = {what} id: {}); every profile needs a \
             non-zero embedding",
            zero.len(),
            examples(&zero)
        ));
    }
    // With one column every row is "constant"; that says nothing about the embedding.
    if dim >= 2 {
        let constant: Vec<usize> = (0..rows.len())
            .filter(|&r| rows[r].iter().all(|&x| x == rows[r][0]))
            .collect();
        if !constant.is_empty() {
            return Some(format!(
                "{} row(s) hold one value in every column (0-based row = {what} id: {}); \
                 a constant row is not an embedding",
                constant.len(),
                examples(&constant)
            ));
        }
    }
    if rows.len() >= 2 && rows.iter().all(|r| *r == rows[0]) {
        return Some(format!(
            "all {} rows are identical (rows 0..{}): the table cannot tell one {what} from \
             another",
            rows.len(),
            rows.len()
        ));
    }
    None
}

/// A non-regular file's kind, for error messages.
fn file_kind(meta: &std::fs::Metadata) -> &'static str {
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

/// A numpy dtype descriptor (`'<f8'`) in words, for error messages.
fn dtype_name(desc: &str) -> &'static str {
    let code = desc
        .trim_matches('\'')
        .trim_start_matches(['<', '>', '=', '|']);
    match code {
        "f8" => "float64",
        "f2" => "float16",
        "f4" => "float32 of an unsupported byte order",
        "i1" | "i2" | "i4" | "i8" | "u1" | "u2" | "u4" | "u8" => "integer",
        "b1" => "boolean",
        "O" => "Python object",
        _ => "non-float32",
    }
}

/// A shape as numpy prints it: `(5,)`, `(3, 4)`.
fn py_shape(shape: &[usize]) -> String {
    match shape {
        [n] => format!("({n},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Rows per independently seeded chunk of random profiles.
const RANDOM_CHUNK_ROWS: usize = 64;

/// Seeded standard-normal profiles, `n_users × dim` then `n_items × dim`.
///
/// Each chunk of [`RANDOM_CHUNK_ROWS`] rows draws from its own ChaCha8 stream of `seed`
/// (users: streams 0, 1, …; items: streams 2³² + 0, 1, …), filled in parallel; the values
/// therefore depend only on (seed, table, row, dim), never on the thread count, and a
/// user's profile does not change with the number of items.
pub fn random_profiles(
    n_users: usize,
    n_items: usize,
    dim: usize,
    seed: u64,
) -> Result<Profiles, DataError> {
    let table = |n: usize, stream_base: u64| -> Result<Vec<f32>, DataError> {
        let too_big = || DataError::Config {
            key: "data.profiles.random_dim".into(),
            reason: format!("= {dim}: {n} rows × {dim} f32 values do not fit in memory"),
        };
        let len = n.checked_mul(dim).ok_or_else(too_big)?;
        // try_reserve: an absurd dimension is a config error, not an allocation abort.
        let mut out = Vec::new();
        out.try_reserve_exact(len).map_err(|_| too_big())?;
        out.resize(len, 0.0f32);
        if dim > 0 {
            out.par_chunks_mut(RANDOM_CHUNK_ROWS * dim)
                .enumerate()
                .for_each(|(k, chunk)| {
                    let mut rng = ChaCha8Rng::seed_from_u64(seed);
                    rng.set_stream(stream_base + k as u64);
                    fill_standard_normal(chunk, &mut rng);
                });
        }
        Ok(out)
    };
    Ok(Profiles {
        dim,
        users: table(n_users, 0)?,
        items: table(n_items, 1 << 32)?,
    })
}

/// Fills `out` with N(0, 1) draws: Box–Muller, both outputs of each pair (rand 0.8 has no
/// normal distribution without the extra rand_distr crate).
fn fill_standard_normal(out: &mut [f32], rng: &mut ChaCha8Rng) {
    for pair in out.chunks_mut(2) {
        let u1: f64 = 1.0 - rng.gen::<f64>(); // (0, 1]: ln stays finite
        let u2: f64 = rng.gen();
        let r = (-2.0 * u1.ln()).sqrt();
        let (s, c) = (std::f64::consts::TAU * u2).sin_cos();
        pair[0] = (r * c) as f32;
        if let Some(x) = pair.get_mut(1) {
            *x = (r * s) as f32;
        }
    }
}

/// Number of train interactions of each user (length `n_users`).
pub fn train_counts(ds: &Dataset) -> Vec<u32> {
    let mut counts = vec![0u32; ds.n_users];
    for &(u, _) in &ds.train {
        // A hand-built Dataset may hold ids past n_users: skip them rather than panic.
        if let Some(c) = counts.get_mut(u as usize) {
            *c += 1;
        }
    }
    counts
}

/// Summary of a dataset, printed before a run and checked against the data READMEs.
#[derive(Debug, Clone, PartialEq)]
pub struct DataStats {
    /// Dataset name.
    pub name: String,
    /// Number of users.
    pub n_users: usize,
    /// Number of items.
    pub n_items: usize,
    /// Train interactions.
    pub n_train: usize,
    /// Validation interactions.
    pub n_valid: usize,
    /// Test interactions.
    pub n_test: usize,
    /// (train + valid + test) / (users × items).
    pub density: f64,
    /// Fewest train interactions of a user.
    pub train_min: u32,
    /// First quartile of per-user train counts (linear interpolation, as numpy).
    pub train_q1: f64,
    /// Median of per-user train counts.
    pub train_median: f64,
    /// Third quartile of per-user train counts.
    pub train_q3: f64,
    /// Most train interactions of a user.
    pub train_max: u32,
    /// Users with no train interaction (they cannot be learned).
    pub users_without_train: usize,
    /// Users with no validation interaction (skipped by validation).
    pub users_without_valid: usize,
    /// Users with no test interaction (skipped by test).
    pub users_without_test: usize,
    /// Users with neither a validation nor a test interaction.
    pub users_without_valid_or_test: usize,
    /// Items that never occur in train (the model only sees their initial embedding).
    pub items_not_in_train: usize,
    /// Pairs in both train and valid: a leak.
    pub train_valid_overlap: usize,
    /// Pairs in both train and test: a leak.
    pub train_test_overlap: usize,
    /// Pairs in both valid and test.
    pub valid_test_overlap: usize,
    /// Dimension of the profile embeddings, when the dataset has them.
    pub profile_dim: Option<usize>,
}

/// Computes [`DataStats`] for `ds`.
pub fn stats(ds: &Dataset) -> DataStats {
    let counts = train_counts(ds);
    let mut sorted = counts.clone();
    sorted.sort_unstable();
    let presence = |pairs: &Pairs| {
        let mut seen = vec![false; ds.n_users];
        for &(u, _) in pairs {
            if let Some(s) = seen.get_mut(u as usize) {
                *s = true;
            }
        }
        seen
    };
    let (has_valid, has_test) = (presence(&ds.valid), presence(&ds.test));
    let mut item_in_train = vec![false; ds.n_items];
    for &(_, i) in &ds.train {
        if let Some(s) = item_in_train.get_mut(i as usize) {
            *s = true;
        }
    }
    let train_set: HashSet<(u32, u32)> = ds.train.iter().copied().collect();
    let valid_set: HashSet<(u32, u32)> = ds.valid.iter().copied().collect();
    let total = ds.train.len() + ds.valid.len() + ds.test.len();
    let cells = ds.n_users as f64 * ds.n_items as f64;
    DataStats {
        name: ds.name.clone(),
        n_users: ds.n_users,
        n_items: ds.n_items,
        n_train: ds.train.len(),
        n_valid: ds.valid.len(),
        n_test: ds.test.len(),
        density: if cells > 0.0 {
            total as f64 / cells
        } else {
            0.0
        },
        train_min: sorted.first().copied().unwrap_or(0),
        train_q1: quantile(&sorted, 0.25),
        train_median: quantile(&sorted, 0.5),
        train_q3: quantile(&sorted, 0.75),
        train_max: sorted.last().copied().unwrap_or(0),
        users_without_train: counts.iter().filter(|&&c| c == 0).count(),
        users_without_valid: has_valid.iter().filter(|&&h| !h).count(),
        users_without_test: has_test.iter().filter(|&&h| !h).count(),
        users_without_valid_or_test: has_valid
            .iter()
            .zip(&has_test)
            .filter(|(v, t)| !**v && !**t)
            .count(),
        items_not_in_train: item_in_train.iter().filter(|&&s| !s).count(),
        train_valid_overlap: ds.valid.iter().filter(|p| train_set.contains(p)).count(),
        train_test_overlap: ds.test.iter().filter(|p| train_set.contains(p)).count(),
        valid_test_overlap: ds.test.iter().filter(|p| valid_set.contains(p)).count(),
        profile_dim: ds.profiles.as_ref().map(|p| p.dim),
    }
}

/// Quantile of sorted values with linear interpolation (numpy's default), so the numbers
/// match those in the data READMEs.
fn quantile(sorted: &[u32], q: f64) -> f64 {
    match sorted.len() {
        0 => 0.0,
        n => {
            let pos = q * (n - 1) as f64;
            let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
            let (a, b) = (f64::from(sorted[lo]), f64::from(sorted[hi.min(n - 1)]));
            a + (b - a) * (pos - lo as f64)
        }
    }
}

impl fmt::Display for DataStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "dataset {}: {} users, {} items",
            self.name, self.n_users, self.n_items
        )?;
        writeln!(
            f,
            "  interactions: train {}, valid {}, test {} (total {}, density {:.6})",
            self.n_train,
            self.n_valid,
            self.n_test,
            self.n_train + self.n_valid + self.n_test,
            self.density
        )?;
        writeln!(
            f,
            "  train per user: min {}, Q1 {}, median {}, Q3 {}, max {}",
            self.train_min, self.train_q1, self.train_median, self.train_q3, self.train_max
        )?;
        writeln!(
            f,
            "  users without train {}, without valid {}, without test {}, without valid or test {}",
            self.users_without_train,
            self.users_without_valid,
            self.users_without_test,
            self.users_without_valid_or_test
        )?;
        writeln!(f, "  items never in train: {}", self.items_not_in_train)?;
        write!(
            f,
            "  overlap (pairs in both; train ones are leaks): train/valid {}, train/test {}, valid/test {}",
            self.train_valid_overlap, self.train_test_overlap, self.valid_test_overlap
        )?;
        if let Some(dim) = self.profile_dim {
            write!(f, "\n  profiles: dimension {dim} (users and items)")?;
        }
        Ok(())
    }
}

/// Dimension of the hidden per-user / per-item taste vectors of the synthetic generator;
/// they personalise choices within a cluster so that a model can beat cluster popularity.
const LATENT_DIM: usize = 8;

/// The synthetic dataset and its planted clusters (kept for tests and diagnostics).
struct Synthetic {
    dataset: Dataset,
    #[cfg_attr(not(test), allow(dead_code))]
    user_cluster: Vec<usize>,
    #[cfg_attr(not(test), allow(dead_code))]
    item_cluster: Vec<usize>,
}

fn check_synthetic(s: &SyntheticConfig) -> Result<(), DataError> {
    let bad = |key: &str, reason: String| {
        Err(DataError::Config {
            key: format!("data.synthetic.{key}"),
            reason,
        })
    };
    if s.n_users == 0 {
        return bad("n_users", "is 0; must be at least 1".into());
    }
    if s.n_items < 5 {
        return bad(
            "n_items",
            format!(
                "is {}; must be at least 5 (every user gets at least 5 items)",
                s.n_items
            ),
        );
    }
    if s.n_clusters == 0 || s.n_clusters > s.n_items {
        return bad(
            "n_clusters",
            format!(
                "is {}; must be between 1 and n_items ({})",
                s.n_clusters, s.n_items
            ),
        );
    }
    if s.profile_dim == 0 {
        return bad("profile_dim", "is 0; must be at least 1".into());
    }
    for (key, v) in [
        ("affinity", s.affinity),
        ("profile_signal", s.profile_signal),
    ] {
        if !(0.0..=1.0).contains(&v) {
            return bad(key, format!("is {v}; must be between 0 and 1"));
        }
    }
    Ok(())
}

/// A standard normal draw (Box–Muller); rand 0.8 has no normal distribution without
/// the extra rand_distr crate.
fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = 1.0 - rng.gen::<f64>(); // (0, 1]: ln stays finite
    let u2: f64 = rng.gen();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Assigns `n` members to `k` clusters as evenly as possible, in random order, so that no
/// cluster is empty when `n >= k`.
fn balanced_clusters(n: usize, k: usize, rng: &mut ChaCha8Rng) -> Vec<usize> {
    let mut c: Vec<usize> = (0..n).map(|i| i % k).collect();
    c.shuffle(rng);
    c
}

fn generate(s: &SyntheticConfig) -> Result<Synthetic, DataError> {
    check_synthetic(s)?;
    let mut rng = ChaCha8Rng::seed_from_u64(s.seed);
    let (n_users, n_items, k) = (s.n_users, s.n_items, s.n_clusters);
    let user_cluster = balanced_clusters(n_users, k, &mut rng);
    let item_cluster = balanced_clusters(n_items, k, &mut rng);
    let mut cluster_items: Vec<Vec<u32>> = vec![Vec::new(); k];
    for (i, &c) in item_cluster.iter().enumerate() {
        cluster_items[c].push(i as u32);
    }
    let user_latent: Vec<f64> = (0..n_users * LATENT_DIM)
        .map(|_| normal(&mut rng))
        .collect();
    let item_latent: Vec<f64> = (0..n_items * LATENT_DIM)
        .map(|_| normal(&mut rng))
        .collect();
    let latent_scale = 1.0 / (LATENT_DIM as f64).sqrt();

    let (mut train, mut valid, mut test) = (Vec::new(), Vec::new(), Vec::new());
    for u in 0..n_users {
        // Log-normal spread around the mean (mean-preserving: E[exp(σz - σ²/2)] = 1).
        let factor = (0.5 * normal(&mut rng) - 0.125).exp();
        let n = ((s.mean_interactions as f64 * factor).round() as usize).clamp(5, n_items);
        let own = &cluster_items[user_cluster[u]];
        let n_own = ((s.affinity * n as f64).round() as usize).min(own.len());

        // Own-cluster items, weighted by taste affinity, without replacement
        // (Efraimidis–Spirakis: key = ln(r) / w, keep the largest keys).
        let lu = &user_latent[u * LATENT_DIM..(u + 1) * LATENT_DIM];
        let mut keyed: Vec<(f64, u32)> = own
            .iter()
            .map(|&i| {
                let li = &item_latent[i as usize * LATENT_DIM..(i as usize + 1) * LATENT_DIM];
                let dot: f64 = lu.iter().zip(li).map(|(a, b)| a * b).sum();
                let r: f64 = 1.0 - rng.gen::<f64>();
                (r.ln() / (dot * latent_scale).exp(), i)
            })
            .collect();
        keyed.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let mut items: Vec<u32> = keyed.iter().take(n_own).map(|&(_, i)| i).collect();
        let mut chosen: HashSet<u32> = items.iter().copied().collect();
        // The rest uniformly over all items; n <= n_items, so this terminates.
        while items.len() < n {
            let i = rng.gen_range(0..n_items as u32);
            if chosen.insert(i) {
                items.push(i);
            }
        }

        // 3:1:1 per user, as the published splits: every user has each split.
        items.shuffle(&mut rng);
        let n_held = ((0.2 * n as f64).round() as usize).max(1);
        let u32_user = u as u32;
        let push = |dst: &mut Pairs, part: &[u32]| {
            let mut part = part.to_vec();
            part.sort_unstable();
            dst.extend(part.into_iter().map(|i| (u32_user, i)));
        };
        push(&mut valid, &items[..n_held]);
        push(&mut test, &items[n_held..2 * n_held]);
        push(&mut train, &items[2 * n_held..]);
    }

    // Profiles draw from their own stream, so changing profile_dim or profile_signal
    // leaves the interactions identical (a fair with/without-signal comparison).
    let mut prng = ChaCha8Rng::seed_from_u64(s.seed);
    prng.set_stream(1);
    let dim = s.profile_dim;
    // One centre per cluster, shared by users and items (a common basis, so user–item
    // cosine carries the signal), scaled to squared norm `dim`: per-coordinate variance 1.
    let mut centres: Vec<f64> = (0..k * dim).map(|_| normal(&mut prng)).collect();
    for c in centres.chunks_mut(dim) {
        let norm = c
            .iter()
            .map(|x| x * x)
            .sum::<f64>()
            .sqrt()
            .max(f64::MIN_POSITIVE);
        let scale = (dim as f64).sqrt() / norm;
        c.iter_mut().for_each(|x| *x *= scale);
    }
    let (signal, noise) = (s.profile_signal.sqrt(), (1.0 - s.profile_signal).sqrt());
    let mut embed = |clusters: &[usize]| -> Vec<f32> {
        let mut out = Vec::with_capacity(clusters.len() * dim);
        for &c in clusters {
            for d in 0..dim {
                out.push((signal * centres[c * dim + d] + noise * normal(&mut prng)) as f32);
            }
        }
        out
    };
    let users = embed(&user_cluster);
    let items = embed(&item_cluster);

    Ok(Synthetic {
        dataset: Dataset {
            name: "synthetic".into(),
            dir: None,
            n_users,
            n_items,
            train,
            valid,
            test,
            profiles: Some(Profiles { dim, users, items }),
        },
        user_cluster,
        item_cluster,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ProfilesConfig;
    use std::fs;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        fs::write(&p, text).unwrap();
        p
    }

    fn files_cfg(dir: &Path) -> DataConfig {
        DataConfig {
            path: dir.to_path_buf(),
            ..DataConfig::default()
        }
    }

    fn err_of(
        text: &str,
        n_users: Option<usize>,
        n_items: Option<usize>,
        policy: DuplicatePolicy,
    ) -> String {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "split.tsv", text);
        read_pairs(&p, n_users, n_items, policy)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn reads_tabs_commas_bom_crlf_and_blank_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "t.tsv",
            "\u{feff}0\t1\n\n1,2\r\n2\t3\n  \n007,4\n\n",
        );
        let pairs = read_pairs(&p, None, None, DuplicatePolicy::Error).unwrap();
        assert_eq!(pairs, vec![(0, 1), (1, 2), (2, 3), (7, 4)]);
    }

    #[test]
    fn extra_columns_are_errors_unless_data_columns_names_them() {
        let text = "0\t1\n2\t3\t5.0\t881250949\n";
        let msg = err_of(text, None, None, DuplicatePolicy::Error);
        assert!(
            msg.contains("split.tsv:2:")
                && msg.contains("4 fields, expected 2 (user, item)")
                && msg.contains("data.columns")
                && msg.contains("881250949"),
            "{msg}"
        );
        // Named columns: the others are not looked at, whatever they hold.
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "wide.tsv", "x\t1\t0\t4.5\ny\t3\t2\t\n");
        let s = read_split(&p, None, None, DuplicatePolicy::Error, Some([2, 1])).unwrap();
        assert_eq!(s.pairs, vec![(0, 1), (2, 3)]);
        let p = write(dir.path(), "short.tsv", "x\t1\t0\n9\t1\n");
        let msg = read_split(&p, None, None, DuplicatePolicy::Error, Some([2, 1]))
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("short.tsv:2:") && msg.contains("needs at least 3"),
            "{msg}"
        );
        // Through the config, checked there too.
        write(dir.path(), "train.tsv", "a,0,0\nb,1,1\n");
        write(dir.path(), "valid.tsv", "c,0,1\n");
        write(dir.path(), "test.tsv", "d,1,0\n");
        let cfg = DataConfig {
            columns: vec![1, 2],
            ..files_cfg(dir.path())
        };
        assert_eq!(load_dataset(&cfg).unwrap().train, vec![(0, 0), (1, 1)]);
        for columns in [vec![1], vec![1, 1], vec![0, 1, 2]] {
            let cfg = DataConfig {
                columns,
                ..files_cfg(dir.path())
            };
            let msg = load_dataset(&cfg).unwrap_err().to_string();
            assert!(msg.contains("data.columns"), "{msg}");
        }
    }

    #[test]
    fn ids_are_plain_decimal_digits() {
        let cases = [
            ("0\t1\n+5\t1\n", "`+5` has a sign"),
            ("0\t1\n 5\t1\n", "` 5` has spaces"),
            ("0\t1\n5 \t1\n", "has spaces"),
            ("0\t1\n5\t 1\n", "has spaces"),
            ("0\t1\n0x5\t1\n", "`0x5` is hexadecimal"),
            ("0\t1\n5.0\t1\n", "`5.0` is not an integer"),
            ("0\t1\n1e3\t1\n", "`1e3` is not an integer"),
            ("0\t1\n\u{665}\t1\n", "non-ASCII digits"),
            ("0\t1\n5\t\u{ff11}\n", "non-ASCII digits"),
            ("0\t1\n-0\t1\n", "negative"),
            ("0\t1\n1\t2,3\n", "mixes tab and comma"),
            ("0\t1\n1,2\t3\n", "mixes tab and comma"),
            ("0\t1\n1,2,3\n", "3 fields, expected 2"),
            ("0\t1\n\t\n", "the user id is empty"),
            ("0\t1\n1\t4294967296\n", "too large"),
        ];
        for (text, needle) in cases {
            let msg = err_of(text, None, None, DuplicatePolicy::Error);
            assert!(msg.contains("split.tsv:2:"), "{text:?}: {msg}");
            assert!(msg.contains(needle), "{text:?}: {msg}");
        }
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "max.tsv", "4294967295\t0\n");
        let pairs = read_pairs(&p, None, None, DuplicatePolicy::Error).unwrap();
        assert_eq!(pairs, vec![(u32::MAX, 0)]);
    }

    #[test]
    fn a_split_path_that_is_not_a_file_says_so() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "train.tsv", "0\t1\n");
        write(dir.path(), "test.tsv", "0\t1\n");
        fs::create_dir(dir.path().join("valid.tsv")).unwrap();
        let err = load_dataset(&files_cfg(dir.path())).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, DataError::NotAFile { .. }), "{msg}");
        assert!(
            msg.contains("valid.tsv is a directory, not a file"),
            "{msg}"
        );
        let err = read_pairs(
            &dir.path().join("valid.tsv"),
            None,
            None,
            DuplicatePolicy::Error,
        )
        .unwrap_err();
        assert!(matches!(err, DataError::NotAFile { .. }), "{err}");
        // A FIFO is never opened (opening one would block until a writer comes).
        fs::remove_dir(dir.path().join("valid.tsv")).unwrap();
        let fifo = dir.path().join("valid.tsv");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if made.is_ok_and(|s| s.success()) {
            let msg = load_dataset(&files_cfg(dir.path()))
                .unwrap_err()
                .to_string();
            assert!(
                msg.contains("valid.tsv is not a regular file (a FIFO)"),
                "{msg}"
            );
        }
        #[cfg(unix)]
        {
            let msg = read_pairs(Path::new("/dev/null"), None, None, DuplicatePolicy::Error)
                .unwrap_err()
                .to_string();
            assert!(msg.contains("not a regular file (a device)"), "{msg}");
        }
    }

    #[test]
    fn absurd_declared_counts_are_refused_before_allocation() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "train.tsv", "0\t0\n1\t1\n");
        write(dir.path(), "valid.tsv", "1\t0\n");
        write(dir.path(), "test.tsv", "0\t1\n");
        for (n_users, n_items, key) in [
            (1_000_000_000_000, 0, "data.n_users"),
            (0, usize::MAX, "data.n_items"),
            (1257, 2, "data.n_users"),
        ] {
            let cfg = DataConfig {
                n_users,
                n_items,
                ..files_cfg(dir.path())
            };
            let err = load_dataset(&cfg).unwrap_err();
            let msg = err.to_string();
            assert!(matches!(err, DataError::AbsurdCount { .. }), "{msg}");
            assert!(
                msg.contains(&format!("`{key}`")) && msg.contains("limit of 1256"),
                "{msg}"
            );
        }
        // At the limit: accepted (users without data are a warning, not an error).
        let cfg = DataConfig {
            n_users: 1256,
            ..files_cfg(dir.path())
        };
        assert_eq!(load_dataset(&cfg).unwrap().n_users, 1256);
    }

    #[test]
    fn malformed_lines_name_file_line_and_text() {
        let cases = [
            ("0\t1\n0 1\n", "spaces"),
            ("0\t1\n7\n", "one field"),
            ("0\t1\nabc\t1\n", "`abc`"),
            ("0\t1\n-3\t1\n", "negative"),
            ("0\t1\n1\t99999999999\n", "too large"),
            ("0\t1\n1\t\n", "empty"),
            ("0\t1\n1\t2.5\n", "`2.5`"),
        ];
        for (text, needle) in cases {
            let msg = err_of(text, None, None, DuplicatePolicy::Error);
            assert!(msg.contains("split.tsv:2:"), "{text:?}: {msg}");
            assert!(msg.contains(needle), "{text:?}: {msg}");
        }
    }

    #[test]
    fn invalid_utf8_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bin.tsv");
        fs::write(&p, b"0\t1\n\xff\xfe\t1\n").unwrap();
        let msg = read_pairs(&p, None, None, DuplicatePolicy::Error)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("bin.tsv:2:") && msg.contains("UTF-8"), "{msg}");
    }

    #[test]
    fn id_out_of_declared_range() {
        let msg = err_of("0\t1\n5\t1\n", Some(5), None, DuplicatePolicy::Error);
        assert!(
            msg.contains("split.tsv:2:") && msg.contains("user id 5") && msg.contains("= 5"),
            "{msg}"
        );
        let msg = err_of("0\t1\n\n4\t10\n", Some(5), Some(10), DuplicatePolicy::Error);
        assert!(
            msg.contains("split.tsv:3:") && msg.contains("item id 10") && msg.contains("= 10"),
            "{msg}"
        );
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "ok.tsv", "4\t9\n");
        assert!(read_pairs(&p, Some(5), Some(10), DuplicatePolicy::Error).is_ok());
    }

    #[test]
    fn empty_split_is_an_error() {
        for text in ["", "\n\n  \n"] {
            let msg = err_of(text, None, None, DuplicatePolicy::Error);
            assert!(
                msg.contains("split.tsv") && msg.contains("no interactions"),
                "{msg}"
            );
        }
    }

    #[test]
    fn duplicate_pairs_error_or_drop() {
        let text = "0\t1\n1\t1\n0,1\n2\t2\n1\t1\n";
        let msg = err_of(text, None, None, DuplicatePolicy::Error);
        assert!(
            msg.contains("split.tsv:3:") && msg.contains("first at line 1"),
            "{msg}"
        );
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "d.tsv", text);
        let pairs = read_pairs(&p, None, None, DuplicatePolicy::Drop).unwrap();
        assert_eq!(pairs, vec![(0, 1), (1, 1), (2, 2)]);
    }

    #[test]
    fn missing_file_and_folder() {
        let dir = tempfile::tempdir().unwrap();
        let err = read_pairs(
            &dir.path().join("nope.tsv"),
            None,
            None,
            DuplicatePolicy::Error,
        )
        .unwrap_err();
        assert!(
            matches!(err, DataError::MissingFile { .. }) && err.to_string().contains("nope.tsv")
        );

        write(dir.path(), "train.tsv", "0\t1\n");
        write(dir.path(), "test.tsv", "0\t2\n");
        let err = load_dataset(&files_cfg(dir.path())).unwrap_err();
        assert!(err.to_string().contains("valid.tsv"), "{err}");

        let err = load_dataset(&files_cfg(&dir.path().join("absent"))).unwrap_err();
        assert!(
            matches!(err, DataError::MissingDir { .. }) && err.to_string().contains("absent"),
            "{err}"
        );

        let err = load_dataset(&DataConfig::default()).unwrap_err();
        assert!(err.to_string().contains("data.path"), "{err}");
    }

    #[test]
    fn counts_are_inferred_over_all_splits_or_declared() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "train.tsv", "0\t0\n1\t1\n");
        write(dir.path(), "valid.tsv", "2\t1\n");
        write(dir.path(), "test.tsv", "1\t6\n");
        let ds = load_dataset(&files_cfg(dir.path())).unwrap();
        assert_eq!((ds.n_users, ds.n_items), (3, 7));
        assert_eq!(ds.dir.as_deref(), Some(dir.path()));
        assert_eq!(ds.name, dir.path().file_name().unwrap().to_string_lossy());
        assert!(ds.profiles.is_none());

        let cfg = DataConfig {
            n_users: 10,
            n_items: 8,
            name: "tiny".into(),
            ..files_cfg(dir.path())
        };
        let ds = load_dataset(&cfg).unwrap();
        assert_eq!((ds.n_users, ds.n_items, ds.name.as_str()), (10, 8, "tiny"));

        let cfg = DataConfig {
            n_items: 6,
            ..files_cfg(dir.path())
        };
        let msg = load_dataset(&cfg).unwrap_err().to_string();
        assert!(
            msg.contains("test.tsv:1:") && msg.contains("item id 6"),
            "{msg}"
        );
    }

    #[test]
    fn absurd_inferred_count_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "train.tsv", "0\t0\n1\t1\n");
        write(dir.path(), "valid.tsv", "1\t1\n\n4000000000\t0\n");
        write(dir.path(), "test.tsv", "0\t1\n");
        let msg = load_dataset(&files_cfg(dir.path()))
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("valid.tsv:3:") && msg.contains("4000000000"),
            "{msg}"
        );
    }

    #[test]
    fn stats_count_gaps_and_leaks() {
        let ds = Dataset {
            name: "t".into(),
            dir: None,
            n_users: 4,
            n_items: 5,
            train: vec![(0, 0), (0, 1), (1, 1), (2, 2), (2, 3), (2, 0)],
            valid: vec![(0, 0), (1, 2)],
            test: vec![(1, 2), (0, 4)],
            profiles: None,
        };
        assert_eq!(train_counts(&ds), vec![2, 1, 3, 0]);
        let st = stats(&ds);
        assert_eq!((st.train_min, st.train_max), (0, 3));
        assert_eq!(
            (st.train_q1, st.train_median, st.train_q3),
            (0.75, 1.5, 2.25)
        );
        assert_eq!(st.users_without_train, 1);
        assert_eq!(
            (
                st.users_without_valid,
                st.users_without_test,
                st.users_without_valid_or_test
            ),
            (2, 2, 2)
        );
        assert_eq!(st.items_not_in_train, 1);
        assert_eq!(
            (
                st.train_valid_overlap,
                st.train_test_overlap,
                st.valid_test_overlap
            ),
            (1, 0, 1)
        );
        assert!((st.density - 10.0 / 20.0).abs() < 1e-12);
        let text = st.to_string();
        assert!(
            text.contains("4 users") && text.contains("train/valid 1"),
            "{text}"
        );
    }

    fn synth_cfg() -> SyntheticConfig {
        SyntheticConfig::default()
    }

    #[test]
    fn synthetic_is_deterministic_per_seed() {
        let a = generate(&synth_cfg()).unwrap().dataset;
        let b = generate(&synth_cfg()).unwrap().dataset;
        assert_eq!(a, b);
        let c = generate(&SyntheticConfig {
            seed: 8,
            ..synth_cfg()
        })
        .unwrap()
        .dataset;
        assert_ne!(a.train, c.train);
        // The profile stream is separate: the signal share does not move interactions.
        let d = generate(&SyntheticConfig {
            profile_signal: 0.0,
            profile_dim: 5,
            ..synth_cfg()
        })
        .unwrap()
        .dataset;
        assert_eq!((&a.train, &a.valid, &a.test), (&d.train, &d.valid, &d.test));
    }

    #[test]
    fn synthetic_split_invariants() {
        let cfg = synth_cfg();
        let ds = load_dataset(&DataConfig {
            kind: "synthetic".into(),
            ..DataConfig::default()
        })
        .unwrap();
        assert_eq!(
            (ds.name.as_str(), ds.n_users, ds.n_items),
            ("synthetic", cfg.n_users, cfg.n_items)
        );
        let mut per_user: Vec<[usize; 3]> = vec![[0; 3]; ds.n_users];
        let mut all = HashSet::new();
        for (s, split) in [&ds.train, &ds.valid, &ds.test].into_iter().enumerate() {
            for &(u, i) in split {
                assert!((u as usize) < ds.n_users && (i as usize) < ds.n_items);
                assert!(all.insert((u, i)), "duplicate pair ({u}, {i})");
                per_user[u as usize][s] += 1;
            }
        }
        for [tr, va, te] in &per_user {
            let n = tr + va + te;
            assert!(n >= 5);
            let held = ((0.2 * n as f64).round() as usize).max(1);
            assert_eq!((*va, *te, *tr), (held, held, n - 2 * held));
        }
        let mean = all.len() as f64 / ds.n_users as f64;
        assert!(
            (mean - cfg.mean_interactions as f64).abs() < 4.0,
            "mean interactions {mean}"
        );
        let st = stats(&ds);
        assert_eq!(
            (
                st.users_without_train,
                st.users_without_valid,
                st.users_without_test
            ),
            (0, 0, 0)
        );

        // The share of own-cluster interactions tracks `affinity` (plus the uniform part's
        // chance hits, 1/n_clusters of the rest).
        let syn = generate(&cfg).unwrap();
        let own = [&ds.train, &ds.valid, &ds.test]
            .into_iter()
            .flatten()
            .filter(|&&(u, i)| syn.user_cluster[u as usize] == syn.item_cluster[i as usize])
            .count() as f64
            / all.len() as f64;
        let expect = cfg.affinity + (1.0 - cfg.affinity) / cfg.n_clusters as f64;
        assert!(
            (own - expect).abs() < 0.05,
            "own-cluster share {own}, expected ~{expect}"
        );
    }

    /// Mean cosine of each user's profile to items of its own cluster minus to the others.
    fn cluster_cosine_gap(signal: f64) -> f64 {
        let syn = generate(&SyntheticConfig {
            profile_signal: signal,
            ..synth_cfg()
        })
        .unwrap();
        let p = syn.dataset.profiles.as_ref().unwrap();
        let unit = |v: &[f32]| {
            let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.iter().map(|x| x / n).collect::<Vec<f32>>()
        };
        let users: Vec<Vec<f32>> = p.users.chunks(p.dim).map(unit).collect();
        let items: Vec<Vec<f32>> = p.items.chunks(p.dim).map(unit).collect();
        let (mut own, mut own_n, mut other, mut other_n) = (0.0f64, 0usize, 0.0f64, 0usize);
        for (u, uv) in users.iter().enumerate() {
            for (i, iv) in items.iter().enumerate() {
                let cos: f32 = uv.iter().zip(iv).map(|(a, b)| a * b).sum();
                if syn.user_cluster[u] == syn.item_cluster[i] {
                    own += f64::from(cos);
                    own_n += 1;
                } else {
                    other += f64::from(cos);
                    other_n += 1;
                }
            }
        }
        own / own_n as f64 - other / other_n as f64
    }

    #[test]
    fn synthetic_profiles_carry_the_requested_signal() {
        let strong = cluster_cosine_gap(0.7);
        assert!(strong > 0.5, "gap at signal 0.7: {strong}");
        let none = cluster_cosine_gap(0.0);
        assert!(none.abs() < 0.03, "gap at signal 0: {none}");
        let syn = generate(&synth_cfg()).unwrap();
        let p = syn.dataset.profiles.unwrap();
        assert_eq!((p.users.len(), p.items.len()), (600 * 32, 400 * 32));
    }

    #[test]
    fn synthetic_rejects_bad_settings() {
        for s in [
            SyntheticConfig {
                n_items: 4,
                ..synth_cfg()
            },
            SyntheticConfig {
                n_clusters: 0,
                ..synth_cfg()
            },
            SyntheticConfig {
                n_users: 0,
                ..synth_cfg()
            },
            SyntheticConfig {
                profile_dim: 0,
                ..synth_cfg()
            },
            SyntheticConfig {
                affinity: f64::NAN,
                ..synth_cfg()
            },
        ] {
            let cfg = DataConfig {
                kind: "synthetic".into(),
                synthetic: s,
                ..DataConfig::default()
            };
            let err = load_dataset(&cfg).unwrap_err();
            assert!(err.to_string().contains("data.synthetic."), "{err}");
        }
        // Tiny but legal: every user still gets each split.
        let s = SyntheticConfig {
            n_users: 3,
            n_items: 5,
            n_clusters: 5,
            mean_interactions: 0,
            ..synth_cfg()
        };
        let ds = generate(&s).unwrap().dataset;
        assert_eq!((ds.train.len(), ds.valid.len(), ds.test.len()), (9, 3, 3));
        let cfg = DataConfig {
            kind: "synthetic".into(),
            n_users: 5,
            ..DataConfig::default()
        };
        assert!(load_dataset(&cfg)
            .unwrap_err()
            .to_string()
            .contains("data.n_users"));
    }

    /// Where the host tests (and CI) find the published datasets, from this crate.
    const SHARED_DATA: &str = "../../shared/data";

    #[test]
    fn a_relative_path_resolves_against_the_root() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("tiny");
        fs::create_dir(&dir).unwrap();
        let cfg = tiny_with_profiles(&dir);
        ndarray_npy::write_npy(dir.join("u.npy"), &grid(3, 4)).unwrap();
        ndarray_npy::write_npy(dir.join("i.npy"), &grid(4, 4)).unwrap();
        let rooted = DataConfig {
            root: root.path().to_path_buf(),
            path: "tiny".into(),
            ..cfg.clone()
        };
        let ds = load_dataset(&rooted).unwrap();
        assert_eq!(ds.dir.as_deref(), Some(dir.as_path()));
        assert_eq!(ds.name, "tiny");
        assert_eq!(
            ds,
            load_dataset(&cfg).unwrap(),
            "profiles resolve in the same folder"
        );
        let msg = load_dataset(&DataConfig {
            path: "gone".into(),
            ..rooted
        })
        .unwrap_err()
        .to_string();
        assert!(
            msg.contains(&root.path().join("gone").display().to_string()),
            "{msg}"
        );
    }

    fn amazon_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(SHARED_DATA)
            .join("amazon")
    }

    #[test]
    fn real_amazon_matches_its_readme() {
        let dir = amazon_dir();
        if !dir.is_dir() {
            eprintln!("skipped: {} not present", dir.display());
            return;
        }
        let ds = load_dataset(&files_cfg(&dir)).unwrap();
        assert_eq!(ds.name, "amazon");
        assert_eq!((ds.n_users, ds.n_items), (11_000, 9_332));
        assert_eq!(
            (ds.train.len(), ds.valid.len(), ds.test.len()),
            (120_464, 40_290, 40_106)
        );
        let st = stats(&ds);
        assert_eq!(
            (st.train_q1, st.train_median, st.train_q3),
            (5.0, 7.0, 11.0)
        );
        assert!(st.train_min >= 1);
        assert_eq!(st.users_without_train, 0);
        assert_eq!(
            (
                st.users_without_valid,
                st.users_without_test,
                st.users_without_valid_or_test
            ),
            (1_143, 1_140, 148)
        );
        assert_eq!(st.items_not_in_train, 0);
        assert_eq!(
            (
                st.train_valid_overlap,
                st.train_test_overlap,
                st.valid_test_overlap
            ),
            (0, 0, 0)
        );
        assert!((st.density - 0.001957).abs() < 5e-7, "{}", st.density);

        // Declared counts equal to the README's are accepted.
        let cfg = DataConfig {
            n_users: 11_000,
            n_items: 9_332,
            ..files_cfg(&dir)
        };
        assert_eq!(load_dataset(&cfg).unwrap().n_items, 9_332);
        // ProMax's shipped augmented set, read as the model reads a graph view.
        let aug = read_pairs(
            &dir.join("augmented.tsv"),
            Some(11_000),
            Some(9_332),
            DuplicatePolicy::Error,
        )
        .unwrap();
        assert!(aug.len() > 120_464, "{}", aug.len());
    }

    // ---- profiles ----

    fn ml100k_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(SHARED_DATA)
            .join("ml100k")
    }

    /// A tiny dataset folder (3 users, 4 items) plus profile files written with ndarray-npy.
    fn tiny_with_profiles(dir: &Path) -> DataConfig {
        write(dir, "train.tsv", "0\t0\n1\t1\n2\t2\n");
        write(dir, "valid.tsv", "0\t1\n");
        write(dir, "test.tsv", "2\t3\n");
        DataConfig {
            n_users: 3,
            n_items: 4,
            profiles: ProfilesConfig {
                users: "u.npy".into(),
                items: "i.npy".into(),
                ..ProfilesConfig::default()
            },
            ..files_cfg(dir)
        }
    }

    fn grid(rows: usize, cols: usize) -> ndarray::Array2<f32> {
        ndarray::Array2::from_shape_fn((rows, cols), |(r, c)| (r * 10 + c) as f32)
    }

    fn profile_err(dir: &Path, users: &dyn Fn(&Path), items: &dyn Fn(&Path)) -> DataError {
        let cfg = tiny_with_profiles(dir);
        users(&dir.join("u.npy"));
        items(&dir.join("i.npy"));
        load_dataset(&cfg).unwrap_err()
    }

    #[test]
    fn profiles_load_from_npy_relative_to_the_dataset_folder() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = tiny_with_profiles(dir.path());
        ndarray_npy::write_npy(dir.path().join("u.npy"), &grid(3, 5)).unwrap();
        // Fortran order reads back in logical (row-major) order.
        let f = grid(4, 5)
            .reversed_axes()
            .as_standard_layout()
            .reversed_axes()
            .to_owned();
        assert!(!f.is_standard_layout());
        ndarray_npy::write_npy(dir.path().join("i.npy"), &f).unwrap();
        let ds = load_dataset(&cfg).unwrap();
        let p = ds.profiles.as_ref().unwrap();
        assert_eq!(p.dim, 5);
        assert_eq!(p.users, grid(3, 5).into_raw_vec_and_offset().0);
        assert_eq!(p.items, grid(4, 5).into_raw_vec_and_offset().0);
        assert!(stats(&ds).to_string().contains("profiles: dimension 5"));

        // An absolute path is taken as is.
        let abs = DataConfig {
            profiles: ProfilesConfig {
                users: dir.path().join("u.npy"),
                items: dir.path().join("i.npy"),
                ..ProfilesConfig::default()
            },
            ..cfg.clone()
        };
        assert_eq!(load_dataset(&abs).unwrap().profiles, ds.profiles);
        // No profiles configured: none, and no stats line.
        let none = DataConfig {
            profiles: ProfilesConfig::default(),
            ..cfg
        };
        let ds = load_dataset(&none).unwrap();
        assert!(ds.profiles.is_none());
        assert!(!stats(&ds).to_string().contains("profiles"));
    }

    #[test]
    fn bad_profile_files_are_named_with_the_reason() {
        let ok_users = |p: &Path| ndarray_npy::write_npy(p, &grid(3, 4)).unwrap();
        let ok_items = |p: &Path| ndarray_npy::write_npy(p, &grid(4, 4)).unwrap();

        // Wrong row count: both counts said.
        let dir = tempfile::tempdir().unwrap();
        let err = profile_err(
            dir.path(),
            &|p| ndarray_npy::write_npy(p, &grid(2, 4)).unwrap(),
            &ok_items,
        );
        let msg = err.to_string();
        assert!(matches!(err, DataError::BadProfiles { .. }), "{msg}");
        assert!(
            msg.contains("u.npy") && msg.contains("2 rows") && msg.contains("3 users"),
            "{msg}"
        );
        let dir = tempfile::tempdir().unwrap();
        let msg = profile_err(dir.path(), &ok_users, &|p| {
            ndarray_npy::write_npy(p, &grid(5, 4)).unwrap()
        })
        .to_string();
        assert!(
            msg.contains("i.npy") && msg.contains("5 rows") && msg.contains("4 items"),
            "{msg}"
        );

        // NaN and infinity: file, 0-based row and column.
        let dir = tempfile::tempdir().unwrap();
        let msg = profile_err(dir.path(), &ok_users, &|p| {
            let mut a = grid(4, 4);
            a[[2, 1]] = f32::NAN;
            ndarray_npy::write_npy(p, &a).unwrap()
        })
        .to_string();
        assert!(
            msg.contains("i.npy") && msg.contains("row 2, column 1") && msg.contains("NaN"),
            "{msg}"
        );
        let dir = tempfile::tempdir().unwrap();
        let msg = profile_err(
            dir.path(),
            &|p| {
                let mut a = grid(3, 4);
                a[[1, 3]] = f32::NEG_INFINITY;
                ndarray_npy::write_npy(p, &a).unwrap()
            },
            &ok_items,
        )
        .to_string();
        assert!(
            msg.contains("u.npy") && msg.contains("row 1, column 3") && msg.contains("inf"),
            "{msg}"
        );

        // A 1-D array: its shape said.
        let dir = tempfile::tempdir().unwrap();
        let msg = profile_err(
            dir.path(),
            &|p| ndarray_npy::write_npy(p, &ndarray::Array1::<f32>::zeros(12)).unwrap(),
            &ok_items,
        )
        .to_string();
        assert!(
            msg.contains("u.npy") && msg.contains("1-D") && msg.contains("(12,)"),
            "{msg}"
        );

        // float64: the dtype said.
        let dir = tempfile::tempdir().unwrap();
        let msg = profile_err(dir.path(), &ok_users, &|p| {
            ndarray_npy::write_npy(p, &grid(4, 4).mapv(f64::from)).unwrap()
        })
        .to_string();
        assert!(
            msg.contains("i.npy") && msg.contains("float64") && msg.contains("'<f8'"),
            "{msg}"
        );

        // The two dimensions differ: both files named.
        let dir = tempfile::tempdir().unwrap();
        let msg = profile_err(dir.path(), &ok_users, &|p| {
            ndarray_npy::write_npy(p, &grid(4, 6)).unwrap()
        })
        .to_string();
        assert!(
            msg.contains("i.npy")
                && msg.contains("u.npy")
                && msg.contains("dimension 6")
                && msg.contains("dimension 4"),
            "{msg}"
        );

        // Missing file, and a file that is not .npy at all.
        let dir = tempfile::tempdir().unwrap();
        let err = profile_err(dir.path(), &ok_users, &|_| {});
        let msg = err.to_string();
        assert!(matches!(err, DataError::MissingProfiles { .. }), "{msg}");
        assert!(
            msg.contains("i.npy") && msg.contains("data.profiles.items"),
            "{msg}"
        );
        let dir = tempfile::tempdir().unwrap();
        let msg = profile_err(
            dir.path(),
            &|p| fs::write(p, "0.1\t0.2\n").map(drop).unwrap(),
            &ok_items,
        )
        .to_string();
        assert!(
            msg.contains("u.npy") && msg.contains("not a .npy file"),
            "{msg}"
        );
    }

    /// An `.npy` file of exactly 128 bytes whose header claims `shape`.
    fn npy_claiming(shape: &str) -> Vec<u8> {
        let dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
        let mut v = b"\x93NUMPY\x01\x00".to_vec();
        let len = 128 - 10;
        v.extend((len as u16).to_le_bytes());
        v.extend(format!("{dict:<width$}", width = len - 1).into_bytes());
        v.push(b'\n');
        v
    }

    #[test]
    fn npy_headers_are_checked_against_the_file_size_before_allocation() {
        let ok_items = |p: &Path| ndarray_npy::write_npy(p, &grid(4, 4)).unwrap();
        // 10^12 × 10^6 float32 = 4 * 10^18 bytes claimed by a 128-byte file.
        let dir = tempfile::tempdir().unwrap();
        let msg = profile_err(
            dir.path(),
            &|p| fs::write(p, npy_claiming("(1000000000000, 1000000)")).unwrap(),
            &ok_items,
        )
        .to_string();
        assert!(
            msg.contains("u.npy")
                && msg.contains("(1000000000000, 1000000)")
                && msg.contains("4000000000000000000 bytes")
                && msg.contains("only 128 bytes"),
            "{msg}"
        );
        // rows × cols × 4 overflows u64.
        let dir = tempfile::tempdir().unwrap();
        let msg = profile_err(
            dir.path(),
            &|p| {
                fs::write(
                    p,
                    npy_claiming("(18446744073709551615, 18446744073709551615)"),
                )
                .unwrap()
            },
            &ok_items,
        )
        .to_string();
        assert!(msg.contains("more than 2^64 bytes"), "{msg}");
        // Truncated and padded files.
        let dir = tempfile::tempdir().unwrap();
        let msg = profile_err(
            dir.path(),
            &|p| {
                ndarray_npy::write_npy(p, &grid(3, 4)).unwrap();
                let b = fs::read(p).unwrap();
                fs::write(p, &b[..b.len() - 5]).unwrap();
            },
            &ok_items,
        )
        .to_string();
        assert!(msg.contains("u.npy") && msg.contains("truncated"), "{msg}");
        let dir = tempfile::tempdir().unwrap();
        let msg = profile_err(
            dir.path(),
            &|p| {
                ndarray_npy::write_npy(p, &grid(3, 4)).unwrap();
                let mut b = fs::read(p).unwrap();
                b.extend([0u8; 7]);
                fs::write(p, b).unwrap();
            },
            &ok_items,
        )
        .to_string();
        assert!(msg.contains("7 bytes after the array"), "{msg}");
        // The header alone gives the row count (what `promax augment` needs first).
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.npy");
        ndarray_npy::write_npy(&p, &grid(7, 3)).unwrap();
        assert_eq!(
            profile_table_rows(&p, "data.profiles.users", "user").unwrap(),
            7
        );
        fs::write(&p, npy_claiming("(1000000000000, 1000000)")).unwrap();
        assert!(profile_table_rows(&p, "data.profiles.users", "user").is_err());
    }

    #[test]
    fn degenerate_profile_rows_are_named() {
        let ok_items = |p: &Path| ndarray_npy::write_npy(p, &grid(4, 4)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let msg = profile_err(
            dir.path(),
            &|p| {
                let mut a = grid(3, 4);
                a.row_mut(0).fill(0.0);
                a.row_mut(2).fill(-0.0);
                ndarray_npy::write_npy(p, &a).unwrap()
            },
            &ok_items,
        )
        .to_string();
        assert!(
            msg.contains("u.npy") && msg.contains("2 row(s) are all zeros") && msg.contains("0, 2"),
            "{msg}"
        );
        let dir = tempfile::tempdir().unwrap();
        let msg = profile_err(
            dir.path(),
            &|p| ndarray_npy::write_npy(p, &grid(3, 4)).unwrap(),
            &|p| {
                let mut a = grid(4, 4);
                a.row_mut(3).fill(0.25);
                ndarray_npy::write_npy(p, &a).unwrap()
            },
        )
        .to_string();
        assert!(
            msg.contains("i.npy")
                && msg.contains("1 row(s) hold one value")
                && msg.contains(": 3)"),
            "{msg}"
        );
        let dir = tempfile::tempdir().unwrap();
        let msg = profile_err(
            dir.path(),
            &|p| {
                let a = ndarray::Array2::from_shape_fn((3, 4), |(_, c)| c as f32 + 1.0);
                ndarray_npy::write_npy(p, &a).unwrap()
            },
            &ok_items,
        )
        .to_string();
        assert!(msg.contains("all 3 rows are identical"), "{msg}");
        // One column: rows are single numbers, and differing ones are fine.
        assert_eq!(degenerate_rows(&[1.0, 2.0, 3.0], 1, "user"), None);
        assert!(degenerate_rows(&[1.0, 1.0], 1, "user").is_some());
    }

    #[test]
    fn a_profile_path_that_is_not_a_file_says_so() {
        let ok_items = |p: &Path| ndarray_npy::write_npy(p, &grid(4, 4)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let msg = profile_err(dir.path(), &|p| fs::create_dir(p).unwrap(), &ok_items).to_string();
        assert!(
            msg.contains("u.npy") && msg.contains("is a folder"),
            "{msg}"
        );
        let dir = tempfile::tempdir().unwrap();
        let made = std::cell::Cell::new(false);
        let err = profile_err(
            dir.path(),
            &|p| {
                let s = std::process::Command::new("mkfifo").arg(p).status();
                made.set(s.is_ok_and(|s| s.success()));
            },
            &ok_items,
        );
        if made.get() {
            let msg = err.to_string();
            assert!(msg.contains("u.npy") && msg.contains("(a FIFO)"), "{msg}");
        }
    }

    #[test]
    fn profile_settings_conflict_or_come_in_pairs() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = tiny_with_profiles(dir.path());
        let both = DataConfig {
            profiles: ProfilesConfig {
                random_dim: 8,
                ..cfg.profiles.clone()
            },
            ..cfg.clone()
        };
        let msg = load_dataset(&both).unwrap_err().to_string();
        assert!(
            msg.contains("data.profiles.random_dim") && msg.contains("data.profiles.users"),
            "{msg}"
        );
        let half = DataConfig {
            profiles: ProfilesConfig {
                items: PathBuf::new(),
                ..cfg.profiles.clone()
            },
            ..cfg.clone()
        };
        let msg = load_dataset(&half).unwrap_err().to_string();
        assert!(
            msg.contains("data.profiles.users") && msg.contains("data.profiles.items"),
            "{msg}"
        );
        // Synthetic: checked too, though the generator has its own profiles.
        let syn = DataConfig {
            kind: "synthetic".into(),
            ..both
        };
        assert!(load_dataset(&syn).is_err());
    }

    #[test]
    fn random_profiles_are_seeded_standard_normal() {
        let a = random_profiles(300, 200, 64, 5).unwrap();
        assert_eq!(
            (a.dim, a.users.len(), a.items.len()),
            (64, 300 * 64, 200 * 64)
        );
        assert_eq!(a, random_profiles(300, 200, 64, 5).unwrap());
        let b = random_profiles(300, 200, 64, 6).unwrap();
        assert_ne!(a.users, b.users);
        assert_ne!(
            a.users[..64],
            a.items[..64],
            "users and items draw different streams"
        );
        // A user's profile does not depend on the number of items or users after it.
        let c = random_profiles(100, 7, 64, 5).unwrap();
        assert_eq!(c.users[..], a.users[..100 * 64]);
        // Nor on the thread count.
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        assert_eq!(
            pool.install(|| random_profiles(300, 200, 64, 5).unwrap()),
            a
        );

        let all: Vec<f64> = a
            .users
            .iter()
            .chain(&a.items)
            .map(|&x| f64::from(x))
            .collect();
        let n = all.len() as f64;
        let mean = all.iter().sum::<f64>() / n;
        let var = all.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
        let kurt = all
            .iter()
            .map(|x| ((x - mean) * (x - mean)).powi(2))
            .sum::<f64>()
            / n
            / (var * var);
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.02, "variance {var}");
        assert!((kurt - 3.0).abs() < 0.1, "kurtosis {kurt} (normal: 3)");
        let within_1sd = all.iter().filter(|x| x.abs() < 1.0).count() as f64 / n;
        assert!((within_1sd - 0.6827).abs() < 0.01, "{within_1sd}");
        // Odd sizes use the last Box–Muller pair's first half only.
        let odd = random_profiles(3, 1, 5, 1).unwrap();
        assert!(odd
            .users
            .iter()
            .chain(&odd.items)
            .all(|x| x.is_finite() && *x != 0.0));
    }

    #[test]
    fn random_profiles_replace_the_synthetic_ones_only_when_asked() {
        let base = DataConfig {
            kind: "synthetic".into(),
            ..DataConfig::default()
        };
        let ds = load_dataset(&base).unwrap();
        assert_eq!(
            ds.profiles.as_ref().unwrap().dim,
            SyntheticConfig::default().profile_dim
        );
        let cfg = DataConfig {
            profiles: ProfilesConfig {
                random_dim: 12,
                random_seed: 3,
                ..ProfilesConfig::default()
            },
            ..base
        };
        let ds2 = load_dataset(&cfg).unwrap();
        assert_eq!(ds2.train, ds.train, "profiles never move the interactions");
        assert_eq!(
            ds2.profiles,
            Some(random_profiles(ds.n_users, ds.n_items, 12, 3).unwrap())
        );
        assert!(stats(&ds2).to_string().contains("profiles: dimension 12"));

        // Files dataset with random profiles.
        let dir = tempfile::tempdir().unwrap();
        let files = DataConfig {
            profiles: cfg.profiles.clone(),
            ..tiny_with_profiles(dir.path())
        };
        let ds3 = load_dataset(&files).unwrap();
        assert_eq!(ds3.profiles, Some(random_profiles(3, 4, 12, 3).unwrap()));
    }

    #[test]
    fn real_ml100k_profiles_load() {
        let dir = ml100k_dir();
        if !dir.is_dir() {
            eprintln!("skipped: {} not present", dir.display());
            return;
        }
        let cfg = DataConfig {
            n_users: 943,
            n_items: 1574,
            profiles: ProfilesConfig {
                users: "user_profiles.npy".into(),
                items: "item_profiles.npy".into(),
                ..ProfilesConfig::default()
            },
            ..files_cfg(&dir)
        };
        let ds = load_dataset(&cfg).unwrap();
        let p = ds.profiles.as_ref().unwrap();
        assert_eq!(p.dim, 384);
        assert_eq!((p.users.len() / p.dim, p.items.len() / p.dim), (943, 1574));
        // The README: every vector is L2-normalised.
        for row in p.users.chunks(p.dim).chain(p.items.chunks(p.dim)) {
            let norm: f32 = row.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-4, "{norm}");
        }
        assert!(stats(&ds).to_string().contains("profiles: dimension 384"));
        // Rows checked against the dataset: the item table is not a user table.
        let swapped = DataConfig {
            profiles: ProfilesConfig {
                users: "item_profiles.npy".into(),
                items: "user_profiles.npy".into(),
                ..ProfilesConfig::default()
            },
            ..cfg
        };
        let msg = load_dataset(&swapped).unwrap_err().to_string();
        assert!(
            msg.contains("item_profiles.npy")
                && msg.contains("1574 rows")
                && msg.contains("943 users"),
            "{msg}"
        );
    }

    /// `cargo test --release -p promax --lib random_profiles_timing -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn random_profiles_timing() {
        let t = std::time::Instant::now();
        let p = random_profiles(11_000, 9_332, 1536, 2025).unwrap();
        println!(
            "random profiles 11,000 x 1536 + 9,332 x 1536 on {} threads: {:.3} s",
            rayon::current_num_threads(),
            t.elapsed().as_secs_f64()
        );
        assert_eq!(p.items.len(), 9_332 * 1536);
    }
}
