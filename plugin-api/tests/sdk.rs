//! The SDK seen from a plugin crate: panics stay inside the boundary, hyperparameter parsing
//! names keys, and the "did you mean" helpers.

use promax_plugin_api::abi_stable::{
    sabi_trait::TD_Opaque,
    std_types::{RErr, RResult, RSlice, RSliceMut, RString},
};
use promax_plugin_api::prelude::*;
use promax_plugin_api::sdk::{
    backbone_box, backbone_module, edit_distance, nearest, parse_hparams, UNDOCUMENTED,
};
use promax_plugin_api::testing::{finite_difference_check, layout_of};
use promax_plugin_api::{
    EmbMut, EmbRef, GradsMut, KernelTable, KernelTable_TO, KernelsRef, PluginEnv, PluginKind,
};
use serde::{Deserialize, Serialize};

/// A kernel table that refuses everything: the backbones below never call it.
struct NoKernels;

impl KernelTable for NoKernels {
    fn spmm(
        &self,
        _: CsrView<'_>,
        _: RSlice<'_, f32>,
        _: usize,
        _: RSliceMut<'_, f32>,
        _: f32,
    ) -> RResult<(), RString> {
        RErr("no kernels in this test".into())
    }
    fn gemm(
        &self,
        _: GemmSpec,
        _: RSlice<'_, f32>,
        _: RSlice<'_, f32>,
        _: RSliceMut<'_, f32>,
    ) -> RResult<(), RString> {
        RErr("no kernels in this test".into())
    }
    fn score_topk(
        &self,
        _: TopkRequest<'_>,
        _: RSliceMut<'_, u32>,
        _: RSliceMut<'_, f32>,
    ) -> RResult<(), RString> {
        RErr("no kernels in this test".into())
    }
    fn softmax_stats(
        &self,
        _: promax_plugin_api::SoftmaxStatsRequest<'_>,
        _: RSliceMut<'_, f32>,
        _: RSliceMut<'_, f32>,
    ) -> RResult<(), RString> {
        RErr("no kernels in this test".into())
    }
    fn soft_ce_all_items(
        &self,
        _: promax_plugin_api::SoftCeRequest<'_>,
        _: RSliceMut<'_, f32>,
        _: RSliceMut<'_, f32>,
    ) -> RResult<f64, RString> {
        RErr("no kernels in this test".into())
    }
    fn info_nce(
        &self,
        _: promax_plugin_api::InfoNceRequest<'_>,
        _: RSliceMut<'_, f32>,
        _: RSliceMut<'_, f32>,
    ) -> RResult<f64, RString> {
        RErr("no kernels in this test".into())
    }
    fn info_nce_pairs(
        &self,
        _: promax_plugin_api::PairedNceRequest<'_>,
        _: RSliceMut<'_, f32>,
        _: RSliceMut<'_, f32>,
    ) -> RResult<f64, RString> {
        RErr("no kernels in this test".into())
    }
}

/// Hyperparameters with every kind of default; `name` is left undocumented on purpose.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(crate = "promax_plugin_api::schemars")]
struct H {
    /// Embedding size, documented
    /// over two lines.
    dim: usize,
    /// # Keep rate
    /// Of every edge.
    keep_rate: f32,
    /// Scale.
    scale: f32,
    /// Learning rate.
    lr: f64,
    /// Sum layer 0.
    include_layer0: bool,
    name: String,
}

impl Default for H {
    fn default() -> Self {
        H {
            dim: 4,
            keep_rate: 0.8,
            scale: 1.0,
            lr: 1e-3,
            include_layer0: false,
            name: "x".into(),
        }
    }
}

/// Panics in `forward` and in its constructor when `dim` is 13; fails `backward` cleanly.
struct Boom;

impl PluginMeta for Boom {
    const NAME: &'static str = "boom";
    const VERSION: &'static str = "0.0.1";
    const DESCRIPTION: &'static str = "panics on purpose";
    type Hparams = H;
}

