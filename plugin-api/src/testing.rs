//! Finite-difference gradient checks, for the host's losses and for any plugin.
//!
//! A plugin author checks a backbone with [`check_backbone_gradients`]: it runs the ABI
//! object exactly as the host would (forward, backward through the kernel table) on a test
//! loss `L = Σ c ⊙ out + ½ Σ out²` and compares every sampled parameter's analytic gradient
//! with a central difference computed in f64.
//!
//! Plugin tests need no compute backend: [`ReferenceKernels`] is a kernel table of plain
//! loops, and [`bipartite_adjacency`] / [`drop_edges`] build the graphs the host would.

use abi_stable::std_types::RVec;

mod f64rows;
mod fixtures;
mod graph;
mod pca;
mod reference;
mod softmax;

pub use crate::sdk::rng::SplitMix;
pub use f64rows::{dot_f64, log_sum_exp, mlp_f64, unit_rows_backward, unit_rows_f64};
pub use fixtures::{
    abi_env, assert_backbone_rejects, assert_hparams_documented, new_small_backbone,
    small_graph_mismatches, SMALL_ITEMS, SMALL_PAIRS, SMALL_USERS,
};
pub use graph::{bipartite_adjacency, drop_edges, Csr};
pub use pca::{covariance, jacobi_eigen};
pub use reference::ReferenceKernels;

use crate::abi::*;
use crate::sdk::{Compute, Emb, EmbBuf, Env, Grads, Params};

/// One mismatch between an analytic and a numeric derivative.
#[derive(Clone, Debug)]
pub struct Mismatch {
    /// The checked position in the parameter (or input) vector.
    pub index: usize,
    /// The gradient the code under test computed.
    pub analytic: f64,
    /// The central difference.
    pub numeric: f64,
}

/// Compares `analytic[i]` with the central difference of `f` at `x[i]` for every `i` in
/// `indices`. `f` is evaluated in f64 on the perturbed f32 vector.
pub fn finite_difference_check(
    x: &mut [f32],
    analytic: &[f32],
    indices: &[usize],
    eps: f32,
    rtol: f64,
    atol: f64,
    mut f: impl FnMut(&[f32]) -> f64,
) -> Vec<Mismatch> {
    let mut bad = Vec::new();
    for &i in indices {
        let orig = x[i];
        x[i] = orig + eps;
        let up = f(x);
        x[i] = orig - eps;
        let down = f(x);
        x[i] = orig;
        // The step actually taken in f32 may differ from eps; use the realised one.
        let h = (f64::from(orig + eps) - f64::from(orig - eps)) / 2.0;
        let numeric = (up - down) / (2.0 * h);
        let a = f64::from(analytic[i]);
        if (a - numeric).abs() > atol + rtol * a.abs().max(numeric.abs()) {
            bad.push(Mismatch {
                index: i,
                analytic: a,
                numeric,
            });
        }
    }
    bad
}

/// `n` indices spread over `0..len` (all of them when `len <= n`).
pub fn sample_indices(len: usize, n: usize, seed: u64) -> Vec<usize> {
    if len <= n {
        return (0..len).collect();
    }
    let mut rng = SplitMix(seed);
    (0..n)
        .map(|_| (rng.next_u64() % len as u64) as usize)
        .collect()
}

/// Lays out tables back to back, as the host does.
pub fn layout_of(tables: &[TableSpec]) -> Vec<TableLayout> {
    let mut offset = 0;
    tables
        .iter()
        .map(|t| {
            let l = TableLayout {
                offset,
                rows: t.rows,
                cols: t.cols,
            };
            offset += t.rows * t.cols;
            l
        })
        .collect()
}

/// Random parameters in [-0.5, 0.5) for every table (larger than Xavier, so that the
/// check exercises every path with non-trivial values).
pub fn random_params(layout: &[TableLayout], seed: u64) -> Vec<f32> {
    let n = layout.last().map_or(0, |l| l.offset + l.rows * l.cols);
    let mut rng = SplitMix(seed);
    (0..n).map(|_| rng.symmetric(0.5) as f32).collect()
}

fn test_loss(out: &[f32], c: &[f32]) -> f64 {
    out.iter()
        .zip(c)
        .map(|(&o, &c)| f64::from(c) * f64::from(o) + 0.5 * f64::from(o) * f64::from(o))
        .sum()
}

fn forward_into(
    b: &mut BackboneBox,
    k: &KernelsRef<'_>,
    params: &[f32],
    layout: &[TableLayout],
    graph: GraphView<'_>,
    out: &mut [f32],
) -> Result<(), String> {
    let width = b.width();
    let emb = EmbMut {
        data: out.into(),
        n_users: graph.n_users,
        n_items: graph.n_items,
        width,
    };
    b.forward(
        k.sabi_reborrow(),
        Params::new(params, layout).to_abi(),
        graph,
        emb,
    )
    .into_result()
    .map_err(|e| e.into_string())
}

