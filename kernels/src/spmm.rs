//! Sparse (CSR) × dense products: one propagation step of a graph model.

use promax_plugin_api::CsrView;
use rayon::prelude::*;

use crate::csr::check_csr;
use crate::{check_len, checked_mul, KernelError, KernelPath};

/// Rows per rayon task. Graph rows are short (~12 nonzeros here), so a block must hold many
/// of them to outweigh scheduling, yet blocks must be numerous enough for work stealing to
/// even out skewed (power-law) degrees.
const ROWS_PER_BLOCK: usize = 64;

/// `out = A · x + beta · out`, where `x` is `a.n_cols × cols` and `out` is `a.n_rows × cols`,
/// both row-major.
///
/// `beta == 0` overwrites `out` (NaN or garbage in it is ignored), as in BLAS. Each output row
/// starts from `beta · out` and adds `A[r, j] · x[j]` in the row's stored order, on one
/// thread, so the result does not depend on the number of threads.
pub fn spmm(
    a: &CsrView<'_>,
    x: &[f32],
    cols: usize,
    out: &mut [f32],
    beta: f32,
) -> Result<(), KernelError> {
    const K: &str = "spmm";
    check_csr(K, "a", a)?;
    let x_len = checked_mul(K, "a.n_cols × cols", a.n_cols, cols)?;
    check_len(
        K,
        "x",
        x.len(),
        x_len,
        format_args!("a.n_cols × cols = {} × {cols}", a.n_cols),
    )?;
    let out_len = checked_mul(K, "a.n_rows × cols", a.n_rows, cols)?;
    check_len(
        K,
        "out",
        out.len(),
        out_len,
        format_args!("a.n_rows × cols = {} × {cols}", a.n_rows),
    )?;
    if out.is_empty() {
        return Ok(());
    }
    let (indptr, indices, values) = (
        a.indptr.as_slice(),
        a.indices.as_slice(),
        a.values.as_slice(),
    );
    let rows = RowsKernel {
        indptr,
        indices,
        values,
        x,
        cols,
        beta,
        path: crate::simd::active(),
    };
    out.par_chunks_mut(ROWS_PER_BLOCK * cols)
        .enumerate()
        .for_each(|(block, chunk)| rows.run(block * ROWS_PER_BLOCK, chunk));
    Ok(())
}

/// One block of output rows. The embedding widths of our models (16, 32, 64, 96) get a
/// fixed-width path whose accumulator lives in registers; on x86-64 it is compiled again for
/// AVX-512F and for AVX2 and picked by the kernel path, since the default target only
/// assumes SSE2. Every path does the same multiplications and additions in the same order
/// (no FMA contraction), so the result does not depend on which one runs (tested).
struct RowsKernel<'a> {
    indptr: &'a [usize],
    indices: &'a [u32],
    values: &'a [f32],
    x: &'a [f32],
    cols: usize,
    beta: f32,
    path: KernelPath,
}

