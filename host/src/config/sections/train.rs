//! `[train]`: optimisation settings.

use serde::{Deserialize, Serialize};

use crate::config::check::{bad, in_range};
use crate::config::{limits, ConfigError};

named_options! {
    /// `train.kernel_path`: the SIMD level of the hand-written CPU kernels.
    KernelPathChoice {
        /// The fastest this CPU supports.
        Auto = "auto",
        /// AVX-512F register tiles.
        Avx512 = "avx512",
        /// AVX2 + FMA register tiles.
        Avx2 = "avx2",
        /// matrixmultiply and auto-vectorised loops, any CPU.
        Portable = "portable",
    }
}

/// Optimisation settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Seed for initialisation, shuffling and negative sampling.
    pub seed: u64,
    /// Upper bound on epochs; early stopping usually ends the run first.
    pub max_epochs: usize,
    /// Training interactions per batch.
    pub batch_size: usize,
    /// Adam learning rate.
    pub lr: f64,
    /// L2 weight on all trainable tables.
    pub reg_weight: f64,
    /// Worker threads; 0 = all cores.
    pub threads: usize,
    /// Write the resumable checkpoint every this many epochs; 0 = at each evaluation.
    pub checkpoint_every: usize,
    /// The CPU kernels' SIMD level: `"auto"` (the fastest this CPU supports), or one of
    /// `"avx512"`, `"avx2"`, `"portable"` to compare them (a level the CPU lacks is refused
    /// when the run starts). The run's `metrics.json` names the one it used.
    pub kernel_path: KernelPathChoice,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            seed: 2025,
            max_epochs: 1000,
            batch_size: 4096,
            lr: 1e-3,
            reg_weight: 1e-6,
            threads: 0,
            checkpoint_every: 0,
            kernel_path: KernelPathChoice::Auto,
        }
    }
}

impl TrainConfig {
    pub(in crate::config) fn validate(&self) -> Result<(), ConfigError> {
        in_range("train.max_epochs", self.max_epochs, 1, limits::MAX_EPOCHS)?;
        in_range("train.batch_size", self.batch_size, 1, limits::MAX_BATCH)?;
        in_range("train.threads", self.threads, 0, limits::MAX_THREADS)?;
        in_range(
            "train.checkpoint_every",
            self.checkpoint_every,
            0,
            limits::MAX_EPOCHS,
        )?;
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(bad("train.lr", self.lr, "must be a positive finite number"));
        }
        if !(self.reg_weight.is_finite() && self.reg_weight >= 0.0) {
            return Err(bad(
                "train.reg_weight",
                self.reg_weight,
                "must be a finite number >= 0",
            ));
        }
        Ok(())
    }
}
