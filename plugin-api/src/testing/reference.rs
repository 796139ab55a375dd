//! The reference kernel table: every [`KernelTable`] method written as the plain loops of
//! its definition, accumulated in f64, so that plugin tests need no compute backend and a
//! backend can be checked against it ("the fast kernel against the naive one").
//!
//! Slow by design (full matrices, no tiling); meant for test-sized inputs.

use std::cmp::Ordering;

use abi_stable::std_types::{RErr, ROk, RResult, RSlice, RSliceMut, RString};

use super::pca::reduce;
use super::softmax::{nce, soft_ce, softmax_stats};
use crate::abi::*;
use crate::sdk::catch_panic;

/// The naive kernel table (see the module docs).
#[derive(Clone, Copy, Debug, Default)]
pub struct ReferenceKernels;

impl ReferenceKernels {
    /// Borrows `self` as the ABI trait object plugins receive.
    // Named like the CPU backend's method, so that tests swap one for the other.
    #[allow(clippy::should_implement_trait)]
    pub fn as_ref(&self) -> KernelsRef<'_> {
        kernels_ref(self)
    }
}

/// A kernel's result as the ABI returns it: an error or a panic becomes text naming it.
fn run<T>(kernel: &str, f: impl FnOnce() -> Result<T, String>) -> RResult<T, RString> {
    match catch_panic(f) {
        Ok(Ok(v)) => ROk(v),
        Ok(Err(e)) => RErr(format!("{kernel}: {e}").into()),
        Err(p) => RErr(format!("{kernel}: panicked: {p}").into()),
    }
}

/// Errors unless `arg` has `want` entries.
pub(super) fn expect_len(arg: &str, len: usize, want: usize) -> Result<(), String> {
    match len == want {
        true => Ok(()),
        false => Err(format!("`{arg}` has length {len}, expected {want}")),
    }
}

/// The number of `dim`-wide rows in `x`.
pub(super) fn rows_of(arg: &str, x: &[f32], dim: usize) -> Result<usize, String> {
    if dim == 0 || !x.len().is_multiple_of(dim) {
        return Err(format!(
            "`{arg}` has length {}, not a multiple of dim = {dim}",
            x.len()
        ));
    }
    Ok(x.len() / dim)
}

/// `a · b` in f64.
pub(super) fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| f64::from(x) * f64::from(y))
        .sum()
}

/// `s + beta · old`, with BLAS's convention that `beta = 0` does not read `old`.
fn blend(s: f64, beta: f32, old: f32) -> f32 {
    match beta == 0.0 {
        true => s as f32,
        false => (s + f64::from(beta) * f64::from(old)) as f32,
    }
}

fn spmm(a: &CsrView<'_>, x: &[f32], cols: usize, out: &mut [f32], beta: f32) -> Result<(), String> {
    expect_len("a.indptr", a.indptr.len(), a.n_rows + 1)?;
    let nnz = a.indptr[a.n_rows];
    expect_len("a.indices", a.indices.len(), nnz)?;
    expect_len("a.values", a.values.len(), nnz)?;
    expect_len("x", x.len(), a.n_cols * cols)?;
    expect_len("out", out.len(), a.n_rows * cols)?;
    for r in 0..a.n_rows {
        for c in 0..cols {
            let s: f64 = (a.indptr[r]..a.indptr[r + 1])
                .map(|e| f64::from(a.values[e]) * f64::from(x[a.indices[e] as usize * cols + c]))
                .sum();
            out[r * cols + c] = blend(s, beta, out[r * cols + c]);
        }
    }
    Ok(())
}

fn gemm(s: GemmSpec, a: &[f32], b: &[f32], c: &mut [f32]) -> Result<(), String> {
    let (m, n, k) = (s.m, s.n, s.k);
    expect_len("a", a.len(), m * k)?;
    expect_len("b", b.len(), k * n)?;
    expect_len("c", c.len(), m * n)?;
    let at = |i: usize, p: usize| {
        if s.trans_a {
            a[p * m + i]
        } else {
            a[i * k + p]
        }
    };
    let bt = |p: usize, j: usize| {
        if s.trans_b {
            b[j * k + p]
        } else {
            b[p * n + j]
        }
    };
    for i in 0..m {
        for j in 0..n {
            let sum: f64 = (0..k)
                .map(|p| f64::from(at(i, p)) * f64::from(bt(p, j)))
                .sum();
            c[i * n + j] = blend(f64::from(s.alpha) * sum, s.beta, c[i * n + j]);
        }
    }
    Ok(())
}

fn score_topk(req: &TopkRequest<'_>, ids: &mut [u32], scores: &mut [f32]) -> Result<(), String> {
    let (q, items, dim, k) = (req.queries.as_slice(), req.items.as_slice(), req.dim, req.k);
    let (rows, n) = (rows_of("queries", q, dim)?, rows_of("items", items, dim)?);
    expect_len("out_items", ids.len(), rows * k)?;
    expect_len("out_scores", scores.len(), rows * k)?;
    let ex = &req.exclude;
    if ex.n_rows != 0 && (ex.n_rows != rows || ex.n_cols != n) {
        return Err(format!(
            "`exclude` is {} × {}, expected {rows} × {n}",
            ex.n_rows, ex.n_cols
        ));
    }
    for r in 0..rows {
        let skip = match ex.n_rows {
            0 => &[][..],
            _ => &ex.indices.as_slice()[ex.indptr[r]..ex.indptr[r + 1]],
        };
        let qr = &q[r * dim..(r + 1) * dim];
        let mut ranked: Vec<(f32, u32)> = (0..n as u32)
            .filter(|i| !skip.contains(i))
            .map(|i| {
                (
                    dot(qr, &items[i as usize * dim..(i as usize + 1) * dim]) as f32,
                    i,
                )
            })
            .collect();
        // Best first, NaN below every number, ties by the lower id.
        ranked.sort_by(|x, y| {
            (x.0.is_nan().cmp(&y.0.is_nan()))
                .then(y.0.partial_cmp(&x.0).unwrap_or(Ordering::Equal))
                .then(x.1.cmp(&y.1))
        });
        for slot in 0..k {
            let (s, i) = ranked
                .get(slot)
                .copied()
                .unwrap_or((f32::NEG_INFINITY, u32::MAX));
            (ids[r * k + slot], scores[r * k + slot]) = (i, s);
        }
    }
    Ok(())
}

