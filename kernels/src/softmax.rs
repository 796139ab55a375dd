//! Softmax over ALL items, streamed: per-row statistics ([`softmax_stats`]) and ProMax's
//! soft-target cross-entropy with its gradient ([`soft_ce_all_items`]). The same two-pass
//! engine also runs [`crate::infonce::info_nce`].
//!
//! # Design
//! A rows × cols logit matrix (3,000 users × 9,332 items is 112 MB; 4,096 rows 153 MB) is
//! never materialised. Logits are recomputed tile by tile (`TILE_ROWS` × `TILE_COLS`, 256 KB,
//! so a tile stays in L2 between the product that writes it and the loops that read it) with
//! single-threaded matrixmultiply products inside rayon tasks:
//!
//! - **Pass 1**, parallel over blocks of rows: each row's log-normaliser by an online
//!   max/sum over the column tiles (running max `m`, `s = Σ e^{z−m}`, and for the entropy
//!   `Σ e^{z−m}(z−m)`, rescaled when `m` grows).
//! - **Pass 2**, parallel over fixed groups of columns: recompute the logit (and target)
//!   tiles, turn them into `dL/dz` in place, and multiply out both gradient products,
//!   `G_rows += dZ · V̂ / tau` and `G_cols += dZᵀ · Û / tau`; then back through the
//!   normalisation, `dL/dx = (g − (g·x̂) x̂) / ‖x‖`.
//!
//! Flops per (row, column) pair at dim = target_dim = d: `2d` in pass 1, `2d + 2·target_dim`
//! for the pass-2 tiles, `4d` for the gradient products (10 d in all, the 320 that
//! [`crate::bench::bench_sdr`] credits at d = 32), and ~3 exponentials.
//!
//! ## Why pass 2 is split over columns, and what it costs in memory
//! The column-side gradient `Σ_b dz_bi û_b` sums over all rows and the row-side one
//! `Σ_i dz_bi v̂_i` over all columns, so one of the two must be reduced across tasks. Split
//! by column groups, each task owns its columns' gradient outright (written straight into
//! `d_items`), and only the row-side gradient needs per-task partials: `groups × B × dim`
//! floats, reduced in group order, so the result is bit-identical for any thread count (the
//! groups depend only on the shapes). The group count is capped so that the partials stay
//! under `PARTIAL_BUDGET_BYTES` = 4 MiB (but at least 2 groups): at B = 3,000, dim 32, 9,332 columns that is 10
//! groups × 384 KB = 3.8 MB, against 14 MB for per-row-block item partials (12 blocks of
//! 256 rows × 9,332 × 32 × 4 B): a batch has fewer unique users than the catalogue has
//! items.
//!
//! Other memory per call, `O((B + N)·(dim + target_dim))` (~5 MB at the size above):
//! normalised copies of both tables, transposed copies of every product operand (see
//! [`Product`]), norms, log-normalisers. Per thread, two logit tiles (512 KB) and one
//! group's column gradient, kept thread-local across calls so that a training loop does
//! not page-fault fresh tiles every batch.
//!
//! ## The target mass `S_b`
//! With `log q_bi = t_bi − target_lse[b]` as given (not renormalised), the loss of row b is
//! `Σ_i −q_bi (z_bi − LSE_b)`, whose exact gradient is `dL/dz_bi = w_b (S_b p_bi − q_bi)`,
//! `S_b = Σ_i q_bi`. `S_b` is 1 up to rounding when `target_lse` came from
//! [`softmax_stats`], and anything when it did not. Pass 2 forms `dz = w (p − q)` and sums
//! `S_b` on the way (its `q` tiles are computed anyway); afterwards, the rows whose `S_b`
//! differs from 1 by more than `S_TOLERANCE` get the missing `w (S_b − 1) p` through a
//! third pass restricted to those rows (logits, exp, both gradient products). Computing
//! `S_b` up front instead would cost every call one more `B × N × target_dim` product and
//! exponential (~15%); the correction pass costs nothing when the target is consistent
//! (the training case) and ~60% of a call when every row needs it.
//!
//! ## Exponentials
//! ~3 per (row, column) pair: [`crate::fastexp::exp`], in loops that vectorise, compiled for
//! AVX-512F / AVX2 / baseline and picked at run time ([`crate::fastexp::dispatch`]).

