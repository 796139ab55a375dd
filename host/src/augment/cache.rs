//! Augmentation named in a run's config: a graph view whose interactions are
//! `source:random`, `source:popular`, `source:cf` or `source:profiles` is built under the
//! run's `[augment]` section, once, and cached beside the data:
//!
//! `<dataset dir>/augmented/<source>-<key>.tsv` and `<…>.tsv.report.json`
//!
//! `key` is 12 hex digits of the SHA-256 of everything that changes the set ([`material`]):
//! the source, the budget rule's `target_offset`, the dataset's sizes, the train file's size
//! and hash (and how it is parsed), the random source's seed (`augment.seed`, else the
//! run's `train.seed`), the retrieval settings and profile values of `profiles`, the run
//! folder and checkpoint hash of `cf`. A cached set is reused when its report records the
//! same key and the TSV's hash; otherwise (a tampered or foreign file) it is rebuilt and
//! replaced. Both files are written under a temporary name and renamed, the TSV first, so a
//! kill never leaves a set that looks complete, and two runs building the same set at once
//! write the same bytes. A synthetic dataset has no folder: its set is built in memory for
//! every run (milliseconds at its sizes) and never cached.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use promax_plugin_api::sdk::nearest;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::sources::{build, CfRun, Source};
use super::{pairs_tsv, AugmentSource, DenseOrder};
use crate::config::{Config, DataKind, RerankMode};
use crate::data::{read_pairs, Dataset, DuplicatePolicy, Pairs, Profiles};
use crate::model::NamedViews;
use crate::runfolder::write_atomic;

/// The prefix of an interactions string that names a source instead of a file.
pub const PREFIX: &str = "source:";

/// The name after [`PREFIX`] of the train interactions themselves, nothing added: the
/// control of every source (a second view identical to the training graph), also where a
/// dataset has no train file to name (synthetic data).
pub const TRAIN: &str = "train";

/// The cache folder inside a dataset folder.
pub const CACHE_DIR: &str = "augmented";

/// Bumped when a source's output changes for the same material.
const FORMAT: &str = "1";

/// What a cached set's report records, to be checked before reuse.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CacheRecord {
    /// The key in the file name.
    pub key: String,
    /// What the key hashes.
    pub material: BTreeMap<String, String>,
    /// SHA-256 of the TSV's bytes.
    pub pairs_sha256: String,
}

/// The host's [`NamedViews`]: `source:NAME` views built (or reused) per the run's config.
pub struct SourceViews;

impl NamedViews for SourceViews {
    fn resolve(
        &self,
        cfg: &Config,
        ds: &Dataset,
        interactions: &str,
    ) -> Option<Result<(PathBuf, Pairs)>> {
        if interactions.strip_prefix(PREFIX) == Some(TRAIN) {
            return Some(Ok((PathBuf::from(interactions), ds.train.clone())));
        }
        let source = named_source(interactions)?;
        Some(
            source
                .map_err(anyhow::Error::msg)
                .and_then(|s| source_view(cfg, ds, s)),
        )
    }
}

/// The source an interactions string names: `None` for a file, an error naming the
/// allowed names for an unknown one.
pub fn named_source(interactions: &str) -> Option<Result<AugmentSource, String>> {
    let name = interactions.strip_prefix(PREFIX)?;
    let found = source_named(name);
    Some(found.ok_or_else(|| {
        let names = || AugmentSource::NAMES.iter().copied().chain([TRAIN]);
        let hint = nearest(name, names())
            .map(|s| format!(" (did you mean \"{PREFIX}{s}\"?)"))
            .unwrap_or_default();
        let allowed: Vec<String> = names().map(|n| format!("\"{PREFIX}{n}\"")).collect();
        format!(
            "unknown augmentation source {name:?}: must be one of {}{hint}, or a file",
            allowed.join(", ")
        )
    }))
}

