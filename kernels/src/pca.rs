//! PCA reduction of profile embeddings (ProMax step 1, docs/methods.md § ProMax).
//!
//! Follows the published code (`LightGCN_promax.pca` in BlueGhostYi/ProRec): centre by the
//! column mean, covariance `C = Xcᵀ Xc / (n − 1)` (numpy's `np.cov`, computed in f64 as
//! numpy does), eigendecomposition of `C` with eigenvalues in descending order (their SVD of
//! the symmetric positive semi-definite `C` gives the same factors), keep the top `dim`
//! eigenvectors `U_d`, optionally whiten with `diag(1 / sqrt(λ_j))`, and project:
//! `P = Xc · U_d · diag(…)`.
//!
//! [`Reduction::Separate`] fits one PCA per table, as the published code does: the two
//! tables then live in unrelated bases, so a user–item cosine after the reduction carries
//! no semantic signal (docs/methods.md measured it at the random floor on ML-100k).
//! [`Reduction::Joint`] fits one mean and one covariance over the rows of both tables
//! stacked together and applies that one basis to both, so the user–item cosine keeps its
//! meaning.
//!
//! # Conventions
//! - **Sign.** An eigenvector's sign is arbitrary (and differs between LAPACK builds, numpy
//!   versions and thread counts). Each kept eigenvector is flipped so that its component of
//!   largest magnitude is positive (the first such component on an exact tie). Within a
//!   repeated eigenvalue the basis itself is arbitrary; no convention can fix that.
//! - **Whitening of null directions.** Whitening divides by `sqrt(λ_j)`. When a kept
//!   eigenvalue is not above `WHITEN_RTOL × λ_max` (the table has fewer than `dim`
//!   independent directions, e.g. duplicated rows), the result would be rounding noise
//!   blown up by ~1e8: this is an error ([`KernelError::Numerical`]) naming the eigenvalue,
//!   not a silent clamp. Without whitening such directions are simply ~0 columns.
//! - **Precision.** Mean, covariance, eigendecomposition and projection run in f64; only
//!   the output is rounded to f32.
//! - **Threads.** Results are bit-for-bit the same for any thread count: the covariance is
//!   accumulated over fixed 2,048-row blocks in row order and faer's parallel products split
//!   the output, not the sums (checked: sequential and 2-thread covariances are identical at
//!   11,000 × 1536); the eigendecomposition runs sequentially (see [`eigh_lower`]).

use faer::diag::Diag;
use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::evd::{self, EvdError};
use faer::linalg::matmul::matmul;
use faer::linalg::matmul::triangular::{self, BlockStructure};
use faer::{Accum, Mat, MatMut, MatRef, Par};
use promax_plugin_api::ReduceRequest;
use rayon::prelude::*;

use crate::{check_len, KernelError};

/// How user and item profiles are reduced: the ABI's enum, so that the kernel table's
/// `reduce_profiles` and the host's own calls share one type.
pub use promax_plugin_api::Reduction;

/// Settings of [`reduce_profiles`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReduceOptions {
    /// Output dimension `d` (the backbone's embedding size in ProMax).
    pub dim: usize,
    /// Separate or joint basis.
    pub mode: Reduction,
    /// Scale column `j` by `1 / sqrt(λ_j)`, so that the reduced table has identity
    /// covariance (ProMax does).
    pub whiten: bool,
}

/// A kept eigenvalue not above this share of the largest one is treated as zero variance,
/// which whitening refuses (see the module docs). f64 rounding of a covariance built from
/// f32 data leaves null directions near 1e-16 × λ_max; real directions of embedding tables
/// sit many orders above 1e-10.
pub const WHITEN_RTOL: f64 = 1e-10;

/// Rows per block when accumulating the covariance and projecting: bounds the f64 scratch
/// (2,048 × 1,536 × 8 B = 25 MB) while keeping each product large enough to run at speed.
const BLOCK_ROWS: usize = 2048;

/// A fitted PCA: the mean, the top eigenvectors and their eigenvalues.
#[derive(Debug, Clone, PartialEq)]
pub struct Pca {
    /// Input dimension `D`.
    pub in_dim: usize,
    /// Column means, length `D`.
    pub mean: Vec<f64>,
    /// Top eigenvectors, `D × dim` row-major: column `j` is the `j`-th principal direction
    /// (sign per the module's convention).
    pub components: Vec<f64>,
    /// Top eigenvalues of the covariance, descending, length `dim`.
    pub eigenvalues: Vec<f64>,
    /// Rows the PCA was fitted on.
    pub n_rows: usize,
}

