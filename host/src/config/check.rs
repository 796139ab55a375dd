//! The range helpers of each section's `validate`: errors name the dotted key and the
//! value (the layer is added by [`super::load`]).

use std::fmt;

use promax_plugin_api::sdk::nearest;

use super::{limits, ConfigError};

pub(super) fn bad(key: &str, value: impl fmt::Debug, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        value: format!("{value:?}"),
        reason: reason.into(),
        origin: None,
    }
}

/// What a name outside `allowed` is told: the allowed names, and the nearest one when
/// it is plausibly meant.
pub(super) fn one_of_reason(value: &str, allowed: &[&str]) -> String {
    let hint = nearest(value, allowed.iter().copied())
        .map(|s| format!(" (did you mean \"{s}\"?)"))
        .unwrap_or_default();
    format!("must be one of {}{hint}", quoted_list(allowed))
}

pub(super) fn unit_share(key: &str, v: f64) -> Result<(), ConfigError> {
    if (0.0..=1.0).contains(&v) {
        Ok(())
    } else {
        Err(bad(key, v, "must be a share between 0 and 1"))
    }
}

pub(super) fn in_range<T: PartialOrd + fmt::Display + fmt::Debug>(
    key: &str,
    v: T,
    lo: T,
    hi: T,
) -> Result<(), ConfigError> {
    if lo <= v && v <= hi {
        Ok(())
    } else {
        Err(bad(key, v, format!("must be between {lo} and {hi}")))
    }
}

/// A seed `to_toml` can write: TOML integers are 64-bit signed.
pub(super) fn seed(key: &str, seed: u64) -> Result<(), ConfigError> {
    if seed <= limits::MAX_SEED {
        return Ok(());
    }
    Err(bad(
        key,
        seed,
        format!(
            "must be at most {}: every run writes its resolved config as TOML, \
             whose integers are 64-bit signed",
            limits::MAX_SEED
        ),
    ))
}

/// Shows a value already written as TOML/JSON text without Debug's quotes.
pub(super) struct Raw(pub(super) String);

impl fmt::Debug for Raw {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn quoted_list(items: &[&str]) -> String {
    items
        .iter()
        .map(|s| format!("\"{s}\""))
        .collect::<Vec<_>>()
        .join(", ")
}
