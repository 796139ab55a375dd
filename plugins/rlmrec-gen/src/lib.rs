//! RLMRec-Gen (Ren et al., WWW'24), the generative variant, as an augmenter: every training
//! step a random `mask_ratio` of all nodes (users and items) have their INPUT embedding
//! replaced by one learned mask vector; the backbone propagates; an MLP maps the masked
//! nodes' final embeddings into profile space, and InfoNCE over cosines (in-set negatives)
//! pulls each towards its own profile embedding, so the graph must reconstruct what the
//! LLM said about a node from its neighbours alone.
//!
//! Follows the authors' code (HKUDS/RLMRec, `lightgcn_gene.py` and `NodeMask`): the mask
//! vector starts at zero; `max(⌊N · mask_ratio⌋, 1)` distinct nodes per step; the MLP
//! `Linear(width, (width + D)/2) → LeakyReLU(0.01) → Linear(D)`;
//! `L = recon_weight · mean_s −ln( e^{cos(m_s, p_s)/τ} / Σ_t e^{cos(m_s, p_t)/τ} + 1e-8 )`
//! over the masked nodes s, t. The masking itself is the host's (ABI `input_mask`): the
//! backbone's own forward sees the masked inputs, for BPR as for this term.

use promax_plugin_api::prelude::*;
use promax_plugin_api::sdk::mlp::Mlp;
use promax_plugin_api::sdk::rng::draw;
use promax_plugin_api::sdk::rows::{gather, scatter_add};
use promax_plugin_api::sdk::NodeMask;
use promax_plugin_api::InfoNceRequest;
use serde::{Deserialize, Serialize};

/// The guard inside the reference's log (`ssl_con_loss`).
const LOG_EPS: f32 = 1e-8;

/// RLMRec-Gen hyperparameters (defaults: the published Amazon-Book settings).
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
#[schemars(crate = "promax_plugin_api::schemars")]
pub struct RlmrecGenHparams {
    /// Weight of the reconstruction term, recon_weight (Amazon 0.1, Yelp 0.01).
    pub recon_weight: f32,
    /// InfoNCE temperature, recon_tau (Amazon 0.5).
    pub tau: f32,
    /// Share of all nodes (users and items) masked every step, in (0, 1] (Amazon 0.15).
    pub mask_ratio: f32,
    /// The backbone's final embedding width, the MLP's input (LR-GCCF: dim·(layers+1)).
    pub width: usize,
    /// Columns of the backbone's input rows, the mask vector's; 0 = `width`.
    pub input_dim: usize,
    /// Hidden width of the MLP; 0 = (width + profile dim) / 2, as the reference.
    pub hidden: usize,
}

impl Default for RlmrecGenHparams {
    fn default() -> Self {
        RlmrecGenHparams {
            recon_weight: 0.1,
            tau: 0.5,
            mask_ratio: 0.15,
            width: 32,
            input_dim: 0,
            hidden: 0,
        }
    }
}

/// Index of the mask vector among the plugin's tables (after the MLP's four).
const MASK: usize = 4;

/// The RLMRec-Gen augmenter.
pub struct RlmrecGen {
    h: RlmrecGenHparams,
    mlp: Mlp,
    input_dim: usize,
    /// Profile embeddings of every node, users then items (n_nodes × D).
    profiles: Vec<f32>,
    /// Nodes masked this step (drawn by `input_mask`, read by `loss`).
    masked: Vec<u32>,
    /// Scratch for drawing without replacement.
    perm: Vec<u32>,
}

impl PluginMeta for RlmrecGen {
    const NAME: &'static str = "rlmrec-gen";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "RLMRec-Gen: masked nodes' embeddings reconstruct their LLM profile embeddings";
    type Hparams = RlmrecGenHparams;
}

/// `count` distinct values of `0..perm.len()`, uniformly, by a partial Fisher–Yates
/// shuffle whose draws depend on `seed` alone.
fn draw_distinct(perm: &mut [u32], count: usize, seed: u64) -> Vec<u32> {
    perm.iter_mut().enumerate().for_each(|(i, p)| *p = i as u32);
    let n = perm.len();
    for i in 0..count.min(n) {
        let span = (n - i) as u128;
        let j = i + ((u128::from(draw(seed, i as u64 + 1)) * span) >> 64) as usize;
        perm.swap(i, j);
    }
    perm[..count.min(n)].to_vec()
}

