//! Owned compressed-sparse-row matrices, and the structural check every kernel runs on the
//! borrowed [`CsrView`]s it receives.

use promax_plugin_api::CsrView;

use crate::KernelError;

/// A compressed-sparse-row `f32` matrix.
///
/// Row `r` holds `indices[indptr[r]..indptr[r + 1]]` (column ids) and the matching `values`.
/// Matrices built by this crate keep `indptr[0] == 0` and columns ascending within each row.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CsrMatrix {
    pub n_rows: usize,
    pub n_cols: usize,
    /// `n_rows + 1` offsets into `indices` / `values` (empty for a default, 0 × 0 matrix).
    pub indptr: Vec<usize>,
    pub indices: Vec<u32>,
    pub values: Vec<f32>,
}

impl CsrMatrix {
    /// Builds a matrix from `(row, col, value)` triplets in any order: columns end up sorted
    /// within each row, and duplicate `(row, col)` entries are summed (in input order, so the
    /// result is deterministic).
    ///
    /// # Panics
    /// If a triplet lies outside `n_rows × n_cols`, or `n_cols` does not fit in `u32`.
    pub fn from_triplets(n_rows: usize, n_cols: usize, triplets: &[(u32, u32, f32)]) -> CsrMatrix {
        assert!(
            n_cols <= u32::MAX as usize + 1,
            "CsrMatrix::from_triplets: n_cols = {n_cols} does not fit u32 column ids"
        );
        let mut indptr = vec![0usize; n_rows + 1];
        for (t, &(r, c, _)) in triplets.iter().enumerate() {
            assert!(
                (r as usize) < n_rows && (c as usize) < n_cols,
                "CsrMatrix::from_triplets: triplet {t} = ({r}, {c}) is outside {n_rows} × {n_cols}"
            );
            indptr[r as usize + 1] += 1;
        }
        for r in 0..n_rows {
            indptr[r + 1] += indptr[r];
        }
        // Bucket by row (a stable counting sort keeps input order within a row) ...
        let mut next = indptr.clone();
        let mut entries = vec![(0u32, 0f32); triplets.len()];
        for &(r, c, v) in triplets {
            let slot = &mut next[r as usize];
            entries[*slot] = (c, v);
            *slot += 1;
        }
        // ... then sort each row by column (stable again, so duplicates are summed in input
        // order) and merge duplicates while compacting in place: the write position never
        // passes the read position.
        // After bucketing, next[r] is row r's end in `entries`; indptr is rewritten with the
        // compacted offsets as we go, so it cannot serve.
        let (mut w, mut start) = (0, 0);
        for r in 0..n_rows {
            let end = next[r];
            entries[start..end].sort_by_key(|&(c, _)| c);
            let row_start = w;
            for i in start..end {
                let (c, v) = entries[i];
                if w > row_start && entries[w - 1].0 == c {
                    entries[w - 1].1 += v;
                } else {
                    entries[w] = (c, v);
                    w += 1;
                }
            }
            indptr[r + 1] = w;
            start = end;
        }
        entries.truncate(w);
        let (indices, values) = entries.into_iter().unzip();
        CsrMatrix {
            n_rows,
            n_cols,
            indptr,
            indices,
            values,
        }
    }

