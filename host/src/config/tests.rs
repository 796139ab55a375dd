//! The loader as a whole: layering and precedence, errors naming key and layer, and the
//! shipped configs.

use std::fs;
use std::path::{Path, PathBuf};

use figment::value::Value;

use super::diagnose::all_keys;
use super::layering::load_with_env;
use super::schema::defaults_dict;
use super::*;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    fs::write(&p, text).unwrap();
    p
}

/// Loads with an empty environment (tests must not see the developer's PROMAX_ vars).
fn load_clean(path: &Path, sets: &[&str]) -> Result<Config, ConfigError> {
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    load_with_env(Some(path), &sets, Vec::new())
}

const VALID: &str = "[data]\nkind = \"synthetic\"\n";

#[test]
fn defaults_match_the_documented_values() {
    let c = Config::default();
    assert_eq!(c.device, "cpu");
    assert!(c.plugin_dirs.is_empty() && c.plugins.is_empty());
    assert_eq!(c.data.kind, "files");
    assert_eq!(c.data.duplicates, "error");
    assert_eq!((c.data.n_users, c.data.n_items), (0, 0));
    let s = &c.data.synthetic;
    assert_eq!(
        (s.n_users, s.n_items, s.n_clusters, s.mean_interactions),
        (600, 400, 8, 25)
    );
    assert_eq!(
        (s.affinity, s.profile_dim, s.profile_signal, s.seed),
        (0.8, 32, 0.7, 7)
    );
    assert_eq!(c.model.backbone, "lightgcn");
    assert!(c.model.augmenters.is_empty());
    let t = &c.train;
    assert_eq!(
        (t.seed, t.max_epochs, t.batch_size, t.threads),
        (2025, 1000, 4096, 0)
    );
    assert_eq!((t.lr, t.reg_weight), (1e-3, 1e-6));
    let e = &c.eval;
    assert_eq!((e.every, e.patience, e.user_tile), (3, 5, 256));
    assert_eq!(e.ks, vec![5, 10, 20]);
    assert_eq!(e.metric, "recall@20");
    assert_eq!(c.run.out_dir, PathBuf::from("runs"));
    assert_eq!(c.run.name, "");
}

#[test]
fn a_minimal_file_gets_every_default() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "c.toml", VALID);
    let c = load_clean(&p, &[]).unwrap();
    let mut want = Config::default();
    want.data.kind = DataKind::Synthetic;
    assert_eq!(c, want);
}

#[test]
fn extends_chain_precedence_env_then_set() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "base.toml", "[train]\nseed = 1\nlr = 0.5\nbatch_size = 100\nmax_epochs = 10\n[data]\nkind = \"synthetic\"\n");
    write(
        dir.path(),
        "mid/model.toml",
        "[train]\nlr = 0.25\nbatch_size = 200\n",
    );
    let p = write(
        dir.path(),
        "exp/child.toml",
        "extends = [\"../base.toml\", \"../mid/model.toml\"]\n[train]\nbatch_size = 300\nmax_epochs = 20\nseed = 3\n",
    );
    let c = load_clean(&p, &[]).unwrap();
    assert_eq!(c.train.lr, 0.25, "second parent overrides the first");
    assert_eq!(c.train.batch_size, 300, "child overrides parents");
    assert_eq!(
        c.data.kind, "synthetic",
        "parent value kept when nobody overrides it"
    );

    let env = vec![
        ("PROMAX_TRAIN__MAX_EPOCHS".to_string(), "40".to_string()),
        ("PROMAX_TRAIN__SEED".to_string(), "4".to_string()),
        ("promax_run__name".to_string(), "from-env".to_string()),
        ("PROMAX_PLUGIN_PATH".to_string(), "/somewhere".to_string()),
        ("OTHER_TRAIN__SEED".to_string(), "99".to_string()),
    ];
    let c = load_with_env(Some(&p), &["train.seed=5".to_string()], env).unwrap();
    assert_eq!(c.train.max_epochs, 40, "env overrides the file");
    assert_eq!(c.train.seed, 5, "--set overrides env");
    assert_eq!(c.run.name, "from-env");
}