use std::cell::RefCell;
use std::ops::Range;

use ndarray::{linalg::general_mat_mul, s, ArrayView2, ArrayViewMut2};
use promax_plugin_api::{SoftCeRequest, SoftmaxStatsRequest};
use rayon::prelude::*;

use crate::fastexp::{dispatch, exp, lane_sum, max, SimdKernel, LANES};
use crate::{check_len, checked_mul, KernelError};

/// Rows of a logit tile. A multiple of matrixmultiply's register tile (16 rows with
/// AVX-512); also the inner dimension of the column-side gradient product.
const TILE_ROWS: usize = 256;
/// Columns of a logit tile; also the inner dimension of the row-side gradient product.
const TILE_COLS: usize = 256;
/// Pass 1 splits rows into at most this many blocks (more blocks than threads lets rayon
/// even out the load), of at least `MIN_BLOCK_ROWS` rows.
const MAX_ROW_BLOCKS: usize = 16;
const MIN_BLOCK_ROWS: usize = 16;
/// Pass 2 splits columns into at most `MAX_GROUPS` groups of at least `MIN_GROUP_COLS`.
const MAX_GROUPS: usize = 16;
const MIN_GROUP_COLS: usize = 256;
/// Cap on the row-side gradient partials of pass 2 (`groups × rows × dim × 4` bytes).
const PARTIAL_BUDGET_BYTES: usize = 4 << 20;
/// `soft_ce_all_items` runs its `w (S − 1) p` gradient correction for the rows whose target
/// mass `S = Σ_i q_i` differs from 1 by more than this. `S` itself is only known to ~3e-7
/// (the fast exp's error plus f32 partial sums), and with `target_lse` from
/// [`softmax_stats`] (rounded to f32) `|S − 1|` measured at most 4.9e-7 at 3,000 × 9,332
/// (target_tau 0.2); one f32 ulp of a log-normaliser between 8 and 16 is 9.5e-7. Skipping
/// the correction below the tolerance changes `dz` by less than `4e-6 · w · p`.
const S_TOLERANCE: f64 = 4e-6;

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
    let keys_t = transpose(keys, n_keys, dim);
    let queries_t = transpose(queries, rows, dim);
    let logits = Product {
        at: &queries_t,
        bt: &keys_t,
        k: dim,
        n_cols: n_keys,
        alpha: 1.0 / req.tau,
    };
    let stats = pass1(&logits, true)?;
    for ((st, l), h) in stats.iter().zip(lse.iter_mut()).zip(entropy.iter_mut()) {
        // H = −Σ p ln p = ln s − Σ e^{z−m}(z−m) / s, both relative to the final max, which
        // keeps a peaked row's entropy accurate (no lse − E[z] cancellation).
        *l = (f64::from(st.m) + st.s.ln()) as f32;
        *h = (st.s.ln() - st.sd / st.s).max(0.0) as f32;
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
/// - `dL/dz_bi = w_b (S_b p_bi − q_bi)`, `S_b = Σ_i q_bi` as computed, so the gradient is
///   that of the returned loss. (`S_b` is 1 up to rounding when `target_lse` is the exact
///   normaliser; where `|S_b − 1| ≤ 4e-6`, a few f32 ulps of a log-normaliser of ~10, the
///   `S_b − 1` part is skipped: see the module documentation.)
///
/// B = 0 or N = 0: returns 0 and writes nothing. The result does not depend on the number
/// of threads.
pub fn soft_ce_all_items(
    req: &SoftCeRequest<'_>,
    d_users: &mut [f32],
    d_items: &mut [f32],
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

    let (u_hat, u_norm) = normalise(users, dim);
    let (v_hat, v_norm) = normalise(items, dim);
    let v_hat_t = transpose(&v_hat, n, dim);
    let ti_t = transpose(target_items, n, tdim);
    let (u_hat_t, tu_t) = (transpose(&u_hat, b, dim), transpose(target_users, b, tdim));
    let logits = Product {
        at: &u_hat_t,
        bt: &v_hat_t,
        k: dim,
        n_cols: n,
        alpha: 1.0 / req.tau,
    };
    let target = Product {
        at: &tu_t,
        bt: &ti_t,
        k: tdim,
        n_cols: n,
        alpha: 1.0 / req.target_tau,
    };
    let lse: Vec<f32> = pass1(&logits, false)?
        .iter()
        .map(|st| (f64::from(st.m) + st.s.ln()) as f32)
        .collect();
    let rule = SoftCeRule {
        lse: &lse,
        target_lse,
        w: weights,
    };
    let cols = Side {
        hat: &v_hat,
        norm: &v_norm,
    };
    let (loss, q_sums) = pass2(
        &Pass2 {
            logits: &logits,
            target: Some(&target),
            rows: Side {
                hat: &u_hat,
                norm: &u_norm,
            },
            cols,
            grad_scale: 1.0 / req.tau,
        },
        &rule,
        d_users,
        d_items,
    )?;

    // Pass 2 used dz = w (p − q); the exact gradient is w (S p − q). Add w (S − 1) p for the
    // rows where S is not 1 to within the precision it is computed at.
    let fix: Vec<usize> = (0..b)
        .filter(|&r| weights[r] != 0.0 && (q_sums[r] - 1.0).abs() > S_TOLERANCE)
        .collect();
    if fix.is_empty() {
        return Ok(loss);
    }
    let gather = |x: &[f32], width: usize| -> Vec<f32> {
        fix.iter()
            .flat_map(|&r| x[r * width..(r + 1) * width].iter().copied())
            .collect()
    };
    let (sub_hat, sub_norm, sub_lse) = (gather(&u_hat, dim), gather(&u_norm, 1), gather(&lse, 1));
    let coef: Vec<f32> = fix
        .iter()
        .map(|&r| (f64::from(weights[r]) * (q_sums[r] - 1.0)) as f32)
        .collect();
    let sub_hat_t = transpose(&sub_hat, fix.len(), dim);
    let sub_logits = Product {
        at: &sub_hat_t,
        ..logits
    };
    let mut d_sub = vec![0f32; fix.len() * dim];
    pass2(
        &Pass2 {
            logits: &sub_logits,
            target: None,
            rows: Side {
                hat: &sub_hat,
                norm: &sub_norm,
            },
            cols,
            grad_scale: 1.0 / req.tau,
        },
        &ScaledSoftmaxRule {
            lse: &sub_lse,
            coef: &coef,
        },
        &mut d_sub,
        d_items,
    )?;
    for (&r, d) in fix.iter().zip(d_sub.chunks_exact(dim)) {
        d_users[r * dim..(r + 1) * dim]
            .iter_mut()
            .zip(d)
            .for_each(|(o, v)| *o += v);
    }
    Ok(loss)
}

// ---------------------------------------------------------------------------------------
// Shared engine (also used by infonce.rs)
// ---------------------------------------------------------------------------------------

/// `alpha · a · b^T` for tiles of rows of `a` and of `b`, both given transposed (`at`:
/// k × rows, `bt`: k × n_cols, row-major): matrixmultiply packs its operands into panels
/// that run along the rows of `a` and of `b`, a contiguous copy from the transposed layout
/// but an element-by-element gather from the row-major one (that gather took ~5% of the
/// SDR call).
pub(crate) struct Product<'a> {
    pub at: &'a [f32],
    pub bt: &'a [f32],
    pub k: usize,
    pub n_cols: usize,
    pub alpha: f32,
}