impl RlmrecGen {
    fn check(h: &RlmrecGenHparams) -> PluginResult<()> {
        if !(h.tau.is_finite() && h.tau > 0.0) {
            return Err(format!("`tau` = {} must be a positive number", h.tau));
        }
        if !(h.recon_weight.is_finite() && h.recon_weight >= 0.0) {
            return Err(format!(
                "`recon_weight` = {} must be a finite number >= 0",
                h.recon_weight
            ));
        }
        if !(h.mask_ratio > 0.0 && h.mask_ratio <= 1.0) {
            return Err(format!("`mask_ratio` = {} must be in (0, 1]", h.mask_ratio));
        }
        if h.width == 0 {
            return Err("`width` must be the backbone's embedding width, not 0".into());
        }
        Ok(())
    }

    /// Nodes masked per step: `max(⌊N · mask_ratio⌋, 1)`, as the reference.
    fn mask_count(&self) -> usize {
        let n = self.perm.len();
        ((n as f64 * f64::from(self.h.mask_ratio)).floor() as usize).clamp(1, n.max(1))
    }
}

impl AugmenterImpl for RlmrecGen {
    fn new(h: RlmrecGenHparams, env: &Env<'_>) -> PluginResult<Self> {
        Self::check(&h)?;
        let p = env.profiles.ok_or(
            "rlmrec-gen needs profile embeddings: set [data.profiles] (users/items .npy files)",
        )?;
        let hidden = if h.hidden == 0 {
            (p.dim + h.width) / 2
        } else {
            h.hidden
        };
        let n_nodes = env.n_users + env.n_items;
        let n_nodes_u32 = u32::try_from(n_nodes)
            .map_err(|_| format!("{n_nodes} users and items do not fit node ids (u32)"))?;
        let mut profiles = Vec::with_capacity(n_nodes * p.dim);
        profiles.extend_from_slice(p.users);
        profiles.extend_from_slice(p.items);
        Ok(RlmrecGen {
            mlp: Mlp {
                d_in: h.width,
                hidden,
                d_out: p.dim,
                first: 0,
            },
            input_dim: if h.input_dim == 0 {
                h.width
            } else {
                h.input_dim
            },
            profiles,
            masked: Vec::new(),
            perm: vec![0; n_nodes_u32 as usize],
            h,
        })
    }

    fn tables(&self) -> Vec<TableSpec> {
        let mut t = self.mlp.tables();
        // The reference's mask token starts at zero.
        t.push(table("mask", 1, self.input_dim, Init::Zeros));
        t
    }

    fn masks_inputs(&self) -> bool {
        true
    }

    fn input_mask(&mut self, batch: &BatchView<'_>, _params: Params<'_>) -> PluginResult<NodeMask> {
        let count = self.mask_count();
        self.masked = draw_distinct(&mut self.perm, count, batch.seed);
        Ok(NodeMask {
            nodes: self.masked.clone(),
            table: MASK,
        })
    }