impl BackboneImpl for Boom {
    fn new(h: H, _: &Env) -> PluginResult<Self> {
        assert_ne!(h.dim, 13, "unlucky dim");
        Ok(Boom)
    }
    fn tables(&self) -> Vec<TableSpec> {
        vec![table("t", 1, 1, Init::Zeros)]
    }
    fn width(&self) -> usize {
        1
    }
    fn forward(&mut self, _: &Compute, _: Params, _: &GraphView, _: EmbBuf) -> PluginResult<()> {
        let layers: Vec<usize> = Vec::new();
        let _ = layers[2]; // index out of bounds
        Ok(())
    }
    fn backward(
        &mut self,
        _: &Compute,
        _: Params,
        _: &GraphView,
        _: Emb,
        _: Grads,
    ) -> PluginResult<()> {
        Err("no gradient today".into())
    }
}

fn empty_csr(n: usize) -> CsrView<'static> {
    static ZEROS: [usize; 3] = [0; 3];
    CsrView {
        n_rows: n,
        n_cols: n,
        indptr: RSlice::from_slice(&ZEROS[..=n]),
        indices: RSlice::from_slice(&[]),
        values: RSlice::from_slice(&[]),
    }
}

#[test]
fn panics_and_errors_come_back_as_err_naming_the_plugin() {
    let mut b = backbone_box(Boom);
    let kernels = NoKernels;
    let k: KernelsRef<'_> = KernelTable_TO::from_ptr(&kernels, TD_Opaque);
    let tables = b.tables();
    let layout = layout_of(&tables);
    let params = [0f32];
    let graph = GraphView {
        n_users: 1,
        n_items: 1,
        adj: empty_csr(2),
        adj_t: empty_csr(2),
        view: 0,
        training: false,
    };
    let mut out = [0f32; 2];
    let emb = EmbMut {
        data: out.as_mut_slice().into(),
        n_users: 1,
        n_items: 1,
        width: 1,
    };
    let p = Params::new(&params, &layout).to_abi();
    let err = b
        .forward(k.sabi_reborrow(), p, graph, emb)
        .unwrap_err()
        .into_string();
    assert!(err.contains("panicked"), "{err}");
    assert!(err.contains("`boom`"), "{err}");
    assert!(err.contains("forward"), "{err}");
    assert!(err.contains("index out of bounds"), "{err}");

    let d = [1f32; 2];
    let d_out = EmbRef {
        data: d.as_slice().into(),
        n_users: 1,
        n_items: 1,
        width: 1,
    };
    let mut g = [0f32];
    let grads = GradsMut {
        data: g.as_mut_slice().into(),
        layout: layout.as_slice().into(),
    };
    let err = b
        .backward(k, p, graph, d_out, grads)
        .unwrap_err()
        .into_string();
    assert_eq!(err, "plugin `boom`: backward: no gradient today");
}