impl Product<'_> {
    fn n_rows(&self) -> usize {
        self.at.len() / self.k
    }

    /// Overwrites `out` (rows.len() × cols.len(), row-major) with the logit tile.
    fn tile(
        &self,
        rows: Range<usize>,
        cols: Range<usize>,
        out: &mut [f32],
    ) -> Result<(), KernelError> {
        let k = self.k;
        let at = ArrayView2::from_shape((k, self.n_rows()), self.at).map_err(internal)?;
        let a = at.slice(s![.., rows.clone()]).reversed_axes();
        let bt = ArrayView2::from_shape((k, self.n_cols), self.bt).map_err(internal)?;
        let bt = bt.slice(s![.., cols.clone()]);
        let mut c = ArrayViewMut2::from_shape((rows.len(), cols.len()), out).map_err(internal)?;
        general_mat_mul(self.alpha, &a, &bt, 0.0, &mut c);
        Ok(())
    }
}

fn internal(e: ndarray::ShapeError) -> KernelError {
    KernelError::Shape(format!("softmax tiles: internal shape error: {e}"))
}

/// One row's running statistics in pass 1.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RowStats {
    /// Running max of the logits.
    pub m: f32,
    /// `Σ e^{z−m}`.
    pub s: f64,
    /// `Σ e^{z−m} (z − m)` (only with `entropy`).
    pub sd: f64,
}