    fn loss(
        &mut self,
        k: &Compute<'_>,
        _batch: &BatchView<'_>,
        embs: &[Emb<'_>],
        d_embs: &mut [EmbBuf<'_>],
        params: Params<'_>,
        mut grads: Grads<'_>,
    ) -> PluginResult<Vec<LossTerm>> {
        let (emb, d_emb) = (&embs[0], &mut d_embs[0]);
        let w = emb.width;
        if w != self.mlp.d_in {
            return Err(format!(
                "`width` = {} but the backbone's embeddings are {w} wide: set \
                 [plugins.rlmrec-gen] width = {w}",
                self.mlp.d_in
            ));
        }
        if self.h.recon_weight == 0.0 || self.masked.is_empty() {
            return Ok(vec![term("recon", 0.0)]);
        }
        let nodes = &self.masked;
        let d = self.mlp.d_out;
        let x = gather(emb.data, w, nodes);
        let (mapped, tape) = self.mlp.forward(k, &params, &x)?;
        let targets = gather(&self.profiles, d, nodes);
        let mut d_mapped = vec![0f32; mapped.len()];
        let mut d_targets = vec![0f32; targets.len()];
        let req = InfoNceRequest {
            a: mapped.as_slice().into(),
            b: targets.as_slice().into(),
            dim: d,
            tau: self.h.tau,
            eps: LOG_EPS,
            weight: self.h.recon_weight / nodes.len() as f32,
        };
        let loss = k.info_nce(req, &mut d_mapped, &mut d_targets)?;
        let mut d_x = vec![0f32; x.len()];
        self.mlp
            .backward(k, &params, &x, &tape, &d_mapped, &mut grads, Some(&mut d_x))?;
        scatter_add(d_emb.data, w, nodes, &d_x);
        Ok(vec![term("recon", loss)])
    }
}

promax_plugin_api::declare_augmenter!(RlmrecGen);

#[cfg(test)]
mod tests {
    use super::*;
    use promax_plugin_api::sdk::{augmenter_box, parse_hparams, Profiles};
    use promax_plugin_api::testing::{
        assert_hparams_documented, check_augmenter_gradients, compute, dot_f64, env_with_profiles,
        layout_of, log_sum_exp, mlp_f64, random_params, unit_rows_f64, AugmenterCase,
        ReferenceKernels, SplitMix,
    };
    use promax_plugin_api::PluginKind;

    fn gen(
        text: &str,
        nu: usize,
        ni: usize,
        prof: Option<Profiles<'_>>,
    ) -> PluginResult<RlmrecGen> {
        RlmrecGen::new(parse_hparams(text)?, &env_with_profiles(nu, ni, prof))
    }

    fn batch(seed: u64) -> BatchView<'static> {
        BatchView {
            users: (&[0u32][..]).into(),
            pos: (&[1u32][..]).into(),
            neg: (&[2u32][..]).into(),
            epoch: 1,
            step: 1,
            seed,
        }
    }

    #[test]
    fn the_mask_draws_distinct_nodes_from_the_batch_seed() {
        let (pu, pi) = (vec![0.5f32; 30 * 2], vec![0.25f32; 70 * 2]);
        let prof = Profiles {
            dim: 2,
            users: &pu,
            items: &pi,
        };
        let mut g = gen("mask_ratio = 0.15", 30, 70, Some(prof)).unwrap();
        let layout = layout_of(&g.tables());
        let params = random_params(&layout, 1);
        let mut masks = |seed| {
            g.input_mask(&batch(seed), Params::new(&params, &layout))
                .unwrap()
        };
        let (a, b, c) = (masks(7), masks(7), masks(8));
        assert_eq!(a, b, "same seed, same nodes");
        assert_ne!(a.nodes, c.nodes);
        assert_eq!(a.nodes.len(), 15, "⌊100 · 0.15⌋");
        assert_eq!(a.table, MASK);
        let mut sorted = a.nodes.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 15);
        assert!(sorted.iter().all(|&n| n < 100));
        // At least one node, however small the ratio.
        let mut tiny = gen("mask_ratio = 0.001", 30, 70, Some(prof)).unwrap();
        let m = tiny
            .input_mask(&batch(1), Params::new(&params, &layout))
            .unwrap();
        assert_eq!(m.nodes.len(), 1);
    }