#[test]
fn diamond_parent_is_merged_once() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "base.toml",
        "device = \"cpu\"\n[data]\nkind = \"synthetic\"\n",
    );
    write(
        dir.path(),
        "a.toml",
        "extends = \"base.toml\"\ndevice = \"cuda\"\n",
    );
    write(
        dir.path(),
        "b.toml",
        "extends = \"base.toml\"\n[train]\nseed = 9\n",
    );
    let p = write(
        dir.path(),
        "top.toml",
        "extends = [\"a.toml\", \"b.toml\"]\n",
    );
    let c = load_clean(&p, &[]).unwrap();
    assert_eq!(
        c.device, "cuda",
        "b's copy of base must not undo a's override"
    );
    assert_eq!(c.train.seed, 9);
}

#[test]
fn extends_cycle_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.toml", "extends = \"b.toml\"\n");
    let p = write(dir.path(), "b.toml", "extends = \"a.toml\"\n");
    let err = load_clean(&p, &[]).unwrap_err().to_string();
    assert!(
        err.contains("cycle") && err.contains("a.toml") && err.contains("b.toml"),
        "{err}"
    );
}

#[test]
fn bad_extends_type_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "a.toml", "extends = 3\n");
    let err = load_clean(&p, &[]).unwrap_err().to_string();
    assert!(err.contains("a.toml") && err.contains("extends"), "{err}");
}

#[test]
fn unknown_key_names_key_file_and_suggestion() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "typo.toml", "devise = \"cpu\"\n");
    let err = load_clean(&p, &[]).unwrap_err().to_string();
    assert!(
        err.contains("`devise`") && err.contains("typo.toml") && err.contains("`device`"),
        "{err}"
    );
}

#[test]
fn llm_extra_body_is_an_open_table_and_its_reserved_keys_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "llm.toml",
        &format!("{VALID}\n[llm.extra_body]\ntop_k = 20\ncache_prompt = true\n"),
    );
    let cfg = load_clean(&p, &[]).unwrap();
    assert_eq!(cfg.llm.extra_body["top_k"], 20);
    assert_eq!(cfg.llm.extra_body["cache_prompt"], true);
    let p = write(
        dir.path(),
        "bad.toml",
        &format!("{VALID}\n[llm.extra_body]\nmodel = \"x\"\n"),
    );
    let msg = load_clean(&p, &[]).unwrap_err().to_string();
    assert!(msg.contains("llm.extra_body.model"), "{msg}");
    // The section's own keys are still checked.
    let p = write(
        dir.path(),
        "typo.toml",
        "[llm]\nresponse_fromat = \"none\"\n",
    );
    let msg = load_clean(&p, &[]).unwrap_err().to_string();
    assert!(msg.contains("`llm.response_format`"), "{msg}");
}

#[test]
fn unknown_key_in_nested_table() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "typo.toml", "[data.synthetic]\nafinity = 0.5\n");
    let err = load_clean(&p, &[]).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("`data.synthetic.afinity`"), "{msg}");
    assert!(msg.contains("typo.toml"), "{msg}");
    assert!(msg.contains("`data.synthetic.affinity`"), "{msg}");

    // A key in the wrong section points at the section that has it.
    let p = write(dir.path(), "wrong.toml", "[train]\nks = [5]\n");
    let msg = load_clean(&p, &[]).unwrap_err().to_string();
    assert!(
        msg.contains("`train.ks`") && msg.contains("`eval.ks`"),
        "{msg}"
    );
}

#[test]
fn unknown_key_from_env_and_set_names_that_layer() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "c.toml", VALID);
    let err = load_with_env(
        Some(&p),
        &[],
        vec![("PROMAX_TRAIN__SED".into(), "3".into())],
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("`train.sed`")
            && err.contains("PROMAX_ environment")
            && err.contains("`train.seed`"),
        "{err}"
    );
    let err = load_clean(&p, &["eval.paitence=3"])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`eval.paitence`") && err.contains("--set") && err.contains("`eval.patience`"),
        "{err}"
    );
}

#[test]
fn malformed_env_name_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "c.toml", VALID);
    let env = vec![("PROMAX_TRAIN___SEED".to_string(), "3".to_string())];
    let msg = load_with_env(Some(&p), &[], env).unwrap_err().to_string();
    assert!(msg.contains("PROMAX_TRAIN___SEED"), "{msg}");
}