impl Default for RowStats {
    fn default() -> Self {
        RowStats {
            m: f32::NEG_INFINITY,
            s: 0.0,
            sd: 0.0,
        }
    }
}

/// Per-thread tile buffers, kept across calls.
#[derive(Default)]
struct Scratch {
    z: Vec<f32>,
    t: Vec<f32>,
    g: Vec<f32>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

fn with_scratch<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut s) => f(&mut s),
        // Only a nested call on the same thread finds it borrowed: it gets its own.
        Err(_) => f(&mut Scratch::default()),
    })
}

/// `buf[..len]`, growing `buf` if needed (its contents are overwritten by the caller).
fn sized(buf: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
    &mut buf[..len]
}

/// Rows per pass-1 task: enough blocks to balance the threads, a multiple of 16, at most a
/// tile. Depends only on the shape.
fn block_rows(rows: usize) -> usize {
    rows.div_ceil(MAX_ROW_BLOCKS)
        .next_multiple_of(16)
        .clamp(MIN_BLOCK_ROWS, TILE_ROWS)
}

/// Pass 1: per-row online statistics of the logits.
pub(crate) fn pass1(logits: &Product<'_>, entropy: bool) -> Result<Vec<RowStats>, KernelError> {
    let rows = logits.n_rows();
    let n_cols = logits.n_cols;
    let mut stats = vec![RowStats::default(); rows];
    let block = block_rows(rows);
    stats
        .par_chunks_mut(block)
        .enumerate()
        .try_for_each(|(blk, st)| {
            let r0 = blk * block;
            let r = r0..r0 + st.len();
            with_scratch(|sc| -> Result<(), KernelError> {
                for c0 in (0..n_cols).step_by(TILE_COLS) {
                    let c = c0..(c0 + TILE_COLS).min(n_cols);
                    let len = r.len() * c.len();
                    let z = sized(&mut sc.z, len);
                    logits.tile(r.clone(), c.clone(), z)?;
                    dispatch(Pass1Tile {
                        z,
                        width: c.len(),
                        stats: st,
                        entropy,
                    });
                }
                Ok(())
            })
        })?;
    Ok(stats)
}

struct Pass1Tile<'a> {
    z: &'a [f32],
    width: usize,
    stats: &'a mut [RowStats],
    entropy: bool,
}

impl SimdKernel for Pass1Tile<'_> {
    type Output = ();
    #[inline(always)]
    fn run(self) {
        let w = self.width;
        for (r, st) in self.stats.iter_mut().enumerate() {
            let row = &self.z[r * w..(r + 1) * w];
            let mt = max(row);
            if mt > st.m {
                if st.s > 0.0 {
                    // Rescale the sums to the new max: e^{z−m'} = e^{z−m} e^{m−m'}, and
                    // (z − m') = (z − m) + (m − m').
                    let delta = f64::from(st.m) - f64::from(mt);
                    let scale = delta.exp();
                    st.sd = scale * (st.sd + delta * st.s);
                    st.s *= scale;
                }
                st.m = mt;
            }
            let m = st.m;
            if self.entropy {
                let (mut se, mut sd) = ([0f32; LANES], [0f32; LANES]);
                let mut chunks = row.chunks_exact(LANES);
                for ch in &mut chunks {
                    for l in 0..LANES {
                        let x = ch[l] - m;
                        let e = exp(x);
                        se[l] += e;
                        sd[l] += e * x;
                    }
                }
                for (l, &v) in chunks.remainder().iter().enumerate() {
                    let x = v - m;
                    let e = exp(x);
                    se[l] += e;
                    sd[l] += e * x;
                }
                st.s += f64::from(lane_sum(se));
                st.sd += f64::from(lane_sum(sd));
            } else {
                st.s += f64::from(sum_exp(row, m));
            }
        }
    }
}

