//! `promax bench sdr`: throughput of the fused softmax-over-all-items kernel next to a dense
//! matmul measured in the same run, and the kernel's peak extra memory.

use anyhow::{anyhow, Result};
use promax_kernels::{
    bench::{bench_sdr, bench_spmm},
    CpuKernels,
};
use promax_plugin_api::sdk::rows::unit_rows;
use promax_plugin_api::sdk::Compute;
use promax_plugin_api::testing::SplitMix;
use promax_plugin_api::SoftCeRequest;
use serde::Serialize;

use crate::alloc;

/// What `promax bench sdr --json` prints.
#[derive(Debug, Serialize)]
pub struct SdrReport {
    pub users: usize,
    pub items: usize,
    pub dim: usize,
    pub threads: usize,
    /// The kernel path measured (`avx512`, `avx2`, `portable`).
    pub path: &'static str,
    pub kernel_gflops: f64,
    pub matmul_gflops: f64,
    pub kernel_seconds: f64,
    pub matmul_seconds: f64,
    /// Peak bytes allocated during one kernel call beyond its inputs and outputs; `None`
    /// where the process does not count its allocations (the Python extension: only the
    /// `promax` binary installs the counting allocator).
    pub extra_bytes: Option<usize>,
    /// For scale: what a materialised users × items float matrix would take.
    pub dense_matrix_bytes: usize,
}

fn random(n: usize, rng: &mut SplitMix) -> Vec<f32> {
    (0..n).map(|_| rng.symmetric(1.0) as f32).collect()
}

fn random_unit_rows(n: usize, dim: usize, rng: &mut SplitMix) -> Vec<f32> {
    let mut x = random(n * dim, rng);
    unit_rows(&mut x, dim);
    x
}

/// Measures one kernel call's peak extra memory with the counting allocator (`None`
/// when it is not the global allocator: nothing was counted).
fn extra_bytes(b: usize, n: usize, d: usize) -> Result<Option<usize>> {
    let mut rng = SplitMix(7);
    let (users, items) = (random(b * d, &mut rng), random(n * d, &mut rng));
    let (tu, ti) = (
        random_unit_rows(b, d, &mut rng),
        random_unit_rows(n, d, &mut rng),
    );
    let lse = vec![(n as f32).ln(); b];
    let weights = vec![1.0 / b as f32; b];
    let (mut du, mut di) = (vec![0f32; b * d], vec![0f32; n * d]);
    let kernels = CpuKernels;
    let k = Compute::new(kernels.as_ref());
    let base = alloc::reset_peak();
    k.soft_ce_all_items(
        SoftCeRequest {
            users: users.as_slice().into(),
            items: items.as_slice().into(),
            dim: d,
            target_users: tu.as_slice().into(),
            target_items: ti.as_slice().into(),
            target_dim: d,
            target_lse: lse.as_slice().into(),
            weights: weights.as_slice().into(),
            tau: 0.2,
            target_tau: 0.2,
        },
        &mut du,
        &mut di,
    )
    .map_err(|e| anyhow!(e))?;
    // The inputs above are live: a counting allocator cannot read 0.
    if alloc::live_bytes() == 0 {
        return Ok(None);
    }
    Ok(Some(alloc::peak_bytes().saturating_sub(base)))
}

/// Upper bounds of `promax bench sdr`'s sizes. The benchmark allocates the inputs, their
/// gradients and a dense users × items matrix for the matmul it compares against, so the
/// products are bounded too: the dense matrix at 2^30 floats (4 GiB), each embedding table
/// at 2^28 floats (1 GiB).
pub const MAX_BENCH_ROWS: usize = 10_000_000;
/// Largest `--dim`.
pub const MAX_BENCH_DIM: usize = 4096;
/// Largest `--reps`.
pub const MAX_BENCH_REPS: usize = 1000;
const MAX_DENSE_VALUES: usize = 1 << 30;
const MAX_TABLE_VALUES: usize = 1 << 28;

/// A benchmark size outside what `promax bench` can allocate.
#[derive(Debug, thiserror::Error)]
#[error("--{flag} {value}: {reason}")]
pub struct SizeError {
    pub flag: &'static str,
    pub value: usize,
    pub reason: String,
}

/// Checks the sizes before anything is allocated; the error names the flag.
pub fn check_sizes(users: usize, items: usize, dim: usize, reps: usize) -> Result<(), SizeError> {
    let bad = |flag, value, reason: String| {
        Err(SizeError {
            flag,
            value,
            reason,
        })
    };
    in_ranges(&[
        ("users", users, MAX_BENCH_ROWS),
        ("items", items, MAX_BENCH_ROWS),
        ("dim", dim, MAX_BENCH_DIM),
        ("reps", reps, MAX_BENCH_REPS),
    ])?;
    let over = |a: usize, b: usize, cap: usize| a.checked_mul(b).is_none_or(|p| p > cap);
    if over(users, items, MAX_DENSE_VALUES) {
        return bad(
            "items",
            items,
            format!(
                "users × items = {users} × {items} exceeds {MAX_DENSE_VALUES} values (the dense \
                 matrix the kernel is compared against); lower --users or --items"
            ),
        );
    }
    for (flag, rows) in [("users", users), ("items", items)] {
        if over(rows, dim, MAX_TABLE_VALUES) {
            return bad(
                flag,
                rows,
                format!("{flag} × dim = {rows} × {dim} exceeds {MAX_TABLE_VALUES} values"),
            );
        }
    }
    Ok(())
}

