//! `checkpoint.safetensors`: everything a training run needs to continue after a kill as if
//! it had never stopped — parameters, Adam moments and step, the sampler's random stream,
//! the epoch, the early-stopping state (best value, epoch, parameters, patience counter) and
//! the rows of `epochs.csv` so far. Edge dropout, SimGCL noise and every plugin's
//! randomness derive from the step counter and the run seed, so the step restores them.
//!
//! One file, written to a temporary name and renamed: a kill leaves the previous
//! checkpoint or the new one, never a mix.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};

use super::{f32_bytes, f32s, identity, write_atomic, EpochRow};

/// The checkpoint's name inside a run folder.
pub const CHECKPOINT: &str = "checkpoint.safetensors";

/// Where the epoch loop stands.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Progress {
    /// Epochs completed.
    pub epoch: usize,
    /// The loop has ended (early stop or `train.max_epochs`): only the final evaluation
    /// and the result files remain.
    pub done: bool,
    pub stopped_early: bool,
    /// Best validation value so far (`None` before the first evaluation).
    pub best: Option<f64>,
    pub best_epoch: usize,
    /// Evaluations since the best one.
    pub bad_evals: usize,
    pub train_secs: f64,
    pub eval_secs: f64,
    pub n_evals: usize,
    /// Wall time of the run so far, over every process that trained it.
    pub total_secs: f64,
    pub rows: Vec<EpochRow>,
}

/// One parameter store's tables as the checkpoint holds them.
#[derive(Clone, Debug, PartialEq)]
pub struct StoreState {
    /// The plugin that owns the tables.
    pub owner: String,
    pub params: Vec<f32>,
    pub adam_m: Vec<f32>,
    pub adam_v: Vec<f32>,
    /// The parameters at the best validation epoch so far.
    pub best: Option<Vec<f32>>,
}

/// Everything a checkpoint holds.
#[derive(Clone, Debug)]
pub struct TrainState {
    pub progress: Progress,
    /// Optimisation steps taken (the seed of every per-step random stream).
    pub step: u64,
    pub adam_step: i32,
    /// The sampler's ChaCha position (its seed comes from the config).
    pub sampler_word_pos: u128,
    pub stores: Vec<StoreState>,
}

/// The JSON part of the checkpoint (its `__metadata__["state"]`).
#[derive(Serialize, Deserialize)]
struct Meta {
    progress: Progress,
    step: u64,
    adam_step: i32,
    /// A u128 as decimal text: JSON numbers do not hold 128 bits.
    sampler_word_pos: String,
    owners: Vec<String>,
    has_best: bool,
}

fn tensor_name(k: usize, owner: &str, part: &str) -> String {
    format!("{k}/{owner}/{part}")
}

/// Writes `dir/checkpoint.safetensors` for run `run_id` (temporary file, then rename).
pub fn write_state(dir: &Path, run_id: &str, state: &TrainState) -> Result<()> {
    let has_best = state.stores.iter().all(|s| s.best.is_some()) && !state.stores.is_empty();
    let meta = Meta {
        progress: state.progress.clone(),
        step: state.step,
        adam_step: state.adam_step,
        sampler_word_pos: state.sampler_word_pos.to_string(),
        owners: state.stores.iter().map(|s| s.owner.clone()).collect(),
        has_best,
    };
    let mut tensors: Vec<(String, Vec<u8>, usize)> = Vec::new();
    for (k, s) in state.stores.iter().enumerate() {
        let mut parts = vec![
            ("params", &s.params),
            ("adam_m", &s.adam_m),
            ("adam_v", &s.adam_v),
        ];
        if let (true, Some(b)) = (has_best, &s.best) {
            parts.push(("best", b));
        }
        for (part, data) in parts {
            tensors.push((tensor_name(k, &s.owner, part), f32_bytes(data), data.len()));
        }
    }
    let views = tensors
        .iter()
        .map(|(n, bytes, len)| Ok((n.clone(), TensorView::new(Dtype::F32, vec![*len], bytes)?)))
        .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()?;
    let metadata: HashMap<String, String> = [
        ("run_id".to_owned(), run_id.to_owned()),
        ("state".to_owned(), serde_json::to_string(&meta)?),
    ]
    .into();
    let bytes = safetensors::serialize(views, &Some(metadata))?;
    write_atomic(&dir.join(CHECKPOINT), &bytes)
}

