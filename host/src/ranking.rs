//! Full ranking from final embeddings: each given user's row scored against every item by
//! inner product, the user's own items masked, the top K kept (ties to the lower id),
//! through the kernel table. `promax recommend` and the `cf` augmentation source share it.

use promax_kernels::{CpuKernels, CsrMatrix};
use promax_plugin_api::sdk::Compute;
use promax_plugin_api::TopkRequest;

/// The top `k` items of each of `users` (rows of `user_emb`, width `width`) against every
/// row of `item_emb`, best first, without the items `own(u)` names; a user with fewer than
/// `k` rankable items gets fewer. Ids must be in range (the callers check them).
pub fn top_unseen<'a>(
    user_emb: &[f32],
    item_emb: &[f32],
    width: usize,
    users: &[u32],
    own: &dyn Fn(u32) -> &'a [u32],
    k: usize,
) -> Result<Vec<Vec<(u32, f32)>>, String> {
    let w = width;
    let n_items = item_emb.len() / w.max(1);
    let queries: Vec<f32> = users
        .iter()
        .flat_map(|&u| {
            user_emb[u as usize * w..(u as usize + 1) * w]
                .iter()
                .copied()
        })
        .collect();
    let triplets: Vec<(u32, u32, f32)> = users
        .iter()
        .enumerate()
        .flat_map(|(r, &u)| own(u).iter().map(move |&i| (r as u32, i, 1.0)))
        .collect();
    let exclude = CsrMatrix::from_triplets(users.len(), n_items, &triplets);
    let (mut items, mut scores) = (vec![0u32; users.len() * k], vec![0f32; users.len() * k]);
    Compute::new(CpuKernels.as_ref()).score_topk(
        TopkRequest {
            queries: queries.as_slice().into(),
            items: item_emb.into(),
            dim: w,
            exclude: exclude.view(),
            k,
        },
        &mut items,
        &mut scores,
    )?;
    Ok(items
        .chunks_exact(k)
        .zip(scores.chunks_exact(k))
        .map(|(is, ss)| {
            is.iter()
                .zip(ss)
                .filter(|(&i, _)| i != u32::MAX)
                .map(|(&i, &s)| (i, s))
                .collect()
        })
        .collect())
}
