//! The normalised user–item graph of LightGCN-style models, and training-time edge dropout.

use promax_plugin_api::sdk::rng::{draw, unit_f64};

use crate::csr::CsrMatrix;

/// The symmetric-normalised bipartite adjacency `Â = D^-1/2 A D^-1/2` over `n_users + n_items`
/// nodes (users first, then items), with `A = [[0, R], [Rᵀ, 0]]` built from `pairs`
/// (user, item), binarised (a pair listed twice counts once), plus the identity when
/// `self_loops` (LR-GCCF). `D` holds the row sums of that `A`; a node of degree 0 keeps an
/// empty row, so no NaN or infinity can appear.
///
/// # Panics
/// If a pair is out of range, or `n_users + n_items` does not fit in `u32` node ids.
pub fn bipartite_adjacency(
    n_users: usize,
    n_items: usize,
    pairs: &[(u32, u32)],
    self_loops: bool,
) -> CsrMatrix {
    let n = n_users + n_items;
    assert!(
        n <= u32::MAX as usize,
        "bipartite_adjacency: {n_users} users + {n_items} items do not fit u32 node ids"
    );
    if let Some((p, &(u, i))) = pairs
        .iter()
        .enumerate()
        .find(|(_, &(u, i))| u as usize >= n_users || i as usize >= n_items)
    {
        panic!(
            "bipartite_adjacency: pair {p} = (user {u}, item {i}) is out of range \
             ({n_users} users, {n_items} items)"
        );
    }
    let triplets: Vec<(u32, u32, f32)> = pairs.iter().map(|&(u, i)| (u, i, 1.0)).collect();
    // from_triplets sorts and merges duplicates; only the pattern is used afterwards, which
    // is what binarises R.
    let r = CsrMatrix::from_triplets(n_users, n_items, &triplets);
    let rt = r.transpose();

    let own = usize::from(self_loops);
    let degree = |node: usize| -> usize {
        own + if node < n_users {
            r.indptr[node + 1] - r.indptr[node]
        } else {
            let i = node - n_users;
            rt.indptr[i + 1] - rt.indptr[i]
        }
    };
    // f64 so that 1/sqrt(d_r) · 1/sqrt(d_c) is rounded once, to f32, and Â stays exactly
    // symmetric.
    let inv_sqrt: Vec<f64> = (0..n)
        .map(|node| match degree(node) {
            0 => 0.0,
            d => 1.0 / (d as f64).sqrt(),
        })
        .collect();

    let nnz = 2 * r.nnz() + if self_loops { n } else { 0 };
    let mut indptr = Vec::with_capacity(n + 1);
    let mut indices = Vec::with_capacity(nnz);
    let mut values = Vec::with_capacity(nnz);
    indptr.push(0);
    let weight = |row: usize, col: usize| (inv_sqrt[row] * inv_sqrt[col]) as f32;
    // Columns stay sorted: a user's own id precedes every item node, and an item's user
    // neighbours precede its own id.
    for u in 0..n_users {
        if self_loops {
            indices.push(u as u32);
            values.push(weight(u, u));
        }
        for &i in r.row(u).0 {
            let col = n_users + i as usize;
            indices.push(col as u32);
            values.push(weight(u, col));
        }
        indptr.push(indices.len());
    }
    for i in 0..n_items {
        let node = n_users + i;
        for &u in rt.row(i).0 {
            indices.push(u);
            values.push(weight(node, u as usize));
        }
        if self_loops {
            indices.push(node as u32);
            values.push(weight(node, node));
        }
        indptr.push(indices.len());
    }
    CsrMatrix {
        n_rows: n,
        n_cols: n,
        indptr,
        indices,
        values,
    }
}

/// Training-time edge dropout with reusable buffers (one per graph view, kept across steps).
#[derive(Clone, Debug, Default)]
pub struct EdgeDropout {
    dropped: CsrMatrix,
    dropped_t: CsrMatrix,
}

impl EdgeDropout {
    /// Empty buffers; they grow to the size of the graph on the first call.
    pub fn new() -> Self {
        Self::default()
    }

