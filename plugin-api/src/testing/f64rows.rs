//! Row operations in f64 that reference implementations of cosine softmax losses share:
//! unit rows with their norms, the chain rule back through the normalisation, and a stable
//! log-sum-exp. Public so that a fast kernel's tests build their naive version from the
//! same pieces as [`super::ReferenceKernels`].

/// Unit rows of `x` (`dim` columns; a zero row stays zero) and the row norms, in f64.
pub fn unit_rows_f64(x: &[f32], dim: usize) -> (Vec<f64>, Vec<f64>) {
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

/// `dL/dx` from `g = dL/dx̂` through `x̂ = x / |x|`, given [`unit_rows_f64`]'s output
/// (`h`, `norms`); zero rows get a zero gradient.
pub fn unit_rows_backward(g: &[f64], h: &[f64], norms: &[f64], dim: usize) -> Vec<f64> {
    let mut out = vec![0f64; g.len()];
    for (r, &n) in norms.iter().enumerate().filter(|(_, &n)| n > 0.0) {
        let (gr, hr) = (&g[r * dim..(r + 1) * dim], &h[r * dim..(r + 1) * dim]);
        let along = dot_f64(gr, hr);
        for c in 0..dim {
            out[r * dim + c] = (gr[c] - along * hr[c]) / n;
        }
    }
    out
}

/// `Σ a_k b_k` in f64.
pub fn dot_f64(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// `ln Σ exp(z)`, stable (the maximum is factored out).
pub fn log_sum_exp(z: &[f64]) -> f64 {
    let m = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    m + z.iter().map(|v| (v - m).exp()).sum::<f64>().ln()
}

/// The SDK's [`Mlp`](crate::sdk::mlp::Mlp) on one input row, in f64 from its definition
/// (`LeakyReLU(x W1 + b1) W2 + b2`, slope 0.01), its tables at `first..first + 4` of `p`.
pub fn mlp_f64(p: &crate::sdk::Params<'_>, first: usize, x: &[f32]) -> Vec<f64> {
    use crate::sdk::mlp::{B1, B2, W1, W2};
    let (w1, b1) = (p.table(first + W1), p.table(first + B1));
    let (w2, b2) = (p.table(first + W2), p.table(first + B2));
    let (hidden, d_out) = (b1.len(), b2.len());
    let act: Vec<f64> = (0..hidden)
        .map(|j| {
            let z = f64::from(b1[j])
                + x.iter()
                    .enumerate()
                    .map(|(i, &v)| f64::from(v) * f64::from(w1[i * hidden + j]))
                    .sum::<f64>();
            if z > 0.0 {
                z
            } else {
                0.01 * z
            }
        })
        .collect();
    (0..d_out)
        .map(|o| {
            f64::from(b2[o])
                + act
                    .iter()
                    .enumerate()
                    .map(|(j, &a)| a * f64::from(w2[j * d_out + o]))
                    .sum::<f64>()
        })
        .collect()
}