/// `Σ e^{x − shift}` in `LANES` partial sums.
#[inline(always)]
fn sum_exp(x: &[f32], shift: f32) -> f32 {
    let mut acc = [0f32; LANES];
    let mut chunks = x.chunks_exact(LANES);
    for ch in &mut chunks {
        for l in 0..LANES {
            acc[l] += exp(ch[l] - shift);
        }
    }
    for (l, &v) in chunks.remainder().iter().enumerate() {
        acc[l] += exp(v - shift);
    }
    lane_sum(acc)
}

/// What pass 2 does with a logit tile: turn it into `dL/dz` in place (rows `rows` of the
/// whole problem, `width` columns per row) and return the tile's loss contribution. It may
/// also add a per-row quantity into `row_sums` (one per row of the tile; summed over all
/// columns by [`pass2`]).
pub(crate) trait Rule: Sync {
    fn tile(
        &self,
        rows: Range<usize>,
        z: &mut [f32],
        t: Option<&[f32]>,
        width: usize,
        row_sums: &mut [f64],
    ) -> f64;
    /// Adds gradient terms not of the form `dz · other side` to the column-side gradient of
    /// columns `cols` (`g`: cols.len() × dim, in the units of the products, i.e. already
    /// divided by tau).
    fn add_col_terms(&self, _cols: Range<usize>, _g: &mut [f32]) {}
    /// Same for the row-side gradient (all rows).
    fn add_row_terms(&self, _g: &mut [f32]) {}
}

/// A normalised table and its row norms.
#[derive(Clone, Copy)]
pub(crate) struct Side<'a> {
    pub hat: &'a [f32],
    pub norm: &'a [f32],
}

pub(crate) struct Pass2<'a> {
    pub logits: &'a Product<'a>,
    pub target: Option<&'a Product<'a>>,
    /// The normalised rows (`logits.a` without the temperature) and norms.
    pub rows: Side<'a>,
    /// The normalised columns (rows of the column table) and norms.
    pub cols: Side<'a>,
    /// `dz/d(û·v̂)`, i.e. `1 / tau`.
    pub grad_scale: f32,
}

/// Column groups of pass 2: `(group width, count)`. Depends only on the shapes.
fn column_groups(rows: usize, n_cols: usize, dim: usize) -> (usize, usize) {
    let per_group = rows.saturating_mul(dim).saturating_mul(4).max(1);
    let by_budget = (PARTIAL_BUDGET_BYTES / per_group).max(2);
    let groups = n_cols
        .div_ceil(MIN_GROUP_COLS)
        .clamp(1, MAX_GROUPS)
        .min(by_budget);
    let width = n_cols.div_ceil(groups).next_multiple_of(16);
    (width, n_cols.div_ceil(width))
}

/// Pass 2: recomputes the tiles, forms `dz` with `rule`, and ACCUMULATES the gradients
/// (through the normalisation) into `d_rows` / `d_cols`. Returns the loss and the rule's
/// per-row sums.
pub(crate) fn pass2(
    p: &Pass2<'_>,
    rule: &impl Rule,
    d_rows: &mut [f32],
    d_cols: &mut [f32],
) -> Result<(f64, Vec<f64>), KernelError> {
    let dim = p.logits.k;
    let (n_rows, n_cols) = (p.logits.n_rows(), p.logits.n_cols);
    let (gw, groups) = column_groups(n_rows, n_cols, dim);
    let part_len = n_rows * dim;
    let mut partials = vec![0f32; groups * part_len];
    let mut row_sums = vec![0f64; groups * n_rows];
    let losses: Vec<f64> = partials
        .par_chunks_mut(part_len)
        .zip(row_sums.par_chunks_mut(n_rows))
        .zip(d_cols.par_chunks_mut(gw * dim))
        .enumerate()
        .map(|(g, ((gu, sums), d_cols))| {
            let c_group = g * gw..(g * gw + gw).min(n_cols);
            with_scratch(|sc| group_task(p, rule, c_group, gu, sums, d_cols, sc))
        })
        .collect::<Result<_, _>>()?;

    // Row side: add the group partials in group order (independent of the thread count).
    let (first, rest) = partials.split_at_mut(part_len);
    for part in rest.chunks_exact(part_len) {
        first.iter_mut().zip(part).for_each(|(a, b)| *a += b);
    }
    rule.add_row_terms(first);
    project_add(first, p.rows, dim, d_rows);
    let (sums, rest) = row_sums.split_at_mut(n_rows);
    for part in rest.chunks_exact(n_rows) {
        sums.iter_mut().zip(part).for_each(|(a, b)| *a += b);
    }
    row_sums.truncate(n_rows);
    Ok((losses.iter().sum(), row_sums))
}