#[test]
fn plugin_tables_are_open_but_must_be_tables() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "c.toml",
        "[data]\nkind = \"synthetic\"\n[plugins.lightgcn]\nlayers = 2\nanything_goes = true\n",
    );
    let c = load_clean(&p, &["plugins.lightgcn.keep_rate=0.5"]).unwrap();
    assert_eq!(c.plugins["lightgcn"]["layers"], 2);
    assert_eq!(c.plugins["lightgcn"]["keep_rate"], 0.5);
    let err = load_clean(&p, &["plugins.mf=3"]).unwrap_err().to_string();
    assert!(err.contains("plugins.mf") && err.contains("--set"), "{err}");
}

#[test]
fn missing_main_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("nope.toml");
    let err = load_clean(&p, &[]).unwrap_err();
    assert!(matches!(err, ConfigError::Missing { .. }));
    assert!(err.to_string().contains("nope.toml"), "{err}");
}

#[test]
fn missing_extends_member_names_both_files() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "exp/child.toml",
        "extends = [\"../gone.toml\"]\n",
    );
    let err = load_clean(&p, &[]).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ConfigError::MissingExtends { .. }));
    assert!(
        msg.contains("gone.toml") && msg.contains("child.toml"),
        "{msg}"
    );
}

#[test]
fn invalid_toml_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "bad.toml", "[train]\nseed = 1\nlr = = 3\n");
    let msg = load_clean(&p, &[]).unwrap_err().to_string();
    assert!(msg.contains("bad.toml:3:"), "{msg}");
}

#[test]
fn wrong_type_names_key_source_found_and_expected() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "c.toml",
        "[data]\nkind = \"synthetic\"\n[train]\nlr = \"fast\"\n",
    );
    let err = load_clean(&p, &[]).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ConfigError::WrongType { .. }), "{msg}");
    assert!(
        msg.contains("`train.lr`")
            && msg.contains("c.toml")
            && msg.contains("fast")
            && msg.contains("f64"),
        "{msg}"
    );

    let p = write(
        dir.path(),
        "d.toml",
        "[data]\nkind = \"synthetic\"\n[eval]\nks = [5, \"x\"]\n",
    );
    let msg = load_clean(&p, &[]).unwrap_err().to_string();
    assert!(msg.contains("eval.ks") && msg.contains("d.toml"), "{msg}");

    let p = write(dir.path(), "e.toml", VALID);
    let msg = load_clean(&p, &["train.batch_size=-4"])
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("`train.batch_size`") && msg.contains("--set train.batch_size=-4"),
        "{msg}"
    );
}

#[test]
fn set_values_are_typed() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "c.toml", VALID);
    let c = load_clean(
        &p,
        &[
            "train.max_epochs=3",
            "train.lr=1e-3",
            "train.reg_weight=0.5",
            "eval.ks=[5,10]",
            "eval.metric=ndcg@10",
            "device=cuda",
            "run.name=2024",
            "model.augmenters=[promax, rlmrec-con]",
            "plugin_dirs=[plugins, 42]",
            "plugins.x.flag=true",
            "plugins.x.rate=2e-2",
        ],
    )
    .unwrap();
    assert_eq!(c.train.max_epochs, 3);
    assert_eq!(c.train.lr, 1e-3);
    assert_eq!(c.train.reg_weight, 0.5);
    assert_eq!(c.eval.ks, vec![5, 10]);
    assert_eq!(c.eval.metric, "ndcg@10");
    assert_eq!(c.device, "cuda");
    assert_eq!(c.run.name, "2024", "a string key keeps digits as text");
    assert_eq!(c.model.augmenters, vec!["promax", "rlmrec-con"]);
    assert_eq!(
        c.plugin_dirs,
        vec![PathBuf::from("plugins"), PathBuf::from("42")]
    );
    assert_eq!(c.plugins["x"]["flag"], true);
    assert_eq!(c.plugins["x"]["rate"], 2e-2);

    for bad in ["train.seed", "=3", "train..seed=3"] {
        let err = load_clean(&p, &[bad]).unwrap_err();
        assert!(matches!(err, ConfigError::BadSet { .. }), "{bad}: {err}");
    }
}