    #[test]
    fn every_node_is_drawn_about_equally_often() {
        let mut perm = vec![0u32; 10];
        let mut counts = [0u32; 10];
        for seed in 0..4000 {
            for n in draw_distinct(&mut perm, 3, seed) {
                counts[n as usize] += 1;
            }
        }
        // 1200 expected per node; 5 standard deviations is about ±145.
        assert!(
            counts.iter().all(|&c| (1050..1350).contains(&c)),
            "{counts:?}"
        );
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
        // A large weight so that the gradients stand well above f32 rounding.
        let text = "recon_weight = 30.0\ntau = 1.0\nwidth = 4\nhidden = 3\nmask_ratio = 0.5";
        let mut p = gen(text, nu, ni, Some(prof)).unwrap();
        let layout = layout_of(&p.tables());
        let params = random_params(&layout, 2);
        p.input_mask(&batch(11), Params::new(&params, &layout))
            .unwrap();
        assert_eq!(p.masked.len(), 7);
        let mut a = augmenter_box(p);
        let mut case = AugmenterCase {
            n_users: nu,
            n_items: ni,
            width: w,
            views: vec![rng.noise((nu + ni) * w).iter().map(|v| 2.0 * v).collect()],
            users: &[0, 2],
            pos: &[1, 4],
            neg: &[3, 3],
        };
        let bad = check_augmenter_gradients(&mut a, &ReferenceKernels.as_ref(), &mut case, 300, 4)
            .expect("runs");
        assert!(bad.is_empty(), "{bad:?}");
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
        let text = "recon_weight = 0.7\ntau = 0.3\nwidth = 3\nmask_ratio = 0.3";
        let mut p = gen(text, nu, ni, Some(prof)).unwrap();
        assert_eq!(p.mlp.hidden, (pd + w) / 2);
        let layout = layout_of(&p.tables());
        let params = random_params(&layout, 5);
        let pr = Params::new(&params, &layout);
        p.input_mask(&batch(3), pr).unwrap();
        let nodes = p.masked.clone();
        assert_eq!(nodes.len(), 5);
        let emb_data = rng.noise((nu + ni) * w);
        // The reference, per masked node in f64: the MLP, cosines, log-softmax over the set.
        let node_profile = |n: u32| {
            let n = n as usize;
            if n < nu {
                pu[n * pd..(n + 1) * pd].to_vec()
            } else {
                pi[(n - nu) * pd..(n - nu + 1) * pd].to_vec()
            }
        };
        let mapped: Vec<f32> = nodes
            .iter()
            .flat_map(|&n| {
                let x = &emb_data[n as usize * w..(n as usize + 1) * w];
                mlp_f64(&pr, 0, x).into_iter().map(|v| v as f32)
            })
            .collect();
        let targets: Vec<f32> = nodes.iter().flat_map(|&n| node_profile(n)).collect();
        let (hm, _) = unit_rows_f64(&mapped, pd);
        let (ht, _) = unit_rows_f64(&targets, pd);
        let row = |h: &[f64], r: usize| h[r * pd..(r + 1) * pd].to_vec();
        let tau = 0.3f64;
        let mut expected = 0.0;
        for s in 0..nodes.len() {
            let logits: Vec<f64> = (0..nodes.len())
                .map(|t| dot_f64(&row(&hm, s), &row(&ht, t)) / tau)
                .collect();
            let p_ss = (logits[s] - log_sum_exp(&logits)).exp();
            expected -= (p_ss + 1e-8).ln();
        }
        expected *= 0.7 / nodes.len() as f64;
        let mut d = vec![0f32; emb_data.len()];
        let mut g = vec![0f32; params.len()];
        let kernels = ReferenceKernels;
        let kref = kernels.as_ref();
        let terms = p
            .loss(
                &compute(&kref),
                &batch(3),
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
        assert_eq!(terms[0].name.as_str(), "recon");
        let got = terms[0].value;
        assert!(
            (got - expected).abs() <= 1e-4 * expected.abs(),
            "{got} vs {expected}"
        );
        // Only masked nodes' embeddings get a gradient.
        for n in 0..nu + ni {
            let touched = d[n * w..(n + 1) * w].iter().any(|&v| v != 0.0);
            assert_eq!(touched, nodes.contains(&(n as u32)), "node {n}");
        }
    }

    #[test]
    fn errors_name_the_problem() {
        let (pu, pi) = (vec![0.5f32; 3 * 4], vec![0.25f32; 4 * 4]);
        let prof = Profiles {
            dim: 4,
            users: &pu,
            items: &pi,
        };
        let err = |t: &str, prof| gen(t, 3, 4, prof).err().unwrap();
        assert!(err("", None).contains("[data.profiles]"));
        assert!(err("tau = 0", Some(prof)).contains("`tau`"));
        assert!(err("recon_weight = -1", Some(prof)).contains("`recon_weight`"));
        assert!(err("mask_ratio = 0", Some(prof)).contains("`mask_ratio`"));
        assert!(err("mask_ratio = 1.5", Some(prof)).contains("`mask_ratio`"));
        assert!(err("width = 0", Some(prof)).contains("`width`"));
        assert!(err("mask_rate = 0.1", Some(prof)).contains("did you mean `mask_ratio`"));
        let g = gen("width = 8\ninput_dim = 2", 3, 4, Some(prof)).unwrap();
        let shapes: Vec<_> = g.tables().iter().map(|t| (t.rows, t.cols)).collect();
        assert_eq!(shapes, [(8, 6), (1, 6), (6, 4), (1, 4), (1, 2)]);
    }

    #[test]
    fn info_documents_every_hyperparameter() {
        let want = [
            ("recon_weight", "0.1"),
            ("tau", "0.5"),
            ("mask_ratio", "0.15"),
            ("width", "32"),
            ("input_dim", "0"),
            ("hidden", "0"),
        ];
        assert_hparams_documented(root_module(), "rlmrec-gen", PluginKind::Augmenter, &want);
    }
}
