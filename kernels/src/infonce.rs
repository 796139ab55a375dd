//! InfoNCE over cosine similarities, on the single-pass engine of [`crate::fused`]:
//! [`info_nce`] with row-aligned positives (row r's positive is column r), and
//! [`info_nce_pairs`] with explicit (row, column) positives and column multiplicities.
//!
//! Why the pair form: ProMax's cross-view term is a cross-entropy over a batch's
//! (user, positive item) pairs, 4,096 × 4,096 logits in which a user or an item that occurs
//! k times contributes k identical rows or columns. Over the batch's unique users × unique
//! items, with each item counted k times in every softmax, the loss and gradients are the
//! same and the products ~40% smaller (3,000 × 3,300 on Amazon-Book).
//!
//! Memory: `O((n + m)·dim)` plus the engine's per-thread blocks and column partials (see
//! [`crate::fused`]); never `n × m`.

use std::ops::Range;

use promax_plugin_api::{InfoNceRequest, PairedNceRequest};

use crate::fastexp::{dispatch, lane_sum, max, SimdKernel, LANES};
use crate::fused::{self, Operands, Problem, RowRule, Table};
use crate::products::{Products, ROW_ALIGN};
use crate::softmax::{check_dim, check_tau, exp_in_place, rows_of, FLUSH};
use crate::{check_len, KernelError, KernelPath};

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
    let (n, m) = check_common(K, a, b, dim, (req.tau, req.eps, req.weight), d_a, d_b)?;
    if m < n {
        return Err(KernelError::Shape(format!(
            "{K}: `req.b` has {m} rows (length {}), expected at least as many as `req.a`'s \
             {n}: row r's positive is b_r",
            b.len()
        )));
    }
    if n == 0 || req.weight == 0.0 {
        return Ok(0.0);
    }
    let positives = Positives {
        row_ptr: (0..=n).collect(),
        cols: (0..n as u32).collect(),
    };
    let nce = Nce {
        dim,
        tau: req.tau,
        eps: req.eps,
        weight: req.weight,
        counts: None,
    };
    nce.run(a, b, positives, d_a, d_b, Products::detect())
}

/// InfoNCE with explicit positives and column multiplicities (see [`PairedNceRequest`]):
/// `z_rc = cos(a_r, b_c) / tau`, `P_rc = e^{z_rc} / Σ_c' k_c' e^{z_rc'}` (`k` the column
/// counts, all 1 when empty). Returns `weight · Σ_(r,c) ∈ pairs −ln(P_rc + eps)` and
/// ACCUMULATES its gradients w.r.t. the raw `a` into `d_a` and the raw `b` into `d_b`.
///
/// With every count 1 and the pairs (r, r) this is [`info_nce`]; with the counts of a
/// batch's items and one pair per batch row it is the cross-entropy over the expanded
/// batch × batch matrix with diagonal labels. `dL/dz_rc = weight (S_r k_c p_rc − Σ_{pairs
/// (r,c)} s)`, `s = P / (P + eps)` per pair, `S_r` the sum of row r's `s`.
///
/// No pairs (or weight = 0): returns 0 and writes nothing. The result does not depend on
/// the number of threads.
pub fn info_nce_pairs(
    req: &PairedNceRequest<'_>,
    d_a: &mut [f32],
    d_b: &mut [f32],
) -> Result<f64, KernelError> {
    pairs_with(req, d_a, d_b, Products::detect())
}

pub(crate) fn pairs_with(
    req: &PairedNceRequest<'_>,
    d_a: &mut [f32],
    d_b: &mut [f32],
    products: Products,
) -> Result<f64, KernelError> {
    const K: &str = "info_nce_pairs";
    let (a, b, dim) = (req.a.as_slice(), req.b.as_slice(), req.dim);
    let (n, m) = check_common(K, a, b, dim, (req.tau, req.eps, req.weight), d_a, d_b)?;
    let counts = req.col_counts.as_slice();
    if !counts.is_empty() {
        check_len(
            K,
            "req.col_counts",
            counts.len(),
            m,
            format_args!("one per row of `req.b`, or empty for all 1: m = {m}"),
        )?;
        if let Some(c) = counts.iter().position(|&k| k == 0) {
            return Err(KernelError::Numerical(format!(
                "{K}: `req.col_counts[{c}]` is 0, expected a multiplicity >= 1"
            )));
        }
    }
    let positives = Positives::from_pairs(K, req.pairs.as_slice(), n, m)?;
    if positives.cols.is_empty() || req.weight == 0.0 {
        return Ok(0.0);
    }
    let nce = Nce {
        dim,
        tau: req.tau,
        eps: req.eps,
        weight: req.weight,
        counts: (!counts.is_empty()).then(|| counts.iter().map(|&k| k as f32).collect()),
    };
    nce.run(a, b, positives, d_a, d_b, products)
}

