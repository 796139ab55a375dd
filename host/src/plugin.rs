//! Safe handles over the plugin ABI, in the manner of DataFusion's `Foreign*` wrappers: a
//! [`BackboneHandle`] or [`AugmenterHandle`] owns one plugin instance's ABI trait object and
//! the run's sizes, so the host calls it with its own buffers ([`ParamStore`]s, node-embedding
//! slices, a [`Graph`], a [`Batch`]) and gets errors that name the plugin and the call. This
//! module and the registry are the only host code that touches ABI types (docs/architecture.md).

use anyhow::{anyhow, bail, Context, Result};
use promax_kernels::{CpuKernels, CsrMatrix};
use promax_plugin_api::abi_stable::std_types::{RResult, RString, RVec};
use promax_plugin_api::sdk::{Emb, EmbBuf};
use promax_plugin_api::{
    AugmenterBox, BackboneBox, BatchView, EmbMut, EmbRef, GraphSpec, GraphView, LossTerm,
    PluginEnv, PluginKind, ProfilesRef, TableSpec,
};

use crate::data::Dataset;
use crate::params::ParamStore;
use crate::registry::Registry;

/// Named loss values, in the order they were computed.
pub type Terms = Vec<(String, f64)>;

/// The shape of a node-embedding buffer: users then items, `width` columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dims {
    pub n_users: usize,
    pub n_items: usize,
    pub width: usize,
}

impl Dims {
    /// Values in one buffer of this shape.
    pub fn n_values(self) -> usize {
        (self.n_users + self.n_items) * self.width
    }

    pub fn emb(self, data: &[f32]) -> Emb<'_> {
        Emb {
            data,
            n_users: self.n_users,
            n_items: self.n_items,
            width: self.width,
        }
    }

    pub fn emb_buf(self, data: &mut [f32]) -> EmbBuf<'_> {
        EmbBuf {
            data,
            n_users: self.n_users,
            n_items: self.n_items,
            width: self.width,
        }
    }

    fn emb_ref(self, data: &[f32]) -> EmbRef<'_> {
        self.emb(data).to_abi()
    }

    fn emb_mut(self, data: &mut [f32]) -> EmbMut<'_> {
        EmbMut {
            data: data.into(),
            n_users: self.n_users,
            n_items: self.n_items,
            width: self.width,
        }
    }
}

/// A graph the backbone propagates over, as the host holds it.
#[derive(Clone, Copy)]
pub struct Graph<'a> {
    adj: &'a CsrMatrix,
    /// `adj`'s transpose: the same matrix unless edges were dropped.
    adj_t: &'a CsrMatrix,
    view: u32,
    training: bool,
}

impl<'a> Graph<'a> {
    /// View `view` during training (`adj` possibly edge-dropped, `adj_t` its transpose).
    pub fn training(adj: &'a CsrMatrix, adj_t: &'a CsrMatrix, view: usize) -> Self {
        Graph {
            adj,
            adj_t,
            view: view as u32,
            training: true,
        }
    }

    /// The training graph (view 0) at evaluation: no dropout.
    pub fn evaluation(adj: &'a CsrMatrix) -> Self {
        Graph {
            adj,
            adj_t: adj,
            view: 0,
            training: false,
        }
    }

    fn to_abi(self, dims: Dims) -> GraphView<'a> {
        GraphView {
            n_users: dims.n_users,
            n_items: dims.n_items,
            adj: self.adj.view(),
            adj_t: self.adj_t.view(),
            view: self.view,
            training: self.training,
        }
    }
}

/// One training batch: a (user, positive, negative) triple per row.
#[derive(Clone, Copy)]
pub struct Batch<'a> {
    pub users: &'a [u32],
    pub pos: &'a [u32],
    pub neg: &'a [u32],
    /// 1-based epoch.
    pub epoch: u64,
    /// Batches since the start of training.
    pub step: u64,
    /// The step's seed, which plugins draw their randomness from.
    pub seed: u64,
}

impl<'a> Batch<'a> {
    fn to_abi(self) -> BatchView<'a> {
        BatchView {
            users: self.users.into(),
            pos: self.pos.into(),
            neg: self.neg.into(),
            epoch: self.epoch,
            step: self.step,
            seed: self.seed,
        }
    }
}

/// An interaction file an augmenter wants propagated as an extra graph view.
pub struct ViewRequest {
    pub name: String,
    /// A `user<TAB>item` file; a relative path names one in the dataset folder.
    pub interactions: String,
}

/// The one conversion of a plugin's error text, into `KIND `NAME` CALL: TEXT`. Plugins built
/// on the SDK already start their text with `plugin `NAME`: CALL: `; that is not said twice.
fn lift<T>(kind: PluginKind, name: &str, call: &str, r: RResult<T, RString>) -> Result<T> {
    r.into_result().map_err(|e| {
        let sdk_prefix = format!("plugin `{name}`: {call}: ");
        let text = e.as_str();
        let text = text.strip_prefix(sdk_prefix.as_str()).unwrap_or(text);
        anyhow!("{} `{name}` {call}: {text}", kind.as_str())
    })
}

