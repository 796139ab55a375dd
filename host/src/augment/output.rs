//! Where `promax augment` may write: never over a split of the dataset folder, and over an
//! existing file only when asked to (`--overwrite`).

use std::path::{Path, PathBuf};

use super::AugmentError;

/// The split files of a dataset folder, which augmentation reads and must never replace.
pub const SPLITS: &[&str] = &["train.tsv", "valid.tsv", "test.tsv"];

/// Checks that `path` may be written: it must not be one of `dataset_dir`'s splits (by
/// canonical path, so another relative spelling or a symlink is caught too), and must not
/// exist unless `overwrite`.
pub fn check_output(path: &Path, dataset_dir: &Path, overwrite: bool) -> Result<(), AugmentError> {
    if let Some(target) = canonical(path) {
        for split in SPLITS {
            if canonical(&dataset_dir.join(split)).is_some_and(|s| s == target) {
                return Err(AugmentError::Split {
                    path: path.to_path_buf(),
                    split,
                });
            }
        }
    }
    if !overwrite && (path.exists() || path.is_symlink()) {
        return Err(AugmentError::Exists {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

/// The canonical form of a path that may not exist yet: the file itself when it exists
/// (symlinks resolved), else its canonical folder joined with its name; `None` when the
/// folder does not exist either (then it cannot be a split).
fn canonical(path: &Path) -> Option<PathBuf> {
    if let Ok(p) = path.canonicalize() {
        return Some(p);
    }
    let name = path.file_name()?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    Some(parent.canonicalize().ok()?.join(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_are_refused_even_with_overwrite_and_existing_files_without() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        std::fs::create_dir(&data).unwrap();
        std::fs::write(data.join("train.tsv"), "0\t1\n").unwrap();
        let other = data.join("sub/../train.tsv");
        std::fs::create_dir(data.join("sub")).unwrap();
        for p in [data.join("train.tsv"), other, data.join("test.tsv")] {
            let e = check_output(&p, &data, true).unwrap_err();
            assert!(matches!(e, AugmentError::Split { .. }), "{p:?}: {e}");
        }
        let aug = data.join("augmented.tsv");
        check_output(&aug, &data, false).unwrap();
        std::fs::write(&aug, "x").unwrap();
        let e = check_output(&aug, &data, false).unwrap_err().to_string();
        assert!(
            e.contains("augmented.tsv") && e.contains("--overwrite"),
            "{e}"
        );
        check_output(&aug, &data, true).unwrap();
        check_output(&tmp.path().join("nowhere/x.tsv"), &data, false).unwrap();
    }
}
