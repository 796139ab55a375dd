//! What the built-in plugins' tests share: a small graph, the gradient check over it, and
//! the checks of a root module's constructor errors and hyperparameter docs, run exactly as
//! the host calls them (through the ABI).

use abi_stable::std_types::RStr;

use super::{check_backbone_gradients, graph_view, Csr, ReferenceKernels};
use crate::abi::{BackboneBox, PluginEnv, PluginInfo, PluginKind, PluginModRef, ProfilesRef};

/// Users of [`SMALL_PAIRS`].
pub const SMALL_USERS: usize = 4;
/// Items of [`SMALL_PAIRS`].
pub const SMALL_ITEMS: usize = 5;
/// A 4 × 5 graph with unequal degrees (1 to 3) and no isolated node, so that a wrong
/// normalisation or a missed edge shows in the gradients.
pub const SMALL_PAIRS: [(u32, u32); 8] = [
    (0, 0),
    (0, 1),
    (0, 4),
    (1, 1),
    (1, 2),
    (2, 3),
    (3, 4),
    (3, 0),
];

/// How many sampled parameters of `b` fail the finite-difference check on the
/// [`SMALL_PAIRS`] graph given as `adj` and its (possibly edge-dropped) transpose `adj_t`.
pub fn small_graph_mismatches(b: &mut BackboneBox, adj: &Csr, adj_t: &Csr, seed: u64) -> usize {
    let g = graph_view(SMALL_USERS, adj.view(), adj_t.view());
    let bad = check_backbone_gradients(b, &ReferenceKernels.as_ref(), g, usize::MAX, seed);
    bad.expect("the gradient check runs").len()
}

/// The constructor environment the host passes (ABI form): `n_users × n_items`, seed 1,
/// no profiles.
pub fn abi_env(n_users: usize, n_items: usize) -> PluginEnv<'static> {
    PluginEnv {
        n_users,
        n_items,
        data_dir: "".into(),
        seed: 1,
        profiles: ProfilesRef::none(),
    }
}

/// Builds `m`'s backbone from hyperparameter text on the small graph's sizes.
pub fn new_small_backbone(m: PluginModRef, text: &str) -> Result<BackboneBox, String> {
    let env = abi_env(SMALL_USERS, SMALL_ITEMS);
    m.new_backbone()(RStr::from(text), &env)
        .into_result()
        .map_err(|e| e.into_string())
}

/// Asserts that `m`'s backbone constructor refuses every `(text, wanted)` case with an
/// error containing `wanted` (a key's name, a suggestion).
pub fn assert_backbone_rejects(m: PluginModRef, cases: &[(&str, &str)]) {
    for (text, wanted) in cases {
        match new_small_backbone(m, text) {
            Ok(_) => panic!("`{text}` was accepted"),
            Err(e) => assert!(e.contains(wanted), "{text}: {e}"),
        }
    }
}

/// Asserts that `m`'s info has this name and kind, a doc on every hyperparameter, and
/// exactly the `(name, default)` pairs `want` (in any order).
pub fn assert_hparams_documented(
    m: PluginModRef,
    name: &str,
    kind: PluginKind,
    want: &[(&str, &str)],
) {
    let info: PluginInfo = m.info()().into_result().expect("info");
    assert_eq!((info.name.as_str(), info.kind), (name, kind));
    for h in info.hparams.iter() {
        assert!(!h.doc.is_empty(), "`{}` has no doc", h.name);
    }
    let mut shown: Vec<(&str, &str)> = (info.hparams.iter())
        .map(|h| (h.name.as_str(), h.default.as_str()))
        .collect();
    shown.sort_unstable();
    let mut want = want.to_vec();
    want.sort_unstable();
    assert_eq!(shown, want);
}
