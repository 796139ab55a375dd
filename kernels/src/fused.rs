//! The single-pass engine behind every softmax-over-all-columns kernel
//! ([`crate::softmax::softmax_stats`], [`crate::softmax::soft_ce_all_items`],
//! [`crate::infonce::info_nce`], [`crate::infonce::info_nce_pairs`]).
//!
//! # One pass per row block
//! Rows are cut into blocks of `R` rows whose whole logit rows (`R × m`, plus the target
//! rows when there is a target) fit in about [`TILE_BYTES`] of cache. For each block:
//! 1. `Z = alpha · Â_block · B̂ᵀ` (and `T` for a target), [`Products::logits`];
//! 2. the rule ([`RowRule`]) sees complete rows: it takes each row's max and log-normaliser
//!    and turns `Z` into `dL/dz` in place, in one sweep of exponentials;
//! 3. `G_block = dZ · B̂` ([`Products::grad_rows`]; the block owns its rows' gradient) and
//!    `H += dZᵀ · Â_block` ([`Products::grad_cols`]; into its group's partial).
//!
//! A two-pass design (statistics first, then recompute the logits for the gradient) costs
//! a third more products and twice the exponentials; with complete rows in cache the
//! normaliser is known before `dz` is formed, so nothing is recomputed.
//!
//! # Determinism and memory
//! Blocks are dealt, in order, into at most [`MAX_GROUPS`] groups that depend only on the
//! shapes; a group runs its blocks in order on one thread and owns an `m × width` partial
//! of the column gradient, and the partials are added in group order. So the result does
//! not depend on the number of threads. Memory per call: the padded, normalised copies of
//! both tables (`O((n + m)·width)`), the packed column panels (`m × width`), the group
//! partials (`groups × m × width`, capped by [`PARTIAL_BUDGET_BYTES`], at least 2 groups),
//! and per thread one block of logits (and targets), ~[`TILE_BYTES`]. Never `n × m`.

use std::cell::RefCell;
use std::ops::Range;
use std::sync::Mutex;

use rayon::prelude::*;

use crate::products::{Panels, Products, RowMajor, COL_ALIGN, ROW_ALIGN, WIDTH_CHUNK};
use crate::{KernelError, KernelPath};

/// Target size of one block's logit rows (plus target rows): about half this machine's
/// 2 MiB L2, so the products that write a block and the sweeps that read it hit cache.
const TILE_BYTES: usize = 1 << 20;
/// Largest block, in rows.
const MAX_BLOCK_ROWS: usize = 256;
/// Most groups of blocks (parallel tasks) when column gradients are accumulated.
const MAX_GROUPS: usize = 8;
/// Cap on the column-gradient partials (`groups × m_pad × width × 4` bytes); at least two
/// groups run regardless, so that two cores have work.
const PARTIAL_BUDGET_BYTES: usize = 32 << 20;

/// A table copied for the engine: rows padded to a multiple of [`ROW_ALIGN`], row stride a
/// multiple of [`WIDTH_CHUNK`], padding zero. Normalised tables keep their row norms (for
/// the gradient through the normalisation).
pub(crate) struct Table {
    pub data: Vec<f32>,
    pub rows: usize,
    pub dim: usize,
    pub stride: usize,
    norms: Option<Vec<f32>>,
}

impl Table {
    /// Rows of `x` (rows of `dim`) as given.
    pub(crate) fn plain(x: &[f32], dim: usize, row_align: usize) -> Table {
        Self::build(x, dim, row_align, false)
    }

    /// L2-normalised rows of `x`; zero rows stay zero (and get a zero gradient).
    pub(crate) fn normalised(x: &[f32], dim: usize, row_align: usize) -> Table {
        Self::build(x, dim, row_align, true)
    }

