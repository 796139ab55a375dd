//! A vectorisable `f32` exponential, and the run-time SIMD dispatch the softmax kernels use.
//!
//! The softmax-over-all-items kernels evaluate ~3 exponentials per (user, item) pair (about
//! 84 million per ProMax SDR call); `f32::exp` is a libm call per element that the compiler
//! cannot vectorise. [`exp`] is branch-free straight-line arithmetic instead, so a loop
//! over a slice that calls it compiles to vector code (16 lanes per instruction with
//! AVX-512, 8 with AVX2).
//!
//! # Accuracy
//! Cody–Waite range reduction `x = n·ln2 + r`, `|r| ≤ ln2/2`, then Cephes' degree-5
//! polynomial for `e^r` (the one in Cephes `expf`) and `2^n` built from the exponent bits.
//! Measured against `f64::exp` (test `matches_f64_exp_over_the_whole_range`, ~425,000
//! points): worst relative error 7.9e-8 (≈ 1.3 × 2^-24, i.e. about one ulp) for every
//! normal result, `x ∈ [−87.33, 88.37]`; the test asserts < 2.5e-7 (≈ 2 ulp).
//! - `x < −87.3365` (result below the smallest normal float) returns exactly `0` — also for
//!   `−inf`. The true result there is below 1.2e-38, far under anything a softmax keeps.
//! - `x > 88.3762` returns `+inf` (the true overflow point is 88.7228; nothing here
//!   exponentiates positive arguments beyond a few units).
//! - NaN returns NaN.
//!
//! No fused multiply-adds: the same operations in the same order run on every SIMD path and
//! on the SSE2 fallback (where `mul_add` would be a slow libm call), so the result does not
//! depend on which path runs.

/// `e^x` in `f32`; see the module documentation for accuracy and range.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    // ln(2^-126): below it the result is subnormal; ln(2^127.5): n stays ≤ 127 below it.
    const LO: f32 = -87.336_55;
    const HI: f32 = 88.376_26;
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split in two (Cephes' C1, C2): n·LN2_HI is exact for |n| < 2^9.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5·2^23: adding it rounds to the nearest integer (in the current, round-to-nearest
    // mode) and leaves that integer in the low mantissa bits.
    const MAGIC: f32 = 12_582_912.0;
    const MAGIC_BITS: u32 = 0x4B40_0000;
    const P0: f32 = 1.987_569_2e-4;
    const P1: f32 = 1.398_2e-3;
    const P2: f32 = 8.333_452e-3;
    const P3: f32 = 4.166_579_6e-2;
    const P4: f32 = 1.666_666_5e-1;
    const P5: f32 = 0.5;

    // `clamp` (not f32::min/max) lets NaN through unchanged; it compiles to compare + blend.
    let xc = x.clamp(LO, HI);
    let t = xc * LOG2E + MAGIC;
    let n = t - MAGIC;
    let r = (xc - n * LN2_HI) - n * LN2_LO;
    let r2 = r * r;
    let poly = ((((P0 * r + P1) * r + P2) * r + P3) * r + P4) * r + P5;
    let er = poly * r2 + r + 1.0;
    // t's bits are MAGIC_BITS + n for |n| < 2^22; (n + 127) << 23 is 2^n, n ∈ [−126, 127].
    let pow2 = f32::from_bits(
        t.to_bits()
            .wrapping_sub(MAGIC_BITS)
            .wrapping_add(127)
            .wrapping_shl(23),
    );
    let y = er * pow2;
    if x < LO {
        0.0
    } else if x > HI {
        f32::INFINITY
    } else {
        y
    }
}

/// A piece of arithmetic that should be compiled once per SIMD level and picked at run time
/// (the default x86-64 target assumes only SSE2). `run` must be `#[inline(always)]` so that
/// its body is compiled inside the `target_feature` wrappers below.
pub(crate) trait SimdKernel {
    type Output;
    fn run(self) -> Self::Output;
}

