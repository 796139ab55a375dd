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
//!
//! The files: the [`Dataset`] and its loading here, the split files in `pairs.rs`, the
//! profile tables in `profiles.rs` (their `.npy` header in `npy.rs`), the statistics in
//! [`stats`], the generator in `synthetic.rs`, the errors in `error.rs`.

use std::path::{Path, PathBuf};

use crate::config::{DataConfig, DataKind};

mod error;
mod npy;
mod pairs;
mod profiles;
pub mod recbole;
pub mod stats;
mod synthetic;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod testutil;

pub use crate::config::DuplicatePolicy;
pub use error::DataError;
pub use pairs::{read_pairs, SPLIT_FILES};
pub use profiles::{
    load_profiles, profile_table_rows, random_profiles, read_profile_table, Profiles,
};
pub use stats::{stats, train_counts, DataStats};

use pairs::{read_splits, Splits};
use synthetic::load_synthetic;

/// (user, item) interactions with 0-based ids.
pub type Pairs = Vec<(u32, u32)>;

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
    /// The original token of every id, for datasets with string ids (RecBole's); `None`
    /// when the ids are the files' own.
    pub ids: Option<IdMaps>,
}

/// The original (string) id of every user and item: `users[u]` is user `u`'s token.
#[derive(Debug, Clone, PartialEq)]
pub struct IdMaps {
    pub users: Vec<String>,
    pub items: Vec<String>,
}

impl IdMaps {
    /// Files `user_ids.tsv` / `item_ids.tsv` beside a run: `id<TAB>token` lines under a
    /// header, so that a run's ids can be read back as the dataset's own.
    pub const FILES: [&'static str; 2] = ["user_ids.tsv", "item_ids.tsv"];

    /// The two files' text.
    pub fn tsv(&self) -> [String; 2] {
        let table = |what: &str, tokens: &[String]| {
            let mut s = format!("{what}\ttoken\n");
            for (id, t) in tokens.iter().enumerate() {
                s += &format!("{id}\t{t}\n");
            }
            s
        };
        [table("user", &self.users), table("item", &self.items)]
    }
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
    match cfg.kind {
        DataKind::Files => load_files(cfg),
        DataKind::Synthetic => load_synthetic(cfg),
        DataKind::Recbole => load_recbole(cfg),
    }
}

fn load_recbole(cfg: &DataConfig) -> Result<Dataset, DataError> {
    let dir = cfg.dir();
    if !dir.is_dir() {
        return Err(DataError::MissingDir { path: dir.clone() });
    }
    let split = recbole::read_recbole(cfg)?;
    let (n_users, n_items) = (split.ids.users.len(), split.ids.items.len());
    for (key, declared, n) in [
        ("data.n_users", cfg.n_users, n_users),
        ("data.n_items", cfg.n_items, n_items),
    ] {
        if declared != 0 && declared != n {
            return Err(DataError::Config {
                key: key.into(),
                reason: format!(
                    "= {declared}, but the RecBole files hold {n}; leave it at 0 (the count \
                     of distinct tokens) or give that count"
                ),
            });
        }
    }
    let profiles = load_profiles(cfg, n_users, n_items)?;
    let name = if !cfg.name.is_empty() {
        cfg.name.clone()
    } else {
        folder_name(&dir)
    };
    let ds = Dataset {
        name,
        dir: Some(dir),
        n_users,
        n_items,
        train: split.train,
        valid: split.valid,
        test: split.test,
        profiles,
        ids: Some(split.ids),
    };
    warn_overlap(&ds);
    Ok(ds)
}

fn load_files(cfg: &DataConfig) -> Result<Dataset, DataError> {
    if cfg.path.as_os_str().is_empty() {
        return Err(DataError::Config {
            key: "data.path".into(),
            reason: "is empty; it must name the folder holding train.tsv, valid.tsv and test.tsv"
                .into(),
        });
    }
    let dir = cfg.dir();
    if !dir.is_dir() {
        return Err(DataError::MissingDir { path: dir.clone() });
    }
    let Splits {
        train,
        valid,
        test,
        n_users,
        n_items,
    } = read_splits(cfg, &dir)?;
    let name = if !cfg.name.is_empty() {
        cfg.name.clone()
    } else {
        folder_name(&dir)
    };
    let profiles = load_profiles(cfg, n_users, n_items)?;
    let ds = Dataset {
        name,
        dir: Some(dir),
        n_users,
        n_items,
        train,
        valid,
        test,
        profiles,
        ids: None,
    };
    warn_overlap(&ds);
    Ok(ds)
}

fn warn_overlap(ds: &Dataset) {
    let st = stats(ds);
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
}

pub(super) fn folder_name(dir: &Path) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::testutil::{files_cfg, grid, shared_data, tiny_with_profiles};
    use std::fs;

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

    #[test]
    fn real_amazon_matches_its_readme() {
        let dir = shared_data("amazon");
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
}