impl KernelTable for ReferenceKernels {
    fn spmm(
        &self,
        a: CsrView<'_>,
        x: RSlice<'_, f32>,
        cols: usize,
        out: RSliceMut<'_, f32>,
        beta: f32,
    ) -> RResult<(), RString> {
        run("spmm", || spmm(&a, &x, cols, out.into_mut_slice(), beta))
    }

    fn gemm(
        &self,
        spec: GemmSpec,
        a: RSlice<'_, f32>,
        b: RSlice<'_, f32>,
        c: RSliceMut<'_, f32>,
    ) -> RResult<(), RString> {
        run("gemm", || gemm(spec, &a, &b, c.into_mut_slice()))
    }

    fn score_topk(
        &self,
        req: TopkRequest<'_>,
        out_items: RSliceMut<'_, u32>,
        out_scores: RSliceMut<'_, f32>,
    ) -> RResult<(), RString> {
        run("score_topk", || {
            score_topk(
                &req,
                out_items.into_mut_slice(),
                out_scores.into_mut_slice(),
            )
        })
    }

    fn softmax_stats(
        &self,
        req: SoftmaxStatsRequest<'_>,
        lse: RSliceMut<'_, f32>,
        entropy: RSliceMut<'_, f32>,
    ) -> RResult<(), RString> {
        run("softmax_stats", || {
            softmax_stats(&req, lse.into_mut_slice(), entropy.into_mut_slice())
        })
    }

    fn soft_ce_all_items(
        &self,
        req: SoftCeRequest<'_>,
        d_users: RSliceMut<'_, f32>,
        d_items: RSliceMut<'_, f32>,
    ) -> RResult<f64, RString> {
        run("soft_ce_all_items", || {
            soft_ce(&req, d_users.into_mut_slice(), d_items.into_mut_slice())
        })
    }

    fn info_nce(
        &self,
        req: InfoNceRequest<'_>,
        d_a: RSliceMut<'_, f32>,
        d_b: RSliceMut<'_, f32>,
    ) -> RResult<f64, RString> {
        run("info_nce", || {
            let n = rows_of("a", &req.a, req.dim)?;
            let pairs: Vec<u32> = (0..n as u32).flat_map(|r| [r, r]).collect();
            let ops = (&req.a[..], &req.b[..], req.dim);
            let (d_a, d_b) = (d_a.into_mut_slice(), d_b.into_mut_slice());
            nce(ops, &[], &pairs, (req.tau, req.eps, req.weight), d_a, d_b)
        })
    }

    fn info_nce_pairs(
        &self,
        req: PairedNceRequest<'_>,
        d_a: RSliceMut<'_, f32>,
        d_b: RSliceMut<'_, f32>,
    ) -> RResult<f64, RString> {
        run("info_nce_pairs", || {
            let ops = (&req.a[..], &req.b[..], req.dim);
            let scale = (req.tau, req.eps, req.weight);
            let (d_a, d_b) = (d_a.into_mut_slice(), d_b.into_mut_slice());
            nce(ops, &req.col_counts, &req.pairs, scale, d_a, d_b)
        })
    }

    fn reduce_profiles(
        &self,
        req: ReduceRequest<'_>,
        out_users: RSliceMut<'_, f32>,
        out_items: RSliceMut<'_, f32>,
    ) -> RResult<(), RString> {
        run("reduce_profiles", || {
            reduce(&req, out_users.into_mut_slice(), out_items.into_mut_slice())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_cases_by_hand_and_errors_as_text() {
        let k = ReferenceKernels.as_ref();
        // A = [[0, 2], [1, 0]], x = (3, 4), out = A·x + 1·(1, 1).
        let (indptr, indices, values) = ([0usize, 1, 2], [1u32, 0], [2f32, 1.0]);
        let a = CsrView {
            n_rows: 2,
            n_cols: 2,
            indptr: indptr[..].into(),
            indices: indices[..].into(),
            values: values[..].into(),
        };
        let mut out = [1f32, 1.0];
        let r = k.spmm(a, [3f32, 4.0][..].into(), 1, (&mut out[..]).into(), 1.0);
        assert!(r.is_ok());
        assert_eq!(out, [9.0, 4.0]);
        let mut short = [0f32; 3];
        let r = k.spmm(a, [3f32, 4.0][..].into(), 1, (&mut short[..]).into(), 0.0);
        let e = r.into_result().unwrap_err().into_string();
        assert_eq!(e, "spmm: `out` has length 3, expected 2");
        let spec = GemmSpec {
            m: 1,
            n: 1,
            k: 2,
            trans_a: false,
            trans_b: true,
            alpha: 2.0,
            beta: 0.0,
        };
        let mut c = [f32::NAN];
        let r = k.gemm(
            spec,
            [1f32, 2.0][..].into(),
            [3f32, 4.0][..].into(),
            (&mut c[..]).into(),
        );
        assert!(r.is_ok());
        assert_eq!(c, [22.0]);
    }
}
