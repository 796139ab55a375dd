//! ProMax (SIGIR'26) as an augmenter: supervised distribution reshaping (SDR) of the
//! model's softmax over all items towards the profile-derived one, and self-supervised
//! reshaping (S2DR) between the training graph and the LLM-augmented graph. It works with
//! any backbone: it only sees final embeddings and returns their gradients.
//!
//! Follows the authors' code (BlueGhostYi/ProRec, `lightgcn_promax.py`) unless a
//! hyperparameter says otherwise; see [`PromaxHparams`].

use promax_kernels::pca::{reduce_profiles, ReduceOptions, Reduction};
use promax_plugin_api::prelude::*;
use promax_plugin_api::{InfoNceRequest, PairedNceRequest, SoftCeRequest, SoftmaxStatsRequest};
use serde::{Deserialize, Serialize};

/// ProMax hyperparameters (defaults: the published Amazon-Book settings).
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
#[schemars(crate = "promax_plugin_api::schemars")]
pub struct PromaxHparams {
    /// Supervised reshaping towards the profile softmax (needs [data.profiles]).
    pub sdr: bool,
    /// Weight of the SDR term (Amazon 1.5, Yelp/Steam 0.5).
    pub sdr_weight: f32,
    /// Self-supervised reshaping between the train and augmented graphs.
    pub s2dr: bool,
    /// Weight of the S2DR term (Amazon 0.05, Yelp/Steam 0.1).
    pub s2dr_weight: f32,
    /// Temperature of the model softmax and InfoNCE terms (0.2; Steam 0.5).
    pub tau: f32,
    /// Temperature of the profile (target) softmax (published 0.2).
    pub profile_tau: f32,
    /// PCA dimension of the profiles (published: the embedding size).
    pub profile_dim: usize,
    /// "separate" (published: a basis per table) or "joint" (shared basis).
    pub reduction: String,
    /// Scale PCA directions by 1/sqrt(eigenvalue) (published: true).
    pub whiten: bool,
    /// Augmented interactions for S2DR: in the dataset folder, else relative to the working
    /// directory.
    pub augmented: String,
    /// Guard in -ln(P + eps) of the user/item InfoNCE (reference: 1e-5).
    pub infonce_eps: f32,
    /// Floor of the entropy weight clamp(1 - H/ln N, floor, 1) (0.1).
    pub min_weight: f32,
}

impl Default for PromaxHparams {
    fn default() -> Self {
        PromaxHparams {
            sdr: true,
            sdr_weight: 1.5,
            s2dr: true,
            s2dr_weight: 0.05,
            tau: 0.2,
            profile_tau: 0.2,
            profile_dim: 32,
            reduction: "separate".into(),
            whiten: true,
            augmented: "augmented.tsv".into(),
            infonce_eps: 1e-5,
            min_weight: 0.1,
        }
    }
}

/// Reduced, unit-norm profile rows and the per-user constants of the target softmax.
struct Targets {
    dim: usize,
    users: Vec<f32>,
    items: Vec<f32>,
    /// Per user: log-normaliser of q_u and the entropy weight w_u (computed on first use,
    /// through the host's kernels, once per run: q_u never changes).
    stats: Option<(Vec<f32>, Vec<f32>)>,
}

/// The ProMax augmenter.
pub struct Promax {
    h: PromaxHparams,
    n_users: usize,
    n_items: usize,
    targets: Option<Targets>,
}

impl PluginMeta for Promax {
    const NAME: &'static str = "promax";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "ProMax: profile-guided supervised (SDR) and self-supervised (S2DR) distribution reshaping";
    type Hparams = PromaxHparams;
}

fn unit_rows(x: &mut [f32], dim: usize) {
    for row in x.chunks_exact_mut(dim) {
        let n = row.iter().map(|v| v * v).sum::<f32>().sqrt();
        if n > 0.0 {
            row.iter_mut().for_each(|v| *v /= n);
        }
    }
}

