//! The stable ABI between the host and plugins (abi_stable).
//!
//! Everything here is `#[repr(C)]` and `StableAbi`: the host checks the layout of every type
//! reachable from [`PluginMod`] when it loads a plugin library, so a plugin built against an
//! incompatible version of this crate is refused instead of misbehaving.
//!
//! Conventions shared by all views:
//! - dense matrices are row-major `f32`, rows × cols, in one slice;
//! - node embeddings hold users first, then items: row `u` is user `u`, row `n_users + i` is
//!   item `i`;
//! - gradients are *accumulated* into the buffers the host passes (`+=`), never overwritten,
//!   so several losses can share one buffer.

use abi_stable::{
    declare_root_module_statics,
    library::RootModule,
    package_version_strings, sabi_trait,
    sabi_trait::TD_Opaque,
    sabi_types::{RRef, VersionStrings},
    std_types::{RBox, RErr, ROk, RResult, RSlice, RSliceMut, RStr, RString, RVec},
    StableAbi,
};

/// Bumped whenever a type or method in this module changes meaning or layout.
/// The host refuses plugins whose `abi_version` differs from its own.
///
/// 2 (promax-plugin-api 0.2.0): `Backbone::node_inputs`, `Augmenter::masks_inputs` and
/// `Augmenter::input_mask`. abi_stable lets a host load a plugin whose trait objects have
/// MORE methods than it knows, never fewer ("too many fields"), so a method appended to a
/// trait that plugins implement cannot keep older plugins loadable: the crate's version
/// moved to 0.2.0 with it, and the host refuses a 0.1 plugin in one line, naming both.
pub const ABI_VERSION: u32 = 2;

/// What a plugin provides.
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PluginKind {
    /// A model that maps a graph view to user and item embeddings.
    Backbone,
    /// An extra loss over the backbone's embeddings (ProMax, RLMRec, ...).
    Augmenter,
}

impl PluginKind {
    /// The kind's name as the command line and error messages write it.
    pub fn as_str(self) -> &'static str {
        match self {
            PluginKind::Backbone => "backbone",
            PluginKind::Augmenter => "augmenter",
        }
    }
}

/// One hyperparameter as shown by `promax plugins show NAME`.
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct HparamInfo {
    /// The key under `[plugins.NAME]` in a config.
    pub name: RString,
    /// `integer`, `float`, `bool`, `string`, `array` or `table`.
    pub ty: RString,
    /// The default value, as JSON text.
    pub default: RString,
    /// One line: what it does (the field's `///` comment).
    pub doc: RString,
}

/// Static description of a plugin.
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct PluginInfo {
    /// The name configs use (`model.backbone`, `model.augmenters`); unique in a registry.
    pub name: RString,
    /// Backbone or augmenter.
    pub kind: PluginKind,
    /// The plugin's own version (its crate version).
    pub version: RString,
    /// The [`ABI_VERSION`] the plugin was built against.
    pub abi_version: u32,
    /// One line for `promax plugins show`.
    pub description: RString,
    /// Every hyperparameter, by name, with its default.
    pub hparams: RVec<HparamInfo>,
}

/// How the host initialises a parameter table.
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Init {
    /// U(-a, a), a = sqrt(6 / (rows + cols)).
    XavierUniform,
    /// All zeros (biases).
    Zeros,
}

/// A trainable table a plugin asks the host to own, initialise, regularise and optimise.
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct TableSpec {
    /// The table's name (under the plugin's) in checkpoints and `model.safetensors`.
    pub name: RString,
    /// Row count (users, items, or a layer's output size).
    pub rows: usize,
    /// Column count.
    pub cols: usize,
    /// How the host fills it before training.
    pub init: Init,
}

/// Where table `k` lives inside a plugin's flat parameter buffer.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableLayout {
    /// Index of the table's first value in the flat buffer.
    pub offset: usize,
    /// Row count, as declared.
    pub rows: usize,
    /// Column count, as declared.
    pub cols: usize,
}