    /// Borrows the matrix as the ABI view kernels take.
    pub fn view(&self) -> CsrView<'_> {
        CsrView {
            n_rows: self.n_rows,
            n_cols: self.n_cols,
            indptr: self.indptr.as_slice().into(),
            indices: self.indices.as_slice().into(),
            values: self.values.as_slice().into(),
        }
    }

    /// The transpose (columns sorted within each row).
    pub fn transpose(&self) -> CsrMatrix {
        let mut out = CsrMatrix::default();
        self.transpose_into(&mut out);
        out
    }

    /// Writes the transpose into `out`, reusing its buffers: a counting sort by column, O(nnz),
    /// that visits rows in order so each output row's columns come out sorted.
    ///
    /// # Panics
    /// If `self` is not a valid CSR matrix (see [`CsrMatrix::validate`]).
    pub fn transpose_into(&self, out: &mut CsrMatrix) {
        out.n_rows = self.n_cols;
        out.n_cols = self.n_rows;
        out.indptr.clear();
        out.indptr.resize(self.n_cols + 1, 0);
        let (lo, hi) = self.entry_range();
        for &c in &self.indices[lo..hi] {
            out.indptr[c as usize + 1] += 1;
        }
        for c in 0..self.n_cols {
            out.indptr[c + 1] += out.indptr[c];
        }
        let nnz = hi - lo;
        out.indices.clear();
        out.indices.resize(nnz, 0);
        out.values.clear();
        out.values.resize(nnz, 0.0);
        // indptr[c] serves as column c's write cursor; afterwards it holds the end of column
        // c, i.e. the start of c + 1, so one shift restores the offsets without a second
        // buffer.
        for r in 0..self.n_rows {
            for e in self.indptr[r]..self.indptr[r + 1] {
                let c = self.indices[e] as usize;
                let slot = out.indptr[c];
                out.indices[slot] = r as u32;
                out.values[slot] = self.values[e];
                out.indptr[c] = slot + 1;
            }
        }
        out.indptr.copy_within(0..self.n_cols, 1);
        out.indptr[0] = 0;
    }

    /// Column ids and values of row `r`.
    ///
    /// # Panics
    /// If `r >= n_rows`.
    pub fn row(&self, r: usize) -> (&[u32], &[f32]) {
        let (s, e) = (self.indptr[r], self.indptr[r + 1]);
        (&self.indices[s..e], &self.values[s..e])
    }

    /// Number of stored entries.
    pub fn nnz(&self) -> usize {
        let (lo, hi) = self.entry_range();
        hi - lo
    }

    /// Checks the structure: `n_rows + 1` non-decreasing offsets within `indices`, as many
    /// values as indices, every column id below `n_cols`.
    pub fn validate(&self) -> Result<(), KernelError> {
        check_csr("CsrMatrix::validate", "self", &self.view())
    }

    fn entry_range(&self) -> (usize, usize) {
        match (self.indptr.first(), self.indptr.last()) {
            (Some(&lo), Some(&hi)) => (lo, hi),
            _ => (0, 0),
        }
    }
}