/// One column group of pass 2: all rows × the group's columns.
fn group_task(
    p: &Pass2<'_>,
    rule: &impl Rule,
    c_group: Range<usize>,
    gu: &mut [f32],
    row_sums: &mut [f64],
    d_cols: &mut [f32],
    sc: &mut Scratch,
) -> Result<f64, KernelError> {
    let dim = p.logits.k;
    let n_rows = p.logits.n_rows();
    let Scratch { z, t, g } = sc;
    let gv = sized(g, c_group.len() * dim);
    gv.fill(0.0);
    let mut loss = 0f64;
    for r0 in (0..n_rows).step_by(TILE_ROWS) {
        let r = r0..(r0 + TILE_ROWS).min(n_rows);
        for c0 in c_group.clone().step_by(TILE_COLS) {
            let c = c0..(c0 + TILE_COLS).min(c_group.end);
            let len = r.len() * c.len();
            let zt = sized(z, len);
            p.logits.tile(r.clone(), c.clone(), zt)?;
            let tt = match p.target {
                Some(tp) => {
                    let tt = sized(t, len);
                    tp.tile(r.clone(), c.clone(), tt)?;
                    Some(&*tt)
                }
                None => None,
            };
            loss += rule.tile(r.clone(), zt, tt, c.len(), &mut row_sums[r.clone()]);

            let dz = ArrayView2::from_shape((r.len(), c.len()), &*zt).map_err(internal)?;
            // Row side: gu[r] += dz · v̂[c] / tau.
            let v = ArrayView2::from_shape((c.len(), dim), &p.cols.hat[c.start * dim..c.end * dim])
                .map_err(internal)?;
            let mut gu_r =
                ArrayViewMut2::from_shape((r.len(), dim), &mut gu[r.start * dim..r.end * dim])
                    .map_err(internal)?;
            general_mat_mul(p.grad_scale, &dz, &v, 1.0, &mut gu_r);
            // Column side: gv[c] += dzᵀ · û[r] / tau.
            let u = ArrayView2::from_shape((r.len(), dim), &p.rows.hat[r.start * dim..r.end * dim])
                .map_err(internal)?;
            let off = c.start - c_group.start;
            let mut gv_c = ArrayViewMut2::from_shape(
                (c.len(), dim),
                &mut gv[off * dim..(off + c.len()) * dim],
            )
            .map_err(internal)?;
            general_mat_mul(p.grad_scale, &dz.t(), &u, 1.0, &mut gv_c);
        }
    }
    rule.add_col_terms(c_group.clone(), gv);
    let cols = Side {
        hat: &p.cols.hat[c_group.start * dim..c_group.end * dim],
        norm: &p.cols.norm[c_group.clone()],
    };
    project_add(gv, cols, dim, d_cols);
    Ok(loss)
}

/// `out_r += (g_r − (g_r·x̂_r) x̂_r) / ‖x_r‖`: the gradient w.r.t. a raw row `x` given the
/// gradient `g` w.r.t. its normalisation `x̂ = x / ‖x‖`. Zero rows get nothing.
pub(crate) fn project_add(g: &[f32], x: Side<'_>, dim: usize, out: &mut [f32]) {
    for (((g, xh), &norm), o) in g
        .chunks_exact(dim)
        .zip(x.hat.chunks_exact(dim))
        .zip(x.norm)
        .zip(out.chunks_exact_mut(dim))
    {
        if norm > 0.0 && norm.is_finite() {
            let dot: f64 = g
                .iter()
                .zip(xh)
                .map(|(&a, &b)| f64::from(a) * f64::from(b))
                .sum();
            let inv = 1.0 / f64::from(norm);
            for ((o, &gi), &xi) in o.iter_mut().zip(g).zip(xh) {
                *o += ((f64::from(gi) - dot * f64::from(xi)) * inv) as f32;
            }
        }
    }
}