/// A plugin's parameters: all its tables, in declaration order, in one flat buffer.
#[repr(C)]
#[derive(StableAbi, Clone, Copy)]
pub struct ParamsRef<'a> {
    /// Every table's values, row-major, one after the other.
    pub data: RSlice<'a, f32>,
    /// Where each table lies in `data`, in declaration order.
    pub layout: RSlice<'a, TableLayout>,
}

/// Gradient buffer with the same layout as [`ParamsRef`]; plugins accumulate into it.
#[repr(C)]
#[derive(StableAbi)]
pub struct GradsMut<'a> {
    /// Every table's gradient, laid out as the parameters.
    pub data: RSliceMut<'a, f32>,
    /// Where each table's gradient lies in `data`, in declaration order.
    pub layout: RSlice<'a, TableLayout>,
}

/// A compressed-sparse-row matrix, borrowed.
#[repr(C)]
#[derive(StableAbi, Clone, Copy)]
pub struct CsrView<'a> {
    /// Row count.
    pub n_rows: usize,
    /// Column count.
    pub n_cols: usize,
    /// `n_rows + 1` offsets into `indices` / `values`.
    pub indptr: RSlice<'a, usize>,
    /// Column of each stored entry.
    pub indices: RSlice<'a, u32>,
    /// Value of each stored entry.
    pub values: RSlice<'a, f32>,
}

/// One graph view the backbone propagates over: the normalised bipartite adjacency over
/// users then items, and its transpose (equal to it unless edges were dropped).
#[repr(C)]
#[derive(StableAbi, Clone, Copy)]
pub struct GraphView<'a> {
    /// Users (the first rows and columns of `adj`).
    pub n_users: usize,
    /// Items (the rows and columns after the users).
    pub n_items: usize,
    /// Â, (n_users + n_items) square.
    pub adj: CsrView<'a>,
    /// Âᵀ, for backward passes.
    pub adj_t: CsrView<'a>,
    /// 0 is the training graph; augmenter views follow in the order they were requested.
    pub view: u32,
    /// True while training (edge dropout may be applied), false at evaluation.
    pub training: bool,
}

/// How a backbone wants its graph built.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq)]
pub struct GraphSpec {
    /// Add the identity to A before normalising (LR-GCCF).
    pub self_loops: bool,
    /// Training-time edge dropout: each stored entry of Â is kept with this probability,
    /// kept entries are not rescaled. 1.0 disables it.
    pub keep_rate: f32,
    /// False for backbones that never read the graph (MF): the host skips building it.
    pub uses_graph: bool,
}

impl Default for GraphSpec {
    fn default() -> Self {
        GraphSpec {
            self_loops: false,
            keep_rate: 1.0,
            uses_graph: true,
        }
    }
}

/// A training batch: one (user, positive, negative) triple per row.
#[repr(C)]
#[derive(StableAbi, Clone, Copy)]
pub struct BatchView<'a> {
    /// The user of each triple.
    pub users: RSlice<'a, u32>,
    /// A train item of that user.
    pub pos: RSlice<'a, u32>,
    /// A uniformly sampled item the user has no train interaction with.
    pub neg: RSlice<'a, u32>,
    /// 1-based epoch.
    pub epoch: u64,
    /// Global step counter (batches since the start of training).
    pub step: u64,
    /// A seed derived from the run seed and the step: plugins draw their randomness from it
    /// so that runs repeat exactly.
    pub seed: u64,
}

/// Final node embeddings of one view, users then items, `width` columns.
#[repr(C)]
#[derive(StableAbi, Clone, Copy)]
pub struct EmbRef<'a> {
    /// (n_users + n_items) × width values, row-major.
    pub data: RSlice<'a, f32>,
    /// User rows (first).
    pub n_users: usize,
    /// Item rows (after the users).
    pub n_items: usize,
    /// Columns of every row.
    pub width: usize,
}