    /// Edge dropout as in RLMRec's `SpAdjEdgeDrop`: each *stored* entry of `adj` is kept
    /// independently with probability `keep_rate` (so the result is generally not
    /// symmetric), and kept values are not rescaled. `keep_rate >= 1` keeps everything,
    /// `<= 0` or NaN keeps nothing.
    ///
    /// Entry `e`'s fate is a hash of `(seed, e)`, so the result depends only on `seed` and
    /// `adj`. Returns the dropped matrix and its transpose, both living in `self`'s buffers.
    ///
    /// # Panics
    /// If `adj` is not a valid CSR matrix (see [`CsrMatrix::validate`]).
    pub fn apply(
        &mut self,
        adj: &CsrMatrix,
        keep_rate: f32,
        seed: u64,
    ) -> (&CsrMatrix, &CsrMatrix) {
        let d = &mut self.dropped;
        d.n_rows = adj.n_rows;
        d.n_cols = adj.n_cols;
        d.indptr.clear();
        d.indices.clear();
        d.values.clear();
        d.indptr.push(0);
        // Draw e + 1 of the stream `draw(seed, 1)`: the draws this dropout has always made,
        // so runs repeat across versions. 53 random bits, an exact fraction of 2^53, against
        // keep_rate: keep_rate = 1 keeps every entry and 0 none.
        let key = draw(seed, 1);
        let keep = f64::from(keep_rate);
        for r in 0..adj.n_rows {
            for e in adj.indptr[r]..adj.indptr[r + 1] {
                if unit_f64(draw(key, e as u64 + 1)) < keep {
                    d.indices.push(adj.indices[e]);
                    d.values.push(adj.values[e]);
                }
            }
            d.indptr.push(d.indices.len());
        }
        self.dropped.transpose_into(&mut self.dropped_t);
        (&self.dropped, &self.dropped_t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn dense(m: &CsrMatrix) -> Vec<f32> {
        let mut d = vec![0f32; m.n_rows * m.n_cols];
        for r in 0..m.n_rows {
            let (c, v) = m.row(r);
            for (&c, &v) in c.iter().zip(v) {
                d[r * m.n_cols + c as usize] += v;
            }
        }
        d
    }

    fn assert_close(got: &[f32], want: &[f32]) {
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!((g - w).abs() < 1e-6, "entry {i}: got {g}, want {w}");
        }
    }

    // Users u0, u1; items i0, i1, i2 (nodes 2, 3, 4). Interactions: u0–i0, u0–i1, u1–i1
    // (listed twice). i2 has no interaction: degree 0 without self loops.
    const PAIRS: [(u32, u32); 4] = [(0, 0), (0, 1), (1, 1), (1, 1)];

    #[test]
    fn adjacency_hand_computed_without_self_loops() {
        let a = bipartite_adjacency(2, 3, &PAIRS, false);
        a.validate().expect("valid");
        // Degrees: u0 2, u1 1, i0 1, i1 2, i2 0.
        let h = 0.5f32; // 1/sqrt(2·2)
        let s = 1.0 / 2f32.sqrt(); // 1/sqrt(2·1)
        #[rustfmt::skip]
        let want = [
            0.0, 0.0, s,   h,   0.0,
            0.0, 0.0, 0.0, s,   0.0,
            s,   0.0, 0.0, 0.0, 0.0,
            h,   s,   0.0, 0.0, 0.0,
            0.0, 0.0, 0.0, 0.0, 0.0,
        ];
        assert_close(&dense(&a), &want);
        assert_eq!(a.nnz(), 6, "the duplicated pair must count once");
        assert_eq!(a.row(4).0.len(), 0);
        assert!(a.values.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn adjacency_hand_computed_with_self_loops() {
        let a = bipartite_adjacency(2, 3, &PAIRS, true);
        a.validate().expect("valid");
        // Degrees with I: u0 3, u1 2, i0 2, i1 3, i2 1.
        let f = |x: f32, y: f32| 1.0 / (x * y).sqrt();
        #[rustfmt::skip]
        let want = [
            f(3.0, 3.0), 0.0,         f(3.0, 2.0), f(3.0, 3.0), 0.0,
            0.0,         f(2.0, 2.0), 0.0,         f(2.0, 3.0), 0.0,
            f(2.0, 3.0), 0.0,         f(2.0, 2.0), 0.0,         0.0,
            f(3.0, 3.0), f(3.0, 2.0), 0.0,         f(3.0, 3.0), 0.0,
            0.0,         0.0,         0.0,         0.0,         1.0,
        ];
        assert_close(&dense(&a), &want);
        for r in 0..a.n_rows {
            assert!(
                a.row(r).0.windows(2).all(|w| w[0] < w[1]),
                "row {r} unsorted"
            );
        }
    }

    #[test]
    fn adjacency_is_symmetric_on_random_graph() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let pairs: Vec<(u32, u32)> = (0..400)
            .map(|_| (rng.gen_range(0..37), rng.gen_range(0..53)))
            .collect();
        for self_loops in [false, true] {
            let a = bipartite_adjacency(37, 53, &pairs, self_loops);
            a.validate().expect("valid");
            assert_eq!(a.transpose(), a);
        }
    }

    #[test]
    #[should_panic(expected = "pair 1 = (user 0, item 3) is out of range")]
    fn adjacency_rejects_out_of_range_pairs() {
        bipartite_adjacency(2, 3, &[(0, 0), (0, 3)], false);
    }

    fn random_adjacency() -> CsrMatrix {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let pairs: Vec<(u32, u32)> = (0..5000)
            .map(|_| (rng.gen_range(0..300), rng.gen_range(0..400)))
            .collect();
        bipartite_adjacency(300, 400, &pairs, false)
    }

    #[test]
    fn edge_dropout_keeps_about_keep_rate() {
        let adj = random_adjacency();
        let nnz = adj.nnz() as f64;
        let mut drop = EdgeDropout::new();
        for &keep in &[0.1f32, 0.5, 0.8] {
            let (d, _) = drop.apply(&adj, keep, 11);
            d.validate().expect("valid");
            let frac = d.nnz() as f64 / nnz;
            // ~9.7k entries: the binomial standard deviation is under 0.0051.
            assert!(
                (frac - f64::from(keep)).abs() < 0.025,
                "keep {keep}: kept {frac}"
            );
        }
        assert_eq!(drop.apply(&adj, 1.0, 5).0, &adj);
        assert_eq!(drop.apply(&adj, 0.0, 5).0.nnz(), 0);
        assert_eq!(drop.apply(&adj, f32::NAN, 5).0.nnz(), 0);
    }

    #[test]
    fn edge_dropout_is_a_subset_and_not_symmetric() {
        let adj = random_adjacency();
        let full = dense(&adj);
        let mut drop = EdgeDropout::new();
        let (d, _) = drop.apply(&adj, 0.7, 3);
        let kept = dense(d);
        for (k, f) in kept.iter().zip(&full) {
            assert!(
                *k == 0.0 || k == f,
                "kept values must be unscaled originals"
            );
        }
        assert_ne!(&d.transpose(), d, "independent drops should break symmetry");
    }

    #[test]
    fn edge_dropout_same_seed_same_result() {
        let adj = random_adjacency();
        let mut a = EdgeDropout::new();
        let mut b = EdgeDropout::new();
        let first = a.apply(&adj, 0.6, 42).0.clone();
        // An intervening call with another seed must not leak into the next result.
        let other = a.apply(&adj, 0.6, 43).0.clone();
        assert_ne!(first, other);
        assert_eq!(a.apply(&adj, 0.6, 42).0, &first);
        assert_eq!(b.apply(&adj, 0.6, 42).0, &first);
    }

    #[test]
    fn edge_dropout_transpose_is_correct() {
        let adj = random_adjacency();
        let mut drop = EdgeDropout::new();
        for seed in 0..3 {
            let (d, dt) = drop.apply(&adj, 0.5, seed);
            dt.validate().expect("valid");
            assert_eq!(dt, &d.transpose());
            let (dd, ddt) = (dense(d), dense(dt));
            let n = d.n_rows;
            for r in 0..n {
                for c in 0..n {
                    assert_eq!(dd[r * n + c], ddt[c * n + r]);
                }
            }
        }
    }
}
