//! LightGCN's propagation, shared by the backbones built on it (LightGCN, SimGCL's clean
//! view): `final = Σ_{l=s..L} Âˡ·E0` with `E0 = [users; items]` and `s` 0 or 1, and its
//! backward, the same sum over `Âᵀ` (docs/methods.md).

use super::rows::{add_node_gradient, stack_nodes};
use super::{Compute, Grads, Params, PluginResult};
use crate::abi::CsrView;

/// Checks the shape hyperparameters of a propagating backbone; errors name the key.
pub fn check_layers(dim: usize, layers: usize) -> PluginResult<()> {
    if dim == 0 {
        return Err("`dim` must be at least 1".into());
    }
    if layers == 0 {
        return Err("`layers` must be at least 1 (use the mf backbone for 0)".into());
    }
    Ok(())
}

/// The sum `Σ_{l=s..L} Aˡ·x` over `dim`-column node rows: `s` = 0 with `include_layer0`,
/// else 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerSum {
    /// Columns of every node row.
    pub dim: usize,
    /// The number of products L (at least 1).
    pub layers: usize,
    /// Whether `x` itself (layer 0) is part of the sum.
    pub include_layer0: bool,
}

impl LayerSum {
    /// `out = Σ_{l=s..L} Aˡ·x`, by Horner's rule `x + A(x + A(x + …))`: L products,
    /// alternating between `out` and `tmp` (both the size of `x`), so that the last lands
    /// in `out`.
    pub fn apply(
        &self,
        k: &Compute<'_>,
        a: CsrView<'_>,
        x: &[f32],
        out: &mut [f32],
        tmp: &mut [f32],
    ) -> PluginResult<()> {
        for step in 0..self.layers {
            let lands_in_out = (self.layers - step) % 2 == 1; // an odd number of products left
            let (src, dst): (&[f32], &mut [f32]) = match (step, lands_in_out) {
                (0, true) => (x, &mut *out),
                (0, false) => (x, &mut *tmp),
                (_, true) => (&*tmp, &mut *out),
                (_, false) => (&*out, &mut *tmp),
            };
            // dst = x + A·src, except for the outermost product without layer 0: dst = A·src.
            let beta = if step + 1 == self.layers && !self.include_layer0 {
                0.0 // BLAS convention: out is not read
            } else {
                dst.copy_from_slice(x);
                1.0
            };
            k.spmm(a, src, self.dim, dst, beta)?;
        }
        Ok(())
    }
}

/// A backbone's propagation over its user and item tables (tables 0 and 1), with two
/// node-buffer-sized scratch vectors kept across calls.
#[derive(Clone, Debug, Default)]
pub struct Propagation {
    /// E0 in forward; dE0 (the result) in backward.
    x0: Vec<f32>,
    /// Ping-pong partner of the output.
    tmp: Vec<f32>,
}

impl Propagation {
    /// Empty scratch; it grows to the node buffer's size on the first call.
    pub fn new() -> Self {
        Self::default()
    }

    /// `out = Σ_{l=s..L} Âˡ·E0` with `E0` the stacked tables of `params`.
    pub fn forward(
        &mut self,
        k: &Compute<'_>,
        sum: LayerSum,
        params: &Params<'_>,
        adj: CsrView<'_>,
        out: &mut [f32],
    ) -> PluginResult<()> {
        self.size(out.len());
        stack_nodes(params, &mut self.x0)?;
        sum.apply(k, adj, &self.x0, out, &mut self.tmp)
    }

    /// Given `d_out = dL/d(final)`, accumulates `dE0 = Σ_{l=s..L} (Âᵀ)ˡ·d_out` into the
    /// gradients of tables 0 and 1.
    pub fn backward(
        &mut self,
        k: &Compute<'_>,
        sum: LayerSum,
        adj_t: CsrView<'_>,
        d_out: &[f32],
        grads: &mut Grads<'_>,
    ) -> PluginResult<()> {
        self.size(d_out.len());
        sum.apply(k, adj_t, d_out, &mut self.x0, &mut self.tmp)?;
        add_node_gradient(&self.x0, grads)
    }

    fn size(&mut self, n: usize) {
        self.x0.resize(n, 0.0);
        self.tmp.resize(n, 0.0);
    }
}
