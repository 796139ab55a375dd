//! SimGCL as run for the published numbers (docs/methods.md, RLMRec's `simgcl.py`): the clean
//! view is LightGCN (layer 0 summed, no edge dropout), trained by the host's BPR; the
//! backbone's own [`aux_loss`](BackboneImpl::aux_loss) is the contrastive term between two
//! noise-perturbed views of the same propagation.

use promax_plugin_api::prelude::*;
use promax_plugin_api::sdk::propagate::{check_layers, LayerSum, Propagation};
use promax_plugin_api::sdk::rng::{draw, mix64, unit_f32, GOLDEN_GAMMA};
use promax_plugin_api::sdk::rows::{
    gather, node_table_indices, node_tables, scatter_add, Distinct,
};
use promax_plugin_api::PairedNceRequest;
use serde::{Deserialize, Serialize};

/// SimGCL hyperparameters (defaults: the published Amazon-Book configuration).
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
#[schemars(crate = "promax_plugin_api::schemars")]
pub struct SimGclHparams {
    /// Embedding size of every user and item (>= 1).
    pub dim: usize,
    /// Propagation layers L (>= 1).
    pub layers: usize,
    /// Noise magnitude (>= 0): each perturbed layer adds `eps · sign(E) ⊙ (a random unit
    /// row)`.
    pub eps: f32,
    /// Weight of the contrastive loss (>= 0), which is then divided by the batch size.
    pub cl_weight: f32,
    /// InfoNCE temperature τ (> 0).
    pub cl_tau: f32,
}

impl Default for SimGclHparams {
    fn default() -> Self {
        SimGclHparams {
            dim: 32,
            layers: 3,
            eps: 0.9,
            cl_weight: 0.1,
            cl_tau: 0.2,
        }
    }
}

/// The SimGCL backbone: LightGCN's propagation for the clean view, plus scratch for the
/// perturbed ones.
pub struct SimGcl {
    h: SimGclHparams,
    n_users: usize,
    n_items: usize,
    /// The clean view's propagation (layer 0 summed) and its scratch.
    clean: LayerSum,
    propagation: Propagation,
    /// E0, then the current and next layer of a perturbed view.
    x0: Vec<f32>,
    cur: Vec<f32>,
    next: Vec<f32>,
    /// The two perturbed views' final embeddings, and their gradients.
    views: [Vec<f32>; 2],
    d_views: [Vec<f32>; 2],
}

impl PluginMeta for SimGcl {
    const NAME: &'static str = "simgcl";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "SimGCL: LightGCN plus InfoNCE between two noise-perturbed views";
    type Hparams = SimGclHparams;
}

/// Draw `i` of noise stream `key`, uniform in [0, 1): it depends on (key, i) only.
fn uniform(key: u64, i: u64) -> f32 {
    unit_f32(draw(key, i))
}

/// The noise stream of layer `layer` of view `view` in the batch drawn from `seed`.
fn stream(seed: u64, view: u64, layer: u64) -> u64 {
    let g = GOLDEN_GAMMA;
    mix64(mix64(seed ^ g.wrapping_mul(view + 1)) ^ g.wrapping_mul(layer + 1))
}

/// torch.sign: -1, 0 or 1.
fn sign(x: f32) -> f32 {
    f32::from(i8::from(x > 0.0) - i8::from(x < 0.0))
}

