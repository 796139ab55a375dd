//! LR-GCCF as run for the published numbers (docs/methods.md, RLMRec's `gccf.py`):
//! `E(l+1) = Â·E(l)` over `Â = D^-1/2 (A + I) D^-1/2` from `E0 = [U; I]`, no weight matrix,
//! no activation; final = `[E0 | E1 | … | EL]`, the layers concatenated along columns.

use promax_plugin_api::prelude::*;
use promax_plugin_api::sdk::propagate::check_layers;
use promax_plugin_api::sdk::rows::{
    add_node_gradient, node_table_indices, node_tables, stack_nodes,
};
use serde::{Deserialize, Serialize};

/// LR-GCCF hyperparameters (defaults: the published configuration, docs/methods.md).
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
#[schemars(crate = "promax_plugin_api::schemars")]
pub struct GccfHparams {
    /// Embedding size d of every layer (>= 1); the output has d·(L+1) columns.
    pub dim: usize,
    /// Propagation layers L (>= 1).
    pub layers: usize,
}

impl Default for GccfHparams {
    fn default() -> Self {
        GccfHparams { dim: 32, layers: 2 }
    }
}

/// The LR-GCCF backbone, with two nodes × dim scratch buffers kept across calls.
pub struct Gccf {
    h: GccfHparams,
    n_users: usize,
    n_items: usize,
    /// The current layer (forward) or the running sum of Horner's rule (backward).
    cur: Vec<f32>,
    /// Ping-pong partner of `cur`.
    next: Vec<f32>,
}

impl PluginMeta for Gccf {
    const NAME: &'static str = "gccf";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "LR-GCCF: linear propagation over the self-looped graph, layers concatenated";
    type Hparams = GccfHparams;
}

impl Gccf {
    /// Checks `values` against `nodes × cols` and sizes the scratch buffers (once).
    fn sized(&mut self, values: usize, cols: usize) -> PluginResult<()> {
        let nodes = self.n_users + self.n_items;
        if values != nodes * cols {
            return Err(format!(
                "embeddings hold {values} values, expected {nodes} nodes × {cols}"
            ));
        }
        let n = nodes * self.h.dim;
        self.cur.resize(n, 0.0);
        self.next.resize(n, 0.0);
        Ok(())
    }
}

/// Rows of column block `block` (d columns) of `wide` (rows × width): `wide[r][block·d..]`.
fn block(wide: &[f32], width: usize, d: usize, block: usize) -> impl Iterator<Item = &[f32]> {
    (wide.chunks_exact(width)).map(move |r| &r[block * d..(block + 1) * d])
}

/// Mutable [`block`].
fn block_mut(
    wide: &mut [f32],
    width: usize,
    d: usize,
    block: usize,
) -> impl Iterator<Item = &mut [f32]> {
    (wide.chunks_exact_mut(width)).map(move |r| &mut r[block * d..(block + 1) * d])
}

impl BackboneImpl for Gccf {
    fn new(h: GccfHparams, env: &Env) -> PluginResult<Self> {
        check_layers(h.dim, h.layers)?;
        Ok(Gccf {
            h,
            n_users: env.n_users,
            n_items: env.n_items,
            cur: Vec::new(),
            next: Vec::new(),
        })
    }

    fn tables(&self) -> Vec<TableSpec> {
        node_tables(self.n_users, self.n_items, self.h.dim)
    }

    fn node_inputs(&self) -> Vec<usize> {
        node_table_indices()
    }

    /// Self-loops: the host normalises A + I. The published config lists keep_rate 0.8, but
    /// the code that produced the numbers never drops edges (docs/methods.md): keep_rate 1.0.
    fn graph_spec(&self) -> GraphSpec {
        GraphSpec {
            self_loops: true,
            keep_rate: 1.0,
            uses_graph: true,
        }
    }

    fn width(&self) -> usize {
        self.h.dim * (self.h.layers + 1)
    }

    fn forward(
        &mut self,
        k: &Compute<'_>,
        params: Params<'_>,
        graph: &GraphView<'_>,
        out: EmbBuf<'_>,
    ) -> PluginResult<()> {
        self.sized(out.data.len(), self.width())?;
        stack_nodes(&params, &mut self.cur)?;
        let (d, width) = (self.h.dim, self.width());
        for l in 0..=self.h.layers {
            if l > 0 {
                k.spmm(graph.adj, &self.cur, d, &mut self.next, 0.0)?;
                std::mem::swap(&mut self.cur, &mut self.next);
            }
            let rows = block_mut(out.data, width, d, l).zip(self.cur.chunks_exact(d));
            rows.for_each(|(o, x)| o.copy_from_slice(x));
        }
        Ok(())
    }

