//! The two-layer perceptron RLMRec's variants map between profile and embedding space
//! with (`Linear → LeakyReLU(0.01) → Linear`, as PyTorch's defaults): forward with a tape,
//! backward into its four tables and, when asked, into its input, its products on the
//! host's kernels.

use crate::abi::{GemmSpec, Init, TableSpec};
use crate::sdk::{table, Compute, Grads, Params, PluginResult};

/// PyTorch's `LeakyReLU()` default slope, as the reference MLP uses.
const LEAKY_SLOPE: f32 = 0.01;

/// Table offsets of the MLP from its first table, in declaration order.
pub const W1: usize = 0;
/// The hidden layer's bias.
pub const B1: usize = 1;
/// The output layer's weights.
pub const W2: usize = 2;
/// The output layer's bias.
pub const B2: usize = 3;

/// A two-layer perceptron `x W1 + b1 → LeakyReLU → · W2 + b2` over row-major batches.
/// Its four tables (W1 d_in × hidden, b1, W2 hidden × d_out, b2) sit at the plugin's table
/// indices `first..first + 4`.
#[derive(Clone, Copy, Debug)]
pub struct Mlp {
    /// Input columns.
    pub d_in: usize,
    /// Hidden units.
    pub hidden: usize,
    /// Output columns.
    pub d_out: usize,
    /// Index of W1 among the plugin's tables.
    pub first: usize,
}

/// What the backward pass of one MLP call needs.
pub struct MlpTape {
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
    /// Its four tables, to list at `first..first + 4` of the plugin's.
    pub fn tables(&self) -> Vec<TableSpec> {
        vec![
            table("w1", self.d_in, self.hidden, Init::XavierUniform),
            table("b1", 1, self.hidden, Init::Zeros),
            table("w2", self.hidden, self.d_out, Init::XavierUniform),
            table("b2", 1, self.d_out, Init::Zeros),
        ]
    }

    /// Maps `rows` rows of `x` (rows × d_in); returns the output (rows × d_out) and the tape.
    pub fn forward(
        &self,
        k: &Compute<'_>,
        p: &Params<'_>,
        x: &[f32],
    ) -> PluginResult<(Vec<f32>, MlpTape)> {
        let rows = x.len() / self.d_in;
        let mut pre = broadcast_rows(p.table(self.first + B1), rows);
        k.gemm(
            gemm_spec(rows, self.hidden, self.d_in, false, 1.0),
            x,
            p.table(self.first + W1),
            &mut pre,
        )?;
        let act: Vec<f32> = pre
            .iter()
            .map(|&v| if v > 0.0 { v } else { LEAKY_SLOPE * v })
            .collect();
        let mut out = broadcast_rows(p.table(self.first + B2), rows);
        k.gemm(
            gemm_spec(rows, self.d_out, self.hidden, false, 1.0),
            &act,
            p.table(self.first + W2),
            &mut out,
        )?;
        Ok((out, MlpTape { rows, pre, act }))
    }

    /// Accumulates the tables' gradients for output gradient `d_out` (rows × d_out), and,
    /// when `d_x` is given, the input's (rows × d_in, accumulated).
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        &self,
        k: &Compute<'_>,
        p: &Params<'_>,
        x: &[f32],
        tape: &MlpTape,
        d_out: &[f32],
        g: &mut Grads<'_>,
        d_x: Option<&mut [f32]>,
    ) -> PluginResult<()> {
        let rows = tape.rows;
        k.gemm(
            gemm_spec(self.hidden, self.d_out, rows, true, 1.0),
            &tape.act,
            d_out,
            g.table_mut(self.first + W2),
        )?;
        add_column_sums(d_out, g.table_mut(self.first + B2));
        // d_act = d_out · W2ᵀ, then through the activation.
        let mut d_pre = vec![0f32; rows * self.hidden];
        k.gemm(
            GemmSpec {
                trans_b: true,
                ..gemm_spec(rows, self.hidden, self.d_out, false, 0.0)
            },
            d_out,
            p.table(self.first + W2),
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
            g.table_mut(self.first + W1),
        )?;
        add_column_sums(&d_pre, g.table_mut(self.first + B1));
        if let Some(d_x) = d_x {
            // d_x += d_pre · W1ᵀ.
            k.gemm(
                GemmSpec {
                    trans_b: true,
                    ..gemm_spec(rows, self.d_in, self.hidden, false, 1.0)
                },
                &d_pre,
                p.table(self.first + W1),
                d_x,
            )?;
        }
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