/// Each `(flag, value, max)` must lie in `1..=max`.
fn in_ranges(flags: &[(&'static str, usize, usize)]) -> Result<(), SizeError> {
    for &(flag, value, hi) in flags {
        if !(1..=hi).contains(&value) {
            return Err(SizeError {
                flag,
                value,
                reason: format!("must be between 1 and {hi}"),
            });
        }
    }
    Ok(())
}

/// Runs the SDR benchmark at B users × N items × d dims (sizes as [`check_sizes`] allows).
pub fn sdr(users: usize, items: usize, dim: usize, reps: usize) -> Result<SdrReport> {
    check_sizes(users, items, dim, reps)?;
    let r = bench_sdr(users, items, dim, reps, 2025).map_err(|e| anyhow!("{e}"))?;
    Ok(SdrReport {
        users,
        items,
        dim,
        threads: rayon::current_num_threads(),
        path: promax_kernels::simd::active().name(),
        kernel_gflops: r.kernel_gflops,
        matmul_gflops: r.matmul_gflops,
        kernel_seconds: r.kernel_seconds,
        matmul_seconds: r.matmul_seconds,
        extra_bytes: extra_bytes(users, items, dim)?,
        // Bounded by check_sizes: no overflow.
        dense_matrix_bytes: users * items * 4,
    })
}

/// What `promax bench spmm --json` prints.
#[derive(Debug, Serialize)]
pub struct SpmmReport {
    pub users: usize,
    pub items: usize,
    pub per_user: usize,
    pub dim: usize,
    pub nnz: usize,
    pub threads: usize,
    /// The kernel path measured (`avx512`, `avx2`, `portable`).
    pub path: &'static str,
    pub seconds: f64,
    pub gflops: f64,
    /// Bytes of `x` rows gathered per second (`nnz · dim · 4 / seconds`), the traffic that
    /// bounds a propagation step.
    pub gather_gb_per_s: f64,
}

/// Largest `--per-user` of `promax bench spmm`.
pub const MAX_PER_USER: usize = 10_000;

/// Runs one graph propagation step (sizes checked first: the graph holds
/// `2 · users · per_user` entries, the tables `(users + items) × dim` floats).
pub fn spmm(
    users: usize,
    items: usize,
    per_user: usize,
    dim: usize,
    reps: usize,
) -> Result<SpmmReport> {
    in_ranges(&[
        ("users", users, MAX_BENCH_ROWS),
        ("items", items, MAX_BENCH_ROWS),
        ("per-user", per_user, MAX_PER_USER),
        ("dim", dim, MAX_BENCH_DIM),
        ("reps", reps, MAX_BENCH_REPS),
    ])?;
    let too_big = |flag, value, what: String| -> Result<(), SizeError> {
        Err(SizeError {
            flag,
            value,
            reason: format!("{what} exceeds {MAX_TABLE_VALUES}"),
        })
    };
    // Bounded above: no overflow.
    let (nodes, entries) = (users + items, 2 * users * per_user);
    if nodes * dim > MAX_TABLE_VALUES {
        too_big(
            "dim",
            dim,
            format!("(users + items) × dim = {nodes} × {dim}"),
        )?;
    }
    if entries > MAX_TABLE_VALUES {
        too_big(
            "per-user",
            per_user,
            format!("2 × users × per-user = {entries} graph entries"),
        )?;
    }
    let r = bench_spmm(users, items, per_user, dim, reps, 2025).map_err(|e| anyhow!("{e}"))?;
    Ok(SpmmReport {
        users,
        items,
        per_user,
        dim,
        nnz: r.nnz,
        threads: rayon::current_num_threads(),
        path: promax_kernels::simd::active().name(),
        seconds: r.seconds,
        gflops: r.gflops,
        gather_gb_per_s: r.nnz as f64 * dim as f64 * 4.0 / r.seconds / 1e9,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spmm_sizes_are_checked_before_allocation() {
        let r = spmm(50, 40, 3, 16, 1).expect("small shape");
        assert!(r.nnz > 0 && r.gflops > 0.0);
        for ((u, i, k, d), flag) in [
            ((50, 40, 0, 16), "--per-user"),
            ((5_000_000, 40, 10_000, 16), "--per-user"),
            ((50, 0, 3, 16), "--items"),
            ((50, 40, 3, 0), "--dim"),
        ] {
            let e = spmm(u, i, k, d, 1).unwrap_err().to_string();
            assert!(e.starts_with(flag), "{e}");
        }
    }

    #[test]
    fn sizes_are_bounded_before_allocation() {
        check_sizes(3000, 9332, 32, 5).unwrap();
        for (args, flag) in [
            ((0, 10, 4, 1), "--users"),
            ((10, 10, 0, 1), "--dim"),
            ((10, 10, 4, 0), "--reps"),
            ((usize::MAX, 10, 4, 1), "--users"),
            ((1_000_000, 1_000_000, 4, 1), "--items"),
            ((100_000, 10, 4096, 1), "--users"),
        ] {
            let e = check_sizes(args.0, args.1, args.2, args.3).unwrap_err();
            assert!(e.to_string().starts_with(flag), "{args:?}: {e}");
        }
    }
}