/// Runs `k` at `path` (AVX-512F, AVX2 + FMA or the baseline): the path of the caller's
/// products, so that one call runs one path throughout and a test can run each. A path the
/// CPU cannot run falls back to the baseline.
///
/// AVX-512 doubles the lanes of the exp-heavy loops (16 floats per instruction): one SDR call
/// at 3,000 × 9,332 × 32 took 151 ms on one Zen 4 core with it against 179 ms with the AVX2
/// path (the matrix products, ~80% of the call, are matrixmultiply's either way).
#[inline]
pub(crate) fn dispatch<K: SimdKernel>(path: crate::KernelPath, k: K) -> K::Output {
    #[cfg(target_arch = "x86_64")]
    match path {
        // SAFETY: the guards check that the CPU supports the path (AVX-512F; AVX2 + FMA).
        crate::KernelPath::Avx512 if path.supported() => return unsafe { run_avx512(k) },
        crate::KernelPath::Avx2 if path.supported() => return unsafe { run_avx2(k) },
        _ => {}
    }
    let _ = path;
    k.run()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn run_avx512<K: SimdKernel>(k: K) -> K::Output {
    k.run()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn run_avx2<K: SimdKernel>(k: K) -> K::Output {
    k.run()
}

/// Lanes of the per-row reductions: the sums are kept in this many independent partial sums
/// (one AVX-512 register, two AVX2 ones) and added up in a fixed order at the end, so the
/// loop vectorises and the result is the same on every SIMD path.
pub(crate) const LANES: usize = 16;

/// Adds up `LANES` partial sums in a fixed (pairwise) order.
#[inline(always)]
pub(crate) fn lane_sum(acc: [f32; LANES]) -> f32 {
    let mut a = acc;
    let mut w = LANES / 2;
    while w > 0 {
        for l in 0..w {
            a[l] += a[l + w];
        }
        w /= 2;
    }
    a[0]
}

/// The largest element of `x` (−inf when empty); vectorises, unlike `fold(f32::max)`.
/// NaN elements are skipped (a comparison with NaN is false).
#[inline(always)]
pub(crate) fn max(x: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let mut chunks = x.chunks_exact(LANES);
    for c in &mut chunks {
        for l in 0..LANES {
            acc[l] = if c[l] > acc[l] { c[l] } else { acc[l] };
        }
    }
    for (l, &v) in chunks.remainder().iter().enumerate() {
        acc[l] = if v > acc[l] { v } else { acc[l] };
    }
    let mut m = f32::NEG_INFINITY;
    for v in acc {
        m = if v > m { v } else { m };
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ulps_rel(got: f32, want: f64) -> f64 {
        ((f64::from(got) - want) / want).abs()
    }

    #[test]
    fn matches_f64_exp_over_the_whole_range() {
        // A geometric-ish sweep of [−87.33, 88.37] plus a dense grid on [−20, 20], where the
        // softmax lives.
        let mut worst = (0f64, 0f32);
        let mut check = |x: f32| {
            let want = f64::from(x).exp();
            let rel = ulps_rel(exp(x), want);
            if rel > worst.0 {
                worst = (rel, x);
            }
        };
        let mut x = -87.336f32;
        while x < 88.37 {
            check(x);
            x += 0.000_37 * (1.0 + x.abs());
        }
        for i in -200_000..=200_000 {
            check(i as f32 * 1e-4);
        }
        assert!(
            worst.0 < 2.5e-7,
            "max relative error {} at x = {}",
            worst.0,
            worst.1
        );
    }

    #[test]
    fn extremes_and_special_values() {
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(-87.5), 0.0);
        assert_eq!(exp(-1000.0), 0.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp(f32::MIN), 0.0);
        assert_eq!(exp(100.0), f32::INFINITY);
        assert_eq!(exp(f32::INFINITY), f32::INFINITY);
        assert!(exp(f32::NAN).is_nan());
        // Just inside both ends: finite, positive, accurate.
        for x in [-87.33f32, 88.37] {
            let rel = ulps_rel(exp(x), f64::from(x).exp());
            assert!(rel < 2.5e-7, "x = {x}: {rel}");
        }
    }

    #[test]
    fn vector_paths_agree_with_the_scalar_one() {
        struct Many<'a>(&'a [f32]);
        impl SimdKernel for Many<'_> {
            type Output = Vec<f32>;
            #[inline(always)]
            fn run(self) -> Vec<f32> {
                self.0.iter().map(|&x| exp(x)).collect()
            }
        }
        let xs: Vec<f32> = (0..4099).map(|i| (i as f32 - 2100.0) * 0.047).collect();
        let scalar: Vec<f32> = xs.iter().map(|&x| exp(x)).collect();
        for path in crate::simd::PATHS.into_iter().filter(|p| p.supported()) {
            assert_eq!(dispatch(path, Many(&xs)), scalar, "{path:?}");
        }
    }

    #[test]
    fn max_and_lane_sum() {
        let x: Vec<f32> = (0..37).map(|i| ((i * 7) % 37) as f32 - 3.0).collect();
        assert_eq!(max(&x), 33.0);
        assert_eq!(max(&[]), f32::NEG_INFINITY);
        assert_eq!(max(&[f32::NAN, -2.0]), -2.0);
        let mut acc = [0f32; LANES];
        acc.iter_mut().enumerate().for_each(|(i, a)| *a = i as f32);
        assert_eq!(lane_sum(acc), 120.0);
    }
}
