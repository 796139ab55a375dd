//! The run folder: `config.toml`, `epochs.csv`, `metrics.json`, `model.safetensors`, and
//! while training `checkpoint.safetensors` and `train.lock`. Every file is written to a
//! temporary name and renamed, so a killed run never leaves a truncated file that looks
//! complete; every result file carries the run's identity ([`identity`]).

pub mod identity;
pub mod lock;
pub mod resume;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};

use crate::metrics::METRICS;
use crate::model::Model;

/// One line of `epochs.csv`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EpochRow {
    pub epoch: usize,
    /// Mean per batch of each loss term.
    pub losses: BTreeMap<String, f64>,
    pub valid: Option<BTreeMap<String, f64>>,
    pub seconds: f64,
    pub eval_seconds: Option<f64>,
}

/// `metrics.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunSummary {
    /// The run's identity ([`identity::run_id`] of its config.toml); empty in folders
    /// written before runs had one.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub run_id: String,
    pub dataset: String,
    pub backbone: String,
    pub augmenters: Vec<String>,
    pub seed: u64,
    pub best_epoch: usize,
    pub epochs_run: usize,
    pub stopped_early: bool,
    pub seconds_per_epoch: f64,
    pub eval_seconds: f64,
    pub total_seconds: f64,
    pub threads: usize,
    /// The CPU kernels' SIMD level (`avx512`, `avx2`, `portable`); empty in folders
    /// written before runs named it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kernel_path: String,
    pub n_params: usize,
    pub valid: BTreeMap<String, f64>,
    pub test: BTreeMap<String, f64>,
    /// Test metrics per sparsity group of users (quartiles of TRAIN counts, the paper's
    /// Fig. 5): `< Q1`, `[Q1, Q2)`, `[Q2, Q3)`, `>= Q3`. Empty in folders written before.
    #[serde(default)]
    pub test_groups: Vec<UserGroup>,
}

/// The test metrics of one group of users by TRAIN interaction count.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UserGroup {
    /// 0 (sparsest) to 3.
    pub group: usize,
    /// `< Q1`, `[Q1, Q2)`, `[Q2, Q3)` or `>= Q3`.
    pub label: String,
    /// Train count bounds: `lower <= n < upper` (`None`: unbounded).
    pub lower: Option<f64>,
    pub upper: Option<f64>,
    /// Test users in the group.
    pub users: usize,
    /// Mean over those users, keyed like `test` (empty for an empty group).
    pub metrics: BTreeMap<String, f64>,
}

/// What a folder holds, as far as runs go.
#[derive(Debug, Clone, PartialEq)]
pub enum FolderState {
    /// Absent, or holding no result file (a `config.toml` alone is an intent, not a
    /// result: a run killed before its first epoch lost nothing).
    Fresh,
    /// A run was started and did not finish: the result files present.
    Started(Vec<&'static str>),
    /// `metrics.json` is there: the trainer writes it last.
    Finished,
}

/// The state of run folder `dir`.
pub fn folder_state(dir: &Path) -> FolderState {
    if dir.join("metrics.json").exists() {
        return FolderState::Finished;
    }
    let present: Vec<&'static str> = identity::RESULT_FILES
        .into_iter()
        .filter(|f| dir.join(f).exists())
        .collect();
    if present.is_empty() {
        FolderState::Fresh
    } else {
        FolderState::Started(present)
    }
}

/// Checks that `dir` holds a finished run whose files all belong to it; returns its
/// identity (`None` for a folder written before runs had one).
pub fn require_finished(dir: &Path) -> Result<Option<String>> {
    if !dir.join("config.toml").exists() {
        bail!("{}: no config.toml, not a run folder", dir.display());
    }
    let id = identity::verify(dir)?;
    if folder_state(dir) != FolderState::Finished {
        bail!(
            "{} holds no finished run (no metrics.json): `promax train --resume {}` finishes it",
            dir.display(),
            dir.display()
        );
    }
    Ok(id)
}

/// A temporary name beside `path` (same folder, so the final rename is atomic), creating
/// the folder if needed.
pub fn temp_path(path: &Path) -> Result<PathBuf> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(dir.join(format!(".{name}.tmp-{}", std::process::id())))
}

/// Writes `bytes` to `path` through a temporary file in the same folder and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = temp_path(path)?;
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
}