/// Mutable node-embedding buffer (forward output, or a gradient to accumulate into).
#[repr(C)]
#[derive(StableAbi)]
pub struct EmbMut<'a> {
    /// (n_users + n_items) × width values, row-major.
    pub data: RSliceMut<'a, f32>,
    /// User rows (first).
    pub n_users: usize,
    /// Item rows (after the users).
    pub n_items: usize,
    /// Columns of every row.
    pub width: usize,
}

/// A named loss value, reported per epoch in `epochs.csv`.
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct LossTerm {
    /// The column name in `epochs.csv` (e.g. `sdr`, `cl`).
    pub name: RString,
    /// The term's value for the batch.
    pub value: f64,
}

/// An extra graph view an augmenter needs, built by the host from an interaction file.
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct ViewSpec {
    /// A name for logs and errors.
    pub name: RString,
    /// Path of a `user<TAB>item` file; relative paths resolve against the dataset folder.
    pub interactions: RString,
}

/// User and item profile embeddings (e.g. embedded LLM-written profiles), loaded and
/// validated by the host: finite values, `users` is n_users × dim, `items` n_items × dim.
/// `dim == 0` means the dataset has none.
#[repr(C)]
#[derive(StableAbi, Clone, Copy)]
pub struct ProfilesRef<'a> {
    /// Columns of both tables; 0 when there are none.
    pub dim: usize,
    /// n_users × dim, row-major.
    pub users: RSlice<'a, f32>,
    /// n_items × dim, row-major.
    pub items: RSlice<'a, f32>,
}

impl ProfilesRef<'_> {
    /// No profiles.
    pub fn none() -> Self {
        ProfilesRef {
            dim: 0,
            users: RSlice::from_slice(&[]),
            items: RSlice::from_slice(&[]),
        }
    }
}

/// What a plugin learns about the run when it is constructed.
#[repr(C)]
#[derive(StableAbi, Clone, Copy)]
pub struct PluginEnv<'a> {
    /// Users in the dataset (ids 0..n_users).
    pub n_users: usize,
    /// Items in the dataset (ids 0..n_items).
    pub n_items: usize,
    /// The dataset folder (empty for the built-in synthetic dataset).
    pub data_dir: RStr<'a>,
    /// The run seed (`train.seed`).
    pub seed: u64,
    /// Borrowed for the constructor call only: copy (or reduce) what you keep.
    pub profiles: ProfilesRef<'a>,
}

/// Dense product `C = alpha · op(A) · op(B) + beta · C`, op(A) is m × k, op(B) k × n.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug)]
pub struct GemmSpec {
    /// Rows of op(A) and C.
    pub m: usize,
    /// Columns of op(B) and C.
    pub n: usize,
    /// Columns of op(A), rows of op(B).
    pub k: usize,
    /// op(A) = Aᵀ (A stored k × m).
    pub trans_a: bool,
    /// op(B) = Bᵀ (B stored n × k).
    pub trans_b: bool,
    /// Scale of the product.
    pub alpha: f32,
    /// Scale of C's old value; 0 does not read C (BLAS convention).
    pub beta: f32,
}

/// Full-ranking request: score `queries` (rows × dim) against all `items` (n × dim) by inner
/// product, skip each row's `exclude` items, keep the `k` best (ties: lower item id first).
#[repr(C)]
#[derive(StableAbi, Clone, Copy)]
pub struct TopkRequest<'a> {
    /// rows × dim query rows.
    pub queries: RSlice<'a, f32>,
    /// n × dim item rows.
    pub items: RSlice<'a, f32>,
    /// Columns of both.
    pub dim: usize,
    /// Row r lists the item ids to skip for query r (rows aligned with `queries`).
    pub exclude: CsrView<'a>,
    /// Items kept per row.
    pub k: usize,
}

/// Per-row statistics of `softmax(keys · query_r / tau)` over ALL keys, streamed (never a
/// rows × keys matrix): writes `lse[r] = log Σ_c exp(q_r·k_c / tau)` and the entropy
/// `entropy[r] = −Σ_c p_rc ln p_rc`. Rows are used as given (normalise them first for a
/// cosine softmax).
#[repr(C)]
#[derive(StableAbi, Clone, Copy)]
pub struct SoftmaxStatsRequest<'a> {
    /// rows × dim query rows.
    pub queries: RSlice<'a, f32>,
    /// keys × dim key rows.
    pub keys: RSlice<'a, f32>,
    /// Columns of both.
    pub dim: usize,
    /// Softmax temperature.
    pub tau: f32,
}

