//! SDR, ProMax's supervised reshaping: the model's softmax over all items, for each of the
//! batch's distinct users, pulled towards the profile-derived target softmax, weighted by
//! how peaked the target is.

use promax_plugin_api::prelude::*;
use promax_plugin_api::sdk::rows::{gather, scatter_add};
use promax_plugin_api::SoftCeRequest;

use crate::targets::Ready;

/// The SDR loss over the distinct batch `users` on view 0, gradients into `d0`;
/// `(weight, tau, profile_tau)` are the term's weight and the two temperatures.
pub(crate) fn sdr(
    k: &Compute<'_>,
    t: &Ready,
    users: &[u32],
    (v0, d0): (&Emb<'_>, &mut EmbBuf<'_>),
    (weight, tau, profile_tau): (f32, f32, f32),
) -> PluginResult<f64> {
    let w = v0.width;
    let b = users.len();
    let u_emb = gather(v0.users(), w, users);
    let tu = gather(&t.users, t.dim, users);
    let lse: Vec<f32> = users.iter().map(|&u| t.lse[u as usize]).collect();
    // The reference averages w_u · CE_u over the batch's unique users.
    let weights: Vec<f32> = users
        .iter()
        .map(|&u| weight * t.weights[u as usize] / b as f32)
        .collect();
    let mut du = vec![0f32; b * w];
    let req = SoftCeRequest {
        users: u_emb.as_slice().into(),
        items: v0.items().into(),
        dim: w,
        target_users: tu.as_slice().into(),
        target_items: t.items.as_slice().into(),
        target_dim: t.dim,
        target_lse: lse.as_slice().into(),
        weights: weights.as_slice().into(),
        tau,
        target_tau: profile_tau,
    };
    let loss = k.soft_ce_all_items(req, &mut du, d0.items_mut())?;
    scatter_add(d0.users_mut(), w, users, &du);
    Ok(loss)
}