/// Checks shared by both forms; returns (n, m).
fn check_common(
    k: &str,
    a: &[f32],
    b: &[f32],
    dim: usize,
    (tau, eps, weight): (f32, f32, f32),
    d_a: &[f32],
    d_b: &[f32],
) -> Result<(usize, usize), KernelError> {
    check_dim(k, "req.dim", dim)?;
    check_tau(k, "req.tau", tau)?;
    if !(eps.is_finite() && eps >= 0.0) {
        return Err(KernelError::Numerical(format!(
            "{k}: `req.eps` = {eps}, expected a finite value >= 0"
        )));
    }
    if !weight.is_finite() {
        return Err(KernelError::Numerical(format!(
            "{k}: `req.weight` = {weight}, expected a finite value"
        )));
    }
    let n = rows_of(k, "req.a", a.len(), dim)?;
    let m = rows_of(k, "req.b", b.len(), dim)?;
    check_len(
        k,
        "d_a",
        d_a.len(),
        a.len(),
        format_args!("n × dim = {n} × {dim}"),
    )?;
    check_len(
        k,
        "d_b",
        d_b.len(),
        b.len(),
        format_args!("m × dim = {m} × {dim}"),
    )?;
    Ok((n, m))
}

/// Positive columns grouped by row (CSR): row r's are `cols[row_ptr[r]..row_ptr[r + 1]]`.
struct Positives {
    row_ptr: Vec<usize>,
    cols: Vec<u32>,
}

impl Positives {
    fn from_pairs(k: &str, pairs: &[u32], n: usize, m: usize) -> Result<Self, KernelError> {
        if !pairs.len().is_multiple_of(2) {
            return Err(KernelError::Shape(format!(
                "{k}: `req.pairs` has length {}, expected (row, column) pairs: an even length",
                pairs.len()
            )));
        }
        let mut row_ptr = vec![0usize; n + 1];
        for (p, pair) in pairs.chunks_exact(2).enumerate() {
            let (r, c) = (pair[0] as usize, pair[1] as usize);
            if r >= n || c >= m {
                return Err(KernelError::Shape(format!(
                    "{k}: pair {p} = ({r}, {c}) is out of range: rows 0..{n}, columns 0..{m}"
                )));
            }
            row_ptr[r + 1] += 1;
        }
        for r in 0..n {
            row_ptr[r + 1] += row_ptr[r];
        }
        let mut next = row_ptr.clone();
        let mut cols = vec![0u32; pairs.len() / 2];
        for pair in pairs.chunks_exact(2) {
            let r = pair[0] as usize;
            cols[next[r]] = pair[1];
            next[r] += 1;
        }
        Ok(Positives { row_ptr, cols })
    }
}

struct Nce {
    dim: usize,
    tau: f32,
    eps: f32,
    weight: f32,
    counts: Option<Vec<f32>>,
}

impl Nce {
    fn run(
        &self,
        a: &[f32],
        b: &[f32],
        positives: Positives,
        d_a: &mut [f32],
        d_b: &mut [f32],
        products: Products,
    ) -> Result<f64, KernelError> {
        let (at, bt) = (
            Table::normalised(a, self.dim, ROW_ALIGN),
            Table::normalised(b, self.dim, ROW_ALIGN),
        );
        let problem = Problem {
            logits: Operands {
                rows: &at,
                cols: &bt,
                alpha: 1.0 / self.tau,
            },
            target: None,
        };
        let rule = PairsRule {
            positives: &positives,
            counts: self.counts.as_deref(),
            eps: self.eps,
            weight: self.weight,
        };
        let (loss, _) = fused::run(&problem, &rule, Some((d_a, d_b)), products)?;
        Ok(loss)
    }
}

/// `dz_rc = w (S_r k_c p_rc − Σ_{pairs (r,c)} s)` and loss `w Σ −ln(P + eps)`.
struct PairsRule<'a> {
    positives: &'a Positives,
    counts: Option<&'a [f32]>,
    eps: f32,
    weight: f32,
}

