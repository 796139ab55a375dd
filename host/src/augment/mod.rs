//! Profile-guided retrieval and sparsity level shift (ProMax §2.3): the augmented
//! interaction set `R' ⊇ R` that ProMax's S2DR term trains against.
//!
//! For every user, from the TRAIN interactions and the profile embeddings only:
//! 1. **Budget** ([`budgets`]): with Q1, Q2, Q3 the quartiles of the per-user train counts,
//!    a user with `n` items is lifted to `ceil(Q_next) + target_offset`, `Q_next` the
//!    smallest quartile larger than `n`; users at or above Q3 get nothing. The published
//!    Amazon-Book set follows this rule with `target_offset = 1` (docs/methods.md).
//! 2. **Retrieval** ([`retrieve`]): the `knn` users most cosine-similar by profile; the
//!    items they interacted with, minus the user's own, are the candidates (with how many
//!    of the neighbours have each); candidates ranked by cosine between the mean profile of
//!    the user's items and each candidate's profile; the best `max_candidates` are kept.
//! 3. **Re-ranking** ([`Rerank`]): an LLM orders the candidates given the user's profile
//!    (only candidate ids are accepted), or, without an endpoint, the dense-retrieval order
//!    stands ([`DenseOrder`]). The first `budget` are added.
//!
//! Profiles are first reduced like ProMax does (PCA to `reduce_dim`, whitened), or used raw
//! with `reduce_dim = 0`.
//!
//! Other sources of added items (random, popular, a trained run's scores) get the same
//! budgets ([`sources`]); a run can name any of them as a graph view, built once and cached
//! beside the data ([`cache`]); [`evaluate`] measures how many added pairs are held-out
//! pairs (it reads valid and test, which building never does).

use std::fmt;
use std::path::PathBuf;

use promax_kernels::pca::{reduce_profiles, ReduceOptions, Reduction};
use promax_kernels::topk::score_topk;
use promax_kernels::CsrMatrix;
use promax_plugin_api::sdk::rows::unit_rows;
use promax_plugin_api::TopkRequest;
use serde::Serialize;

use crate::config::ReductionMode;
use crate::data::{Pairs, Profiles};

pub mod cache;
mod evaluate;
mod llm_rerank;
mod output;
pub mod sources;
pub use crate::config::{AugmentConfig, AugmentSource};
// The quartiles and per-user counts the budgets are built on are the dataset statistics'.
pub use crate::data::stats::{quartiles, user_counts as counts};
pub use evaluate::{evaluate, Evaluation};
pub use llm_rerank::{read_texts, LlmRerank, Prompt, DEFAULT_RERANK_PROMPT};
pub use output::{check_output, SPLITS};
pub use sources::{build, CfRun, Source, SourceReport};

