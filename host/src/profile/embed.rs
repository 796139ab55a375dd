//! Profile texts → float32 `.npy` tables through the embeddings endpoint.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use ndarray::Array2;
use ndarray_npy::WriteNpyExt;

use super::texts::read_text_table;
use super::{out_folder, resolve, write_file, ProfileError, What};
use crate::config::Config;
use crate::llm::{map_bounded, LlmClient, LlmError, LlmStats, Progress};

/// What embedding one table did.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbedReport {
    /// `"item"` or `"user"`.
    pub kind: &'static str,
    pub rows: usize,
    pub dim: usize,
    /// Embeddings requests (cached ones included).
    pub batches: usize,
    /// The texts embedded.
    pub source: PathBuf,
    /// The `.npy` written.
    pub path: PathBuf,
    /// What the client did for this table.
    pub llm: LlmStats,
}

impl fmt::Display for EmbedReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} profiles: {} × {} from {} ({} batches), written to {}",
            self.kind,
            self.rows,
            self.dim,
            self.source.display(),
            self.batches,
            self.path.display()
        )?;
        write!(f, "  {}", self.llm)
    }
}

/// One table to embed, and where it goes.
struct Table {
    kind: &'static str,
    source: PathBuf,
    out: PathBuf,
}

/// `promax embed`: the item and/or user profile texts (`embed.item_texts`,
/// `embed.user_texts`) to `item_profiles.npy` / `user_profiles.npy` in `embed.out_dir` (or
/// the dataset folder). Nothing is written unless every table asked for is complete and,
/// with both, the two share one dimension (`[data.profiles]` needs that).
pub fn run_embed(
    dataset_dir: &Path,
    cfg: &Config,
    what: What,
    mut on_report: impl FnMut(&EmbedReport),
) -> Result<(), ProfileError> {
    let e = &cfg.embed;
    if cfg.llm.embedding_model.trim().is_empty() {
        return Err(ProfileError::Input(
            "promax embed needs an embedding model: set llm.embedding_model (and llm.base_url)"
                .into(),
        ));
    }
    let out = out_folder(dataset_dir, &e.out_dir);
    let mut tables = Vec::with_capacity(2);
    if what.items() {
        tables.push(Table {
            kind: "item",
            source: resolve(dataset_dir, &e.item_texts),
            out: out.join("item_profiles.npy"),
        });
    }
    if what.users() {
        tables.push(Table {
            kind: "user",
            source: resolve(dataset_dir, &e.user_texts),
            out: out.join("user_profiles.npy"),
        });
    }
    // Every table's texts are checked before any request is sent.
    let texts = tables
        .iter()
        .map(|t| read_text_table(&t.source))
        .collect::<Result<Vec<_>, _>>()?;
    let mut done = Vec::with_capacity(tables.len());
    for (t, texts) in tables.iter().zip(&texts) {
        let client = LlmClient::new(cfg.llm.clone())
            .map_err(|e| ProfileError::Input(format!("llm: {e}")))?;
        let (values, dim) = embed_table(&client, t.kind, texts, e.batch_size)?;
        let report = EmbedReport {
            kind: t.kind,
            rows: texts.len(),
            dim,
            batches: texts.len().div_ceil(e.batch_size),
            source: t.source.clone(),
            path: t.out.clone(),
            llm: client.stats(),
        };
        done.push((report, values));
    }
    if let [(a, _), (b, _)] = done.as_slice() {
        if a.dim != b.dim {
            return Err(ProfileError::Input(format!(
                "the {} profiles have dimension {} but the {} profiles {}: both tables must \
                 come from the same embedding model; nothing was written",
                a.kind, a.dim, b.kind, b.dim
            )));
        }
    }
    for (report, values) in done {
        write_npy(&report.path, values, report.rows, report.dim)?;
        on_report(&report);
    }
    Ok(())
}