/// Reduces user and item profiles (row-major `n × in_dim` f32) to `opts.dim` columns.
///
/// Returns `(users_reduced, items_reduced)`, row-major `n_users × dim` and `n_items × dim`.
/// Errors: `in_dim` = 0 or a table length that is not a multiple of it; `dim` = 0,
/// `dim > in_dim`, or `dim > rows − 1` (per table in `Separate` mode, both tables' rows
/// together in `Joint` mode); a NaN or infinite input; a whitened direction with ~zero
/// variance ([`WHITEN_RTOL`]); the eigensolver not converging.
pub fn reduce_profiles(
    users: &[f32],
    items: &[f32],
    in_dim: usize,
    opts: &ReduceOptions,
) -> Result<(Vec<f32>, Vec<f32>), KernelError> {
    let tables = [("users", users), ("items", items)];
    match opts.mode {
        Reduction::Separate => {
            let pu = fit_pca(&tables[..1], in_dim, opts.dim)?;
            let pi = fit_pca(&tables[1..], in_dim, opts.dim)?;
            Ok((
                pu.project(users, opts.whiten)?,
                pi.project(items, opts.whiten)?,
            ))
        }
        Reduction::Joint => {
            let p = fit_pca(&tables, in_dim, opts.dim)?;
            Ok((
                p.project(users, opts.whiten)?,
                p.project(items, opts.whiten)?,
            ))
        }
    }
}

/// [`reduce_profiles`] for the kernel table: the request's options, outputs written into
/// `out_users` (n_users × dim) and `out_items` (n_items × dim).
pub fn reduce_into(
    req: &ReduceRequest<'_>,
    out_users: &mut [f32],
    out_items: &mut [f32],
) -> Result<(), KernelError> {
    let opts = ReduceOptions {
        dim: req.dim,
        mode: req.mode,
        whiten: req.whiten,
    };
    let (users, items) = reduce_profiles(&req.users, &req.items, req.in_dim, &opts)?;
    for (arg, out, want) in [
        ("out_users", &*out_users, &users),
        ("out_items", &*out_items, &items),
    ] {
        let (rows, dim) = (want.len() / req.dim.max(1), req.dim);
        let (got, want) = (out.len(), want.len());
        check_len(
            "reduce_profiles",
            arg,
            got,
            want,
            format_args!("rows × dim = {rows} × {dim}"),
        )?;
    }
    out_users.copy_from_slice(&users);
    out_items.copy_from_slice(&items);
    Ok(())
}

