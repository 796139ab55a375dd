//! The compare file: the axes of an experiment matrix (datasets × backbones × methods ×
//! seeds), and the plan of cells it expands to. Each cell's configuration is built by the
//! run-config machinery ([`config::load_layers`]): the entries' config files are layered in
//! order, each with its own `extends` chain, then the `PROMAX_*` environment, then the
//! entries' `key=value` overrides and the cell's seed.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

use promax_plugin_api::sdk::nearest;
use promax_plugin_api::PluginKind;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;

use super::slurm::SlurmOptions;
use crate::config::{self, Config, ConfigError};
use crate::metrics::METRICS;
use crate::registry::Registry;

/// Report metrics when the compare file names none: the first is plotted as validation
/// curves, the first two are broken down by user group.
pub const DEFAULT_METRICS: [&str; 4] = ["recall@20", "ndcg@20", "recall@10", "ndcg@10"];

/// A compare file as written (TOML; unknown keys are errors).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompareFile {
    /// Report title; default: the file name without `.toml`.
    #[serde(default)]
    pub title: String,
    /// Config files layered first in every cell (e.g. `"../base.toml"`).
    #[serde(default)]
    pub layers: Layers,
    /// `key=value` overrides of every cell, applied before the entries' own.
    #[serde(default)]
    pub sets: Vec<String>,
    /// Training seeds; every dataset × backbone × method runs once per seed.
    pub seeds: Vec<u64>,
    /// The method every other method is compared against (improvement, p-value).
    pub baseline: String,
    /// Test metrics of the report, `<name>@K`.
    #[serde(default = "default_metrics")]
    pub metrics: Vec<String>,
    pub datasets: Vec<Entry>,
    pub backbones: Vec<Entry>,
    pub methods: Vec<Entry>,
    /// Extra layers and overrides for the cells an entry combination selects.
    #[serde(default)]
    pub overrides: Vec<Override>,
    /// How `--executor slurm` submits the cells.
    #[serde(default)]
    pub slurm: Option<SlurmOptions>,
}

fn default_metrics() -> Vec<String> {
    DEFAULT_METRICS.iter().map(|s| s.to_string()).collect()
}

/// One value of an axis: a name (used in folder names and the report) and its layers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub name: String,
    /// Config file(s) layered for this entry: one name or a list (`[]` adds nothing).
    #[serde(default)]
    pub config: Layers,
    /// `key=value` overrides of this entry.
    #[serde(default)]
    pub sets: Vec<String>,
}

/// Layers and overrides for the cells whose dataset, backbone and method match (an absent
/// field matches any), applied after the entries' own, in file order.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Override {
    pub dataset: Option<String>,
    pub backbone: Option<String>,
    pub method: Option<String>,
    #[serde(default)]
    pub config: Layers,
    #[serde(default)]
    pub sets: Vec<String>,
}

/// Config file names: one string or an array of strings.
#[derive(Debug, Clone, Default)]
pub struct Layers(pub Vec<PathBuf>);