/// Soft-target cross-entropy over ALL items (ProMax's SDR), streamed over item tiles.
/// For each row b (a user): target `q_b = softmax_i(t_b·t_i / target_tau)` from the
/// (already unit-norm) target rows, model `p_b = softmax_i(cos(u_b, v_i) / tau)` from the
/// raw model embeddings (normalised inside), loss `Σ_b weight_b · Σ_i −q_bi · ln p_bi`
/// (log-softmax, exact). `target_lse[b]` is the target's log-normaliser (constant per
/// user: compute it once with `softmax_stats`).
#[repr(C)]
#[derive(StableAbi, Clone, Copy)]
pub struct SoftCeRequest<'a> {
    /// B × dim model embeddings of the rows (users).
    pub users: RSlice<'a, f32>,
    /// N × dim model embeddings of all items.
    pub items: RSlice<'a, f32>,
    /// Columns of `users` and `items`.
    pub dim: usize,
    /// B × target_dim unit-norm target rows.
    pub target_users: RSlice<'a, f32>,
    /// N × target_dim unit-norm target items.
    pub target_items: RSlice<'a, f32>,
    /// Columns of `target_users` and `target_items`.
    pub target_dim: usize,
    /// B target log-normalisers.
    pub target_lse: RSlice<'a, f32>,
    /// B per-row weights (entropy weight × term weight / B, say).
    pub weights: RSlice<'a, f32>,
    /// Temperature of the model softmax.
    pub tau: f32,
    /// Temperature of the target softmax.
    pub target_tau: f32,
}

/// InfoNCE with row-aligned positives: rows `a_r`, candidates `b_c` (row r's positive is
/// `b_r`, every other row of `b` a negative), cosine similarities at temperature `tau`,
/// `P_r = softmax_c(cos(a_r, b_c)/tau)[r]`: loss `weight · Σ_r −ln(P_r + eps)`.
/// `eps = 0` is the plain cross-entropy with diagonal labels; the ProMax reference code
/// guards the log with `eps = 1e-5`. Inputs are raw (normalised inside); `b` has at least
/// as many rows as `a`.
#[repr(C)]
#[derive(StableAbi, Clone, Copy)]
pub struct InfoNceRequest<'a> {
    /// n × dim anchor rows.
    pub a: RSlice<'a, f32>,
    /// m × dim candidate rows (m >= n), row r the positive of `a_r`.
    pub b: RSlice<'a, f32>,
    /// Columns of both.
    pub dim: usize,
    /// Temperature of the cosine softmax.
    pub tau: f32,
    /// Guard inside the log; 0 for the plain cross-entropy.
    pub eps: f32,
    /// Factor on the summed loss (and its gradients).
    pub weight: f32,
}

/// InfoNCE with explicit positives and column multiplicities: rows `a_r` (n × dim),
/// columns `b_c` (m × dim), `z_rc = cos(a_r, b_c) / tau`,
/// `P_rc = e^{z_rc} / Σ_c' k_c' e^{z_rc'}` with `k` the column counts (column c stands for
/// `k_c` identical candidates; empty = all 1). Loss `weight · Σ_(r,c) ∈ pairs −ln(P_rc + eps)`
/// over `pairs`, flattened (row, column) indices; a pair may repeat.
///
/// One pair per row of a batch over its unique users × unique items (counted by how often
/// each occurs) is the cross-entropy over the batch × batch matrix with diagonal labels, at
/// a fraction of the products. Inputs are raw (normalised inside).
#[repr(C)]
#[derive(StableAbi, Clone, Copy)]
pub struct PairedNceRequest<'a> {
    /// n × dim row embeddings.
    pub a: RSlice<'a, f32>,
    /// m × dim column embeddings.
    pub b: RSlice<'a, f32>,
    /// Columns of both.
    pub dim: usize,
    /// m multiplicities `k_c`, or empty for all 1.
    pub col_counts: RSlice<'a, u32>,
    /// Positive (row, column) pairs, flattened: `[r0, c0, r1, c1, …]`.
    pub pairs: RSlice<'a, u32>,
    /// Temperature of the cosine softmax.
    pub tau: f32,
    /// Guard inside the log; 0 for the plain cross-entropy.
    pub eps: f32,
    /// Factor on the summed loss (and its gradients).
    pub weight: f32,
}

