//! A run's identity: a hash of the text of its resolved `config.toml`, carried by every
//! result file (`epochs.csv`, `metrics.json`, `model.safetensors`, `checkpoint.safetensors`),
//! so that a folder whose files come from two runs is refused instead of read.
//!
//! The hash is of the written text, not of a re-serialised config: a folder written by an
//! older promax keeps its identity when a later one adds config keys.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

/// The files of a run folder that hold results (config.toml aside: it is the identity).
pub const RESULT_FILES: [&str; 4] = [
    "epochs.csv",
    "metrics.json",
    "model.safetensors",
    super::resume::CHECKPOINT,
];

const HEADER: &str = "# promax run ";

/// The identity of a run whose resolved config is `config_text`: 16 hex digits of its
/// SHA-256.
pub fn run_id(config_text: &str) -> String {
    Sha256::digest(config_text.as_bytes())
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The `config.toml` text of a run: a comment line with its identity, then the config.
pub fn config_file(config_text: &str) -> String {
    format!(
        "{HEADER}{} (every result file in this folder carries this id)\n{config_text}",
        run_id(config_text)
    )
}

/// The identity `config.toml` in `dir` declares, checked against its text; `None` for a
/// folder written before runs had identities.
pub fn config_id(dir: &Path) -> Result<Option<String>> {
    let path = dir.join("config.toml");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let Some(rest) = text.strip_prefix(HEADER) else {
        return Ok(None);
    };
    let (first, body) = rest.split_once('\n').unwrap_or((rest, ""));
    let declared = first.split_whitespace().next().unwrap_or("");
    let actual = run_id(body);
    if declared != actual {
        bail!(
            "{}: declares run {declared} but its text hashes to {actual}: the file was edited \
             after the run, so the results beside it may not belong to it",
            path.display()
        );
    }
    Ok(Some(actual))
}

/// The run identity a result file carries: `Some(None)` when the file exists but has none
/// (written before identities), `None` when the file is absent.
fn file_id(path: &Path) -> Result<Option<Option<String>>> {
    if !path.exists() {
        return Ok(None);
    }
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let id = if name.ends_with(".safetensors") {
        safetensors_metadata(path)?.remove("run_id")
    } else if name.ends_with(".json") {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let v: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        v.get("run_id").and_then(|x| x.as_str()).map(str::to_owned)
    } else {
        csv_id(path)?
    };
    Ok(Some(id))
}

/// The `run_id` column of an `epochs.csv`, which must hold one value on every row.
fn csv_id(path: &Path) -> Result<Option<String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut lines = text.lines();
    let header = lines.next().unwrap_or("");
    let Some(col) = header.split(',').position(|c| c == "run_id") else {
        return Ok(None);
    };
    let mut id: Option<&str> = None;
    for (n, line) in lines.enumerate() {
        let value = line.split(',').nth(col).unwrap_or("");
        match id {
            None => id = Some(value),
            Some(first) if first != value => bail!(
                "{}: line {} belongs to run {value:?}, line 2 to run {first:?}: the file mixes \
                 two runs",
                path.display(),
                n + 2
            ),
            _ => {}
        }
    }
    Ok(id.map(str::to_owned))
}

/// The `__metadata__` of a safetensors file, read from its header only (the tensors of a
/// large checkpoint are not loaded).
pub fn safetensors_metadata(path: &Path) -> Result<BTreeMap<String, String>> {
    // A header past this is not a checkpoint promax wrote (ours are a few KiB).
    const MAX_HEADER: u64 = 100 << 20;
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut len = [0u8; 8];
    f.read_exact(&mut len)
        .with_context(|| format!("{}: shorter than a safetensors header", path.display()))?;
    let n = u64::from_le_bytes(len);
    let size = f.metadata().map(|m| m.len()).unwrap_or(0);
    if n > MAX_HEADER || n > size.saturating_sub(8) {
        bail!(
            "{}: header length {n} does not fit the file ({size} bytes): not a safetensors \
             file, or truncated",
            path.display()
        );
    }
    let mut header = vec![0u8; n as usize];
    f.read_exact(&mut header)
        .with_context(|| format!("reading the header of {}", path.display()))?;
    let v: serde_json::Value = serde_json::from_slice(&header)
        .with_context(|| format!("{}: the header is not JSON", path.display()))?;
    Ok(v.get("__metadata__")
        .and_then(|m| m.as_object())
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())))
                .collect()
        })
        .unwrap_or_default())
}