#[test]
fn out_of_range_values_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "c.toml", VALID);
    let cases: &[(&[&str], &str)] = &[
        (&["train.batch_size=0"], "train.batch_size"),
        (&["train.lr=0"], "train.lr"),
        (&["train.lr=-1e-3"], "train.lr"),
        (&["train.lr=inf"], "train.lr"),
        (&["train.reg_weight=-1.0"], "train.reg_weight"),
        (&["eval.every=0"], "eval.every"),
        (&["eval.ks=[]"], "eval.ks"),
        (&["eval.ks=[0, 20]"], "eval.ks"),
        (&["eval.metric=recall@50"], "eval.metric"),
        (&["eval.metric=auc@20"], "eval.metric"),
        (&["eval.metric=recall"], "eval.metric"),
        (&["eval.ks=[5,10]"], "eval.metric"),
        (&["eval.user_tile=0"], "eval.user_tile"),
        (&["device=gpu"], "device"),
        (&["data.kind=folder"], "data.kind"),
        (&["data.duplicates=keep"], "data.duplicates"),
        (&["data.columns=[1]"], "data.columns"),
        (&["data.columns=[2, 2]"], "data.columns"),
        (&["data.columns=[0, 1, 2]"], "data.columns"),
        (&["data.kind=files"], "data.path"),
        (&["data.synthetic.affinity=1.5"], "data.synthetic.affinity"),
        (
            &["data.synthetic.profile_signal=-0.1"],
            "data.synthetic.profile_signal",
        ),
        (
            &["data.synthetic.n_clusters=0"],
            "data.synthetic.n_clusters",
        ),
        (&["data.synthetic.n_items=3"], "data.synthetic.n_items"),
        (&["model.backbone="], "model.backbone"),
        (&["train.seed=18446744073709551615"], "train.seed"),
        (&["train.max_epochs=0"], "train.max_epochs"),
        (&["eval.patience=0"], "eval.patience"),
        (&["eval.ks=[5, 20, 100000]"], "eval.ks"),
        (&["llm.timeout_secs=0"], "llm.timeout_secs"),
        (&["llm.temperature=2.5"], "llm.temperature"),
        (&["augment.target_offset=1000000"], "augment.target_offset"),
        (
            &["augment.max_unusable_share=-0.1"],
            "augment.max_unusable_share",
        ),
    ];
    for (sets, key) in cases {
        let err = load_clean(&p, sets).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err, ConfigError::Invalid { .. }),
            "{sets:?}: {msg}"
        );
        assert!(msg.contains(&format!("`{key}`")), "{sets:?}: {msg}");
    }
    let msg = load_clean(&p, &["device=cude"]).unwrap_err().to_string();
    assert!(
        msg.contains("--set device=cude") && msg.contains("\"cuda\""),
        "{msg}"
    );
}

/// Two layers: the base sets one `llm.*` key, the experiment a bad other one; the error
/// names the bad key and the experiment, not whichever layer last touched `[llm]`.
#[test]
fn llm_errors_blame_the_layer_of_their_own_key() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "base.toml",
        "[data]\nkind = \"synthetic\"\n[llm]\nchat_model = \"m\"\n",
    );
    let p = write(
        dir.path(),
        "experiment.toml",
        "extends = \"base.toml\"\n[llm]\ntimeout_secs = 0\n",
    );
    let msg = load_clean(&p, &[]).unwrap_err().to_string();
    assert!(
        msg.contains("`llm.timeout_secs` = 0") && msg.contains("experiment.toml"),
        "{msg}"
    );
    let q = write(
        dir.path(),
        "other.toml",
        "extends = \"base.toml\"\n[llm]\nbackoff_base_ms = 10\nbackoff_max_ms = 5\n",
    );
    let msg = load_clean(&q, &[]).unwrap_err().to_string();
    assert!(
        msg.contains("`llm.backoff_base_ms`") && msg.contains("other.toml"),
        "{msg}"
    );
}

#[test]
fn to_toml_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "c.toml",
        "plugin_dirs = [\"p\"]\n[data]\nkind = \"synthetic\"\n[model]\naugmenters = [\"promax\"]\n\
         [plugins.lightgcn]\nlayers = 3\nkeep_rate = 0.8\ninclude_layer0 = true\n\
         [train]\nlr = 0.002\n[eval]\nks = [1, 20]\n",
    );
    let c = load_clean(&p, &["run.name=x", "data.synthetic.seed=11"]).unwrap();
    let text = to_toml(&c);
    assert!(!text.contains("extends"));
    let q = write(dir.path(), "resolved.toml", &text);
    assert_eq!(load_clean(&q, &[]).unwrap(), c, "{text}");
}