/// Pass 2 of [`soft_ce_all_items`]: `dz = w (p − q)`, loss `w Σ q (LSE − z)`, row sums
/// `S = Σ q`.
struct SoftCeRule<'a> {
    lse: &'a [f32],
    target_lse: &'a [f32],
    w: &'a [f32],
}

impl Rule for SoftCeRule<'_> {
    fn tile(
        &self,
        rows: Range<usize>,
        z: &mut [f32],
        t: Option<&[f32]>,
        width: usize,
        row_sums: &mut [f64],
    ) -> f64 {
        match t {
            Some(t) => dispatch(SoftCeTile {
                z,
                t,
                width,
                lse: &self.lse[rows.clone()],
                target_lse: &self.target_lse[rows.clone()],
                w: &self.w[rows],
                q_sums: row_sums,
            }),
            // soft_ce_all_items always passes the target product with this rule.
            None => f64::NAN,
        }
    }
}

struct SoftCeTile<'a> {
    z: &'a mut [f32],
    t: &'a [f32],
    width: usize,
    lse: &'a [f32],
    target_lse: &'a [f32],
    w: &'a [f32],
    q_sums: &'a mut [f64],
}

impl SimdKernel for SoftCeTile<'_> {
    type Output = f64;
    #[inline(always)]
    fn run(self) -> f64 {
        let width = self.width;
        let mut loss = 0f64;
        for (r, (zr, tr)) in self
            .z
            .chunks_exact_mut(width)
            .zip(self.t.chunks_exact(width))
            .enumerate()
        {
            let (lse, tl, w) = (self.lse[r], self.target_lse[r], self.w[r]);
            let (mut ce, mut qs) = ([0f32; LANES], [0f32; LANES]);
            let mut zc = zr.chunks_exact_mut(LANES);
            let mut tc = tr.chunks_exact(LANES);
            for (zs, ts) in (&mut zc).zip(&mut tc) {
                for l in 0..LANES {
                    let (z, t) = (zs[l], ts[l]);
                    let p = exp(z - lse);
                    let q = exp(t - tl);
                    ce[l] += q * (lse - z);
                    qs[l] += q;
                    zs[l] = w * (p - q);
                }
            }
            for (l, (z, &t)) in zc
                .into_remainder()
                .iter_mut()
                .zip(tc.remainder())
                .enumerate()
            {
                let p = exp(*z - lse);
                let q = exp(t - tl);
                ce[l] += q * (lse - *z);
                qs[l] += q;
                *z = w * (p - q);
            }
            loss += f64::from(w) * f64::from(lane_sum(ce));
            self.q_sums[r] += f64::from(lane_sum(qs));
        }
        loss
    }
}

/// `dz_rc = c_r · p_rc` (`p` the softmax of row r): InfoNCE's pass 2, and the `w (S − 1) p`
/// correction of [`soft_ce_all_items`].
pub(crate) struct ScaledSoftmaxRule<'a> {
    pub lse: &'a [f32],
    pub coef: &'a [f32],
}

impl Rule for ScaledSoftmaxRule<'_> {
    fn tile(
        &self,
        rows: Range<usize>,
        z: &mut [f32],
        _t: Option<&[f32]>,
        width: usize,
        _row_sums: &mut [f64],
    ) -> f64 {
        dispatch(ScaledSoftmaxTile {
            z,
            width,
            lse: &self.lse[rows.clone()],
            coef: &self.coef[rows],
        });
        0.0
    }
}

struct ScaledSoftmaxTile<'a> {
    z: &'a mut [f32],
    width: usize,
    lse: &'a [f32],
    coef: &'a [f32],
}