/// Why augmentation failed.
#[derive(Debug, thiserror::Error)]
pub enum AugmentError {
    #[error("{0}")]
    Input(String),
    #[error("profile reduction: {0}")]
    Reduction(#[from] promax_kernels::KernelError),
    #[error("re-ranking: {0}")]
    Rerank(String),
    /// Too many LLM answers were of no use; nothing was written.
    #[error(
        "{unusable} of {asked} LLM re-ranking answers were unusable (share {share:.3}, \
             above augment.max_unusable_share = {max_share}): no id list, cut at \
             llm.max_tokens, or no candidate id; nothing was written. Check llm.chat_model and \
             augment.rerank_prompt, or raise augment.max_unusable_share to accept the dense \
             order for those users"
    )]
    Unusable {
        unusable: usize,
        asked: usize,
        share: f64,
        max_share: f64,
    },
    /// The output would replace a split of the dataset folder.
    #[error("{}: refusing to write over the dataset's {split} (augment reads it; --overwrite \
             does not apply to splits): choose another --out", path.display())]
    Split { path: PathBuf, split: &'static str },
    /// The output exists and `--overwrite` was not given.
    #[error("{} already exists: pass --overwrite to replace it, or choose another path", path.display())]
    Exists { path: PathBuf },
    /// Input-driven arithmetic left its type's range.
    #[error("`{key}`: {detail}")]
    Overflow { key: &'static str, detail: String },
}

// ---------------------------------------------------------------------------------------
// Sparsity level shift
// ---------------------------------------------------------------------------------------

/// The sparsity group of a user with `n` train items: 0 below Q1, 1 in [Q1, Q2), 2 in
/// [Q2, Q3), 3 at or above Q3.
pub fn group(n: u32, q: &[f64; 3]) -> usize {
    q.iter().take_while(|&&qi| f64::from(n) >= qi).count()
}

/// Items to add per user: `ceil(Q_next) + offset − n` for the smallest quartile `Q_next > n`,
/// 0 when there is none (`n ≥ Q3`). A target past `u32::MAX` is an error naming
/// `augment.target_offset` (wrapping would silently turn every budget into 0).
pub fn budgets(counts: &[u32], q: &[f64; 3], offset: u32) -> Result<Vec<u32>, AugmentError> {
    counts
        .iter()
        .map(|&n| match q.iter().find(|&&qi| qi > f64::from(n)) {
            Some(&next) => target(next, offset).map(|t| t.saturating_sub(n)),
            None => Ok(0),
        })
        .collect()
}

/// `ceil(quartile) + offset`, checked.
fn target(quartile: f64, offset: u32) -> Result<u32, AugmentError> {
    let too_big = || AugmentError::Overflow {
        key: "augment.target_offset",
        detail: format!(
            "the next quartile {quartile} + target_offset {offset} exceeds {} items",
            u32::MAX
        ),
    };
    let q = quartile.ceil();
    // Quartiles of u32 counts are in [0, u32::MAX]; the check keeps a NaN out as well.
    if !(0.0..=f64::from(u32::MAX)).contains(&q) {
        return Err(too_big());
    }
    (q as u32).checked_add(offset).ok_or_else(too_big)
}

// ---------------------------------------------------------------------------------------
// Retrieval
// ---------------------------------------------------------------------------------------

/// A candidate item for one user.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub item: u32,
    /// Cosine between the user's mean item profile and this item's profile.
    pub score: f32,
    /// How many of the user's `knn` neighbours interacted with it.
    pub count: u32,
}

/// Unit-norm retrieval profiles: reduced per `cfg` (or raw), rows normalised.
pub fn retrieval_profiles(
    p: &Profiles,
    cfg: &AugmentConfig,
) -> Result<(Vec<f32>, Vec<f32>, usize), AugmentError> {
    let (mut users, mut items, dim) = if cfg.reduce_dim == 0 {
        (p.users.clone(), p.items.clone(), p.dim)
    } else {
        let mode = match cfg.reduction {
            ReductionMode::Joint => Reduction::Joint,
            ReductionMode::Separate => Reduction::Separate,
        };
        let dim = reduced_dim(p, cfg)?;
        let opts = ReduceOptions {
            dim,
            mode,
            whiten: cfg.whiten,
        };
        let (u, i) = reduce_profiles(&p.users, &p.items, p.dim, &opts)?;
        (u, i, dim)
    };
    unit_rows(&mut users, dim);
    unit_rows(&mut items, dim);
    Ok((users, items, dim))
}

/// `augment.reduce_dim`, capped by what PCA can give: the profile dimension, and one less
/// than the rows of each fitted table (the covariance of n rows has rank n − 1). A cap is
/// logged once, naming the key; a table too small for any reduction is an error naming it.
fn reduced_dim(p: &Profiles, cfg: &AugmentConfig) -> Result<usize, AugmentError> {
    let (nu, ni) = (p.users.len() / p.dim.max(1), p.items.len() / p.dim.max(1));
    let rows = match cfg.reduction {
        ReductionMode::Joint => nu + ni,
        ReductionMode::Separate => nu.min(ni),
    };
    let cap = p.dim.min(rows.saturating_sub(1));
    if cap == 0 {
        return Err(AugmentError::Input(format!(
            "augment.reduce_dim = {}: the profiles have too few rows ({nu} users, {ni} items) \
             for a PCA reduction; set augment.reduce_dim = 0 to retrieve on the raw profiles",
            cfg.reduce_dim
        )));
    }
    if cfg.reduce_dim > cap {
        tracing::warn!(
            "augment.reduce_dim = {} exceeds what {nu} users and {ni} items of dimension {} \
             allow ({} reduction): reducing to {cap}",
            cfg.reduce_dim,
            p.dim,
            cfg.reduction.as_str()
        );
        return Ok(cap);
    }
    Ok(cfg.reduce_dim)
}