/// Rewrites `epochs.csv` with every row so far (loss terms, validation metrics, seconds,
/// and the run's identity on every row).
pub fn write_epochs(dir: &Path, rows: &[EpochRow], run_id: &str) -> Result<()> {
    let terms: BTreeSet<&String> = rows.iter().flat_map(|r| r.losses.keys()).collect();
    let metrics: BTreeSet<&String> = rows
        .iter()
        .filter_map(|r| r.valid.as_ref())
        .flat_map(|v| v.keys())
        .collect();
    // Metric columns in a reading order: recall@5, recall@10, …, then ndcg, ….
    let mut metric_cols: Vec<&String> = metrics.into_iter().collect();
    metric_cols.sort_by_key(|m| {
        let (name, k) = m.split_once('@').unwrap_or((m.as_str(), "0"));
        (
            METRICS
                .iter()
                .position(|x| *x == name)
                .unwrap_or(usize::MAX),
            k.parse::<usize>().unwrap_or(0),
        )
    });
    let mut s = String::from("epoch,loss");
    for t in &terms {
        let _ = write!(s, ",{t}");
    }
    for m in &metric_cols {
        let _ = write!(s, ",valid_{m}");
    }
    s.push_str(",seconds,eval_seconds,run_id\n");
    for r in rows {
        let _ = write!(s, "{},{:.6}", r.epoch, r.losses.values().sum::<f64>());
        for t in &terms {
            match r.losses.get(*t) {
                Some(v) => {
                    let _ = write!(s, ",{v:.6e}");
                }
                None => s.push(','),
            }
        }
        for m in &metric_cols {
            match r.valid.as_ref().and_then(|v| v.get(*m)) {
                Some(v) => {
                    let _ = write!(s, ",{v:.6}");
                }
                None => s.push(','),
            }
        }
        let _ = write!(s, ",{:.4},", r.seconds);
        if let Some(e) = r.eval_seconds {
            let _ = write!(s, "{e:.4}");
        }
        let _ = writeln!(s, ",{run_id}");
    }
    write_atomic(&dir.join("epochs.csv"), s.as_bytes())
}

/// Reads a finished run's `metrics.json`, after checking that every file in the folder
/// belongs to the run its `config.toml` describes.
pub fn read_metrics(dir: &Path) -> Result<RunSummary> {
    identity::verify(dir)?;
    read_metrics_unchecked(dir)
}

