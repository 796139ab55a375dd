//! `promax bench`.

use anyhow::{Context, Result};
use clap::Subcommand;
use promax_kernels::KernelPath;

#[derive(Subcommand)]
pub enum BenchWhat {
    /// The fused softmax-over-all-items cross-entropy (ProMax SDR), forward + backward,
    /// against a dense matmul of the same shape measured in the same run.
    Sdr {
        #[arg(long, default_value_t = 3000)]
        users: usize,
        #[arg(long, default_value_t = 9332)]
        items: usize,
        #[arg(long, default_value_t = 32)]
        dim: usize,
        /// Timed repetitions (the best is reported).
        #[arg(long, default_value_t = 5)]
        reps: usize,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
        /// Kernel path: `avx512`, `avx2` or `portable` (default: the fastest this CPU
        /// supports), so that one machine measures every path it has.
        #[arg(long)]
        path: Option<String>,
    },
    /// One graph propagation step (CSR sparse × dense) over a random bipartite graph of
    /// Amazon-Book's size by default (11,000 users, 9,332 items, 11 items per user).
    Spmm {
        #[arg(long, default_value_t = 11000)]
        users: usize,
        #[arg(long, default_value_t = 9332)]
        items: usize,
        /// Items per user (uniform at random).
        #[arg(long, default_value_t = 11)]
        per_user: usize,
        #[arg(long, default_value_t = 32)]
        dim: usize,
        /// Timed repetitions (the best is reported).
        #[arg(long, default_value_t = 20)]
        reps: usize,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
        /// Kernel path, as for `bench sdr`.
        #[arg(long)]
        path: Option<String>,
    },
}

/// Forces `--path NAME` when given.
fn force_path(path: Option<String>) -> Result<()> {
    if let Some(name) = path {
        let p = KernelPath::parse(&name)
            .with_context(|| format!("--path {name:?}: expected avx512, avx2 or portable"))?;
        promax_kernels::simd::force(Some(p)).map_err(|e| anyhow::anyhow!("--path {name}: {e}"))?;
    }
    Ok(())
}

pub fn cmd_bench(what: BenchWhat) -> Result<()> {
    match what {
        BenchWhat::Sdr {
            users,
            items,
            dim,
            reps,
            json,
            path,
        } => {
            promax::bench::check_sizes(users, items, dim, reps)?;
            force_path(path)?;
            let r = promax::bench::sdr(users, items, dim, reps)?;
            if json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                let extra = match r.extra_bytes {
                    Some(b) => format!("{:.2} MiB", b as f64 / (1 << 20) as f64),
                    None => "not measured (only the promax binary counts allocations)".into(),
                };
                println!(
                    "SDR kernel (fwd+bwd, {} path) B={users} N={items} d={dim}, {} threads: {:.1} GFLOP/s ({:.1} ms); \
                     dense matmul same run: {:.1} GFLOP/s; kernel extra memory {extra} \
                     (a dense B×N matrix: {:.1} MiB)",
                    r.path,
                    r.threads,
                    r.kernel_gflops,
                    r.kernel_seconds * 1e3,
                    r.matmul_gflops,
                    r.dense_matrix_bytes as f64 / (1 << 20) as f64
                );
            }
            Ok(())
        }
        BenchWhat::Spmm {
            users,
            items,
            per_user,
            dim,
            reps,
            json,
            path,
        } => {
            force_path(path)?;
            let r = promax::bench::spmm(users, items, per_user, dim, reps)?;
            if json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                println!(
                    "spmm ({} path) {users} users + {items} items, {per_user} per user \
                     ({} nonzeros), d={dim}, {} threads: {:.3} ms, {:.1} GFLOP/s, \
                     {:.1} GB/s of rows gathered",
                    r.path,
                    r.nnz,
                    r.threads,
                    r.seconds * 1e3,
                    r.gflops,
                    r.gather_gb_per_s
                );
            }
            Ok(())
        }
    }
}