/// Fits one PCA on the rows of all `tables` (named, row-major, `in_dim` columns) taken
/// together: one mean, one covariance, its top `dim` eigenpairs.
pub fn fit_pca(tables: &[(&str, &[f32])], in_dim: usize, dim: usize) -> Result<Pca, KernelError> {
    const K: &str = "pca";
    let names = tables
        .iter()
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(" + ");
    if in_dim == 0 {
        return Err(KernelError::Shape(format!("{K}: in_dim is 0")));
    }
    let mut n_rows = 0usize;
    for (name, t) in tables {
        if !t.chunks_exact(in_dim).remainder().is_empty() {
            return Err(KernelError::Shape(format!(
                "{K}: `{name}` has length {}, not a multiple of in_dim = {in_dim}",
                t.len()
            )));
        }
        n_rows += t.len() / in_dim;
    }
    if dim == 0 {
        return Err(KernelError::Shape(format!("{K}: dim is 0")));
    }
    if dim > in_dim {
        return Err(KernelError::Shape(format!(
            "{K}: dim = {dim} exceeds the input dimension in_dim = {in_dim}"
        )));
    }
    if dim + 1 > n_rows {
        return Err(KernelError::Shape(format!(
            "{K}: dim = {dim} needs at least dim + 1 = {} rows, but {names} has {n_rows} rows \
             (the covariance of n rows has rank at most n − 1)",
            dim + 1
        )));
    }

    let mean = column_mean(tables, in_dim, n_rows)?;

    // Lower triangle of Σ Xcᵀ Xc, accumulated block by block in row order. Each block is
    // stored transposed (column i = centred row i, so it fills from contiguous rows): with
    // T = Xc_blockᵀ (D × rows), the block's contribution is T · Tᵀ.
    let par = Par::rayon(0);
    let mut cov = Mat::<f64>::zeros(in_dim, in_dim);
    let mut scratch = Vec::new();
    for (_, t) in tables {
        for block in t.chunks(BLOCK_ROWS * in_dim) {
            let rows = block.len() / in_dim;
            let tb = centred_transposed(block, &mean, in_dim, &mut scratch);
            triangular::matmul(
                cov.as_mut(),
                BlockStructure::TriangularLower,
                Accum::Add,
                tb,
                BlockStructure::Rectangular,
                tb.transpose(),
                BlockStructure::Rectangular,
                1.0,
                par,
            );
            debug_assert_eq!(tb.ncols(), rows);
        }
    }
    let scale = 1.0 / (n_rows - 1) as f64;
    for j in 0..in_dim {
        for i in j..in_dim {
            cov[(i, j)] *= scale;
        }
    }

    let (u, s) = eigh_lower(cov.as_ref()).map_err(|e| {
        KernelError::Numerical(format!(
            "{K}: the eigendecomposition of the {in_dim} × {in_dim} covariance of {names} \
             failed ({e:?})"
        ))
    })?;
    let (u, s) = (u.as_ref(), s.column_vector());
    let mut components = vec![0.0f64; in_dim * dim];
    let mut eigenvalues = Vec::with_capacity(dim);
    for j in 0..dim {
        let src = in_dim - 1 - j;
        eigenvalues.push(s[src]);
        let col = u.col(src);
        // Sign convention: the largest-magnitude component positive (first on a tie).
        let mut arg = 0;
        for k in 1..in_dim {
            if col[k].abs() > col[arg].abs() {
                arg = k;
            }
        }
        let sign = if col[arg] < 0.0 { -1.0 } else { 1.0 };
        for k in 0..in_dim {
            components[k * dim + j] = sign * col[k];
        }
    }
    Ok(Pca {
        in_dim,
        mean,
        components,
        eigenvalues,
        n_rows,
    })
}

impl Pca {
    /// Output dimension.
    pub fn dim(&self) -> usize {
        self.eigenvalues.len()
    }

    /// `(table − mean) · U_d`, times `diag(1 / sqrt(λ))` when `whiten`; row-major f32.
    pub fn project(&self, table: &[f32], whiten: bool) -> Result<Vec<f32>, KernelError> {
        const K: &str = "pca::project";
        let (in_dim, dim) = (self.in_dim, self.dim());
        if !table.chunks_exact(in_dim).remainder().is_empty() {
            return Err(KernelError::Shape(format!(
                "{K}: table has length {}, not a multiple of in_dim = {in_dim}",
                table.len()
            )));
        }
        let mut w = self.components.clone();
        if whiten {
            let top = self.eigenvalues.first().copied().unwrap_or(0.0);
            for (j, &l) in self.eigenvalues.iter().enumerate() {
                if !(l > WHITEN_RTOL * top && l.is_finite()) {
                    return Err(KernelError::Numerical(format!(
                        "{K}: cannot whiten: eigenvalue {j} (0-based, descending) is {l:e}, \
                         not above {WHITEN_RTOL:e} × the largest ({top:e}); the data has fewer \
                         than dim = {dim} independent directions (lower dim or turn whitening off)"
                    )));
                }
                let f = 1.0 / l.sqrt();
                for k in 0..in_dim {
                    w[k * dim + j] *= f;
                }
            }
        }
        // Wᵀ as a faer view: `w` row-major D × dim is column-major dim × D.
        let wt = MatRef::from_column_major_slice(&w, dim, in_dim);
        let par = Par::rayon(0);
        let n = table.len() / in_dim;
        let mut out = vec![0.0f32; n * dim];
        let mut scratch = Vec::new();
        let mut pt = vec![0.0f64; BLOCK_ROWS.min(n) * dim];
        for (block, out_block) in table
            .chunks(BLOCK_ROWS * in_dim)
            .zip(out.chunks_mut(BLOCK_ROWS * dim))
        {
            let rows = block.len() / in_dim;
            let tb = centred_transposed(block, &self.mean, in_dim, &mut scratch);
            // Pᵀ = Wᵀ · T (dim × rows, column-major) is P row-major.
            let dst: MatMut<'_, f64> =
                MatMut::from_column_major_slice_mut(&mut pt[..rows * dim], dim, rows);
            matmul(dst, Accum::Replace, wt, tb, 1.0, par);
            for (o, &p) in out_block.iter_mut().zip(&pt[..rows * dim]) {
                *o = p as f32;
            }
        }
        Ok(out)
    }
}