fn configs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs")
}

fn toml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            toml_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "toml") {
            out.push(p);
        }
    }
}

#[test]
fn every_shipped_config_loads() {
    let mut files = Vec::new();
    toml_files(&configs_dir(), &mut files);
    assert!(files.len() >= 9, "{files:?}");
    for f in &files {
        // Compare and tune files have their own formats; their own tests load them.
        if crate::compare::is_compare_file(f) || crate::tune::spec::is_tune_file(f) {
            continue;
        }
        // base.toml and the model fragments name no dataset, and a "files" dataset
        // without a path is rightly invalid; give them the synthetic one.
        let fragment =
            f.ends_with("base.toml") || f.parent().is_some_and(|d| d.ends_with("models"));
        let sets: &[&str] = if fragment {
            &["data.kind=synthetic"]
        } else {
            &[]
        };
        if let Err(e) = load_clean(f, sets) {
            panic!("{}: {e}", f.display());
        }
    }
}

#[test]
fn base_toml_spells_out_every_default() {
    let base = configs_dir().join("base.toml");
    let c = load_clean(&base, &["data.kind=synthetic"]).unwrap();
    let mut want = Config::default();
    want.data.kind = DataKind::Synthetic;
    assert_eq!(c, want);
    // Every key written explicitly: the file alone (no defaults layer) has them all.
    let table: toml::Table = toml::from_str(&fs::read_to_string(&base).unwrap()).unwrap();
    let written = match Value::serialize(&table) {
        Ok(Value::Dict(_, d)) => d,
        _ => unreachable!(),
    };
    let (mut want_keys, mut have_keys) = (Vec::new(), Vec::new());
    all_keys(&defaults_dict(), "", &mut want_keys);
    all_keys(&written, "", &mut have_keys);
    want_keys.sort();
    have_keys.sort();
    assert_eq!(have_keys, want_keys);
}

#[test]
fn profiles_default_to_none_and_take_files_or_random() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "c.toml", VALID);
    let c = load_clean(&p, &[]).unwrap();
    assert_eq!(c.data.profiles, ProfilesConfig::default());
    assert!(!c.data.profiles.is_set());

    let p = write(
        dir.path(),
        "f.toml",
        "[data]\nkind = \"synthetic\"\n[data.profiles]\nusers = \"u.npy\"\nitems = \"i.npy\"\n",
    );
    let c = load_clean(&p, &[]).unwrap();
    assert_eq!(c.data.profiles.users, PathBuf::from("u.npy"));
    assert_eq!(c.data.profiles.items, PathBuf::from("i.npy"));
    let c = load_with_env(
        Some(&write(dir.path(), "r.toml", VALID)),
        &[],
        vec![
            ("PROMAX_DATA__PROFILES__RANDOM_DIM".into(), "1536".into()),
            ("PROMAX_DATA__PROFILES__RANDOM_SEED".into(), "9".into()),
        ],
    )
    .unwrap();
    assert_eq!(
        (c.data.profiles.random_dim, c.data.profiles.random_seed),
        (1536, 9)
    );
    assert!(c.data.profiles.is_set());
}

#[test]
fn profiles_files_and_random_conflict_and_come_in_pairs() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "f.toml",
        "[data]\nkind = \"synthetic\"\n[data.profiles]\nusers = \"u.npy\"\nitems = \"i.npy\"\n",
    );
    let err = load_clean(&p, &["data.profiles.random_dim=16"]).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ConfigError::Invalid { .. }), "{msg}");
    assert!(
        msg.contains("`data.profiles.random_dim`")
            && msg.contains("data.profiles.users")
            && msg.contains("--set data.profiles.random_dim=16"),
        "{msg}"
    );

    let q = write(dir.path(), "c.toml", VALID);
    let msg = load_clean(&q, &["data.profiles.items=i.npy"])
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("`data.profiles.items`")
            && msg.contains("data.profiles.users is empty")
            && msg.contains("--set data.profiles.items=i.npy"),
        "{msg}"
    );
    let msg = load_clean(&q, &["data.profiles.users=u.npy"])
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("`data.profiles.users`") && msg.contains("data.profiles.items is empty"),
        "{msg}"
    );
    // Clearing the files makes random profiles legal again.
    let c = load_clean(
        &p,
        &[
            "data.profiles.users=",
            "data.profiles.items=",
            "data.profiles.random_dim=8",
        ],
    )
    .unwrap();
    assert_eq!(c.data.profiles.random_dim, 8);

    // A typo inside the section is an unknown key with the nearest valid one.
    let msg = load_clean(&q, &["data.profiles.random_sed=3"])
        .unwrap_err()
        .to_string();
    assert!(msg.contains("`data.profiles.random_seed`"), "{msg}");
}

