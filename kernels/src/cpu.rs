//! The CPU backend of the plugin kernel table.

use abi_stable::std_types::{RErr, ROk, RResult, RSlice, RSliceMut, RString};
use promax_plugin_api::sdk::catch_panic;
use promax_plugin_api::{
    kernels_ref, CsrView, GemmSpec, InfoNceRequest, KernelTable, KernelsRef, PairedNceRequest,
    ReduceRequest, SoftCeRequest, SoftmaxStatsRequest, TopkRequest,
};

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
        kernels_ref(self)
    }
}

/// Runs a kernel, turning its error or panic into the ABI's error text.
fn guarded<T>(kernel: &str, f: impl FnOnce() -> Result<T, KernelError>) -> RResult<T, RString> {
    match catch_panic(f) {
        Ok(Ok(v)) => ROk(v),
        Ok(Err(e)) => RErr(e.to_string().into()),
        Err(p) => RErr(format!("{kernel}: panicked: {p}").into()),
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

    fn softmax_stats(
        &self,
        req: SoftmaxStatsRequest<'_>,
        lse: RSliceMut<'_, f32>,
        entropy: RSliceMut<'_, f32>,
    ) -> RResult<(), RString> {
        guarded("softmax_stats", || {
            crate::softmax::softmax_stats(&req, lse.into_mut_slice(), entropy.into_mut_slice())
        })
    }

    fn soft_ce_all_items(
        &self,
        req: SoftCeRequest<'_>,
        d_users: RSliceMut<'_, f32>,
        d_items: RSliceMut<'_, f32>,
    ) -> RResult<f64, RString> {
        guarded("soft_ce_all_items", || {
            crate::softmax::soft_ce_all_items(
                &req,
                d_users.into_mut_slice(),
                d_items.into_mut_slice(),
            )
        })
    }

    fn info_nce(
        &self,
        req: InfoNceRequest<'_>,
        d_a: RSliceMut<'_, f32>,
        d_b: RSliceMut<'_, f32>,
    ) -> RResult<f64, RString> {
        guarded("info_nce", || {
            crate::infonce::info_nce(&req, d_a.into_mut_slice(), d_b.into_mut_slice())
        })
    }

    fn info_nce_pairs(
        &self,
        req: PairedNceRequest<'_>,
        d_a: RSliceMut<'_, f32>,
        d_b: RSliceMut<'_, f32>,
    ) -> RResult<f64, RString> {
        guarded("info_nce_pairs", || {
            crate::infonce::info_nce_pairs(&req, d_a.into_mut_slice(), d_b.into_mut_slice())
        })
    }

    fn reduce_profiles(
        &self,
        req: ReduceRequest<'_>,
        out_users: RSliceMut<'_, f32>,
        out_items: RSliceMut<'_, f32>,
    ) -> RResult<(), RString> {
        guarded("reduce_profiles", || {
            crate::pca::reduce_into(&req, out_users.into_mut_slice(), out_items.into_mut_slice())
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
    fn softmax_kernels_work_through_the_abi_object() {
        use promax_plugin_api::{InfoNceRequest, SoftCeRequest, SoftmaxStatsRequest};
        let cpu = CpuKernels;
        let k = cpu.as_ref();
        // Two keys scored 0 and ln 3 at tau 1: softmax (1/4, 3/4).
        let (mut lse, mut h) = ([0f32], [0f32]);
        let query = [3f32.ln()];
        let req = SoftmaxStatsRequest {
            queries: query[..].into(),
            keys: [0f32, 1.0][..].into(),
            dim: 1,
            tau: 1.0,
        };
        let r = k.softmax_stats(req, (&mut lse[..]).into(), (&mut h[..]).into());
        assert!(r.is_ok());
        assert!((lse[0] - 4f32.ln()).abs() < 1e-6, "{lse:?}");
        let want_h = -(0.25f32 * 0.25f32.ln() + 0.75 * 0.75f32.ln());
        assert!((h[0] - want_h).abs() < 1e-6, "{h:?}");

        let one = [1f32];
        let req = SoftCeRequest {
            users: one[..].into(),
            items: [1f32, -1.0][..].into(),
            dim: 1,
            target_users: one[..].into(),
            target_items: [1f32, -1.0][..].into(),
            target_dim: 1,
            target_lse: [0f32][..].into(),
            weights: one[..].into(),
            tau: 1.0,
            target_tau: 1.0,
        };
        let (mut du, mut di) = ([0f32], [0f32; 3]);
        let r = k.soft_ce_all_items(req, (&mut du[..]).into(), (&mut di[..]).into());
        assert_eq!(
            r.into_result().map_err(RString::into_string),
            Err(
                "soft_ce_all_items: `d_items` has length 3, expected 2 (N × dim = 2 × 1)"
                    .to_string()
            )
        );
        let r = k.soft_ce_all_items(req, (&mut du[..]).into(), (&mut di[..2]).into());
        assert!(r.into_result().is_ok_and(|l| l.is_finite() && l > 0.0));

        let req = InfoNceRequest {
            a: one[..].into(),
            b: [1f32, -1.0][..].into(),
            dim: 1,
            tau: 1.0,
            eps: 0.0,
            weight: 1.0,
        };
        let (mut da, mut db) = ([0f32], [0f32; 2]);
        let r = k.info_nce(req, (&mut da[..]).into(), (&mut db[..]).into());
        // −ln(e / (e + 1/e)); cosines of ±1 have zero gradient through the normalisation.
        let want = -(1f64 / (1.0 + (-2f64).exp())).ln();
        assert!(r.into_result().is_ok_and(|l| (l - want).abs() < 1e-6));
        assert_eq!((da, db), ([0.0], [0.0, 0.0]));
    }

    #[test]
    fn panics_are_caught() {
        let r = guarded::<()>("test", || panic!("boom {}", 1));
        assert_eq!(
            r.into_result().map_err(RString::into_string),
            Err("test: panicked: boom 1".to_string())
        );
    }
}
