//! InfoNCE with row-aligned positives over cosine similarities ([`info_nce`]), streamed with
//! the two-pass engine of [`crate::softmax`].
//!
//! Why streamed rather than materialised: ProMax's S2DR terms run at up to 4,096 × 4,096
//! per call (several calls per batch), where an n × m logit block is 67 MB that would be written,
//! read back and exponentiated in memory; recomputing the logits in cache-sized tiles costs
//! one extra `n × m × dim` product but keeps memory at `O((n + m)·dim)` plus the engine's
//! row-side partials (`groups × n × dim` floats, ≤ 4 MiB) and per-thread tiles. The
//! positive's logit `z_rr` is one dot product per row, so the loss needs pass 1 only.

use std::ops::Range;

use promax_plugin_api::InfoNceRequest;

use crate::softmax::{
    check_dim, check_tau, normalise, pass1, pass2, rows_of, transpose, Pass2, Product, Rule,
    ScaledSoftmaxRule, Side,
};
use crate::{check_len, KernelError};

/// InfoNCE with row-aligned positives (see [`InfoNceRequest`]): rows `a_r` (n × dim),
/// candidates `b_c` (m × dim, m ≥ n), `z_rc = cos(a_r, b_c) / tau` over ALL rows of `b`,
/// `P_r = softmax_c(z_r)[r]`. Returns `weight · Σ_r −ln(P_r + eps)` and ACCUMULATES (`+=`)
/// its gradients w.r.t. the raw `a` into `d_a` and w.r.t. the raw `b` into `d_b`.
///
/// `dL/dz_rc = weight · s_r (p_rc − δ_rc)` with `s_r = P_r / (P_r + eps)` (1 for eps = 0),
/// which is exact for the returned loss. Zero rows are zero vectors (zero gradient). With
/// `eps = 0` the loss is computed as `LSE_r − z_rr` (no log of an underflowed probability).
///
/// n = 0 (or weight = 0) returns 0 and writes nothing. The result does not depend on the
/// number of threads.
pub fn info_nce(
    req: &InfoNceRequest<'_>,
    d_a: &mut [f32],
    d_b: &mut [f32],
) -> Result<f64, KernelError> {
    const K: &str = "info_nce";
    let (a, b, dim) = (req.a.as_slice(), req.b.as_slice(), req.dim);
    check_dim(K, "req.dim", dim)?;
    check_tau(K, "req.tau", req.tau)?;
    if !(req.eps.is_finite() && req.eps >= 0.0) {
        return Err(KernelError::Numerical(format!(
            "{K}: `req.eps` = {}, expected a finite value >= 0",
            req.eps
        )));
    }
    if !req.weight.is_finite() {
        return Err(KernelError::Numerical(format!(
            "{K}: `req.weight` = {}, expected a finite value",
            req.weight
        )));
    }
    let n = rows_of(K, "req.a", a.len(), dim)?;
    let m = rows_of(K, "req.b", b.len(), dim)?;
    if m < n {
        return Err(KernelError::Shape(format!(
            "{K}: `req.b` has {m} rows (length {}), expected at least as many as `req.a`'s \
             {n}: row r's positive is b_r",
            b.len()
        )));
    }
    check_len(
        K,
        "d_a",
        d_a.len(),
        a.len(),
        format_args!("n × dim = {n} × {dim}"),
    )?;
    check_len(
        K,
        "d_b",
        d_b.len(),
        b.len(),
        format_args!("m × dim = {m} × {dim}"),
    )?;
    if n == 0 || req.weight == 0.0 {
        return Ok(0.0);
    }

    let (a_hat, a_norm) = normalise(a, dim);
    let (b_hat, b_norm) = normalise(b, dim);
    let b_hat_t = transpose(&b_hat, m, dim);
    let a_hat_t = transpose(&a_hat, n, dim);
    let inv_tau = 1.0 / req.tau;
    let logits = Product {
        at: &a_hat_t,
        bt: &b_hat_t,
        k: dim,
        n_cols: m,
        alpha: inv_tau,
    };
    let stats = pass1(&logits, false)?;

    let (eps, weight) = (f64::from(req.eps), f64::from(req.weight));
    let mut loss = 0f64;
    let mut lse = Vec::with_capacity(n);
    let mut coef = Vec::with_capacity(n);
    for (r, st) in stats.iter().enumerate() {
        let l = f64::from(st.m) + st.s.ln();
        let ar = &a_hat[r * dim..(r + 1) * dim];
        let br = &b_hat[r * dim..(r + 1) * dim];
        let z_rr = ar
            .iter()
            .zip(br)
            .map(|(&x, &y)| f64::from(x) * f64::from(y))
            .sum::<f64>()
            * f64::from(inv_tau);
        let log_p = z_rr - l;
        let (term, s) = if eps == 0.0 {
            (-log_p, 1.0)
        } else {
            let p = log_p.exp();
            (-(p + eps).ln(), p / (p + eps))
        };
        loss += term;
        lse.push(l as f32);
        coef.push((weight * s) as f32);
    }

    let rule = InfoNceRule {
        softmax: ScaledSoftmaxRule {
            lse: &lse,
            coef: &coef,
        },
        a_hat: &a_hat,
        b_hat: &b_hat,
        dim,
        inv_tau,
    };
    pass2(
        &Pass2 {
            logits: &logits,
            target: None,
            rows: Side {
                hat: &a_hat,
                norm: &a_norm,
            },
            cols: Side {
                hat: &b_hat,
                norm: &b_norm,
            },
            grad_scale: inv_tau,
        },
        &rule,
        d_a,
        d_b,
    )?;
    Ok(weight * loss)
}