impl SimGcl {
    /// Perturbed view `view` into `self.views[view]`: `E(l+1)' = Â·E(l)' + eps · sign(Â·E(l)')
    /// ⊙ unit(U[0,1)^dim)` row by row, final = `Σ_{l=0..L} E(l)'`. `self.x0` holds E0.
    fn perturbed(
        &mut self,
        k: &Compute<'_>,
        adj: CsrView<'_>,
        seed: u64,
        view: usize,
    ) -> PluginResult<()> {
        let d = self.h.dim;
        let out = &mut self.views[view];
        out.clone_from(&self.x0);
        self.cur.clone_from(&self.x0);
        self.next.resize(self.x0.len(), 0.0);
        let mut noise = vec![0f32; d];
        for l in 0..self.h.layers {
            k.spmm(adj, &self.cur, d, &mut self.next, 0.0)?;
            let key = stream(seed, view as u64, l as u64);
            for (row, first) in self.next.chunks_exact_mut(d).zip((0u64..).step_by(d)) {
                (noise.iter_mut().zip(first..)).for_each(|(u, i)| *u = uniform(key, i));
                let norm = noise.iter().map(|u| u * u).sum::<f32>().sqrt();
                let scale = self.h.eps / norm.max(1e-12); // F.normalize's guard
                (row.iter_mut().zip(&noise)).for_each(|(e, u)| *e += scale * u * sign(*e));
            }
            out.iter_mut().zip(&self.next).for_each(|(o, e)| *o += e);
            std::mem::swap(&mut self.cur, &mut self.next);
        }
        Ok(())
    }

    /// `weight · Σ_r InfoNCE(v1[id_r], v2[id_r]; negatives: all n nodes of v2)` over the
    /// batch rows `ids` (node `first + id`), duplicates kept as the reference indexes with the
    /// batch: an id in c rows weighs c. One paired-InfoNCE call: rows are the unique ids, and
    /// each batch row is a (row, id) pair. Accumulates the gradients into `self.d_views`.
    fn contrast(
        &mut self,
        k: &Compute<'_>,
        ids: &[u32],
        (first, n): (usize, usize),
        weight: f32,
    ) -> PluginResult<f64> {
        let (dim, tau) = (self.h.dim, self.h.cl_tau);
        let nodes = first * dim..(first + n) * dim;
        let (v1, v2) = (&self.views[0][nodes.clone()], &self.views[1][nodes.clone()]);
        let [d1, d2] = &mut self.d_views;
        let (d1, d2) = (&mut d1[nodes.clone()], &mut d2[nodes]);
        if let Some(&id) = ids.iter().find(|&&id| id as usize >= n) {
            return Err(format!("batch id {id} is out of range (0..{n})"));
        }
        let unique = Distinct::of(ids);
        let pairs: Vec<u32> = (unique.slots.iter().zip(ids))
            .flat_map(|(&row, &id)| [row, id])
            .collect();
        let a = gather(v1, dim, &unique.ids);
        let (mut da, mut db) = (vec![0f32; a.len()], vec![0f32; v2.len()]);
        let req = PairedNceRequest {
            a: a.as_slice().into(),
            b: v2.into(),
            dim,
            col_counts: (&[][..]).into(),
            pairs: pairs.as_slice().into(),
            tau,
            eps: 0.0,
            weight,
        };
        let loss = k.info_nce_pairs(req, &mut da, &mut db)?;
        scatter_add(d1, dim, &unique.ids, &da);
        d2.iter_mut().zip(&db).for_each(|(d, g)| *d += g);
        Ok(loss)
    }
}

impl BackboneImpl for SimGcl {
    fn new(h: SimGclHparams, env: &Env) -> PluginResult<Self> {
        let check = |key: &str, v: f32, ok: bool, rule: &str| match v.is_finite() && ok {
            true => Ok(()),
            false => Err(format!("`{key}` = {v} must be a finite number {rule}")),
        };
        check("eps", h.eps, h.eps >= 0.0, ">= 0")?;
        check("cl_weight", h.cl_weight, h.cl_weight >= 0.0, ">= 0")?;
        check("cl_tau", h.cl_tau, h.cl_tau > 0.0, "> 0")?;
        check_layers(h.dim, h.layers)?;
        let clean = LayerSum {
            dim: h.dim,
            layers: h.layers,
            include_layer0: true,
        };
        Ok(SimGcl {
            h,
            n_users: env.n_users,
            n_items: env.n_items,
            clean,
            propagation: Propagation::new(),
            x0: Vec::new(),
            cur: Vec::new(),
            next: Vec::new(),
            views: Default::default(),
            d_views: Default::default(),
        })
    }

    fn tables(&self) -> Vec<TableSpec> {
        node_tables(self.n_users, self.n_items, self.h.dim)
    }

