//! Softmax over ALL items, streamed: per-row statistics ([`softmax_stats`]) and ProMax's
//! soft-target cross-entropy with its gradient ([`soft_ce_all_items`]). Both run on the
//! single-pass row-block engine of [`crate::fused`] (so does [`crate::infonce`]): a rows ×
//! cols logit matrix (3,000 users × 9,332 items is 112 MB) is never materialised; each block
//! of complete logit rows lives in cache while its normaliser, `dL/dz` and both gradient
//! products are computed.
//!
//! Flops per (row, column) pair at dim = target_dim = d: `2d` for the logits, `2·target_dim`
//! for the target logits, `4d` for the two gradient products (8 d in all), and 2
//! exponentials ([`crate::fastexp::exp`], vectorised, picked at run time). Memory: see
//! [`crate::fused`].

use std::ops::Range;

use promax_plugin_api::{SoftCeRequest, SoftmaxStatsRequest};

use crate::fastexp::{dispatch, exp, lane_sum, max, SimdKernel, LANES};
use crate::fused::{self, Operands, Problem, RowRule, Table};
use crate::products::{Products, ROW_ALIGN};
use crate::{check_len, checked_mul, KernelError, KernelPath};

// ---------------------------------------------------------------------------------------
// Public kernels
// ---------------------------------------------------------------------------------------

/// Per-row log-normaliser and entropy of `softmax_c(q_r · k_c / tau)` over ALL key rows
/// (see [`SoftmaxStatsRequest`]). `lse` and `entropy` get one entry per query row
/// (`queries.len() / dim`). Rows are used as given: normalise them first for a cosine
/// softmax.
///
/// With no keys, every `lse` is −inf (the log of an empty sum) and every entropy 0.
pub fn softmax_stats(
    req: &SoftmaxStatsRequest<'_>,
    lse: &mut [f32],
    entropy: &mut [f32],
) -> Result<(), KernelError> {
    const K: &str = "softmax_stats";
    let (queries, keys, dim) = (req.queries.as_slice(), req.keys.as_slice(), req.dim);
    check_dim(K, "req.dim", dim)?;
    check_tau(K, "req.tau", req.tau)?;
    let rows = rows_of(K, "req.queries", queries.len(), dim)?;
    let n_keys = rows_of(K, "req.keys", keys.len(), dim)?;
    for (arg, out) in [("lse", &*lse), ("entropy", &*entropy)] {
        check_len(
            K,
            arg,
            out.len(),
            rows,
            format_args!("one per query row: req.queries.len() / dim = {rows}"),
        )?;
    }
    if rows == 0 {
        return Ok(());
    }
    if n_keys == 0 {
        lse.fill(f32::NEG_INFINITY);
        entropy.fill(0.0);
        return Ok(());
    }
    let (q, k) = (
        Table::plain(queries, dim, ROW_ALIGN),
        Table::plain(keys, dim, ROW_ALIGN),
    );
    let problem = Problem {
        logits: Operands {
            rows: &q,
            cols: &k,
            alpha: 1.0 / req.tau,
        },
        target: None,
    };
    let (_, stats) = fused::run(&problem, &StatsRule, None, Products::detect())?;
    for ((&(l, h), lo), ho) in stats.iter().zip(lse.iter_mut()).zip(entropy.iter_mut()) {
        *lo = l;
        *ho = h;
    }
    Ok(())
}

/// ProMax's supervised distribution reshaping loss (SDR) over ALL items, with gradients:
/// see [`SoftCeRequest`]. Returns `Σ_b w_b Σ_i −q_bi ln p_bi` and ACCUMULATES (`+=`) its
/// gradient w.r.t. the raw `users` (B × dim) into `d_users` and w.r.t. the raw `items`
/// (N × dim) into `d_items`.
///
/// - `p_b = softmax_i(û_b·v̂_i / tau)` with `û`, `v̂` the L2-normalised rows (a zero row
///   stays zero and gets a zero gradient); `ln p` is the exact log-softmax `z − LSE_b(z)`.
///   The reference code's `ln(p + 1e-8)` guard exists because it takes the log of a
///   probability that can underflow to 0; a log-softmax cannot, so there is no guard here
///   (the two differ only where `p < ~1e-6`, i.e. on items the target should not weigh).
/// - `ln q_bi = t_bi − target_lse[b]`, `t_bi = tu_b·ti_i / target_tau`, target rows used as
///   given (they should be unit norm); `q` is not renormalised.
/// - `dL/dz_bi = w_b (S_b p_bi − q_bi)`, `S_b = Σ_i q_bi` as computed (1 up to rounding when
///   `target_lse` is the exact normaliser), so the gradient is that of the returned loss.
///
/// B = 0 or N = 0: returns 0 and writes nothing. The result does not depend on the number
/// of threads.
pub fn soft_ce_all_items(
    req: &SoftCeRequest<'_>,
    d_users: &mut [f32],
    d_items: &mut [f32],
) -> Result<f64, KernelError> {
    soft_ce_with(req, d_users, d_items, Products::detect())
}