/// The `−c_r δ_rc` part of InfoNCE's `dz` (pass 2 itself runs [`ScaledSoftmaxRule`] for
/// the `c_r p_rc` part): it touches one column per row, so it is added to the products'
/// results directly.
struct InfoNceRule<'a> {
    softmax: ScaledSoftmaxRule<'a>,
    a_hat: &'a [f32],
    b_hat: &'a [f32],
    dim: usize,
    inv_tau: f32,
}

impl Rule for InfoNceRule<'_> {
    fn tile(
        &self,
        rows: Range<usize>,
        z: &mut [f32],
        t: Option<&[f32]>,
        width: usize,
        row_sums: &mut [f64],
    ) -> f64 {
        self.softmax.tile(rows, z, t, width, row_sums)
    }

    /// Column c < n is row c's positive: `g_c −= c_c · â_c / tau`.
    fn add_col_terms(&self, cols: Range<usize>, g: &mut [f32]) {
        let (dim, coef) = (self.dim, self.softmax.coef);
        for (j, gj) in cols.zip(g.chunks_exact_mut(dim)) {
            let Some(&c) = coef.get(j) else {
                break;
            };
            let c = c * self.inv_tau;
            for (o, &x) in gj.iter_mut().zip(&self.a_hat[j * dim..(j + 1) * dim]) {
                *o -= c * x;
            }
        }
    }

    /// `g_r −= c_r · b̂_r / tau`.
    fn add_row_terms(&self, g: &mut [f32]) {
        let dim = self.dim;
        for (gr, (&c, br)) in g
            .chunks_exact_mut(dim)
            .zip(self.softmax.coef.iter().zip(self.b_hat.chunks_exact(dim)))
        {
            let c = c * self.inv_tau;
            for (o, &x) in gr.iter_mut().zip(br) {
                *o -= c * x;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::softmax::tests::{back64, dot64, hat64, lse64, random};
    use promax_plugin_api::testing::{finite_difference_check, sample_indices, SplitMix};

    fn req<'a>(
        a: &'a [f32],
        b: &'a [f32],
        dim: usize,
        tau: f32,
        eps: f32,
        weight: f32,
    ) -> InfoNceRequest<'a> {
        InfoNceRequest {
            a: a.into(),
            b: b.into(),
            dim,
            tau,
            eps,
            weight,
        }
    }

    /// (loss, d_a, d_b) in f64 with the full n × m matrix.
    fn naive(r: &InfoNceRequest<'_>) -> (f64, Vec<f64>, Vec<f64>) {
        let dim = r.dim;
        let (ah, an) = hat64(r.a.as_slice(), dim);
        let (bh, bn) = hat64(r.b.as_slice(), dim);
        let (n, m) = (an.len(), bn.len());
        let (tau, eps, w) = (f64::from(r.tau), f64::from(r.eps), f64::from(r.weight));
        let mut loss = 0.0;
        let (mut ga, mut gb) = (vec![0f64; n * dim], vec![0f64; m * dim]);
        for i in 0..n {
            let ai = &ah[i * dim..(i + 1) * dim];
            let z: Vec<f64> = (0..m)
                .map(|c| dot64(ai, &bh[c * dim..(c + 1) * dim]) / tau)
                .collect();
            let l = lse64(&z);
            let pi = (z[i] - l).exp();
            loss += -(pi + eps).ln();
            let s = pi / (pi + eps);
            for c in 0..m {
                let dz = w * s * ((z[c] - l).exp() - if c == i { 1.0 } else { 0.0 });
                for k in 0..dim {
                    ga[i * dim + k] += dz * bh[c * dim + k] / tau;
                    gb[c * dim + k] += dz * ai[k] / tau;
                }
            }
        }
        (
            w * loss,
            back64(&ga, &ah, &an, dim),
            back64(&gb, &bh, &bn, dim),
        )
    }

    fn close(what: &str, got: &[f32], want: &[f64], rtol: f64) {
        let scale = want.iter().fold(0f64, |m, v| m.max(v.abs())).max(1e-30);
        for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
            assert!(
                (f64::from(g) - w).abs() <= rtol * scale,
                "{what}[{i}]: {g} vs {w}"
            );
        }
    }

    #[test]
    fn matches_naive_f64() {
        let mut rng = SplitMix(50);
        for &(n, m, dim, tau, eps, weight) in &[
            (7usize, 13usize, 5usize, 0.2f32, 0.0f32, 1.0f32),
            (7, 13, 5, 0.2, 1e-5, 0.3),
            (7, 7, 3, 0.05, 1e-5, 2.0),
            (4, 9, 6, 1.0, 0.0, -0.5),
            (1, 1, 2, 0.5, 1e-5, 1.0),
            // Several row blocks, tiles and column groups.
            (300, 700, 8, 0.2, 1e-5, 0.1),
        ] {
            let mut a = random(&mut rng, n * dim, 1.0);
            let mut b = random(&mut rng, m * dim, 1.0);
            if n > 2 {
                a[dim..2 * dim].fill(0.0);
                b[2 * dim..3 * dim].fill(0.0);
            }
            let r = req(&a, &b, dim, tau, eps, weight);
            let (mut da, mut db) = (vec![0f32; a.len()], vec![0f32; b.len()]);
            let loss = info_nce(&r, &mut da, &mut db).expect("valid");
            let (wl, wa, wb) = naive(&r);
            let case = format!("{n}×{m}×{dim} tau {tau} eps {eps}");
            // The loss is a sum of −ln(P + eps) over rows; with P ≈ 1 a term is ~eps, and
            // the f32 log-normaliser leaves ~1e-7 absolute error per row.
            assert!(
                (loss - wl).abs() <= 1e-5 * wl.abs() + 1e-6 * (n as f64) * f64::from(weight.abs()),
                "{case}: loss {loss} vs {wl}"
            );
            close(&format!("{case} d_a"), &da, &wa, 2e-5);
            close(&format!("{case} d_b"), &db, &wb, 2e-5);
        }
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let mut rng = SplitMix(51);
        for (eps, tau) in [(0.0f32, 0.3f32), (1e-5, 0.2), (0.05, 0.5)] {
            let (n, m, dim) = (4, 7, 3);
            let a = random(&mut rng, n * dim, 1.0);
            let b = random(&mut rng, m * dim, 1.0);
            let (mut da, mut db) = (vec![0f32; a.len()], vec![0f32; b.len()]);
            info_nce(&req(&a, &b, dim, tau, eps, 0.7), &mut da, &mut db).expect("valid");
            let mut x = a.clone();
            let bad = finite_difference_check(
                &mut x,
                &da,
                &sample_indices(a.len(), 12, 1),
                1e-3,
                1e-3,
                1e-5,
                |x| naive(&req(x, &b, dim, tau, eps, 0.7)).0,
            );
            assert!(bad.is_empty(), "eps {eps}: d_a {bad:?}");
            let mut y = b.clone();
            let bad = finite_difference_check(
                &mut y,
                &db,
                &sample_indices(b.len(), 21, 2),
                1e-3,
                1e-3,
                1e-5,
                |y| naive(&req(&a, y, dim, tau, eps, 0.7)).0,
            );
            assert!(bad.is_empty(), "eps {eps}: d_b {bad:?}");
        }
    }

    #[test]
    fn accumulates_and_ignores_thread_count() {
        let mut rng = SplitMix(52);
        let (n, m, dim) = (300, 650, 8);
        let a = random(&mut rng, n * dim, 1.0);
        let b = random(&mut rng, m * dim, 1.0);
        let da0 = random(&mut rng, n * dim, 1.0);
        let db0 = random(&mut rng, m * dim, 1.0);
        let run = |threads: usize, da0: &[f32], db0: &[f32]| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("pool");
            let (mut da, mut db) = (da0.to_vec(), db0.to_vec());
            let l = pool
                .install(|| info_nce(&req(&a, &b, dim, 0.2, 1e-5, 1.0), &mut da, &mut db))
                .expect("valid");
            (l, da, db)
        };
        let (za, zb) = (vec![0f32; n * dim], vec![0f32; m * dim]);
        let one = run(1, &za, &zb);
        assert_eq!(one, run(2, &za, &zb), "1 vs 2 threads");
        assert_eq!(one, run(3, &za, &zb), "1 vs 3 threads");
        let (l, da, db) = run(2, &da0, &db0);
        assert_eq!(l, one.0);
        for (got, (s, g)) in da
            .iter()
            .zip(da0.iter().zip(&one.1))
            .chain(db.iter().zip(db0.iter().zip(&one.2)))
        {
            assert!((got - (s + g)).abs() <= 1e-6 * (1.0 + s.abs()));
        }
    }

    #[test]
    fn argument_errors() {
        let a = [1f32; 6];
        let (mut da, mut db) = (vec![0f32; 6], vec![0f32; 6]);
        let e = |r: InfoNceRequest<'_>, da: &mut [f32], db: &mut [f32]| {
            info_nce(&r, da, db).unwrap_err().to_string()
        };
        assert_eq!(
            e(req(&a, &a[..4], 2, 0.2, 0.0, 1.0), &mut da, &mut db[..4]),
            "info_nce: `req.b` has 2 rows (length 4), expected at least as many as `req.a`'s 3: \
             row r's positive is b_r"
        );
        assert_eq!(
            e(req(&a, &a[..5], 2, 0.2, 0.0, 1.0), &mut da, &mut db),
            "info_nce: `req.b` has length 5, expected a multiple of dim = 2"
        );
        assert_eq!(
            e(req(&a, &a, 2, 0.2, 0.0, 1.0), &mut da[..5], &mut db),
            "info_nce: `d_a` has length 5, expected 6 (n × dim = 3 × 2)"
        );
        assert_eq!(
            e(req(&a, &a, 2, 0.2, 0.0, 1.0), &mut da, &mut db[..4]),
            "info_nce: `d_b` has length 4, expected 6 (m × dim = 3 × 2)"
        );
        assert_eq!(
            e(req(&a, &a, 0, 0.2, 0.0, 1.0), &mut da, &mut db),
            "info_nce: `req.dim` is 0, expected at least 1 column"
        );
        assert!(e(req(&a, &a, 2, -0.2, 0.0, 1.0), &mut da, &mut db).contains("`req.tau` = -0.2"));
        assert!(e(req(&a, &a, 2, 0.2, -1e-5, 1.0), &mut da, &mut db).contains("`req.eps`"));
        assert!(e(req(&a, &a, 2, 0.2, 0.0, f32::NAN), &mut da, &mut db).contains("`req.weight`"));
        // n = 0: loss 0, nothing written.
        let mut db = vec![3f32; 6];
        assert_eq!(
            info_nce(&req(&[], &a, 2, 0.2, 0.0, 1.0), &mut [], &mut db).ok(),
            Some(0.0)
        );
        assert!(db.iter().all(|&v| v == 3.0));
    }
}