fn check_positive(name: &str, v: f32) -> PluginResult<()> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(format!("`{name}` = {v} must be a positive number"))
    }
}

impl Promax {
    fn build_targets(h: &PromaxHparams, env: &Env<'_>) -> PluginResult<Targets> {
        let p = env.profiles.ok_or(
            "`sdr` needs profile embeddings: set [data.profiles] (files or random_dim), \
             or turn the term off with sdr = false",
        )?;
        let mode = match h.reduction.as_str() {
            "separate" => Reduction::Separate,
            "joint" => Reduction::Joint,
            other => {
                return Err(format!(
                    "`reduction` = \"{other}\": expected \"separate\" or \"joint\""
                ))
            }
        };
        let opts = ReduceOptions {
            dim: h.profile_dim,
            mode,
            whiten: h.whiten,
        };
        let (mut users, mut items) = reduce_profiles(p.users, p.items, p.dim, &opts)
            .map_err(|e| format!("profile reduction (`profile_dim` = {}): {e}", h.profile_dim))?;
        unit_rows(&mut users, h.profile_dim);
        unit_rows(&mut items, h.profile_dim);
        Ok(Targets {
            dim: h.profile_dim,
            users,
            items,
            stats: None,
        })
    }

    /// Per-user target log-normalisers and entropy weights `clamp(1 − H/ln N, floor, 1)`.
    pub fn entropy_weights(&mut self, k: &Compute<'_>) -> PluginResult<Option<&[f32]>> {
        let (n_users, n_items, floor) = (self.n_users, self.n_items, self.h.min_weight);
        let profile_tau = self.h.profile_tau;
        let Some(t) = self.targets.as_mut() else {
            return Ok(None);
        };
        if t.stats.is_none() {
            let mut lse = vec![0f32; n_users];
            let mut entropy = vec![0f32; n_users];
            k.softmax_stats(
                SoftmaxStatsRequest {
                    queries: t.users.as_slice().into(),
                    keys: t.items.as_slice().into(),
                    dim: t.dim,
                    tau: profile_tau,
                },
                &mut lse,
                &mut entropy,
            )?;
            let ln_n = (n_items as f32).ln();
            let w = entropy
                .iter()
                .map(|h| (1.0 - h / ln_n).clamp(floor, 1.0))
                .collect();
            t.stats = Some((lse, w));
        }
        Ok(t.stats.as_ref().map(|(_, w)| w.as_slice()))
    }

    fn sdr(
        &mut self,
        k: &Compute<'_>,
        users: &[u32],
        v0: &Emb<'_>,
        d0: &mut EmbBuf<'_>,
    ) -> PluginResult<f64> {
        self.entropy_weights(k)?;
        let (weight, tau, profile_tau) = (self.h.sdr_weight, self.h.tau, self.h.profile_tau);
        let t = self.targets.as_ref().ok_or("sdr without profiles")?;
        let (lse_all, w_all) = t.stats.as_ref().ok_or("target statistics missing")?;
        let w = v0.width;
        let b = users.len();
        let u_emb = gather(users, |u| v0.user(u));
        let tu = gather(users, |u| &t.users[u * t.dim..(u + 1) * t.dim]);
        let lse: Vec<f32> = users.iter().map(|&u| lse_all[u as usize]).collect();
        // The reference averages w_u · CE_u over the batch's unique users.
        let weights: Vec<f32> = users
            .iter()
            .map(|&u| weight * w_all[u as usize] / b as f32)
            .collect();
        let mut du = vec![0f32; b * w];
        let items_start = v0.n_users * w;
        let loss = k.soft_ce_all_items(
            SoftCeRequest {
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
            },
            &mut du,
            &mut d0.data[items_start..],
        )?;
        scatter(users, &du, d0, Side::Users);
        Ok(loss)
    }
}

/// Rows `ids` of a table, stacked.
fn gather<'a>(ids: &[u32], row: impl Fn(usize) -> &'a [f32]) -> Vec<f32> {
    ids.iter()
        .flat_map(|&i| row(i as usize).iter().copied())
        .collect()
}