pub(crate) fn soft_ce_with(
    req: &SoftCeRequest<'_>,
    d_users: &mut [f32],
    d_items: &mut [f32],
    products: Products,
) -> Result<f64, KernelError> {
    const K: &str = "soft_ce_all_items";
    let (users, items, dim, tdim) = (
        req.users.as_slice(),
        req.items.as_slice(),
        req.dim,
        req.target_dim,
    );
    let (target_users, target_items) = (req.target_users.as_slice(), req.target_items.as_slice());
    let (target_lse, weights) = (req.target_lse.as_slice(), req.weights.as_slice());
    check_dim(K, "req.dim", dim)?;
    check_dim(K, "req.target_dim", tdim)?;
    check_tau(K, "req.tau", req.tau)?;
    check_tau(K, "req.target_tau", req.target_tau)?;
    let b = rows_of(K, "req.users", users.len(), dim)?;
    let n = rows_of(K, "req.items", items.len(), dim)?;
    let tu_len = checked_mul(K, "B × target_dim", b, tdim)?;
    check_len(
        K,
        "req.target_users",
        target_users.len(),
        tu_len,
        format_args!("B × target_dim = {b} × {tdim}"),
    )?;
    let ti_len = checked_mul(K, "N × target_dim", n, tdim)?;
    check_len(
        K,
        "req.target_items",
        target_items.len(),
        ti_len,
        format_args!("N × target_dim = {n} × {tdim}"),
    )?;
    for (arg, len) in [
        ("req.target_lse", target_lse.len()),
        ("req.weights", weights.len()),
    ] {
        check_len(
            K,
            arg,
            len,
            b,
            format_args!("one per user row: B = req.users.len() / dim = {b}"),
        )?;
    }
    check_len(
        K,
        "d_users",
        d_users.len(),
        users.len(),
        format_args!("B × dim = {b} × {dim}"),
    )?;
    check_len(
        K,
        "d_items",
        d_items.len(),
        items.len(),
        format_args!("N × dim = {n} × {dim}"),
    )?;
    check_finite(K, "req.target_lse", target_lse)?;
    check_finite(K, "req.weights", weights)?;
    if b == 0 || n == 0 {
        return Ok(0.0);
    }

    let (u, v) = (
        Table::normalised(users, dim, ROW_ALIGN),
        Table::normalised(items, dim, ROW_ALIGN),
    );
    let (tu, ti) = (
        Table::plain(target_users, tdim, ROW_ALIGN),
        Table::plain(target_items, tdim, ROW_ALIGN),
    );
    let problem = Problem {
        logits: Operands {
            rows: &u,
            cols: &v,
            alpha: 1.0 / req.tau,
        },
        target: Some(Operands {
            rows: &tu,
            cols: &ti,
            alpha: 1.0 / req.target_tau,
        }),
    };
    let rule = SoftCeRule {
        target_lse,
        w: weights,
    };
    let (loss, _) = fused::run(&problem, &rule, Some((d_users, d_items)), products)?;
    Ok(loss)
}

// ---------------------------------------------------------------------------------------
// Row rules
// ---------------------------------------------------------------------------------------

/// Adds `LANES` f32 partial sums into f64 every this many elements, so that a long row's
/// sums keep f64-like accuracy while the inner loop stays f32 and vectorised.
pub(crate) const FLUSH: usize = 64 * LANES;

/// `z_c ← e^{z_c − shift}` in place; returns `Σ_c z_c` (after).
#[inline(always)]
pub(crate) fn exp_in_place(z: &mut [f32], shift: f32) -> f64 {
    let mut total = 0f64;
    for chunk in z.chunks_mut(FLUSH) {
        let mut acc = [0f32; LANES];
        let mut it = chunk.chunks_exact_mut(LANES);
        for c in &mut it {
            for l in 0..LANES {
                c[l] = exp(c[l] - shift);
                acc[l] += c[l];
            }
        }
        for (l, v) in it.into_remainder().iter_mut().enumerate() {
            *v = exp(*v - shift);
            acc[l] += *v;
        }
        total += f64::from(lane_sum(acc));
    }
    total
}

