//! The kernel path: which SIMD level the hand-written kernels (the fused softmax products,
//! the exp-heavy loops) run at. The fastest the CPU supports by default; [`force`] picks
//! another one the CPU supports, so that one machine can measure every path it has
//! (`promax bench sdr --path avx2`) and a run can name the path it used.

use std::sync::atomic::{AtomicU8, Ordering::Relaxed};

/// A SIMD level of the hand-written kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelPath {
    /// AVX-512F register tiles (16 lanes).
    Avx512,
    /// AVX2 + FMA register tiles (8 lanes).
    Avx2,
    /// No hand-written SIMD: matrixmultiply and auto-vectorised loops, any CPU.
    Portable,
}

/// Every path, fastest first.
pub const PATHS: [KernelPath; 3] = [KernelPath::Avx512, KernelPath::Avx2, KernelPath::Portable];

impl KernelPath {
    /// The name `--path` takes and `metrics.json` reports.
    pub fn name(self) -> &'static str {
        match self {
            KernelPath::Avx512 => "avx512",
            KernelPath::Avx2 => "avx2",
            KernelPath::Portable => "portable",
        }
    }

    /// The path named `name`, if any.
    pub fn parse(name: &str) -> Option<Self> {
        PATHS.into_iter().find(|p| p.name() == name)
    }

    /// Whether this CPU can run the path.
    pub fn supported(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            KernelPath::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
            #[cfg(target_arch = "x86_64")]
            KernelPath::Avx2 => {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
            }
            KernelPath::Portable => true,
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    fn code(self) -> u8 {
        match self {
            KernelPath::Avx512 => 1,
            KernelPath::Avx2 => 2,
            KernelPath::Portable => 3,
        }
    }
}

/// 0: not forced; else [`KernelPath::code`].
static FORCED: AtomicU8 = AtomicU8::new(0);

/// The fastest path this CPU supports.
pub fn best() -> KernelPath {
    PATHS
        .into_iter()
        .find(|p| p.supported())
        .unwrap_or(KernelPath::Portable)
}

/// The path the kernels run at now: the forced one, else [`best`].
pub fn active() -> KernelPath {
    match FORCED.load(Relaxed) {
        0 => best(),
        c => PATHS
            .into_iter()
            .find(|p| p.code() == c)
            .unwrap_or(KernelPath::Portable),
    }
}

/// Runs every later kernel call of this process at `path` (`None`: the fastest again);
/// a path the CPU cannot run is refused, naming the ones it can.
pub fn force(path: Option<KernelPath>) -> Result<(), String> {
    match path {
        None => FORCED.store(0, Relaxed),
        Some(p) if p.supported() => FORCED.store(p.code(), Relaxed),
        Some(p) => {
            let can: Vec<&str> = PATHS
                .into_iter()
                .filter(|q| q.supported())
                .map(KernelPath::name)
                .collect();
            return Err(format!(
                "this CPU cannot run the {} kernels; it supports {}",
                p.name(),
                can.join(", ")
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_portable_is_always_there() {
        for p in PATHS {
            assert_eq!(KernelPath::parse(p.name()), Some(p));
        }
        assert_eq!(KernelPath::parse("sse9"), None);
        assert!(KernelPath::Portable.supported());
        assert!(best().supported());
        // The order of preference: a CPU with AVX-512F and AVX2 picks AVX-512.
        if KernelPath::Avx512.supported() {
            assert_eq!(best(), KernelPath::Avx512);
        }
    }
}