/// Per user, the candidates (best first, at most `max(max_candidates, limits[u])`, so a
/// user's budget can be met when there are enough candidates): items of the `knn`
/// most similar users (cosine of `users` rows, the user itself excluded) that the user has
/// not interacted with in `train`, ranked by cosine between the mean of the user's items'
/// rows of `items` and each candidate's row (ties: more neighbours, then lower id).
/// `users` / `items` are unit rows of width `dim`.
pub fn retrieve(
    train: &Pairs,
    users: &[f32],
    items: &[f32],
    dim: usize,
    cfg: &AugmentConfig,
    limits: &[u32],
) -> Result<Vec<Vec<Candidate>>, AugmentError> {
    let (n_users, n_items) = (users.len() / dim, items.len() / dim);
    let by_user = group_by_user(train, n_users, n_items)?;
    let neighbours = nearest_users(users, dim, cfg.knn)?;
    let mut out = Vec::with_capacity(n_users);
    let mut seen = vec![u32::MAX; n_items];
    let mut count = vec![0u32; n_items];
    for (u, own) in by_user.iter().enumerate() {
        // Own items are marked so that they never become candidates.
        own.iter().for_each(|&i| seen[i as usize] = u as u32);
        let mut cands: Vec<u32> = Vec::new();
        for &v in &neighbours[u] {
            for &i in &by_user[v as usize] {
                let i = i as usize;
                if seen[i] == u as u32 {
                    continue;
                }
                if count[i] == 0 {
                    cands.push(i as u32);
                }
                count[i] += 1;
            }
        }
        let mean = mean_row(own, items, dim);
        let mut scored: Vec<Candidate> = cands
            .iter()
            .map(|&i| Candidate {
                item: i,
                score: dot(&mean, &items[i as usize * dim..(i as usize + 1) * dim]),
                count: count[i as usize],
            })
            .collect();
        cands.iter().for_each(|&i| count[i as usize] = 0);
        scored.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then(b.count.cmp(&a.count))
                .then(a.item.cmp(&b.item))
        });
        let limit = limits.get(u).map_or(0, |&l| l as usize);
        scored.truncate(cfg.max_candidates.max(limit));
        out.push(scored);
    }
    Ok(out)
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Mean of the rows `ids` of `x`, normalised (a zero vector for no rows).
fn mean_row(ids: &[u32], x: &[f32], dim: usize) -> Vec<f32> {
    let mut m = vec![0f32; dim];
    for &i in ids {
        let row = &x[i as usize * dim..(i as usize + 1) * dim];
        m.iter_mut().zip(row).for_each(|(a, b)| *a += b);
    }
    unit_rows(&mut m, dim);
    m
}

/// Train items per user, sorted; errors name an out-of-range id.
fn group_by_user(
    train: &Pairs,
    n_users: usize,
    n_items: usize,
) -> Result<Vec<Vec<u32>>, AugmentError> {
    let mut by_user = vec![Vec::new(); n_users];
    for &(u, i) in train {
        if u as usize >= n_users || i as usize >= n_items {
            return Err(AugmentError::Input(format!(
                "train pair ({u}, {i}) is outside the profile tables ({n_users} users, \
                 {n_items} items)"
            )));
        }
        by_user[u as usize].push(i);
    }
    by_user.iter_mut().for_each(|v| v.sort_unstable());
    Ok(by_user)
}

/// The `k` most cosine-similar users of every user (unit rows), itself excluded.
fn nearest_users(users: &[f32], dim: usize, k: usize) -> Result<Vec<Vec<u32>>, AugmentError> {
    let n = users.len() / dim;
    let k = k.min(n.saturating_sub(1));
    if k == 0 {
        return Ok(vec![Vec::new(); n]);
    }
    let own: Vec<(u32, u32, f32)> = (0..n as u32).map(|u| (u, u, 1.0)).collect();
    let exclude = CsrMatrix::from_triplets(n, n, &own);
    let mut ids = vec![0u32; n * k];
    let mut scores = vec![0f32; n * k];
    let req = TopkRequest {
        queries: users.into(),
        items: users.into(),
        dim,
        exclude: exclude.view(),
        k,
    };
    score_topk(&req, &mut ids, &mut scores)
        .map_err(|e| AugmentError::Input(format!("user kNN: {e}")))?;
    Ok(ids
        .chunks_exact(k)
        .map(|r| r.iter().copied().filter(|&v| v != u32::MAX).collect())
        .collect())
}