/// [`softmax_stats`]: per row `(LSE, entropy)`.
struct StatsRule;

impl RowRule for StatsRule {
    type Out = (f32, f32);

    fn rows(
        &self,
        path: KernelPath,
        _rows: Range<usize>,
        z: &mut [f32],
        _t: Option<&mut [f32]>,
        stride: usize,
        m: usize,
        out: &mut [(f32, f32)],
    ) -> f64 {
        dispatch(path, StatsRows { z, stride, m, out });
        0.0
    }
}

struct StatsRows<'a> {
    z: &'a [f32],
    stride: usize,
    m: usize,
    out: &'a mut [(f32, f32)],
}

impl SimdKernel for StatsRows<'_> {
    type Output = ();
    #[inline(always)]
    fn run(self) {
        for (row, o) in self.z.chunks_exact(self.stride).zip(self.out.iter_mut()) {
            let row = &row[..self.m];
            let mx = max(row);
            let (mut s, mut sd) = (0f64, 0f64);
            for chunk in row.chunks(FLUSH) {
                let (mut se, mut sx) = ([0f32; LANES], [0f32; LANES]);
                let mut it = chunk.chunks_exact(LANES);
                for c in &mut it {
                    for l in 0..LANES {
                        let x = c[l] - mx;
                        let e = exp(x);
                        se[l] += e;
                        sx[l] += e * x;
                    }
                }
                for (l, &v) in it.remainder().iter().enumerate() {
                    let x = v - mx;
                    let e = exp(x);
                    se[l] += e;
                    sx[l] += e * x;
                }
                s += f64::from(lane_sum(se));
                sd += f64::from(lane_sum(sx));
            }
            // H = −Σ p ln p = ln s − Σ e^{z−m}(z−m) / s, both relative to the max, which
            // keeps a peaked row's entropy accurate (no lse − E[z] cancellation).
            *o = (
                (f64::from(mx) + s.ln()) as f32,
                (s.ln() - sd / s).max(0.0) as f32,
            );
        }
    }
}

/// [`soft_ce_all_items`]: `dz = w (S p − q)`, loss `w Σ q (LSE − z)`.
struct SoftCeRule<'a> {
    target_lse: &'a [f32],
    w: &'a [f32],
}

impl RowRule for SoftCeRule<'_> {
    type Out = ();

    fn rows(
        &self,
        path: KernelPath,
        rows: Range<usize>,
        z: &mut [f32],
        t: Option<&mut [f32]>,
        stride: usize,
        m: usize,
        _out: &mut [()],
    ) -> f64 {
        match t {
            Some(t) => dispatch(
                path,
                SoftCeRows {
                    z,
                    t,
                    stride,
                    m,
                    target_lse: &self.target_lse[rows.clone()],
                    w: &self.w[rows],
                },
            ),
            // soft_ce_all_items always gives the engine a target.
            None => f64::NAN,
        }
    }
}

struct SoftCeRows<'a> {
    z: &'a mut [f32],
    t: &'a mut [f32],
    stride: usize,
    m: usize,
    target_lse: &'a [f32],
    w: &'a [f32],
}

impl SimdKernel for SoftCeRows<'_> {
    type Output = f64;
    #[inline(always)]
    fn run(self) -> f64 {
        let (stride, m) = (self.stride, self.m);
        let mut loss = 0f64;
        for (((zr, tr), &tl), &w) in self
            .z
            .chunks_exact_mut(stride)
            .zip(self.t.chunks_exact_mut(stride))
            .zip(self.target_lse)
            .zip(self.w)
        {
            let (zr, tr) = (&mut zr[..m], &mut tr[..m]);
            let mx = max(zr);
            // One sweep: z ← e^{z−max}, t ← q = e^{t−tlse}, and the sums s = Σ e,
            // S = Σ q, a = Σ q (z − max).
            let (mut s, mut qs, mut a) = (0f64, 0f64, 0f64);
            for (zc, tc) in zr.chunks_mut(FLUSH).zip(tr.chunks_mut(FLUSH)) {
                let (mut se, mut sq, mut sa) = ([0f32; LANES], [0f32; LANES], [0f32; LANES]);
                let mut zi = zc.chunks_exact_mut(LANES);
                let mut ti = tc.chunks_exact_mut(LANES);
                for (zs, ts) in (&mut zi).zip(&mut ti) {
                    for l in 0..LANES {
                        let x = zs[l] - mx;
                        let e = exp(x);
                        let q = exp(ts[l] - tl);
                        se[l] += e;
                        sq[l] += q;
                        sa[l] += q * x;
                        zs[l] = e;
                        ts[l] = q;
                    }
                }
                for (l, (zv, tv)) in zi
                    .into_remainder()
                    .iter_mut()
                    .zip(ti.into_remainder())
                    .enumerate()
                {
                    let x = *zv - mx;
                    let e = exp(x);
                    let q = exp(*tv - tl);
                    se[l] += e;
                    sq[l] += q;
                    sa[l] += q * x;
                    *zv = e;
                    *tv = q;
                }
                s += f64::from(lane_sum(se));
                qs += f64::from(lane_sum(sq));
                a += f64::from(lane_sum(sa));
            }
            // Σ q (LSE − z) with LSE = max + ln s: S ln s − Σ q (z − max).
            loss += f64::from(w) * (qs * s.ln() - a);
            let (cp, cq) = ((f64::from(w) * qs / s) as f32, w);
            for (zv, &q) in zr.iter_mut().zip(tr.iter()) {
                *zv = cp * *zv - cq * q;
            }
        }
        loss
    }
}

