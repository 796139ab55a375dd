//! The three thin matrix products of the fused softmax engine ([`crate::fused`]), on row
//! blocks whose inner dimension is the embedding width (32 in every published config):
//!
//! - [`Products::logits`]: `Z = alpha · A · Bᵀ` (block rows × all columns, k = width);
//! - [`Products::grad_rows`]: `G = dZ · B` (block rows × width, k = all columns);
//! - [`Products::grad_cols`]: `H += dZᵀ · A` (all columns × width, k = block rows).
//!
//! # Why hand-written AVX-512
//! matrixmultiply packs both operands on every call. With k = 32 a packed element is used
//! only ~64 times, so packing took 13% of a ProMax epoch, and its products ran at 64–87
//! GFLOP/s on one Zen 4 core. Here the column table is packed once per kernel call
//! ([`Panels`]: 32-column panels, k-major) and the two gradient products read the row-major
//! tables directly, broadcasting `dZ` entries: measured on one core at 3,000 × 9,332 × 32,
//! 105 (logits), 115 (row gradient) and 100 GFLOP/s (column gradient), against 87 and 64
//! for matrixmultiply on the same shapes.
//!
//! Without AVX-512 the same products run through matrixmultiply on the same layouts
//! ([`Products::Portable`]); tests run both against a naive f64 product.
//!
//! # Layouts (the engine pads its copies to them)
//! - Row-major tables have a row stride `dp`, a multiple of [`WIDTH_CHUNK`] (32), columns
//!   beyond the true width zero.
//! - `Z`/`dZ` blocks are `rows × m_pad`, `m_pad` a multiple of [`COL_ALIGN`]; block row
//!   counts are multiples of [`ROW_ALIGN`].

use ndarray::{linalg::general_mat_mul, ArrayView2, ArrayViewMut2, ShapeBuilder};

use crate::simd::KernelPath;
use crate::KernelError;

/// Row counts of blocks are multiples of this (the register tile's rows).
pub(crate) const ROW_ALIGN: usize = 8;
/// Column counts (`m_pad`) are multiples of this (one panel).
pub(crate) const COL_ALIGN: usize = 32;
/// Row strides of the width-`dp` tables are multiples of this (two AVX-512 registers).
pub(crate) const WIDTH_CHUNK: usize = 32;

/// The column table packed for [`Products::logits`]: `m_pad / 32` panels, each `k × 32`
/// (panel p, step j holds columns `32p..32p+32` of feature j). Columns beyond the table are
/// zero.
pub(crate) struct Panels {
    data: Vec<f32>,
    k: usize,
}

impl Panels {
    /// Packs the first `k` features of `rows` rows of `x` (row stride `stride`), padded to
    /// `m_pad` columns.
    pub(crate) fn pack(x: &[f32], stride: usize, k: usize, rows: usize, m_pad: usize) -> Self {
        let mut data = vec![0f32; m_pad * k];
        for (p, panel) in data.chunks_exact_mut(COL_ALIGN * k).enumerate() {
            for l in 0..COL_ALIGN {
                let c = p * COL_ALIGN + l;
                if c >= rows {
                    break;
                }
                let row = &x[c * stride..c * stride + k];
                for (j, &v) in row.iter().enumerate() {
                    panel[j * COL_ALIGN + l] = v;
                }
            }
        }
        Panels { data, k }
    }
}

/// Which implementation runs the products.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Products {
    /// Register-tiled AVX-512F kernels (the CPU has been checked to support them).
    Avx512,
    /// The same tiles at half the width on AVX2 + FMA (checked likewise): every output
    /// element is accumulated in the same order with the same fused multiply-adds, so the
    /// results are bit-identical to the AVX-512 ones.
    Avx2,
    /// matrixmultiply through ndarray, any CPU.
    Portable,
}

/// A row-major operand: `rows` rows of stride `stride`, of which the first `k` columns are
/// used.
#[derive(Clone, Copy)]
pub(crate) struct RowMajor<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub stride: usize,
}

impl Products {
    /// The implementation of the active kernel path ([`crate::simd::active`]: the fastest
    /// this CPU supports, unless one was forced).
    pub(crate) fn detect() -> Self {
        match crate::simd::active() {
            KernelPath::Avx512 => Products::Avx512,
            KernelPath::Avx2 => Products::Avx2,
            KernelPath::Portable => Products::Portable,
        }
    }

