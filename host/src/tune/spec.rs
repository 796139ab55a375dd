//! The tune file: a base experiment (config files and `key=value` sets, as a compare
//! method), the validation metric to maximise, the sampler, the trial budget, the seeds
//! of every trial, the median pruner's settings and the search space over config keys.
//! Every key of the space is checked against the config schema (and plugin keys against
//! the plugin's hyperparameters) before any trial runs, at each value of a choice and both
//! ends of a range: the config's own checks, and the plugin built at that value.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use promax_plugin_api::abi::PluginKind;
use promax_plugin_api::sdk::nearest;
use serde::Deserialize;

use crate::compare::slurm::SlurmOptions;
use crate::compare::spec::{self as cspec, CompareError, Layers};
use crate::config::{self, Config};
use crate::data::{load_dataset, Dataset};
use crate::metrics::METRICS;
use crate::model::hparams_json;
use crate::plugin::PluginFactory;
use crate::registry::Registry;

/// A tune file as written (TOML; unknown keys are errors).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TuneFile {
    /// Study title; default: the file name without `.toml`.
    #[serde(default)]
    pub title: String,
    /// Config files of the base experiment, layered in order (relative to this file).
    pub config: Layers,
    /// `key=value` overrides of every trial, before the trial's own values.
    #[serde(default)]
    pub sets: Vec<String>,
    /// The VALIDATION metric to maximise, `<name>@K` (a test metric is refused).
    pub metric: String,
    pub sampler: SamplerKind,
    /// Number of trials (`grid`: at most this many points; 0 = the whole grid).
    #[serde(default)]
    pub trials: usize,
    /// Every trial trains once per seed; its value is the mean over them.
    pub seeds: Vec<u64>,
    /// After the study, the best trial trains again over these seeds; its test metrics
    /// are then their mean (empty: the test metrics of the study's own runs of it).
    #[serde(default)]
    pub final_seeds: Vec<u64>,
    /// Seed of the sampler.
    #[serde(default)]
    pub seed: u64,
    /// TPE: random trials before the estimator takes over.
    #[serde(default = "default_startup")]
    pub startup: usize,
    /// Trials proposed from the same history (they may train at the same time with
    /// `--jobs`); the study does not depend on `--jobs`, only on this.
    #[serde(default = "default_batch")]
    pub batch: usize,
    #[serde(default)]
    pub prune: Option<PruneSpec>,
    pub space: BTreeMap<String, Dist>,
    /// How `--executor slurm` submits the runs.
    #[serde(default)]
    pub slurm: Option<SlurmOptions>,
}

fn default_startup() -> usize {
    5
}

fn default_batch() -> usize {
    1
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SamplerKind {
    Grid,
    Random,
    Tpe,
}

/// The median rule (Optuna's `MedianPruner`): a trial's best validation value so far falls
/// below the median of earlier trials' at the same epoch.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PruneSpec {
    /// Default: on for `random` and `tpe`, off for `grid`.
    pub enabled: Option<bool>,
    /// No trial is stopped before this epoch.
    #[serde(default = "default_warmup")]
    pub warmup: usize,
    /// Earlier trials (of the same seed) that must have reached the epoch.
    #[serde(default = "default_min_trials")]
    pub min_trials: usize,
}

fn default_warmup() -> usize {
    30
}

fn default_min_trials() -> usize {
    4
}

/// One key's search range.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Dist {
    /// One of these values (any TOML scalar).
    Choice(Vec<toml::Value>),
    /// A float in `[low, high]`.
    Uniform([f64; 2]),
    /// A float in `[low, high]`, uniform in its logarithm (`0 < low`).
    LogUniform([f64; 2]),
    /// An integer in `[low, high]`, both included.
    IntUniform([i64; 2]),
}

/// The pruner in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prune {
    pub warmup: usize,
    pub min_trials: usize,
}

/// A checked tune file.
#[derive(Debug, Clone)]
pub struct Study {
    pub path: PathBuf,
    pub title: String,
    pub files: Vec<PathBuf>,
    pub sets: Vec<String>,
    /// `<name>@K`, computed on the validation split.
    pub metric: String,
    pub sampler: SamplerKind,
    pub trials: usize,
    pub seeds: Vec<u64>,
    pub final_seeds: Vec<u64>,
    pub seed: u64,
    pub startup: usize,
    pub batch: usize,
    pub prune: Option<Prune>,
    pub space: Vec<(String, Dist)>,
    pub slurm: SlurmOptions,
}

impl Study {
    /// Default output folder: `runs/<tune file name without .toml>`.
    pub fn default_out(&self) -> PathBuf {
        Path::new("runs").join(cspec::stem_or(&self.path, "tune"))
    }

