//! Dense row-major `f32` matrix products (matrixmultiply through ndarray).

use ndarray::{linalg::general_mat_mul, ArrayView2, ArrayViewMut2, Axis};
use promax_plugin_api::GemmSpec;
use rayon::prelude::*;

use crate::{check_len, checked_mul, KernelError};

/// Below this many flops (2·m·n·k) a product runs on the calling thread: splitting it would
/// cost more in task startup and repeated packing than it saves.
const PAR_MIN_FLOPS: usize = 1 << 23;

/// Slabs of C are multiples of matrixmultiply's register tile (16 × 16 with AVX-512, 8 × 8
/// with AVX2) so that only the last one ends in a slower partial tile.
const REGISTER_TILE: usize = 16;

/// Smallest slab of C one task computes along the split axis.
const MIN_SLAB: usize = 64;

/// `C = alpha · op(A) · op(B) + beta · C`, with `op(A)` `m × k` and `op(B)` `k × n`, all
/// row-major. `A` is stored as it is before `op`: `k × m` when `trans_a`, else `m × k`; `B`
/// likewise. `beta == 0` overwrites `C` (NaN in it is ignored).
///
/// Large products are split along the larger of `m` and `n` into slabs computed on the rayon
/// pool. Each element of C is still a single run over `k`, so the result does not depend on
/// the thread count.
pub fn gemm(spec: GemmSpec, a: &[f32], b: &[f32], c: &mut [f32]) -> Result<(), KernelError> {
    let (a, b, mut c) = views("gemm", &spec, a, b, c)?;
    let GemmSpec {
        m,
        n,
        k,
        alpha,
        beta,
        ..
    } = spec;
    let flops = 2usize.saturating_mul(m).saturating_mul(n).saturating_mul(k);
    let threads = rayon::current_num_threads();
    let (axis, len) = if m >= n { (Axis(0), m) } else { (Axis(1), n) };
    if flops < PAR_MIN_FLOPS || threads < 2 || len < 2 * MIN_SLAB {
        general_mat_mul(alpha, &a, &b, beta, &mut c);
        return Ok(());
    }
    let slab = len
        .div_ceil(threads)
        .next_multiple_of(REGISTER_TILE)
        .max(MIN_SLAB);
    // Splitting C's rows pairs each slab with the same rows of op(A); splitting its columns,
    // with the same columns of op(B).
    let slabs: Vec<_> = c.axis_chunks_iter_mut(axis, slab).collect();
    slabs
        .into_par_iter()
        .enumerate()
        .for_each(|(s, mut c_slab)| {
            let range = s * slab..(s * slab + slab).min(len);
            if axis == Axis(0) {
                let a_slab = a.slice_axis(Axis(0), range.into());
                general_mat_mul(alpha, &a_slab, &b, beta, &mut c_slab);
            } else {
                let b_slab = b.slice_axis(Axis(1), range.into());
                general_mat_mul(alpha, &a, &b_slab, beta, &mut c_slab);
            }
        });
    Ok(())
}

/// [`gemm`] on the calling thread only: for callers already running inside a rayon task
/// over independent pieces (as [`crate::topk::score_topk`] does per tile).
pub(crate) fn gemm_seq(
    spec: GemmSpec,
    a: &[f32],
    b: &[f32],
    c: &mut [f32],
) -> Result<(), KernelError> {
    let (a, b, mut c) = views("gemm", &spec, a, b, c)?;
    general_mat_mul(spec.alpha, &a, &b, spec.beta, &mut c);
    Ok(())
}

type Views<'a, 'c> = (
    ArrayView2<'a, f32>,
    ArrayView2<'a, f32>,
    ArrayViewMut2<'c, f32>,
);