    /// The kernel path this implementation belongs to.
    pub(crate) fn path(self) -> KernelPath {
        match self {
            Products::Avx512 => KernelPath::Avx512,
            Products::Avx2 => KernelPath::Avx2,
            Products::Portable => KernelPath::Portable,
        }
    }

    /// Every implementation this CPU can run, the portable one first (for tests).
    #[cfg(test)]
    pub(crate) fn supported() -> Vec<Self> {
        let mut v = vec![Products::Portable];
        if KernelPath::Avx2.supported() {
            v.push(Products::Avx2);
        }
        if KernelPath::Avx512.supported() {
            v.push(Products::Avx512);
        }
        v
    }

    /// Whether [`Products::logits`] needs the column table as [`Panels`].
    pub(crate) fn wants_panels(self) -> bool {
        self != Products::Portable
    }

    /// `z[r][c] = alpha · Σ_{j<k} a[r][j] · b[c][j]` for `a.rows` rows (a multiple of
    /// [`ROW_ALIGN`]) and `m_pad` columns; `z` is `a.rows × m_pad`. `b` is the row-major
    /// column table (its rows beyond `b.rows` count as zero) and `panels` its packed form
    /// when [`Products::wants_panels`].
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn logits(
        self,
        a: RowMajor<'_>,
        k: usize,
        b: RowMajor<'_>,
        panels: Option<&Panels>,
        m_pad: usize,
        alpha: f32,
        z: &mut [f32],
    ) -> Result<(), KernelError> {
        check(
            a.rows.is_multiple_of(ROW_ALIGN) && m_pad.is_multiple_of(COL_ALIGN),
            "logits shape",
        )?;
        check(z.len() == a.rows * m_pad, "logits output")?;
        check(
            a.data.len() >= a.rows * a.stride && k <= a.stride,
            "logits rows",
        )?;
        match (self, panels) {
            #[cfg(target_arch = "x86_64")]
            (Products::Avx512, Some(p)) => {
                check(p.k == k && p.data.len() == m_pad * k, "logits panels")?;
                // SAFETY: AVX-512F was detected when `self` was made; the checks above
                // bound every access (rows × stride of a, panels of m_pad × k, z).
                unsafe { avx512::logits(a.data, a.stride, k, a.rows, &p.data, m_pad, alpha, z) };
                Ok(())
            }
            #[cfg(target_arch = "x86_64")]
            (Products::Avx2, Some(p)) => {
                check(p.k == k && p.data.len() == m_pad * k, "logits panels")?;
                // SAFETY: AVX2 and FMA were detected when `self` was made; the checks above
                // bound every access, as for AVX-512.
                unsafe { avx2::logits(a.data, a.stride, k, a.rows, &p.data, m_pad, alpha, z) };
                Ok(())
            }
            _ => {
                let rows = b.rows.min(m_pad);
                let av = view(a.data, (a.rows, k), (a.stride, 1))?;
                let bt = view(b.data, (k, rows), (1, b.stride))?;
                z.fill(0.0);
                let mut zv = view_mut(z, (a.rows, rows), (m_pad, 1))?;
                general_mat_mul(alpha, &av, &bt, 0.0, &mut zv);
                Ok(())
            }
        }
    }

