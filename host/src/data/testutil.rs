//! Fixtures of the data tests: files in a scratch folder, and where the published datasets
//! are.

use std::fs;
use std::path::{Path, PathBuf};

use crate::config::{DataConfig, ProfilesConfig};

/// Where the host tests (and CI) find the published datasets, from this crate.
const SHARED_DATA: &str = "../../shared/data";

/// The folder of the published dataset `name` (`amazon`, `ml100k`).
pub(super) fn shared_data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(SHARED_DATA)
        .join(name)
}

pub(super) fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, text).unwrap();
    p
}

pub(super) fn files_cfg(dir: &Path) -> DataConfig {
    DataConfig {
        path: dir.to_path_buf(),
        ..DataConfig::default()
    }
}

/// A tiny dataset folder (3 users, 4 items) plus profile files written with ndarray-npy.
pub(super) fn tiny_with_profiles(dir: &Path) -> DataConfig {
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

pub(super) fn grid(rows: usize, cols: usize) -> ndarray::Array2<f32> {
    ndarray::Array2::from_shape_fn((rows, cols), |(r, c)| (r * 10 + c) as f32)
}
