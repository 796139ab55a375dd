//! LightGCN: `E(l+1) = Â·E(l)` from `E0 = [U; I]`, final = `Σ_l E(l)` (no weights, no
//! activation). Edge dropout is applied by the host, from `keep_rate` in the graph spec.

use promax_plugin_api::prelude::*;
use promax_plugin_api::sdk::propagate::{check_layers, LayerSum, Propagation};
use promax_plugin_api::sdk::rows::{node_table_indices, node_tables};
use serde::{Deserialize, Serialize};

/// LightGCN hyperparameters (defaults: the RLMRec / published LightGCN configuration).
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
#[schemars(crate = "promax_plugin_api::schemars")]
pub struct LightGcnHparams {
    /// Embedding size of every user and item (>= 1).
    pub dim: usize,
    /// Propagation layers L (>= 1).
    pub layers: usize,
    /// Sum E0 into the final embeddings (false: layers 1..L only, as in the ProMax code).
    pub include_layer0: bool,
    /// Training-time edge keep probability, in (0, 1]; 1 disables edge dropout.
    pub keep_rate: f32,
}

impl Default for LightGcnHparams {
    fn default() -> Self {
        LightGcnHparams {
            dim: 32,
            layers: 3,
            include_layer0: true,
            keep_rate: 0.8,
        }
    }
}

/// The LightGCN backbone; its propagation keeps two node-sized scratch buffers across calls.
pub struct LightGcn {
    h: LightGcnHparams,
    n_users: usize,
    n_items: usize,
    propagation: Propagation,
}

impl PluginMeta for LightGcn {
    const NAME: &'static str = "lightgcn";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "LightGCN: parameter-free propagation, layers summed";
    type Hparams = LightGcnHparams;
}

impl LightGcn {
    /// The propagation as the hyperparameters set it, read at every call.
    fn layer_sum(&self) -> LayerSum {
        LayerSum {
            dim: self.h.dim,
            layers: self.h.layers,
            include_layer0: self.h.include_layer0,
        }
    }
}

impl BackboneImpl for LightGcn {
    fn new(h: LightGcnHparams, env: &Env) -> PluginResult<Self> {
        check_layers(h.dim, h.layers)?;
        if !(h.keep_rate > 0.0 && h.keep_rate <= 1.0) {
            return Err(format!("`keep_rate` = {} must be in (0, 1]", h.keep_rate));
        }
        Ok(LightGcn {
            h,
            n_users: env.n_users,
            n_items: env.n_items,
            propagation: Propagation::new(),
        })
    }

    fn tables(&self) -> Vec<TableSpec> {
        node_tables(self.n_users, self.n_items, self.h.dim)
    }

    fn node_inputs(&self) -> Vec<usize> {
        node_table_indices()
    }

    fn graph_spec(&self) -> GraphSpec {
        let keep_rate = self.h.keep_rate;
        GraphSpec {
            keep_rate,
            ..GraphSpec::default()
        }
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
        let sum = self.layer_sum();
        self.propagation
            .forward(k, sum, &params, graph.adj, out.data)
    }

    fn backward(
        &mut self,
        k: &Compute<'_>,
        _params: Params<'_>,
        graph: &GraphView<'_>,
        d_out: Emb<'_>,
        mut grads: Grads<'_>,
    ) -> PluginResult<()> {
        // final = Σ Âˡ·E0, so dE0 = Σ (Âᵀ)ˡ·d_out: the same propagation over the transpose.
        let sum = self.layer_sum();
        self.propagation
            .backward(k, sum, graph.adj_t, d_out.data, &mut grads)
    }
}

promax_plugin_api::declare_backbone!(LightGcn);

#[cfg(test)]
mod tests {
    use super::*;
    use promax_plugin_api::sdk::{backbone_box, parse_hparams};
    use promax_plugin_api::testing::{
        assert_backbone_rejects, assert_hparams_documented, bipartite_adjacency, compute,
        drop_edges, emb_buf, env, graph_view, layout_of, new_small_backbone,
        small_graph_mismatches, Csr, ReferenceKernels, SMALL_ITEMS, SMALL_PAIRS, SMALL_USERS,
    };
    use promax_plugin_api::{BackboneBox, PluginKind};

    fn lightgcn(text: &str, n_users: usize, n_items: usize) -> LightGcn {
        let h = parse_hparams(text).expect("valid");
        LightGcn::new(h, &env(n_users, n_items)).expect("builds")
    }

    fn mismatches(b: &mut BackboneBox, adj: &Csr, adj_t: &Csr) -> usize {
        small_graph_mismatches(b, adj, adj_t, 3)
    }

    #[test]
    fn gradients_match_finite_differences() {
        let adj = bipartite_adjacency(SMALL_USERS, SMALL_ITEMS, &SMALL_PAIRS, false);
        let (dropped, dropped_t) = &drop_edges(&adj, 0.6, 11);
        assert_ne!(
            dropped,
            &dropped.transpose(),
            "dropped graph must be asymmetric"
        );
        for text in ["dim = 3", "dim = 3\ninclude_layer0 = false", "layers = 1"] {
            let mut b = backbone_box(lightgcn(text, 4, 5));
            assert_eq!(mismatches(&mut b, &adj, &adj), 0, "{text}");
            assert_eq!(mismatches(&mut b, dropped, dropped_t), 0, "{text}, dropped");
            // A backward that propagated over `adj` instead of its transpose is caught.
            assert!(
                mismatches(&mut b, dropped, dropped) > 0,
                "{text}, adj_t = adj"
            );
        }
    }