    /// `g[r][..dp] = Σ_{c<m} dz[r][c] · b[c][..dp]`, overwriting `g` (`dz.rows × dp`,
    /// stride dp); `dz` has row stride `m_pad`, `b` row stride `dp` (a multiple of
    /// [`WIDTH_CHUNK`]) and at least `m` rows.
    pub(crate) fn grad_rows(
        self,
        dz: RowMajor<'_>,
        m: usize,
        b: RowMajor<'_>,
        g: &mut [f32],
    ) -> Result<(), KernelError> {
        let dp = b.stride;
        check(
            dz.rows.is_multiple_of(ROW_ALIGN) && dp.is_multiple_of(WIDTH_CHUNK),
            "grad_rows shape",
        )?;
        check(m <= dz.stride && b.rows >= m, "grad_rows columns")?;
        check(dz.data.len() >= dz.rows * dz.stride, "grad_rows dz")?;
        check(
            b.data.len() >= m * dp && g.len() == dz.rows * dp,
            "grad_rows b/g",
        )?;
        match self {
            #[cfg(target_arch = "x86_64")]
            Products::Avx512 => {
                // SAFETY: AVX-512F detected; accesses bounded by the checks above.
                unsafe { avx512::grad_rows(dz.data, dz.stride, dz.rows, m, b.data, dp, g) };
                Ok(())
            }
            #[cfg(target_arch = "x86_64")]
            Products::Avx2 => {
                // SAFETY: AVX2 + FMA detected; accesses bounded by the checks above.
                unsafe { avx2::grad_rows(dz.data, dz.stride, dz.rows, m, b.data, dp, g) };
                Ok(())
            }
            _ => {
                let zv = view(dz.data, (dz.rows, m), (dz.stride, 1))?;
                let bv = view(b.data, (m, dp), (dp, 1))?;
                let mut gv = view_mut(g, (dz.rows, dp), (dp, 1))?;
                general_mat_mul(1.0, &zv, &bv, 0.0, &mut gv);
                Ok(())
            }
        }
    }

    /// `h[c][..dp] += Σ_r dz[r][c] · a[r][..dp]` for `c < m_pad` (`h`: m_pad × dp);
    /// `dz` is `a.rows × m_pad`, `a` has row stride `dp` (a multiple of [`WIDTH_CHUNK`]).
    pub(crate) fn grad_cols(
        self,
        dz: &[f32],
        m_pad: usize,
        a: RowMajor<'_>,
        h: &mut [f32],
    ) -> Result<(), KernelError> {
        let (rows, dp) = (a.rows, a.stride);
        check(
            m_pad.is_multiple_of(COL_ALIGN) && dp.is_multiple_of(WIDTH_CHUNK),
            "grad_cols shape",
        )?;
        check(
            dz.len() == rows * m_pad && a.data.len() >= rows * dp,
            "grad_cols dz/a",
        )?;
        check(h.len() == m_pad * dp, "grad_cols output")?;
        match self {
            #[cfg(target_arch = "x86_64")]
            Products::Avx512 => {
                // SAFETY: AVX-512F detected; accesses bounded by the checks above.
                unsafe { avx512::grad_cols(dz, m_pad, rows, a.data, dp, h) };
                Ok(())
            }
            #[cfg(target_arch = "x86_64")]
            Products::Avx2 => {
                // SAFETY: AVX2 + FMA detected; accesses bounded by the checks above.
                unsafe { avx2::grad_cols(dz, m_pad, rows, a.data, dp, h) };
                Ok(())
            }
            _ => {
                let zt = view(dz, (m_pad, rows), (1, m_pad))?;
                let av = view(a.data, (rows, dp), (dp, 1))?;
                let mut hv = view_mut(h, (m_pad, dp), (dp, 1))?;
                general_mat_mul(1.0, &zt, &av, 1.0, &mut hv);
                Ok(())
            }
        }
    }
}

fn check(ok: bool, what: &str) -> Result<(), KernelError> {
    if ok {
        Ok(())
    } else {
        Err(KernelError::Shape(format!(
            "fused softmax products: internal layout error ({what})"
        )))
    }
}

fn view(
    x: &[f32],
    shape: (usize, usize),
    strides: (usize, usize),
) -> Result<ArrayView2<'_, f32>, KernelError> {
    let sh = (shape.0, shape.1).strides((strides.0, strides.1));
    let len = needed(shape, strides).min(x.len());
    ArrayView2::from_shape(sh, &x[..len]).map_err(shape_err)
}

fn view_mut(
    x: &mut [f32],
    shape: (usize, usize),
    strides: (usize, usize),
) -> Result<ArrayViewMut2<'_, f32>, KernelError> {
    let sh = (shape.0, shape.1).strides((strides.0, strides.1));
    let len = needed(shape, strides).min(x.len());
    ArrayViewMut2::from_shape(sh, &mut x[..len]).map_err(shape_err)
}

