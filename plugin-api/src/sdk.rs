//! The safe side of the ABI: what a plugin author writes against.
//!
//! Implement [`BackboneImpl`] (or [`AugmenterImpl`]) on a plain Rust type, then
//! `promax_plugin_api::declare_backbone!(MyType);` gives the crate a `root_module()` that the
//! host can link statically, and `promax_plugin_api::export_plugin!(root_module);` in a
//! `cdylib` crate exports it for dynamic loading. Panics inside plugin code are caught at
//! the boundary and reported as errors.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

use abi_stable::std_types::{RResult, RString};
use schemars::JsonSchema;
use serde::{de::DeserializeOwned, Serialize};

use crate::abi::*;

mod adapter;
mod buffers;
mod hparams;
pub mod mlp;
pub mod propagate;
pub mod rng;
pub mod rows;

pub use adapter::{augmenter_box, augmenter_module, backbone_box, backbone_module};
pub use buffers::{Emb, EmbBuf, Grads, Params};
pub use hparams::{edit_distance, nearest, parse_hparams, plugin_info, UNDOCUMENTED};

/// A plugin-side result; the message reaches the user prefixed with the plugin name.
pub type PluginResult<T> = Result<T, String>;

/// What a plugin's constructor learns about the run.
#[derive(Clone, Debug)]
pub struct Env<'a> {
    /// Users in the dataset (ids 0..n_users).
    pub n_users: usize,
    /// Items in the dataset (ids 0..n_items).
    pub n_items: usize,
    /// The dataset folder (empty for the built-in synthetic dataset).
    pub data_dir: String,
    /// The run seed (`train.seed`).
    pub seed: u64,
    /// The dataset's profile embeddings, if it has any (borrowed: copy what you keep).
    pub profiles: Option<Profiles<'a>>,
}

/// User and item profile embeddings: `users` is n_users × dim, `items` n_items × dim,
/// row-major, finite (checked by the host).
#[derive(Clone, Copy, Debug)]
pub struct Profiles<'a> {
    /// Columns of both tables (at least 1).
    pub dim: usize,
    /// n_users × dim.
    pub users: &'a [f32],
    /// n_items × dim.
    pub items: &'a [f32],
}

impl<'a> Env<'a> {
    fn from_abi(e: &PluginEnv<'a>) -> Self {
        let p = e.profiles;
        Env {
            n_users: e.n_users,
            n_items: e.n_items,
            data_dir: e.data_dir.as_str().to_owned(),
            seed: e.seed,
            profiles: (p.dim > 0).then(|| Profiles {
                dim: p.dim,
                users: p.users.as_slice(),
                items: p.items.as_slice(),
            }),
        }
    }
}

/// A table declaration (convenience constructor for [`TableSpec`]).
pub fn table(name: &str, rows: usize, cols: usize, init: Init) -> TableSpec {
    TableSpec {
        name: name.into(),
        rows,
        cols,
        init,
    }
}

/// A named loss value.
pub fn term(name: &str, value: f64) -> LossTerm {
    LossTerm {
        name: name.into(),
        value,
    }
}

/// The host's kernels, as seen by plugin code.
pub struct Compute<'a> {
    k: KernelsRef<'a>,
}

fn lift<T>(r: RResult<T, RString>) -> PluginResult<T> {
    r.into_result().map_err(RString::into_string)
}