/// How [`ReduceRequest`] fits its PCA basis.
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reduction {
    /// One PCA per table (the published ProMax code): users and items live in unrelated
    /// bases.
    Separate,
    /// One PCA fitted on the users' and items' rows together, applied to both tables, so a
    /// user–item cosine keeps its meaning.
    Joint,
}

/// PCA reduction of user and item profile tables (row-major, `in_dim` columns) to `dim`
/// columns, as ProMax prepares its targets (docs/methods.md): centre by the column mean,
/// covariance `Xcᵀ Xc / (n − 1)` in f64, top `dim` eigenvectors (each flipped so that its
/// largest-magnitude component is positive), optionally whitened by `1 / sqrt(λ)`, then
/// `Xc · U_d`. Whitening a direction with ~zero variance is an error, not a clamp.
#[repr(C)]
#[derive(StableAbi, Clone, Copy)]
pub struct ReduceRequest<'a> {
    /// n_users × in_dim user profiles.
    pub users: RSlice<'a, f32>,
    /// n_items × in_dim item profiles.
    pub items: RSlice<'a, f32>,
    /// Columns of the input tables.
    pub in_dim: usize,
    /// Columns of the output tables (at most `in_dim`, and below the fitted rows).
    pub dim: usize,
    /// Separate or joint basis.
    pub mode: Reduction,
    /// Scale output column `j` by `1 / sqrt(λ_j)` (identity covariance).
    pub whiten: bool,
}

/// The compute operations the host lends to plugins. The host picks the backend (CPU with
/// rayon, or CUDA), so plugin code never chooses a device.
#[sabi_trait]
pub trait KernelTable: Send + Sync {
    /// `out = A · x + beta · out`, x is A.n_cols × cols, out A.n_rows × cols.
    fn spmm(
        &self,
        a: CsrView<'_>,
        x: RSlice<'_, f32>,
        cols: usize,
        out: RSliceMut<'_, f32>,
        beta: f32,
    ) -> RResult<(), RString>;

    /// See [`GemmSpec`].
    fn gemm(
        &self,
        spec: GemmSpec,
        a: RSlice<'_, f32>,
        b: RSlice<'_, f32>,
        c: RSliceMut<'_, f32>,
    ) -> RResult<(), RString>;

    /// Writes rows × k item ids and scores (row-major); slots beyond the number of
    /// rankable items hold `u32::MAX` and `-inf`.
    fn score_topk(
        &self,
        req: TopkRequest<'_>,
        out_items: RSliceMut<'_, u32>,
        out_scores: RSliceMut<'_, f32>,
    ) -> RResult<(), RString>;

    /// See [`SoftmaxStatsRequest`]; `lse` and `entropy` have one entry per query row.
    fn softmax_stats(
        &self,
        req: SoftmaxStatsRequest<'_>,
        lse: RSliceMut<'_, f32>,
        entropy: RSliceMut<'_, f32>,
    ) -> RResult<(), RString>;

    /// See [`SoftCeRequest`]: returns the loss and ACCUMULATES its gradients w.r.t. the raw
    /// `users` (B × dim) and `items` (N × dim) into `d_users` / `d_items`.
    fn soft_ce_all_items(
        &self,
        req: SoftCeRequest<'_>,
        d_users: RSliceMut<'_, f32>,
        d_items: RSliceMut<'_, f32>,
    ) -> RResult<f64, RString>;