    /// LightGCN whose backward forgets the last layer: the check must catch it.
    struct DropsLayer(LightGcn);

    impl PluginMeta for DropsLayer {
        const NAME: &'static str = "drops-layer";
        const VERSION: &'static str = "0";
        const DESCRIPTION: &'static str = "a wrong gradient, on purpose";
        type Hparams = LightGcnHparams;
    }

    impl BackboneImpl for DropsLayer {
        fn new(h: LightGcnHparams, env: &Env) -> PluginResult<Self> {
            LightGcn::new(h, env).map(DropsLayer)
        }
        fn tables(&self) -> Vec<TableSpec> {
            self.0.tables()
        }
        fn width(&self) -> usize {
            self.0.width()
        }
        fn forward(
            &mut self,
            k: &Compute,
            p: Params,
            g: &GraphView,
            o: EmbBuf,
        ) -> PluginResult<()> {
            self.0.forward(k, p, g, o)
        }
        fn backward(
            &mut self,
            k: &Compute,
            p: Params,
            g: &GraphView,
            d: Emb,
            gr: Grads,
        ) -> PluginResult<()> {
            self.0.h.layers -= 1;
            let r = self.0.backward(k, p, g, d, gr);
            self.0.h.layers += 1;
            r
        }
    }

    #[test]
    fn the_gradient_check_catches_a_dropped_layer() {
        let adj = bipartite_adjacency(SMALL_USERS, SMALL_ITEMS, &SMALL_PAIRS, false);
        let mut b = backbone_box(DropsLayer(lightgcn("dim = 3", 4, 5)));
        assert!(mismatches(&mut b, &adj, &adj) > 0);
    }

    #[test]
    fn forward_by_hand_on_one_edge() {
        // One user, one item, one edge: Â = [[0, 1], [1, 0]] swaps the two rows.
        let adj = bipartite_adjacency(1, 1, &[(0, 0)], false);
        let params = [1.0, 2.0, 10.0, 20.0]; // u = (1, 2), i = (10, 20)
        let layout = layout_of(&[table("u", 1, 2, Init::Zeros), table("i", 1, 2, Init::Zeros)]);
        let k = ReferenceKernels.as_ref();
        for (text, want) in [
            ("layers = 3", [22.0, 44.0, 22.0, 44.0]), // [u+i+u+i; i+u+i+u]
            (
                "layers = 3\ninclude_layer0 = false",
                [21.0, 42.0, 12.0, 24.0],
            ), // [i+u+i; u+i+u]
            ("layers = 2", [12.0, 24.0, 21.0, 42.0]), // [u+i+u; i+u+i]
            ("layers = 1\ninclude_layer0 = false", [10.0, 20.0, 1.0, 2.0]), // [i; u]
        ] {
            let mut m = lightgcn(&format!("dim = 2\n{text}"), 1, 1);
            for _ in 0..2 {
                // Stale output and scratch from a previous call must not leak in.
                let mut out = [f32::NAN; 4];
                let (p, g) = (
                    Params::new(&params, &layout),
                    graph_view(1, adj.view(), adj.view()),
                );
                let r = m.forward(&compute(&k), p, &g, emb_buf(&mut out, 1, 1, 2));
                r.expect("runs");
                assert_eq!(out, want, "{text}");
            }
        }
    }

    #[test]
    fn constructor_errors_name_the_key() {
        let cases = [
            ("keep_rate = 0", "`keep_rate`"),
            ("keep_rate = 1.5", "`keep_rate`"),
            ("keep_rate = -0.2", "`keep_rate`"),
            ("layers = 0", "`layers`"),
            ("dim = 0", "`dim`"),
            ("laayers = 2", "did you mean `layers`?"),
            ("include_layer0 = \"yes\"", "`include_layer0`"),
            ("layers = 2.5", "`layers`"),
        ];
        assert_backbone_rejects(root_module(), &cases);
        let b = new_small_backbone(root_module(), "keep_rate = 0.5\nlayers = 2").unwrap();
        let spec = b.graph_spec();
        assert!(spec.uses_graph && !spec.self_loops && spec.keep_rate == 0.5);
        let shapes: Vec<_> = b.tables().iter().map(|t| (t.rows, t.cols)).collect();
        assert_eq!(shapes, [(4, 32), (5, 32)]);
    }

    #[test]
    fn info_documents_every_hyperparameter() {
        let want = [
            ("dim", "32"),
            ("include_layer0", "true"),
            ("keep_rate", "0.8"),
            ("layers", "3"),
        ];
        assert_hparams_documented(root_module(), "lightgcn", PluginKind::Backbone, &want);
    }
}