/// Eigendecomposition of the symmetric matrix whose lower triangle is `a`: (eigenvectors
/// as columns, eigenvalues in nondecreasing order). Sequential on purpose: faer's parallel
/// eigensolver differs in the last bits between thread counts (measured: ~2e-9 on whitened
/// outputs at 1536 dims), and one 1536² solve takes well under a second either way, so the
/// reduction stays bit-for-bit reproducible on any machine.
fn eigh_lower(a: MatRef<'_, f64>) -> Result<(Mat<f64>, Diag<f64>), EvdError> {
    let n = a.nrows();
    let mut u = Mat::<f64>::zeros(n, n);
    let mut s = Diag::<f64>::zeros(n);
    let par = Par::Seq;
    let scratch = evd::self_adjoint_evd_scratch::<f64>(
        n,
        evd::ComputeEigenvectors::Yes,
        par,
        Default::default(),
    );
    evd::self_adjoint_evd(
        a,
        s.as_mut(),
        Some(u.as_mut()),
        par,
        MemStack::new(&mut MemBuffer::new(scratch)),
        Default::default(),
    )?;
    Ok((u, s))
}

/// Column means over all rows of all tables, in f64; a NaN or infinite input is an error
/// naming its table, row and column (it would poison every output row).
fn column_mean(
    tables: &[(&str, &[f32])],
    in_dim: usize,
    n_rows: usize,
) -> Result<Vec<f64>, KernelError> {
    let mut sum = vec![0.0f64; in_dim];
    for (name, t) in tables {
        for (r, row) in t.chunks_exact(in_dim).enumerate() {
            for (c, (s, &x)) in sum.iter_mut().zip(row).enumerate() {
                if !x.is_finite() {
                    return Err(KernelError::Numerical(format!(
                        "pca: `{name}` row {r}, column {c} is {x} (0-based); inputs must be finite"
                    )));
                }
                *s += f64::from(x);
            }
        }
    }
    let inv = 1.0 / n_rows as f64;
    Ok(sum.into_iter().map(|s| s * inv).collect())
}