// ---------------------------------------------------------------------------------------
// Re-ranking and the augmented set
// ---------------------------------------------------------------------------------------

/// What a re-ranker chose for one user.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Choice {
    /// Chosen candidate ids, best first (at most the budget).
    pub items: Vec<u32>,
    /// Ids in the answer that were not candidates, or repeated (dropped).
    pub rejected: usize,
    /// The answer was unusable (no JSON list of ids): the dense order was used instead.
    pub fell_back: bool,
    /// Items appended from the dense order because the answer had too few valid ids.
    pub topped_up: usize,
    /// The answer was a list, but held no candidate id (all hallucinated, or empty).
    pub no_candidate_ids: bool,
}

impl Choice {
    /// Whether the answer contributed nothing: no id list, or no candidate id in it.
    pub fn unusable(&self) -> bool {
        self.fell_back || self.no_candidate_ids
    }
}

/// One user to re-rank: its candidates (dense order, best first) and budget.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub user: u32,
    pub candidates: &'a [Candidate],
    pub budget: usize,
}

/// Orders users' candidates: the dense fallback ([`DenseOrder`]) or an LLM
/// ([`LlmRerank`]).
pub trait Rerank: Sync {
    /// A short description for the report ("dense retrieval order", "LLM <model>").
    fn describe(&self) -> String;
    /// One choice per request, in order.
    fn choose_all(&self, requests: &[Request<'_>]) -> Result<Vec<Choice>, AugmentError>;
    /// Calls, cache hits, retries and failures, when the re-ranker made calls.
    fn calls(&self) -> Option<String> {
        None
    }
}

/// No endpoint: the dense-retrieval order stands.
pub struct DenseOrder;

impl Rerank for DenseOrder {
    fn describe(&self) -> String {
        "dense retrieval order (no LLM re-ranking)".into()
    }

    fn choose_all(&self, requests: &[Request<'_>]) -> Result<Vec<Choice>, AugmentError> {
        let dense = |r| Choice {
            topped_up: 0,
            ..dense_choice(r, &[])
        };
        Ok(requests.iter().map(dense).collect())
    }
}

/// The first `budget` candidates of `r` in dense order, after `first` (which are kept).
pub(crate) fn dense_choice(r: &Request<'_>, first: &[u32]) -> Choice {
    let mut items = first.to_vec();
    items.truncate(r.budget);
    let mut topped_up = 0;
    for c in r.candidates {
        if items.len() >= r.budget {
            break;
        }
        if !items.contains(&c.item) {
            items.push(c.item);
            topped_up += 1;
        }
    }
    Choice {
        items,
        topped_up,
        ..Choice::default()
    }
}

/// Per sparsity group: users, users lifted, items asked for and added.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GroupReport {
    pub users: usize,
    pub lifted: usize,
    pub budget: u64,
    pub added: u64,
}

/// What `promax augment` did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AugmentReport {
    /// Where the added items came from, with its settings.
    pub source: SourceReport,
    pub quartiles: [f64; 3],
    pub target_offset: u32,
    pub rerank: String,
    pub train_pairs: usize,
    pub added_pairs: usize,
    /// Users who got fewer items than their budget (too few candidates, or an LLM answer
    /// with too few valid ids).
    pub short_users: usize,
    /// Items those users were short of, in all (budgets minus added).
    pub short_pairs: u64,
    pub rejected_ids: usize,
    /// Users whose LLM answer was unusable (the dense order was used).
    pub fallback_users: usize,
    /// Users whose LLM answer had too few valid ids (topped up from the dense order).
    pub topped_up_users: usize,
    /// Users whose answer was unusable ([`Choice::unusable`]): no id list, or none of its
    /// ids among the candidates.
    pub unusable_users: usize,
    /// Users handed to the re-ranker (those with a budget).
    pub reranked_users: usize,
    /// LLM calls, cache hits, retries and failures (empty without an LLM).
    pub calls: String,
    /// Groups: below Q1, [Q1, Q2), [Q2, Q3), at or above Q3.
    pub groups: [GroupReport; 4],
    /// The cache record of a set built for a run's graph view (`source:NAME`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache: Option<cache::CacheRecord>,
    /// Added pairs found in valid / test (`promax augment --evaluate`): an evaluation that
    /// reads the held-out splits, kept apart from what building read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evaluation: Option<Evaluation>,
}

impl fmt::Display for AugmentReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [q1, q2, q3] = self.quartiles;
        let s = &self.source;
        match (s.seed, &s.from_run) {
            (Some(seed), _) => writeln!(f, "source: {} (seed {seed})", s.name)?,
            (None, Some(run)) => writeln!(f, "source: {} (run {run})", s.name)?,
            (None, None) => writeln!(f, "source: {}", s.name)?,
        }
        writeln!(
            f,
            "quartiles of train items per user: Q1 {q1}, Q2 {q2}, Q3 {q3}; target = next \
             quartile + {}",
            self.target_offset
        )?;
        writeln!(f, "re-ranking: {}", self.rerank)?;
        let names = ["< Q1", "[Q1, Q2)", "[Q2, Q3)", ">= Q3"];
        for (name, g) in names.iter().zip(&self.groups) {
            writeln!(
                f,
                "  {name:>9}: {:>6} users, {:>6} lifted, {:>7} asked, {:>7} added",
                g.users, g.lifted, g.budget, g.added
            )?;
        }
        write!(
            f,
            "train pairs {}, added {} ({} users short of their budget by {} items in all), ids \
             rejected {}",
            self.train_pairs,
            self.added_pairs,
            self.short_users,
            self.short_pairs,
            self.rejected_ids
        )?;
        if !self.calls.is_empty() {
            write!(
                f,
                "\nLLM: {}; {} of {} answers unusable ({} without an id list: dense order \
                 used), {} answers topped up",
                self.calls,
                self.unusable_users,
                self.reranked_users,
                self.fallback_users,
                self.topped_up_users
            )?;
        }
        if let Some(e) = &self.evaluation {
            write!(f, "\n{e}")?;
        }
        Ok(())
    }
}

