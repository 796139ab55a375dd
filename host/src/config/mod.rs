//! Layered run configuration (figment).
//!
//! Layers, later wins: built-in defaults ← the `extends` chain of the config file (parents
//! first) ← the file itself ← `PROMAX_*` environment variables ← each `--set key=value`.
//! Every value keeps the layer that set it, so an unknown key, a wrong type or an
//! out-of-range value is reported with its full dotted key, the file (or variable, or
//! `--set` argument) it came from, and for a typo the nearest valid key.
//!
//! The files: [`Config`] here, one file per section in `sections/` (each with its own
//! checks), the layers in `layering.rs`, the typing of `--set` / environment text in
//! `coerce.rs`, the defaults and schema trees in `schema.rs`, the naming of a problem's key
//! and layer in `diagnose.rs`, the errors in `error.rs` and the bounds in [`limits`]. The
//! module depends on no other module of the host, so every other one may use it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

mod check;
mod coerce;
mod diagnose;
mod error;
mod layering;
pub mod limits;
mod schema;
mod sections;

#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;

pub use error::ConfigError;
#[cfg(test)]
pub(crate) use layering::load_layers_with_env;
pub use layering::{load, load_layers, load_optional, load_run, ENV_NOT_CONFIG, ENV_PREFIX};
pub use sections::{
    AugmentConfig, AugmentSource, DataConfig, DataKind, Device, DuplicatePolicy, EmbedConfig,
    EvalConfig, KernelPathChoice, LlmConfig, ModelConfig, ProfileConfig, ProfilesConfig,
    RecboleConfig, RecboleOrder, RecboleSplit, ReductionMode, RerankMode, RunConfig,
    SyntheticConfig, TrainConfig, MAX_BACKOFF_MS, MAX_CONCURRENCY, MAX_EMBED_BATCH, MAX_RETRIES,
    MAX_TIMEOUT_SECS, MAX_TOKENS, METRICS, RESERVED_BODY_KEYS, RESPONSE_FORMATS,
};

/// The whole resolved configuration of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Extra folders scanned for `cdylib` plugins (besides `PROMAX_PLUGIN_PATH`).
    pub plugin_dirs: Vec<PathBuf>,
    /// Compute backend: `"auto"`, `"cpu"` or `"cuda"`.
    pub device: Device,
    /// Which interactions to train and evaluate on.
    pub data: DataConfig,
    /// Which backbone and augmenters to compose.
    pub model: ModelConfig,
    /// Per-plugin hyperparameter tables (`[plugins.lightgcn] layers = 3`); each plugin
    /// validates its own table, so the host only checks that every entry is a table.
    pub plugins: BTreeMap<String, serde_json::Value>,
    /// Optimisation settings.
    pub train: TrainConfig,
    /// Validation / early-stopping settings.
    pub eval: EvalConfig,
    /// Where results go.
    pub run: RunConfig,
    /// `promax profile`: written user and item profiles through the chat endpoint.
    pub profile: ProfileConfig,
    /// `promax embed`: profile texts to `.npy` tables through the embeddings endpoint.
    pub embed: EmbedConfig,
    /// `promax augment`: profile-guided retrieval and the sparsity level shift.
    pub augment: AugmentConfig,
    /// The OpenAI-compatible endpoint of the profile pipeline (re-ranking, profiles,
    /// embeddings).
    pub llm: LlmConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            plugin_dirs: Vec::new(),
            device: Device::Cpu,
            data: DataConfig::default(),
            model: ModelConfig::default(),
            plugins: BTreeMap::new(),
            train: TrainConfig::default(),
            eval: EvalConfig::default(),
            run: RunConfig::default(),
            profile: ProfileConfig::default(),
            embed: EmbedConfig::default(),
            augment: AugmentConfig::default(),
            llm: LlmConfig::default(),
        }
    }
}

/// The resolved configuration as TOML, loadable again by [`load`]; written beside every
/// run's results so that the run can be repeated from its folder.
pub fn to_toml(cfg: &Config) -> String {
    match toml::to_string(cfg) {
        Ok(body) => {
            format!("# promax resolved configuration: every key, after all layers.\n{body}")
        }
        // Only a non-UTF-8 path can fail, and `load` never produces one (TOML, environment
        // and `--set` text is UTF-8). Should a hand-built Config hit it, the written file
        // names the problem and `load` refuses it (unknown key) instead of running defaults.
        Err(e) => format!(
            "# promax could not serialise this configuration: {e}\nunserialisable_config = true\n"
        ),
    }
}

impl Config {
    /// Checks every value's range, section by section, then what spans sections; errors
    /// name the dotted key (the layer is added by [`load`]).
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.augment.validate()?;
        self.llm.validate()?;
        self.profile.validate()?;
        self.embed.validate()?;
        self.data.validate()?;
        self.model.validate()?;
        if let Some((name, v)) = self.plugins.iter().find(|(_, v)| !v.is_object()) {
            return Err(check::bad(
                &format!("plugins.{name}"),
                check::Raw(v.to_string()),
                "must be a table of that plugin's hyperparameters",
            ));
        }
        for (key, seed) in [
            ("train.seed", self.train.seed),
            ("data.synthetic.seed", self.data.synthetic.seed),
            ("data.profiles.random_seed", self.data.profiles.random_seed),
        ] {
            check::seed(key, seed)?;
        }
        self.train.validate()?;
        self.eval.validate()
    }
}
