//! ProMax (SIGIR'26) as an augmenter: supervised distribution reshaping (SDR) of the
//! model's softmax over all items towards the profile-derived one, and self-supervised
//! reshaping (S2DR) between the training graph and the LLM-augmented graph. It works with
//! any backbone: it only sees final embeddings and returns their gradients.
//!
//! Follows the authors' code (BlueGhostYi/ProRec, `lightgcn_promax.py`) unless a
//! hyperparameter says otherwise; see [`PromaxHparams`].

mod s2dr;
mod sdr;
mod targets;

use promax_plugin_api::prelude::*;
use promax_plugin_api::sdk::rows::Distinct;
use promax_plugin_api::Reduction;
use serde::{Deserialize, Serialize};

use targets::{TargetSpec, Targets};

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

/// The ProMax augmenter.
pub struct Promax {
    h: PromaxHparams,
    /// SDR's targets (`None` with `sdr` off).
    targets: Option<Targets>,
}

impl PluginMeta for Promax {
    const NAME: &'static str = "promax";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "ProMax: profile-guided supervised (SDR) and self-supervised (S2DR) distribution reshaping";
    type Hparams = PromaxHparams;
}

fn check_positive(name: &str, v: f32) -> PluginResult<()> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(format!("`{name}` = {v} must be a positive number"))
    }
}

impl Promax {
    /// What SDR needs from the environment: the profiles, and how to reduce them.
    fn targets(h: &PromaxHparams, env: &Env<'_>) -> PluginResult<Targets> {
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
        let spec = TargetSpec {
            dim: h.profile_dim,
            mode,
            whiten: h.whiten,
            profile_tau: h.profile_tau,
            min_weight: h.min_weight,
        };
        Ok(Targets::new(spec, &p))
    }

    /// Per-user entropy weights `clamp(1 − H/ln N, floor, 1)` of the target softmax
    /// (`None` with `sdr` off); the first call prepares the targets.
    pub fn entropy_weights(&mut self, k: &Compute<'_>) -> PluginResult<Option<&[f32]>> {
        match self.targets.as_mut() {
            Some(t) => Ok(Some(&t.ready(k)?.weights)),
            None => Ok(None),
        }
    }
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
            Some(Self::targets(&h, env)?)
        } else {
            None
        };
        Ok(Promax { targets, h })
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
        let h = &self.h;
        let users = Distinct::of(&batch.users);
        let mut terms = Vec::new();
        if let Some(t) = self.targets.as_mut() {
            let scale = (h.sdr_weight, h.tau, h.profile_tau);
            let views = (&embs[0], &mut d_embs[0]);
            let loss = sdr::sdr(k, t.ready(k)?, &users.ids, views, scale)?;
            terms.push(term("sdr", loss));
        }
        if h.s2dr {
            let items = Distinct::of(&batch.pos);
            let scale = (h.tau, h.infonce_eps, h.s2dr_weight);
            let loss = s2dr::s2dr(k, (embs, d_embs), (&users, &items), scale)?;
            terms.push(term("s2dr", loss));
        }
        Ok(terms)
    }
}

promax_plugin_api::declare_augmenter!(Promax);

#[cfg(test)]
mod tests {
    use super::*;
    use promax_plugin_api::sdk::rows::unit_rows;
    use promax_plugin_api::sdk::{augmenter_box, parse_hparams, Profiles};
    use promax_plugin_api::testing::{
        check_augmenter_gradients, compute, env_with_profiles, AugmenterCase, ReferenceKernels,
        SplitMix,
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
                // Every loss here is a function of cosines: rows of norm 3 keep the
                // finite-difference step (1e-2) far inside the region where it is smooth.
                // (At norm 2 the central difference's own error, ~h²·f‴/6, reached 2.2e-4
                // at one entry against a 2.1e-4 tolerance once the reference table computed
                // the loss exactly; f32 rounding in the CPU kernels had hidden it.)
                views: (0..n_views)
                    .map(|_| {
                        let mut v = rng.noise((nu + ni) * w);
                        unit_rows(&mut v, w);
                        v.iter_mut().for_each(|x| *x *= 3.0);
                        v
                    })
                    .collect(),
                users: &[0, 2, 2, 5, 1],
                pos: &[1, 4, 4, 8, 0],
                neg: &[3, 3, 5, 2, 7],
            };
            let bad =
                check_augmenter_gradients(&mut a, &ReferenceKernels.as_ref(), &mut case, 400, 9)
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
        let kernels = ReferenceKernels;
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