    fn node_inputs(&self) -> Vec<usize> {
        node_table_indices()
    }

    fn width(&self) -> usize {
        self.h.dim
    }

    fn forward(
        &mut self,
        k: &Compute<'_>,
        params: Params<'_>,
        graph: &GraphView<'_>,
        out: EmbBuf<'_>,
    ) -> PluginResult<()> {
        self.propagation
            .forward(k, self.clean, &params, graph.adj, out.data)
    }

    fn backward(
        &mut self,
        k: &Compute<'_>,
        _params: Params<'_>,
        graph: &GraphView<'_>,
        d_out: Emb<'_>,
        mut grads: Grads<'_>,
    ) -> PluginResult<()> {
        let sum = self.clean;
        self.propagation
            .backward(k, sum, graph.adj_t, d_out.data, &mut grads)
    }

    /// `cl_weight / B · (InfoNCE(users) + InfoNCE(positive items))` between two perturbed
    /// views, negatives: all users / all items (docs/methods.md). The noise, drawn from the
    /// batch seed, is a constant (sign has zero gradient almost everywhere), so each view's
    /// backward is LightGCN's propagation over Âᵀ, straight into `grads`.
    fn aux_loss(
        &mut self,
        k: &Compute<'_>,
        params: Params<'_>,
        graph: &GraphView<'_>,
        batch: &BatchView<'_>,
        _emb: Emb<'_>,
        _d_emb: EmbBuf<'_>,
        mut grads: Grads<'_>,
    ) -> PluginResult<Vec<LossTerm>> {
        let b = batch.users.len();
        if b == 0 || self.h.cl_weight == 0.0 {
            return Ok(vec![term("cl", 0.0)]);
        }
        self.x0.clear();
        self.x0.extend_from_slice(params.table(0));
        self.x0.extend_from_slice(params.table(1));
        for v in 0..2 {
            self.perturbed(k, graph.adj, batch.seed, v)?;
            self.d_views[v].clear();
            self.d_views[v].resize(self.x0.len(), 0.0);
        }
        let (nu, ni, weight) = (graph.n_users, graph.n_items, self.h.cl_weight / b as f32);
        let users = self.contrast(k, &batch.users, (0, nu), weight)?;
        let items = self.contrast(k, &batch.pos, (nu, ni), weight)?;
        // Both views are Σ_l Âˡ·E0 plus constants: one LightGCN backward of d1 + d2.
        let [d1, d2] = &mut self.d_views;
        d1.iter_mut().zip(d2.iter()).for_each(|(a, b)| *a += b);
        self.propagation
            .backward(k, self.clean, graph.adj_t, d1, &mut grads)?;
        Ok(vec![term("cl", users + items)])
    }
}

promax_plugin_api::declare_backbone!(SimGcl);

#[cfg(test)]
mod tests {
    use super::*;
    use promax_plugin_api::sdk::{backbone_box, parse_hparams};
    use promax_plugin_api::testing::{
        assert_backbone_rejects, assert_hparams_documented, bipartite_adjacency,
        check_backbone_gradients, compute, drop_edges, emb, emb_buf, env, finite_difference_check,
        graph_view, layout_of, new_small_backbone, Csr, ReferenceKernels, SplitMix, SMALL_PAIRS,
    };
    use promax_plugin_api::{BackboneBox, KernelsRef, PluginKind, TableLayout};

    /// A batch with repeated users and items, so that multiplicities > 1 are exercised.
    const USERS: [u32; 6] = [0, 3, 0, 1, 3, 0];
    const POS: [u32; 6] = [1, 4, 0, 1, 0, 4];
    const NEG: [u32; 6] = [2, 2, 3, 0, 1, 3];

    fn simgcl(text: &str, n_users: usize, n_items: usize) -> SimGcl {
        let h = parse_hparams(text).expect("valid");
        SimGcl::new(h, &env(n_users, n_items)).expect("builds")
    }