/// The source called `name` (one of `AugmentSource::NAMES`).
pub fn source_named(name: &str) -> Option<AugmentSource> {
    [
        AugmentSource::Random,
        AugmentSource::Popular,
        AugmentSource::Cf,
        AugmentSource::Profiles,
    ]
    .into_iter()
    .find(|s| s.as_str() == name)
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of profile tables' values (dimension, then users, then items, little-endian).
fn profiles_sha256(p: &Profiles) -> String {
    let mut h = Sha256::new();
    h.update((p.dim as u64).to_le_bytes());
    for table in [&p.users, &p.items] {
        h.update((table.len() as u64).to_le_bytes());
        for chunk in table.chunks(4096) {
            let bytes: Vec<u8> = chunk.iter().flat_map(|v| v.to_le_bytes()).collect();
            h.update(&bytes);
        }
    }
    hex(&h.finalize())
}

/// The set `source` builds for the run `cfg` over `ds`, and the path that identifies it:
/// reused from the cache when it is there and whole, else built (and cached for a dataset
/// folder).
pub fn source_view(cfg: &Config, ds: &Dataset, source: AugmentSource) -> Result<(PathBuf, Pairs)> {
    let a = &cfg.augment;
    let seed = a.seed_or(cfg.train.seed);
    let cf = match source {
        AugmentSource::Cf => {
            let run = CfRun::open(&a.from_run, &ds.train)?;
            if run.sizes() != (ds.n_users, ds.n_items) {
                bail!(
                    "augment.from_run = {}: the run's dataset has {:?} users and items, this \
                     run's {:?}",
                    a.from_run.display(),
                    run.sizes(),
                    (ds.n_users, ds.n_items)
                );
            }
            Some(run)
        }
        _ => None,
    };
    let profiles = match source {
        AugmentSource::Profiles => Some(profiles_for_views(cfg, ds)?),
        _ => None,
    };
    let material = material(cfg, ds, source, seed, cf.as_ref(), profiles)?;
    let key = sha256_hex(serde_json::to_string(&material)?.as_bytes())[..12].to_string();
    let name = source.as_str();
    let build_it = || {
        let src = match source {
            AugmentSource::Random => Source::Random { seed },
            AugmentSource::Popular => Source::Popular,
            AugmentSource::Cf => Source::Cf(cf.as_ref().expect("opened above")),
            AugmentSource::Profiles => Source::Profiles {
                profiles: profiles.expect("checked above"),
                rerank: &DenseOrder,
            },
        };
        build(&ds.train, ds.n_users, ds.n_items, a, src)
    };
    let Some(dir) = &ds.dir else {
        let (pairs, report) = build_it()?;
        tracing::info!(
            "graph view {PREFIX}{name}: built in memory, {} pairs added (key {key}; a \
             synthetic dataset has no folder to cache it in)",
            report.added_pairs
        );
        return Ok((PathBuf::from(format!("{PREFIX}{name}-{key}")), pairs));
    };
    let path = dir.join(CACHE_DIR).join(format!("{name}-{key}.tsv"));
    let report_path = report_path(&path);
    match reusable(&path, &report_path, &key) {
        Ok(true) => {
            let pairs = read_pairs(
                &path,
                Some(ds.n_users),
                Some(ds.n_items),
                DuplicatePolicy::Error,
            )?;
            tracing::info!("graph view {PREFIX}{name}: reused {}", path.display());
            return Ok((path, pairs));
        }
        Ok(false) => {}
        Err(why) => tracing::warn!("{}: {why}: rebuilding it", path.display()),
    }
    let (pairs, mut report) = build_it()?;
    let tsv = pairs_tsv(&pairs);
    report.cache = Some(CacheRecord {
        key: key.clone(),
        material,
        pairs_sha256: sha256_hex(tsv.as_bytes()),
    });
    let unwritable = |e: anyhow::Error| {
        e.context(format!(
            "cannot write the augmented-set cache {}: a `{PREFIX}{name}` view is cached in \
             the dataset folder, which must be writable (or build the set with `promax \
             augment {} --source {name} --out FILE` and name FILE in the config)",
            path.display(),
            dir.display()
        ))
    };
    std::fs::create_dir_all(dir.join(CACHE_DIR))
        .map_err(anyhow::Error::from)
        .map_err(unwritable)?;
    // The TSV first: a report beside it is what marks the set complete.
    write_atomic(&path, tsv.as_bytes()).map_err(unwritable)?;
    let json = serde_json::to_string_pretty(&report)?;
    write_atomic(&report_path, json.as_bytes()).map_err(unwritable)?;
    tracing::info!(
        "graph view {PREFIX}{name}: built, {} pairs added, cached at {}",
        report.added_pairs,
        path.display()
    );
    Ok((path, pairs))
}

/// `<path>.report.json`.
pub fn report_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".report.json");
    PathBuf::from(p)
}