impl RowRule for PairsRule<'_> {
    type Out = ();

    fn rows(
        &self,
        path: KernelPath,
        rows: Range<usize>,
        z: &mut [f32],
        _t: Option<&mut [f32]>,
        stride: usize,
        m: usize,
        _out: &mut [()],
    ) -> f64 {
        dispatch(
            path,
            PairRows {
                rule: self,
                rows,
                z,
                stride,
                m,
            },
        )
    }
}

struct PairRows<'a, 'r> {
    rule: &'a PairsRule<'r>,
    rows: Range<usize>,
    z: &'a mut [f32],
    stride: usize,
    m: usize,
}

impl SimdKernel for PairRows<'_, '_> {
    type Output = f64;
    #[inline(always)]
    fn run(self) -> f64 {
        let PairsRule {
            positives,
            counts,
            eps,
            weight,
        } = *self.rule;
        let (eps, w) = (f64::from(eps), f64::from(weight));
        let mut loss = 0f64;
        let mut pos: Vec<(usize, f64, f64)> = Vec::new();
        for (r, zr) in self.rows.zip(self.z.chunks_exact_mut(self.stride)) {
            let zr = &mut zr[..self.m];
            let cols = &positives.cols[positives.row_ptr[r]..positives.row_ptr[r + 1]];
            if cols.is_empty() {
                zr.fill(0.0);
                continue;
            }
            let mx = max(zr);
            pos.clear();
            pos.extend(
                cols.iter()
                    .map(|&c| (c as usize, f64::from(zr[c as usize]), 0.0)),
            );
            let s = match counts {
                None => exp_in_place(zr, mx),
                Some(k) => {
                    exp_in_place(zr, mx);
                    weighted_sum_in_place(zr, k)
                }
            };
            let shift = f64::from(mx) + s.ln();
            let mut s_row = 0f64;
            for (_, z, sp) in pos.iter_mut() {
                let log_p = *z - shift;
                if eps == 0.0 {
                    loss -= log_p;
                    *sp = 1.0;
                } else {
                    let p = log_p.exp();
                    loss -= (p + eps).ln();
                    *sp = p / (p + eps);
                }
                s_row += *sp;
            }
            let coef = (w * s_row / s) as f32;
            zr.iter_mut().for_each(|v| *v *= coef);
            for &(c, _, sp) in &pos {
                zr[c] -= (w * sp) as f32;
            }
        }
        w * loss
    }
}

