//! The safe side of the ABI: what a plugin author writes against.
//!
//! Implement [`BackboneImpl`] (or [`AugmenterImpl`]) on a plain Rust type, then
//! `promax_plugin_api::declare_backbone!(MyType);` gives the crate a `root_module()` that the
//! host can link statically, and `promax_plugin_api::export_plugin!(root_module);` in a
//! `cdylib` crate exports it for dynamic loading. Panics inside plugin code are caught at
//! the boundary and reported as errors.

use std::any::Any;
use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

use abi_stable::{
    prefix_type::PrefixTypeTrait,
    sabi_trait::TD_Opaque,
    std_types::{RErr, ROk, RResult, RSlice, RSliceMut, RStr, RString, RVec},
};
use schemars::JsonSchema;
use serde::{de::DeserializeOwned, Serialize};
use serde_json::{Map, Value};

use crate::abi::*;

pub mod propagate;
pub mod rng;
pub mod rows;

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

/// Read access to a plugin's parameter tables.
#[derive(Clone, Copy)]
pub struct Params<'a> {
    data: &'a [f32],
    layout: &'a [TableLayout],
}

impl<'a> Params<'a> {
    /// A view of `data` laid out by `layout` (tests and host code; plugins are handed one).
    pub fn new(data: &'a [f32], layout: &'a [TableLayout]) -> Self {
        Params { data, layout }
    }
    fn from_abi(p: ParamsRef<'a>) -> Self {
        Params {
            data: p.data.as_slice(),
            layout: p.layout.as_slice(),
        }
    }
    /// Table `k` (declaration order) as a row-major slice.
    pub fn table(&self, k: usize) -> &'a [f32] {
        let l = self.layout[k];
        &self.data[l.offset..l.offset + l.rows * l.cols]
    }
    /// Where each table lies, in declaration order.
    pub fn layout(&self) -> &'a [TableLayout] {
        self.layout
    }
    /// The ABI view, to pass on to another plugin call.
    pub fn to_abi(self) -> ParamsRef<'a> {
        ParamsRef {
            data: self.data.into(),
            layout: self.layout.into(),
        }
    }
}

/// Write access to a plugin's gradient tables (accumulate with `+=`).
pub struct Grads<'a> {
    data: &'a mut [f32],
    layout: &'a [TableLayout],
}

impl<'a> Grads<'a> {
    /// A view of `data` laid out by `layout` (tests and host code; plugins are handed one).
    pub fn new(data: &'a mut [f32], layout: &'a [TableLayout]) -> Self {
        Grads { data, layout }
    }
    fn from_abi(g: GradsMut<'a>) -> Self {
        Grads {
            data: g.data.into_mut_slice(),
            layout: g.layout.as_slice(),
        }
    }
    /// Gradient of table `k`.
    pub fn table_mut(&mut self, k: usize) -> &mut [f32] {
        let l = self.layout[k];
        &mut self.data[l.offset..l.offset + l.rows * l.cols]
    }
    /// A shorter-lived copy of this view, to lend out and keep using afterwards.
    pub fn reborrow(&mut self) -> Grads<'_> {
        Grads {
            data: self.data,
            layout: self.layout,
        }
    }
    /// The ABI view, to pass on to another plugin call.
    pub fn to_abi(&mut self) -> GradsMut<'_> {
        GradsMut {
            data: (&mut *self.data).into(),
            layout: self.layout.into(),
        }
    }
}

/// Node embeddings (users then items), read-only.
#[derive(Clone, Copy)]
pub struct Emb<'a> {
    /// (n_users + n_items) × width values, row-major.
    pub data: &'a [f32],
    /// User rows (first).
    pub n_users: usize,
    /// Item rows (after the users).
    pub n_items: usize,
    /// Columns of every row.
    pub width: usize,
}

