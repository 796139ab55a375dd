//! Graphs for plugin tests, built the plain way: the normalised bipartite adjacency of
//! LightGCN-style models and training-time edge dropout, as the host builds them
//! (`promax_kernels::graph` is checked against these, entry for entry).

use std::collections::BTreeSet;

use crate::abi::CsrView;
use crate::sdk::rng::{draw, unit_f64};

/// An owned compressed-sparse-row matrix (columns ascending within each row).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Csr {
    /// Number of rows.
    pub n_rows: usize,
    /// Number of columns.
    pub n_cols: usize,
    /// `n_rows + 1` offsets into `indices` / `values`.
    pub indptr: Vec<usize>,
    /// Column of every stored entry.
    pub indices: Vec<u32>,
    /// Value of every stored entry.
    pub values: Vec<f32>,
}

impl Csr {
    /// From rows of (column, value) entries, in the order given.
    fn from_rows(n_cols: usize, rows: &[Vec<(u32, f32)>]) -> Csr {
        let mut m = Csr {
            n_rows: rows.len(),
            n_cols,
            indptr: vec![0],
            ..Csr::default()
        };
        for row in rows {
            for &(c, v) in row {
                m.indices.push(c);
                m.values.push(v);
            }
            m.indptr.push(m.indices.len());
        }
        m
    }

    /// The entries of row `r`, as (column, value).
    fn row(&self, r: usize) -> impl Iterator<Item = (u32, f32)> + '_ {
        let e = self.indptr[r]..self.indptr[r + 1];
        self.indices[e.clone()]
            .iter()
            .copied()
            .zip(self.values[e].iter().copied())
    }

    /// Borrowed, as the ABI passes it.
    pub fn view(&self) -> CsrView<'_> {
        CsrView {
            n_rows: self.n_rows,
            n_cols: self.n_cols,
            indptr: self.indptr.as_slice().into(),
            indices: self.indices.as_slice().into(),
            values: self.values.as_slice().into(),
        }
    }

    /// The transpose.
    pub fn transpose(&self) -> Csr {
        let mut rows = vec![Vec::new(); self.n_cols];
        for r in 0..self.n_rows {
            for (c, v) in self.row(r) {
                rows[c as usize].push((r as u32, v));
            }
        }
        Csr::from_rows(self.n_rows, &rows)
    }
}

/// `Â = D^-1/2 A D^-1/2` over users then items, `A = [[0, R], [Rᵀ, 0]]` from the distinct
/// (user, item) `pairs`, plus the identity when `self_loops`; a node of degree 0 keeps an
/// empty row. Each entry is `1/sqrt(d_r) · 1/sqrt(d_c)` in f64, rounded once to f32.
///
/// # Panics
/// If a pair is out of range (a broken test fixture).
pub fn bipartite_adjacency(
    n_users: usize,
    n_items: usize,
    pairs: &[(u32, u32)],
    self_loops: bool,
) -> Csr {
    let n = n_users + n_items;
    let mut edges = BTreeSet::new();
    for &(u, i) in pairs {
        assert!(
            (u as usize) < n_users && (i as usize) < n_items,
            "pair ({u}, {i}) is out of range ({n_users} users, {n_items} items)"
        );
        let (u, i) = (u as usize, n_users + i as usize);
        edges.insert((u, i));
        edges.insert((i, u));
    }
    if self_loops {
        edges.extend((0..n).map(|v| (v, v)));
    }
    let mut degree = vec![0usize; n];
    edges.iter().for_each(|&(r, _)| degree[r] += 1);
    let inv_sqrt = |v: usize| match degree[v] {
        0 => 0.0,
        d => 1.0 / (d as f64).sqrt(),
    };
    let mut rows = vec![Vec::new(); n];
    for &(r, c) in &edges {
        rows[r].push((c as u32, (inv_sqrt(r) * inv_sqrt(c)) as f32));
    }
    Csr::from_rows(n, &rows)
}

/// Edge dropout as the host applies it: stored entry `e` (row-major order) of `adj` is
/// kept when draw `e + 1` of the stream `draw(seed, 1)` is below `keep_rate` (53-bit
/// uniform), values not rescaled. Returns the dropped matrix and its transpose.
pub fn drop_edges(adj: &Csr, keep_rate: f32, seed: u64) -> (Csr, Csr) {
    let key = draw(seed, 1);
    let keep = f64::from(keep_rate);
    let rows: Vec<Vec<(u32, f32)>> = (0..adj.n_rows)
        .map(|r| {
            let entries = (adj.indptr[r]..).zip(adj.row(r));
            let kept = entries.filter(|&(e, _)| unit_f64(draw(key, e as u64 + 1)) < keep);
            kept.map(|(_, entry)| entry).collect()
        })
        .collect();
    let dropped = Csr::from_rows(adj.n_cols, &rows);
    let dropped_t = dropped.transpose();
    (dropped, dropped_t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adjacency_of_one_edge_and_of_a_self_looped_pair() {
        let a = bipartite_adjacency(1, 1, &[(0, 0), (0, 0)], false);
        assert_eq!(
            (a.indptr, a.indices, a.values),
            (vec![0, 1, 2], vec![1, 0], vec![1.0, 1.0])
        );
        let a = bipartite_adjacency(1, 1, &[(0, 0)], true);
        assert_eq!(a.values, [0.5; 4]);
        assert_eq!(a, a.transpose());
    }

    #[test]
    fn dropout_keeps_all_none_or_some() {
        let a = bipartite_adjacency(4, 5, &[(0, 0), (0, 1), (1, 1), (2, 3), (3, 4)], false);
        assert_eq!(drop_edges(&a, 1.0, 3).0, a);
        assert!(drop_edges(&a, 0.0, 3).0.indices.is_empty());
        let (d, dt) = drop_edges(&a, 0.6, 11);
        assert!(d.indices.len() < a.indices.len() && dt == d.transpose());
    }
}