/// Reads `metrics.json` alone.
fn read_metrics_unchecked(dir: &Path) -> Result<RunSummary> {
    let path = dir.join("metrics.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Adds per-user-group test metrics to a run folder written before `metrics.json` had them.
/// `test` and `groups` come from re-evaluating the folder's checkpoint; they are written
/// only if `test` reproduces every stored test metric (within `tol`), so the groups belong
/// to the same model as the numbers beside them.
pub fn add_test_groups(
    dir: &Path,
    test: &BTreeMap<String, f64>,
    groups: Vec<UserGroup>,
    tol: f64,
) -> Result<()> {
    let mut summary = read_metrics(dir)?;
    if summary.test.is_empty() {
        bail!(
            "{}: no test metrics stored, nothing to check the checkpoint against",
            dir.join("metrics.json").display()
        );
    }
    for (name, stored) in &summary.test {
        let Some(now) = test.get(name) else {
            bail!(
                "{}: test metric {name} is stored but was not recomputed (eval.ks changed?)",
                dir.join("metrics.json").display()
            );
        };
        // NaN on either side is a mismatch too.
        let diff = (now - stored).abs();
        if diff.is_nan() || diff > tol {
            bail!(
                "{}: re-evaluating the checkpoint gives test {name} = {now}, but {stored} is \
                 stored: the checkpoint does not belong to these metrics, nothing written",
                dir.join("metrics.json").display()
            );
        }
    }
    summary.test_groups = groups;
    write_metrics(dir, &summary)
}

/// Writes `metrics.json`.
pub fn write_metrics(dir: &Path, summary: &RunSummary) -> Result<()> {
    let text = serde_json::to_string_pretty(summary)?;
    write_atomic(&dir.join("metrics.json"), text.as_bytes())
}

/// Little-endian bytes of an f32 table (safetensors' layout).
pub(crate) fn f32_bytes(x: &[f32]) -> Vec<u8> {
    x.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// The f32 values of little-endian safetensors bytes.
pub(crate) fn f32s(bytes: &[u8]) -> impl Iterator<Item = f32> + '_ {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
}

/// Writes `model.safetensors`: every parameter table (`plugin/table`) and the final
/// embeddings (`final/users`, `final/items`) computed from them, with the run's identity in
/// its metadata.
pub fn write_checkpoint(dir: &Path, model: &Model, final_emb: &[f32], run_id: &str) -> Result<()> {
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for store in &model.stores {
        for (name, rows, cols, data) in store.named_tables() {
            tensors.push((name, vec![rows, cols], f32_bytes(data)));
        }
    }
    let w = model.width;
    if final_emb.len() == model.n_nodes() * w {
        let (u, i) = final_emb.split_at(model.n_users * w);
        tensors.push(("final/users".into(), vec![model.n_users, w], f32_bytes(u)));
        tensors.push(("final/items".into(), vec![model.n_items, w], f32_bytes(i)));
    }
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(n, shape, bytes)| {
            Ok((
                n.clone(),
                TensorView::new(Dtype::F32, shape.clone(), bytes)?,
            ))
        })
        .collect::<Result<_, safetensors::SafeTensorError>>()?;
    let metadata = (!run_id.is_empty())
        .then(|| std::collections::HashMap::from([("run_id".to_owned(), run_id.to_owned())]));
    let bytes = safetensors::serialize(views, &metadata)?;
    write_atomic(&dir.join("model.safetensors"), &bytes)
}

/// The final embeddings stored in `model.safetensors` (users then items, row-major) and
/// their width, checked against the dataset's sizes and for NaN/Inf; `None` for a
/// checkpoint written without them.
pub fn read_final_embeddings(
    dir: &Path,
    n_users: usize,
    n_items: usize,
) -> Result<Option<(usize, Vec<f32>)>> {
    let path = dir.join("model.safetensors");
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let st =
        SafeTensors::deserialize(&bytes).with_context(|| format!("parsing {}", path.display()))?;
    let (Ok(users), Ok(items)) = (st.tensor("final/users"), st.tensor("final/items")) else {
        return Ok(None);
    };
    let width = users.shape().get(1).copied().unwrap_or(0);
    let mut emb = Vec::with_capacity((n_users + n_items) * width);
    for (name, t, rows) in [
        ("final/users", users, n_users),
        ("final/items", items, n_items),
    ] {
        if t.dtype() != Dtype::F32 || t.shape() != [rows, width] || width == 0 {
            bail!(
                "{}: tensor `{name}` is {:?} {:?}, the run's dataset needs F32 [{rows}, {width}]",
                path.display(),
                t.dtype(),
                t.shape()
            );
        }
        let start = emb.len();
        emb.extend(f32s(t.data()));
        if let Some(bad) = emb[start..].iter().position(|v| !v.is_finite()) {
            bail!(
                "{}: tensor `{name}` holds {} at row {}",
                path.display(),
                emb[start + bad],
                bad / width
            );
        }
    }
    Ok(Some((width, emb)))
}

/// Loads the parameter tables of `model.safetensors` into the model's stores, checking
/// names and shapes.
pub fn load_checkpoint(dir: &Path, model: &mut Model) -> Result<()> {
    let path = dir.join("model.safetensors");
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let st =
        SafeTensors::deserialize(&bytes).with_context(|| format!("parsing {}", path.display()))?;
    for store in &mut model.stores {
        let owner = store.owner.clone();
        for (spec, l) in store.specs.iter().zip(store.layout.clone()) {
            let name = format!("{owner}/{}", spec.name);
            let t = st
                .tensor(&name)
                .with_context(|| format!("{}: no tensor `{name}`", path.display()))?;
            if t.dtype() != Dtype::F32 || t.shape() != [l.rows, l.cols] {
                bail!(
                    "{}: tensor `{name}` is {:?} {:?}, the model expects F32 [{}, {}]",
                    path.display(),
                    t.dtype(),
                    t.shape(),
                    l.rows,
                    l.cols
                );
            }
            let dst = &mut store.data[l.offset..l.offset + l.rows * l.cols];
            for (d, v) in dst.iter_mut().zip(f32s(t.data())) {
                *d = v;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/x.json");
        write_atomic(&p, b"{}").unwrap();
        write_atomic(&p, b"[1]").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "[1]");
        let names: Vec<_> = std::fs::read_dir(p.parent().unwrap()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn epochs_csv_has_terms_metrics_and_blank_cells() {
        let dir = tempfile::tempdir().unwrap();
        let mk = |epoch, valid: Option<f64>| EpochRow {
            epoch,
            losses: [("bpr".to_string(), 0.5), ("reg".to_string(), 0.25)].into(),
            valid: valid.map(|v| {
                [
                    ("recall@20".to_string(), v),
                    ("recall@5".to_string(), v / 2.0),
                ]
                .into()
            }),
            seconds: 1.0,
            eval_seconds: valid.map(|_| 0.5),
        };
        write_epochs(dir.path(), &[mk(1, None), mk(2, Some(0.1))], "ab12").unwrap();
        let text = std::fs::read_to_string(dir.path().join("epochs.csv")).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "epoch,loss,bpr,reg,valid_recall@5,valid_recall@20,seconds,eval_seconds,run_id"
        );
        assert!(lines[1].starts_with("1,0.750000,"), "{}", lines[1]);
        assert!(lines[1].contains(",,,1.0000,"), "{}", lines[1]);
        assert!(
            lines[2].contains("0.050000,0.100000,1.0000,0.5000,ab12"),
            "{}",
            lines[2]
        );
    }
}