/// `z_c ← k_c z_c`; returns `Σ_c z_c` (after).
#[inline(always)]
fn weighted_sum_in_place(z: &mut [f32], k: &[f32]) -> f64 {
    let mut total = 0f64;
    for (zc, kc) in z.chunks_mut(FLUSH).zip(k.chunks(FLUSH)) {
        let mut acc = [0f32; LANES];
        let mut zi = zc.chunks_exact_mut(LANES);
        let mut ki = kc.chunks_exact(LANES);
        for (zs, ks) in (&mut zi).zip(&mut ki) {
            for l in 0..LANES {
                zs[l] *= ks[l];
                acc[l] += zs[l];
            }
        }
        for (l, (v, &kv)) in zi
            .into_remainder()
            .iter_mut()
            .zip(ki.remainder())
            .enumerate()
        {
            *v *= kv;
            acc[l] += *v;
        }
        total += f64::from(lane_sum(acc));
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::softmax::tests::random;
    use promax_plugin_api::testing::{dot_f64, log_sum_exp, unit_rows_backward, unit_rows_f64};
    use promax_plugin_api::testing::{finite_difference_check, sample_indices, SplitMix};
    use promax_plugin_api::PairedNceRequest;

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

    #[allow(clippy::too_many_arguments)]
    fn pair_req<'a>(
        a: &'a [f32],
        b: &'a [f32],
        dim: usize,
        col_counts: &'a [u32],
        pairs: &'a [u32],
        tau: f32,
        eps: f32,
        weight: f32,
    ) -> PairedNceRequest<'a> {
        PairedNceRequest {
            a: a.into(),
            b: b.into(),
            dim,
            col_counts: col_counts.into(),
            pairs: pairs.into(),
            tau,
            eps,
            weight,
        }
    }

    /// (loss, d_a, d_b) in f64 with the full n × m matrix.
    fn naive(r: &InfoNceRequest<'_>) -> (f64, Vec<f64>, Vec<f64>) {
        let dim = r.dim;
        let (ah, an) = unit_rows_f64(r.a.as_slice(), dim);
        let (bh, bn) = unit_rows_f64(r.b.as_slice(), dim);
        let (n, m) = (an.len(), bn.len());
        let (tau, eps, w) = (f64::from(r.tau), f64::from(r.eps), f64::from(r.weight));
        let mut loss = 0.0;
        let (mut ga, mut gb) = (vec![0f64; n * dim], vec![0f64; m * dim]);
        for i in 0..n {
            let ai = &ah[i * dim..(i + 1) * dim];
            let z: Vec<f64> = (0..m)
                .map(|c| dot_f64(ai, &bh[c * dim..(c + 1) * dim]) / tau)
                .collect();
            let l = log_sum_exp(&z);
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
            unit_rows_backward(&ga, &ah, &an, dim),
            unit_rows_backward(&gb, &bh, &bn, dim),
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

    /// Unique rows `a` (n), unique columns `b` (m), and a batch given as (row, column)
    /// pairs: the loss and gradients of `info_nce_pairs` with the columns' batch counts
    /// equal those of the expanded batch × batch cross-entropy (diagonal labels), computed
    /// naively in f64 with [`naive`] and summed back onto the unique rows.
    #[test]
    fn pairs_match_the_expanded_batch_matrix() {
        let mut rng = SplitMix(53);
        for &(n, m, batch, dim, tau, eps, weight) in &[
            (5usize, 4usize, 11usize, 3usize, 0.2f32, 0.0f32, 1.0f32),
            (5, 4, 11, 3, 0.5, 1e-3, 0.7),
            (40, 70, 300, 8, 0.2, 0.0, 0.01),
        ] {
            let a = random(&mut rng, n * dim, 1.0);
            let b = random(&mut rng, m * dim, 1.0);
            let pairs: Vec<u32> = (0..batch)
                .flat_map(|_| {
                    [
                        (rng.uniform() * n as f64) as u32 % n as u32,
                        (rng.uniform() * m as f64) as u32 % m as u32,
                    ]
                })
                .collect();
            let mut counts = vec![0u32; m];
            pairs.chunks(2).for_each(|p| counts[p[1] as usize] += 1);
            // Columns that no pair uses get count 1 here (a count is at least 1), and
            // appear once in the expanded matrix too.
            let counts: Vec<u32> = counts.iter().map(|&c| c.max(1)).collect();
            let mut expanded_cols: Vec<u32> = pairs.chunks(2).map(|p| p[1]).collect();
            for (c, &k) in counts.iter().enumerate() {
                let used = pairs.chunks(2).filter(|p| p[1] as usize == c).count();
                expanded_cols.extend(std::iter::repeat_n(c as u32, k as usize - used));
            }
            let rows_of = |x: &[f32], ids: &mut dyn Iterator<Item = u32>| -> Vec<f32> {
                ids.flat_map(|i| x[i as usize * dim..(i as usize + 1) * dim].to_vec())
                    .collect()
            };
            let ea = rows_of(&a, &mut pairs.chunks(2).map(|p| p[0]));
            let eb = rows_of(&b, &mut expanded_cols.iter().copied());
            let (wl, wa, wb) = naive(&req(&ea, &eb, dim, tau, eps, weight));
            let (mut want_a, mut want_b) = (vec![0f64; n * dim], vec![0f64; m * dim]);
            for (r, p) in pairs.chunks(2).enumerate() {
                for k in 0..dim {
                    want_a[p[0] as usize * dim + k] += wa[r * dim + k];
                }
            }
            for (c, &col) in expanded_cols.iter().enumerate() {
                for k in 0..dim {
                    want_b[col as usize * dim + k] += wb[c * dim + k];
                }
            }
            let (mut da, mut db) = (vec![0f32; a.len()], vec![0f32; b.len()]);
            let r = pair_req(
                a.as_slice(),
                b.as_slice(),
                dim,
                counts.as_slice(),
                pairs.as_slice(),
                tau,
                eps,
                weight,
            );
            let case = format!("{n}×{m}, batch {batch}, eps {eps}");
            let loss = info_nce_pairs(&r, &mut da, &mut db).expect("valid");
            assert!(
                (loss - wl).abs() <= 1e-5 * wl.abs(),
                "{case}: {loss} vs {wl}"
            );
            close(&format!("{case} d_a"), &da, &want_a, 2e-5);
            close(&format!("{case} d_b"), &db, &want_b, 2e-5);
        }
    }

    #[test]
    fn pairs_gradient_matches_finite_differences() {
        let mut rng = SplitMix(54);
        let (n, m, dim) = (3, 5, 3);
        let a = random(&mut rng, n * dim, 1.0);
        let b = random(&mut rng, m * dim, 1.0);
        let pairs = [0u32, 1, 2, 1, 0, 4, 0, 1, 1, 3];
        let counts = [1u32, 3, 2, 1, 2];
        for eps in [0.0f32, 0.01] {
            // Loss and gradients at (a, b).
            let r = |a: &[f32], b: &[f32]| {
                let (mut da, mut db) = (vec![0f32; a.len()], vec![0f32; b.len()]);
                let req = pair_req(a, b, dim, &counts, &pairs, 0.4, eps, 0.9);
                let l = info_nce_pairs(&req, &mut da, &mut db).expect("valid");
                (l, da, db)
            };
            let (_, da, db) = r(&a, &b);
            let mut x = a.clone();
            let all_a: Vec<usize> = (0..a.len()).collect();
            let bad =
                finite_difference_check(&mut x, &da, &all_a, 1e-2, 2e-3, 1e-4, |x| r(x, &b).0);
            assert!(bad.is_empty(), "eps {eps}: d_a {bad:?}");
            let mut y = b.clone();
            let all_b: Vec<usize> = (0..b.len()).collect();
            let bad =
                finite_difference_check(&mut y, &db, &all_b, 1e-2, 2e-3, 1e-4, |y| r(&a, y).0);
            assert!(bad.is_empty(), "eps {eps}: d_b {bad:?}");
        }
    }

    #[test]
    fn every_kernel_path_agrees() {
        let mut rng = SplitMix(55);
        let (n, m, dim) = (70, 260, 40);
        let a = random(&mut rng, n * dim, 1.0);
        let b = random(&mut rng, m * dim, 1.0);
        let pairs: Vec<u32> = (0..n as u32)
            .flat_map(|r| [r, (r * 7) % m as u32])
            .collect();
        let counts: Vec<u32> = (0..m as u32).map(|c| 1 + c % 3).collect();
        let req = pair_req(
            a.as_slice(),
            b.as_slice(),
            dim,
            counts.as_slice(),
            pairs.as_slice(),
            0.2,
            1e-5,
            1.0,
        );
        let run = |p: Products| {
            let (mut da, mut db) = (vec![0f32; a.len()], vec![0f32; b.len()]);
            let l = pairs_with(&req, &mut da, &mut db, p).expect("valid");
            (l, da, db)
        };
        let (l0, a0, b0) = run(Products::Portable);
        let want: Vec<f64> = a0.iter().chain(&b0).map(|&v| f64::from(v)).collect();
        let mut tiled = Vec::new();
        for p in Products::supported().into_iter().skip(1) {
            let (l1, a1, b1) = run(p);
            assert!((l0 - l1).abs() <= 1e-5 * l0.abs(), "{p:?}: {l0} vs {l1}");
            let got: Vec<f32> = a1.iter().chain(&b1).copied().collect();
            close(&format!("portable vs {p:?}"), &got, &want, 1e-5);
            tiled.push((l1.to_bits(), got));
        }
        // AVX2 and AVX-512 tiles accumulate in one order: bit-identical.
        assert!(tiled.windows(2).all(|w| w[0] == w[1]), "tiled paths differ");
    }

    #[test]
    fn pair_argument_errors() {
        let a = [1f32, 0.0, 0.0, 1.0];
        let (mut da, mut db) = (vec![0f32; 4], vec![0f32; 4]);
        let mut e = |counts: &[u32], pairs: &[u32]| {
            let req = PairedNceRequest {
                a: a.as_slice().into(),
                b: a.as_slice().into(),
                dim: 2,
                col_counts: counts.into(),
                pairs: pairs.into(),
                tau: 0.2,
                eps: 0.0,
                weight: 1.0,
            };
            info_nce_pairs(&req, &mut da, &mut db)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            e(&[], &[0, 1, 1]),
            "info_nce_pairs: `req.pairs` has length 3, expected (row, column) pairs: an even length"
        );
        assert_eq!(
            e(&[], &[0, 1, 1, 2]),
            "info_nce_pairs: pair 1 = (1, 2) is out of range: rows 0..2, columns 0..2"
        );
        assert!(e(&[1], &[0, 1]).contains("`req.col_counts` has length 1, expected 2"));
        assert_eq!(
            e(&[1, 0], &[0, 1]),
            "info_nce_pairs: `req.col_counts[1]` is 0, expected a multiplicity >= 1"
        );
    }
}