/// Checks the lengths against `spec` and builds `op(A)`, `op(B)`, `C` without copying.
fn views<'a, 'c>(
    kernel: &str,
    spec: &GemmSpec,
    a: &'a [f32],
    b: &'a [f32],
    c: &'c mut [f32],
) -> Result<Views<'a, 'c>, KernelError> {
    let GemmSpec {
        m,
        n,
        k,
        trans_a,
        trans_b,
        ..
    } = *spec;
    let a_len = checked_mul(kernel, "m × k", m, k)?;
    let b_len = checked_mul(kernel, "k × n", k, n)?;
    let c_len = checked_mul(kernel, "m × n", m, n)?;
    let (ar, ac) = if trans_a { (k, m) } else { (m, k) };
    let (br, bc) = if trans_b { (n, k) } else { (k, n) };
    check_len(
        kernel,
        "a",
        a.len(),
        a_len,
        format_args!("A stored {ar} × {ac}"),
    )?;
    check_len(
        kernel,
        "b",
        b.len(),
        b_len,
        format_args!("B stored {br} × {bc}"),
    )?;
    check_len(
        kernel,
        "c",
        c.len(),
        c_len,
        format_args!("C is m × n = {m} × {n}"),
    )?;
    let shape_err = |e: ndarray::ShapeError| KernelError::Shape(format!("{kernel}: {e}"));
    let a = ArrayView2::from_shape((ar, ac), a).map_err(shape_err)?;
    let b = ArrayView2::from_shape((br, bc), b).map_err(shape_err)?;
    let c = ArrayViewMut2::from_shape((m, n), c).map_err(shape_err)?;
    let a = if trans_a { a.reversed_axes() } else { a };
    let b = if trans_b { b.reversed_axes() } else { b };
    Ok((a, b, c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn spec(
        m: usize,
        n: usize,
        k: usize,
        trans_a: bool,
        trans_b: bool,
        alpha: f32,
        beta: f32,
    ) -> GemmSpec {
        GemmSpec {
            m,
            n,
            k,
            trans_a,
            trans_b,
            alpha,
            beta,
        }
    }

    fn naive(s: GemmSpec, a: &[f32], b: &[f32], c: &mut [f32]) {
        for i in 0..s.m {
            for j in 0..s.n {
                let mut acc = 0f64;
                for p in 0..s.k {
                    let av = if s.trans_a {
                        a[p * s.m + i]
                    } else {
                        a[i * s.k + p]
                    };
                    let bv = if s.trans_b {
                        b[j * s.k + p]
                    } else {
                        b[p * s.n + j]
                    };
                    acc += f64::from(av) * f64::from(bv);
                }
                let old = if s.beta == 0.0 {
                    0.0
                } else {
                    f64::from(s.beta) * f64::from(c[i * s.n + j])
                };
                c[i * s.n + j] = (f64::from(s.alpha) * acc + old) as f32;
            }
        }
    }

    fn random(rng: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
        (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect()
    }

    #[test]
    fn matches_naive_for_all_transposes() {
        let mut rng = ChaCha8Rng::seed_from_u64(20);
        // The last shapes are big enough to take the parallel path, split along m then n.
        for &(m, n, k) in &[
            (1, 1, 1),
            (3, 5, 7),
            (17, 9, 33),
            (1, 40, 2),
            (600, 100, 80),
            (100, 600, 80),
        ] {
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                for (alpha, beta) in [(1.0f32, 0.0f32), (0.5, 1.0), (-2.0, 0.25)] {
                    let s = spec(m, n, k, ta, tb, alpha, beta);
                    let a = random(&mut rng, m * k);
                    let b = random(&mut rng, k * n);
                    let c0 = random(&mut rng, m * n);
                    let (mut got, mut want) = (c0.clone(), c0);
                    gemm(s, &a, &b, &mut got).expect("shapes agree");
                    naive(s, &a, &b, &mut want);
                    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                        assert!((g - w).abs() < 1e-4, "{s:?} [{i}]: {g} vs {w}");
                    }
                }
            }
        }
    }

    #[test]
    fn k_zero_scales_c_and_beta_zero_ignores_nan() {
        let mut c = vec![1.0, 2.0];
        gemm(spec(1, 2, 0, false, false, 1.0, 3.0), &[], &[], &mut c).expect("shapes agree");
        assert_eq!(c, vec![3.0, 6.0]);
        let mut c = vec![f32::NAN; 2];
        gemm(
            spec(1, 2, 1, false, false, 1.0, 0.0),
            &[2.0],
            &[1.0, -1.0],
            &mut c,
        )
        .expect("shapes agree");
        assert_eq!(c, vec![2.0, -2.0]);
    }

    #[test]
    fn same_result_for_any_thread_count() {
        let mut rng = ChaCha8Rng::seed_from_u64(21);
        let (m, n, k) = (513, 300, 32);
        let a = random(&mut rng, m * k);
        let b = random(&mut rng, k * n);
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("pool");
            let mut c = vec![0f32; m * n];
            pool.install(|| gemm(spec(m, n, k, false, true, 1.0, 0.0), &a, &b, &mut c))
                .expect("shapes agree");
            c
        };
        assert_eq!(run(1), run(3));
    }

    #[test]
    fn shape_mismatches_are_errors() {
        let s = spec(2, 3, 4, true, false, 1.0, 0.0);
        let e = gemm(s, &[0.0; 7], &[0.0; 12], &mut [0.0; 6])
            .unwrap_err()
            .to_string();
        assert_eq!(e, "gemm: `a` has length 7, expected 8 (A stored 4 × 2)");
        let e = gemm(s, &[0.0; 8], &[0.0; 11], &mut [0.0; 6])
            .unwrap_err()
            .to_string();
        assert_eq!(e, "gemm: `b` has length 11, expected 12 (B stored 4 × 3)");
        let e = gemm(s, &[0.0; 8], &[0.0; 12], &mut [0.0; 5])
            .unwrap_err()
            .to_string();
        assert_eq!(e, "gemm: `c` has length 5, expected 6 (C is m × n = 2 × 3)");
        let huge = spec(usize::MAX, 2, 2, false, false, 1.0, 0.0);
        assert!(gemm(huge, &[], &[], &mut []).is_err());
    }
}
