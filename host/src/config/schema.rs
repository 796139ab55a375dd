//! The value trees every layer is checked and typed against: the defaults, and the schema
//! of every valid key.

use std::path::PathBuf;

use figment::value::{Dict, Value};

use super::{AugmentConfig, Config, DataConfig, ModelConfig, RecboleConfig};

pub(super) fn defaults_dict() -> Dict {
    match Value::serialize(Config::default()) {
        Ok(Value::Dict(_, d)) => d,
        // Config is plain data with string keys: serialising it cannot fail.
        _ => Dict::new(),
    }
}

/// Every valid key, as the defaults' value tree. Empty lists get one placeholder element so
/// that the element type is known when coercing `--set` / environment values; optional keys
/// (absent from the defaults) get a placeholder value for the same reason.
pub(super) fn schema() -> Dict {
    let probe = Config {
        plugin_dirs: vec![PathBuf::new()],
        augment: AugmentConfig {
            seed: Some(0),
            ..AugmentConfig::default()
        },
        model: ModelConfig {
            augmenters: vec![String::new()],
            ..ModelConfig::default()
        },
        data: DataConfig {
            recbole: RecboleConfig {
                min_rating: Some(0.0),
                ..RecboleConfig::default()
            },
            ..DataConfig::default()
        },
        ..Config::default()
    };
    match Value::serialize(probe) {
        Ok(Value::Dict(_, d)) => d,
        _ => Dict::new(),
    }
}