    fn build(x: &[f32], dim: usize, row_align: usize, normalise: bool) -> Table {
        let rows = x.len() / dim;
        let stride = dim.next_multiple_of(WIDTH_CHUNK);
        let mut data = vec![0f32; rows.next_multiple_of(row_align) * stride];
        let mut norms = Vec::with_capacity(if normalise { rows } else { 0 });
        for (row, out) in x.chunks_exact(dim).zip(data.chunks_exact_mut(stride)) {
            if !normalise {
                out[..dim].copy_from_slice(row);
                continue;
            }
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
        Table {
            data,
            rows,
            dim,
            stride,
            norms: normalise.then_some(norms),
        }
    }

    /// Row `r` (its first `dim` entries).
    pub(crate) fn row(&self, r: usize) -> &[f32] {
        &self.data[r * self.stride..r * self.stride + self.dim]
    }

    fn view(&self, rows: Range<usize>) -> RowMajor<'_> {
        RowMajor {
            data: &self.data[rows.start * self.stride..rows.end * self.stride],
            rows: rows.len(),
            stride: self.stride,
        }
    }

    /// `out_r += scale · (g_r − (g_r·x̂_r) x̂_r) / ‖x_r‖` for every row: the gradient w.r.t.
    /// a raw row given `g` (row stride `self.stride`) w.r.t. its normalisation. Plain
    /// tables get `scale · g_r`.
    fn project_add(&self, g: &[f32], scale: f32, out: &mut [f32]) {
        let (dim, stride) = (self.dim, self.stride);
        for (r, o) in out.chunks_exact_mut(dim).enumerate().take(self.rows) {
            let gr = &g[r * stride..r * stride + dim];
            let Some(norms) = &self.norms else {
                o.iter_mut().zip(gr).for_each(|(o, &v)| *o += scale * v);
                continue;
            };
            let norm = norms[r];
            if !(norm > 0.0 && norm.is_finite()) {
                continue;
            }
            let xh = self.row(r);
            let dot: f64 = gr
                .iter()
                .zip(xh)
                .map(|(&a, &b)| f64::from(a) * f64::from(b))
                .sum();
            let inv = f64::from(scale) / f64::from(norm);
            for ((o, &gi), &xi) in o.iter_mut().zip(gr).zip(xh) {
                *o += ((f64::from(gi) - dot * f64::from(xi)) * inv) as f32;
            }
        }
    }
}

/// `alpha · rows · colsᵀ`.
#[derive(Clone, Copy)]
pub(crate) struct Operands<'a> {
    pub rows: &'a Table,
    pub cols: &'a Table,
    pub alpha: f32,
}

/// What the engine computes: the logits and, optionally, target logits of the same shape.
pub(crate) struct Problem<'a> {
    pub logits: Operands<'a>,
    pub target: Option<Operands<'a>>,
}

/// What a kernel does with complete rows of logits.
pub(crate) trait RowRule: Sync {
    /// Per-row output collected by [`run`].
    type Out: Clone + Default + Send;

    /// Rows `rows` (global indices, all real) of the logits: `z` holds `rows.len()` rows of
    /// stride `stride`, of which the first `m` columns are real (and so for `t`, the target
    /// logits, when the problem has a target). When [`run`] is asked for gradients the rule
    /// must overwrite `z[.., ..m]` with `dL/dz`. Returns the rows' loss. `path` is the
    /// kernel path of the engine's products, for the rule's own SIMD loops.
    #[allow(clippy::too_many_arguments)]
    fn rows(
        &self,
        path: KernelPath,
        rows: Range<usize>,
        z: &mut [f32],
        t: Option<&mut [f32]>,
        stride: usize,
        m: usize,
        out: &mut [Self::Out],
    ) -> f64;
}

/// Per-thread block buffers, kept across calls so that a training loop does not fault in
/// fresh pages every batch.
#[derive(Default)]
struct Scratch {
    z: Vec<f32>,
    t: Vec<f32>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// Column-gradient partials, kept across calls for the same reason.
static PARTIALS: Mutex<Vec<f32>> = Mutex::new(Vec::new());

fn with_scratch<T>(f: impl FnOnce(&mut Scratch) -> T) -> T {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut s) => f(&mut s),
        // Only a nested call on the same thread finds it borrowed: it gets its own.
        Err(_) => f(&mut Scratch::default()),
    })
}