fn lift_terms(
    kind: PluginKind,
    name: &str,
    call: &str,
    r: RResult<RVec<LossTerm>, RString>,
) -> Result<Terms> {
    let terms = lift(kind, name, call, r)?;
    Ok(terms
        .into_iter()
        .map(|t| (t.name.into_string(), t.value))
        .collect())
}

/// Builds the plugin instances of one run: what every plugin learns about the dataset and
/// seed when it is constructed.
pub struct PluginFactory<'a> {
    registry: &'a Registry,
    ds: &'a Dataset,
    data_dir: String,
    seed: u64,
}

impl<'a> PluginFactory<'a> {
    pub fn new(registry: &'a Registry, ds: &'a Dataset, seed: u64) -> Self {
        let data_dir = ds
            .dir
            .as_ref()
            .map(|d| d.display().to_string())
            .unwrap_or_default();
        PluginFactory {
            registry,
            ds,
            data_dir,
            seed,
        }
    }

    fn env(&self) -> PluginEnv<'_> {
        PluginEnv {
            n_users: self.ds.n_users,
            n_items: self.ds.n_items,
            data_dir: self.data_dir.as_str().into(),
            seed: self.seed,
            profiles: match &self.ds.profiles {
                Some(p) => ProfilesRef {
                    dim: p.dim,
                    users: p.users.as_slice().into(),
                    items: p.items.as_slice().into(),
                },
                None => ProfilesRef::none(),
            },
        }
    }

    /// Backbone `name` built from its hyperparameters (JSON text); a backbone reporting an
    /// output width of 0 is refused.
    pub fn backbone(&self, name: &str, hparams: &str) -> Result<BackboneHandle> {
        let kind = PluginKind::Backbone;
        let entry = self.registry.get(name, kind)?;
        let obj = (entry.module.new_backbone())(hparams.into(), &self.env());
        let obj = lift(kind, name, "hyperparameters", obj)
            .with_context(|| format!("config table [plugins.{name}]"))?;
        let spec = obj.graph_spec();
        let width = obj.width();
        if width == 0 {
            bail!("plugin `{name}` reports an output width of 0");
        }
        Ok(BackboneHandle {
            name: name.to_owned(),
            spec,
            dims: Dims {
                n_users: self.ds.n_users,
                n_items: self.ds.n_items,
                width,
            },
            obj,
        })
    }

    /// Augmenter `name` built from its hyperparameters (JSON text), over node embeddings of
    /// shape `dims` (the backbone's); it reads view 0 only until [`AugmenterHandle::add_view`]
    /// binds the views it requests.
    pub fn augmenter(&self, name: &str, hparams: &str, dims: Dims) -> Result<AugmenterHandle> {
        let kind = PluginKind::Augmenter;
        let entry = self.registry.get(name, kind)?;
        let obj = (entry.module.new_augmenter())(hparams.into(), &self.env());
        let obj = lift(kind, name, "hyperparameters", obj)
            .with_context(|| format!("config table [plugins.{name}]"))?;
        Ok(AugmenterHandle {
            name: name.to_owned(),
            obj,
            dims,
            views: vec![0],
        })
    }
}

/// A backbone instance: parameters → final user and item embeddings of a graph.
pub struct BackboneHandle {
    name: String,
    obj: BackboneBox,
    spec: GraphSpec,
    dims: Dims,
}

impl BackboneHandle {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How the host builds its graphs (asked once, at construction).
    pub fn graph_spec(&self) -> GraphSpec {
        self.spec
    }

    /// The shape of its final embeddings.
    pub fn dims(&self) -> Dims {
        self.dims
    }

    pub fn tables(&self) -> Vec<TableSpec> {
        self.obj.tables().into_vec()
    }

    /// The indices of its tables holding one input row per node, users then items (empty
    /// for a backbone built before the ABI had the call).
    pub fn node_inputs(&self) -> Vec<u32> {
        self.obj.node_inputs().into_vec()
    }

    /// Final embeddings of every user and item on `graph` into `out` (overwritten).
    pub fn forward(
        &mut self,
        k: &CpuKernels,
        store: &ParamStore,
        graph: Graph<'_>,
        out: &mut [f32],
    ) -> Result<()> {
        let r = self.obj.forward(
            k.as_ref(),
            store.params().to_abi(),
            graph.to_abi(self.dims),
            self.dims.emb_mut(out),
        );
        lift(PluginKind::Backbone, &self.name, "forward", r)
    }

    /// Accumulates dL/d(params) into `store`'s gradient, given dL/d(final embeddings) of
    /// `graph`.
    pub fn backward(
        &mut self,
        k: &CpuKernels,
        store: &mut ParamStore,
        graph: Graph<'_>,
        d_out: &[f32],
    ) -> Result<()> {
        let (params, mut grads) = store.params_and_grads();
        let r = self.obj.backward(
            k.as_ref(),
            params.to_abi(),
            graph.to_abi(self.dims),
            self.dims.emb_ref(d_out),
            grads.to_abi(),
        );
        lift(PluginKind::Backbone, &self.name, "backward", r)
    }

