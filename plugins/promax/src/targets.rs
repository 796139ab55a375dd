//! SDR's targets: the profiles reduced by PCA (through the host's kernel table), rows
//! made unit-norm, and the per-user constants of the target softmax `q_u`.
//!
//! The reduction runs on the first loss call, not in the constructor: a plugin constructor
//! receives no kernel table (`PluginMod::new_augmenter` takes hyperparameters and the
//! environment only), and giving it one would change the root module's layout, which
//! every plugin library built before would fail. The first loss is the first call with
//! kernels, and `q_u` never changes after it, so the targets are computed exactly once.

use promax_plugin_api::prelude::*;
use promax_plugin_api::sdk::rows::unit_rows;
use promax_plugin_api::sdk::Profiles;
use promax_plugin_api::{ReduceRequest, Reduction, SoftmaxStatsRequest};

/// How the profiles become targets (from the hyperparameters).
#[derive(Clone, Copy, Debug)]
pub(crate) struct TargetSpec {
    pub(crate) dim: usize,
    pub(crate) mode: Reduction,
    pub(crate) whiten: bool,
    pub(crate) profile_tau: f32,
    /// Floor of the entropy weight.
    pub(crate) min_weight: f32,
}

/// SDR's targets, raw until the first loss call prepares them.
pub(crate) enum Targets {
    /// Profiles copied at construction (the host's are borrowed for that call only).
    Raw {
        spec: TargetSpec,
        in_dim: usize,
        users: Vec<f32>,
        items: Vec<f32>,
    },
    Ready(Ready),
}

/// Reduced unit-norm profile rows and the per-user constants of `q_u`.
pub(crate) struct Ready {
    pub(crate) dim: usize,
    pub(crate) users: Vec<f32>,
    pub(crate) items: Vec<f32>,
    /// Per user: the log-normaliser of `q_u`.
    pub(crate) lse: Vec<f32>,
    /// Per user: the entropy weight `clamp(1 − H(q_u)/ln N, floor, 1)`.
    pub(crate) weights: Vec<f32>,
}

impl Targets {
    /// Keeps a copy of the profiles for [`Targets::ready`].
    pub(crate) fn new(spec: TargetSpec, p: &Profiles<'_>) -> Self {
        Targets::Raw {
            spec,
            in_dim: p.dim,
            users: p.users.to_vec(),
            items: p.items.to_vec(),
        }
    }

    /// The prepared targets, computed on the first call.
    pub(crate) fn ready(&mut self, k: &Compute<'_>) -> PluginResult<&Ready> {
        if let Targets::Raw {
            spec,
            in_dim,
            users,
            items,
        } = self
        {
            *self = Targets::Ready(prepare(k, spec, *in_dim, users, items)?);
        }
        match self {
            Targets::Ready(r) => Ok(r),
            Targets::Raw { .. } => Err("the profile targets were not prepared".into()),
        }
    }
}

fn prepare(
    k: &Compute<'_>,
    spec: &TargetSpec,
    in_dim: usize,
    raw_users: &[f32],
    raw_items: &[f32],
) -> PluginResult<Ready> {
    let dim = spec.dim;
    let rows = |t: &[f32]| t.len() / in_dim;
    let (n_users, n_items) = (rows(raw_users), rows(raw_items));
    let mut users = vec![0f32; n_users * dim];
    let mut items = vec![0f32; n_items * dim];
    let req = ReduceRequest {
        users: raw_users.into(),
        items: raw_items.into(),
        in_dim,
        dim,
        mode: spec.mode,
        whiten: spec.whiten,
    };
    k.reduce_profiles(req, &mut users, &mut items)
        .map_err(|e| format!("profile reduction (`profile_dim` = {dim}): {e}"))?;
    unit_rows(&mut users, dim);
    unit_rows(&mut items, dim);
    let mut lse = vec![0f32; n_users];
    let mut entropy = vec![0f32; n_users];
    let stats = SoftmaxStatsRequest {
        queries: users.as_slice().into(),
        keys: items.as_slice().into(),
        dim,
        tau: spec.profile_tau,
    };
    k.softmax_stats(stats, &mut lse, &mut entropy)?;
    let ln_n = (n_items as f32).ln();
    let weights = entropy
        .iter()
        .map(|h| (1.0 - h / ln_n).clamp(spec.min_weight, 1.0))
        .collect();
    Ok(Ready {
        dim,
        users,
        items,
        lse,
        weights,
    })
}