/// `buf[..len]`, growing `buf` if needed (contents unspecified).
fn sized(buf: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
    &mut buf[..len]
}

/// Rows per block for `m_pad` columns (twice the bytes with a target).
fn block_rows(m_pad: usize, has_target: bool) -> usize {
    let per_row = m_pad * 4 * (1 + usize::from(has_target));
    (TILE_BYTES / per_row.max(1) / ROW_ALIGN * ROW_ALIGN).clamp(ROW_ALIGN, MAX_BLOCK_ROWS)
}

/// Runs `rule` over every row of `p`. With `grads = Some((d_rows, d_cols))` it also
/// ACCUMULATES (`+=`) the gradient of the rule's `dL/dz` w.r.t. the raw rows of the
/// logits' row table (`n × dim`) and column table (`m × dim`), through their normalisation.
/// Returns the summed loss and the rule's per-row outputs.
pub(crate) fn run<R: RowRule>(
    p: &Problem<'_>,
    rule: &R,
    grads: Option<(&mut [f32], &mut [f32])>,
    products: Products,
) -> Result<(f64, Vec<R::Out>), KernelError> {
    let (lr, lc) = (p.logits.rows, p.logits.cols);
    let (n, m) = (lr.rows, lc.rows);
    let mut outs = vec![R::Out::default(); n];
    if n == 0 {
        return Ok((0.0, outs));
    }
    let m_pad = m.max(1).next_multiple_of(COL_ALIGN);
    let panels = |o: &Operands<'_>| {
        products
            .wants_panels()
            .then(|| Panels::pack(&o.cols.data, o.cols.stride, o.cols.dim, o.cols.rows, m_pad))
    };
    let (lp, tp) = (panels(&p.logits), p.target.as_ref().and_then(panels));
    let block = block_rows(m_pad, p.target.is_some());
    let n_pad = n.next_multiple_of(ROW_ALIGN);
    let n_blocks = n_pad.div_ceil(block);
    let want_grads = grads.is_some();
    let dp = lc.stride;
    let part_len = m_pad * dp;
    let groups = if want_grads {
        let by_budget = PARTIAL_BUDGET_BYTES / (part_len * 4).max(1);
        n_blocks.min(MAX_GROUPS).min(by_budget.max(2))
    } else {
        n_blocks
    };
    // Group g runs blocks [first(g), first(g + 1)).
    let first = |g: usize| g * n_blocks / groups;
    let row_start = |g: usize| (first(g) * block).min(n_pad);

    let mut partials = if want_grads {
        let mut v = std::mem::take(&mut *PARTIALS.lock().unwrap_or_else(|e| e.into_inner()));
        v.clear();
        v.resize(groups * part_len, 0.0);
        v
    } else {
        Vec::new()
    };
    let mut g_rows = vec![0f32; if want_grads { n_pad * dp } else { 0 }];

    // Split the per-row outputs and row gradients at group boundaries.
    let mut tasks = Vec::with_capacity(groups);
    {
        let (mut outs_rest, mut g_rest, mut part_rest) =
            (&mut outs[..], &mut g_rows[..], &mut partials[..]);
        for g in 0..groups {
            let rows = row_start(g)..row_start(g + 1);
            let real = rows.start.min(n)..rows.end.min(n);
            let (o, rest) = std::mem::take(&mut outs_rest).split_at_mut(real.len());
            outs_rest = rest;
            let gl = if want_grads { rows.len() * dp } else { 0 };
            let (gr, rest) = std::mem::take(&mut g_rest).split_at_mut(gl);
            g_rest = rest;
            let pl = if want_grads { part_len } else { 0 };
            let (part, rest) = std::mem::take(&mut part_rest).split_at_mut(pl);
            part_rest = rest;
            tasks.push((rows, o, gr, part));
        }
    }

    let ctx = Ctx {
        p,
        products,
        lp: lp.as_ref(),
        tp: tp.as_ref(),
        n,
        m,
        m_pad,
        block,
        want_grads,
    };
    let losses: Vec<f64> = tasks
        .into_par_iter()
        .map(|(rows, outs, g, part)| with_scratch(|sc| ctx.group(rule, rows, outs, g, part, sc)))
        .collect::<Result<_, _>>()?;

    if let Some((d_rows, d_cols)) = grads {
        let (first_part, rest) = partials.split_at_mut(part_len);
        for part in rest.chunks_exact(part_len) {
            first_part.iter_mut().zip(part).for_each(|(a, b)| *a += b);
        }
        let alpha = p.logits.alpha;
        lr.project_add(&g_rows, alpha, d_rows);
        lc.project_add(first_part, alpha, d_cols);
        *PARTIALS.lock().unwrap_or_else(|e| e.into_inner()) = partials;
    }
    Ok((losses.iter().sum(), outs))
}