    /// See [`InfoNceRequest`]: returns the loss and ACCUMULATES its gradients w.r.t. the raw
    /// `a` and `b` into `d_a` / `d_b`.
    #[sabi(last_prefix_field)]
    fn info_nce(
        &self,
        req: InfoNceRequest<'_>,
        d_a: RSliceMut<'_, f32>,
        d_b: RSliceMut<'_, f32>,
    ) -> RResult<f64, RString>;

    /// See [`PairedNceRequest`]: returns the loss and ACCUMULATES its gradients w.r.t. the
    /// raw `a` and `b` into `d_a` / `d_b`. Added after the prefix: a host built before it
    /// lacks it, and calling it there is an error, not undefined behaviour.
    fn info_nce_pairs(
        &self,
        req: PairedNceRequest<'_>,
        d_a: RSliceMut<'_, f32>,
        d_b: RSliceMut<'_, f32>,
    ) -> RResult<f64, RString>;

    /// See [`ReduceRequest`]: OVERWRITES `out_users` (n_users × dim) and `out_items`
    /// (n_items × dim). Added after the prefix with a default body: in a table built by a
    /// host from before it, the call runs that body, which returns an error.
    fn reduce_profiles(
        &self,
        req: ReduceRequest<'_>,
        out_users: RSliceMut<'_, f32>,
        out_items: RSliceMut<'_, f32>,
    ) -> RResult<(), RString> {
        let _ = (req, out_users, out_items);
        RErr(
            "this host's kernel table has no `reduce_profiles` (it predates it): \
              update the host"
                .into(),
        )
    }
}

/// How plugins receive the kernel table: borrowed for the duration of one call.
pub type KernelsRef<'a> = KernelTable_TO<'a, RRef<'a, ()>>;

/// Borrows a kernel table as the ABI object plugins receive.
pub fn kernels_ref<K: KernelTable>(k: &K) -> KernelsRef<'_> {
    KernelTable_TO::from_ptr(RRef::new(k), TD_Opaque)
}

/// A backbone: parameters → final user and item embeddings for a graph view.
#[sabi_trait]
pub trait Backbone: Send {
    /// Trainable tables, in the order of the flat parameter buffer.
    fn tables(&self) -> RVec<TableSpec>;

    /// How the host should build the graph views.
    fn graph_spec(&self) -> GraphSpec;

    /// Columns of the final embeddings (LR-GCCF concatenates layers: d·(L+1)).
    fn width(&self) -> usize;

    /// Writes final embeddings of every user and item into `out` (overwrites).
    fn forward(
        &mut self,
        k: KernelsRef<'_>,
        params: ParamsRef<'_>,
        graph: GraphView<'_>,
        out: EmbMut<'_>,
    ) -> RResult<(), RString>;

    /// Given dL/d(final embeddings) for `graph`, accumulates dL/d(params) into `grads`.
    fn backward(
        &mut self,
        k: KernelsRef<'_>,
        params: ParamsRef<'_>,
        graph: GraphView<'_>,
        d_out: EmbRef<'_>,
        grads: GradsMut<'_>,
    ) -> RResult<(), RString>;

    /// Optional extra loss of the backbone itself (SimGCL's contrastive term). May accumulate
    /// into `d_emb` (gradient w.r.t. the clean final embeddings of view 0) and into `grads`.
    #[sabi(last_prefix_field)]
    fn aux_loss(
        &mut self,
        k: KernelsRef<'_>,
        params: ParamsRef<'_>,
        graph: GraphView<'_>,
        batch: BatchView<'_>,
        emb: EmbRef<'_>,
        d_emb: EmbMut<'_>,
        grads: GradsMut<'_>,
    ) -> RResult<RVec<LossTerm>, RString>;

    /// The tables that hold one input row per node: their rows, taken in the listed order,
    /// are the users then the items (`node_tables`' `[users, items]` is `[0, 1]`), all with
    /// the same column count. An augmenter that masks inputs ([`Augmenter::input_mask`])
    /// replaces rows of these tables before `forward`. Empty: the backbone has no such
    /// tables, and such augmenters are refused with it. Added after the prefix with a
    /// default body: a plugin built before it declares none.
    fn node_inputs(&self) -> RVec<u32> {
        RVec::new()
    }
}