impl<'a> Emb<'a> {
    fn from_abi(e: EmbRef<'a>) -> Self {
        Emb {
            data: e.data.as_slice(),
            n_users: e.n_users,
            n_items: e.n_items,
            width: e.width,
        }
    }
    /// The ABI view, to pass on to another plugin call.
    pub fn to_abi(self) -> EmbRef<'a> {
        EmbRef {
            data: self.data.into(),
            n_users: self.n_users,
            n_items: self.n_items,
            width: self.width,
        }
    }
    /// User `u`'s row.
    pub fn user(&self, u: usize) -> &'a [f32] {
        &self.data[u * self.width..(u + 1) * self.width]
    }
    /// Item `i`'s row.
    pub fn item(&self, i: usize) -> &'a [f32] {
        let r = self.n_users + i;
        &self.data[r * self.width..(r + 1) * self.width]
    }
    /// Every user row (n_users × width).
    pub fn users(&self) -> &'a [f32] {
        &self.data[..self.n_users * self.width]
    }
    /// Every item row (n_items × width).
    pub fn items(&self) -> &'a [f32] {
        &self.data[self.n_users * self.width..]
    }
}

/// Node embeddings (users then items), writable: a forward output or a gradient buffer.
pub struct EmbBuf<'a> {
    /// (n_users + n_items) × width values, row-major.
    pub data: &'a mut [f32],
    /// User rows (first).
    pub n_users: usize,
    /// Item rows (after the users).
    pub n_items: usize,
    /// Columns of every row.
    pub width: usize,
}