    fn backward(
        &mut self,
        k: &Compute<'_>,
        _params: Params<'_>,
        graph: &GraphView<'_>,
        d_out: Emb<'_>,
        mut grads: Grads<'_>,
    ) -> PluginResult<()> {
        // dE0 = Σ_l (Âᵀ)ˡ·G_l (G_l: block l of d_out), by Horner's rule
        // G_0 + Âᵀ(G_1 + Âᵀ(… + Âᵀ G_L)): L products over the transpose.
        self.sized(d_out.data.len(), self.width())?;
        let (d, width) = (self.h.dim, self.width());
        let load = |dense: &mut [f32], l| {
            let rows = dense
                .chunks_exact_mut(d)
                .zip(block(d_out.data, width, d, l));
            rows.for_each(|(x, g)| x.copy_from_slice(g))
        };
        load(&mut self.cur, self.h.layers);
        for l in (0..self.h.layers).rev() {
            load(&mut self.next, l);
            k.spmm(graph.adj_t, &self.cur, d, &mut self.next, 1.0)?;
            std::mem::swap(&mut self.cur, &mut self.next);
        }
        add_node_gradient(&self.cur, &mut grads)
    }
}

promax_plugin_api::declare_backbone!(Gccf);

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

    fn gccf(text: &str, n_users: usize, n_items: usize) -> Gccf {
        let h = parse_hparams(text).expect("valid");
        Gccf::new(h, &env(n_users, n_items)).expect("builds")
    }

    fn mismatches(b: &mut BackboneBox, adj: &Csr, adj_t: &Csr) -> usize {
        small_graph_mismatches(b, adj, adj_t, 5)
    }

    #[test]
    fn gradients_match_finite_differences() {
        let adj = bipartite_adjacency(SMALL_USERS, SMALL_ITEMS, &SMALL_PAIRS, true);
        // The host never drops GCCF's edges; an asymmetric graph makes adj and adj_t differ,
        // so that a backward over the wrong one is caught.
        let (dropped, dropped_t) = &drop_edges(&adj, 0.6, 11);
        assert_ne!(
            dropped,
            &dropped.transpose(),
            "dropped graph must be asymmetric"
        );
        for text in ["dim = 3", "dim = 3\nlayers = 1", "dim = 2\nlayers = 4"] {
            let mut b = backbone_box(gccf(text, 4, 5));
            assert_eq!(mismatches(&mut b, &adj, &adj), 0, "{text}");
            assert_eq!(mismatches(&mut b, dropped, dropped_t), 0, "{text}, dropped");
            assert!(
                mismatches(&mut b, dropped, dropped) > 0,
                "{text}, adj_t = adj"
            );
        }
    }

    #[test]
    fn forward_by_hand_on_one_edge() {
        // One user, one item, one edge, self-loops: A + I = [[1, 1], [1, 1]], every degree
        // is 2, so Â = [[½, ½], [½, ½]] maps both rows to their mean.
        let adj = bipartite_adjacency(1, 1, &[(0, 0)], true);
        let params = [1.0, 2.0, 10.0, 20.0]; // u = (1, 2), i = (10, 20)
        let layout = layout_of(&[table("u", 1, 2, Init::Zeros), table("i", 1, 2, Init::Zeros)]);
        let k = ReferenceKernels.as_ref();
        let m = [5.5, 11.0]; // (u + i) / 2, and every later layer: Â is idempotent here
        for (layers, want) in [
            (1, vec![[1.0, 2.0], m, [10.0, 20.0], m]),
            (2, vec![[1.0, 2.0], m, m, [10.0, 20.0], m, m]),
        ] {
            let mut g = gccf(&format!("dim = 2\nlayers = {layers}"), 1, 1);
            assert_eq!(g.width(), 2 * (layers + 1));
            let want: Vec<f32> = want.concat();
            for _ in 0..2 {
                // Stale output and scratch from a previous call must not leak in.
                let mut out = vec![f32::NAN; want.len()];
                let (p, gv) = (
                    Params::new(&params, &layout),
                    graph_view(1, adj.view(), adj.view()),
                );
                let w = g.width();
                let r = g.forward(&compute(&k), p, &gv, emb_buf(&mut out, 1, 1, w));
                r.expect("runs");
                assert_eq!(out, want, "layers = {layers}");
            }
        }
    }

    #[test]
    fn constructor_errors_name_the_key() {
        let cases = [
            ("layers = 0", "`layers`"),
            ("dim = 0", "`dim`"),
            ("dim = -3", "`dim`"),
            ("layers = 2.5", "`layers`"),
            ("laayers = 2", "did you mean `layers`?"),
            ("keep_rate = 0.8", "`keep_rate`"),
        ];
        assert_backbone_rejects(root_module(), &cases);
        let b = new_small_backbone(root_module(), "layers = 3").unwrap();
        let spec = b.graph_spec();
        assert!(spec.uses_graph && spec.self_loops && spec.keep_rate == 1.0);
        assert_eq!(b.width(), 32 * 4);
        let shapes: Vec<_> = b.tables().iter().map(|t| (t.rows, t.cols)).collect();
        assert_eq!(shapes, [(4, 32), (5, 32)]);
    }

    #[test]
    fn info_documents_every_hyperparameter() {
        let want = [("dim", "32"), ("layers", "2")];
        assert_hparams_documented(root_module(), "gccf", PluginKind::Backbone, &want);
    }
}