/// Checks a backbone's `backward` against finite differences of its `forward` on
/// `L = Σ c ⊙ out + ½ Σ out²` (random `c`), at `samples` parameter entries. Returns the
/// mismatches (empty when the gradient is right).
pub fn check_backbone_gradients(
    b: &mut BackboneBox,
    k: &KernelsRef<'_>,
    graph: GraphView<'_>,
    samples: usize,
    seed: u64,
) -> Result<Vec<Mismatch>, String> {
    let tables: RVec<TableSpec> = b.tables();
    let layout = layout_of(&tables);
    let mut params = random_params(&layout, seed);
    let width = b.width();
    let n_nodes = graph.n_users + graph.n_items;
    let mut out = vec![0f32; n_nodes * width];
    forward_into(b, k, &params, &layout, graph, &mut out)?;
    let mut rng = SplitMix(seed ^ 0xC0FFEE);
    let c: Vec<f32> = (0..out.len()).map(|_| rng.symmetric(1.0) as f32).collect();
    let d_out: Vec<f32> = out.iter().zip(&c).map(|(o, c)| o + c).collect();
    // Gradients are accumulated (`+=`): start from non-zero values so that a backward that
    // overwrites the buffer instead of adding to it fails the check.
    let start: Vec<f32> = (0..params.len())
        .map(|_| rng.symmetric(1.0) as f32)
        .collect();
    let mut grads = start.clone();
    let d = EmbRef {
        data: d_out.as_slice().into(),
        n_users: graph.n_users,
        n_items: graph.n_items,
        width,
    };
    b.backward(
        k.sabi_reborrow(),
        Params::new(&params, &layout).to_abi(),
        graph,
        d,
        Grads::new(&mut grads, &layout).to_abi(),
    )
    .into_result()
    .map_err(|e| e.into_string())?;
    grads.iter_mut().zip(&start).for_each(|(g, s)| *g -= s);
    let indices = sample_indices(params.len(), samples, seed ^ 0xFEED);
    let mut err = None;
    // Tolerances, measured on LightGCN (f32 forward, f64 loss): a right gradient is off by
    // at most ~3e-5 (4 × 5 graph, dim 32, 4 layers; 200 × 300 graph, dim 8); a wrong one
    // (adj for adj_t, a layer dropped in backward) fails on nearly every entry, by up to 1-3.
    let bad = finite_difference_check(&mut params, &grads, &indices, 1e-2, 2e-3, 1e-3, |p| {
        let mut o = vec![0f32; n_nodes * width];
        if let Err(e) = forward_into(b, k, p, &layout, graph, &mut o) {
            err = Some(e);
        }
        test_loss(&o, &c)
    });
    match err {
        Some(e) => Err(e),
        None => Ok(bad),
    }
}

/// Wraps kernels for direct use in tests of safe plugin types.
pub fn compute<'a>(k: &'a KernelsRef<'_>) -> Compute<'a> {
    Compute::new(k.sabi_reborrow())
}

/// Read-only embeddings view over a buffer (tests).
pub fn emb(data: &[f32], n_users: usize, n_items: usize, width: usize) -> Emb<'_> {
    Emb {
        data,
        n_users,
        n_items,
        width,
    }
}

/// Writable embeddings view over a buffer (tests).
pub fn emb_buf(data: &mut [f32], n_users: usize, n_items: usize, width: usize) -> EmbBuf<'_> {
    EmbBuf {
        data,
        n_users,
        n_items,
        width,
    }
}

/// A constructor environment for `n_users` users and `n_items` items (tests).
pub fn env(n_users: usize, n_items: usize) -> Env<'static> {
    Env {
        n_users,
        n_items,
        data_dir: String::new(),
        seed: 0,
        profiles: None,
    }
}

/// [`env()`] with profile embeddings (tests of augmenters that read them).
pub fn env_with_profiles<'a>(
    n_users: usize,
    n_items: usize,
    profiles: Option<crate::sdk::Profiles<'a>>,
) -> Env<'a> {
    Env {
        profiles,
        ..env(n_users, n_items)
    }
}

/// The training view over `adj` (users then items) and its transpose `adj_t`, as the host
/// passes it while training (tests).
pub fn graph_view<'a>(n_users: usize, adj: CsrView<'a>, adj_t: CsrView<'a>) -> GraphView<'a> {
    GraphView {
        n_users,
        n_items: adj.n_rows.saturating_sub(n_users),
        adj,
        adj_t,
        view: 0,
        training: true,
    }
}

/// Inputs of an augmenter gradient check: one embedding buffer per view (users then
/// items, `width` columns) and a batch.
pub struct AugmenterCase<'a> {
    /// User rows of every view.
    pub n_users: usize,
    /// Item rows of every view.
    pub n_items: usize,
    /// Columns of every view.
    pub width: usize,
    /// The views' embeddings, view 0 first, each (n_users + n_items) × width.
    pub views: Vec<Vec<f32>>,
    /// The batch's users.
    pub users: &'a [u32],
    /// The batch's positive items.
    pub pos: &'a [u32],
    /// The batch's negative items.
    pub neg: &'a [u32],
}

