//! RLMRec-Con (Ren et al., WWW'24), the contrastive variant, as an augmenter: a trainable
//! MLP maps every profile embedding into the model's space, and InfoNCE over cosines
//! pulls each batch user (positive item, negative item) towards its own mapped profile.
//! It sees only final embeddings, so it composes with any backbone.
//!
//! Follows the authors' code (HKUDS/RLMRec, `lightgcn_plus.py`): with
//! `InfoNCE(a, b, all) = Σ_rows [ −cos(a, b)/τ + ln Σ_all exp(cos(a, all)/τ) ]`,
//! `L = weight · ( InfoNCE(u, mlp(P_u), mlp(P_all users)) + InfoNCE(pos, mlp(P_pos), mlp(P_pos))
//! + InfoNCE(neg, mlp(P_neg), mlp(P_neg)) ) / B`, the MLP
//! `Linear(D, (D + d)/2) → LeakyReLU(0.01) → Linear(d)` applied to the raw profiles.

mod loss;

use promax_plugin_api::prelude::*;
use serde::{Deserialize, Serialize};

use loss::Terms;
use promax_plugin_api::sdk::mlp::Mlp;

/// RLMRec-Con hyperparameters (defaults: the published Amazon-Book / Yelp settings).
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
#[schemars(crate = "promax_plugin_api::schemars")]
pub struct RlmrecConHparams {
    /// Weight of the alignment term, kd_weight (Amazon/Yelp 1e-2, Steam 1e-3).
    pub weight: f32,
    /// InfoNCE temperature, kd_temperature (Amazon/Yelp 0.2, Steam 0.1).
    pub tau: f32,
    /// The backbone's embedding width the MLP maps into (LR-GCCF: dim·(layers+1)).
    pub width: usize,
    /// Hidden width of the MLP; 0 = (profile dim + width) / 2, as the reference.
    pub hidden: usize,
}

impl Default for RlmrecConHparams {
    fn default() -> Self {
        RlmrecConHparams {
            weight: 1e-2,
            tau: 0.2,
            width: 32,
            hidden: 0,
        }
    }
}

/// The RLMRec-Con augmenter.
pub struct RlmrecCon {
    h: RlmrecConHparams,
    mlp: Mlp,
    /// Raw profile embeddings (copied: the host's are borrowed for construction only).
    users: Vec<f32>,
    items: Vec<f32>,
}

impl PluginMeta for RlmrecCon {
    const NAME: &'static str = "rlmrec-con";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "RLMRec-Con: contrastive alignment of embeddings with MLP-mapped LLM profile embeddings";
    type Hparams = RlmrecConHparams;
}

impl AugmenterImpl for RlmrecCon {
    fn new(h: RlmrecConHparams, env: &Env<'_>) -> PluginResult<Self> {
        if !(h.tau.is_finite() && h.tau > 0.0) {
            return Err(format!("`tau` = {} must be a positive number", h.tau));
        }
        if !(h.weight.is_finite() && h.weight >= 0.0) {
            return Err(format!(
                "`weight` = {} must be a finite number >= 0",
                h.weight
            ));
        }
        if h.width == 0 {
            return Err("`width` must be the backbone's embedding width, not 0".into());
        }
        let p = env.profiles.ok_or(
            "rlmrec-con needs profile embeddings: set [data.profiles] (users/items .npy files)",
        )?;
        let hidden = if h.hidden == 0 {
            (p.dim + h.width) / 2
        } else {
            h.hidden
        };
        Ok(RlmrecCon {
            mlp: Mlp {
                d_in: p.dim,
                hidden,
                d_out: h.width,
                first: 0,
            },
            users: p.users.to_vec(),
            items: p.items.to_vec(),
            h,
        })
    }

    fn tables(&self) -> Vec<TableSpec> {
        self.mlp.tables()
    }