impl<'a> EmbBuf<'a> {
    fn from_abi(e: EmbMut<'a>) -> Self {
        EmbBuf {
            data: e.data.into_mut_slice(),
            n_users: e.n_users,
            n_items: e.n_items,
            width: e.width,
        }
    }
    /// The ABI view, to pass on to another plugin call.
    pub fn to_abi(&mut self) -> EmbMut<'_> {
        EmbMut {
            data: (&mut *self.data).into(),
            n_users: self.n_users,
            n_items: self.n_items,
            width: self.width,
        }
    }
    /// A read-only view of the same buffer.
    pub fn as_emb(&self) -> Emb<'_> {
        Emb {
            data: self.data,
            n_users: self.n_users,
            n_items: self.n_items,
            width: self.width,
        }
    }
    /// User `u`'s row, writable.
    pub fn user_mut(&mut self, u: usize) -> &mut [f32] {
        let w = self.width;
        &mut self.data[u * w..(u + 1) * w]
    }
    /// Item `i`'s row, writable.
    pub fn item_mut(&mut self, i: usize) -> &mut [f32] {
        let (w, r) = (self.width, self.n_users + i);
        &mut self.data[r * w..(r + 1) * w]
    }
    /// The user rows, writable.
    pub fn users_mut(&mut self) -> &mut [f32] {
        &mut self.data[..self.n_users * self.width]
    }
    /// The item rows, writable.
    pub fn items_mut(&mut self) -> &mut [f32] {
        &mut self.data[self.n_users * self.width..]
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

/// Runs plugin code so that neither a panic nor an error crosses the FFI boundary raw.
fn guarded<T>(
    plugin: &str,
    what: &str,
    f: impl FnOnce() -> PluginResult<T>,
) -> RResult<T, RString> {
    match catch_panic(f) {
        Ok(Ok(v)) => ROk(v),
        Ok(Err(e)) => RErr(format!("plugin `{plugin}`: {what}: {e}").into()),
        Err(p) => RErr(format!("plugin `{plugin}` panicked in {what}: {p}").into()),
    }
}

/// Levenshtein distance, for "did you mean" suggestions.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The candidate closest to `key`, if it is plausibly a typo of it.
pub fn nearest<'c>(key: &str, candidates: impl IntoIterator<Item = &'c str>) -> Option<&'c str> {
    candidates
        .into_iter()
        .map(|c| (edit_distance(key, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min()
        .map(|(_, c)| c)
}

fn defaults_object<H: Hparams>() -> Map<String, Value> {
    match serde_json::to_value(H::default()) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

/// Parses hyperparameters given as JSON or TOML text into `H`, starting from its defaults.
/// Errors name the offending key and, for an unknown key, the nearest valid one.
pub fn parse_hparams<H: Hparams>(text: &str) -> PluginResult<H> {
    let text = text.trim();
    let given: Value = if text.is_empty() {
        Value::Object(Map::new())
    } else if text.starts_with('{') {
        serde_json::from_str(text)
            .map_err(|e| format!("hyperparameters are not valid JSON: {e}"))?
    } else {
        let t: toml::Value =
            toml::from_str(text).map_err(|e| format!("hyperparameters are not valid TOML: {e}"))?;
        serde_json::to_value(t).map_err(|e| e.to_string())?
    };
    let Value::Object(given) = given else {
        return Err("hyperparameters must be a table of key = value".into());
    };
    let defaults = defaults_object::<H>();
    let mut merged = defaults.clone();
    for (key, value) in &given {
        if !defaults.contains_key(key) {
            let hint = nearest(key, defaults.keys().map(String::as_str))
                .map(|n| format!("; did you mean `{n}`?"))
                .unwrap_or_else(|| {
                    let all: Vec<&str> = defaults.keys().map(String::as_str).collect();
                    format!("; valid keys: {}", all.join(", "))
                });
            return Err(format!("unknown hyperparameter `{key}`{hint}"));
        }
        let mut one = defaults.clone();
        one.insert(key.clone(), value.clone());
        if let Err(e) = serde_json::from_value::<H>(Value::Object(one)) {
            return Err(format!("hyperparameter `{key}` = {value}: {e}"));
        }
        merged.insert(key.clone(), value.clone());
    }
    serde_json::from_value(Value::Object(merged)).map_err(|e| e.to_string())
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "table",
    }
}

/// JSON text of a default value. A float that is exactly an `f32` is written as the `f32`
/// (`0.8`, not `0.800000011920929`, which is how the f64 JSON value of `0.8f32` prints).
fn default_text(v: &Value) -> String {
    match v.as_f64() {
        Some(x) if v.is_f64() && f64::from(x as f32) == x && x.is_finite() => {
            let s = (x as f32).to_string();
            if s.contains('.') {
                s
            } else {
                format!("{s}.0")
            }
        }
        _ => v.to_string(),
    }
}

/// The doc of a hyperparameter whose field has no `///` comment: the gap shows in
/// `promax plugins show` (and fails the built-in plugins' test) instead of an empty column.
pub const UNDOCUMENTED: &str = "(undocumented: the field has no /// comment)";

/// Each hyperparameter's `///` comment on one line, by its serde name.
fn hparam_docs<H: Hparams>() -> BTreeMap<String, String> {
    let schema = schemars::schema_for!(H);
    let Some(Value::Object(fields)) = schema.get("properties") else {
        return BTreeMap::new();
    };
    fields
        .iter()
        .filter_map(|(name, field)| {
            // schemars splits a doc that opens with a `# heading` into title and description.
            let text = |key| field.get(key).and_then(Value::as_str).unwrap_or_default();
            let words: Vec<&str> = [text("title"), text("description")]
                .into_iter()
                .flat_map(str::split_whitespace)
                .collect();
            (!words.is_empty()).then(|| (name.clone(), words.join(" ")))
        })
        .collect()
}

/// The [`PluginInfo`] of a plugin type; hyperparameters come from its `Default` and the
/// fields' `///` comments.
pub fn plugin_info<P: PluginMeta>(kind: PluginKind) -> PluginInfo {
    let defaults = defaults_object::<P::Hparams>();
    let docs = hparam_docs::<P::Hparams>();
    let hparams = defaults
        .iter()
        .map(|(name, v)| HparamInfo {
            name: name.as_str().into(),
            ty: json_type(v).into(),
            default: default_text(v).into(),
            doc: docs.get(name).map_or(UNDOCUMENTED, String::as_str).into(),
        })
        .collect();
    PluginInfo {
        name: P::NAME.into(),
        kind,
        version: P::VERSION.into(),
        abi_version: ABI_VERSION,
        description: P::DESCRIPTION.into(),
        hparams,
    }
}

/// Adapts a safe [`BackboneImpl`] to the ABI trait.
struct BackboneAdapter<T>(T);

impl<T: BackboneImpl> Backbone for BackboneAdapter<T> {
    fn tables(&self) -> RVec<TableSpec> {
        catch_unwind(AssertUnwindSafe(|| self.0.tables().into())).unwrap_or_default()
    }
    fn graph_spec(&self) -> GraphSpec {
        catch_unwind(AssertUnwindSafe(|| self.0.graph_spec())).unwrap_or_default()
    }
    fn width(&self) -> usize {
        catch_unwind(AssertUnwindSafe(|| self.0.width())).unwrap_or(0)
    }
    fn forward(
        &mut self,
        k: KernelsRef<'_>,
        params: ParamsRef<'_>,
        graph: GraphView<'_>,
        out: EmbMut<'_>,
    ) -> RResult<(), RString> {
        guarded(T::NAME, "forward", || {
            self.0.forward(
                &Compute::new(k),
                Params::from_abi(params),
                &graph,
                EmbBuf::from_abi(out),
            )
        })
    }
    fn backward(
        &mut self,
        k: KernelsRef<'_>,
        params: ParamsRef<'_>,
        graph: GraphView<'_>,
        d_out: EmbRef<'_>,
        grads: GradsMut<'_>,
    ) -> RResult<(), RString> {
        guarded(T::NAME, "backward", || {
            self.0.backward(
                &Compute::new(k),
                Params::from_abi(params),
                &graph,
                Emb::from_abi(d_out),
                Grads::from_abi(grads),
            )
        })
    }
    fn aux_loss(
        &mut self,
        k: KernelsRef<'_>,
        params: ParamsRef<'_>,
        graph: GraphView<'_>,
        batch: BatchView<'_>,
        emb: EmbRef<'_>,
        d_emb: EmbMut<'_>,
        grads: GradsMut<'_>,
    ) -> RResult<RVec<LossTerm>, RString> {
        guarded(T::NAME, "aux_loss", || {
            self.0
                .aux_loss(
                    &Compute::new(k),
                    Params::from_abi(params),
                    &graph,
                    &batch,
                    Emb::from_abi(emb),
                    EmbBuf::from_abi(d_emb),
                    Grads::from_abi(grads),
                )
                .map(RVec::from)
        })
    }
}

/// Adapts a safe [`AugmenterImpl`] to the ABI trait.
struct AugmenterAdapter<T>(T);

impl<T: AugmenterImpl> Augmenter for AugmenterAdapter<T> {
    fn tables(&self) -> RVec<TableSpec> {
        catch_unwind(AssertUnwindSafe(|| self.0.tables().into())).unwrap_or_default()
    }
    fn views(&self) -> RVec<ViewSpec> {
        catch_unwind(AssertUnwindSafe(|| self.0.views().into())).unwrap_or_default()
    }
    fn loss(
        &mut self,
        k: KernelsRef<'_>,
        batch: BatchView<'_>,
        embs: RSlice<'_, EmbRef<'_>>,
        d_embs: RSliceMut<'_, EmbMut<'_>>,
        params: ParamsRef<'_>,
        grads: GradsMut<'_>,
    ) -> RResult<RVec<LossTerm>, RString> {
        guarded(T::NAME, "loss", || {
            let embs: Vec<Emb<'_>> = embs.iter().map(|e| Emb::from_abi(*e)).collect();
            let mut d: Vec<EmbBuf<'_>> = d_embs
                .into_mut_slice()
                .iter_mut()
                .map(|e| EmbBuf {
                    data: e.data.as_mut_slice(),
                    n_users: e.n_users,
                    n_items: e.n_items,
                    width: e.width,
                })
                .collect();
            self.0
                .loss(
                    &Compute::new(k),
                    &batch,
                    &embs,
                    &mut d,
                    Params::from_abi(params),
                    Grads::from_abi(grads),
                )
                .map(RVec::from)
        })
    }
}

fn check_kind<T>(name: &str, is: PluginKind, wanted: PluginKind) -> PluginResult<T> {
    Err(format!(
        "`{name}` is a{} {}, not a{} {}",
        if is == PluginKind::Augmenter { "n" } else { "" },
        is.as_str(),
        if wanted == PluginKind::Augmenter {
            "n"
        } else {
            ""
        },
        wanted.as_str()
    ))
}

extern "C" fn backbone_info<T: BackboneImpl>() -> RResult<PluginInfo, RString> {
    guarded(T::NAME, "info", || {
        Ok(plugin_info::<T>(PluginKind::Backbone))
    })
}

extern "C" fn augmenter_info<T: AugmenterImpl>() -> RResult<PluginInfo, RString> {
    guarded(T::NAME, "info", || {
        Ok(plugin_info::<T>(PluginKind::Augmenter))
    })
}

extern "C" fn make_backbone<T: BackboneImpl>(
    hparams: RStr<'_>,
    env: &PluginEnv<'_>,
) -> RResult<BackboneBox, RString> {
    guarded(T::NAME, "hyperparameters", || {
        let h = parse_hparams::<T::Hparams>(hparams.as_str())?;
        let b = T::new(h, &Env::from_abi(env))?;
        Ok(Backbone_TO::from_value(BackboneAdapter(b), TD_Opaque))
    })
}

extern "C" fn make_augmenter<T: AugmenterImpl>(
    hparams: RStr<'_>,
    env: &PluginEnv<'_>,
) -> RResult<AugmenterBox, RString> {
    guarded(T::NAME, "hyperparameters", || {
        let h = parse_hparams::<T::Hparams>(hparams.as_str())?;
        let a = T::new(h, &Env::from_abi(env))?;
        Ok(Augmenter_TO::from_value(AugmenterAdapter(a), TD_Opaque))
    })
}

extern "C" fn not_an_augmenter<T: PluginMeta>(
    _: RStr<'_>,
    _: &PluginEnv<'_>,
) -> RResult<AugmenterBox, RString> {
    guarded(T::NAME, "constructor", || {
        check_kind(T::NAME, PluginKind::Backbone, PluginKind::Augmenter)
    })
}

extern "C" fn not_a_backbone<T: PluginMeta>(
    _: RStr<'_>,
    _: &PluginEnv<'_>,
) -> RResult<BackboneBox, RString> {
    guarded(T::NAME, "constructor", || {
        check_kind(T::NAME, PluginKind::Augmenter, PluginKind::Backbone)
    })
}

/// Builds the root module of a backbone plugin (use [`declare_backbone!`](crate::declare_backbone)).
pub fn backbone_module<T: BackboneImpl>() -> PluginModRef {
    PluginMod {
        info: backbone_info::<T>,
        new_backbone: make_backbone::<T>,
        new_augmenter: not_an_augmenter::<T>,
    }
    .leak_into_prefix()
}

/// Builds the root module of an augmenter plugin (use [`declare_augmenter!`](crate::declare_augmenter)).
pub fn augmenter_module<T: AugmenterImpl>() -> PluginModRef {
    PluginMod {
        info: augmenter_info::<T>,
        new_backbone: not_a_backbone::<T>,
        new_augmenter: make_augmenter::<T>,
    }
    .leak_into_prefix()
}

/// Wraps a safe value into the ABI object without a root module (tests, static use).
pub fn backbone_box<T: BackboneImpl>(b: T) -> BackboneBox {
    Backbone_TO::from_value(BackboneAdapter(b), TD_Opaque)
}

/// Wraps a safe value into the ABI object without a root module (tests, static use).
pub fn augmenter_box<T: AugmenterImpl>(a: T) -> AugmenterBox {
    Augmenter_TO::from_value(AugmenterAdapter(a), TD_Opaque)
}