/// The augmented set (train ∪ added, sorted by user then item) and the report. `budget`
/// and `candidates` are per user; `rerank` picks each user's additions.
pub fn augment(
    train: &Pairs,
    counts: &[u32],
    cfg: &AugmentConfig,
    candidates: &[Vec<Candidate>],
    rerank: &dyn Rerank,
) -> Result<(Pairs, AugmentReport), AugmentError> {
    let q = quartiles(counts);
    let budget = budgets(counts, &q, cfg.target_offset)?;
    let requests: Vec<Request<'_>> = (0..counts.len())
        .filter(|&u| budget[u] > 0)
        .map(|u| Request {
            user: u as u32,
            candidates: &candidates[u],
            budget: budget[u] as usize,
        })
        .collect();
    let chosen = rerank.choose_all(&requests)?;
    let mut choices = vec![Choice::default(); counts.len()];
    for (r, c) in requests.iter().zip(chosen) {
        choices[r.user as usize] = c;
    }
    let mut report = AugmentReport {
        quartiles: q,
        target_offset: cfg.target_offset,
        rerank: rerank.describe(),
        calls: String::new(),
        train_pairs: train.len(),
        reranked_users: requests.len(),
        ..Default::default()
    };
    let mut out = train.clone();
    for (u, choice) in choices.iter().enumerate() {
        let g = &mut report.groups[group(counts[u], &q)];
        g.users += 1;
        g.budget += u64::from(budget[u]);
        g.added += choice.items.len() as u64;
        g.lifted += usize::from(!choice.items.is_empty());
        report.short_users += usize::from(choice.items.len() < budget[u] as usize);
        report.short_pairs += u64::from(budget[u]).saturating_sub(choice.items.len() as u64);
        report.rejected_ids += choice.rejected;
        report.fallback_users += usize::from(choice.fell_back);
        report.unusable_users += usize::from(choice.unusable());
        report.topped_up_users += usize::from(choice.topped_up > 0 && !choice.fell_back);
        out.extend(choice.items.iter().map(|&i| (u as u32, i)));
    }
    report.added_pairs = out.len() - train.len();
    report.calls = rerank.calls().unwrap_or_default();
    out.sort_unstable();
    Ok((out, report))
}