/// Checks that every result file in `dir` belongs to the run its `config.toml` describes;
/// returns that run's identity (`None` for a folder written before identities, whose files
/// must then carry none either).
pub fn verify(dir: &Path) -> Result<Option<String>> {
    let config = config_id(dir)?;
    let mut mismatched: Vec<String> = Vec::new();
    for name in RESULT_FILES {
        let path: PathBuf = dir.join(name);
        let Some(id) = file_id(&path)? else { continue };
        if id != config {
            let show = |x: &Option<String>| x.as_deref().unwrap_or("(none)").to_owned();
            mismatched.push(format!("{name} carries run {}", show(&id)));
        }
    }
    if !mismatched.is_empty() {
        bail!(
            "{} mixes runs: config.toml is run {}, but {}; retrain it (`promax train --overwrite`) \
             or delete the folder",
            dir.display(),
            config.as_deref().unwrap_or("(none)"),
            mismatched.join(", ")
        );
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_is_checked_against_the_config_text() {
        let dir = tempfile::tempdir().unwrap();
        let text = "[train]\nseed = 1\n";
        std::fs::write(dir.path().join("config.toml"), config_file(text)).unwrap();
        let id = config_id(dir.path()).unwrap().unwrap();
        assert_eq!(id, run_id(text));
        assert_eq!(id.len(), 16);
        let edited = config_file(text).replace("seed = 1", "seed = 2");
        std::fs::write(dir.path().join("config.toml"), edited).unwrap();
        let err = format!("{:#}", config_id(dir.path()).unwrap_err());
        assert!(err.contains("edited"), "{err}");
    }

    #[test]
    fn a_folder_without_identities_is_legacy() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.toml"), "[train]\n").unwrap();
        std::fs::write(dir.path().join("metrics.json"), "{\"seed\": 1}").unwrap();
        assert_eq!(verify(dir.path()).unwrap(), None);
    }

    #[test]
    fn a_result_file_of_another_run_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.toml"), config_file("a = 1\n")).unwrap();
        let other = run_id("a = 2\n");
        std::fs::write(
            dir.path().join("metrics.json"),
            format!("{{\"run_id\": \"{other}\"}}"),
        )
        .unwrap();
        let err = format!("{:#}", verify(dir.path()).unwrap_err());
        assert!(
            err.contains("metrics.json carries run") && err.contains(&other),
            "{err}"
        );
        // A legacy result file beside an identified config is a mix too.
        std::fs::write(dir.path().join("metrics.json"), "{}").unwrap();
        let err = format!("{:#}", verify(dir.path()).unwrap_err());
        assert!(err.contains("(none)"), "{err}");
    }

    #[test]
    fn epochs_csv_rows_of_two_runs_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("epochs.csv");
        std::fs::write(&p, "epoch,loss,run_id\n1,0.5,aa\n2,0.4,aa\n").unwrap();
        assert_eq!(csv_id(&p).unwrap().as_deref(), Some("aa"));
        std::fs::write(&p, "epoch,loss,run_id\n1,0.5,aa\n2,0.4,bb\n").unwrap();
        let err = format!("{:#}", csv_id(&p).unwrap_err());
        assert!(err.contains("line 3"), "{err}");
    }

    #[test]
    fn safetensors_headers_that_do_not_fit_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.safetensors");
        let mut bytes = u64::MAX.to_le_bytes().to_vec();
        bytes.extend_from_slice(b"{}");
        std::fs::write(&p, &bytes).unwrap();
        assert!(safetensors_metadata(&p).is_err());
        std::fs::write(&p, b"abc").unwrap();
        assert!(safetensors_metadata(&p).is_err());
    }
}

/// Arbitrary bytes in every file a run folder holds never panic the readers, and what the
/// writers write reads back exactly.
#[cfg(test)]
mod properties {
    use super::super::resume::{read_state, write_state, Progress, StoreState, TrainState};
    use super::super::{read_final_embeddings, write_epochs, EpochRow};
    use super::*;
    use proptest::prelude::*;

