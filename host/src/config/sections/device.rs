//! `device`: where a run's kernels execute.

use crate::config::check::bad;
use crate::config::ConfigError;

named_options! {
    /// `device`: the compute backend of a run.
    Device {
        /// The best backend this build has: the CPU.
        Auto = "auto",
        /// The CPU kernels.
        Cpu = "cpu",
        /// An NVIDIA GPU; accepted in a config file, refused when a run starts, since this
        /// build has no CUDA backend.
        Cuda = "cuda",
    }
}

impl Device {
    /// Checks, before a run starts, that this build can run on the device: `auto` picks
    /// the CPU (said once in the log), `cuda` is an error naming the key.
    pub fn ensure_available(self) -> Result<(), ConfigError> {
        match self {
            Device::Cpu => Ok(()),
            Device::Auto => {
                tracing::info!(
                    "device = \"auto\": running on the CPU, the only backend this build has"
                );
                Ok(())
            }
            Device::Cuda => Err(bad(
                "device",
                self.as_str(),
                "this build has no CUDA backend: use device = \"cpu\" or \"auto\"",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_cpu_backend_is_available() {
        Device::Cpu.ensure_available().unwrap();
        Device::Auto.ensure_available().unwrap();
        let msg = Device::Cuda.ensure_available().unwrap_err().to_string();
        assert!(
            msg.contains("`device`")
                && msg.contains("no CUDA backend")
                && msg.contains("device = \"cpu\""),
            "{msg}"
        );
    }
}
