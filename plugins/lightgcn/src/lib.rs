//! LightGCN: `E(l+1) = Â·E(l)` from `E0 = [U; I]`, final = `Σ_l E(l)` (no weights, no
//! activation). Edge dropout is applied by the host, from `keep_rate` in the graph spec.

use promax_plugin_api::prelude::*;
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

/// The LightGCN backbone, with two nodes × dim scratch buffers kept across calls.
pub struct LightGcn {
    h: LightGcnHparams,
    n_users: usize,
    n_items: usize,
    /// E0 in forward; dE0 (the result) in backward.
    x0: Vec<f32>,
    /// Ping-pong partner of the output during propagation.
    tmp: Vec<f32>,
}

impl PluginMeta for LightGcn {
    const NAME: &'static str = "lightgcn";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "LightGCN: parameter-free propagation, layers summed";
    type Hparams = LightGcnHparams;
}

/// `out = Σ_{l=s..L} Aˡ·x` (s = 0 with `include_layer0`, else 1), by Horner's rule
/// `x + A(x + A(x + …))`: L products, alternating between `out` and `tmp`.
fn propagate(
    h: &LightGcnHparams,
    k: &Compute<'_>,
    a: CsrView<'_>,
    x: &[f32],
    out: &mut [f32],
    tmp: &mut [f32],
) -> PluginResult<()> {
    for step in 0..h.layers {
        let lands_in_out = (h.layers - step) % 2 == 1; // an odd number of products left
        let (src, dst): (&[f32], &mut [f32]) = match (step, lands_in_out) {
            (0, true) => (x, &mut *out),
            (0, false) => (x, &mut *tmp),
            (_, true) => (&*tmp, &mut *out),
            (_, false) => (&*out, &mut *tmp),
        };
        // dst = x + A·src, except for the outermost product without layer 0: dst = A·src.
        let beta = if step + 1 == h.layers && !h.include_layer0 {
            0.0 // BLAS convention: out is not read
        } else {
            dst.copy_from_slice(x);
            1.0
        };
        k.spmm(a, src, h.dim, dst, beta)?;
    }
    Ok(())
}

/// Checks that `n` values match the two tables, and sizes the scratch buffers (once).
fn sized(scratch: [&mut Vec<f32>; 2], n: usize, tables: usize) -> PluginResult<()> {
    if n != tables {
        return Err(format!("embeddings hold {n} values, the tables {tables}"));
    }
    scratch.into_iter().for_each(|v| v.resize(n, 0.0));
    Ok(())
}

impl BackboneImpl for LightGcn {
    fn new(h: LightGcnHparams, env: &Env) -> PluginResult<Self> {
        if h.dim == 0 {
            return Err("`dim` must be at least 1".into());
        }
        if h.layers == 0 {
            return Err("`layers` must be at least 1 (use the mf backbone for 0)".into());
        }
        if !(h.keep_rate > 0.0 && h.keep_rate <= 1.0) {
            return Err(format!("`keep_rate` = {} must be in (0, 1]", h.keep_rate));
        }
        let (n_users, n_items) = (env.n_users, env.n_items);
        let (x0, tmp) = (Vec::new(), Vec::new());
        Ok(LightGcn {
            h,
            n_users,
            n_items,
            x0,
            tmp,
        })
    }

    fn tables(&self) -> Vec<TableSpec> {
        vec![
            table("user_emb", self.n_users, self.h.dim, Init::XavierUniform),
            table("item_emb", self.n_items, self.h.dim, Init::XavierUniform),
        ]
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
        let (u, i) = (params.table(0), params.table(1));
        sized(
            [&mut self.x0, &mut self.tmp],
            out.data.len(),
            u.len() + i.len(),
        )?;
        let (x0u, x0i) = self.x0.split_at_mut(u.len());
        x0u.copy_from_slice(u);
        x0i.copy_from_slice(i);
        propagate(&self.h, k, graph.adj, &self.x0, out.data, &mut self.tmp)
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
        let nu = grads.table_mut(0).len();
        let tables = nu + grads.table_mut(1).len();
        sized([&mut self.x0, &mut self.tmp], d_out.data.len(), tables)?;
        propagate(
            &self.h,
            k,
            graph.adj_t,
            d_out.data,
            &mut self.x0,
            &mut self.tmp,
        )?;
        for (t, d) in [(0, &self.x0[..nu]), (1, &self.x0[nu..])] {
            grads
                .table_mut(t)
                .iter_mut()
                .zip(d)
                .for_each(|(g, d)| *g += d);
        }
        Ok(())
    }
}