/// Reads `dir/checkpoint.safetensors`, refusing one written by another run than `run_id`;
/// `None` when the run has no checkpoint yet.
pub fn read_state(dir: &Path, run_id: &str) -> Result<Option<TrainState>> {
    let path = dir.join(CHECKPOINT);
    if !path.exists() {
        return Ok(None);
    }
    let meta = identity::safetensors_metadata(&path)?;
    let found = meta.get("run_id").map(String::as_str).unwrap_or("(none)");
    if found != run_id {
        bail!(
            "{}: written by run {found}, but config.toml is run {run_id}: the folder mixes two \
             runs",
            path.display()
        );
    }
    let text = meta
        .get("state")
        .with_context(|| format!("{}: no training state in its metadata", path.display()))?;
    let m: Meta = serde_json::from_str(text)
        .with_context(|| format!("{}: parsing the training state", path.display()))?;
    let sampler_word_pos = m.sampler_word_pos.parse().with_context(|| {
        format!(
            "{}: sampler position {:?} is not a number",
            path.display(),
            m.sampler_word_pos
        )
    })?;
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let st =
        SafeTensors::deserialize(&bytes).with_context(|| format!("parsing {}", path.display()))?;
    let read = |name: &str| -> Result<Vec<f32>> {
        let t = st
            .tensor(name)
            .with_context(|| format!("{}: no tensor `{name}`", path.display()))?;
        if t.dtype() != Dtype::F32 || t.shape().len() != 1 {
            bail!(
                "{}: tensor `{name}` is {:?} {:?}, expected a flat F32 table",
                path.display(),
                t.dtype(),
                t.shape()
            );
        }
        Ok(f32s(t.data()).collect())
    };
    let mut stores = Vec::with_capacity(m.owners.len());
    for (k, owner) in m.owners.iter().enumerate() {
        let name = |part: &str| tensor_name(k, owner, part);
        stores.push(StoreState {
            owner: owner.clone(),
            params: read(&name("params"))?,
            adam_m: read(&name("adam_m"))?,
            adam_v: read(&name("adam_v"))?,
            best: if m.has_best {
                Some(read(&name("best"))?)
            } else {
                None
            },
        });
    }
    Ok(Some(TrainState {
        progress: m.progress,
        step: m.step,
        adam_step: m.adam_step,
        sampler_word_pos,
        stores,
    }))
}

/// Removes the checkpoint of a finished run (its results are in the other files).
pub fn remove_state(dir: &Path) -> Result<()> {
    let path = dir.join(CHECKPOINT);
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", path.display()))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn state(with_best: bool) -> TrainState {
        let row = EpochRow {
            epoch: 3,
            losses: BTreeMap::from([("bpr".to_owned(), 0.1 + 0.2)]),
            valid: Some(BTreeMap::from([("recall@20".to_owned(), 1.0 / 3.0)])),
            seconds: 0.25,
            eval_seconds: Some(0.125),
        };
        TrainState {
            progress: Progress {
                epoch: 3,
                best: Some(1.0 / 3.0),
                best_epoch: 3,
                rows: vec![row],
                ..Progress::default()
            },
            step: 17,
            adam_step: 17,
            sampler_word_pos: u128::from(u64::MAX) * 3 + 1,
            stores: vec![
                StoreState {
                    owner: "lightgcn".into(),
                    params: vec![0.1, -0.2, f32::MIN_POSITIVE],
                    adam_m: vec![1e-9, 2.0, 3.0],
                    adam_v: vec![4.0, 5.0, 6.0],
                    best: with_best.then(|| vec![7.0, 8.0, 9.0]),
                },
                StoreState {
                    owner: "promax".into(),
                    params: vec![],
                    adam_m: vec![],
                    adam_v: vec![],
                    best: with_best.then(Vec::new),
                },
            ],
        }
    }

    #[test]
    fn state_round_trips_exactly() {
        for with_best in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let s = state(with_best);
            write_state(dir.path(), "abc", &s).unwrap();
            let r = read_state(dir.path(), "abc").unwrap().unwrap();
            assert_eq!(r.stores, s.stores);
            assert_eq!((r.step, r.adam_step), (17, 17));
            assert_eq!(r.sampler_word_pos, s.sampler_word_pos);
            assert_eq!(r.progress.best, Some(1.0 / 3.0));
            let (a, b) = (&r.progress.rows[0], &s.progress.rows[0]);
            assert_eq!(
                (&a.losses, &a.valid, a.seconds),
                (&b.losses, &b.valid, b.seconds)
            );
        }
    }

    #[test]
    fn another_runs_checkpoint_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        write_state(dir.path(), "abc", &state(false)).unwrap();
        let err = format!("{:#}", read_state(dir.path(), "def").unwrap_err());
        assert!(err.contains("abc") && err.contains("def"), "{err}");
        assert!(read_state(tempfile::tempdir().unwrap().path(), "x")
            .unwrap()
            .is_none());
    }
}