/// Adds row r of `d` into user or item `ids[r]` of a gradient buffer (repeats accumulate).
fn scatter(ids: &[u32], d: &[f32], buf: &mut EmbBuf<'_>, side: Side) {
    let w = buf.width;
    let first = match side {
        Side::Users => 0,
        Side::Items => buf.n_users,
    };
    for (&i, dr) in ids.iter().zip(d.chunks_exact(w)) {
        let r = first + i as usize;
        buf.data[r * w..(r + 1) * w]
            .iter_mut()
            .zip(dr)
            .for_each(|(t, s)| *t += s);
    }
}

fn sorted_unique(ids: &[u32]) -> Vec<u32> {
    let mut v = ids.to_vec();
    v.sort_unstable();
    v.dedup();
    v
}

/// Which rows of a view an InfoNCE side reads: users or items.
#[derive(Clone, Copy)]
enum Side {
    Users,
    Items,
}

fn rows<'a>(e: &Emb<'a>, side: Side, i: usize) -> &'a [f32] {
    match side {
        Side::Users => e.user(i),
        Side::Items => e.item(i),
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
    embs: &[Emb<'_>],
    d_embs: &mut [EmbBuf<'_>],
    (va, sa, ids_a): (usize, Side, &[u32]),
    (vb, sb, ids_b): (usize, Side, &[u32]),
    positives: Positives<'_>,
    (tau, weight): (f32, f32),
) -> PluginResult<f64> {
    let w = embs[va].width;
    let a = gather(ids_a, |i| rows(&embs[va], sa, i));
    let b = gather(ids_b, |i| rows(&embs[vb], sb, i));
    let mut da = vec![0f32; a.len()];
    let mut db = vec![0f32; b.len()];
    let loss = match positives {
        Positives::Aligned { eps } => k.info_nce(
            InfoNceRequest {
                a: a.as_slice().into(),
                b: b.as_slice().into(),
                dim: w,
                tau,
                eps,
                weight,
            },
            &mut da,
            &mut db,
        )?,
        Positives::Pairs { col_counts, pairs } => k.info_nce_pairs(
            PairedNceRequest {
                a: a.as_slice().into(),
                b: b.as_slice().into(),
                dim: w,
                col_counts: col_counts.into(),
                pairs: pairs.into(),
                tau,
                eps: 0.0,
                weight,
            },
            &mut da,
            &mut db,
        )?,
    };
    for (v, s, ids, d) in [(va, sa, ids_a, &da), (vb, sb, ids_b, &db)] {
        scatter(ids, d, &mut d_embs[v], s);
    }
    Ok(loss)
}

/// The batch's (user, positive) pairs as indices into the sorted unique `users` and
/// `items`, and how often each unique item occurs.
fn batch_pairs(
    batch: &BatchView<'_>,
    users: &[u32],
    items: &[u32],
) -> PluginResult<(Vec<u32>, Vec<u32>)> {
    let mut counts = vec![0u32; items.len()];
    let mut pairs = Vec::with_capacity(2 * batch.users.len());
    for (u, i) in batch.users.iter().zip(batch.pos.iter()) {
        let (Ok(r), Ok(c)) = (users.binary_search(u), items.binary_search(i)) else {
            return Err(format!("batch pair ({u}, {i}) missing from its unique ids"));
        };
        counts[c] += 1;
        pairs.extend([r as u32, c as u32]);
    }
    Ok((counts, pairs))
}

impl AugmenterImpl for Promax {
    fn new(h: PromaxHparams, env: &Env<'_>) -> PluginResult<Self> {
        check_positive("tau", h.tau)?;
        check_positive("profile_tau", h.profile_tau)?;
        if !(h.sdr_weight.is_finite() && h.sdr_weight >= 0.0) {
            return Err(format!("`sdr_weight` = {} must be >= 0", h.sdr_weight));
        }
        if !(h.s2dr_weight.is_finite() && h.s2dr_weight >= 0.0) {
            return Err(format!("`s2dr_weight` = {} must be >= 0", h.s2dr_weight));
        }
        if !(0.0..=1.0).contains(&h.min_weight) {
            return Err(format!("`min_weight` = {} must be in [0, 1]", h.min_weight));
        }
        if !(h.infonce_eps >= 0.0 && h.infonce_eps.is_finite()) {
            return Err(format!("`infonce_eps` = {} must be >= 0", h.infonce_eps));
        }
        if h.s2dr && h.augmented.is_empty() {
            return Err("`augmented` is empty but `s2dr` is on".into());
        }
        let targets = if h.sdr {
            Some(Self::build_targets(&h, env)?)
        } else {
            None
        };
        Ok(Promax {
            n_users: env.n_users,
            n_items: env.n_items,
            targets,
            h,
        })
    }

    fn views(&self) -> Vec<ViewSpec> {
        if self.h.s2dr {
            vec![ViewSpec {
                name: "augmented".into(),
                interactions: self.h.augmented.as_str().into(),
            }]
        } else {
            Vec::new()
        }
    }

    fn loss(
        &mut self,
        k: &Compute<'_>,
        batch: &BatchView<'_>,
        embs: &[Emb<'_>],
        d_embs: &mut [EmbBuf<'_>],
        _params: Params<'_>,
        _grads: Grads<'_>,
    ) -> PluginResult<Vec<LossTerm>> {
        let users = sorted_unique(&batch.users);
        let mut terms = Vec::new();
        if self.h.sdr {
            let loss = self.sdr(k, &users, &embs[0], &mut d_embs[0])?;
            terms.push(term("sdr", loss));
        }
        if self.h.s2dr {
            let (tau, eps, weight) = (self.h.tau, self.h.infonce_eps, self.h.s2dr_weight);
            let items = sorted_unique(&batch.pos);
            // Means over rows, as the reference (InfoNCE: mean; cross entropy: mean).
            let mean = |n: usize| weight / n.max(1) as f32;
            let aligned = Positives::Aligned { eps };
            let mut s2dr = info_nce_term(
                k,
                embs,
                d_embs,
                (0, Side::Users, &users),
                (1, Side::Users, &users),
                aligned,
                (tau, mean(users.len())),
            )?;
            s2dr += info_nce_term(
                k,
                embs,
                d_embs,
                (0, Side::Items, &items),
                (1, Side::Items, &items),
                Positives::Aligned { eps },
                (tau, mean(items.len())),
            )?;
            // Cross term: 0.5·(CE(u1·i2ᵀ/τ, diag) + CE(u2·i1ᵀ/τ, diag)) over the batch's
            // pairs, computed over unique users × unique items with item multiplicities.
            let (col_counts, pairs) = batch_pairs(batch, &users, &items)?;
            for (vu, vi) in [(0, 1), (1, 0)] {
                s2dr += info_nce_term(
                    k,
                    embs,
                    d_embs,
                    (vu, Side::Users, &users),
                    (vi, Side::Items, &items),
                    Positives::Pairs {
                        col_counts: &col_counts,
                        pairs: &pairs,
                    },
                    (tau, 0.5 * mean(batch.users.len())),
                )?;
            }
            terms.push(term("s2dr", s2dr));
        }
        Ok(terms)
    }
}

promax_plugin_api::declare_augmenter!(Promax);

#[cfg(test)]
mod tests {
    use super::*;
    use promax_kernels::CpuKernels;
    use promax_plugin_api::sdk::{augmenter_box, parse_hparams, Profiles};
    use promax_plugin_api::testing::{
        check_augmenter_gradients, compute, env_with_profiles, AugmenterCase, SplitMix,
    };

    fn promax(
        text: &str,
        nu: usize,
        ni: usize,
        profiles: Option<Profiles<'_>>,
    ) -> PluginResult<Promax> {
        Promax::new(parse_hparams(text)?, &env_with_profiles(nu, ni, profiles))
    }

    #[test]
    fn gradients_match_finite_differences() {
        let (nu, ni, w, pd) = (6, 9, 4, 5);
        let mut rng = SplitMix(5);
        let (pu, pi) = (rng.noise(nu * pd), rng.noise(ni * pd));
        let profiles = Profiles {
            dim: pd,
            users: &pu,
            items: &pi,
        };
        // Large weights so that each term's gradient stands well above f32 rounding.
        for text in [
            "sdr_weight = 20.0\ns2dr = false\nprofile_dim = 3\nreduction = \"joint\"",
            "sdr = false\ns2dr_weight = 20.0",
            "sdr_weight = 20.0\ns2dr_weight = 20.0\nprofile_dim = 3\nprofile_tau = 0.5",
        ] {
            let p = promax(text, nu, ni, Some(profiles)).expect(text);
            let mut a = augmenter_box(p);
            let n_views = 1 + a.views().len();
            let mut case = AugmenterCase {
                n_users: nu,
                n_items: ni,
                width: w,
                // Every loss here is a function of cosines: rows of norm 2 keep the
                // finite-difference step (1e-2) far inside the region where it is smooth.
                views: (0..n_views)
                    .map(|_| {
                        let mut v = rng.noise((nu + ni) * w);
                        unit_rows(&mut v, w);
                        v.iter_mut().for_each(|x| *x *= 2.0);
                        v
                    })
                    .collect(),
                users: &[0, 2, 2, 5, 1],
                pos: &[1, 4, 4, 8, 0],
                neg: &[3, 3, 5, 2, 7],
            };
            let bad = check_augmenter_gradients(&mut a, &CpuKernels.as_ref(), &mut case, 400, 9)
                .expect("runs");
            assert!(bad.is_empty(), "{text}: {bad:?}");
        }
    }

    #[test]
    fn noise_profiles_put_every_entropy_weight_at_the_floor() {
        let (nu, ni, pd) = (50, 300, 64);
        let mut rng = SplitMix(8);
        let (pu, pi) = (rng.noise(nu * pd), rng.noise(ni * pd));
        let profiles = Profiles {
            dim: pd,
            users: &pu,
            items: &pi,
        };
        let mut p = promax("s2dr = false", nu, ni, Some(profiles)).unwrap();
        let kernels = CpuKernels;
        let k = kernels.as_ref();
        let w = p.entropy_weights(&compute(&k)).unwrap().unwrap().to_vec();
        assert_eq!(w.len(), nu);
        assert!(w.iter().all(|&x| x == 0.1), "{w:?}");
        // Peaked targets (a cold profile temperature) lift weights off the floor.
        let mut p = promax("s2dr = false\nprofile_tau = 0.01", nu, ni, Some(profiles)).unwrap();
        let w = p.entropy_weights(&compute(&k)).unwrap().unwrap().to_vec();
        assert!(w.iter().any(|&x| x > 0.1), "{w:?}");
    }

    #[test]
    fn constructor_errors_name_the_problem() {
        let err = |t: &str| promax(t, 3, 4, None).err().unwrap();
        assert!(err("").contains("[data.profiles]"));
        assert!(err("sdr = false\ntau = 0").contains("`tau`"));
        assert!(err("sdr = false\nsdrweight = 1").contains("did you mean `sdr_weight`"));
        assert!(err("sdr = false\ns2dr_weight = -1").contains("`s2dr_weight`"));
        let (pu, pi) = (vec![0.5f32; 3 * 4], vec![0.25f32; 4 * 4]);
        let prof = Profiles {
            dim: 4,
            users: &pu,
            items: &pi,
        };
        let e = promax("reduction = \"both\"", 3, 4, Some(prof))
            .err()
            .unwrap();
        assert!(e.contains("`reduction`"), "{e}");
        let p = promax("sdr = false", 3, 4, None).unwrap();
        assert_eq!(p.views().len(), 1);
        let p = promax("sdr = false\ns2dr = false", 3, 4, None).unwrap();
        assert!(p.views().is_empty());
    }
}