#[test]
fn shipped_experiments_resolve_as_documented() {
    let exp = configs_dir().join("experiments");
    let c = load_clean(&exp.join("lightgcn-amazon.toml"), &[]).unwrap();
    assert_eq!(c.data.kind, "files");
    assert_eq!(c.data.path, PathBuf::from("amazon"));
    assert_eq!(c.data.root, PathBuf::from("data"));
    assert_eq!(c.data.name, "amazon");
    assert_eq!(c.model.backbone, "lightgcn");
    assert_eq!(c.plugins["lightgcn"]["layers"], 3);
    assert_eq!(c.plugins["lightgcn"]["include_layer0"], true);
    assert_eq!(c.plugins["lightgcn"]["keep_rate"], 0.8);
    assert_eq!(
        (
            c.train.reg_weight,
            c.train.lr,
            c.train.batch_size,
            c.train.seed
        ),
        (1e-6, 1e-3, 4096, 2025)
    );
    assert_eq!((c.eval.every, c.eval.patience), (3, 5));

    let c = load_clean(&exp.join("mf-amazon.toml"), &[]).unwrap();
    assert_eq!(c.model.backbone, "mf");
    assert_eq!(c.data.name, "amazon");

    let c = load_clean(&exp.join("quickstart.toml"), &[]).unwrap();
    assert_eq!(c.data.kind, "synthetic");
    assert_eq!(c.model.backbone, "lightgcn");
    assert_eq!(
        (c.train.max_epochs, c.eval.every, c.eval.patience),
        (30, 3, 5)
    );
}

#[test]
fn ml100k_dataset_config_loads_its_profiles_by_default() {
    let c = load_clean(&configs_dir().join("datasets/ml100k.toml"), &[]).unwrap();
    assert_eq!(c.data.path, PathBuf::from("ml100k"));
    assert_eq!(c.data.profiles.users, PathBuf::from("user_profiles.npy"));
    assert_eq!(c.data.profiles.items, PathBuf::from("item_profiles.npy"));
    assert_eq!(c.data.profiles.random_dim, 0);
}

#[test]
fn data_root_comes_from_the_environment_and_resolves_the_path() {
    let amazon = configs_dir().join("datasets/amazon.toml");
    let c = load_clean(&amazon, &[]).unwrap();
    assert_eq!(c.data.dir(), PathBuf::from("data/amazon"));
    let env = vec![("PROMAX_DATA__ROOT".into(), "/srv/datasets".into())];
    let c = load_with_env(Some(&amazon), &[], env).unwrap();
    assert_eq!(c.data.root, PathBuf::from("/srv/datasets"));
    assert_eq!(c.data.dir(), PathBuf::from("/srv/datasets/amazon"));
    // The default root is the working directory; an absolute path ignores the root.
    assert_eq!(Config::default().data.root, PathBuf::new());
    let c = load_clean(&amazon, &["data.path=/elsewhere/amazon"]).unwrap();
    assert_eq!(c.data.dir(), PathBuf::from("/elsewhere/amazon"));
}

#[test]
fn real_environment_is_read_by_load() {
    // `load` itself must accept the shipped quick start in a normal environment.
    let q = configs_dir().join("experiments/quickstart.toml");
    let has_promax_vars = std::env::vars_os().any(|(k, _)| {
        k.to_string_lossy()
            .to_ascii_uppercase()
            .starts_with(ENV_PREFIX)
    });
    if !has_promax_vars {
        assert!(load(&q, &[]).is_ok());
    }
}