/// `(block − mean)ᵀ` in f64 as a `D × rows` view over `scratch` (column i = centred row i).
fn centred_transposed<'a>(
    block: &[f32],
    mean: &[f64],
    in_dim: usize,
    scratch: &'a mut Vec<f64>,
) -> MatRef<'a, f64> {
    let rows = block.len() / in_dim;
    scratch.resize(block.len(), 0.0);
    scratch
        .par_chunks_mut(in_dim)
        .zip(block.par_chunks(in_dim))
        .for_each(|(dst, src)| {
            for ((d, &x), &m) in dst.iter_mut().zip(src).zip(mean) {
                *d = f64::from(x) - m;
            }
        });
    MatRef::from_column_major_slice(&scratch[..], in_dim, rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use promax_plugin_api::testing::{covariance, jacobi_eigen};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Rows with a clear spectrum: column j scaled by (D − j), plus a shared low-rank part,
    /// so that the top eigenvalues are well separated (reference eigenvectors are then
    /// unique up to sign).
    fn table(n: usize, d: usize, seed: u64) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut out = Vec::with_capacity(n * d);
        for _ in 0..n {
            let z: f32 = rng.gen_range(-1.0..1.0);
            for j in 0..d {
                let x: f32 = rng.gen_range(-1.0..1.0);
                out.push(x * (d - j) as f32 + 0.7 * z * (j as f32 + 1.0) + 0.3);
            }
        }
        out
    }

    /// The straightforward reduction: loops, Jacobi, optional whitening.
    fn ref_reduce(x: &[f32], d: usize, dim: usize, whiten: bool) -> Vec<f64> {
        let (mean, c) = covariance(x, d);
        let (vals, vecs) = jacobi_eigen(c, d);
        let n = x.len() / d;
        let mut out = vec![0.0; n * dim];
        for r in 0..n {
            for j in 0..dim {
                let mut s = 0.0;
                for k in 0..d {
                    s += (f64::from(x[r * d + k]) - mean[k]) * vecs[k * d + j];
                }
                out[r * dim + j] = if whiten { s / vals[j].sqrt() } else { s };
            }
        }
        out
    }

    /// Asserts `got` equals `want` column by column up to each column's sign.
    fn assert_close_up_to_sign(got: &[f32], want: &[f64], dim: usize, tol: f64) {
        assert_eq!(got.len(), want.len());
        let n = got.len() / dim;
        for j in 0..dim {
            let dot: f64 = (0..n)
                .map(|r| f64::from(got[r * dim + j]) * want[r * dim + j])
                .sum();
            let sign = if dot < 0.0 { -1.0 } else { 1.0 };
            for r in 0..n {
                let (g, w) = (f64::from(got[r * dim + j]), sign * want[r * dim + j]);
                assert!(
                    (g - w).abs() <= tol * (1.0 + w.abs()),
                    "column {j}, row {r}: {g} vs reference {w}"
                );
            }
        }
    }

    fn column_stats(p: &[f32], dim: usize) -> (Vec<f64>, Vec<f64>) {
        let n = p.len() / dim;
        let (mut mean, mut cov) = (vec![0.0; dim], vec![0.0; dim * dim]);
        for r in 0..n {
            for j in 0..dim {
                mean[j] += f64::from(p[r * dim + j]) / n as f64;
            }
        }
        for r in 0..n {
            for a in 0..dim {
                for b in 0..dim {
                    cov[a * dim + b] += (f64::from(p[r * dim + a]) - mean[a])
                        * (f64::from(p[r * dim + b]) - mean[b])
                        / (n - 1) as f64;
                }
            }
        }
        (mean, cov)
    }

    #[allow(non_snake_case)]
    fn SEP(dim: usize, whiten: bool) -> ReduceOptions {
        ReduceOptions {
            dim,
            mode: Reduction::Separate,
            whiten,
        }
    }

    #[test]
    fn pca_matches_loop_and_jacobi_reference() {
        let (d, dim) = (6, 3);
        let users = table(40, d, 1);
        let items = table(55, d, 2);
        for whiten in [false, true] {
            let (pu, pi) = reduce_profiles(&users, &items, d, &SEP(dim, whiten)).unwrap();
            assert_close_up_to_sign(&pu, &ref_reduce(&users, d, dim, whiten), dim, 1e-5);
            assert_close_up_to_sign(&pi, &ref_reduce(&items, d, dim, whiten), dim, 1e-5);
        }
        // The fitted eigenvalues are the reference's top ones.
        let fit = fit_pca(&[("users", &users)], d, dim).unwrap();
        let (vals, _) = jacobi_eigen(covariance(&users, d).1, d);
        for j in 0..dim {
            assert!((fit.eigenvalues[j] - vals[j]).abs() < 1e-9 * vals[0], "{j}");
        }
    }

    #[test]
    fn pca_whitened_output_has_identity_covariance_and_zero_mean() {
        let (d, dim) = (6, 4);
        let users = table(40, d, 3);
        let items = table(70, d, 4);
        for mode in [Reduction::Separate, Reduction::Joint] {
            let opts = ReduceOptions {
                dim,
                mode,
                whiten: true,
            };
            let (pu, pi) = reduce_profiles(&users, &items, d, &opts).unwrap();
            let tables: Vec<Vec<f32>> = match mode {
                Reduction::Separate => vec![pu, pi],
                // Jointly, the identity covariance holds over the stacked rows.
                Reduction::Joint => vec![[pu, pi].concat()],
            };
            for p in tables {
                let (mean, cov) = column_stats(&p, dim);
                for a in 0..dim {
                    assert!(mean[a].abs() < 1e-5, "{mode:?} mean[{a}] = {}", mean[a]);
                    for b in 0..dim {
                        let want = if a == b { 1.0 } else { 0.0 };
                        assert!(
                            (cov[a * dim + b] - want).abs() < 1e-5,
                            "{mode:?} cov[{a}][{b}] = {}",
                            cov[a * dim + b]
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn pca_unwhitened_variances_are_the_top_eigenvalues() {
        let (d, dim) = (6, 3);
        let users = table(40, d, 5);
        let fit = fit_pca(&[("users", &users)], d, dim).unwrap();
        let p = fit.project(&users, false).unwrap();
        let (_, cov) = column_stats(&p, dim);
        for j in 0..dim {
            let (v, l) = (cov[j * dim + j], fit.eigenvalues[j]);
            assert!(
                (v - l).abs() < 1e-5 * l,
                "column {j}: variance {v}, eigenvalue {l}"
            );
        }
        assert!(fit.eigenvalues.windows(2).all(|w| w[0] >= w[1]));
        // Sign convention: each direction's largest-magnitude component is positive.
        for j in 0..dim {
            let col: Vec<f64> = (0..d).map(|k| fit.components[k * dim + j]).collect();
            let big = col
                .iter()
                .copied()
                .max_by(|a, b| a.abs().total_cmp(&b.abs()));
            assert!(big.unwrap() > 0.0, "{col:?}");
        }
    }

    #[test]
    fn pca_joint_shares_one_basis() {
        let (d, dim) = (6, 3);
        let users = table(40, d, 6);
        // items = users: the stacked mean and covariance are the users' own (up to the
        // n − 1 divisor), and both tables go through the same matrix: equal outputs.
        let (pu, pi) = reduce_profiles(
            &users,
            &users,
            d,
            &ReduceOptions {
                dim,
                mode: Reduction::Joint,
                whiten: false,
            },
        )
        .unwrap();
        assert_eq!(pu, pi);
        assert_close_up_to_sign(&pu, &ref_reduce(&users, d, dim, false), dim, 1e-5);

        // Different items: the joint basis is that of the stacked rows, applied to each.
        let items = table(30, d, 7);
        let opts = ReduceOptions {
            dim,
            mode: Reduction::Joint,
            whiten: true,
        };
        let (pu, pi) = reduce_profiles(&users, &items, d, &opts).unwrap();
        let stacked = [users.clone(), items.clone()].concat();
        let want = ref_reduce(&stacked, d, dim, true);
        let got = [pu, pi].concat();
        assert_close_up_to_sign(&got, &want, dim, 1e-5);
    }

    #[test]
    fn pca_is_deterministic() {
        let (d, dim) = (24, 8);
        let users = table(300, d, 8);
        let items = table(200, d, 9);
        let opts = SEP(dim, true);
        let a = reduce_profiles(&users, &items, d, &opts).unwrap();
        let b = reduce_profiles(&users, &items, d, &opts).unwrap();
        assert_eq!(a, b);
        // Same result from a one-thread pool (covariance and projection are split by
        // output, not by sum; the eigensolver is within rounding).
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let c = pool.install(|| reduce_profiles(&users, &items, d, &opts).unwrap());
        for (x, y) in a.0.iter().chain(&a.1).zip(c.0.iter().chain(&c.1)) {
            assert!((x - y).abs() < 1e-4 * (1.0 + x.abs()), "{x} vs {y}");
        }
    }

    #[test]
    fn pca_covers_more_rows_than_one_block() {
        // 2,500 rows: two covariance / projection blocks.
        let (d, dim) = (5, 2);
        let x = table(2500, d, 10);
        let (p, _) = reduce_profiles(&x, &x, d, &SEP(dim, false)).unwrap();
        assert_close_up_to_sign(&p, &ref_reduce(&x, d, dim, false), dim, 1e-4);
    }

    #[test]
    fn pca_errors_name_the_values() {
        let users = table(10, 4, 11);
        let items = table(10, 4, 12);
        let err = |u: &[f32], i: &[f32], d: usize, o: ReduceOptions| {
            reduce_profiles(u, i, d, &o).unwrap_err().to_string()
        };
        let m = err(&users, &items, 4, SEP(5, false));
        assert!(m.contains("dim = 5") && m.contains("in_dim = 4"), "{m}");
        let m = err(&users[..3 * 4], &items, 4, SEP(3, false));
        assert!(
            m.contains("dim = 3") && m.contains("3 rows") && m.contains("users"),
            "{m}"
        );
        // Jointly, rows of both tables count: 3 + 10 rows allow dim 3.
        let joint = ReduceOptions {
            dim: 3,
            mode: Reduction::Joint,
            whiten: false,
        };
        assert!(reduce_profiles(&users[..3 * 4], &items, 4, &joint).is_ok());
        let m = err(&users, &items, 4, SEP(0, false));
        assert!(m.contains("dim is 0"), "{m}");
        let m = err(&users, &items, 3, SEP(2, false));
        assert!(m.contains("multiple of in_dim = 3"), "{m}");
        let m = err(&users, &items, 0, SEP(2, false));
        assert!(m.contains("in_dim is 0"), "{m}");
        let mut bad = users.clone();
        bad[2 * 4 + 1] = f32::NAN;
        let m = err(&bad, &items, 4, SEP(2, false));
        assert!(m.contains("users") && m.contains("row 2, column 1"), "{m}");

        // Rank 2 data (each row a combination of two vectors): whitening 3 directions
        // divides by ~0 and is refused; without whitening the third column is ~0.
        let flat: Vec<f32> = (0..20)
            .flat_map(|r| {
                let (a, b) = ((r % 7) as f32, (r % 3) as f32 - 1.0);
                [a + b, a - b, 2.0 * a, b]
            })
            .collect();
        let m = err(&flat, &items, 4, SEP(3, true));
        assert!(
            m.contains("cannot whiten") && m.contains("eigenvalue 2"),
            "{m}"
        );
        let (p, _) = reduce_profiles(&flat, &items, 4, &SEP(3, false)).unwrap();
        assert!(p.chunks(3).all(|r| r[2].abs() < 1e-5), "{p:?}");
    }

    /// Timing at the paper's size (1536-dim profiles, Amazon's 11,000 users and 9,332
    /// items); run with
    /// `cargo test --release -p promax-kernels pca_timing -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn pca_timing() {
        let d = 1536;
        let low_rank = |n: usize, seed: u64| -> Vec<f32> {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let basis: Vec<f32> = (0..64 * d).map(|_| rng.gen_range(-1.0..1.0)).collect();
            let mut out = vec![0.0f32; n * d];
            for row in out.chunks_mut(d) {
                for (k, b) in basis.chunks(d).enumerate() {
                    let z: f32 = rng.gen_range(-1.0..1.0) / (k as f32 + 1.0);
                    row.iter_mut().zip(b).for_each(|(x, &bv)| *x += z * bv);
                }
                row.iter_mut()
                    .for_each(|x| *x += 0.05 * rng.gen_range(-1.0f32..1.0));
            }
            out
        };
        let users = low_rank(11_000, 1);
        let items = low_rank(9_332, 2);
        println!("threads: {}", rayon::current_num_threads());
        for mode in [Reduction::Separate, Reduction::Joint] {
            let t = std::time::Instant::now();
            let (pu, pi) = reduce_profiles(
                &users,
                &items,
                d,
                &ReduceOptions {
                    dim: 32,
                    mode,
                    whiten: true,
                },
            )
            .unwrap();
            println!("{mode:?}: {:.2} s", t.elapsed().as_secs_f64());
            assert_eq!((pu.len(), pi.len()), (11_000 * 32, 9_332 * 32));
            if mode == Reduction::Separate {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(1)
                    .build()
                    .unwrap();
                let t = std::time::Instant::now();
                let one = pool.install(|| {
                    reduce_profiles(
                        &users,
                        &items,
                        d,
                        &ReduceOptions {
                            dim: 32,
                            mode,
                            whiten: true,
                        },
                    )
                    .unwrap()
                });
                println!(
                    "{mode:?} on 1 thread: {:.2} s, same bits: {}",
                    t.elapsed().as_secs_f64(),
                    one == (pu, pi)
                );
            }
        }
        // The parts, on the users table.
        let t = std::time::Instant::now();
        let fit = fit_pca(&[("users", &users)], d, 32).unwrap();
        let t_fit = t.elapsed().as_secs_f64();
        let t = std::time::Instant::now();
        let _ = fit.project(&users, true).unwrap();
        println!(
            "users: fit (mean + covariance + eigendecomposition) {t_fit:.2} s, project {:.3} s",
            t.elapsed().as_secs_f64()
        );
        let mut cov = Mat::<f64>::zeros(d, d);
        let t = std::time::Instant::now();
        let mut scratch = Vec::new();
        for block in users.chunks(BLOCK_ROWS * d) {
            let tb = centred_transposed(block, &fit.mean, d, &mut scratch);
            triangular::matmul(
                cov.as_mut(),
                BlockStructure::TriangularLower,
                Accum::Add,
                tb,
                BlockStructure::Rectangular,
                tb.transpose(),
                BlockStructure::Rectangular,
                1.0,
                Par::rayon(0),
            );
        }
        let t_cov = t.elapsed().as_secs_f64();
        let t = std::time::Instant::now();
        let _ = eigh_lower(cov.as_ref()).unwrap();
        println!(
            "users: covariance {t_cov:.2} s, eigendecomposition {:.2} s",
            t.elapsed().as_secs_f64()
        );
    }
}
