//! `device`: where a run's kernels execute.

named_options! {
    /// `device`: the compute backend of a run.
    Device {
        /// The best backend this build has: the CPU.
        Auto = "auto",
        /// The CPU kernels.
        Cpu = "cpu",
        /// An NVIDIA GPU.
        Cuda = "cuda",
    }
}