/// The augmenter's own tables: flat parameters, their layout, and a gradient buffer.
struct OwnTables<'p> {
    params: &'p [f32],
    layout: &'p [TableLayout],
    grads: &'p mut [f32],
}

fn augmenter_loss(
    a: &mut AugmenterBox,
    k: &KernelsRef<'_>,
    case: &AugmenterCase<'_>,
    views: &[Vec<f32>],
    grads: &mut [Vec<f32>],
    own: OwnTables<'_>,
) -> Result<f64, String> {
    let (nu, ni, w) = (case.n_users, case.n_items, case.width);
    let refs: Vec<EmbRef<'_>> = views
        .iter()
        .map(|v| EmbRef {
            data: v.as_slice().into(),
            n_users: nu,
            n_items: ni,
            width: w,
        })
        .collect();
    let mut muts: Vec<EmbMut<'_>> = grads
        .iter_mut()
        .map(|g| EmbMut {
            data: g.as_mut_slice().into(),
            n_users: nu,
            n_items: ni,
            width: w,
        })
        .collect();
    let batch = BatchView {
        users: case.users.into(),
        pos: case.pos.into(),
        neg: case.neg.into(),
        epoch: 1,
        step: 1,
        seed: 1,
    };
    let terms = a
        .loss(
            k.sabi_reborrow(),
            batch,
            refs.as_slice().into(),
            muts.as_mut_slice().into(),
            Params::new(own.params, own.layout).to_abi(),
            Grads::new(own.grads, own.layout).to_abi(),
        )
        .into_result()
        .map_err(|e| e.into_string())?;
    Ok(terms.iter().map(|t| t.value).sum())
}

/// Checks an augmenter's gradients against central differences of its summed loss terms,
/// at `samples` entries of every view's embeddings and of its own tables (random values,
/// as [`random_params`]). Returns the mismatches as (input, entry) pairs: input `v` below
/// the number of views is view `v`; input `views.len()` is the augmenter's own tables,
/// flattened in declaration order.
pub fn check_augmenter_gradients(
    a: &mut AugmenterBox,
    k: &KernelsRef<'_>,
    case: &mut AugmenterCase<'_>,
    samples: usize,
    seed: u64,
) -> Result<Vec<(usize, Mismatch)>, String> {
    let layout = layout_of(&a.tables());
    let params = random_params(&layout, seed ^ 0xA11);
    let views = case.views.clone();
    // Gradients accumulate (`+=`), into the views' buffers and the tables': start both from
    // non-zero values so that a plugin that overwrites a buffer fails the check.
    let mut rng = SplitMix(seed ^ 0xACC);
    let view_start: Vec<Vec<f32>> = views.iter().map(|v| rng.noise(v.len())).collect();
    let mut grads = view_start.clone();
    let start = rng.noise(params.len());
    let mut table_grads = start.clone();
    let own = OwnTables {
        params: &params,
        layout: &layout,
        grads: &mut table_grads,
    };
    augmenter_loss(a, k, case, &views, &mut grads, own)?;
    for (g, s) in grads.iter_mut().zip(&view_start) {
        g.iter_mut().zip(s).for_each(|(g, s)| *g -= s);
    }
    table_grads
        .iter_mut()
        .zip(&start)
        .for_each(|(g, s)| *g -= s);
    // Input `v` < views.len() is a view; the last is the own tables.
    let mut inputs = views.clone();
    inputs.push(params.clone());
    grads.push(table_grads);
    let mut bad = Vec::new();
    for v in 0..inputs.len() {
        let idx = sample_indices(inputs[v].len(), samples, seed ^ v as u64);
        let mut x = inputs[v].clone();
        let mut err = None;
        let found = finite_difference_check(&mut x, &grads[v], &idx, 1e-2, 2e-3, 1e-4, |p| {
            let mut vs = views.clone();
            let mut ps = params.clone();
            if v < views.len() {
                vs[v].copy_from_slice(p);
            } else {
                ps.copy_from_slice(p);
            }
            let mut scratch: Vec<Vec<f32>> = vs.iter().map(|x| vec![0f32; x.len()]).collect();
            let mut scratch_tables = vec![0f32; ps.len()];
            let own = OwnTables {
                params: &ps,
                layout: &layout,
                grads: &mut scratch_tables,
            };
            augmenter_loss(a, k, case, &vs, &mut scratch, own).unwrap_or_else(|e| {
                err = Some(e);
                0.0
            })
        });
        if let Some(e) = err {
            return Err(e);
        }
        bad.extend(found.into_iter().map(|m| (v, m)));
    }
    Ok(bad)
}
