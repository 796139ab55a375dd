//! The CPU backend of the plugin kernel table.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

use abi_stable::{
    sabi_trait::TD_Opaque,
    sabi_types::RRef,
    std_types::{RErr, ROk, RResult, RSlice, RSliceMut, RString},
};
use promax_plugin_api::{CsrView, GemmSpec, KernelTable, KernelTable_TO, KernelsRef, TopkRequest};

use crate::KernelError;

/// The rayon-backed kernels, as a [`KernelTable`] the host lends to plugins.
///
/// Every method catches panics (a panic must not unwind across the plugin boundary, where it
/// would abort the process) and reports them, like argument errors, as `RErr` text.
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuKernels;

impl CpuKernels {
    /// Borrows `self` as the ABI trait object plugins receive.
    // The name is the one host and plugins use; this is not `AsRef` (it returns a trait
    // object built from the reference, not a reference to a field).
    #[allow(clippy::should_implement_trait)]
    pub fn as_ref(&self) -> KernelsRef<'_> {
        KernelTable_TO::from_ptr(RRef::new(self), TD_Opaque)
    }
}

/// Runs a kernel, turning its error or panic into the ABI's error text.
fn guarded(kernel: &str, f: impl FnOnce() -> Result<(), KernelError>) -> RResult<(), RString> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => ROk(()),
        Ok(Err(e)) => RErr(e.to_string().into()),
        Err(payload) => RErr(format!("{kernel}: panicked: {}", panic_text(&*payload)).into()),
    }
}

fn panic_text(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "(no message)"
    }
}

impl KernelTable for CpuKernels {
    fn spmm(
        &self,
        a: CsrView<'_>,
        x: RSlice<'_, f32>,
        cols: usize,
        out: RSliceMut<'_, f32>,
        beta: f32,
    ) -> RResult<(), RString> {
        guarded("spmm", || {
            crate::spmm::spmm(&a, x.as_slice(), cols, out.into_mut_slice(), beta)
        })
    }

    fn gemm(
        &self,
        spec: GemmSpec,
        a: RSlice<'_, f32>,
        b: RSlice<'_, f32>,
        c: RSliceMut<'_, f32>,
    ) -> RResult<(), RString> {
        guarded("gemm", || {
            crate::dense::gemm(spec, a.as_slice(), b.as_slice(), c.into_mut_slice())
        })
    }

    fn score_topk(
        &self,
        req: TopkRequest<'_>,
        out_items: RSliceMut<'_, u32>,
        out_scores: RSliceMut<'_, f32>,
    ) -> RResult<(), RString> {
        guarded("score_topk", || {
            crate::topk::score_topk(
                &req,
                out_items.into_mut_slice(),
                out_scores.into_mut_slice(),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CsrMatrix;

    #[test]
    fn kernels_work_through_the_abi_object() {
        let cpu = CpuKernels;
        let k = cpu.as_ref();
        let a = CsrMatrix::from_triplets(2, 2, &[(0, 1, 2.0), (1, 0, 1.0)]);
        let mut out = [1.0f32, 1.0];
        let r = k.spmm(
            a.view(),
            [3.0f32, 4.0][..].into(),
            1,
            (&mut out[..]).into(),
            1.0,
        );
        assert!(r.is_ok());
        assert_eq!(out, [9.0, 4.0]);

        let spec = GemmSpec {
            m: 1,
            n: 1,
            k: 2,
            trans_a: false,
            trans_b: true,
            alpha: 2.0,
            beta: 0.0,
        };
        let mut c = [0.0f32];
        let r = k.gemm(
            spec,
            [1.0f32, 2.0][..].into(),
            [3.0f32, 4.0][..].into(),
            (&mut c[..]).into(),
        );
        assert!(r.is_ok());
        assert_eq!(c, [22.0]);

        let none = CsrMatrix::default();
        let req = TopkRequest {
            queries: [1.0f32][..].into(),
            items: [1.0f32, 3.0, 2.0][..].into(),
            dim: 1,
            exclude: none.view(),
            k: 2,
        };
        let (mut ids, mut scores) = ([0u32; 2], [0f32; 2]);
        let r = k.score_topk(req, (&mut ids[..]).into(), (&mut scores[..]).into());
        assert!(r.is_ok());
        assert_eq!((ids, scores), ([1, 2], [3.0, 2.0]));
    }

    #[test]
    fn errors_come_back_as_text() {
        let cpu = CpuKernels;
        let k = cpu.as_ref();
        let a = CsrMatrix::from_triplets(2, 2, &[]);
        let mut out = [0.0f32; 3];
        let r = k.spmm(
            a.view(),
            [0.0f32; 2][..].into(),
            1,
            (&mut out[..]).into(),
            0.0,
        );
        assert_eq!(
            r.into_result().map_err(RString::into_string),
            Err("spmm: `out` has length 3, expected 2 (a.n_rows × cols = 2 × 1)".to_string())
        );
    }

    #[test]
    fn panics_are_caught() {
        let r = guarded("test", || panic!("boom {}", 1));
        assert_eq!(
            r.into_result().map_err(RString::into_string),
            Err("test: panicked: boom 1".to_string())
        );
    }
}