    /// The resolved config of one trial (`values`: the `key=value` of each space key).
    pub fn trial_config(&self, values: &[String], seed: u64) -> Result<Config> {
        let files: Vec<&Path> = self.files.iter().map(PathBuf::as_path).collect();
        let mut sets = self.sets.clone();
        sets.extend(values.iter().cloned());
        sets.push(format!("train.seed={seed}"));
        config::load_layers(&files, &sets)
            .with_context(|| format!("{}: building a trial", self.path.display()))
    }
}

/// Whether `path` is a tune file rather than a run config: a TOML file with top-level
/// `sampler` and `space` keys (no run config has either).
pub fn is_tune_file(path: &Path) -> bool {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| toml::from_str::<toml::Table>(&t).ok())
        .is_some_and(|t| t.contains_key("sampler") && t.contains_key("space"))
}

/// A space value as the `key=value` text of a config override.
pub fn set_of(key: &str, v: &toml::Value) -> String {
    format!("{key}={v}")
}

fn invalid(path: &Path, key: &str, reason: String) -> CompareError {
    CompareError::Invalid {
        path: path.to_owned(),
        key: key.into(),
        reason,
    }
}

/// Reads a tune file and checks everything a trial could trip on: the metric (on
/// validation, computed by the base config), the ranges, and every space key at its
/// extreme values against the config schema and the plugins' hyperparameters.
pub fn load(path: &Path, extra_sets: &[String]) -> Result<Study> {
    let file: TuneFile = cspec::parse_toml(path)?;
    let dir = path.parent().unwrap_or_else(|| Path::new(""));
    let bad = |key: &str, reason: String| -> anyhow::Error { invalid(path, key, reason).into() };
    if file.seeds.is_empty() {
        return Err(bad("seeds", "must name at least one seed".into()));
    }
    for (key, seeds) in [("seeds", &file.seeds), ("final_seeds", &file.final_seeds)] {
        let mut seen = std::collections::HashSet::new();
        if let Some(s) = seeds.iter().find(|s| !seen.insert(**s)) {
            return Err(bad(key, format!("seed {s} is listed twice")));
        }
    }
    if file.space.is_empty() {
        return Err(bad(
            "space",
            "must name at least one config key to tune".into(),
        ));
    }
    if file.batch == 0 {
        return Err(bad("batch", "must be at least 1".into()));
    }
    if file.sampler != SamplerKind::Grid && file.trials == 0 {
        return Err(bad(
            "trials",
            "random and tpe need a number of trials".into(),
        ));
    }
    cspec::check_layer_files(path, dir, "config", &file.config)?;
    let metric = validation_metric(&file.metric).map_err(|r| bad("metric", r))?;
    let space: Vec<(String, Dist)> = file.space.into_iter().collect();
    for (key, dist) in &space {
        check_dist(dist, file.sampler).map_err(|r| bad(&format!("space.\"{key}\""), r))?;
    }
    let prune = match (&file.prune, file.sampler) {
        (Some(p), _) if p.enabled == Some(false) => None,
        (Some(p), s) if p.enabled == Some(true) || s != SamplerKind::Grid => Some(Prune {
            warmup: p.warmup,
            min_trials: p.min_trials.max(1),
        }),
        (None, s) if s != SamplerKind::Grid => Some(Prune {
            warmup: default_warmup(),
            min_trials: default_min_trials(),
        }),
        _ => None,
    };
    let title = cspec::title_or_stem(&file.title, path);
    let study = Study {
        path: path.to_owned(),
        title,
        files: file.config.0.iter().map(|f| dir.join(f)).collect(),
        sets: file.sets.iter().chain(extra_sets).cloned().collect(),
        metric,
        sampler: file.sampler,
        trials: file.trials,
        seeds: file.seeds,
        final_seeds: file.final_seeds,
        seed: file.seed,
        startup: file.startup,
        batch: file.batch,
        prune,
        space,
        slurm: file.slurm.unwrap_or_default(),
    };
    check_keys(&study)?;
    Ok(study)
}

