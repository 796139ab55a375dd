//! RLMRec-Con's alignment terms: InfoNCE over cosines between the batch's embeddings and
//! the MLP-mapped profiles, gradients into both.
//!
//! Repeated ids in a batch are identical rows (and identical columns), so every term runs
//! over the batch's distinct ids, a repeat counted as a repeated pair (and a column
//! multiplicity): the reference's loss and gradients, without its batch × batch products.

use promax_plugin_api::prelude::*;
use promax_plugin_api::sdk::rows::{gather, scatter_add, Distinct};
use promax_plugin_api::PairedNceRequest;

use promax_plugin_api::sdk::mlp::Mlp;

/// What every term of one batch shares.
pub(crate) struct Terms<'a, 'k> {
    pub(crate) k: &'a Compute<'k>,
    pub(crate) mlp: &'a Mlp,
    pub(crate) params: Params<'a>,
    /// (tau, weight / B).
    pub(crate) scale: (f32, f32),
}

impl Terms<'_, '_> {
    /// One InfoNCE term `Σ_pairs −ln softmax_c(cos(a_r, b_c)/τ)`, with columns counted
    /// `col_counts` times (empty: once). Returns the loss and the gradients of `a` and `b`.
    fn nce(
        &self,
        (a, b, dim): (&[f32], &[f32], usize),
        col_counts: &[u32],
        pairs: &[u32],
    ) -> PluginResult<(f64, Vec<f32>, Vec<f32>)> {
        let (tau, weight) = self.scale;
        let (mut da, mut db) = (vec![0f32; a.len()], vec![0f32; b.len()]);
        let req = PairedNceRequest {
            a: a.into(),
            b: b.into(),
            dim,
            col_counts: col_counts.into(),
            pairs: pairs.into(),
            tau,
            eps: 0.0,
            weight,
        };
        let loss = self.k.info_nce_pairs(req, &mut da, &mut db)?;
        Ok((loss, da, db))
    }

    /// Users: each batch user against every user's mapped profile, its own the positive.
    pub(crate) fn users(
        &self,
        profiles: &[f32],
        batch_users: &[u32],
        (emb, d_emb): (&Emb<'_>, &mut EmbBuf<'_>),
        grads: &mut Grads<'_>,
    ) -> PluginResult<f64> {
        let w = emb.width;
        let (mapped, tape) = self.mlp.forward(self.k, &self.params, profiles)?;
        let users = Distinct::of(batch_users);
        let pairs: Vec<u32> = (users.slots.iter().zip(batch_users))
            .flat_map(|(&r, &u)| [r, u])
            .collect();
        let a = gather(emb.users(), w, &users.ids);
        let (loss, da, d_mapped) = self.nce((&a, &mapped, w), &[], &pairs)?;
        scatter_add(d_emb.users_mut(), w, &users.ids, &da);
        (self.mlp).backward(
            self.k,
            &self.params,
            profiles,
            &tape,
            &d_mapped,
            grads,
            None,
        )?;
        Ok(loss)
    }

    /// Items: the positives, then the negatives, each against the mapped profiles of the
    /// items in the same slots; each distinct item of the batch goes through the MLP once.
    /// Returns the two terms.
    pub(crate) fn items(
        &self,
        profiles: &[f32],
        batch: &BatchView<'_>,
        (emb, d_emb): (&Emb<'_>, &mut EmbBuf<'_>),
        grads: &mut Grads<'_>,
    ) -> PluginResult<[f64; 2]> {
        let (w, d_in) = (emb.width, self.mlp.d_in);
        let both = Distinct::of(&[&batch.pos[..], &batch.neg[..]].concat());
        let x = gather(profiles, d_in, &both.ids);
        let (mapped, tape) = self.mlp.forward(self.k, &self.params, &x)?;
        let mut d_mapped = vec![0f32; mapped.len()];
        let (pos_at, neg_at) = both.slots.split_at(batch.pos.len());
        let mut losses = [0.0; 2];
        for (loss, (slots, at_slots)) in losses
            .iter_mut()
            .zip([(&batch.pos[..], pos_at), (&batch.neg[..], neg_at)])
        {
            let items = Distinct::of(slots);
            let pairs: Vec<u32> = items.slots.iter().flat_map(|&r| [r, r]).collect();
            // Row r of this term's mapped profiles: its item's row among the batch's items.
            let mut at = vec![0u32; items.ids.len()];
            (items.slots.iter().zip(at_slots)).for_each(|(&r, &c)| at[r as usize] = c);
            let a = gather(emb.items(), w, &items.ids);
            let b = gather(&mapped, w, &at);
            let (l, da, db) = self.nce((&a, &b, w), &items.counts(), &pairs)?;
            *loss = l;
            scatter_add(d_emb.items_mut(), w, &items.ids, &da);
            scatter_add(&mut d_mapped, w, &at, &db);
        }
        self.mlp
            .backward(self.k, &self.params, &x, &tape, &d_mapped, grads, None)?;
        Ok(losses)
    }
}
