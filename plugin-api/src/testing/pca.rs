//! The reference PCA reduction of [`ReduceRequest`]: covariance by explicit loops and the
//! cyclic Jacobi eigenvalue algorithm, in f64.

use super::reference::{expect_len, rows_of};
use crate::abi::{ReduceRequest, Reduction};

/// A kept eigenvalue not above this share of the largest one is a null direction, which
/// whitening refuses (the CPU backend's rule).
const WHITEN_RTOL: f64 = 1e-10;

/// Column means and the covariance (n − 1 divisor, numpy's `np.cov`) of the rows of `x`
/// (`d` columns), by explicit loops in f64; the covariance is d × d row-major.
pub fn covariance(x: &[f32], d: usize) -> (Vec<f64>, Vec<f64>) {
    let n = x.len() / d;
    let mut mean = vec![0.0; d];
    for r in 0..n {
        for j in 0..d {
            mean[j] += f64::from(x[r * d + j]) / n as f64;
        }
    }
    let mut c = vec![0.0; d * d];
    for r in 0..n {
        for a in 0..d {
            for b in 0..d {
                c[a * d + b] += (f64::from(x[r * d + a]) - mean[a])
                    * (f64::from(x[r * d + b]) - mean[b])
                    / (n - 1) as f64;
            }
        }
    }
    (mean, c)
}

/// Cyclic Jacobi eigenvalue algorithm on the symmetric d × d row-major `a`: (eigenvalues
/// descending, eigenvectors as the columns of a d × d row-major matrix).
pub fn jacobi_eigen(mut a: Vec<f64>, d: usize) -> (Vec<f64>, Vec<f64>) {
    let mut v = vec![0.0; d * d];
    for i in 0..d {
        v[i * d + i] = 1.0;
    }
    for _sweep in 0..100 {
        let off: f64 = (0..d)
            .flat_map(|p| (0..d).filter(move |&q| q != p).map(move |q| (p, q)))
            .map(|(p, q)| a[p * d + q] * a[p * d + q])
            .sum();
        if off < 1e-30 {
            break;
        }
        for p in 0..d {
            for q in p + 1..d {
                let apq = a[p * d + q];
                if apq.abs() < 1e-300 {
                    continue;
                }
                let theta = (a[q * d + q] - a[p * d + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..d {
                    let (akp, akq) = (a[k * d + p], a[k * d + q]);
                    a[k * d + p] = c * akp - s * akq;
                    a[k * d + q] = s * akp + c * akq;
                }
                for k in 0..d {
                    let (apk, aqk) = (a[p * d + k], a[q * d + k]);
                    a[p * d + k] = c * apk - s * aqk;
                    a[q * d + k] = s * apk + c * aqk;
                }
                for k in 0..d {
                    let (vkp, vkq) = (v[k * d + p], v[k * d + q]);
                    v[k * d + p] = c * vkp - s * vkq;
                    v[k * d + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    let mut order: Vec<usize> = (0..d).collect();
    order.sort_by(|&i, &j| a[j * d + j].total_cmp(&a[i * d + i]));
    let vals = order.iter().map(|&i| a[i * d + i]).collect();
    let mut vecs = vec![0.0; d * d];
    for (new, &old) in order.iter().enumerate() {
        for k in 0..d {
            vecs[k * d + new] = v[k * d + old];
        }
    }
    (vals, vecs)
}

/// A fitted basis: the mean and the `dim` kept directions, pre-scaled when whitening.
struct Basis {
    mean: Vec<f64>,
    /// Column j of direction j, d × dim row-major.
    w: Vec<f64>,
    dim: usize,
}

fn fit(x: &[f32], d: usize, dim: usize, whiten: bool) -> Result<Basis, String> {
    let rows = x.len() / d;
    if dim + 1 > rows {
        return Err(format!(
            "dim = {dim} needs at least {} rows, the table has {rows}",
            dim + 1
        ));
    }
    let (mean, cov) = covariance(x, d);
    let (vals, vecs) = jacobi_eigen(cov, d);
    let mut w = vec![0.0; d * dim];
    for j in 0..dim {
        let col: Vec<f64> = (0..d).map(|k| vecs[k * d + j]).collect();
        // The largest-magnitude component positive (the first on a tie).
        let big = (1..d).fold(0, |m, k| if col[k].abs() > col[m].abs() { k } else { m });
        let mut f = if col[big] < 0.0 { -1.0 } else { 1.0 };
        if whiten {
            if !(vals[j] > WHITEN_RTOL * vals[0] && vals[j].is_finite()) {
                return Err(format!(
                    "cannot whiten: eigenvalue {j} is {:e}, not above {WHITEN_RTOL:e} × the \
                     largest ({:e})",
                    vals[j], vals[0]
                ));
            }
            f /= vals[j].sqrt();
        }
        (0..d).for_each(|k| w[k * dim + j] = f * col[k]);
    }
    Ok(Basis { mean, w, dim })
}

fn project(x: &[f32], b: &Basis, out: &mut [f32]) {
    let d = b.mean.len();
    for (row, o) in x.chunks_exact(d).zip(out.chunks_exact_mut(b.dim)) {
        for (j, o) in o.iter_mut().enumerate() {
            let s: f64 = (0..d)
                .map(|k| (f64::from(row[k]) - b.mean[k]) * b.w[k * b.dim + j])
                .sum();
            *o = s as f32;
        }
    }
}

/// [`ReduceRequest`] by the definitions above.
pub(super) fn reduce(
    req: &ReduceRequest<'_>,
    ou: &mut [f32],
    oi: &mut [f32],
) -> Result<(), String> {
    let (d, dim) = (req.in_dim, req.dim);
    let (nu, ni) = (
        rows_of("users", &req.users, d)?,
        rows_of("items", &req.items, d)?,
    );
    if dim == 0 || dim > d {
        return Err(format!("dim = {dim} must be in 1..=in_dim = {d}"));
    }
    expect_len("out_users", ou.len(), nu * dim)?;
    expect_len("out_items", oi.len(), ni * dim)?;
    if let Some(x) = req
        .users
        .iter()
        .chain(req.items.iter())
        .find(|x| !x.is_finite())
    {
        return Err(format!("profiles must be finite, found {x}"));
    }
    match req.mode {
        Reduction::Separate => {
            project(&req.users, &fit(&req.users, d, dim, req.whiten)?, ou);
            project(&req.items, &fit(&req.items, d, dim, req.whiten)?, oi);
        }
        Reduction::Joint => {
            let basis = fit(
                &[&req.users[..], &req.items[..]].concat(),
                d,
                dim,
                req.whiten,
            )?;
            project(&req.users, &basis, ou);
            project(&req.items, &basis, oi);
        }
    }
    Ok(())
}