impl RowsKernel<'_> {
    fn run(&self, first: usize, chunk: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        match self.path {
            // SAFETY (both): the guard checks that the CPU supports the path's features.
            KernelPath::Avx512 if self.path.supported() => {
                unsafe { self.run_avx512(first, chunk) };
                return;
            }
            KernelPath::Avx2 if self.path.supported() => {
                unsafe { self.run_avx2(first, chunk) };
                return;
            }
            _ => {}
        }
        self.dispatch(first, chunk);
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn run_avx512(&self, first: usize, chunk: &mut [f32]) {
        self.dispatch(first, chunk);
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn run_avx2(&self, first: usize, chunk: &mut [f32]) {
        self.dispatch(first, chunk);
    }

    #[inline(always)]
    fn dispatch(&self, first: usize, chunk: &mut [f32]) {
        match self.cols {
            16 => self.fixed::<16>(first, chunk),
            32 => self.fixed::<32>(first, chunk),
            64 => self.fixed::<64>(first, chunk),
            96 => self.fixed::<96>(first, chunk),
            _ => self.general(first, chunk),
        }
    }

    #[inline(always)]
    fn scale(&self, row: &mut [f32]) {
        if self.beta == 0.0 {
            row.fill(0.0);
        } else if self.beta != 1.0 {
            row.iter_mut().for_each(|o| *o *= self.beta);
        }
    }

    #[inline(always)]
    fn fixed<const C: usize>(&self, first: usize, chunk: &mut [f32]) {
        for (i, row) in chunk.chunks_exact_mut(C).enumerate() {
            let r = first + i;
            self.scale(row);
            let mut acc = [0f32; C];
            acc.copy_from_slice(row);
            for e in self.indptr[r]..self.indptr[r + 1] {
                let j = self.indices[e] as usize;
                let v = self.values[e];
                let xj = &self.x[j * C..(j + 1) * C];
                for c in 0..C {
                    acc[c] += v * xj[c];
                }
            }
            row.copy_from_slice(&acc);
        }
    }

    #[inline(always)]
    fn general(&self, first: usize, chunk: &mut [f32]) {
        let cols = self.cols;
        for (i, row) in chunk.chunks_exact_mut(cols).enumerate() {
            let r = first + i;
            self.scale(row);
            for e in self.indptr[r]..self.indptr[r + 1] {
                let j = self.indices[e] as usize;
                let v = self.values[e];
                let xj = &self.x[j * cols..(j + 1) * cols];
                for (o, &xv) in row.iter_mut().zip(xj) {
                    *o += v * xv;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CsrMatrix;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn random_csr(rng: &mut ChaCha8Rng, rows: usize, cols: usize, nnz: usize) -> CsrMatrix {
        let t: Vec<(u32, u32, f32)> = (0..nnz)
            .map(|_| {
                (
                    rng.gen_range(0..rows as u32),
                    rng.gen_range(0..cols as u32),
                    rng.gen_range(-1.0..1.0),
                )
            })
            .collect();
        CsrMatrix::from_triplets(rows, cols, &t)
    }

    fn naive(a: &CsrMatrix, x: &[f32], cols: usize, out: &mut [f32], beta: f32) {
        for r in 0..a.n_rows {
            for c in 0..cols {
                let mut s = 0f64;
                let (idx, val) = a.row(r);
                for (&j, &v) in idx.iter().zip(val) {
                    s += f64::from(v) * f64::from(x[j as usize * cols + c]);
                }
                let o = &mut out[r * cols + c];
                *o = (s + if beta == 0.0 {
                    0.0
                } else {
                    f64::from(beta) * f64::from(*o)
                }) as f32;
            }
        }
    }

    #[test]
    fn matches_naive_on_random_odd_shapes() {
        let mut rng = ChaCha8Rng::seed_from_u64(10);
        for &(rows, inner, cols, nnz) in &[
            (1, 1, 1, 1),
            (3, 5, 7, 9),
            (65, 33, 3, 400),
            (200, 131, 32, 2000),
            (129, 7, 17, 0),
        ] {
            let a = random_csr(&mut rng, rows, inner, nnz);
            let x: Vec<f32> = (0..inner * cols)
                .map(|_| rng.gen_range(-1.0..1.0))
                .collect();
            let init: Vec<f32> = (0..rows * cols).map(|_| rng.gen_range(-1.0..1.0)).collect();
            for beta in [0.0f32, 1.0, -0.5] {
                let mut got = init.clone();
                let mut want = init.clone();
                spmm(&a.view(), &x, cols, &mut got, beta).expect("shapes agree");
                naive(&a, &x, cols, &mut want, beta);
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        (g - w).abs() < 1e-4,
                        "{rows}x{inner}x{cols} beta {beta} [{i}]: {g} vs {w}"
                    );
                }
            }
        }
    }

    #[test]
    fn every_kernel_path_gives_the_same_bits() {
        let mut rng = ChaCha8Rng::seed_from_u64(12);
        for cols in [16, 32, 64, 96, 7] {
            let a = random_csr(&mut rng, 150, 120, 1500);
            let x: Vec<f32> = (0..120 * cols).map(|_| rng.gen_range(-1.0..1.0)).collect();
            let init: Vec<f32> = (0..150 * cols).map(|_| rng.gen_range(-1.0..1.0)).collect();
            let run = |path: KernelPath| {
                let mut out = init.clone();
                let k = RowsKernel {
                    indptr: &a.indptr,
                    indices: &a.indices,
                    values: &a.values,
                    x: &x,
                    cols,
                    beta: -0.5,
                    path,
                };
                k.run(0, &mut out);
                out
            };
            let want = run(KernelPath::Portable);
            let mut naive_out = init.clone();
            naive(&a, &x, cols, &mut naive_out, -0.5);
            for (g, w) in want.iter().zip(&naive_out) {
                assert!((g - w).abs() < 1e-4, "width {cols}: {g} vs {w}");
            }
            for path in crate::simd::PATHS.into_iter().filter(|p| p.supported()) {
                assert!(
                    run(path) == want,
                    "width {cols}: {path:?} differs from portable"
                );
            }
        }
    }

    #[test]
    fn beta_zero_ignores_nan_in_out() {
        let a = CsrMatrix::from_triplets(2, 2, &[(0, 1, 2.0), (1, 0, 1.0)]);
        let mut out = vec![f32::NAN; 4];
        spmm(&a.view(), &[1.0, 2.0, 3.0, 4.0], 2, &mut out, 0.0).expect("shapes agree");
        assert_eq!(out, vec![6.0, 8.0, 1.0, 2.0]);
    }

    #[test]
    fn same_result_for_any_thread_count() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let a = random_csr(&mut rng, 1000, 800, 20000);
        let x: Vec<f32> = (0..800 * 16).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("pool");
            let mut out = vec![0.5f32; 1000 * 16];
            pool.install(|| spmm(&a.view(), &x, 16, &mut out, 1.0))
                .expect("shapes agree");
            out
        };
        assert_eq!(run(1), run(3));
    }

    #[test]
    fn shape_mismatches_are_errors() {
        let a = CsrMatrix::from_triplets(2, 3, &[(0, 1, 1.0)]);
        let mut out = vec![0f32; 4];
        let e = spmm(&a.view(), &[0.0; 5], 2, &mut out, 0.0)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "spmm: `x` has length 5, expected 6 (a.n_cols × cols = 3 × 2)"
        );
        let e = spmm(&a.view(), &[0.0; 6], 2, &mut out[..3], 0.0)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "spmm: `out` has length 3, expected 4 (a.n_rows × cols = 2 × 2)"
        );
        let mut bad = a.clone();
        bad.indices[0] = 7;
        let e = spmm(&bad.view(), &[0.0; 6], 2, &mut out, 0.0)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("spmm: `a`: entry 0 has column 7"), "{e}");
    }
}