    fn batch(seed: u64) -> BatchView<'static> {
        BatchView {
            users: USERS[..].into(),
            pos: POS[..].into(),
            neg: NEG[..].into(),
            epoch: 1,
            step: 1,
            seed,
        }
    }

    /// The summed aux loss through the ABI object, gradients accumulated into `grads`.
    fn aux(
        b: &mut BackboneBox,
        k: &KernelsRef<'_>,
        (params, layout): (&[f32], &[TableLayout]),
        g: GraphView<'_>,
        seed: u64,
        grads: &mut [f32],
    ) -> f64 {
        let n = (g.n_users + g.n_items) * b.width();
        let (e, mut d_e) = (vec![0f32; n], vec![0f32; n]);
        let terms = b.aux_loss(
            k.sabi_reborrow(),
            Params::new(params, layout).to_abi(),
            g,
            batch(seed),
            emb(&e, g.n_users, g.n_items, b.width()).to_abi(),
            emb_buf(&mut d_e, g.n_users, g.n_items, b.width()).to_abi(),
            Grads::new(grads, layout).to_abi(),
        );
        let terms = terms.into_result().expect("runs");
        assert!(
            d_e.iter().all(|&x| x == 0.0),
            "the clean view takes no CL gradient"
        );
        terms.iter().map(|t| t.value).sum()
    }

    /// Mismatches of `d aux / d params` against central differences, every parameter, the
    /// noise fixed by the batch seed. Parameters are positive: Â ≥ 0 then keeps every
    /// propagated entry positive, so no sign (hence no noise) flips under the small steps
    /// and the loss is smooth in them.
    fn aux_mismatches(text: &str, adj: &Csr, adj_t: &Csr) -> usize {
        let mut b = backbone_box(simgcl(text, 4, 5));
        let k = ReferenceKernels.as_ref();
        let g = graph_view(4, adj.view(), adj_t.view());
        let layout = layout_of(&b.tables());
        let mut rng = SplitMix(9);
        let n = layout.iter().map(|l| l.rows * l.cols).sum();
        let mut params: Vec<f32> = (0..n).map(|_| 0.1 + rng.uniform() as f32).collect();
        // Accumulated (`+=`): start from non-zero values.
        let start: Vec<f32> = (0..n).map(|_| rng.symmetric(1.0) as f32).collect();
        let mut grads = start.clone();
        aux(&mut b, &k, (&params, &layout), g, 77, &mut grads);
        grads.iter_mut().zip(&start).for_each(|(g, s)| *g -= s);
        let largest = grads.iter().fold(0f32, |m, g| m.max(g.abs()));
        assert!(
            largest > 0.05,
            "{text}: gradients too small to test: {largest}"
        );
        let all: Vec<usize> = (0..n).collect();
        let mut scratch = vec![0f32; n];
        let bad = finite_difference_check(&mut params, &grads, &all, 1e-2, 2e-3, 1e-4, |p| {
            aux(&mut b, &k, (p, &layout), g, 77, &mut scratch)
        });
        bad.len()
    }

    #[test]
    fn aux_loss_gradients_match_finite_differences() {
        let adj = bipartite_adjacency(4, 5, &SMALL_PAIRS, false);
        let (dropped, dropped_t) = &drop_edges(&adj, 0.6, 11);
        assert_ne!(
            dropped,
            &dropped.transpose(),
            "dropped graph must be asymmetric"
        );
        // cl_weight = batch size: the terms weigh 1, gradients are O(1).
        for text in [
            "dim = 3\ncl_weight = 6.0",
            "dim = 4\nlayers = 1\ncl_weight = 6.0\ncl_tau = 0.5",
        ] {
            assert_eq!(aux_mismatches(text, &adj, &adj), 0, "{text}");
            assert_eq!(
                aux_mismatches(text, dropped, dropped_t),
                0,
                "{text}, dropped"
            );
            assert!(
                aux_mismatches(text, dropped, dropped) > 0,
                "{text}, adj_t = adj"
            );
        }
    }

    #[test]
    fn clean_view_gradients_match_finite_differences() {
        let adj = bipartite_adjacency(4, 5, &SMALL_PAIRS, false);
        let k = ReferenceKernels.as_ref();
        for text in ["dim = 3", "dim = 2\nlayers = 1"] {
            let mut b = backbone_box(simgcl(text, 4, 5));
            let g = graph_view(4, adj.view(), adj.view());
            let bad = check_backbone_gradients(&mut b, &k, g, usize::MAX, 3).expect("runs");
            assert!(bad.is_empty(), "{text}: {bad:?}");
        }
    }

    /// Runs the aux loss on the 4 × 5 graph with random (mixed-sign) parameters; returns
    /// the model (its perturbed views inside) and the loss.
    fn run_aux(text: &str, seed: u64) -> (SimGcl, f64) {
        let adj = bipartite_adjacency(4, 5, &SMALL_PAIRS, false);
        let mut m = simgcl(text, 4, 5);
        let layout = layout_of(&m.tables());
        let params = promax_plugin_api::testing::random_params(&layout, 4);
        let k = ReferenceKernels.as_ref();
        let mut grads = vec![0f32; params.len()];
        let n = 9 * m.width();
        let (e, mut d_e) = (vec![0f32; n], vec![0f32; n]);
        let terms = m.aux_loss(
            &compute(&k),
            Params::new(&params, &layout),
            &graph_view(4, adj.view(), adj.view()),
            &batch(seed),
            emb(&e, 4, 5, m.width()),
            emb_buf(&mut d_e, 4, 5, m.width()),
            Grads::new(&mut grads, &layout),
        );
        let loss = terms.expect("runs").iter().map(|t| t.value).sum();
        (m, loss)
    }

    #[test]
    fn aux_loss_is_the_reference_formula() {
        // RLMRec's cal_infonce_loss over the batch rows (duplicates kept), all users / all
        // items as the candidates, / B · cl_weight, computed naively in f64.
        let (m, loss) = run_aux("dim = 3", 5);
        let cos = |a: &[f32], b: &[f32]| {
            let dot = |x: &[f32], y: &[f32]| -> f64 {
                x.iter()
                    .zip(y)
                    .map(|(&x, &y)| f64::from(x) * f64::from(y))
                    .sum()
            };
            dot(a, b) / (dot(a, a) * dot(b, b)).sqrt()
        };
        let (v1, v2) = (&m.views[0], &m.views[1]);
        let row = |v: &[f32], r: usize| -> Vec<f32> { v[r * 3..(r + 1) * 3].to_vec() };
        let infonce = |ids: &[u32], offset: usize, n: usize| -> f64 {
            ids.iter()
                .map(|&id| {
                    let a = row(v1, offset + id as usize);
                    let pos = cos(&a, &row(v2, offset + id as usize)) / 0.2;
                    let all: f64 = (0..n)
                        .map(|j| (cos(&a, &row(v2, offset + j)) / 0.2).exp())
                        .sum();
                    all.ln() - pos
                })
                .sum()
        };
        let want = 0.1 / 6.0 * (infonce(&USERS, 0, 4) + infonce(&POS, 4, 5));
        assert!((loss - want).abs() < 1e-5 * want, "{loss} vs {want}");
    }

    #[test]
    fn noise_follows_the_seed() {
        let (a, la) = run_aux("dim = 3", 5);
        let (b, lb) = run_aux("dim = 3", 5);
        let (_, lc) = run_aux("dim = 3", 6);
        assert_eq!(
            (a.views.clone(), la),
            (b.views.clone(), lb),
            "same seed, same views"
        );
        assert_ne!(la, lc, "another seed, other noise");
        assert_ne!(a.views[0], a.views[1], "the two views draw different noise");
        // eps = 0: both perturbed views are the clean LightGCN output.
        let (z, _) = run_aux("dim = 3\neps = 0.0", 5);
        let adj = bipartite_adjacency(4, 5, &SMALL_PAIRS, false);
        let layout = layout_of(&z.tables());
        let params = promax_plugin_api::testing::random_params(&layout, 4);
        let (mut clean, mut out) = (simgcl("dim = 3", 4, 5), vec![0f32; 27]);
        let k = ReferenceKernels.as_ref();
        let g = graph_view(4, adj.view(), adj.view());
        let p = Params::new(&params, &layout);
        let r = clean.forward(&compute(&k), p, &g, emb_buf(&mut out, 4, 5, 3));
        r.expect("runs");
        for v in &z.views {
            let gap = v
                .iter()
                .zip(&out)
                .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(
                gap < 1e-5,
                "eps = 0 view differs from the clean one by {gap}"
            );
        }
    }

    #[test]
    fn perturbed_view_by_hand_on_one_edge() {
        // One user, one item, one edge: Â = [[0, 1], [1, 0]] swaps the rows.
        let adj = bipartite_adjacency(1, 1, &[(0, 0)], false);
        let (u, i) = ([1.0f32, -2.0], [0.5f32, 0.0]);
        let mut m = simgcl("dim = 2\nlayers = 2\neps = 0.9", 1, 1);
        m.x0 = [u, i].concat();
        let k = ReferenceKernels.as_ref();
        for view in 0..2 {
            m.perturbed(&compute(&k), adj.view(), 42, view)
                .expect("runs");
            // Layer l adds 0.9 · sign(pre) ⊙ unit noise to the propagated rows `pre`.
            let layer = |pre: [[f32; 2]; 2], l: u64| -> [[f32; 2]; 2] {
                let key = stream(42, view as u64, l);
                let mut next = pre;
                for (r, row) in next.iter_mut().enumerate() {
                    let n = [uniform(key, 2 * r as u64), uniform(key, 2 * r as u64 + 1)];
                    let norm = (n[0] * n[0] + n[1] * n[1]).sqrt();
                    for c in 0..2 {
                        let sign = match pre[r][c] {
                            x if x > 0.0 => 1.0,
                            x if x < 0.0 => -1.0,
                            _ => 0.0,
                        };
                        row[c] += 0.9 * sign * n[c] / norm;
                    }
                }
                next
            };
            let e1 = layer([i, u], 0);
            assert_eq!(e1[0][1], 0.0, "sign(0) = 0: a zero entry gets no noise");
            let e2 = layer([e1[1], e1[0]], 1);
            let want: Vec<f32> = (0..2)
                .flat_map(|r| (0..2).map(move |c| (r, c)))
                .map(|(r, c)| [u, i][r][c] + e1[r][c] + e2[r][c])
                .collect();
            let got = &m.views[view];
            let gap = got
                .iter()
                .zip(&want)
                .fold(0f32, |g, (a, b)| g.max((a - b).abs()));
            assert!(gap < 1e-6, "view {view}: {got:?} vs {want:?}");
        }
        assert_ne!(m.views[0], m.views[1]);
    }

    #[test]
    fn constructor_errors_name_the_key() {
        let cases = [
            ("layers = 0", "`layers`"),
            ("dim = 0", "`dim`"),
            ("eps = -0.1", "`eps`"),
            ("eps = inf", "`eps`"),
            ("cl_weight = -1.0", "`cl_weight`"),
            ("cl_tau = 0.0", "`cl_tau`"),
            ("cl_tau = -0.2", "`cl_tau`"),
            ("cl_tau = \"0.2\"", "`cl_tau`"),
            ("cl_weigth = 0.1", "did you mean `cl_weight`?"),
            ("keep_rate = 0.8", "`keep_rate`"),
        ];
        assert_backbone_rejects(root_module(), &cases);
        let b = new_small_backbone(root_module(), "layers = 2").unwrap();
        let spec = b.graph_spec();
        assert!(spec.uses_graph && !spec.self_loops && spec.keep_rate == 1.0);
        assert_eq!(b.width(), 32);
        let shapes: Vec<_> = b.tables().iter().map(|t| (t.rows, t.cols)).collect();
        assert_eq!(shapes, [(4, 32), (5, 32)]);
    }

    #[test]
    fn info_documents_every_hyperparameter() {
        let want = [
            ("cl_tau", "0.2"),
            ("cl_weight", "0.1"),
            ("dim", "32"),
            ("eps", "0.9"),
            ("layers", "3"),
        ];
        assert_hparams_documented(root_module(), "simgcl", PluginKind::Backbone, &want);
    }
}