struct Ctx<'a> {
    p: &'a Problem<'a>,
    products: Products,
    lp: Option<&'a Panels>,
    tp: Option<&'a Panels>,
    n: usize,
    m: usize,
    m_pad: usize,
    block: usize,
    want_grads: bool,
}

impl Ctx<'_> {
    /// One group: its blocks in order.
    fn group<R: RowRule>(
        &self,
        rule: &R,
        rows: Range<usize>,
        outs: &mut [R::Out],
        g_rows: &mut [f32],
        part: &mut [f32],
        sc: &mut Scratch,
    ) -> Result<f64, KernelError> {
        let (m, m_pad) = (self.m, self.m_pad);
        let lo = self.p.logits;
        let dp = lo.cols.stride;
        let mut loss = 0.0;
        for r0 in rows.clone().step_by(self.block) {
            let blk = r0..(r0 + self.block).min(rows.end);
            let real = blk.start..blk.end.min(self.n);
            let len = blk.len() * m_pad;
            let z = sized(&mut sc.z, len);
            self.product(&lo, self.lp, blk.clone(), z)?;
            let t = match &self.p.target {
                Some(to) => {
                    let t = sized(&mut sc.t, len);
                    self.product(to, self.tp, blk.clone(), t)?;
                    Some(t)
                }
                None => None,
            };
            let out = &mut outs[real.start - rows.start.min(self.n)..][..real.len()];
            loss += rule.rows(
                self.products.path(),
                real.clone(),
                &mut z[..real.len() * m_pad],
                t.map(|t| &mut t[..real.len() * m_pad]),
                m_pad,
                m,
                out,
            );
            if !self.want_grads {
                continue;
            }
            // dz of padding columns and padding rows is zero.
            for row in z[..real.len() * m_pad].chunks_exact_mut(m_pad) {
                row[m..].fill(0.0);
            }
            z[real.len() * m_pad..].fill(0.0);
            let g = &mut g_rows[(blk.start - rows.start) * dp..(blk.end - rows.start) * dp];
            let dz = RowMajor {
                data: z,
                rows: blk.len(),
                stride: m_pad,
            };
            self.products
                .grad_rows(dz, m, lo.cols.view(0..lo.cols.rows), g)?;
            self.products
                .grad_cols(z, m_pad, lo.rows.view(blk.clone()), part)?;
        }
        Ok(loss)
    }

    fn product(
        &self,
        o: &Operands<'_>,
        panels: Option<&Panels>,
        blk: Range<usize>,
        out: &mut [f32],
    ) -> Result<(), KernelError> {
        let cols = o.cols.view(0..o.cols.rows);
        self.products.logits(
            o.rows.view(blk),
            o.rows.dim,
            cols,
            panels,
            self.m_pad,
            o.alpha,
            out,
        )
    }
}