/// The embeddings of `texts`, row-major (row i = `texts[i]`), and their dimension: batches
/// of `batch_size` texts in id order, `llm.concurrency` requests at a time, every vector of
/// one dimension. After a failure the remaining batches are not sent.
pub fn embed_table(
    client: &LlmClient,
    kind: &str,
    texts: &[String],
    batch_size: usize,
) -> Result<(Vec<f32>, usize), ProfileError> {
    let batch_size = batch_size.max(1);
    let batches: Vec<Vec<String>> = texts.chunks(batch_size).map(<[String]>::to_vec).collect();
    let ids = |b: usize| {
        let start = b * batch_size;
        format!("{start}..{}", (start + batch_size).min(texts.len()))
    };
    let stop = AtomicBool::new(false);
    let progress = Progress::new("embeddings", texts.len());
    let results: Vec<Option<Result<Vec<Vec<f32>>, LlmError>>> =
        map_bounded(&batches, client.config().concurrency, |batch| {
            if stop.load(Ordering::Relaxed) {
                return None;
            }
            let r = client.embed(batch);
            if r.is_err() {
                stop.store(true, Ordering::Relaxed);
            }
            progress.advance(batch.len(), if r.is_err() { batch.len() } else { 0 });
            Some(r)
        });
    drop(progress);
    let done = results.iter().filter(|r| matches!(r, Some(Ok(_)))).count();
    let mut values = Vec::new();
    let mut dim = None;
    let mut bad: Vec<(usize, &'static str)> = Vec::new();
    for (b, r) in results.into_iter().enumerate() {
        let vectors = match r {
            Some(Ok(v)) => v,
            Some(Err(error)) => {
                return Err(ProfileError::Llm {
                    what: format!("{kind} ids {}", ids(b)),
                    done,
                    error,
                })
            }
            // A failed batch comes before or after; it is reported when reached.
            None => continue,
        };
        for (j, v) in vectors.into_iter().enumerate() {
            let id = b * batch_size + j;
            let d = *dim.get_or_insert(v.len());
            if v.len() != d {
                return Err(ProfileError::Input(format!(
                    "the embeddings server answered dimension {} for {kind} ids {} but {d} for \
                     ids {} (first mismatch: {kind} id {id}); one model must embed every text \
                     (a cache filled by another model under the same name would do this: \
                     clear llm.cache_dir)",
                    v.len(),
                    ids(b),
                    ids(0)
                )));
            }
            if let Some(why) = degenerate(&v) {
                bad.push((id, why));
            }
            values.extend_from_slice(&v);
        }
    }
    if !bad.is_empty() {
        return Err(degenerate_error(kind, &bad));
    }
    match dim {
        Some(d) if values.len() == texts.len() * d => Ok((values, d)),
        _ => Err(ProfileError::Input(format!(
            "no embeddings for the {} {kind} texts",
            texts.len()
        ))),
    }
}

/// Why an embedding carries no information about its text, if it does not: a vector
/// with a NaN or infinity, all zeros, or one value repeated (no direction to compare).
pub(crate) fn degenerate(v: &[f32]) -> Option<&'static str> {
    if v.iter().any(|x| !x.is_finite()) {
        return Some("not finite");
    }
    if v.iter().all(|&x| x == 0.0) {
        return Some("all zeros");
    }
    if v.len() > 1 && v.iter().all(|&x| x == v[0]) {
        return Some("constant");
    }
    None
}

/// Ids shown in a degenerate-embeddings error.
const DEGENERATE_SHOWN: usize = 10;

fn degenerate_error(kind: &str, bad: &[(usize, &str)]) -> ProfileError {
    let shown: Vec<String> = bad
        .iter()
        .take(DEGENERATE_SHOWN)
        .map(|(id, why)| format!("{id} ({why})"))
        .collect();
    let more = if bad.len() > DEGENERATE_SHOWN {
        format!(" and {} more", bad.len() - DEGENERATE_SHOWN)
    } else {
        String::new()
    };
    ProfileError::Input(format!(
        "the embeddings server answered degenerate vectors for {} {kind} text(s): ids {}{more}; \
         nothing was written. Check llm.embedding_model and the texts (a cached answer is \
         reused: clear llm.cache_dir after fixing the server)",
        bad.len(),
        shown.join(", ")
    ))
}

/// A float32 `.npy` of `rows × dim`, through a temporary file beside `path` and a rename.
fn write_npy(path: &Path, values: Vec<f32>, rows: usize, dim: usize) -> Result<(), ProfileError> {
    let bad = |e: String| ProfileError::Write(format!("{}: {e}", path.display()));
    let array = Array2::from_shape_vec((rows, dim), values).map_err(|e| bad(e.to_string()))?;
    let mut bytes = Vec::with_capacity(rows * dim * 4 + 128);
    array
        .write_npy(&mut bytes)
        .map_err(|e| bad(e.to_string()))?;
    write_file(path, &bytes)
}