/// Elements a strided view of `shape` spans.
fn needed(shape: (usize, usize), strides: (usize, usize)) -> usize {
    if shape.0 == 0 || shape.1 == 0 {
        return 0;
    }
    (shape.0 - 1) * strides.0 + (shape.1 - 1) * strides.1 + 1
}

fn shape_err(e: ndarray::ShapeError) -> KernelError {
    KernelError::Shape(format!("fused softmax products: internal shape error: {e}"))
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    //! Register tiles: 8 rows × 32 columns for the logits (16 accumulators), 8 rows × 32
    //! features for both gradient products. Callers guarantee the bounds (see the checked
    //! wrappers in the parent module).
    use std::arch::x86_64::*;

    use super::{COL_ALIGN, ROW_ALIGN, WIDTH_CHUNK};

    const MR: usize = ROW_ALIGN;

    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn logits(
        a: &[f32],
        a_stride: usize,
        k: usize,
        rows: usize,
        panels: &[f32],
        m_pad: usize,
        alpha: f32,
        z: &mut [f32],
    ) {
        let al = _mm512_set1_ps(alpha);
        let (a, panels, z) = (a.as_ptr(), panels.as_ptr(), z.as_mut_ptr());
        for r0 in (0..rows).step_by(MR) {
            let a = a.add(r0 * a_stride);
            for p in 0..m_pad / COL_ALIGN {
                let bp = panels.add(p * k * COL_ALIGN);
                let mut acc = [[_mm512_setzero_ps(); 2]; MR];
                for j in 0..k {
                    let b0 = _mm512_loadu_ps(bp.add(j * COL_ALIGN));
                    let b1 = _mm512_loadu_ps(bp.add(j * COL_ALIGN + 16));
                    for (i, acc) in acc.iter_mut().enumerate() {
                        let av = _mm512_set1_ps(*a.add(i * a_stride + j));
                        acc[0] = _mm512_fmadd_ps(av, b0, acc[0]);
                        acc[1] = _mm512_fmadd_ps(av, b1, acc[1]);
                    }
                }
                for (i, acc) in acc.iter().enumerate() {
                    let zr = z.add((r0 + i) * m_pad + p * COL_ALIGN);
                    _mm512_storeu_ps(zr, _mm512_mul_ps(acc[0], al));
                    _mm512_storeu_ps(zr.add(16), _mm512_mul_ps(acc[1], al));
                }
            }
        }
    }

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn grad_rows(
        dz: &[f32],
        dz_stride: usize,
        rows: usize,
        m: usize,
        b: &[f32],
        dp: usize,
        g: &mut [f32],
    ) {
        let (dz, b, g) = (dz.as_ptr(), b.as_ptr(), g.as_mut_ptr());
        for r0 in (0..rows).step_by(MR) {
            let dz = dz.add(r0 * dz_stride);
            for j in (0..dp).step_by(WIDTH_CHUNK) {
                let mut acc = [[_mm512_setzero_ps(); 2]; MR];
                let b = b.add(j);
                for c in 0..m {
                    let b0 = _mm512_loadu_ps(b.add(c * dp));
                    let b1 = _mm512_loadu_ps(b.add(c * dp + 16));
                    for (i, acc) in acc.iter_mut().enumerate() {
                        let s = _mm512_set1_ps(*dz.add(i * dz_stride + c));
                        acc[0] = _mm512_fmadd_ps(s, b0, acc[0]);
                        acc[1] = _mm512_fmadd_ps(s, b1, acc[1]);
                    }
                }
                for (i, acc) in acc.iter().enumerate() {
                    let gr = g.add((r0 + i) * dp + j);
                    _mm512_storeu_ps(gr, acc[0]);
                    _mm512_storeu_ps(gr.add(16), acc[1]);
                }
            }
        }
    }

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn grad_cols(
        dz: &[f32],
        m_pad: usize,
        rows: usize,
        a: &[f32],
        dp: usize,
        h: &mut [f32],
    ) {
        const NC: usize = 8;
        let (dz, a, h) = (dz.as_ptr(), a.as_ptr(), h.as_mut_ptr());
        for c0 in (0..m_pad).step_by(NC) {
            for j in (0..dp).step_by(WIDTH_CHUNK) {
                let mut acc = [[_mm512_setzero_ps(); 2]; NC];
                for r in 0..rows {
                    let ar = a.add(r * dp + j);
                    let a0 = _mm512_loadu_ps(ar);
                    let a1 = _mm512_loadu_ps(ar.add(16));
                    let zr = dz.add(r * m_pad + c0);
                    for (i, acc) in acc.iter_mut().enumerate() {
                        let s = _mm512_set1_ps(*zr.add(i));
                        acc[0] = _mm512_fmadd_ps(s, a0, acc[0]);
                        acc[1] = _mm512_fmadd_ps(s, a1, acc[1]);
                    }
                }
                for (i, acc) in acc.iter().enumerate() {
                    let hr = h.add((c0 + i) * dp + j);
                    _mm512_storeu_ps(hr, _mm512_add_ps(_mm512_loadu_ps(hr), acc[0]));
                    let hr = hr.add(16);
                    _mm512_storeu_ps(hr, _mm512_add_ps(_mm512_loadu_ps(hr), acc[1]));
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    //! The AVX-512 tiles at 8 lanes: 4 rows × 16 columns (or features) per tile, 8
    //! accumulators of the 16 YMM registers, each output element accumulated over the inner
    //! dimension in the AVX-512 kernels' order. Callers guarantee the bounds. The loops
    //! mirror `avx512`'s on purpose (the two must stay in step for their results to stay
    //! bit-identical, tested); only the order in which tiles visit memory differs, so that
    //! the smaller tiles reread their operands from L1 rather than L2.
    use std::arch::x86_64::*;

    use super::{COL_ALIGN, ROW_ALIGN, WIDTH_CHUNK};

    /// Rows (columns for `grad_cols`) per tile.
    const MR: usize = 4;
    /// Lanes per tile: two YMM registers.
    const NR: usize = 16;
    /// Floats of `b` per chunk of [`grad_rows`]: 16 KiB, half of a 32 KiB L1.
    const CHUNK_FLOATS: usize = 4096;
    const _: () = assert!(
        ROW_ALIGN.is_multiple_of(MR)
            && COL_ALIGN.is_multiple_of(NR)
            && WIDTH_CHUNK.is_multiple_of(NR)
    );

    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn logits(
        a: &[f32],
        a_stride: usize,
        k: usize,
        rows: usize,
        panels: &[f32],
        m_pad: usize,
        alpha: f32,
        z: &mut [f32],
    ) {
        let al = _mm256_set1_ps(alpha);
        let (a, panels, z) = (a.as_ptr(), panels.as_ptr(), z.as_mut_ptr());
        // The panel loop runs outside the tiles of one ROW_ALIGN group, so that each panel
        // is read from L2 once per group (as the AVX-512 tile does) and then from L1.
        for g0 in (0..rows).step_by(ROW_ALIGN) {
            for p in 0..m_pad / COL_ALIGN {
                for r0 in (g0..g0 + ROW_ALIGN).step_by(MR) {
                    let a = a.add(r0 * a_stride);
                    for half in (0..COL_ALIGN).step_by(NR) {
                        let bp = panels.add(p * k * COL_ALIGN + half);
                        let mut acc = [[_mm256_setzero_ps(); 2]; MR];
                        for j in 0..k {
                            let b0 = _mm256_loadu_ps(bp.add(j * COL_ALIGN));
                            let b1 = _mm256_loadu_ps(bp.add(j * COL_ALIGN + 8));
                            for (i, acc) in acc.iter_mut().enumerate() {
                                let av = _mm256_set1_ps(*a.add(i * a_stride + j));
                                acc[0] = _mm256_fmadd_ps(av, b0, acc[0]);
                                acc[1] = _mm256_fmadd_ps(av, b1, acc[1]);
                            }
                        }
                        for (i, acc) in acc.iter().enumerate() {
                            let zr = z.add((r0 + i) * m_pad + p * COL_ALIGN + half);
                            _mm256_storeu_ps(zr, _mm256_mul_ps(acc[0], al));
                            _mm256_storeu_ps(zr.add(8), _mm256_mul_ps(acc[1], al));
                        }
                    }
                }
            }
        }
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn grad_rows(
        dz: &[f32],
        dz_stride: usize,
        rows: usize,
        m: usize,
        b: &[f32],
        dp: usize,
        g: &mut [f32],
    ) {
        // The AVX-512 tile covers a group's whole output (8 rows × 32 features) in one
        // sweep of `b`; here that takes four tiles, so the sweep is cut into chunks of `b`
        // that stay in L1 while the four tiles pass over them, each tile parking its
        // accumulators in `g` between chunks. A stored and reloaded f32 is exact, so every
        // element still sees the same fused multiply-adds in the same order.
        let chunk = (CHUNK_FLOATS / dp).max(1);
        let (dz, b, g) = (dz.as_ptr(), b.as_ptr(), g.as_mut_ptr());
        for g0 in (0..rows).step_by(ROW_ALIGN) {
            // m = 0 still runs one (empty) chunk, which writes the zeros.
            for c0 in (0..m.max(1)).step_by(chunk) {
                let c1 = (c0 + chunk).min(m);
                for r0 in (g0..g0 + ROW_ALIGN).step_by(MR) {
                    let dz = dz.add(r0 * dz_stride);
                    for j in (0..dp).step_by(NR) {
                        let gt = g.add(r0 * dp + j);
                        let mut acc = [[_mm256_setzero_ps(); 2]; MR];
                        if c0 > 0 {
                            for (i, acc) in acc.iter_mut().enumerate() {
                                acc[0] = _mm256_loadu_ps(gt.add(i * dp));
                                acc[1] = _mm256_loadu_ps(gt.add(i * dp + 8));
                            }
                        }
                        let b = b.add(j);
                        for c in c0..c1 {
                            let b0 = _mm256_loadu_ps(b.add(c * dp));
                            let b1 = _mm256_loadu_ps(b.add(c * dp + 8));
                            for (i, acc) in acc.iter_mut().enumerate() {
                                let s = _mm256_set1_ps(*dz.add(i * dz_stride + c));
                                acc[0] = _mm256_fmadd_ps(s, b0, acc[0]);
                                acc[1] = _mm256_fmadd_ps(s, b1, acc[1]);
                            }
                        }
                        for (i, acc) in acc.iter().enumerate() {
                            _mm256_storeu_ps(gt.add(i * dp), acc[0]);
                            _mm256_storeu_ps(gt.add(i * dp + 8), acc[1]);
                        }
                    }
                }
            }
        }
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn grad_cols(
        dz: &[f32],
        m_pad: usize,
        rows: usize,
        a: &[f32],
        dp: usize,
        h: &mut [f32],
    ) {
        let (dz, a, h) = (dz.as_ptr(), a.as_ptr(), h.as_mut_ptr());
        for c0 in (0..m_pad).step_by(MR) {
            for j in (0..dp).step_by(NR) {
                let mut acc = [[_mm256_setzero_ps(); 2]; MR];
                for r in 0..rows {
                    let ar = a.add(r * dp + j);
                    let a0 = _mm256_loadu_ps(ar);
                    let a1 = _mm256_loadu_ps(ar.add(8));
                    let zr = dz.add(r * m_pad + c0);
                    for (i, acc) in acc.iter_mut().enumerate() {
                        let s = _mm256_set1_ps(*zr.add(i));
                        acc[0] = _mm256_fmadd_ps(s, a0, acc[0]);
                        acc[1] = _mm256_fmadd_ps(s, a1, acc[1]);
                    }
                }
                for (i, acc) in acc.iter().enumerate() {
                    let hr = h.add((c0 + i) * dp + j);
                    _mm256_storeu_ps(hr, _mm256_add_ps(_mm256_loadu_ps(hr), acc[0]));
                    let hr = hr.add(8);
                    _mm256_storeu_ps(hr, _mm256_add_ps(_mm256_loadu_ps(hr), acc[1]));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use promax_plugin_api::testing::SplitMix;

    fn random(rng: &mut SplitMix, len: usize) -> Vec<f32> {
        (0..len).map(|_| rng.symmetric(1.0) as f32).collect()
    }

    fn backends() -> Vec<Products> {
        Products::supported()
    }

    fn close(what: &str, got: &[f32], want: &[f64]) {
        assert_eq!(got.len(), want.len(), "{what}");
        for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
            assert!(
                (f64::from(g) - w).abs() <= 1e-4 * (1.0 + w.abs()),
                "{what}[{i}]: {g} vs {w}"
            );
        }
    }

    #[test]
    fn products_match_naive_on_every_backend() {
        // k = 5 (< stride) and a table of 37 rows padded to 64 columns; then a table long
        // enough for several of the AVX2 row gradient's chunks (64 rows each at dp = 64),
        // the last one partial.
        products_match_naive(31, (16, 5, 32, 37, 64));
        products_match_naive(32, (24, 40, 64, 300, 320));
    }

    fn products_match_naive(seed: u64, shape: (usize, usize, usize, usize, usize)) {
        let mut rng = SplitMix(seed);
        let (rows, k, dp, m, m_pad) = shape;
        let a = random(&mut rng, rows * dp);
        let b = random(&mut rng, m * dp);
        let dz = {
            let mut d = random(&mut rng, rows * m_pad);
            // The engine zeroes the padding columns of dz; the products must not need it
            // for the row gradient, and the column gradient covers them anyway.
            d.chunks_exact_mut(m_pad).for_each(|r| r[m..].fill(0.0));
            d
        };
        let alpha = 2.5f32;
        let mut want_z = vec![0f64; rows * m_pad];
        for r in 0..rows {
            for c in 0..m {
                want_z[r * m_pad + c] = f64::from(alpha)
                    * (0..k)
                        .map(|j| f64::from(a[r * dp + j]) * f64::from(b[c * dp + j]))
                        .sum::<f64>();
            }
        }
        let mut want_g = vec![0f64; rows * dp];
        for r in 0..rows {
            for j in 0..dp {
                want_g[r * dp + j] = (0..m)
                    .map(|c| f64::from(dz[r * m_pad + c]) * f64::from(b[c * dp + j]))
                    .sum();
            }
        }
        let h0 = random(&mut rng, m_pad * dp);
        let mut want_h: Vec<f64> = h0.iter().map(|&v| f64::from(v)).collect();
        for c in 0..m_pad {
            for j in 0..dp {
                want_h[c * dp + j] += (0..rows)
                    .map(|r| f64::from(dz[r * m_pad + c]) * f64::from(a[r * dp + j]))
                    .sum::<f64>();
            }
        }
        let ar = RowMajor {
            data: &a,
            rows,
            stride: dp,
        };
        let br = RowMajor {
            data: &b,
            rows: m,
            stride: dp,
        };
        let mut tiled: Vec<(Vec<f32>, Vec<f32>, Vec<f32>)> = Vec::new();
        for be in backends() {
            let panels = be.wants_panels().then(|| Panels::pack(&b, dp, k, m, m_pad));
            let mut z = vec![f32::NAN; rows * m_pad];
            be.logits(ar, k, br, panels.as_ref(), m_pad, alpha, &mut z)
                .unwrap();
            close(&format!("{be:?} logits"), &z, &want_z);
            let mut g = vec![f32::NAN; rows * dp];
            let dzr = RowMajor {
                data: &dz,
                rows,
                stride: m_pad,
            };
            be.grad_rows(dzr, m, br, &mut g).unwrap();
            close(&format!("{be:?} grad_rows"), &g, &want_g);
            let mut h = h0.clone();
            be.grad_cols(&dz, m_pad, ar, &mut h).unwrap();
            close(&format!("{be:?} grad_cols"), &h, &want_h);
            if be != Products::Portable {
                tiled.push((z, g, h));
            }
        }
        // The tiled paths accumulate every element in one order: bit-identical.
        for other in tiled.iter().skip(1) {
            assert!(other == &tiled[0], "AVX2 and AVX-512 products differ");
        }
    }

    #[test]
    fn layout_errors_are_errors_not_panics() {
        let a = vec![0f32; 7 * 32];
        let ar = RowMajor {
            data: &a,
            rows: 7,
            stride: 32,
        };
        let mut z = vec![0f32; 7 * 32];
        for be in backends() {
            let e = be.logits(ar, 3, ar, None, 32, 1.0, &mut z).unwrap_err();
            assert!(e.to_string().contains("logits shape"), "{e}");
        }
    }
}
