//! A model as the host sees it: a backbone plugin, zero or more augmenter plugins, their
//! host-owned parameters, and the graph views they propagate over.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use promax_kernels::{graph::bipartite_adjacency, CpuKernels, CsrMatrix};
use promax_plugin_api::GraphSpec;
use rand_chacha::ChaCha8Rng;

use crate::config::Config;
use crate::data::{read_pairs, Dataset, DuplicatePolicy, Pairs};
use crate::input_mask::NodeInputs;
use crate::params::ParamStore;
use crate::plugin::{AugmenterHandle, BackboneHandle, Graph, PluginFactory};
use crate::registry::Registry;

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
    pub backbone: BackboneHandle,
    pub width: usize,
    pub augmenters: Vec<AugmenterHandle>,
    /// `stores[0]` is the backbone's; `stores[1 + j]` augmenter j's.
    pub stores: Vec<ParamStore>,
    pub views: Vec<ViewGraph>,
    pub n_users: usize,
    pub n_items: usize,
    /// The backbone's node-input rows, when it declares them.
    pub node_inputs: Option<NodeInputs>,
    /// The augmenters (indices into `augmenters`) that replace input rows every step.
    pub masking: Vec<usize>,
}

/// The `[plugins.NAME]` table of a config as the JSON text a plugin constructor reads.
pub fn hparams_json(cfg: &Config, name: &str) -> String {
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

/// The graph views whose interactions name no file but a set built for the run
/// (`source:NAME`, docs/methods.md "Augmentation sources"). The augment module implements
/// it (`augment::cache::SourceViews`); the model only asks.
pub trait NamedViews {
    /// `None` when `interactions` names a file; else the set's pairs and the path that
    /// identifies it (its cache file, or a name for a set built in memory).
    fn resolve(
        &self,
        cfg: &Config,
        ds: &Dataset,
        interactions: &str,
    ) -> Option<Result<(PathBuf, Pairs)>>;
}

/// Every view's interactions name a file.
pub struct FilesOnly;

impl NamedViews for FilesOnly {
    fn resolve(&self, _: &Config, _: &Dataset, _: &str) -> Option<Result<(PathBuf, Pairs)>> {
        None
    }
}

/// Where a view's error points: the plugin's hyperparameter that holds `interactions`
/// (`plugins.promax.augmented`) when one does, and the view.
fn view_context(cfg: &Config, plugin: &str, view: &str, interactions: &str) -> String {
    let key = cfg
        .plugins
        .get(plugin)
        .and_then(|t| t.as_object())
        .and_then(|t| t.iter().find(|(_, v)| v.as_str() == Some(interactions)))
        .map(|(k, _)| format!("plugins.{plugin}.{k} = {interactions:?}: "))
        .unwrap_or_default();
    format!("{key}graph view `{view}` of plugin `{plugin}`")
}

impl Model {
    /// Instantiates the configured plugins, initialises their tables (seeded) and builds
    /// the graph views they need; a view named by `source:NAME` comes from `named`.
    pub fn build(
        cfg: &Config,
        registry: &Registry,
        ds: &Dataset,
        named: &dyn NamedViews,
    ) -> Result<Model> {
        check_plugin_tables(cfg, registry)?;
        let plugins = PluginFactory::new(registry, ds, cfg.train.seed);
        let name = cfg.model.backbone.as_str();
        let backbone = plugins.backbone(name, &hparams_json(cfg, name))?;
        let spec = backbone.graph_spec();
        let mut rng = <ChaCha8Rng as rand::SeedableRng>::seed_from_u64(cfg.train.seed);
        let mut stores = vec![ParamStore::new(name, backbone.tables(), &mut rng)?];
        let mut views = vec![ViewGraph {
            name: "train".into(),
            source: None,
            adj: build_adj(&spec, ds.n_users, ds.n_items, &ds.train),
        }];
        let mut augmenters = Vec::new();
        for aug in &cfg.model.augmenters {
            let mut handle = plugins.augmenter(aug, &hparams_json(cfg, aug), backbone.dims())?;
            for v in handle.view_requests() {
                let context = || view_context(cfg, aug, &v.name, &v.interactions);
                let (path, built) = match named.resolve(cfg, ds, &v.interactions) {
                    Some(found) => {
                        let (path, pairs) = found.with_context(context)?;
                        (path, Some(pairs))
                    }
                    None => (resolve_view_path(ds, &v.interactions), None),
                };
                let idx = match views
                    .iter()
                    .position(|g| g.source.as_deref() == Some(&path))
                {
                    Some(i) => i,
                    None => {
                        let pairs = match built {
                            Some(pairs) => pairs,
                            None => read_pairs(
                                &path,
                                Some(ds.n_users),
                                Some(ds.n_items),
                                DuplicatePolicy::Error,
                            )
                            .with_context(context)?,
                        };
                        views.push(ViewGraph {
                            name: v.name,
                            source: Some(path),
                            adj: build_adj(&spec, ds.n_users, ds.n_items, &pairs),
                        });
                        views.len() - 1
                    }
                };
                handle.add_view(idx);
            }
            stores.push(ParamStore::new(aug, handle.tables(), &mut rng)?);
            augmenters.push(handle);
        }
        let node_inputs = NodeInputs::new(
            name,
            &stores[0].specs,
            &backbone.node_inputs(),
            ds.n_users + ds.n_items,
        )?;
        let masking = masking_augmenters(&augmenters, name, node_inputs.is_some())?;
        Ok(Model {
            node_inputs,
            masking,
            width: backbone.dims().width,
            backbone,
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
        out.resize(self.backbone.dims().n_values(), 0.0);
        let graph = Graph::evaluation(&self.views[0].adj);
        self.backbone.forward(kernels, &self.stores[0], graph, out)
    }
}

/// The augmenters that replace backbone input rows; an error when the backbone declares
/// none it could replace.
pub(crate) fn masking_augmenters(
    augmenters: &[AugmenterHandle],
    backbone: &str,
    has_inputs: bool,
) -> Result<Vec<usize>> {
    let masking: Vec<usize> = (0..augmenters.len())
        .filter(|&j| augmenters[j].masks_inputs())
        .collect();
    if let (Some(&j), false) = (masking.first(), has_inputs) {
        anyhow::bail!(
            "augmenter `{}` replaces the backbone's input rows of masked nodes, but backbone \
             `{backbone}` declares no node-input tables (`node_inputs` in its plugin): the \
             two cannot be combined",
            augmenters[j].name()
        );
    }
    Ok(masking)
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
