//! RLMRec-Con's profile mapper: `Linear(D, hidden) → LeakyReLU(0.01) → Linear(width)`,
//! forward with a tape and backward into its four tables, its products on the host's
//! kernels.

use promax_plugin_api::prelude::*;

/// PyTorch's `LeakyReLU()` default slope, as the reference MLP uses.
const LEAKY_SLOPE: f32 = 0.01;

/// Table indices of the MLP, in declaration order.
pub(crate) const W1: usize = 0;
pub(crate) const B1: usize = 1;
pub(crate) const W2: usize = 2;
pub(crate) const B2: usize = 3;

/// A two-layer perceptron `x W1 + b1 → LeakyReLU → · W2 + b2` over row-major batches,
/// its products on the host's kernels.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Mlp {
    pub(crate) d_in: usize,
    pub(crate) hidden: usize,
    pub(crate) d_out: usize,
}

/// What the backward pass of one MLP call needs.
pub(crate) struct MlpTape {
    rows: usize,
    /// Pre-activations of the hidden layer (rows × hidden).
    pre: Vec<f32>,
    /// Activations of the hidden layer (rows × hidden).
    act: Vec<f32>,
}

fn gemm_spec(m: usize, n: usize, k: usize, trans_a: bool, beta: f32) -> GemmSpec {
    GemmSpec {
        m,
        n,
        k,
        trans_a,
        trans_b: false,
        alpha: 1.0,
        beta,
    }
}

impl Mlp {
    pub(crate) fn tables(&self) -> Vec<TableSpec> {
        vec![
            table("w1", self.d_in, self.hidden, Init::XavierUniform),
            table("b1", 1, self.hidden, Init::Zeros),
            table("w2", self.hidden, self.d_out, Init::XavierUniform),
            table("b2", 1, self.d_out, Init::Zeros),
        ]
    }

    /// Maps `rows` rows of `x` (rows × d_in); returns the output (rows × d_out) and the tape.
    pub(crate) fn forward(
        &self,
        k: &Compute<'_>,
        p: &Params<'_>,
        x: &[f32],
    ) -> PluginResult<(Vec<f32>, MlpTape)> {
        let rows = x.len() / self.d_in;
        let mut pre = broadcast_rows(p.table(B1), rows);
        k.gemm(
            gemm_spec(rows, self.hidden, self.d_in, false, 1.0),
            x,
            p.table(W1),
            &mut pre,
        )?;
        let act: Vec<f32> = pre
            .iter()
            .map(|&v| if v > 0.0 { v } else { LEAKY_SLOPE * v })
            .collect();
        let mut out = broadcast_rows(p.table(B2), rows);
        k.gemm(
            gemm_spec(rows, self.d_out, self.hidden, false, 1.0),
            &act,
            p.table(W2),
            &mut out,
        )?;
        Ok((out, MlpTape { rows, pre, act }))
    }

    /// Accumulates the tables' gradients for output gradient `d_out` (rows × d_out).
    pub(crate) fn backward(
        &self,
        k: &Compute<'_>,
        p: &Params<'_>,
        x: &[f32],
        tape: &MlpTape,
        d_out: &[f32],
        g: &mut Grads<'_>,
    ) -> PluginResult<()> {
        let rows = tape.rows;
        k.gemm(
            gemm_spec(self.hidden, self.d_out, rows, true, 1.0),
            &tape.act,
            d_out,
            g.table_mut(W2),
        )?;
        add_column_sums(d_out, g.table_mut(B2));
        // d_act = d_out · W2ᵀ, then through the activation.
        let mut d_pre = vec![0f32; rows * self.hidden];
        k.gemm(
            GemmSpec {
                trans_b: true,
                ..gemm_spec(rows, self.hidden, self.d_out, false, 0.0)
            },
            d_out,
            p.table(W2),
            &mut d_pre,
        )?;
        for (d, &z) in d_pre.iter_mut().zip(&tape.pre) {
            if z <= 0.0 {
                *d *= LEAKY_SLOPE;
            }
        }
        k.gemm(
            gemm_spec(self.d_in, self.hidden, rows, true, 1.0),
            x,
            &d_pre,
            g.table_mut(W1),
        )?;
        add_column_sums(&d_pre, g.table_mut(B1));
        Ok(())
    }
}

/// `rows` copies of the row `b`.
fn broadcast_rows(b: &[f32], rows: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(rows * b.len());
    for _ in 0..rows {
        out.extend_from_slice(b);
    }
    out
}

/// `acc += Σ_rows x`.
fn add_column_sums(x: &[f32], acc: &mut [f32]) {
    for row in x.chunks_exact(acc.len()) {
        acc.iter_mut().zip(row).for_each(|(a, v)| *a += v);
    }
}
