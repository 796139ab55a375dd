//! Compute kernels for promax: CSR sparse × dense products (graph propagation), dense
//! matrix products, and full-ranking scoring with top-K selection.
//!
//! Everything here runs on the CPU with rayon. Results never depend on the number of threads:
//! work is split along output rows (or fixed-size tiles of them), and every output element is
//! accumulated by one thread in a fixed order.
//!
//! [`CpuKernels`] exposes the kernels to plugins through the stable
//! [`promax_plugin_api::KernelTable`] ABI.
//!
//! # matrixmultiply's features
//! The workspace's `matrixmultiply` entry sets:
//! - `avx512` on: ndarray depends on matrixmultiply with default features off, which drops
//!   its AVX-512 kernel. With it, 4096×32 · 32×9332 ran at 60–64 GFLOP/s on one Zen 4 core
//!   against 44–52 without, and [`topk::score_topk`] at 11k × 9.3k × 32 took ~130–145 ms of
//!   CPU against ~145–150.
//! - `threading` off: [`dense::gemm`] splits large products over the rayon pool itself, and
//!   [`topk::score_topk`] runs one single-threaded product per tile inside rayon tasks, where
//!   matrixmultiply's own thread pool only adds hand-offs: with it, `score_topk` took 164 ms
//!   of CPU against 143–146, and `gemm` gained nothing.
//!
//! Cargo unifies features, so any crate in the same build that turns `threading` on turns it
//! on here too.

pub mod bench;
pub mod cpu;
pub mod csr;
pub mod dense;
pub mod fastexp;
mod fused;
pub mod graph;
pub mod infonce;
pub mod pca;
mod products;
pub mod simd;
pub mod softmax;
pub mod spmm;
pub mod topk;

pub use cpu::CpuKernels;
pub use csr::CsrMatrix;
pub use simd::KernelPath;

/// Why a kernel refused its arguments.
#[derive(thiserror::Error, Debug)]
pub enum KernelError {
    /// A length or shape mismatch; the message names the kernel, the argument, and the
    /// expected and actual sizes.
    #[error("{0}")]
    Shape(String),
    /// A numerical failure on well-shaped input (non-finite values, a rank-deficient table
    /// asked to be whitened, an eigensolver that did not converge); the message names the
    /// kernel and the values involved.
    #[error("{0}")]
    Numerical(String),
}

/// `a × b`, or a [`KernelError::Shape`] naming what overflowed.
pub(crate) fn checked_mul(
    kernel: &str,
    what: &str,
    a: usize,
    b: usize,
) -> Result<usize, KernelError> {
    a.checked_mul(b)
        .ok_or_else(|| KernelError::Shape(format!("{kernel}: {what} = {a} × {b} overflows usize")))
}

/// Errors unless `arg` has exactly the expected length; `how` explains where the expected
/// length comes from (e.g. "m × k = 4 × 3").
pub(crate) fn check_len(
    kernel: &str,
    arg: &str,
    actual: usize,
    expected: usize,
    how: std::fmt::Arguments<'_>,
) -> Result<(), KernelError> {
    if actual == expected {
        Ok(())
    } else {
        Err(KernelError::Shape(format!(
            "{kernel}: `{arg}` has length {actual}, expected {expected} ({how})"
        )))
    }
}
