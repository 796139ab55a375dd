//! Property tests of the layered loader: arbitrary text never panics it, and every valid
//! configuration survives `to_toml` and a reload unchanged.

use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::layering::load_with_env;
use super::sections::llm;
use super::*;

/// All property tests of this file together stay within a few seconds.
fn cases() -> ProptestConfig {
    ProptestConfig::with_cases(256)
}

fn file(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("c.toml");
    std::fs::write(&p, text).unwrap();
    p
}

/// TOML-ish text: mostly fragments of real syntax and keys, so that the loader gets past
/// the parser often enough to exercise layering, coercion and validation.
fn tomlish() -> impl Strategy<Value = String> {
    let atom = prop_oneof![
        Just("[train]\n".to_string()),
        Just("[eval]\n".to_string()),
        Just("[data]\nkind = \"synthetic\"\n".to_string()),
        Just("[plugins.lightgcn]\n".to_string()),
        Just("[llm]\n".to_string()),
        Just("extends = \"c.toml\"\n".to_string()),
        "[a-z_.]{1,20} = [-0-9e.]{1,12}\n",
        "[a-z_.]{1,20} = \"[^\"\n]{0,12}\"\n",
        "[a-z_.]{1,20} = \\[[0-9, ]{0,12}\\]\n",
        "\\PC{0,40}",
    ];
    proptest::collection::vec(atom, 0..8).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(cases())]

    #[test]
    fn any_file_text_loads_or_errs(text in prop_oneof![tomlish(), any::<String>()]) {
        let dir = tempfile::tempdir().unwrap();
        let p = file(dir.path(), &text);
        let _ = load_with_env(Some(&p), &[], Vec::new());
    }

    #[test]
    fn any_set_and_env_value_loads_or_errs(
        set in prop_oneof![
            "(train|eval|data|augment|llm|plugins)\\.[a-z_.]{0,16}=\\PC{0,16}",
            any::<String>(),
        ],
        var in "[A-Za-z_]{0,20}",
        value in any::<String>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let p = file(dir.path(), "[data]\nkind = \"synthetic\"\n");
        let env = vec![(format!("PROMAX_{var}"), value)];
        let _ = load_with_env(Some(&p), &[set], env);
    }
}

/// The input the property above found: figment's escape decoder panicked on a `\\` after
/// a non-ASCII character, through `--set` and the environment alike.
#[test]
fn a_backslash_after_non_ascii_text_is_taken_as_given() {
    let dir = tempfile::tempdir().unwrap();
    let p = file(dir.path(), "[data]\nkind = \"synthetic\"\n");
    let raw = "$Zꬵib5\\n";
    let cfg = load_with_env(Some(&p), &[format!("run.name={raw}")], Vec::new()).unwrap();
    assert_eq!(cfg.run.name, raw);
    let env = vec![("PROMAX_RUN__NAME".to_owned(), raw.to_owned())];
    let cfg = load_with_env(Some(&p), &[], env).unwrap();
    assert_eq!(cfg.run.name, raw);
    assert!(load_with_env(Some(&p), &["train.seed=é\\u0041".to_string()], Vec::new()).is_err());
}

/// A valid configuration with random in-range values in several sections.
fn valid_config() -> impl Strategy<Value = Config> {
    let train = (
        0..=limits::MAX_SEED,
        1..=limits::MAX_EPOCHS,
        1..=limits::MAX_BATCH,
        1e-9..10.0f64,
        0.0..1.0f64,
        0..=limits::MAX_THREADS,
    );
    let eval = (
        1usize..100,
        1usize..100,
        proptest::collection::btree_set(1..=limits::MAX_K, 1..5),
        0usize..5,
        1..=limits::MAX_USER_TILE,
    );
    let augment = (
        1..=limits::MAX_KNN,
        1..=limits::MAX_CANDIDATES,
        0..=limits::MAX_TARGET_OFFSET,
        0..=limits::MAX_PROFILE_DIM,
        any::<bool>(),
        0.0..=1.0f64,
    );
    let llm = (
        1..=llm::MAX_TIMEOUT_SECS,
        0..=llm::MAX_RETRIES,
        0..=llm::MAX_BACKOFF_MS,
        1..=llm::MAX_CONCURRENCY,
        0.0..=2.0f64,
        1..=llm::MAX_TOKENS,
    );
    let synthetic = (
        5usize..100_000,
        1usize..5,
        0.0..=1.0f64,
        1usize..512,
        0..=limits::MAX_SEED,
    );
    let names = ("[A-Za-z0-9 _./-]{0,16}", 1usize..6, 0.0..=1.0f64);
    let options = (
        prop::sample::select(vec![Device::Auto, Device::Cpu, Device::Cuda]),
        prop::sample::select(vec![DuplicatePolicy::Error, DuplicatePolicy::Drop]),
        prop::sample::select(vec![ReductionMode::Separate, ReductionMode::Joint]),
        prop::sample::select(vec![RerankMode::Auto, RerankMode::Llm, RerankMode::Dense]),
    );
    (train, eval, augment, llm, synthetic, names, options).prop_map(
        |((seed, epochs, batch, lr, reg, threads), e, a, l, s, (name, layers, keep), o)| {
            let mut c = Config::default();
            c.data.kind = DataKind::Synthetic;
            (
                c.device,
                c.data.duplicates,
                c.augment.reduction,
                c.augment.rerank,
            ) = o;
            c.train = TrainConfig {
                seed,
                max_epochs: epochs,
                batch_size: batch,
                lr,
                reg_weight: reg,
                threads,
                checkpoint_every: epochs % 7,
                kernel_path: [
                    KernelPathChoice::Auto,
                    KernelPathChoice::Avx512,
                    KernelPathChoice::Avx2,
                    KernelPathChoice::Portable,
                ][seed as usize % 4],
            };
            let ks: Vec<usize> = e.2.into_iter().collect();
            let metric = format!("{}@{}", METRICS[e.3], ks[e.3 % ks.len()]);
            c.eval = EvalConfig {
                every: e.0,
                patience: e.1,
                ks,
                metric,
                user_tile: e.4,
            };
            c.augment.knn = a.0;
            c.augment.max_candidates = a.1;
            c.augment.target_offset = a.2;
            c.augment.reduce_dim = a.3;
            c.augment.whiten = a.4;
            c.augment.max_unusable_share = a.5;
            c.llm.timeout_secs = l.0;
            c.llm.max_retries = l.1;
            c.llm.backoff_base_ms = l.2 / 2;
            c.llm.backoff_max_ms = l.2;
            c.llm.concurrency = l.3;
            c.llm.temperature = l.4;
            c.llm.max_tokens = l.5;
            let syn = &mut c.data.synthetic;
            syn.n_items = s.0;
            syn.n_clusters = s.1;
            syn.affinity = s.2;
            syn.profile_dim = s.3;
            syn.seed = s.4;
            c.run.name = name;
            c.plugins.insert(
                "lightgcn".into(),
                serde_json::json!({"layers": layers, "keep_rate": keep}),
            );
            c
        },
    )
}

proptest! {
    #![proptest_config(cases())]

    #[test]
    fn valid_configs_round_trip_through_to_toml(cfg in valid_config()) {
        prop_assert!(cfg.validate().is_ok(), "{:?}", cfg.validate());
        let dir = tempfile::tempdir().unwrap();
        let text = to_toml(&cfg);
        let p = file(dir.path(), &text);
        let back = load_with_env(Some(&p), &[], Vec::new());
        prop_assert!(back.is_ok(), "{:?}\n{text}", back);
        prop_assert_eq!(back.unwrap(), cfg, "{}", text);
    }
}
