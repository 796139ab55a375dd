//! Full-ranking evaluation: every user with held-out items, scored against all items, train
//! items masked, top-K through the kernel table.

use std::collections::BTreeMap;

use promax_kernels::CsrMatrix;
use promax_plugin_api::sdk::{Compute, Emb};
use promax_plugin_api::TopkRequest;
use rayon::prelude::*;

use crate::metrics::{average, user_metrics};
use crate::sampler::user_items;

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
