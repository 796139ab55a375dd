//! The reference softmax kernels: per-row softmax statistics, the soft-target
//! cross-entropy over all items and InfoNCE, written from their definitions with full
//! logit matrices in f64, gradients by the chain rule through the row normalisation.

use super::f64rows::{log_sum_exp as lse, unit_rows_backward, unit_rows_f64 as hat};
use super::reference::{dot, expect_len, rows_of};
use crate::abi::{SoftCeRequest, SoftmaxStatsRequest};

pub(super) fn softmax_stats(
    req: &SoftmaxStatsRequest<'_>,
    lse_out: &mut [f32],
    entropy: &mut [f32],
) -> Result<(), String> {
    let (q, keys, dim) = (req.queries.as_slice(), req.keys.as_slice(), req.dim);
    let rows = rows_of("queries", q, dim)?;
    rows_of("keys", keys, dim)?;
    expect_len("lse", lse_out.len(), rows)?;
    expect_len("entropy", entropy.len(), rows)?;
    for (r, qr) in q.chunks_exact(dim).enumerate() {
        let z: Vec<f64> = keys
            .chunks_exact(dim)
            .map(|kr| dot(qr, kr) / f64::from(req.tau))
            .collect();
        let l = lse(&z);
        let h = -z.iter().map(|&v| (v - l).exp() * (v - l)).sum::<f64>();
        lse_out[r] = l as f32;
        entropy[r] = if z.is_empty() { 0.0 } else { h as f32 };
    }
    Ok(())
}

/// Logits `z_rc = â_r · b̂_c / tau` of unit rows, and the chain rule back to the raw rows:
/// given `dL/dz`, ACCUMULATES `dL/da` and `dL/db` into `d_a` / `d_b`.
struct Cosines {
    dim: usize,
    tau: f64,
    a: (Vec<f64>, Vec<f64>),
    b: (Vec<f64>, Vec<f64>),
}

impl Cosines {
    fn new(a: &[f32], b: &[f32], dim: usize, tau: f32) -> Self {
        let (a, b) = (hat(a, dim), hat(b, dim));
        Cosines {
            dim,
            tau: f64::from(tau),
            a,
            b,
        }
    }
    fn rows(&self) -> (usize, usize) {
        (self.a.1.len(), self.b.1.len())
    }
    fn logits(&self, r: usize) -> Vec<f64> {
        let d = self.dim;
        let ar = &self.a.0[r * d..(r + 1) * d];
        let dot = |c: usize| {
            ar.iter()
                .zip(&self.b.0[c * d..(c + 1) * d])
                .map(|(x, y)| x * y)
        };
        (0..self.rows().1)
            .map(|c| dot(c).sum::<f64>() / self.tau)
            .collect()
    }
    fn backward(&self, dz: &[f64], d_a: &mut [f32], d_b: &mut [f32]) {
        let (d, (n, m)) = (self.dim, self.rows());
        let (mut ga, mut gb) = (vec![0f64; n * d], vec![0f64; m * d]);
        for r in 0..n {
            for c in 0..m {
                let g = dz[r * m + c] / self.tau;
                for k in 0..d {
                    ga[r * d + k] += g * self.b.0[c * d + k];
                    gb[c * d + k] += g * self.a.0[r * d + k];
                }
            }
        }
        unhat(&ga, &self.a, d, d_a);
        unhat(&gb, &self.b, d, d_b);
    }
}

/// `acc += dL/dx` from `g = dL/dx̂` through `x̂ = x / |x|`.
fn unhat(g: &[f64], (h, norms): &(Vec<f64>, Vec<f64>), dim: usize, acc: &mut [f32]) {
    let grad = unit_rows_backward(g, h, norms, dim);
    acc.iter_mut().zip(grad).for_each(|(a, v)| *a += v as f32);
}

pub(super) fn soft_ce(
    req: &SoftCeRequest<'_>,
    d_users: &mut [f32],
    d_items: &mut [f32],
) -> Result<f64, String> {
    let (dim, tdim) = (req.dim, req.target_dim);
    let b = rows_of("users", &req.users, dim)?;
    let n = rows_of("items", &req.items, dim)?;
    expect_len("target_users", req.target_users.len(), b * tdim)?;
    expect_len("target_items", req.target_items.len(), n * tdim)?;
    expect_len("target_lse", req.target_lse.len(), b)?;
    expect_len("weights", req.weights.len(), b)?;
    expect_len("d_users", d_users.len(), b * dim)?;
    expect_len("d_items", d_items.len(), n * dim)?;
    let cos = Cosines::new(&req.users, &req.items, dim, req.tau);
    let (mut loss, mut dz) = (0.0, vec![0f64; b * n]);
    for r in 0..b {
        let z = cos.logits(r);
        let l = lse(&z);
        let tu = &req.target_users[r * tdim..(r + 1) * tdim];
        let q: Vec<f64> = (0..n)
            .map(|i| {
                let t = dot(tu, &req.target_items[i * tdim..(i + 1) * tdim]);
                (t / f64::from(req.target_tau) - f64::from(req.target_lse[r])).exp()
            })
            .collect();
        let (s, w) = (q.iter().sum::<f64>(), f64::from(req.weights[r]));
        for i in 0..n {
            loss += w * -q[i] * (z[i] - l);
            dz[r * n + i] = w * (s * (z[i] - l).exp() - q[i]);
        }
    }
    cos.backward(&dz, d_users, d_items);
    Ok(loss)
}

/// `weight · Σ_(r,c) ∈ pairs −ln(P_rc + eps)` with `P_rc = e^{z_rc} / Σ_c' k_c' e^{z_rc'}`,
/// the shared form of both InfoNCE methods.
pub(super) fn nce(
    (a, b, dim): (&[f32], &[f32], usize),
    counts: &[u32],
    pairs: &[u32],
    (tau, eps, weight): (f32, f32, f32),
    d_a: &mut [f32],
    d_b: &mut [f32],
) -> Result<f64, String> {
    let (n, m) = (rows_of("a", a, dim)?, rows_of("b", b, dim)?);
    expect_len("d_a", d_a.len(), n * dim)?;
    expect_len("d_b", d_b.len(), m * dim)?;
    if !counts.is_empty() {
        expect_len("col_counts", counts.len(), m)?;
    }
    if !pairs.len().is_multiple_of(2) {
        return Err(format!("`pairs` has odd length {}", pairs.len()));
    }
    if let Some(p) = pairs
        .chunks_exact(2)
        .find(|p| p[0] as usize >= n || p[1] as usize >= m)
    {
        return Err(format!(
            "pair ({}, {}) is out of range ({n} × {m})",
            p[0], p[1]
        ));
    }
    let k = |c: usize| counts.get(c).map_or(1.0, |&k| f64::from(k));
    let cos = Cosines::new(a, b, dim, tau);
    let (w, eps) = (f64::from(weight), f64::from(eps));
    let (mut loss, mut dz) = (0.0, vec![0f64; n * m]);
    for pair in pairs.chunks_exact(2) {
        let (r, c) = (pair[0] as usize, pair[1] as usize);
        let z = cos.logits(r);
        let weighted: Vec<f64> = (0..m).map(|j| k(j).ln() + z[j]).collect();
        let l = lse(&weighted);
        let p = (z[c] - l).exp();
        loss += -(p + eps).ln();
        let s = p / (p + eps);
        for j in 0..m {
            dz[r * m + j] += w * s * ((weighted[j] - l).exp() - f64::from(u8::from(j == c)));
        }
    }
    cos.backward(&dz, d_a, d_b);
    Ok(w * loss)
}
