//! `scaled-mf`: BPR-MF whose final embeddings are multiplied by a constant, `final = s·[U; I]`.
//! The smallest complete third-party backbone: hyperparameters, tables, forward, backward.

use promax_plugin_api::prelude::*;
use promax_plugin_api::sdk::rows::{add_node_gradient, node_tables, stack_nodes};
use serde::{Deserialize, Serialize};

/// Hyperparameters; each field's `///` comment is its doc in `promax plugins show`.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
#[schemars(crate = "promax_plugin_api::schemars")]
pub struct Hparams {
    /// Embedding size (>= 1).
    pub dim: usize,
    /// Constant factor applied to every final embedding (> 0).
    pub scale: f32,
}

impl Default for Hparams {
    fn default() -> Self {
        Hparams {
            dim: 32,
            scale: 1.0,
        }
    }
}

/// The backbone: two free tables, scaled on the way out.
pub struct ScaledMf {
    h: Hparams,
    n_users: usize,
    n_items: usize,
}

impl PluginMeta for ScaledMf {
    const NAME: &'static str = "scaled-mf";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "MF with final embeddings multiplied by a constant";
    type Hparams = Hparams;
}

impl BackboneImpl for ScaledMf {
    fn new(h: Hparams, env: &Env) -> PluginResult<Self> {
        if h.dim == 0 {
            return Err("`dim` must be at least 1".into());
        }
        if !(h.scale > 0.0 && h.scale.is_finite()) {
            return Err(format!("`scale` = {} must be a finite number > 0", h.scale));
        }
        let (n_users, n_items) = (env.n_users, env.n_items);
        Ok(ScaledMf {
            h,
            n_users,
            n_items,
        })
    }

    fn tables(&self) -> Vec<TableSpec> {
        node_tables(self.n_users, self.n_items, self.h.dim)
    }

    fn graph_spec(&self) -> GraphSpec {
        GraphSpec {
            uses_graph: false,
            ..GraphSpec::default()
        }
    }

    fn width(&self) -> usize {
        self.h.dim
    }

    fn forward(&mut self, _: &Compute, p: Params, _: &GraphView, out: EmbBuf) -> PluginResult<()> {
        stack_nodes(&p, out.data)?;
        out.data.iter_mut().for_each(|o| *o *= self.h.scale);
        Ok(())
    }

    fn backward(
        &mut self,
        _: &Compute,
        _: Params,
        _: &GraphView,
        d: Emb,
        mut g: Grads,
    ) -> PluginResult<()> {
        let scaled: Vec<f32> = d.data.iter().map(|d| self.h.scale * d).collect();
        add_node_gradient(&scaled, &mut g)
    }
}

promax_plugin_api::declare_backbone!(ScaledMf);
promax_plugin_api::export_plugin!(root_module);