/// `recall@20` (or `valid_recall@20`, `valid.recall@20`) → `recall@20`; a test metric is
/// refused: trials are chosen on validation only.
fn validation_metric(m: &str) -> Result<String, String> {
    let lower = m.to_ascii_lowercase();
    if lower.starts_with("test") {
        return Err(format!(
            "{m:?} is a test metric: trials are chosen on the validation split only (the \
             best trial's test metrics are reported beside it); name a validation metric \
             such as \"recall@20\""
        ));
    }
    let name = ["valid_", "valid.", "validation_"]
        .iter()
        .find_map(|p| m.strip_prefix(p))
        .unwrap_or(m);
    let parsed = name.split_once('@').and_then(|(n, k)| {
        let digits = !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit());
        let k = k.parse::<usize>().ok().filter(|&k| k > 0 && digits)?;
        METRICS.contains(&n).then(|| format!("{n}@{k}"))
    });
    parsed.ok_or_else(|| {
        format!(
            "{m:?} must be <{}>@K, a validation metric",
            METRICS.join("|")
        )
    })
}

fn check_dist(d: &Dist, sampler: SamplerKind) -> Result<(), String> {
    match d {
        Dist::Choice(v) if v.is_empty() => Err("`choice` needs at least one value".into()),
        Dist::Choice(v) => match v.iter().find(|x| x.is_table() || x.is_array()) {
            Some(x) => Err(format!(
                "choice value {x} must be a string, number or boolean"
            )),
            None => Ok(()),
        },
        _ if sampler == SamplerKind::Grid => {
            Err("the grid sampler needs `choice` values for every key (a range has no grid)".into())
        }
        Dist::Uniform([lo, hi]) if !(lo < hi && (hi - lo).is_finite()) => Err(format!(
            "uniform range [{lo}, {hi}] must be finite with low < high"
        )),
        Dist::LogUniform([lo, hi])
            if !(lo.is_finite() && hi.is_finite() && 0.0 < *lo && lo < hi) =>
        {
            Err(format!(
                "log_uniform range [{lo}, {hi}] must satisfy 0 < low < high"
            ))
        }
        Dist::IntUniform([lo, hi]) if lo > hi => Err(format!(
            "int_uniform range [{lo}, {hi}] must have low <= high"
        )),
        _ => Ok(()),
    }
}

/// The extreme values of a range (every value of a choice), as config text.
fn probes(d: &Dist) -> Vec<toml::Value> {
    match d {
        Dist::Choice(v) => v.clone(),
        Dist::Uniform([lo, hi]) | Dist::LogUniform([lo, hi]) => {
            vec![toml::Value::Float(*lo), toml::Value::Float(*hi)]
        }
        Dist::IntUniform([lo, hi]) => vec![toml::Value::Integer(*lo), toml::Value::Integer(*hi)],
    }
}

/// Builds the base config with each key at each probe value: an unknown key, a value of
/// the wrong type or out of the config's range, an unknown plugin hyperparameter, or a
/// metric the base does not compute is named before anything trains.
fn check_keys(study: &Study) -> Result<()> {
    let base = study.trial_config(&[], study.seeds[0])?;
    let registry = Registry::discover(&base.plugin_dirs)?;
    let k = study
        .metric
        .split_once('@')
        .and_then(|(_, k)| k.parse().ok());
    if !k.is_some_and(|k| base.eval.ks.contains(&k)) {
        bail!(
            "{}: `metric`: {:?} is not computed: the base config's eval.ks is {:?}",
            study.path.display(),
            study.metric,
            base.eval.ks
        );
    }
    let mut ds = None;
    for (key, dist) in &study.space {
        let here = || format!("{}: `space.\"{key}\"`", study.path.display());
        let plugin = match key.strip_prefix("plugins.") {
            Some(rest) => Some(check_plugin_key(&registry, study, &base, rest).with_context(here)?),
            None => None,
        };
        for v in probes(dist) {
            let cfg = study
                .trial_config(&[set_of(key, &v)], study.seeds[0])
                .with_context(|| format!("`space.\"{key}\"` = {v}"))?;
            if let Some(plugin) = plugin {
                if ds.is_none() {
                    let loaded = load_dataset(&base.data).with_context(|| {
                        format!("{}: loading the base dataset", study.path.display())
                    })?;
                    ds = Some(loaded);
                }
                let ds = ds.as_ref().expect("loaded above");
                build_plugin(&registry, ds, &cfg, plugin)
                    .with_context(|| format!("{} = {v}", here()))?;
            }
        }
    }
    Ok(())
}

/// Builds the plugin a space key tunes, as a trial would (over the base dataset, the
/// trial's hyperparameters): a value the plugin's constructor refuses (a `keep_rate`
/// outside (0, 1], a negative weight) is named before anything trains, not when the
/// sampler first draws it.
fn build_plugin(registry: &Registry, ds: &Dataset, cfg: &Config, plugin: &str) -> Result<()> {
    let plugins = PluginFactory::new(registry, ds, cfg.train.seed);
    if registry.find(plugin)?.info.kind == PluginKind::Backbone {
        plugins.backbone(plugin, &hparams_json(cfg, plugin))?;
        return Ok(());
    }
    let name = cfg.model.backbone.as_str();
    let backbone = plugins.backbone(name, &hparams_json(cfg, name))?;
    plugins.augmenter(plugin, &hparams_json(cfg, plugin), backbone.dims())?;
    Ok(())
}

