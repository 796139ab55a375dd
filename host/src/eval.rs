//! Full-ranking evaluation: every user with held-out items, scored against all items, train
//! items masked, top-K through the kernel table.

use std::collections::BTreeMap;

use promax_kernels::CsrMatrix;
use promax_plugin_api::sdk::{Compute, Emb};
use promax_plugin_api::TopkRequest;
use rayon::prelude::*;

use crate::metrics::{average, user_metrics};
use crate::runfolder::UserGroup;
use crate::sampler::user_items;

/// Labels of the four sparsity groups of [`user_groups`].
pub const GROUP_LABELS: [&str; 4] = ["< Q1", "[Q1, Q2)", "[Q2, Q3)", ">= Q3"];

/// An evaluation's metrics per group of users by TRAIN count (`train_counts[u]`), grouped
/// by the quartiles of all users' counts (linear interpolation, `augment::quartiles` and
/// `augment::group`, as the paper's Fig. 5).
pub fn user_groups(res: &EvalResult, train_counts: &[u32], ks: &[usize]) -> Vec<UserGroup> {
    let q = crate::augment::quartiles(train_counts);
    let mut members: [Vec<Vec<[f64; 5]>>; 4] = Default::default();
    for (&u, m) in res.users.iter().zip(&res.per_user) {
        let n = train_counts.get(u as usize).copied().unwrap_or(0);
        members[crate::augment::group(n, &q)].push(m.clone());
    }
    members
        .iter()
        .enumerate()
        .map(|(g, m)| UserGroup {
            group: g,
            label: GROUP_LABELS[g].to_owned(),
            lower: g.checked_sub(1).map(|i| q[i]),
            upper: q.get(g).copied(),
            users: m.len(),
            metrics: if m.is_empty() {
                BTreeMap::new()
            } else {
                average(m, ks)
            },
        })
        .collect()
}

/// Everything about one held-out split that does not change between evaluations.
pub struct Evaluator {
    /// Users with at least one held-out item, ascending.
    users: Vec<u32>,
    /// Their train items (rows aligned with `users`): masked out of the ranking.
    exclude: CsrMatrix,
    /// Their held-out items (rows aligned with `users`, sorted).
    heldout: CsrMatrix,
    ks: Vec<usize>,
    /// Query embeddings gathered for the evaluated users (reused).
    queries: Vec<f32>,
}

/// One evaluation's averages plus the per-user values (for group breakdowns).
pub struct EvalResult {
    pub metrics: BTreeMap<String, f64>,
    pub users: Vec<u32>,
    pub per_user: Vec<Vec<[f64; 5]>>,
    /// Wall time of this evaluation, final embeddings included.
    pub seconds: f64,
}

impl Evaluator {
    pub fn new(
        n_users: usize,
        n_items: usize,
        train: &[(u32, u32)],
        heldout: &[(u32, u32)],
        ks: &[usize],
    ) -> Evaluator {
        let train_m = user_items(n_users, n_items, train);
        let held_m = user_items(n_users, n_items, heldout);
        let users: Vec<u32> = (0..n_users as u32)
            .filter(|&u| !held_m.row(u as usize).0.is_empty())
            .collect();
        let rows = |m: &CsrMatrix| -> CsrMatrix {
            let triplets: Vec<(u32, u32, f32)> = users
                .iter()
                .enumerate()
                .flat_map(|(r, &u)| m.row(u as usize).0.iter().map(move |&i| (r as u32, i, 1.0)))
                .collect();
            CsrMatrix::from_triplets(users.len(), n_items, &triplets)
        };
        Evaluator {
            exclude: rows(&train_m),
            heldout: rows(&held_m),
            users,
            ks: ks.to_vec(),
            queries: Vec::new(),
        }
    }

    /// Number of users this split evaluates.
    pub fn n_users(&self) -> usize {
        self.users.len()
    }

    /// Ranks all items for every evaluated user by inner product of final embeddings.
    pub fn evaluate(&mut self, k: &Compute<'_>, emb: Emb<'_>) -> Result<EvalResult, String> {
        let w = emb.width;
        let max_k = self.ks.iter().copied().max().unwrap_or(20);
        self.queries.clear();
        for &u in &self.users {
            self.queries.extend_from_slice(emb.user(u as usize));
        }
        let n = self.users.len();
        let mut items = vec![u32::MAX; n * max_k];
        let mut scores = vec![0f32; n * max_k];
        k.score_topk(
            TopkRequest {
                queries: self.queries.as_slice().into(),
                items: emb.items().into(),
                dim: w,
                exclude: self.exclude.view(),
                k: max_k,
            },
            &mut items,
            &mut scores,
        )?;
        let per_user: Vec<Vec<[f64; 5]>> = (0..n)
            .into_par_iter()
            .map(|r| {
                user_metrics(
                    &items[r * max_k..(r + 1) * max_k],
                    self.heldout.row(r).0,
                    &self.ks,
                )
            })
            .collect();
        Ok(EvalResult {
            metrics: average(&per_user, &self.ks),
            users: self.users.clone(),
            per_user,
            seconds: 0.0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_groups_split_by_train_count_quartiles() {
        // Train counts 1..=5 (plus an unevaluated user 5 with 9): quartiles by linear
        // interpolation over all six users' counts [1, 2, 3, 4, 5, 9] = 2.25, 3.5, 4.75.
        let counts = [1, 2, 3, 4, 5, 9];
        let per_user = |r: f64| vec![[r, r / 2.0, 0.0, 1.0, 0.5]];
        let res = EvalResult {
            metrics: BTreeMap::new(),
            users: vec![0, 1, 2, 3, 4],
            per_user: (0..5).map(|u| per_user(u as f64 / 10.0)).collect(),
            seconds: 0.0,
        };
        let g = user_groups(&res, &counts, &[20]);
        assert_eq!(g.len(), 4);
        assert_eq!(
            g.iter().map(|x| x.users).collect::<Vec<_>>(),
            [2, 1, 1, 1],
            "{g:?}"
        );
        assert_eq!((g[0].lower, g[0].upper), (None, Some(2.25)));
        assert_eq!((g[3].lower, g[3].upper), (Some(4.75), None));
        assert_eq!(g[1].label, "[Q1, Q2)");
        assert!((g[0].metrics["recall@20"] - 0.05).abs() < 1e-12);
        assert!((g[0].metrics["ndcg@20"] - 0.025).abs() < 1e-12);
        assert!((g[3].metrics["recall@20"] - 0.4).abs() < 1e-12);
        let empty = user_groups(
            &EvalResult {
                users: vec![],
                per_user: vec![],
                ..res
            },
            &counts,
            &[20],
        );
        assert!(empty.iter().all(|x| x.users == 0 && x.metrics.is_empty()));
    }
}