impl<'a> Compute<'a> {
    /// Wraps the kernel table a call was handed.
    pub fn new(k: KernelsRef<'a>) -> Self {
        Compute { k }
    }
    /// `out = A · x + beta · out`.
    pub fn spmm(
        &self,
        a: CsrView<'_>,
        x: &[f32],
        cols: usize,
        out: &mut [f32],
        beta: f32,
    ) -> PluginResult<()> {
        lift(self.k.spmm(a, x.into(), cols, out.into(), beta))
    }
    /// `C = alpha · op(A) · op(B) + beta · C`.
    pub fn gemm(&self, spec: GemmSpec, a: &[f32], b: &[f32], c: &mut [f32]) -> PluginResult<()> {
        lift(self.k.gemm(spec, a.into(), b.into(), c.into()))
    }
    /// Top-k by inner product with exclusions; see [`TopkRequest`].
    pub fn score_topk(
        &self,
        req: TopkRequest<'_>,
        out_items: &mut [u32],
        out_scores: &mut [f32],
    ) -> PluginResult<()> {
        lift(self.k.score_topk(req, out_items.into(), out_scores.into()))
    }
    /// Per-row log-normaliser and entropy of a softmax over all keys; see
    /// [`SoftmaxStatsRequest`].
    pub fn softmax_stats(
        &self,
        req: SoftmaxStatsRequest<'_>,
        lse: &mut [f32],
        entropy: &mut [f32],
    ) -> PluginResult<()> {
        lift(self.k.softmax_stats(req, lse.into(), entropy.into()))
    }
    /// Soft-target cross-entropy over all items, gradients accumulated; see
    /// [`SoftCeRequest`].
    pub fn soft_ce_all_items(
        &self,
        req: SoftCeRequest<'_>,
        d_users: &mut [f32],
        d_items: &mut [f32],
    ) -> PluginResult<f64> {
        lift(
            self.k
                .soft_ce_all_items(req, d_users.into(), d_items.into()),
        )
    }
    /// InfoNCE with row-aligned positives, gradients accumulated; see [`InfoNceRequest`].
    pub fn info_nce(
        &self,
        req: InfoNceRequest<'_>,
        d_a: &mut [f32],
        d_b: &mut [f32],
    ) -> PluginResult<f64> {
        lift(self.k.info_nce(req, d_a.into(), d_b.into()))
    }
    /// InfoNCE with explicit (row, column) positives and column counts, gradients
    /// accumulated; see [`PairedNceRequest`].
    pub fn info_nce_pairs(
        &self,
        req: PairedNceRequest<'_>,
        d_a: &mut [f32],
        d_b: &mut [f32],
    ) -> PluginResult<f64> {
        lift(self.k.info_nce_pairs(req, d_a.into(), d_b.into()))
    }
    /// PCA reduction of profile tables, outputs overwritten; see [`ReduceRequest`].
    pub fn reduce_profiles(
        &self,
        req: ReduceRequest<'_>,
        out_users: &mut [f32],
        out_items: &mut [f32],
    ) -> PluginResult<()> {
        lift(
            self.k
                .reduce_profiles(req, out_users.into(), out_items.into()),
        )
    }
    /// The underlying ABI object, to pass on to another plugin call.
    pub fn raw(&self) -> KernelsRef<'_> {
        self.k.sabi_reborrow()
    }
}

/// Hyperparameters: a serde struct with a `Default` (the published settings), each field
/// documented by its `///` comment. `#[derive(JsonSchema)]` with
/// `#[schemars(crate = "promax_plugin_api::schemars")]` reads those comments for
/// `promax plugins show`; a field without one is shown as [`UNDOCUMENTED`].
pub trait Hparams: Serialize + DeserializeOwned + Default + JsonSchema {}
impl<T: Serialize + DeserializeOwned + Default + JsonSchema> Hparams for T {}

/// Static facts about a plugin type.
pub trait PluginMeta {
    /// The name configs use; unique among the plugins a host loads.
    const NAME: &'static str;
    /// The plugin's version, usually `env!("CARGO_PKG_VERSION")`.
    const VERSION: &'static str;
    /// One line for `promax plugins show`.
    const DESCRIPTION: &'static str;
    /// The `[plugins.NAME]` table of a config, parsed over its defaults.
    type Hparams: Hparams;
}