impl<'de> Deserialize<'de> for Layers {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Layers;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a config file name or an array of config file names")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Layers, E> {
                Ok(Layers(vec![s.into()]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Layers, A::Error> {
                let mut out = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    out.push(s.into());
                }
                Ok(Layers(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// Why a compare file cannot be used.
#[derive(thiserror::Error, Debug)]
pub enum CompareError {
    #[error("compare file {} not found", path.display())]
    Missing { path: PathBuf },
    #[error("cannot read compare file {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Invalid TOML, an unknown key or a value of the wrong type.
    #[error("{}:{line}:{column}: {message}{}", path.display(),
        if snippet.is_empty() { String::new() } else { format!(" (at `{snippet}`)") })]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
        /// The offending line, trimmed.
        snippet: String,
    },
    /// A well-formed value that does not make sense (names the key).
    #[error("{}: `{key}`: {reason}", path.display())]
    Invalid {
        path: PathBuf,
        key: String,
        reason: String,
    },
    /// A cell's configuration could not be built by the config machinery.
    #[error("{}: cell {cell}: {source}", path.display())]
    Cell {
        path: PathBuf,
        cell: String,
        source: Box<ConfigError>,
    },
}

/// One run of the matrix.
#[derive(Debug, Clone)]
pub struct Cell {
    pub dataset: String,
    pub backbone: String,
    pub method: String,
    pub seed: u64,
    /// `<dataset>-<backbone>-<method>-s<seed>`: the folder under `OUT/cells/`.
    pub name: String,
    /// The resolved configuration (what `config.toml` will hold).
    pub config: Config,
}

/// A validated compare file and its cells, in order (datasets, then backbones, methods,
/// seeds).
#[derive(Debug, Clone)]
pub struct Plan {
    pub path: PathBuf,
    pub title: String,
    pub baseline: String,
    pub metrics: Vec<String>,
    pub seeds: Vec<u64>,
    pub datasets: Vec<String>,
    pub backbones: Vec<String>,
    pub methods: Vec<String>,
    pub cells: Vec<Cell>,
    /// The `[slurm]` table (defaults when absent).
    pub slurm: SlurmOptions,
}

impl Plan {
    /// Default output folder: `runs/<compare file name without .toml>`.
    pub fn default_out(&self) -> PathBuf {
        Path::new("runs").join(stem_or(&self.path, "compare"))
    }
}

/// A file's name without its extension (`fallback` when it has none): the default title
/// and output folder of compare and tune files.
pub fn stem_or(path: &Path, fallback: &str) -> String {
    path.file_stem()
        .map_or_else(|| fallback.to_owned(), |s| s.to_string_lossy().into_owned())
}

/// The title a compare or tune file gives, or its file name.
pub fn title_or_stem(title: &str, path: &Path) -> String {
    if title.is_empty() {
        stem_or(path, "")
    } else {
        title.to_owned()
    }
}

/// Whether `path` is a compare file rather than a run config: a TOML file with top-level
/// `baseline` and `methods` keys (no run config has either).
pub fn is_compare_file(path: &Path) -> bool {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| toml::from_str::<toml::Table>(&t).ok())
        .is_some_and(|t| t.contains_key("baseline") && t.contains_key("methods"))
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Reads and checks a compare file (no cell configs yet).
pub fn parse(path: &Path) -> Result<CompareFile, CompareError> {
    parse_toml(path)
}

/// Reads a TOML file into `T`, naming the line and column of what does not fit (compare
/// and tune files).
pub fn parse_toml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, CompareError> {
    let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => CompareError::Missing {
            path: path.to_owned(),
        },
        _ => CompareError::Io {
            path: path.to_owned(),
            source: e,
        },
    })?;
    toml::from_str(&text).map_err(|e| {
        let (line, column) = e.span().map(|s| line_col(&text, s.start)).unwrap_or((1, 1));
        let snippet = text
            .lines()
            .nth(line - 1)
            .unwrap_or("")
            .trim()
            .chars()
            .take(80)
            .collect();
        CompareError::Parse {
            path: path.to_owned(),
            line,
            column,
            message: e.message().trim().replace('\n', "; "),
            snippet,
        }
    })
}