    fn loss(
        &mut self,
        k: &Compute<'_>,
        batch: &BatchView<'_>,
        embs: &[Emb<'_>],
        d_embs: &mut [EmbBuf<'_>],
        params: Params<'_>,
        mut grads: Grads<'_>,
    ) -> PluginResult<Vec<LossTerm>> {
        let (emb, d_emb) = (&embs[0], &mut d_embs[0]);
        if emb.width != self.mlp.d_out {
            return Err(format!(
                "`width` = {} but the backbone's embeddings are {} wide: set \
                 [plugins.rlmrec-con] width = {}",
                self.mlp.d_out, emb.width, emb.width
            ));
        }
        if self.h.weight == 0.0 {
            return Ok(vec![term("kd", 0.0)]);
        }
        let terms = Terms {
            k,
            mlp: &self.mlp,
            params,
            scale: (self.h.tau, self.h.weight / batch.users.len().max(1) as f32),
        };
        let users = terms.users(&self.users, &batch.users, (emb, d_emb), &mut grads)?;
        let [pos, neg] = terms.items(&self.items, batch, (emb, d_emb), &mut grads)?;
        Ok(vec![term("kd", users + pos + neg)])
    }
}

promax_plugin_api::declare_augmenter!(RlmrecCon);

#[cfg(test)]
mod tests {
    use super::*;
    use promax_plugin_api::sdk::{augmenter_box, parse_hparams, Profiles};
    use promax_plugin_api::testing::mlp_f64;
    use promax_plugin_api::testing::{
        check_augmenter_gradients, compute, env_with_profiles, layout_of, random_params,
        AugmenterCase, ReferenceKernels, SplitMix,
    };

    fn con(
        text: &str,
        nu: usize,
        ni: usize,
        prof: Option<Profiles<'_>>,
    ) -> PluginResult<RlmrecCon> {
        RlmrecCon::new(parse_hparams(text)?, &env_with_profiles(nu, ni, prof))
    }

    #[test]
    fn gradients_match_finite_differences_for_embeddings_and_the_mlp() {
        let (nu, ni, w, pd) = (6, 9, 4, 5);
        let mut rng = SplitMix(3);
        let (pu, pi) = (rng.noise(nu * pd), rng.noise(ni * pd));
        let prof = Profiles {
            dim: pd,
            users: &pu,
            items: &pi,
        };
        // A large weight so that the gradients stand well above f32 rounding, and a warm
        // temperature: at 0.2 the loss curves enough over the 1e-2 difference step to miss
        // by ~1%, at a batch item shared by the positive and negative slots.
        let p = con(
            "weight = 30.0\ntau = 1.0\nwidth = 4\nhidden = 3",
            nu,
            ni,
            Some(prof),
        )
        .unwrap();
        let mut a = augmenter_box(p);
        let mut case = AugmenterCase {
            n_users: nu,
            n_items: ni,
            width: w,
            views: vec![rng.noise((nu + ni) * w).iter().map(|v| 2.0 * v).collect()],
            users: &[0, 2, 2, 5, 1],
            pos: &[1, 4, 4, 8, 0],
            neg: &[3, 3, 4, 2, 7], // item 4 also a positive: shares its MLP row
        };
        let bad = check_augmenter_gradients(&mut a, &ReferenceKernels.as_ref(), &mut case, 300, 4)
            .expect("runs");
        assert!(bad.is_empty(), "{bad:?}");
    }

    /// The reference loss, written out per row in f64 from its definition.
    fn reference_loss(
        h: &RlmrecConHparams,
        mapped_users: &[f32],
        mapped_items: &dyn Fn(u32) -> Vec<f32>,
        emb: &[f32],
        nu: usize,
        w: usize,
        batch: (&[u32], &[u32], &[u32]),
    ) -> f64 {
        let cos = |a: &[f32], b: &[f32]| {
            let dot: f64 = a
                .iter()
                .zip(b)
                .map(|(x, y)| f64::from(*x) * f64::from(*y))
                .sum();
            let n = |v: &[f32]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
            dot / (n(a) * n(b))
        };
        let tau = f64::from(h.tau);
        let infonce = |a: &[&[f32]], b: &[Vec<f32>], all: &[Vec<f32>]| -> f64 {
            a.iter()
                .zip(b)
                .map(|(a, b)| {
                    let lse = all
                        .iter()
                        .map(|c| (cos(a, c) / tau).exp())
                        .sum::<f64>()
                        .ln();
                    -cos(a, b) / tau + lse
                })
                .sum()
        };
        let (users, pos, neg) = batch;
        let row = |r: usize| &emb[r * w..(r + 1) * w];
        let all_users: Vec<Vec<f32>> = mapped_users.chunks(w).map(<[f32]>::to_vec).collect();
        let ua: Vec<&[f32]> = users.iter().map(|&u| row(u as usize)).collect();
        let ub: Vec<Vec<f32>> = users
            .iter()
            .map(|&u| all_users[u as usize].clone())
            .collect();
        let mut total = infonce(&ua, &ub, &all_users);
        for ids in [pos, neg] {
            let a: Vec<&[f32]> = ids.iter().map(|&i| row(nu + i as usize)).collect();
            let b: Vec<Vec<f32>> = ids.iter().map(|&i| mapped_items(i)).collect();
            total += infonce(&a, &b, &b);
        }
        f64::from(h.weight) * total / users.len() as f64
    }

    #[test]
    fn loss_matches_the_reference_formula() {
        let (nu, ni, w, pd) = (7, 11, 3, 6);
        let mut rng = SplitMix(17);
        let (pu, pi) = (rng.noise(nu * pd), rng.noise(ni * pd));
        let prof = Profiles {
            dim: pd,
            users: &pu,
            items: &pi,
        };
        let mut p = con("weight = 0.7\ntau = 0.3\nwidth = 3", nu, ni, Some(prof)).unwrap();
        assert_eq!(p.mlp.hidden, (pd + w) / 2);
        let layout = layout_of(&p.tables());
        let params = random_params(&layout, 5);
        let emb_data = rng.noise((nu + ni) * w);
        let (users, pos, neg): (&[u32], &[u32], &[u32]) =
            (&[0, 3, 3, 6], &[1, 10, 2, 2], &[5, 2, 7, 9]);
        let kernels = ReferenceKernels;
        let kref = kernels.as_ref();
        let k = compute(&kref);
        let pr = Params::new(&params, &layout);
        let mlp64 =
            |x: &[f32]| -> Vec<f32> { mlp_f64(&pr, 0, x).iter().map(|&v| v as f32).collect() };
        let mapped_users: Vec<f32> = pu.chunks(pd).flat_map(&mlp64).collect();
        let mapped_items = |i: u32| mlp64(&pi[i as usize * pd..(i as usize + 1) * pd]);
        let expected = reference_loss(
            &p.h,
            &mapped_users,
            &mapped_items,
            &emb_data,
            nu,
            w,
            (users, pos, neg),
        );
        let mut d = vec![0f32; emb_data.len()];
        let mut g = vec![0f32; params.len()];
        let batch = BatchView {
            users: users.into(),
            pos: pos.into(),
            neg: neg.into(),
            epoch: 1,
            step: 1,
            seed: 1,
        };
        let terms = p
            .loss(
                &k,
                &batch,
                &[Emb {
                    data: &emb_data,
                    n_users: nu,
                    n_items: ni,
                    width: w,
                }],
                &mut [EmbBuf {
                    data: &mut d,
                    n_users: nu,
                    n_items: ni,
                    width: w,
                }],
                pr,
                Grads::new(&mut g, &layout),
            )
            .unwrap();
        assert_eq!(terms.len(), 1);
        let got = terms[0].value;
        assert!(
            (got - expected).abs() <= 1e-4 * expected.abs(),
            "{got} vs {expected}"
        );
    }

    #[test]
    fn errors_name_the_problem() {
        let err = |t: &str, prof| con(t, 3, 4, prof).err().unwrap();
        assert!(err("", None).contains("[data.profiles]"));
        assert!(err("tau = 0", None).contains("`tau`"));
        assert!(err("weight = -1", None).contains("`weight`"));
        assert!(err("width = 0", None).contains("`width`"));
        assert!(err("wieght = 1", None).contains("did you mean `weight`"));
        // A width that is not the backbone's: named, with the fix.
        let (pu, pi) = (vec![0.5f32; 3 * 4], vec![0.25f32; 4 * 4]);
        let prof = Profiles {
            dim: 4,
            users: &pu,
            items: &pi,
        };
        let mut p = con("width = 8", 3, 4, Some(prof)).unwrap();
        let layout = layout_of(&p.tables());
        let params = random_params(&layout, 1);
        let mut g = vec![0f32; params.len()];
        let emb_data = vec![0.1f32; 7 * 2];
        let mut d = vec![0f32; emb_data.len()];
        let kernels = ReferenceKernels;
        let kref = kernels.as_ref();
        let e = p
            .loss(
                &compute(&kref),
                &BatchView {
                    users: (&[0u32][..]).into(),
                    pos: (&[1u32][..]).into(),
                    neg: (&[2u32][..]).into(),
                    epoch: 1,
                    step: 1,
                    seed: 1,
                },
                &[Emb {
                    data: &emb_data,
                    n_users: 3,
                    n_items: 4,
                    width: 2,
                }],
                &mut [EmbBuf {
                    data: &mut d,
                    n_users: 3,
                    n_items: 4,
                    width: 2,
                }],
                Params::new(&params, &layout),
                Grads::new(&mut g, &layout),
            )
            .err()
            .unwrap();
        assert!(e.contains("width = 2"), "{e}");
    }
}