    /// The backbone's own extra loss on view 0 (SimGCL's contrastive term; none for most):
    /// accumulates into `d_emb` (dL/d`emb`) and `store`'s gradient.
    pub fn aux_loss(
        &mut self,
        k: &CpuKernels,
        store: &mut ParamStore,
        graph: Graph<'_>,
        batch: Batch<'_>,
        emb: &[f32],
        d_emb: &mut [f32],
    ) -> Result<Terms> {
        let (params, mut grads) = store.params_and_grads();
        let r = self.obj.aux_loss(
            k.as_ref(),
            params.to_abi(),
            graph.to_abi(self.dims),
            batch.to_abi(),
            self.dims.emb_ref(emb),
            self.dims.emb_mut(d_emb),
            grads.to_abi(),
        );
        lift_terms(PluginKind::Backbone, &self.name, "aux_loss", r)
    }
}

/// An augmenter instance and the graph views it reads.
pub struct AugmenterHandle {
    name: String,
    obj: AugmenterBox,
    dims: Dims,
    /// Indices into the model's views: 0 first, then one per requested view.
    views: Vec<usize>,
}

impl AugmenterHandle {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn tables(&self) -> Vec<TableSpec> {
        self.obj.tables().into_vec()
    }

    /// The extra graph views it asks for, beyond view 0.
    pub fn view_requests(&self) -> Vec<ViewRequest> {
        self.obj
            .views()
            .into_iter()
            .map(|v| ViewRequest {
                name: v.name.into_string(),
                interactions: v.interactions.into_string(),
            })
            .collect()
    }

    /// Binds its next requested view to the model's view `index`.
    pub fn add_view(&mut self, index: usize) {
        self.views.push(index);
    }

    /// Whether it replaces backbone input rows every step (RLMRec-Gen).
    pub fn masks_inputs(&self) -> bool {
        self.obj.masks_inputs()
    }

    /// The nodes whose input rows it replaces for `batch`, and the index of its table that
    /// replaces them (unchecked: see `input_mask::check_mask`).
    pub fn input_mask(
        &mut self,
        batch: Batch<'_>,
        store: &ParamStore,
    ) -> Result<(Vec<u32>, usize)> {
        let r = self.obj.input_mask(batch.to_abi(), store.params().to_abi());
        let m = lift(PluginKind::Augmenter, &self.name, "input_mask", r)?;
        Ok((m.nodes.into_vec(), m.table as usize))
    }

    /// Its loss terms for `batch` over the embeddings of its views (`embs` holds every view
    /// of the model); accumulates into those views' gradients in `d_embs` and into `store`'s.
    pub fn loss(
        &mut self,
        k: &CpuKernels,
        batch: Batch<'_>,
        embs: &[Vec<f32>],
        d_embs: &mut [Vec<f32>],
        store: &mut ParamStore,
    ) -> Result<Terms> {
        let dims = self.dims;
        let refs: Vec<EmbRef<'_>> = self.views.iter().map(|&v| dims.emb_ref(&embs[v])).collect();
        // Each gradient buffer can be lent once: two of its views on one model view would
        // alias it.
        let mut by_view: Vec<Option<&mut Vec<f32>>> = d_embs.iter_mut().map(Some).collect();
        let mut grads_of_views: Vec<EmbMut<'_>> = Vec::with_capacity(self.views.len());
        for &v in &self.views {
            let buf = by_view[v]
                .take()
                .ok_or_else(|| anyhow!("plugin `{}` asked for view {v} twice", self.name))?;
            grads_of_views.push(dims.emb_mut(buf));
        }
        let (params, mut grads) = store.params_and_grads();
        let r = self.obj.loss(
            k.as_ref(),
            batch.to_abi(),
            refs.as_slice().into(),
            grads_of_views.as_mut_slice().into(),
            params.to_abi(),
            grads.to_abi(),
        );
        lift_terms(PluginKind::Augmenter, &self.name, "loss", r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use promax_plugin_api::abi_stable::std_types::{RErr, ROk};

    #[test]
    fn plugin_errors_name_the_plugin_and_the_call_once() {
        let kind = PluginKind::Backbone;
        let sdk: RResult<(), RString> = RErr("plugin `lightgcn`: forward: bad width".into());
        let e = lift(kind, "lightgcn", "forward", sdk)
            .unwrap_err()
            .to_string();
        assert_eq!(e, "backbone `lightgcn` forward: bad width");
        let bare: RResult<(), RString> = RErr("bad width".into());
        let e = lift(PluginKind::Augmenter, "x", "loss", bare)
            .unwrap_err()
            .to_string();
        assert_eq!(e, "augmenter `x` loss: bad width");
        let ok: RResult<u8, RString> = ROk(3);
        assert_eq!(lift(kind, "x", "forward", ok).unwrap(), 3);
    }
}