#[test]
fn constructor_panics_and_kind_mismatches_are_errors() {
    let m = backbone_module::<Boom>();
    let env = PluginEnv {
        n_users: 1,
        n_items: 1,
        data_dir: "".into(),
        seed: 0,
        profiles: promax_plugin_api::ProfilesRef::none(),
    };
    let err = m.new_backbone()(r#"{"dim": 13}"#.into(), &env)
        .err()
        .expect("an error");
    assert!(
        err.contains("panicked") && err.contains("`boom`") && err.contains("unlucky dim"),
        "{err}"
    );
    assert!(m.new_backbone()("dim = 12".into(), &env).is_ok());
    let err = m.new_augmenter()("".into(), &env).err().expect("an error");
    assert!(err.contains("is a backbone, not an augmenter"), "{err}");
}

#[test]
fn plugin_info_shows_defaults_as_written() {
    let info = backbone_module::<Boom>().info()().unwrap();
    assert_eq!(
        (info.name.as_str(), info.kind),
        ("boom", PluginKind::Backbone)
    );
    let shown: Vec<(&str, &str, &str)> = info
        .hparams
        .iter()
        .map(|h| (h.name.as_str(), h.ty.as_str(), h.default.as_str()))
        .collect();
    assert_eq!(
        shown,
        [
            ("dim", "integer", "4"),
            ("include_layer0", "bool", "false"),
            ("keep_rate", "float", "0.8"), // not 0.800000011920929
            ("lr", "float", "0.001"),
            ("name", "string", "\"x\""),
            ("scale", "float", "1.0"),
        ]
    );
}

#[test]
fn plugin_info_reads_field_docs_and_shows_a_missing_one() {
    let info = backbone_module::<Boom>().info()().unwrap();
    let docs: Vec<(&str, &str)> = info
        .hparams
        .iter()
        .map(|h| (h.name.as_str(), h.doc.as_str()))
        .collect();
    assert_eq!(
        docs,
        [
            ("dim", "Embedding size, documented over two lines."),
            ("include_layer0", "Sum layer 0."),
            ("keep_rate", "Keep rate Of every edge."),
            ("lr", "Learning rate."),
            ("name", UNDOCUMENTED),
            ("scale", "Scale."),
        ]
    );
}

#[test]
fn parse_hparams_reads_json_and_toml_over_the_defaults() {
    let json: H = parse_hparams(r#"{"dim": 8, "name": "y"}"#).unwrap();
    assert_eq!(
        json,
        H {
            dim: 8,
            name: "y".into(),
            ..H::default()
        }
    );
    let toml: H = parse_hparams("dim = 8\nkeep_rate = 1\ninclude_layer0 = true").unwrap();
    assert_eq!(
        toml,
        H {
            dim: 8,
            keep_rate: 1.0,
            include_layer0: true,
            ..H::default()
        }
    );
    assert_eq!(parse_hparams::<H>("  \n").unwrap(), H::default());
}

#[test]
fn parse_hparams_errors_name_the_key() {
    let err = |text: &str| parse_hparams::<H>(text).unwrap_err();
    let e = err("dimm = 3");
    assert!(
        e.starts_with("unknown hyperparameter `dimm`; did you mean `dim`?"),
        "{e}"
    );
    let e = err("inclde_layer0 = false");
    assert!(e.contains("did you mean `include_layer0`"), "{e}");
    let e = err("completely_unrelated = 1");
    assert!(e.contains("valid keys: ") && e.contains("keep_rate"), "{e}");
    let e = err(r#"dim = "big""#);
    assert!(e.starts_with("hyperparameter `dim` = \"big\""), "{e}");
    let e = err(r#"{"dim": -1}"#);
    assert!(e.starts_with("hyperparameter `dim` = -1"), "{e}");
    let e = err(r#"{"include_layer0": 1}"#);
    assert!(e.contains("`include_layer0`"), "{e}");
    assert!(err(r#"{"dim": "#).contains("not valid JSON"));
    assert!(err("dim = = 3").contains("not valid TOML"));
}

#[test]
fn edit_distance_on_hand_cases() {
    for (a, b, d) in [
        ("", "", 0),
        ("abc", "", 3),
        ("", "abc", 3),
        ("layers", "layers", 0),
        ("laayers", "layers", 1),
        ("kitten", "sitting", 3),
        ("flaw", "lawn", 2),
        ("keep_rate", "keeprate", 1),
        ("héllo", "hello", 1),
    ] {
        assert_eq!(edit_distance(a, b), d, "{a} / {b}");
        assert_eq!(edit_distance(b, a), d, "{b} / {a}");
    }
}

#[test]
fn nearest_suggests_only_plausible_typos() {
    let keys = ["dim", "layers", "include_layer0", "keep_rate"];
    assert_eq!(nearest("laayers", keys), Some("layers"));
    assert_eq!(nearest("dimm", keys), Some("dim"));
    assert_eq!(nearest("include_layers", keys), Some("include_layer0"));
    assert_eq!(nearest("keeprate", keys), Some("keep_rate"));
    assert_eq!(nearest("learning_rate", keys), None);
    assert_eq!(nearest("x", [] as [&str; 0]), None);
    // Ties go to the alphabetically first candidate, so suggestions are stable.
    assert_eq!(nearest("dam", ["dum", "dim"]), Some("dim"));
}

#[test]
fn finite_difference_check_flags_a_wrong_derivative() {
    // f(x) = Σ x³: f' = 3x².
    let mut x = vec![0.3f32, -0.7, 1.2];
    let f = |x: &[f32]| x.iter().map(|&v| f64::from(v).powi(3)).sum::<f64>();
    let right: Vec<f32> = x.iter().map(|v| 3.0 * v * v).collect();
    let ok = finite_difference_check(&mut x, &right, &[0, 1, 2], 1e-2, 2e-3, 1e-3, f);
    assert!(ok.is_empty(), "{ok:?}");
    let mut wrong = right.clone();
    wrong[1] *= 1.01;
    let bad = finite_difference_check(&mut x, &wrong, &[0, 1, 2], 1e-2, 2e-3, 1e-3, f);
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0].index, 1);
}