/// `promax.sdr_weight`: the plugin exists, the base config uses it (tuning a plugin no
/// trial builds would change nothing) and it declares that hyperparameter. Returns the
/// plugin's name.
fn check_plugin_key<'k>(
    registry: &Registry,
    study: &Study,
    base: &Config,
    rest: &'k str,
) -> Result<&'k str> {
    let Some((plugin, hparam)) = rest.split_once('.') else {
        bail!("name a hyperparameter of the plugin: plugins.<plugin>.<key>");
    };
    let entry = registry.find(plugin)?;
    let used = base.model.backbone == plugin || base.model.augmenters.iter().any(|a| a == plugin);
    // A space that also chooses the model may use the plugin in some trials.
    let model_tuned = study.space.iter().any(|(k, _)| k.starts_with("model."));
    if !used && !model_tuned {
        bail!(
            "plugin `{plugin}` is not in the base experiment (model.backbone = {:?}, \
             model.augmenters = {:?}): tuning it would change nothing",
            base.model.backbone,
            base.model.augmenters
        );
    }
    let names: Vec<&str> = entry.info.hparams.iter().map(|h| h.name.as_str()).collect();
    if !names.contains(&hparam) {
        let hint = nearest(hparam, names.iter().copied())
            .map(|s| format!("; did you mean {s:?}?"))
            .unwrap_or_default();
        bail!(
            "plugin `{plugin}` has no hyperparameter `{hparam}` (it has {}){hint}",
            names.join(", ")
        );
    }
    Ok(plugin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_validation_metrics() {
        assert_eq!(validation_metric("recall@20").unwrap(), "recall@20");
        assert_eq!(validation_metric("valid_ndcg@10").unwrap(), "ndcg@10");
        assert_eq!(validation_metric("valid.recall@5").unwrap(), "recall@5");
        for m in ["test_recall@20", "test.recall@20", "Test_ndcg@10"] {
            assert!(
                validation_metric(m).unwrap_err().contains("test metric"),
                "{m}"
            );
        }
        assert_eq!(validation_metric("recall@020").unwrap(), "recall@20");
        for m in [
            "recall",
            "recall@0",
            "rcall@20",
            "recall@x",
            "recall@+20",
            "recall@",
        ] {
            assert!(
                validation_metric(m).unwrap_err().contains("must be <"),
                "{m}"
            );
        }
    }

    #[test]
    fn shipped_tune_files_load() {
        let here = Path::new(env!("CARGO_MANIFEST_DIR"));
        let dir = here.join("../configs/tune");
        // The shipped dataset configs read `data/` under the working directory; the
        // plugin checks load the base dataset, so point them where the tests keep it.
        let data = here.join("../../shared/data");
        if !data.is_dir() {
            eprintln!("skipped: {} not present", data.display());
            return;
        }
        let root = format!("data.root={:?}", data);
        let mut found = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let p = entry.unwrap().path();
            assert!(is_tune_file(&p), "{}", p.display());
            load(&p, std::slice::from_ref(&root))
                .unwrap_or_else(|e| panic!("{}: {e:#}", p.display()));
            found += 1;
        }
        assert!(found >= 2);
    }

    #[test]
    fn ranges_are_checked() {
        use SamplerKind::*;
        assert!(check_dist(&Dist::Uniform([1.0, 1.0]), Random).is_err());
        assert!(check_dist(&Dist::Uniform([0.0, f64::INFINITY]), Tpe).is_err());
        assert!(check_dist(&Dist::Uniform([-1e308, 1e308]), Random).is_err());
        assert!(check_dist(&Dist::LogUniform([-1.0, 1.0]), Tpe).is_err());
        assert!(check_dist(&Dist::IntUniform([3, 2]), Random).is_err());
        assert!(check_dist(&Dist::IntUniform([2, 2]), Random).is_ok());
        assert!(check_dist(&Dist::Choice(vec![]), Grid).is_err());
        assert!(check_dist(&Dist::Choice(vec![toml::Value::Array(vec![])]), Grid).is_err());
        assert!(check_dist(&Dist::Uniform([0.0, 1.0]), Grid).is_err());
        assert!(check_dist(&Dist::Choice(vec![1.into()]), Grid).is_ok());
    }
}
