//! A model as the host sees it: a backbone plugin, zero or more augmenter plugins, their
//! host-owned parameters, and the graph views they propagate over.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use promax_kernels::{graph::bipartite_adjacency, CpuKernels, CsrMatrix};
use promax_plugin_api::abi_stable::std_types::RStr;
use promax_plugin_api::{
    AugmenterBox, BackboneBox, EmbMut, GraphSpec, GraphView, PluginEnv, PluginKind, ProfilesRef,
};
use rand_chacha::ChaCha8Rng;

use crate::config::Config;
use crate::data::{read_pairs, Dataset, DuplicatePolicy};
use crate::params::ParamStore;
use crate::registry::Registry;

/// An augmenter instance and the graph views it reads (indices into the model's views;
/// its first view is always 0).
pub struct AugmenterSlot {
    pub name: String,
    pub obj: AugmenterBox,
    pub views: Vec<usize>,
}

/// One graph the backbone propagates over.
pub struct ViewGraph {
    pub name: String,
    /// Interactions file it was built from (`None` for the train split).
    pub source: Option<PathBuf>,
    /// Normalised adjacency over users then items (symmetric).
    pub adj: CsrMatrix,
}

/// Backbone + augmenters + parameters + graph views.
pub struct Model {
    pub backbone_name: String,
    pub backbone: BackboneBox,
    pub spec: GraphSpec,
    pub width: usize,
    pub augmenters: Vec<AugmenterSlot>,
    /// `stores[0]` is the backbone's; `stores[1 + j]` augmenter j's.
    pub stores: Vec<ParamStore>,
    pub views: Vec<ViewGraph>,
    pub n_users: usize,
    pub n_items: usize,
}

fn hparams_json(cfg: &Config, name: &str) -> String {
    cfg.plugins
        .get(name)
        .map_or_else(|| "{}".to_owned(), |v| v.to_string())
}

/// Every `[plugins.NAME]` table must name a known plugin (typos would be silently ignored).
fn check_plugin_tables(cfg: &Config, registry: &Registry) -> Result<()> {
    for name in cfg.plugins.keys() {
        registry
            .find(name)
            .with_context(|| format!("config key `plugins.{name}`"))?;
    }
    Ok(())
}

/// A view's interaction file: a relative path names a file in the dataset folder (where
/// published augmented sets live), or, when there is none there, one relative to the
/// working directory (where `promax augment --out` writes its own). A file found in neither
/// place is reported at the dataset-folder path.
fn resolve_view_path(ds: &Dataset, given: &str) -> PathBuf {
    let p = Path::new(given);
    match &ds.dir {
        Some(dir) if p.is_relative() => {
            let in_data = dir.join(p);
            if !in_data.exists() && p.exists() {
                p.to_owned()
            } else {
                in_data
            }
        }
        _ => p.to_owned(),
    }
}