/// Refuses a re-ranking where more than `max_share` of the users asked got an unusable
/// answer: such a set is mostly the dense order, labelled as LLM re-ranked.
pub fn check_unusable(report: &AugmentReport, max_share: f64) -> Result<(), AugmentError> {
    let asked = report.reranked_users;
    if asked == 0 || report.unusable_users as f64 <= max_share * asked as f64 {
        return Ok(());
    }
    Err(AugmentError::Unusable {
        unusable: report.unusable_users,
        asked,
        share: report.unusable_users as f64 / asked as f64,
        max_share,
    })
}

/// `user<TAB>item` lines.
pub fn pairs_tsv(pairs: &Pairs) -> String {
    let mut s = String::with_capacity(pairs.len() * 12);
    for (u, i) in pairs {
        s.push_str(&format!("{u}\t{i}\n"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Candidates in the given (dense) order.
    pub(crate) fn cands(ids: &[u32]) -> Vec<Candidate> {
        ids.iter()
            .map(|&item| Candidate {
                item,
                score: 0.0,
                count: 1,
            })
            .collect()
    }

    #[test]
    fn reduce_dim_is_capped_by_the_rows_and_a_table_too_small_is_named() {
        let mut rng = promax_plugin_api::testing::SplitMix(4);
        let mut table = |rows: usize| -> Vec<f32> {
            (0..rows * 16).map(|_| rng.symmetric(1.0) as f32).collect()
        };
        let p = Profiles {
            dim: 16,
            users: table(10),
            items: table(8),
        };
        let cfg = AugmentConfig::default();
        assert_eq!(cfg.reduce_dim, 32);
        // Separate bases: 8 item rows give at most 7 components.
        let (u, i, dim) = retrieval_profiles(&p, &cfg).unwrap();
        assert_eq!((dim, u.len(), i.len()), (7, 70, 56));
        let joint = AugmentConfig {
            reduction: ReductionMode::Joint,
            ..cfg.clone()
        };
        // Joint: 18 rows, but the profiles have 16 dimensions.
        assert_eq!(retrieval_profiles(&p, &joint).unwrap().2, 16);
        let tiny = Profiles {
            dim: 16,
            users: table(1),
            items: table(8),
        };
        let e = retrieval_profiles(&tiny, &cfg).unwrap_err().to_string();
        assert!(
            e.starts_with("augment.reduce_dim = 32") && e.contains("1 users"),
            "{e}"
        );
    }

    #[test]
    fn budgets_lift_to_the_next_quartile_plus_offset() {
        // Amazon-Book's quartiles: <5 -> 6, 5-6 -> 8, 7-10 -> 12, >= 11 nothing.
        let q = [5.0, 7.0, 11.0];
        let counts = [1, 4, 5, 6, 7, 10, 11, 30];
        assert_eq!(
            budgets(&counts, &q, 1).unwrap(),
            vec![5, 2, 3, 2, 5, 2, 0, 0]
        );
        assert_eq!(counts.map(|n| group(n, &q)), [0, 0, 1, 1, 2, 2, 3, 3]);
        // Fractional quartiles round up before the offset.
        assert_eq!(budgets(&[2], &[2.5, 3.0, 4.0], 0).unwrap(), vec![1]);
    }

    #[test]
    fn too_many_unusable_answers_fail_naming_the_share() {
        let report = |unusable, reranked_users| AugmentReport {
            unusable_users: unusable,
            reranked_users,
            ..Default::default()
        };
        check_unusable(&report(2, 10), 0.2).unwrap();
        check_unusable(&report(0, 0), 0.0).unwrap();
        let e = check_unusable(&report(3, 10), 0.2).unwrap_err().to_string();
        assert!(
            e.contains("3 of 10")
                && e.contains("share 0.300")
                && e.contains("augment.max_unusable_share = 0.2"),
            "{e}"
        );
    }

    #[test]
    fn a_huge_target_offset_is_an_error_not_zero_budgets() {
        let e = budgets(&[1, 2, 30], &[2.0, 3.0, 10.0], u32::MAX).unwrap_err();
        assert!(e.to_string().contains("augment.target_offset"), "{e}");
        // Users at or above Q3 add nothing whatever the offset.
        assert_eq!(
            budgets(&[30], &[2.0, 3.0, 10.0], u32::MAX).unwrap(),
            vec![0]
        );
    }

    /// Users 0 and 1 have the same profile, user 2 another; items 0..4 in two pairs of
    /// profiles. User 0's neighbour is user 1, whose items are the candidates, ranked by
    /// closeness to user 0's own items.
    #[test]
    fn retrieval_by_hand() {
        let users = [1.0, 0.0, 1.0, 0.0, 0.0, 1.0];
        let items = [1.0, 0.0, 0.9, 0.1, 0.0, 1.0, 0.2, 0.8];
        let mut items_u = items.to_vec();
        unit_rows(&mut items_u, 2);
        let train = vec![(0, 0), (1, 1), (1, 3), (1, 0), (2, 2)];
        let cfg = AugmentConfig {
            knn: 1,
            ..Default::default()
        };
        let c = retrieve(&train, &users, &items_u, 2, &cfg, &[]).unwrap();
        let ids = |u: usize| c[u].iter().map(|c| c.item).collect::<Vec<_>>();
        // User 0 owns item 0; neighbour 1 has 0, 1, 3: candidates 1 (close to item 0)
        // then 3.
        assert_eq!(ids(0), vec![1, 3]);
        assert!(c[0].iter().all(|c| c.count == 1));
        // User 1's neighbour is user 0 (item 0, which user 1 owns): no candidates.
        assert!(ids(1).is_empty());
        let cfg = AugmentConfig {
            knn: 2,
            max_candidates: 1,
            ..Default::default()
        };
        let c = retrieve(&train, &users, &items_u, 2, &cfg, &[]).unwrap();
        assert_eq!(c[0].len(), 1);
        // A budget above max_candidates keeps that many.
        let c = retrieve(&train, &users, &items_u, 2, &cfg, &[2, 0, 0]).unwrap();
        assert_eq!(c[0].len(), 2);
        let bad = retrieve(&vec![(0, 9)], &users, &items_u, 2, &cfg, &[]).unwrap_err();
        assert!(bad.to_string().contains("(0, 9)"), "{bad}");
    }

    #[test]
    fn augment_adds_the_budget_and_reports_by_group() {
        // Counts 1, 2, 3, 8: quartiles 1.75, 2.5, 4.25 -> targets 2, 3, 5 (+ offset 1).
        let train: Pairs = vec![
            (0, 0),
            (1, 0),
            (1, 1),
            (2, 0),
            (2, 1),
            (2, 2),
            (3, 0),
            (3, 1),
            (3, 2),
            (3, 3),
            (3, 4),
            (3, 5),
            (3, 6),
            (3, 7),
        ];
        let c = counts(&train, 4);
        let candidates = vec![
            cands(&[5, 6, 7]),
            cands(&[9]),
            cands(&[8, 4, 3]),
            cands(&[9]),
        ];
        let cfg = AugmentConfig::default();
        let (out, report) = augment(&train, &c, &cfg, &candidates, &DenseOrder).unwrap();
        // User 0: 1 -> 3 (2 added); user 1: 2 -> 4 but one candidate; user 2: 3 -> 6;
        // user 3 is at/above Q3.
        let added: Vec<(u32, u32)> = out.iter().filter(|p| !train.contains(p)).copied().collect();
        assert_eq!(added, vec![(0, 5), (0, 6), (1, 9), (2, 3), (2, 4), (2, 8)]);
        assert_eq!(report.added_pairs, 6);
        assert_eq!(report.short_users, 1);
        assert_eq!(report.groups[0].added, 2);
        assert_eq!(report.groups[3].lifted, 0);
        assert!(out.windows(2).all(|w| w[0] < w[1]), "sorted, no duplicates");
        assert!(report.to_string().contains("dense retrieval order"));
    }
}