    /// A valid checkpoint, to mutate.
    fn checkpoint_bytes() -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let state = TrainState {
            progress: Progress::default(),
            step: 3,
            adam_step: 3,
            sampler_word_pos: 99,
            stores: vec![StoreState {
                owner: "mf".into(),
                params: vec![1.0; 6],
                adam_m: vec![0.5; 6],
                adam_v: vec![0.25; 6],
                best: Some(vec![2.0; 6]),
            }],
        };
        write_state(dir.path(), "00ff", &state).unwrap();
        std::fs::read(dir.path().join(super::super::resume::CHECKPOINT)).unwrap()
    }

    fn store() -> impl Strategy<Value = StoreState> {
        ("[a-z][a-z0-9-]{0,12}", 0usize..40, any::<bool>()).prop_flat_map(|(owner, n, best)| {
            let v = || proptest::collection::vec(-1e6f32..1e6, n);
            (v(), v(), v(), v()).prop_map(move |(p, m, s, b)| StoreState {
                owner: owner.clone(),
                params: p,
                adam_m: m,
                adam_v: s,
                best: best.then_some(b),
            })
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn arbitrary_bytes_never_panic_a_reader(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let dir = tempfile::tempdir().unwrap();
            for name in ["model.safetensors", "checkpoint.safetensors", "epochs.csv", "metrics.json", "config.toml"] {
                std::fs::write(dir.path().join(name), &bytes).unwrap();
            }
            let _ = safetensors_metadata(&dir.path().join("model.safetensors"));
            let _ = read_state(dir.path(), "00ff");
            let _ = read_final_embeddings(dir.path(), 3, 4);
            let _ = verify(dir.path());
            let _ = csv_id(&dir.path().join("epochs.csv"));
        }

        #[test]
        fn a_damaged_checkpoint_is_an_error_or_whole(
            cut in 0usize..2000,
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
        ) {
            let mut bytes = checkpoint_bytes();
            for (at, x) in flips {
                let n = bytes.len();
                bytes[at % n] ^= x;
            }
            bytes.truncate(cut.min(bytes.len()));
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join(super::super::resume::CHECKPOINT), &bytes).unwrap();
            // Flips inside tensor data leave a readable checkpoint (the trainer then checks
            // sizes against the model); anything else must be an error, never a panic.
            let _ = read_state(dir.path(), "00ff");
        }

        #[test]
        fn checkpoints_round_trip(
            stores in proptest::collection::vec(store(), 0..4),
            step in any::<u64>(),
            pos in any::<u128>(),
            best in proptest::option::of(-1e3f64..1e3),
            secs in 0f64..1e6,
        ) {
            // One best snapshot for all stores or none, as the trainer keeps it.
            let all_best = stores.iter().all(|s| s.best.is_some()) && !stores.is_empty();
            let stores: Vec<StoreState> = stores
                .into_iter()
                .map(|mut s| { if !all_best { s.best = None; } s })
                .collect();
            let rows = vec![EpochRow {
                epoch: 1,
                losses: [("bpr".to_owned(), secs / 7.0)].into(),
                valid: best.map(|b| [("recall@20".to_owned(), b)].into()),
                seconds: secs,
                eval_seconds: best.map(|_| secs / 3.0),
            }];
            let state = TrainState {
                progress: Progress { epoch: 1, best, total_secs: secs, rows, ..Progress::default() },
                step,
                adam_step: (step % 1000) as i32,
                sampler_word_pos: pos,
                stores: stores.clone(),
            };
            let dir = tempfile::tempdir().unwrap();
            write_state(dir.path(), "beef", &state).unwrap();
            let back = read_state(dir.path(), "beef").unwrap().unwrap();
            prop_assert_eq!(back.stores, stores);
            prop_assert_eq!((back.step, back.sampler_word_pos), (step, pos));
            prop_assert_eq!(back.progress.best, best);
            prop_assert_eq!(back.progress.total_secs, secs);
            prop_assert_eq!(back.progress.rows[0].seconds, secs);
        }

        #[test]
        fn epochs_csv_carries_its_run_id(id in "[0-9a-f]{16}", n in 1usize..6) {
            let dir = tempfile::tempdir().unwrap();
            let rows: Vec<EpochRow> = (1..=n)
                .map(|epoch| EpochRow {
                    epoch,
                    losses: [("bpr".to_owned(), 0.5)].into(),
                    valid: (epoch % 2 == 0).then(|| [("ndcg@10".to_owned(), 0.1)].into()),
                    seconds: 1.0,
                    eval_seconds: None,
                })
                .collect();
            write_epochs(dir.path(), &rows, &id).unwrap();
            prop_assert_eq!(csv_id(&dir.path().join("epochs.csv")).unwrap(), Some(id));
        }

        #[test]
        fn config_headers_never_panic(text in "(# promax run [0-9a-f]{0,20}[ -~]{0,20}\n)?[ -~\n]{0,200}") {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("config.toml"), &text).unwrap();
            let _ = config_id(dir.path());
        }
    }
}