// ---------------------------------------------------------------------------------------
// Argument checks and small helpers
// ---------------------------------------------------------------------------------------

pub(crate) fn check_dim(kernel: &str, arg: &str, dim: usize) -> Result<(), KernelError> {
    if dim == 0 {
        return Err(KernelError::Shape(format!(
            "{kernel}: `{arg}` is 0, expected at least 1 column"
        )));
    }
    Ok(())
}

pub(crate) fn check_tau(kernel: &str, arg: &str, tau: f32) -> Result<(), KernelError> {
    if !(tau.is_finite() && tau > 0.0) {
        return Err(KernelError::Numerical(format!(
            "{kernel}: `{arg}` = {tau}, expected a finite temperature > 0"
        )));
    }
    Ok(())
}

pub(crate) fn check_finite(kernel: &str, arg: &str, x: &[f32]) -> Result<(), KernelError> {
    if let Some((i, v)) = x.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(KernelError::Numerical(format!(
            "{kernel}: `{arg}[{i}]` = {v}, expected a finite value"
        )));
    }
    Ok(())
}

/// `len / dim`, or an error when `len` is not a multiple of `dim` (> 0).
pub(crate) fn rows_of(
    kernel: &str,
    arg: &str,
    len: usize,
    dim: usize,
) -> Result<usize, KernelError> {
    if !len.is_multiple_of(dim) {
        return Err(KernelError::Shape(format!(
            "{kernel}: `{arg}` has length {len}, expected a multiple of dim = {dim}"
        )));
    }
    Ok(len / dim)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use promax_plugin_api::testing::{
        dot_f64, finite_difference_check, log_sum_exp, sample_indices, unit_rows_backward,
        unit_rows_f64, SplitMix,
    };

    pub(crate) fn random(rng: &mut SplitMix, len: usize, a: f64) -> Vec<f32> {
        (0..len).map(|_| rng.symmetric(a) as f32).collect()
    }

    pub(crate) fn unit(mut x: Vec<f32>, dim: usize) -> Vec<f32> {
        for r in x.chunks_exact_mut(dim) {
            let n = r.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>().sqrt();
            r.iter_mut().for_each(|v| *v = (f64::from(*v) / n) as f32);
        }
        x
    }

    struct Sdr {
        b: usize,
        n: usize,
        dim: usize,
        tdim: usize,
        users: Vec<f32>,
        items: Vec<f32>,
        tu: Vec<f32>,
        ti: Vec<f32>,
        tlse: Vec<f32>,
        weights: Vec<f32>,
        tau: f32,
        ttau: f32,
    }

    impl Sdr {
        /// Random problem; the target log-normalisers are exact plus `lse_offset` per row
        /// (non-zero makes S_b ≠ 1).
        #[allow(clippy::too_many_arguments)]
        fn new(
            b: usize,
            n: usize,
            dim: usize,
            tdim: usize,
            tau: f32,
            ttau: f32,
            lse_offset: f32,
            seed: u64,
        ) -> Sdr {
            let mut rng = SplitMix(seed);
            let users = random(&mut rng, b * dim, 1.0);
            let items = random(&mut rng, n * dim, 1.0);
            let tu = unit(random(&mut rng, b * tdim, 1.0), tdim);
            let ti = unit(random(&mut rng, n * tdim, 1.0), tdim);
            let weights = (0..b).map(|_| (0.1 + rng.uniform()) as f32).collect();
            let tlse = (0..b)
                .map(|r| {
                    let t: Vec<f64> = (0..n)
                        .map(|i| {
                            let tr = &tu[r * tdim..(r + 1) * tdim];
                            let tc = &ti[i * tdim..(i + 1) * tdim];
                            tr.iter()
                                .zip(tc)
                                .map(|(&x, &y)| f64::from(x) * f64::from(y))
                                .sum::<f64>()
                                / f64::from(ttau)
                        })
                        .collect();
                    (log_sum_exp(&t) + f64::from(lse_offset) * (r as f64 - 2.0) / 3.0) as f32
                })
                .collect();
            Sdr {
                b,
                n,
                dim,
                tdim,
                users,
                items,
                tu,
                ti,
                tlse,
                weights,
                tau,
                ttau,
            }
        }

        fn req(&self) -> SoftCeRequest<'_> {
            self.req_with(&self.users, &self.items)
        }

        fn req_with<'a>(&'a self, users: &'a [f32], items: &'a [f32]) -> SoftCeRequest<'a> {
            SoftCeRequest {
                users: users.into(),
                items: items.into(),
                dim: self.dim,
                target_users: self.tu.as_slice().into(),
                target_items: self.ti.as_slice().into(),
                target_dim: self.tdim,
                target_lse: self.tlse.as_slice().into(),
                weights: self.weights.as_slice().into(),
                tau: self.tau,
                target_tau: self.ttau,
            }
        }

        /// (loss, d_users, d_items) computed in f64 with full matrices.
        fn naive(&self, users: &[f32], items: &[f32]) -> (f64, Vec<f64>, Vec<f64>) {
            let (b, n, dim, tdim) = (self.b, self.n, self.dim, self.tdim);
            let (uh, un) = unit_rows_f64(users, dim);
            let (vh, vn) = unit_rows_f64(items, dim);
            let (tau, ttau) = (f64::from(self.tau), f64::from(self.ttau));
            let mut loss = 0.0;
            let mut gu = vec![0f64; b * dim];
            let mut gv = vec![0f64; n * dim];
            for r in 0..b {
                let ur = &uh[r * dim..(r + 1) * dim];
                let z: Vec<f64> = (0..n)
                    .map(|i| dot_f64(ur, &vh[i * dim..(i + 1) * dim]) / tau)
                    .collect();
                let l = log_sum_exp(&z);
                let q: Vec<f64> = (0..n)
                    .map(|i| {
                        let t: f64 = self.tu[r * tdim..(r + 1) * tdim]
                            .iter()
                            .zip(&self.ti[i * tdim..(i + 1) * tdim])
                            .map(|(&x, &y)| f64::from(x) * f64::from(y))
                            .sum::<f64>()
                            / ttau;
                        (t - f64::from(self.tlse[r])).exp()
                    })
                    .collect();
                let s: f64 = q.iter().sum();
                let w = f64::from(self.weights[r]);
                for i in 0..n {
                    let logp = z[i] - l;
                    loss += w * -q[i] * logp;
                    let dz = w * (s * logp.exp() - q[i]);
                    for c in 0..dim {
                        gu[r * dim + c] += dz * vh[i * dim + c] / tau;
                        gv[i * dim + c] += dz * ur[c] / tau;
                    }
                }
            }
            (
                loss,
                unit_rows_backward(&gu, &uh, &un, dim),
                unit_rows_backward(&gv, &vh, &vn, dim),
            )
        }
    }

    fn assert_close(what: &str, got: &[f32], want: &[f64], rtol: f64) {
        assert_eq!(got.len(), want.len(), "{what}: lengths");
        let scale = want.iter().fold(0f64, |m, v| m.max(v.abs())).max(1e-30);
        for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
            assert!(
                (f64::from(g) - w).abs() <= rtol * scale,
                "{what}[{i}]: got {g}, want {w} (scale {scale})"
            );
        }
    }

    #[test]
    fn soft_ce_matches_naive_f64() {
        let cases = [
            // b, n, dim, tdim, tau, ttau, lse offset
            (7, 13, 5, 3, 0.2, 0.2, 0.0),
            (7, 13, 5, 3, 0.5, 0.1, 0.3),
            (1, 1, 1, 1, 1.0, 1.0, 0.0),
            (3, 40, 4, 6, 0.05, 2.0, -0.2),
            // Several tiles, row blocks and column groups (TILE_* = 256).
            (300, 1100, 8, 5, 0.2, 0.3, 0.1),
        ];
        for (k, &(b, n, dim, tdim, tau, ttau, off)) in cases.iter().enumerate() {
            let mut p = Sdr::new(b, n, dim, tdim, tau, ttau, off, 100 + k as u64);
            if b > 2 && n > 2 {
                // A zero user and a zero item: zero vectors, zero gradient, no NaN.
                p.users[dim..2 * dim].fill(0.0);
                p.items[2 * dim..3 * dim].fill(0.0);
            }
            let (mut du, mut di) = (vec![0f32; b * dim], vec![0f32; n * dim]);
            let loss = soft_ce_all_items(&p.req(), &mut du, &mut di).expect("valid");
            let (wl, wu, wi) = p.naive(&p.users, &p.items);
            let case = format!("case {k} ({b}×{n}×{dim}/{tdim}, tau {tau}/{ttau})");
            assert!(
                (loss - wl).abs() <= 2e-5 * wl.abs(),
                "{case}: loss {loss} vs {wl}"
            );
            assert_close(&format!("{case} d_users"), &du, &wu, 2e-5);
            assert_close(&format!("{case} d_items"), &di, &wi, 2e-5);
            if b > 2 && n > 2 {
                assert!(du[dim..2 * dim].iter().all(|&v| v == 0.0));
                assert!(di[2 * dim..3 * dim].iter().all(|&v| v == 0.0));
            }
        }
    }

    #[test]
    fn soft_ce_gradient_matches_finite_differences() {
        for (tau, off, seed) in [(0.2f32, 0.0f32, 1u64), (0.7, 0.4, 2)] {
            let p = Sdr::new(5, 11, 4, 3, tau, 0.25, off, seed);
            let (mut du, mut di) = (vec![0f32; 5 * 4], vec![0f32; 11 * 4]);
            soft_ce_all_items(&p.req(), &mut du, &mut di).expect("valid");
            let mut users = p.users.clone();
            let items = p.items.clone();
            let bad = finite_difference_check(
                &mut users,
                &du,
                &sample_indices(20, 20, 0),
                1e-3,
                1e-3,
                1e-5,
                |u| p.naive(u, &items).0,
            );
            assert!(bad.is_empty(), "tau {tau}: d_users mismatches {bad:?}");
            let mut items = p.items.clone();
            let bad = finite_difference_check(
                &mut items,
                &di,
                &sample_indices(44, 44, 0),
                1e-3,
                1e-3,
                1e-5,
                |v| p.naive(&p.users, v).0,
            );
            assert!(bad.is_empty(), "tau {tau}: d_items mismatches {bad:?}");
        }
    }

    #[test]
    fn soft_ce_accumulates_and_ignores_thread_count() {
        let p = Sdr::new(300, 1100, 8, 5, 0.2, 0.2, 0.05, 9);
        let mut rng = SplitMix(10);
        let du0 = random(&mut rng, 300 * 8, 1.0);
        let di0 = random(&mut rng, 1100 * 8, 1.0);
        let run = |threads: usize, du0: &[f32], di0: &[f32]| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("pool");
            let (mut du, mut di) = (du0.to_vec(), di0.to_vec());
            let loss = pool
                .install(|| soft_ce_all_items(&p.req(), &mut du, &mut di))
                .expect("valid");
            (loss, du, di)
        };
        let zeros = (vec![0f32; du0.len()], vec![0f32; di0.len()]);
        let (l1, du1, di1) = run(1, &zeros.0, &zeros.1);
        let (l2, du2, di2) = run(2, &zeros.0, &zeros.1);
        let (l3, du3, di3) = run(3, &zeros.0, &zeros.1);
        assert_eq!((l1, &du1, &di1), (l2, &du2, &di2), "1 vs 2 threads");
        assert_eq!((l1, &du1, &di1), (l3, &du3, &di3), "1 vs 3 threads");
        // += : starting from non-zero buffers adds the same gradient.
        let (la, dua, dia) = run(2, &du0, &di0);
        assert_eq!(la, l1);
        for (got, (start, g)) in dua.iter().zip(du0.iter().zip(&du1)) {
            assert!((got - (start + g)).abs() <= 1e-6 * (1.0 + start.abs()));
        }
        for (got, (start, g)) in dia.iter().zip(di0.iter().zip(&di1)) {
            assert!((got - (start + g)).abs() <= 1e-6 * (1.0 + start.abs()));
        }
        assert!(du1.iter().any(|&v| v != 0.0) && di1.iter().any(|&v| v != 0.0));
    }

    #[test]
    fn soft_ce_argument_errors() {
        let p = Sdr::new(3, 4, 2, 2, 0.2, 0.2, 0.0, 4);
        let (mut du, mut di) = (vec![0f32; 6], vec![0f32; 8]);
        let err = |req: SoftCeRequest<'_>, du: &mut [f32], di: &mut [f32]| {
            soft_ce_all_items(&req, du, di).unwrap_err().to_string()
        };
        let mut r = p.req();
        r.users = p.users[..5].into();
        assert_eq!(
            err(r, &mut du, &mut di),
            "soft_ce_all_items: `req.users` has length 5, expected a multiple of dim = 2"
        );
        let mut r = p.req();
        r.weights = p.weights[..2].into();
        assert_eq!(
            err(r, &mut du, &mut di),
            "soft_ce_all_items: `req.weights` has length 2, expected 3 \
             (one per user row: B = req.users.len() / dim = 3)"
        );
        let mut r = p.req();
        r.target_items = p.ti[..6].into();
        assert_eq!(
            err(r, &mut du, &mut di),
            "soft_ce_all_items: `req.target_items` has length 6, expected 8 \
             (N × target_dim = 4 × 2)"
        );
        assert_eq!(
            err(p.req(), &mut du, &mut di[..7]),
            "soft_ce_all_items: `d_items` has length 7, expected 8 (N × dim = 4 × 2)"
        );
        assert_eq!(
            err(p.req(), &mut du[..5], &mut di),
            "soft_ce_all_items: `d_users` has length 5, expected 6 (B × dim = 3 × 2)"
        );
        let mut r = p.req();
        r.dim = 0;
        assert_eq!(
            err(r, &mut du, &mut di),
            "soft_ce_all_items: `req.dim` is 0, expected at least 1 column"
        );
        for tau in [0.0f32, -1.0, f32::NAN, f32::INFINITY] {
            let mut r = p.req();
            r.tau = tau;
            assert!(err(r, &mut du, &mut di).contains("`req.tau`"), "{tau}");
            let mut r = p.req();
            r.target_tau = tau;
            assert!(err(r, &mut du, &mut di).contains("`req.target_tau`"));
        }
        let mut w = p.weights.clone();
        w[1] = f32::NAN;
        let mut r = p.req();
        r.weights = w.as_slice().into();
        assert_eq!(
            err(r, &mut du, &mut di),
            "soft_ce_all_items: `req.weights[1]` = NaN, expected a finite value"
        );
        // B = 0 or N = 0: loss 0, nothing written.
        let (mut du, mut di) = (vec![7f32; 6], vec![7f32; 8]);
        let mut r = p.req();
        r.items = (&[] as &[f32]).into();
        r.target_items = (&[] as &[f32]).into();
        assert_eq!(soft_ce_all_items(&r, &mut du, &mut []).ok(), Some(0.0));
        let mut r = p.req();
        r.users = (&[] as &[f32]).into();
        r.target_users = (&[] as &[f32]).into();
        r.target_lse = (&[] as &[f32]).into();
        r.weights = (&[] as &[f32]).into();
        assert_eq!(soft_ce_all_items(&r, &mut [], &mut di).ok(), Some(0.0));
        assert!(du.iter().chain(&di).all(|&v| v == 7.0));
    }

    fn naive_stats(q: &[f32], k: &[f32], dim: usize, tau: f32) -> Vec<(f64, f64)> {
        q.chunks_exact(dim)
            .map(|qr| {
                let z: Vec<f64> = k
                    .chunks_exact(dim)
                    .map(|kr| {
                        qr.iter()
                            .zip(kr)
                            .map(|(&a, &b)| f64::from(a) * f64::from(b))
                            .sum::<f64>()
                            / f64::from(tau)
                    })
                    .collect();
                let l = log_sum_exp(&z);
                let h = -z
                    .iter()
                    .map(|&v| {
                        let lp = v - l;
                        lp.exp() * lp
                    })
                    .sum::<f64>();
                (l, h)
            })
            .collect()
    }

    fn stats(q: &[f32], k: &[f32], dim: usize, tau: f32) -> (Vec<f32>, Vec<f32>) {
        let rows = q.len() / dim;
        let (mut lse, mut h) = (vec![0f32; rows], vec![0f32; rows]);
        let req = SoftmaxStatsRequest {
            queries: q.into(),
            keys: k.into(),
            dim,
            tau,
        };
        softmax_stats(&req, &mut lse, &mut h).expect("valid");
        (lse, h)
    }

    #[test]
    fn softmax_stats_matches_naive() {
        let mut rng = SplitMix(30);
        for &(rows, n, dim, tau) in &[
            (7usize, 13usize, 5usize, 0.2f32),
            (1, 1, 3, 1.0),
            (5, 700, 3, 0.05),
            (290, 600, 7, 0.7),
        ] {
            let q = random(&mut rng, rows * dim, 1.0);
            let k = random(&mut rng, n * dim, 1.0);
            let (lse, h) = stats(&q, &k, dim, tau);
            for (r, (&(wl, wh), (&l, &e))) in naive_stats(&q, &k, dim, tau)
                .iter()
                .zip(lse.iter().zip(&h))
                .enumerate()
            {
                assert!(
                    (f64::from(l) - wl).abs() <= 2e-6 * wl.abs().max(1.0),
                    "{rows}×{n} row {r}: lse {l} vs {wl}"
                );
                assert!(
                    (f64::from(e) - wh).abs() <= 2e-5 * wh.abs().max(1e-2),
                    "{rows}×{n} row {r}: entropy {e} vs {wh}"
                );
            }
        }
    }

    #[test]
    fn softmax_stats_uniform_and_peaked() {
        // Uniform: a zero query scores every key 0, so H = ln N and lse = ln N.
        let n = 1000;
        let mut rng = SplitMix(31);
        let k = random(&mut rng, n * 4, 1.0);
        let (lse, h) = stats(&[0.0; 4], &k, 4, 0.1);
        let ln_n = (n as f32).ln();
        assert!(
            (lse[0] - ln_n).abs() < 1e-5 && (h[0] - ln_n).abs() < 1e-5,
            "{lse:?} {h:?}"
        );
        // Peaked: one key far ahead of the rest at a low temperature: H ≈ 0 but positive,
        // and accurate in relative terms (no cancellation).
        let mut k = vec![0f32; n];
        k[417] = 1.0;
        let (lse, h) = stats(&[1.0], &k, 1, 0.05);
        let (wl, wh) = naive_stats(&[1.0], &k, 1, 0.05)[0];
        assert!((f64::from(lse[0]) - wl).abs() < 1e-5, "{} vs {wl}", lse[0]);
        assert!(wh > 0.0 && wh < 1e-3, "{wh}");
        assert!((f64::from(h[0]) - wh).abs() < 1e-2 * wh, "{} vs {wh}", h[0]);
        // No keys: log of an empty sum.
        let (lse, h) = stats(&[1.0, 2.0], &[], 1, 1.0);
        assert_eq!((lse, h), (vec![f32::NEG_INFINITY; 2], vec![0.0; 2]));
    }

    #[test]
    fn softmax_stats_argument_errors() {
        let (mut lse, mut h) = (vec![0f32; 2], vec![0f32; 2]);
        let q = [0f32; 4];
        let req = |dim, tau| SoftmaxStatsRequest {
            queries: q[..].into(),
            keys: q[..3].into(),
            dim,
            tau,
        };
        let e = softmax_stats(&req(2, 1.0), &mut lse, &mut h)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "softmax_stats: `req.keys` has length 3, expected a multiple of dim = 2"
        );
        let e = softmax_stats(&req(1, 1.0), &mut lse, &mut h)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "softmax_stats: `lse` has length 2, expected 4 \
             (one per query row: req.queries.len() / dim = 4)"
        );
        let e = softmax_stats(&req(1, 0.0), &mut lse, &mut h)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "softmax_stats: `req.tau` = 0, expected a finite temperature > 0"
        );
        let e = softmax_stats(&req(0, 1.0), &mut lse, &mut h)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "softmax_stats: `req.dim` is 0, expected at least 1 column"
        );
    }

    #[test]
    fn soft_ce_agrees_on_every_kernel_path() {
        let p = Sdr::new(45, 300, 40, 24, 0.2, 0.1, 0.0, 71);
        let run = |products: Products| {
            let (mut du, mut di) = (vec![0f32; p.users.len()], vec![0f32; p.items.len()]);
            let l = soft_ce_with(&p.req(), &mut du, &mut di, products).expect("valid");
            (l, du, di)
        };
        let (l0, u0, i0) = run(Products::Portable);
        let want: Vec<f64> = u0.iter().chain(&i0).map(|&v| f64::from(v)).collect();
        let mut tiled = Vec::new();
        for products in Products::supported().into_iter().skip(1) {
            let (l1, u1, i1) = run(products);
            assert!(
                (l0 - l1).abs() <= 1e-5 * l0.abs(),
                "{products:?}: {l0} vs {l1}"
            );
            let got: Vec<f32> = u1.iter().chain(&i1).copied().collect();
            assert_close(&format!("portable vs {products:?}"), &got, &want, 1e-5);
            tiled.push((l1.to_bits(), got));
        }
        // AVX2 and AVX-512 tiles accumulate in one order: bit-identical.
        assert!(tiled.windows(2).all(|w| w[0] == w[1]), "tiled paths differ");
    }
}