impl Model {
    /// Instantiates the configured plugins, initialises their tables (seeded) and builds
    /// the graph views they need.
    pub fn build(cfg: &Config, registry: &Registry, ds: &Dataset) -> Result<Model> {
        check_plugin_tables(cfg, registry)?;
        let data_dir = ds
            .dir
            .as_ref()
            .map(|d| d.display().to_string())
            .unwrap_or_default();
        let env = PluginEnv {
            n_users: ds.n_users,
            n_items: ds.n_items,
            data_dir: RStr::from(data_dir.as_str()),
            seed: cfg.train.seed,
            profiles: match &ds.profiles {
                Some(p) => ProfilesRef {
                    dim: p.dim,
                    users: p.users.as_slice().into(),
                    items: p.items.as_slice().into(),
                },
                None => ProfilesRef::none(),
            },
        };
        let name = cfg.model.backbone.as_str();
        let entry = registry.get(name, PluginKind::Backbone)?;
        let backbone = (entry.module.new_backbone())(hparams_json(cfg, name).as_str().into(), &env)
            .into_result()
            .map_err(|e| anyhow::anyhow!("{e} (config table [plugins.{name}])"))?;
        let spec = backbone.graph_spec();
        let width = backbone.width();
        if width == 0 {
            bail!("plugin `{name}` reports an output width of 0");
        }
        let mut rng = <ChaCha8Rng as rand::SeedableRng>::seed_from_u64(cfg.train.seed);
        let mut stores = vec![ParamStore::new(
            name,
            backbone.tables().into_vec(),
            &mut rng,
        )?];
        let mut views = vec![ViewGraph {
            name: "train".into(),
            source: None,
            adj: build_adj(&spec, ds.n_users, ds.n_items, &ds.train),
        }];
        let mut augmenters = Vec::new();
        for aug in &cfg.model.augmenters {
            let entry = registry.get(aug, PluginKind::Augmenter)?;
            let obj = (entry.module.new_augmenter())(hparams_json(cfg, aug).as_str().into(), &env)
                .into_result()
                .map_err(|e| anyhow::anyhow!("{e} (config table [plugins.{aug}])"))?;
            let mut slot_views = vec![0];
            for v in obj.views().into_vec() {
                let path = resolve_view_path(ds, v.interactions.as_str());
                let idx = match views
                    .iter()
                    .position(|g| g.source.as_deref() == Some(&path))
                {
                    Some(i) => i,
                    None => {
                        let pairs = read_pairs(
                            &path,
                            Some(ds.n_users),
                            Some(ds.n_items),
                            DuplicatePolicy::Error,
                        )
                        .with_context(|| format!("graph view `{}` of plugin `{aug}`", v.name))?;
                        views.push(ViewGraph {
                            name: v.name.to_string(),
                            source: Some(path),
                            adj: build_adj(&spec, ds.n_users, ds.n_items, &pairs),
                        });
                        views.len() - 1
                    }
                };
                slot_views.push(idx);
            }
            stores.push(ParamStore::new(aug, obj.tables().into_vec(), &mut rng)?);
            augmenters.push(AugmenterSlot {
                name: aug.clone(),
                obj,
                views: slot_views,
            });
        }
        Ok(Model {
            backbone_name: name.to_owned(),
            backbone,
            spec,
            width,
            augmenters,
            stores,
            views,
            n_users: ds.n_users,
            n_items: ds.n_items,
        })
    }

    pub fn n_nodes(&self) -> usize {
        self.n_users + self.n_items
    }

    /// Total number of trainable parameters.
    pub fn n_params(&self) -> usize {
        self.stores.iter().map(|s| s.data.len()).sum()
    }

    /// Final embeddings on the full training graph (no dropout), into `out`.
    pub fn embed(&mut self, kernels: &CpuKernels, out: &mut Vec<f32>) -> Result<()> {
        out.resize(self.n_nodes() * self.width, 0.0);
        let adj = &self.views[0].adj;
        let gv = graph_view(adj, adj, self.n_users, self.n_items, 0, false);
        forward(
            &mut self.backbone,
            kernels,
            &self.stores[0],
            gv,
            out,
            self.width,
        )
    }
}

/// The normalised adjacency a backbone asked for (an empty matrix when it reads no graph).
pub fn build_adj(
    spec: &GraphSpec,
    n_users: usize,
    n_items: usize,
    pairs: &[(u32, u32)],
) -> CsrMatrix {
    if spec.uses_graph {
        bipartite_adjacency(n_users, n_items, pairs, spec.self_loops)
    } else {
        let n = n_users + n_items;
        CsrMatrix::from_triplets(n, n, &[])
    }
}

/// The ABI view of a graph.
pub fn graph_view<'a>(
    adj: &'a CsrMatrix,
    adj_t: &'a CsrMatrix,
    n_users: usize,
    n_items: usize,
    view: u32,
    training: bool,
) -> GraphView<'a> {
    GraphView {
        n_users,
        n_items,
        adj: adj.view(),
        adj_t: adj_t.view(),
        view,
        training,
    }
}

/// Runs the backbone's forward into `out`.
pub fn forward(
    backbone: &mut BackboneBox,
    kernels: &CpuKernels,
    store: &ParamStore,
    gv: GraphView<'_>,
    out: &mut [f32],
    width: usize,
) -> Result<()> {
    let emb = EmbMut {
        data: out.into(),
        n_users: gv.n_users,
        n_items: gv.n_items,
        width,
    };
    backbone
        .forward(kernels.as_ref(), store.params().to_abi(), gv, emb)
        .into_result()
        .map_err(|e| anyhow::anyhow!("{e}"))
}
