//! BPR-MF: the final embeddings are the trainable tables themselves, `final = [U; I]`.

use promax_plugin_api::prelude::*;
use promax_plugin_api::sdk::rows::{
    add_node_gradient, node_table_indices, node_tables, stack_nodes,
};
use serde::{Deserialize, Serialize};

/// MF hyperparameters.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
#[schemars(crate = "promax_plugin_api::schemars")]
pub struct MfHparams {
    /// Embedding size of every user and item (>= 1).
    pub dim: usize,
}

impl Default for MfHparams {
    fn default() -> Self {
        MfHparams { dim: 32 }
    }
}

/// Matrix factorisation: one free embedding per user and per item.
pub struct Mf {
    dim: usize,
    n_users: usize,
    n_items: usize,
}

impl PluginMeta for Mf {
    const NAME: &'static str = "mf";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "BPR-MF: final embeddings are the user and item tables";
    type Hparams = MfHparams;
}

impl BackboneImpl for Mf {
    fn new(h: MfHparams, env: &Env) -> PluginResult<Self> {
        if h.dim == 0 {
            return Err("`dim` must be at least 1".into());
        }
        Ok(Mf {
            dim: h.dim,
            n_users: env.n_users,
            n_items: env.n_items,
        })
    }

    fn tables(&self) -> Vec<TableSpec> {
        node_tables(self.n_users, self.n_items, self.dim)
    }

    fn node_inputs(&self) -> Vec<usize> {
        node_table_indices()
    }

    fn graph_spec(&self) -> GraphSpec {
        GraphSpec {
            uses_graph: false,
            ..GraphSpec::default()
        }
    }

    fn width(&self) -> usize {
        self.dim
    }

    fn forward(
        &mut self,
        _k: &Compute<'_>,
        params: Params<'_>,
        _graph: &GraphView<'_>,
        out: EmbBuf<'_>,
    ) -> PluginResult<()> {
        stack_nodes(&params, out.data)
    }

    fn backward(
        &mut self,
        _k: &Compute<'_>,
        _params: Params<'_>,
        _graph: &GraphView<'_>,
        d_out: Emb<'_>,
        mut grads: Grads<'_>,
    ) -> PluginResult<()> {
        add_node_gradient(d_out.data, &mut grads)
    }
}

promax_plugin_api::declare_backbone!(Mf);

#[cfg(test)]
mod tests {
    use super::*;
    use promax_plugin_api::testing::{
        assert_backbone_rejects, assert_hparams_documented, bipartite_adjacency,
        check_backbone_gradients, env, graph_view, new_small_backbone, Csr, ReferenceKernels,
    };
    use promax_plugin_api::{sdk::backbone_box, PluginKind};

    #[test]
    fn gradients_match_finite_differences() {
        let pairs = [(0, 0), (0, 1), (1, 1), (1, 2), (2, 3), (3, 4), (3, 0)];
        let adj = bipartite_adjacency(4, 5, &pairs, false);
        let graph = graph_view(4, adj.view(), adj.view());
        let k = ReferenceKernels.as_ref();
        for dim in [1, 3, 32] {
            let mut b = backbone_box(Mf::new(MfHparams { dim }, &env(4, 5)).unwrap());
            assert_eq!(b.width(), dim);
            let bad = check_backbone_gradients(&mut b, &k, graph, usize::MAX, 7).unwrap();
            assert!(bad.is_empty(), "dim {dim}: {bad:?}");
        }
        // MF never reads the graph: the host may skip building it (`uses_graph = false`).
        let none = Csr::default();
        let graph = GraphView {
            adj: none.view(),
            adj_t: none.view(),
            ..graph
        };
        let mut b = backbone_box(Mf::new(MfHparams::default(), &env(4, 5)).unwrap());
        assert!(!b.graph_spec().uses_graph);
        let bad = check_backbone_gradients(&mut b, &k, graph, usize::MAX, 8).unwrap();
        assert!(bad.is_empty(), "{bad:?}");
    }

    #[test]
    fn constructor_errors_name_the_key() {
        let cases = [
            ("dim = 0", "`dim`"),
            ("dimm = 8", "did you mean `dim`?"),
            (r#"dim = "big""#, "`dim`"),
        ];
        assert_backbone_rejects(root_module(), &cases);
        let b = new_small_backbone(root_module(), r#"{"dim": 8}"#).unwrap();
        let shapes: Vec<_> = b.tables().iter().map(|t| (t.rows, t.cols)).collect();
        assert_eq!(shapes, [(4, 8), (5, 8)]);
    }

    #[test]
    fn info_documents_every_hyperparameter() {
        let want = [("dim", "32")];
        assert_hparams_documented(root_module(), "mf", PluginKind::Backbone, &want);
    }
}