/// A backbone, written as plain safe Rust.
pub trait BackboneImpl: PluginMeta + Send + Sized + 'static {
    /// Validates the hyperparameters and builds the model; errors name the key.
    fn new(h: Self::Hparams, env: &Env<'_>) -> PluginResult<Self>;
    /// Trainable tables, in the order of the flat parameter buffer.
    fn tables(&self) -> Vec<TableSpec>;
    /// How the host builds the graph views (default: normalised A, no dropout).
    fn graph_spec(&self) -> GraphSpec {
        GraphSpec::default()
    }
    /// Columns of the final embeddings.
    fn width(&self) -> usize;
    /// Writes the final embeddings of every user and item into `out` (overwrites).
    fn forward(
        &mut self,
        k: &Compute<'_>,
        params: Params<'_>,
        graph: &GraphView<'_>,
        out: EmbBuf<'_>,
    ) -> PluginResult<()>;
    /// Given dL/d(final embeddings), accumulates dL/d(params) into `grads`.
    fn backward(
        &mut self,
        k: &Compute<'_>,
        params: Params<'_>,
        graph: &GraphView<'_>,
        d_out: Emb<'_>,
        grads: Grads<'_>,
    ) -> PluginResult<()>;
    /// Optional auxiliary loss (default: none).
    #[allow(clippy::too_many_arguments)]
    fn aux_loss(
        &mut self,
        _k: &Compute<'_>,
        _params: Params<'_>,
        _graph: &GraphView<'_>,
        _batch: &BatchView<'_>,
        _emb: Emb<'_>,
        _d_emb: EmbBuf<'_>,
        _grads: Grads<'_>,
    ) -> PluginResult<Vec<LossTerm>> {
        Ok(Vec::new())
    }
    /// The tables holding one input row per node, users then items, in order (default:
    /// none; [`rows::node_tables`]' pair is `vec![0, 1]`). Augmenters that mask inputs
    /// (RLMRec-Gen) replace rows of these before `forward` (ABI: `Backbone::node_inputs`).
    fn node_inputs(&self) -> Vec<usize> {
        Vec::new()
    }
}

/// Input rows an augmenter replaces for one training step (ABI: [`InputMask`]): each of
/// `nodes` (users then items numbering, each once) takes the augmenter's own table `table`
/// (1 × the backbone's input columns) as its input row.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeMask {
    /// Nodes whose input row is replaced.
    pub nodes: Vec<u32>,
    /// Index of the replacement vector among the augmenter's tables.
    pub table: usize,
}

/// An augmenter, written as plain safe Rust.
pub trait AugmenterImpl: PluginMeta + Send + Sized + 'static {
    /// Validates the hyperparameters and builds the augmenter; errors name the key.
    fn new(h: Self::Hparams, env: &Env<'_>) -> PluginResult<Self>;
    /// Its own trainable tables (default: none).
    fn tables(&self) -> Vec<TableSpec> {
        Vec::new()
    }
    /// Extra graph views beyond the training graph (default: none); `embs[1 + j]` of
    /// [`loss`](Self::loss) is view `j` of this list.
    fn views(&self) -> Vec<ViewSpec> {
        Vec::new()
    }
    /// Loss terms for the batch; accumulates gradients w.r.t. every view's embeddings into
    /// `d_embs` (same order as `embs`) and w.r.t. its own tables into `grads`.
    fn loss(
        &mut self,
        k: &Compute<'_>,
        batch: &BatchView<'_>,
        embs: &[Emb<'_>],
        d_embs: &mut [EmbBuf<'_>],
        params: Params<'_>,
        grads: Grads<'_>,
    ) -> PluginResult<Vec<LossTerm>>;
    /// True when it replaces backbone input rows every step (default: false); the host
    /// then calls [`input_mask`](Self::input_mask) before each step's forward passes.
    fn masks_inputs(&self) -> bool {
        false
    }
    /// The input rows to replace for this step (default: none). Draw from `batch.seed`;
    /// keep what `loss` needs. The host routes the replaced rows' gradient into the table.
    fn input_mask(
        &mut self,
        _batch: &BatchView<'_>,
        _params: Params<'_>,
    ) -> PluginResult<NodeMask> {
        Ok(NodeMask::default())
    }
}

/// The text of a caught panic's payload (`panic!` gives a `&str` or a `String`).
pub fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "unknown panic payload"
    }
}

/// Runs `f`, turning a panic into `Err` with its message: what every side of the ABI needs
/// before a result crosses it (an unwinding panic must not).
pub fn catch_panic<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|p| panic_message(&*p).to_owned())
}