/// Whether the cached set at `path` can be reused: `Ok(false)` when it is not there,
/// an error saying why when it is there but its report does not vouch for it.
fn reusable(path: &Path, report_path: &Path, key: &str) -> Result<bool, String> {
    if !path.exists() || !report_path.exists() {
        return Ok(false);
    }
    let text = std::fs::read_to_string(report_path).map_err(|e| e.to_string())?;
    let report: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("its report is not JSON ({e})"))?;
    let recorded: CacheRecord = serde_json::from_value(report["cache"].clone())
        .map_err(|e| format!("its report has no cache record ({e})"))?;
    if recorded.key != key {
        return Err(format!(
            "its report records key {:?}, not {key:?}",
            recorded.key
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    if sha256_hex(&bytes) != recorded.pairs_sha256 {
        return Err("its pairs do not hash to what its report records".into());
    }
    Ok(true)
}

/// The profiles of a `source:profiles` view: the dataset's, ordered densely (an LLM
/// re-ranking is a `promax augment` job, whose file a config then names).
fn profiles_for_views<'d>(cfg: &Config, ds: &'d Dataset) -> Result<&'d Profiles> {
    let a = &cfg.augment;
    let llm = match a.rerank {
        RerankMode::Llm => true,
        RerankMode::Dense => false,
        RerankMode::Auto => !cfg.llm.chat_model.is_empty(),
    };
    if llm {
        bail!(
            "`{PREFIX}profiles` builds the dense-retrieval order only, but augment.rerank = \
             \"{}\" (llm.chat_model {:?}) asks for LLM re-ranking: build the set with `promax \
             augment DATASET_DIR --source profiles --out FILE` and name FILE instead, or set \
             augment.rerank = \"dense\"",
            a.rerank.as_str(),
            cfg.llm.chat_model
        );
    }
    ds.profiles.as_ref().context(
        "`source:profiles` needs profile embeddings: set [data.profiles] (users and items, or \
         random_dim)",
    )
}

/// Everything that changes the set `source` builds, as text.
fn material(
    cfg: &Config,
    ds: &Dataset,
    source: AugmentSource,
    seed: u64,
    cf: Option<&CfRun>,
    profiles: Option<&Profiles>,
) -> Result<BTreeMap<String, String>> {
    let a = &cfg.augment;
    let mut m = BTreeMap::new();
    let mut put = |k: &str, v: String| m.insert(k.to_string(), v);
    put("format", FORMAT.into());
    put("source", source.as_str().into());
    put("target_offset", a.target_offset.to_string());
    put("users", ds.n_users.to_string());
    put("items", ds.n_items.to_string());
    match (&ds.dir, cfg.data.kind) {
        (Some(dir), DataKind::Files) => {
            let train = dir.join("train.tsv");
            let bytes =
                std::fs::read(&train).with_context(|| format!("reading {}", train.display()))?;
            put(
                "train",
                format!("{} bytes, sha256 {}", bytes.len(), sha256_hex(&bytes)),
            );
            put("columns", format!("{:?}", cfg.data.columns));
            put("duplicates", format!("{:?}", cfg.data.duplicates));
        }
        (Some(_), DataKind::Recbole) => {
            // The ids (and so the pairs' meaning) depend on every file read and on how.
            for f in crate::data::recbole::input_files(&cfg.data) {
                let bytes =
                    std::fs::read(&f).with_context(|| format!("reading {}", f.display()))?;
                let name = f.file_name().unwrap_or_default().to_string_lossy();
                put(
                    &format!("file {name}"),
                    format!("{} bytes, sha256 {}", bytes.len(), sha256_hex(&bytes)),
                );
            }
            put("recbole", serde_json::to_string(&cfg.data.recbole)?);
            put("duplicates", format!("{:?}", cfg.data.duplicates));
        }
        _ => {
            put("synthetic", serde_json::to_string(&cfg.data.synthetic)?);
        }
    }
    match source {
        AugmentSource::Random => {
            put("seed", seed.to_string());
        }
        AugmentSource::Popular => {}
        AugmentSource::Cf => {
            if let Some(run) = cf {
                let dir = run.dir.canonicalize().unwrap_or_else(|_| run.dir.clone());
                put("from_run", dir.display().to_string());
                put("run_id", run.run_id.clone().unwrap_or_default());
                put("checkpoint_sha256", run.checkpoint_sha256.clone());
            }
        }
        AugmentSource::Profiles => {
            put("knn", a.knn.to_string());
            put("max_candidates", a.max_candidates.to_string());
            put("reduce_dim", a.reduce_dim.to_string());
            put("reduction", a.reduction.as_str().into());
            put("whiten", a.whiten.to_string());
            put("rerank", "dense".into());
            if let Some(p) = profiles {
                put("profiles_sha256", profiles_sha256(p));
            }
        }
    }
    Ok(m)
}