promax_plugin_api::declare_backbone!(LightGcn);

#[cfg(test)]
mod tests {
    use super::*;
    use promax_kernels::{graph::bipartite_adjacency, graph::EdgeDropout, CpuKernels, CsrMatrix};
    use promax_plugin_api::sdk::{backbone_box, parse_hparams};
    use promax_plugin_api::testing::{
        check_backbone_gradients, compute, emb_buf, env, graph_view, layout_of,
    };
    use promax_plugin_api::{BackboneBox, PluginEnv, PluginKind};

    const PAIRS: [(u32, u32); 8] = [
        (0, 0),
        (0, 1),
        (0, 4),
        (1, 1),
        (1, 2),
        (2, 3),
        (3, 4),
        (3, 0),
    ];

    fn lightgcn(text: &str, n_users: usize, n_items: usize) -> LightGcn {
        let h = parse_hparams(text).expect("valid");
        LightGcn::new(h, &env(n_users, n_items)).expect("builds")
    }

    /// Mismatches of the finite-difference check on the 4 × 5 graph, all parameters.
    fn mismatches(b: &mut BackboneBox, adj: &CsrMatrix, adj_t: &CsrMatrix) -> usize {
        let g = graph_view(4, adj.view(), adj_t.view());
        let bad = check_backbone_gradients(b, &CpuKernels.as_ref(), g, usize::MAX, 3);
        bad.expect("runs").len()
    }

    #[test]
    fn gradients_match_finite_differences() {
        let adj = bipartite_adjacency(4, 5, &PAIRS, false);
        let mut dropout = EdgeDropout::new();
        let (dropped, dropped_t) = dropout.apply(&adj, 0.6, 11);
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
        let adj = bipartite_adjacency(4, 5, &PAIRS, false);
        let mut b = backbone_box(DropsLayer(lightgcn("dim = 3", 4, 5)));
        assert!(mismatches(&mut b, &adj, &adj) > 0);
    }

    #[test]
    fn forward_by_hand_on_one_edge() {
        // One user, one item, one edge: Â = [[0, 1], [1, 0]] swaps the two rows.
        let adj = bipartite_adjacency(1, 1, &[(0, 0)], false);
        let params = [1.0, 2.0, 10.0, 20.0]; // u = (1, 2), i = (10, 20)
        let layout = layout_of(&[table("u", 1, 2, Init::Zeros), table("i", 1, 2, Init::Zeros)]);
        let k = CpuKernels.as_ref();
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
        let m = root_module();
        let env = PluginEnv {
            n_users: 4,
            n_items: 5,
            data_dir: "".into(),
            seed: 1,
            profiles: promax_plugin_api::ProfilesRef::none(),
        };
        let err = |text: &str| match m.new_backbone()(text.into(), &env).into_result() {
            Ok(_) => panic!("`{text}` was accepted"),
            Err(e) => e.into_string(),
        };
        for (text, key) in [
            ("keep_rate = 0", "`keep_rate`"),
            ("keep_rate = 1.5", "`keep_rate`"),
            ("keep_rate = -0.2", "`keep_rate`"),
            ("layers = 0", "`layers`"),
            ("dim = 0", "`dim`"),
            ("laayers = 2", "did you mean `layers`?"),
            ("include_layer0 = \"yes\"", "`include_layer0`"),
            ("layers = 2.5", "`layers`"),
        ] {
            assert!(err(text).contains(key), "{text}: {}", err(text));
        }
        let b = m.new_backbone()("keep_rate = 0.5\nlayers = 2".into(), &env).unwrap();
        let spec = b.graph_spec();
        assert!(spec.uses_graph && !spec.self_loops && spec.keep_rate == 0.5);
        let shapes: Vec<_> = b.tables().iter().map(|t| (t.rows, t.cols)).collect();
        assert_eq!(shapes, [(4, 32), (5, 32)]);
    }

    #[test]
    fn info_documents_every_hyperparameter() {
        let info = root_module().info()().unwrap();
        assert_eq!(info.name.as_str(), "lightgcn");
        assert_eq!(info.kind, PluginKind::Backbone);
        let mut shown: Vec<(&str, &str)> = (info.hparams.iter())
            .map(|h| (h.name.as_str(), h.default.as_str()))
            .collect();
        shown.sort_unstable();
        let want = [
            ("dim", "32"),
            ("include_layer0", "true"),
            ("keep_rate", "0.8"),
            ("layers", "3"),
        ];
        assert_eq!(shown, want);
        assert!(info.hparams.iter().all(|h| !h.doc.is_empty()));
    }
}