impl SimdKernel for ScaledSoftmaxTile<'_> {
    type Output = ();
    #[inline(always)]
    fn run(self) {
        for ((zr, &lse), &c) in self
            .z
            .chunks_exact_mut(self.width)
            .zip(self.lse)
            .zip(self.coef)
        {
            for z in zr.iter_mut() {
                *z = c * exp(*z - lse);
            }
        }
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
    // `is_multiple_of` needs Rust 1.87; the workspace declares 1.85.
    #[allow(clippy::manual_is_multiple_of)]
    if len % dim != 0 {
        return Err(KernelError::Shape(format!(
            "{kernel}: `{arg}` has length {len}, expected a multiple of dim = {dim}"
        )));
    }
    Ok(len / dim)
}

/// Row-normalised copy of `x` (rows of `dim`) and the row norms; zero rows stay zero.
pub(crate) fn normalise(x: &[f32], dim: usize) -> (Vec<f32>, Vec<f32>) {
    let mut hat = vec![0f32; x.len()];
    let mut norms = Vec::with_capacity(x.len() / dim);
    for (row, out) in x.chunks_exact(dim).zip(hat.chunks_exact_mut(dim)) {
        let norm = row
            .iter()
            .map(|&v| f64::from(v) * f64::from(v))
            .sum::<f64>()
            .sqrt();
        if norm > 0.0 {
            for (o, &v) in out.iter_mut().zip(row) {
                *o = (f64::from(v) / norm) as f32;
            }
        }
        norms.push(norm as f32);
    }
    (hat, norms)
}

/// `x` (rows × cols) transposed to cols × rows.
pub(crate) fn transpose(x: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0f32; x.len()];
    for (r, row) in x.chunks_exact(cols).enumerate() {
        for (c, &v) in row.iter().enumerate() {
            t[c * rows + r] = v;
        }
    }
    t
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use promax_plugin_api::testing::{finite_difference_check, sample_indices, SplitMix};

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

    /// Row-normalised f64 copy (zero rows stay zero) and norms.
    pub(crate) fn hat64(x: &[f32], dim: usize) -> (Vec<f64>, Vec<f64>) {
        let mut h = Vec::with_capacity(x.len());
        let mut norms = Vec::new();
        for r in x.chunks_exact(dim) {
            let n = r.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>().sqrt();
            h.extend(
                r.iter()
                    .map(|&v| if n > 0.0 { f64::from(v) / n } else { 0.0 }),
            );
            norms.push(n);
        }
        (h, norms)
    }

    pub(crate) fn dot64(a: &[f64], b: &[f64]) -> f64 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    /// Gradient w.r.t. raw rows given the gradient w.r.t. their normalisation.
    pub(crate) fn back64(g: &[f64], h: &[f64], norms: &[f64], dim: usize) -> Vec<f64> {
        let mut out = vec![0f64; g.len()];
        for (r, &n) in norms.iter().enumerate() {
            if n > 0.0 {
                let (gr, hr) = (&g[r * dim..(r + 1) * dim], &h[r * dim..(r + 1) * dim]);
                let d = dot64(gr, hr);
                for c in 0..dim {
                    out[r * dim + c] = (gr[c] - d * hr[c]) / n;
                }
            }
        }
        out
    }

    pub(crate) fn lse64(z: &[f64]) -> f64 {
        let m = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        m + z.iter().map(|v| (v - m).exp()).sum::<f64>().ln()
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
                    (lse64(&t) + f64::from(lse_offset) * (r as f64 - 2.0) / 3.0) as f32
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
            let (uh, un) = hat64(users, dim);
            let (vh, vn) = hat64(items, dim);
            let (tau, ttau) = (f64::from(self.tau), f64::from(self.ttau));
            let mut loss = 0.0;
            let mut gu = vec![0f64; b * dim];
            let mut gv = vec![0f64; n * dim];
            for r in 0..b {
                let ur = &uh[r * dim..(r + 1) * dim];
                let z: Vec<f64> = (0..n)
                    .map(|i| dot64(ur, &vh[i * dim..(i + 1) * dim]) / tau)
                    .collect();
                let l = lse64(&z);
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
            (loss, back64(&gu, &uh, &un, dim), back64(&gv, &vh, &vn, dim))
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
                let l = lse64(&z);
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
}
