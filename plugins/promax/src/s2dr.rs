//! S2DR, ProMax's self-supervised reshaping between the training graph (view 0) and the
//! LLM-augmented graph (view 1): InfoNCE between the two views' users, between their
//! items, and across (users of one view against items of the other, over the batch's
//! pairs).

use promax_plugin_api::prelude::*;
use promax_plugin_api::sdk::rows::{gather, scatter_add, Distinct};
use promax_plugin_api::{InfoNceRequest, PairedNceRequest};

/// Which rows of a view an InfoNCE side reads: users or items.
#[derive(Clone, Copy)]
enum Side {
    Users,
    Items,
}

fn rows<'e>(e: &Emb<'e>, side: Side) -> &'e [f32] {
    match side {
        Side::Users => e.users(),
        Side::Items => e.items(),
    }
}

fn rows_mut<'b>(e: &'b mut EmbBuf<'_>, side: Side) -> &'b mut [f32] {
    match side {
        Side::Users => e.users_mut(),
        Side::Items => e.items_mut(),
    }
}

/// How a contrastive term picks its positives.
enum Positives<'a> {
    /// Row r's positive is column r ([`InfoNceRequest`]), with the reference's log guard.
    Aligned { eps: f32 },
    /// Explicit (row, column) pairs and column multiplicities ([`PairedNceRequest`]).
    Pairs {
        col_counts: &'a [u32],
        pairs: &'a [u32],
    },
}

/// One InfoNCE term between `(view_a, side_a)[ids_a]` and `(view_b, side_b)[ids_b]`,
/// with gradients scattered back into both views.
fn info_nce_term(
    k: &Compute<'_>,
    (embs, d_embs): (&[Emb<'_>], &mut [EmbBuf<'_>]),
    (va, sa, ids_a): (usize, Side, &[u32]),
    (vb, sb, ids_b): (usize, Side, &[u32]),
    positives: Positives<'_>,
    (tau, weight): (f32, f32),
) -> PluginResult<f64> {
    let w = embs[va].width;
    let a = gather(rows(&embs[va], sa), w, ids_a);
    let b = gather(rows(&embs[vb], sb), w, ids_b);
    let mut da = vec![0f32; a.len()];
    let mut db = vec![0f32; b.len()];
    let (a, b) = (a.as_slice().into(), b.as_slice().into());
    let loss = match positives {
        Positives::Aligned { eps } => {
            let req = InfoNceRequest {
                a,
                b,
                dim: w,
                tau,
                eps,
                weight,
            };
            k.info_nce(req, &mut da, &mut db)?
        }
        Positives::Pairs { col_counts, pairs } => {
            let req = PairedNceRequest {
                a,
                b,
                dim: w,
                col_counts: col_counts.into(),
                pairs: pairs.into(),
                tau,
                eps: 0.0,
                weight,
            };
            k.info_nce_pairs(req, &mut da, &mut db)?
        }
    };
    for (v, s, ids, d) in [(va, sa, ids_a, &da), (vb, sb, ids_b, &db)] {
        scatter_add(rows_mut(&mut d_embs[v], s), w, ids, d);
    }
    Ok(loss)
}

/// The S2DR loss of a batch over its distinct `users` and `items` (the positives), with
/// gradients into both views: `(tau, eps, weight)` are the temperature, the log guard of
/// the aligned terms, and the term's weight.
pub(crate) fn s2dr(
    k: &Compute<'_>,
    views: (&[Emb<'_>], &mut [EmbBuf<'_>]),
    (users, items): (&Distinct, &Distinct),
    (tau, eps, weight): (f32, f32, f32),
) -> PluginResult<f64> {
    let (embs, d_embs) = views;
    // Means over rows, as the reference (InfoNCE: mean; cross entropy: mean).
    let mean = |n: usize| weight / n.max(1) as f32;
    let (u, i) = (&users.ids[..], &items.ids[..]);
    let aligned = Positives::Aligned { eps };
    let mut loss = info_nce_term(
        k,
        (embs, &mut *d_embs),
        (0, Side::Users, u),
        (1, Side::Users, u),
        aligned,
        (tau, mean(u.len())),
    )?;
    loss += info_nce_term(
        k,
        (embs, &mut *d_embs),
        (0, Side::Items, i),
        (1, Side::Items, i),
        Positives::Aligned { eps },
        (tau, mean(i.len())),
    )?;
    // Cross term: 0.5·(CE(u1·i2ᵀ/τ, diag) + CE(u2·i1ᵀ/τ, diag)) over the batch's pairs,
    // computed over unique users × unique items with item multiplicities.
    let col_counts = items.counts();
    let pairs: Vec<u32> = (users.slots.iter().zip(&items.slots))
        .flat_map(|(&r, &c)| [r, c])
        .collect();
    let batch_rows = users.slots.len();
    for (vu, vi) in [(0, 1), (1, 0)] {
        loss += info_nce_term(
            k,
            (embs, &mut *d_embs),
            (vu, Side::Users, u),
            (vi, Side::Items, i),
            Positives::Pairs {
                col_counts: &col_counts,
                pairs: &pairs,
            },
            (tau, 0.5 * mean(batch_rows)),
        )?;
    }
    Ok(loss)
}