/// Reads a compare file, checks it and builds every cell's configuration; `extra_sets`
/// (`promax compare --set`) apply to every cell after the file's own overrides.
pub fn load(path: &Path, extra_sets: &[String]) -> Result<Plan, CompareError> {
    let file = parse(path)?;
    let invalid = |key: String, reason: String| CompareError::Invalid {
        path: path.to_owned(),
        key,
        reason,
    };
    let dir = path.parent().unwrap_or_else(|| Path::new(""));

    if file.seeds.is_empty() {
        return Err(invalid(
            "seeds".into(),
            "must name at least one seed".into(),
        ));
    }
    let mut seen = HashSet::new();
    if let Some(s) = file.seeds.iter().find(|s| !seen.insert(**s)) {
        return Err(invalid("seeds".into(), format!("seed {s} is listed twice")));
    }
    for (axis, entries) in [
        ("datasets", &file.datasets),
        ("backbones", &file.backbones),
        ("methods", &file.methods),
    ] {
        if entries.is_empty() {
            return Err(invalid(
                axis.into(),
                format!("must have at least one entry ([[{axis}]] with a name)"),
            ));
        }
        let mut names = HashSet::new();
        for (i, e) in entries.iter().enumerate() {
            let key = format!("{axis}[{i}].name");
            let ok = !e.name.is_empty()
                && e.name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.+".contains(c));
            if !ok {
                return Err(invalid(
                    key,
                    format!(
                        "{:?}: must be non-empty letters, digits, `_`, `.` or `+` (it names \
                         folders; `-` separates the parts of a cell name)",
                        e.name
                    ),
                ));
            }
            if !names.insert(e.name.as_str()) {
                return Err(invalid(key, format!("{:?} is used twice", e.name)));
            }
            check_layer_files(path, dir, &format!("{axis}[{i}].config"), &e.config)?;
        }
    }
    check_layer_files(path, dir, "layers", &file.layers)?;
    let known = |axis: &str, entries: &[Entry], name: &str, key: String| {
        if entries.iter().any(|e| e.name == name) {
            return Ok(());
        }
        let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
        let hint = nearest(name, names.iter().copied())
            .map(|s| format!("; did you mean {s:?}?"))
            .unwrap_or_default();
        Err(invalid(
            key,
            format!(
                "{name:?} is not one of the {axis} ({}){hint}",
                names.join(", ")
            ),
        ))
    };
    known("methods", &file.methods, &file.baseline, "baseline".into())?;
    for (i, o) in file.overrides.iter().enumerate() {
        for (field, axis, entries) in [
            ("dataset", "datasets", &o.dataset),
            ("backbone", "backbones", &o.backbone),
            ("method", "methods", &o.method),
        ] {
            if let Some(name) = entries {
                let list = match axis {
                    "datasets" => &file.datasets,
                    "backbones" => &file.backbones,
                    _ => &file.methods,
                };
                known(axis, list, name, format!("overrides[{i}].{field}"))?;
            }
        }
        check_layer_files(path, dir, &format!("overrides[{i}].config"), &o.config)?;
    }
    if file.metrics.is_empty() {
        return Err(invalid(
            "metrics".into(),
            "must name at least one metric".into(),
        ));
    }
    for m in &file.metrics {
        let ok = m.split_once('@').is_some_and(|(name, k)| {
            METRICS.contains(&name) && k.parse::<usize>().is_ok_and(|k| k > 0)
        });
        if !ok {
            return Err(invalid(
                "metrics".into(),
                format!("{m:?} must be <{}>@K", METRICS.join("|")),
            ));
        }
    }

    let title = title_or_stem(&file.title, path);
    let mut cells = Vec::new();
    let mut names = HashSet::new();
    for d in &file.datasets {
        for b in &file.backbones {
            for m in &file.methods {
                let matching: Vec<&Override> = file
                    .overrides
                    .iter()
                    .filter(|o| {
                        o.dataset.as_ref().is_none_or(|n| *n == d.name)
                            && o.backbone.as_ref().is_none_or(|n| *n == b.name)
                            && o.method.as_ref().is_none_or(|n| *n == m.name)
                    })
                    .collect();
                let files: Vec<PathBuf> = file
                    .layers
                    .0
                    .iter()
                    .chain(&d.config.0)
                    .chain(&b.config.0)
                    .chain(&m.config.0)
                    .chain(matching.iter().flat_map(|o| &o.config.0))
                    .map(|f| dir.join(f))
                    .collect();
                let files: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
                for &seed in &file.seeds {
                    let name = format!("{}-{}-{}-s{seed}", d.name, b.name, m.name);
                    let mut sets: Vec<String> = file
                        .sets
                        .iter()
                        .chain(&d.sets)
                        .chain(&b.sets)
                        .chain(&m.sets)
                        .chain(matching.iter().flat_map(|o| &o.sets))
                        .chain(extra_sets)
                        .cloned()
                        .collect();
                    sets.push(format!("train.seed={seed}"));
                    let config = config::load_layers(&files, &sets).map_err(|source| {
                        CompareError::Cell {
                            path: path.to_owned(),
                            cell: name.clone(),
                            source: Box::new(source),
                        }
                    })?;
                    for metric in &file.metrics {
                        let k = metric.split_once('@').and_then(|(_, k)| k.parse().ok());
                        if !k.is_some_and(|k| config.eval.ks.contains(&k)) {
                            return Err(invalid(
                                "metrics".into(),
                                format!(
                                    "{metric:?} is not computed in cell {name}: its eval.ks is {:?}",
                                    config.eval.ks
                                ),
                            ));
                        }
                    }
                    if !names.insert(name.clone()) {
                        return Err(invalid(
                            "datasets/backbones/methods".into(),
                            format!("two cells share the folder name {name}"),
                        ));
                    }
                    cells.push(Cell {
                        dataset: d.name.clone(),
                        backbone: b.name.clone(),
                        method: m.name.clone(),
                        seed,
                        name,
                        config,
                    });
                }
            }
        }
    }
    let names = |v: &[Entry]| v.iter().map(|e| e.name.clone()).collect();
    Ok(Plan {
        path: path.to_owned(),
        title,
        baseline: file.baseline.clone(),
        metrics: file.metrics.clone(),
        seeds: file.seeds.clone(),
        datasets: names(&file.datasets),
        backbones: names(&file.backbones),
        methods: names(&file.methods),
        cells,
        slurm: file.slurm.clone().unwrap_or_default(),
    })
}