/// Input rows an augmenter replaces for one training step: every node in `nodes` (row
/// `u` is user `u`, row `n_users + i` item `i`; each at most once) gets the augmenter's own
/// table `table` (1 × the backbone's input columns) as its input row during that step's
/// forward and backward passes; the gradient those rows receive is added into that table's
/// gradient, and the backbone's own rows get none from the step's losses (they were not
/// used). The host restores the rows before the L2 term and the optimiser step.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, Default)]
pub struct InputMask {
    /// Nodes whose input row is replaced (users then items numbering).
    pub nodes: RVec<u32>,
    /// Index of the replacement vector among the augmenter's own tables.
    pub table: u32,
}

/// An augmenter: extra losses over the backbone's embeddings of one or more graph views.
#[sabi_trait]
pub trait Augmenter: Send {
    /// Its own trainable tables (e.g. an MLP), in flat-buffer order.
    fn tables(&self) -> RVec<TableSpec>;

    /// Extra graph views beyond view 0 (the training graph), e.g. an augmented interaction
    /// set. `embs[0]` is always view 0; `embs[1 + j]` is the j-th view requested here.
    fn views(&self) -> RVec<ViewSpec>;

    /// Loss value(s) for the batch; accumulates gradients w.r.t. every view's embeddings into
    /// `d_embs` (same order as `embs`) and w.r.t. its own tables into `grads`.
    #[sabi(last_prefix_field)]
    fn loss(
        &mut self,
        k: KernelsRef<'_>,
        batch: BatchView<'_>,
        embs: RSlice<'_, EmbRef<'_>>,
        d_embs: RSliceMut<'_, EmbMut<'_>>,
        params: ParamsRef<'_>,
        grads: GradsMut<'_>,
    ) -> RResult<RVec<LossTerm>, RString>;

    /// True when it asks, every training step, to replace input rows of the backbone
    /// ([`Augmenter::input_mask`]); the host then refuses a backbone that declares no
    /// [`Backbone::node_inputs`]. Added after the prefix with a default body (false).
    fn masks_inputs(&self) -> bool {
        false
    }

    /// Called once per training step, before any `forward`, when [`masks_inputs`] is true:
    /// the input rows to replace for this step (see [`InputMask`]). Draw randomness from
    /// `batch.seed`; `params` are its own tables. Keep what `loss` needs (the nodes).
    /// Added after the prefix with a default body (nothing masked).
    ///
    /// [`masks_inputs`]: Augmenter::masks_inputs
    fn input_mask(
        &mut self,
        batch: BatchView<'_>,
        params: ParamsRef<'_>,
    ) -> RResult<InputMask, RString> {
        let _ = (batch, params);
        ROk(InputMask::default())
    }
}

/// An owned backbone trait object.
pub type BackboneBox = Backbone_TO<'static, RBox<()>>;
/// An owned augmenter trait object.
pub type AugmenterBox = Augmenter_TO<'static, RBox<()>>;

/// The root module every plugin library exports.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginModRef)))]
#[sabi(missing_field(panic))]
pub struct PluginMod {
    /// Name, kind, versions and hyperparameters.
    pub info: extern "C" fn() -> RResult<PluginInfo, RString>,
    /// Builds the backbone from hyperparameters (JSON or TOML text); errors name the key.
    pub new_backbone: extern "C" fn(RStr<'_>, &PluginEnv<'_>) -> RResult<BackboneBox, RString>,
    /// Builds the augmenter from hyperparameters (JSON or TOML text); errors name the key.
    #[sabi(last_prefix_field)]
    pub new_augmenter: extern "C" fn(RStr<'_>, &PluginEnv<'_>) -> RResult<AugmenterBox, RString>,
}

impl RootModule for PluginModRef {
    declare_root_module_statics! {PluginModRef}
    const BASE_NAME: &'static str = "promax_plugin";
    const NAME: &'static str = "promax_plugin";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}