/// Checks that `v` is a usable CSR matrix, so that kernels can index it without panicking.
///
/// Row offsets are absolute positions in `indices` / `values`, and `indptr[0]` need not be 0,
/// so a view of a block of rows of a larger matrix works without copying. A view with
/// `n_rows == 0` may have an empty `indptr` (a default [`CsrMatrix`]).
pub(crate) fn check_csr(kernel: &str, arg: &str, v: &CsrView<'_>) -> Result<(), KernelError> {
    let indptr = v.indptr.as_slice();
    let shape = |msg: String| Err(KernelError::Shape(format!("{kernel}: `{arg}`: {msg}")));
    if v.n_rows == 0 && indptr.is_empty() {
        return Ok(());
    }
    if indptr.len() != v.n_rows + 1 {
        return shape(format!(
            "indptr has length {}, expected n_rows + 1 = {}",
            indptr.len(),
            v.n_rows + 1
        ));
    }
    if v.indices.len() != v.values.len() {
        return shape(format!(
            "indices has length {} but values has length {}",
            v.indices.len(),
            v.values.len()
        ));
    }
    if let Some(r) = indptr.windows(2).position(|w| w[0] > w[1]) {
        return shape(format!(
            "indptr decreases at row {r} ({} > {})",
            indptr[r],
            indptr[r + 1]
        ));
    }
    let (lo, hi) = (indptr[0], indptr[v.n_rows]);
    if hi > v.indices.len() {
        return shape(format!(
            "indptr ends at {hi}, past the {} stored entries",
            v.indices.len()
        ));
    }
    let used = &v.indices.as_slice()[lo..hi];
    // A max-reduction vectorises; only when it fails do we search for the culprit.
    let max = used.iter().copied().max().unwrap_or(0);
    if used.is_empty() || (max as usize) < v.n_cols {
        return Ok(());
    }
    let bad = used
        .iter()
        .position(|&c| c as usize >= v.n_cols)
        .map_or(lo, |p| lo + p);
    shape(format!(
        "entry {bad} has column {}, but n_cols = {}",
        v.indices[bad], v.n_cols
    ))
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

    fn random_triplets(
        rng: &mut ChaCha8Rng,
        rows: u32,
        cols: u32,
        n: usize,
    ) -> Vec<(u32, u32, f32)> {
        (0..n)
            .map(|_| {
                (
                    rng.gen_range(0..rows),
                    rng.gen_range(0..cols),
                    rng.gen_range(-1.0f32..1.0),
                )
            })
            .collect()
    }

    #[test]
    fn from_triplets_sorts_and_sums_duplicates() {
        let t = [
            (1, 2, 1.0),
            (0, 1, 2.0),
            (1, 0, 3.0),
            (1, 2, 0.5),
            (0, 1, -1.0),
        ];
        let m = CsrMatrix::from_triplets(3, 4, &t);
        assert_eq!(m.indptr, vec![0, 1, 3, 3]);
        assert_eq!(m.indices, vec![1, 0, 2]);
        assert_eq!(m.values, vec![1.0, 3.0, 1.5]);
        assert_eq!(m.nnz(), 3);
        assert_eq!(m.row(2), (&[][..], &[][..]));
        m.validate().expect("valid");
    }

    #[test]
    fn from_triplets_matches_dense_accumulation() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for &(rows, cols, n) in &[(1, 1, 3), (7, 5, 40), (13, 29, 200), (30, 2, 100)] {
            let t = random_triplets(&mut rng, rows, cols, n);
            let m = CsrMatrix::from_triplets(rows as usize, cols as usize, &t);
            m.validate().expect("valid");
            let mut want = vec![0f32; (rows * cols) as usize];
            for &(r, c, v) in &t {
                want[(r * cols + c) as usize] += v;
            }
            let got = dense(&m);
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() < 1e-5, "{g} vs {w}");
            }
            for r in 0..m.n_rows {
                let (c, _) = m.row(r);
                assert!(
                    c.windows(2).all(|w| w[0] < w[1]),
                    "row {r} not strictly sorted"
                );
            }
        }
    }

    #[test]
    #[should_panic(expected = "outside 2 × 2")]
    fn from_triplets_rejects_out_of_range() {
        CsrMatrix::from_triplets(2, 2, &[(0, 2, 1.0)]);
    }

    #[test]
    fn transpose_round_trip_and_values() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        for &(rows, cols, n) in &[(1, 1, 1), (9, 4, 30), (17, 33, 150), (5, 40, 0)] {
            let m = CsrMatrix::from_triplets(
                rows,
                cols,
                &random_triplets(&mut rng, rows as u32, cols as u32, n),
            );
            let t = m.transpose();
            t.validate().expect("valid transpose");
            assert_eq!((t.n_rows, t.n_cols), (cols, rows));
            let (dm, dt) = (dense(&m), dense(&t));
            for r in 0..rows {
                for c in 0..cols {
                    assert_eq!(dm[r * cols + c], dt[c * rows + r]);
                }
            }
            assert_eq!(t.transpose(), m);
            // Reusing a buffer that held something larger must not leak old entries.
            let mut reuse =
                CsrMatrix::from_triplets(50, 50, &random_triplets(&mut rng, 50, 50, 300));
            m.transpose_into(&mut reuse);
            assert_eq!(reuse, t);
        }
    }

    #[test]
    fn check_csr_reports_each_problem() {
        let m = CsrMatrix::from_triplets(2, 3, &[(0, 1, 1.0), (1, 2, 2.0)]);
        assert!(check_csr("k", "a", &m.view()).is_ok());
        assert!(check_csr("k", "a", &CsrMatrix::default().view()).is_ok());
        let mut bad = m.clone();
        bad.indptr.pop();
        let e = check_csr("k", "a", &bad.view()).unwrap_err().to_string();
        assert!(
            e.contains("indptr has length 2, expected n_rows + 1 = 3"),
            "{e}"
        );
        let mut bad = m.clone();
        bad.indices[1] = 3;
        let e = check_csr("k", "a", &bad.view()).unwrap_err().to_string();
        assert!(e.contains("entry 1 has column 3, but n_cols = 3"), "{e}");
        let mut bad = m.clone();
        bad.values.pop();
        assert!(check_csr("k", "a", &bad.view()).is_err());
        let mut bad = m.clone();
        bad.indptr = vec![0, 2, 1];
        let e = check_csr("k", "a", &bad.view()).unwrap_err().to_string();
        assert!(e.contains("indptr decreases at row 1"), "{e}");
        let mut bad = m;
        bad.indptr = vec![0, 1, 5];
        assert!(check_csr("k", "a", &bad.view()).is_err());
    }
}