/// Every named config file must exist (resolved against `dir`, the compare or tune file's
/// folder).
pub fn check_layer_files(
    path: &Path,
    dir: &Path,
    key: &str,
    layers: &Layers,
) -> Result<(), CompareError> {
    for (i, f) in layers.0.iter().enumerate() {
        let full = dir.join(f);
        if !full.is_file() {
            let key = if layers.0.len() > 1 {
                format!("{key}[{i}]")
            } else {
                key.to_owned()
            };
            return Err(CompareError::Invalid {
                path: path.to_owned(),
                key,
                reason: format!(
                    "config file {} not found (paths are relative to the folder of {})",
                    full.display(),
                    path.display()
                ),
            });
        }
    }
    Ok(())
}

/// Checks that every cell's plugins exist (backbone, augmenters, `[plugins.*]` tables), so
/// that a typo fails before the first cell trains rather than in the middle of the matrix.
pub fn check_plugins(plan: &Plan) -> anyhow::Result<()> {
    use anyhow::Context;
    let mut registries: Vec<(Vec<PathBuf>, Registry)> = Vec::new();
    for cell in &plan.cells {
        let cfg = &cell.config;
        let pos = match registries.iter().position(|(d, _)| *d == cfg.plugin_dirs) {
            Some(p) => p,
            None => {
                let r = Registry::discover(&cfg.plugin_dirs)?;
                registries.push((cfg.plugin_dirs.clone(), r));
                registries.len() - 1
            }
        };
        let reg = &registries[pos].1;
        let ctx = || format!("cell {}", cell.name);
        reg.get(&cfg.model.backbone, PluginKind::Backbone)
            .with_context(|| format!("{}: model.backbone", ctx()))?;
        for a in &cfg.model.augmenters {
            reg.get(a, PluginKind::Augmenter)
                .with_context(|| format!("{}: model.augmenters", ctx()))?;
        }
        for name in cfg.plugins.keys() {
            reg.find(name)
                .with_context(|| format!("{}: config key `plugins.{name}`", ctx()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configs() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs")
    }

    /// A compare file in a temporary folder beside copies of the shipped config folders'
    /// paths (layers point at the real configs through absolute paths).
    fn write(dir: &Path, body: &str) -> PathBuf {
        let p = dir.join("c.toml");
        std::fs::write(&p, body).unwrap();
        p
    }

    fn minimal(extra_top: &str, extra_tail: &str) -> String {
        let c = configs();
        format!(
            "{extra_top}\nlayers = [{base:?}]\nseeds = [1, 2]\nbaseline = \"base\"\n\
             [[datasets]]\nname = \"syn\"\nconfig = {ds:?}\n\
             [[backbones]]\nname = \"mf\"\nconfig = {mf:?}\n\
             [[methods]]\nname = \"base\"\nconfig = []\n\
             [[methods]]\nname = \"promax\"\nconfig = [{pm:?}]\nsets = [\"plugins.promax.s2dr=false\"]\n\
             {extra_tail}",
            base = c.join("base.toml").display().to_string(),
            ds = c.join("datasets/synthetic.toml").display().to_string(),
            mf = c.join("models/mf.toml").display().to_string(),
            pm = c.join("models/promax.toml").display().to_string(),
        )
    }

    #[test]
    fn cells_are_built_by_the_config_layers() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            &minimal(
                "sets = [\"train.max_epochs=4\"]",
                "[[overrides]]\nmethod = \"promax\"\nsets = [\"eval.patience=7\"]\n",
            ),
        );
        let plan = load(&p, &[]).unwrap();
        let names: Vec<&str> = plan.cells.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "syn-mf-base-s1",
                "syn-mf-base-s2",
                "syn-mf-promax-s1",
                "syn-mf-promax-s2"
            ]
        );
        let base = &plan.cells[0].config;
        assert_eq!(base.data.kind, "synthetic");
        assert_eq!(base.model.backbone, "mf");
        assert!(base.model.augmenters.is_empty());
        assert_eq!((base.train.seed, base.train.max_epochs), (1, 4));
        assert_eq!(base.eval.patience, 5);
        let pm = &plan.cells[3].config;
        assert_eq!(pm.model.augmenters, ["promax"]);
        assert_eq!(pm.plugins["promax"]["s2dr"], false);
        assert_eq!((pm.train.seed, pm.eval.patience), (2, 7));
        assert_eq!(plan.metrics, DEFAULT_METRICS);
        assert_eq!(plan.title, "c");
        assert_eq!(plan.default_out(), Path::new("runs/c"));
        check_plugins(&plan).unwrap();
    }

    #[test]
    fn unknown_key_is_named_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), &minimal("seedz = [3]", ""));
        let msg = load(&p, &[]).unwrap_err().to_string();
        assert!(
            msg.contains("c.toml:1:") && msg.contains("unknown field `seedz`"),
            "{msg}"
        );
        let p = write(
            dir.path(),
            &minimal("", "[[overrides]]\nmethods = \"promax\"\n"),
        );
        let msg = load(&p, &[]).unwrap_err().to_string();
        assert!(msg.contains("unknown field `methods`"), "{msg}");
        let p = write(dir.path(), &minimal("title = 3", ""));
        let msg = load(&p, &[]).unwrap_err().to_string();
        assert!(
            msg.contains("c.toml:1:") && msg.contains("title = 3"),
            "{msg}"
        );
    }

    #[test]
    fn unknown_run_config_key_in_sets_names_the_cell_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), &minimal("sets = [\"train.sed=3\"]", ""));
        let msg = load(&p, &[]).unwrap_err().to_string();
        assert!(
            msg.contains("cell syn-mf-base-s1")
                && msg.contains("train.sed")
                && msg.contains("train.seed"),
            "{msg}"
        );
    }

    #[test]
    fn missing_file_names_the_key_and_path() {
        let dir = tempfile::tempdir().unwrap();
        let body = minimal("", "").replace("models/mf.toml", "models/nope.toml");
        let p = write(dir.path(), &body);
        let msg = load(&p, &[]).unwrap_err().to_string();
        assert!(
            msg.contains("`backbones[0].config`") && msg.contains("nope.toml"),
            "{msg}"
        );
        let msg = load(&dir.path().join("absent.toml"), &[])
            .unwrap_err()
            .to_string();
        assert!(msg.contains("absent.toml not found"), "{msg}");
    }

    #[test]
    fn unknown_baseline_suggests_the_nearest_method() {
        let dir = tempfile::tempdir().unwrap();
        let body = minimal("", "").replace("baseline = \"base\"", "baseline = \"bse\"");
        let p = write(dir.path(), &body);
        let msg = load(&p, &[]).unwrap_err().to_string();
        assert!(
            msg.contains("`baseline`") && msg.contains("\"bse\"") && msg.contains("\"base\""),
            "{msg}"
        );
        let p = write(
            dir.path(),
            &minimal("", "[[overrides]]\nbackbone = \"lgn\"\n"),
        );
        let msg = load(&p, &[]).unwrap_err().to_string();
        assert!(msg.contains("`overrides[0].backbone`"), "{msg}");
    }

    #[test]
    fn other_checks() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            (
                minimal("", "").replace("seeds = [1, 2]", "seeds = []"),
                "`seeds`",
            ),
            (
                minimal("", "").replace("seeds = [1, 2]", "seeds = [1, 1]"),
                "listed twice",
            ),
            (
                minimal("", "").replace("name = \"syn\"", "name = \"a-b\""),
                "`datasets[0].name`",
            ),
            (
                minimal("", "").replace("name = \"promax\"", "name = \"base\""),
                "used twice",
            ),
            (minimal("metrics = [\"auc@20\"]", ""), "`metrics`"),
            (minimal("metrics = [\"recall@50\"]", ""), "eval.ks"),
        ];
        for (body, want) in cases {
            let p = write(dir.path(), &body);
            let msg = load(&p, &[]).unwrap_err().to_string();
            assert!(msg.contains(want), "{want}: {msg}");
        }
        // A plugin typo is found before anything runs.
        let p = write(
            dir.path(),
            &minimal("", "").replace("config = []", "config = []\nsets = [\"plugins.mff.x=1\"]"),
        );
        let msg = format!("{:#}", check_plugins(&load(&p, &[]).unwrap()).unwrap_err());
        assert!(msg.contains("plugins.mff"), "{msg}");
    }

    #[test]
    fn shipped_compare_files_load() {
        let dir = configs().join("experiments");
        let mut found = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let p = entry.unwrap().path();
            if !is_compare_file(&p) {
                continue;
            }
            found += 1;
            let plan = load(&p, &[]).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            check_plugins(&plan).unwrap_or_else(|e| panic!("{}: {e:#}", p.display()));
        }
        assert!(found >= 3, "{found}");
    }

    /// In the shipped ablations, the rows of one dataset × backbone × seed differ only in
    /// where S2DR's added items come from (and whether the terms run): everything else is
    /// the same config, so a gap between rows is the added items' doing. Amazon's
    /// `published` row is exactly promax-lightgcn-amazon.toml.
    #[test]
    fn shipped_ablations_differ_only_in_the_added_items() {
        let exp = configs().join("experiments");
        let without_source = |c: &Cell| {
            let mut cfg = c.config.clone();
            if let Some(serde_json::Value::Object(p)) = cfg.plugins.get_mut("promax") {
                for key in ["sdr", "s2dr", "augmented"] {
                    p.remove(key);
                }
            }
            cfg.augment.from_run = PathBuf::new();
            cfg.augment.rerank = config::AugmentConfig::default().rerank;
            cfg
        };
        for (file, n_cells) in [
            ("ablation-amazon.toml", 18),
            ("ablation-ml100k.toml", 18),
            ("ablation-backbones-amazon.toml", 18),
            ("ablation-synthetic.toml", 30),
        ] {
            let plan = load(&exp.join(file), &[]).unwrap();
            assert_eq!(plan.cells.len(), n_cells, "{file}");
            for cell in &plan.cells {
                let random = (plan.cells.iter())
                    .find(|r| {
                        (r.method.as_str(), &r.dataset, &r.backbone, r.seed)
                            == ("random", &cell.dataset, &cell.backbone, cell.seed)
                    })
                    .expect("every ablation has a random row");
                let sdr = &cell.config.plugins["promax"]["sdr"];
                assert_eq!(sdr, &serde_json::Value::Bool(false), "{}", cell.name);
                assert_eq!(
                    without_source(cell),
                    without_source(random),
                    "{}",
                    cell.name
                );
            }
        }
        let plan = load(&exp.join("ablation-amazon.toml"), &[]).unwrap();
        for cell in plan.cells.iter().filter(|c| c.method == "published") {
            let seed = format!("train.seed={}", cell.seed);
            let want = config::load(&exp.join("promax-lightgcn-amazon.toml"), &[seed]).unwrap();
            assert_eq!(cell.config, want, "{}", cell.name);
        }
    }

    /// The shipped matrices run exactly the single-run experiment files they mirror (with
    /// the extra sets each names, then the cell's seed).
    #[test]
    fn shipped_matrices_mirror_the_experiment_files() {
        let exp = configs().join("experiments");
        let single = |file: String| (file, Vec::new());
        let amazon = |c: &Cell| match c.method.as_str() {
            "base" => single(format!("{}-amazon.toml", c.backbone)),
            _ => single(format!("promax-{}-amazon-randprof.toml", c.backbone)),
        };
        let ml100k = |c: &Cell| match c.method.as_str() {
            "base" => single(format!("{}-ml100k.toml", c.backbone)),
            "promax_s2dr" => single("promax-lightgcn-ml100k-s2dr.toml".into()),
            "promax_s2dr_random" => (
                "promax-lightgcn-ml100k-s2dr.toml".into(),
                vec!["plugins.promax.augmented=\"source:random\"".into()],
            ),
            m => single(format!(
                "{}-{}-ml100k.toml",
                m.replace('_', "-"),
                c.backbone
            )),
        };
        let synthetic = |c: &Cell| {
            let mut sets: Vec<String> = [
                "data.synthetic.mean_interactions=5",
                "train.max_epochs=600",
                "eval.patience=10",
            ]
            .map(String::from)
            .into();
            if c.dataset == "synthetic_noise" {
                sets.push("data.synthetic.profile_signal=0".into());
            }
            let file = match c.method.as_str() {
                "base" => "lightgcn-synthetic.toml".into(),
                "promax_s2dr" | "promax_s2dr_random" => {
                    let source = c.method.strip_prefix("promax_s2dr").unwrap();
                    let source = if source.is_empty() {
                        "profiles"
                    } else {
                        "random"
                    };
                    sets.extend([
                        "plugins.promax.s2dr=true".into(),
                        format!("plugins.promax.augmented=\"source:{source}\""),
                        "augment.rerank=\"dense\"".into(),
                    ]);
                    "promax-lightgcn-synthetic.toml".into()
                }
                m => format!("{}-lightgcn-synthetic.toml", m.replace('_', "-")),
            };
            (file, sets)
        };
        type SingleOf<'a> = &'a dyn Fn(&Cell) -> (String, Vec<String>);
        let matrices: [(&str, usize, SingleOf<'_>); 4] = [
            ("table2-amazon.toml", 6, &amazon),
            ("fig4-amazon.toml", 24, &amazon),
            ("compare-ml100k.toml", 18, &ml100k),
            ("table2-synthetic.toml", 36, &synthetic),
        ];
        for (file, n_cells, single_of) in matrices {
            let plan = load(&exp.join(file), &[]).unwrap();
            assert_eq!(plan.cells.len(), n_cells, "{file}");
            assert_eq!(plan.seeds, [2025, 2026, 2027]);
            for cell in &plan.cells {
                let (single, mut sets) = single_of(cell);
                sets.push(format!("train.seed={}", cell.seed));
                let want = config::load(&exp.join(&single), &sets).unwrap();
                assert_eq!(cell.config, want, "{file}: {} vs {single}", cell.name);
            }
        }
    }
}

/// Arbitrary compare files never panic the loader; valid ones give every cell of the
/// matrix.
#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    fn configs() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs")
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn arbitrary_text_never_panics(text in "[ -~\n\t\\[\\]=\"]{0,300}") {
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("c.toml");
            std::fs::write(&p, &text).unwrap();
            let _ = load(&p, &[]);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("c.toml");
            std::fs::write(&p, &bytes).unwrap();
            let _ = load(&p, &[]);
        }

        #[test]
        fn a_valid_file_gives_the_whole_matrix(
            seeds in proptest::collection::btree_set(0u64..1_000_000, 1..4),
            names in proptest::collection::btree_set("[a-z][a-z0-9]{0,6}", 1..3),
            epochs in 1usize..50,
        ) {
            let c = configs();
            let seeds: Vec<u64> = seeds.into_iter().collect();
            let mut body = format!(
                "layers = [{:?}]\nsets = [\"train.max_epochs={epochs}\"]\nseeds = {seeds:?}\n\
                 baseline = \"base\"\n[[datasets]]\nname = \"syn\"\nconfig = {:?}\n\
                 [[backbones]]\nname = \"mf\"\nconfig = {:?}\n\
                 [[methods]]\nname = \"base\"\nconfig = []\n",
                c.join("base.toml").display().to_string(),
                c.join("datasets/synthetic.toml").display().to_string(),
                c.join("models/mf.toml").display().to_string(),
            );
            let names: Vec<String> = names.into_iter().filter(|n| n != "base").collect();
            for n in &names {
                body.push_str(&format!(
                    "[[methods]]\nname = {n:?}\nconfig = []\nsets = [\"train.lr=0.002\"]\n"
                ));
            }
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("c.toml");
            std::fs::write(&p, &body).unwrap();
            let plan = load(&p, &[]).unwrap();
            prop_assert_eq!(plan.cells.len(), seeds.len() * (1 + names.len()));
            prop_assert!(plan.cells.iter().all(|c| c.config.train.max_epochs == epochs));
            for seed in &seeds {
                prop_assert!(plan.cells.iter().any(|c| c.seed == *seed && c.method == "base"));
            }
        }
    }
}
