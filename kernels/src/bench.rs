//! Throughput of the fused SDR kernel ([`crate::softmax::soft_ce_all_items`], forward and
//! backward) next to a dense matmul of comparable shape timed in the same run, so that the
//! ratio means something on a shared or throttled machine. `promax bench sdr` prints it.

use std::time::{Duration, Instant};

use promax_plugin_api::sdk::rows::unit_rows;
use promax_plugin_api::testing::SplitMix;
use promax_plugin_api::{GemmSpec, SoftCeRequest, SoftmaxStatsRequest};

use crate::dense::gemm;
use crate::softmax::{soft_ce_all_items, softmax_stats};
use crate::KernelError;

/// What [`bench_sdr`] measured (best of the repetitions, after one warm-up call each).
#[derive(Clone, Copy, Debug)]
pub struct SdrBench {
    /// `flops / kernel_seconds / 1e9`.
    pub kernel_gflops: f64,
    /// `2·B·N·d / matmul_seconds / 1e9`.
    pub matmul_gflops: f64,
    /// One `soft_ce_all_items` call (forward + backward).
    pub kernel_seconds: f64,
    /// One `B×d · d×N` product into a preallocated `B × N` buffer ([`crate::dense::gemm`],
    /// all rayon threads).
    pub matmul_seconds: f64,
    /// The flops credited to one kernel call: `2·B·N·(d + target_dim)` for the logit and
    /// target blocks and `2·2·B·N·d` for the two gradient products (target_dim = d here):
    /// `8·B·N·d` in all, the products the single-pass engine actually runs. The 2
    /// exponentials per pair are not credited.
    pub flops: f64,
}

/// Benchmarks SDR at `b` users × `n` items × `d` dims (target_dim = d) on random inputs
/// (seeded): `reps` timed calls of the kernel and of the matmul, best of each.
pub fn bench_sdr(
    b: usize,
    n: usize,
    d: usize,
    reps: usize,
    seed: u64,
) -> Result<SdrBench, KernelError> {
    if b == 0 || n == 0 || d == 0 {
        return Err(KernelError::Shape(format!(
            "bench_sdr: users, items and dim must be > 0, got {b}, {n}, {d}"
        )));
    }
    let reps = reps.max(1);
    let mut rng = SplitMix(seed);
    let mut random =
        |len: usize| -> Vec<f32> { (0..len).map(|_| rng.symmetric(1.0) as f32).collect() };
    let users = random(b * d);
    let items = random(n * d);
    let (mut target_users, mut target_items) = (random(b * d), random(n * d));
    unit_rows(&mut target_users, d);
    unit_rows(&mut target_items, d);
    let weights: Vec<f32> = random(b)
        .iter()
        .map(|&x| (0.55 + 0.45 * x) / b.max(1) as f32)
        .collect();
    let (tau, target_tau) = (0.2f32, 0.2f32);
    let mut target_lse = vec![0f32; b];
    let mut entropy = vec![0f32; b];
    softmax_stats(
        &SoftmaxStatsRequest {
            queries: target_users.as_slice().into(),
            keys: target_items.as_slice().into(),
            dim: d,
            tau: target_tau,
        },
        &mut target_lse,
        &mut entropy,
    )?;
    let req = SoftCeRequest {
        users: users.as_slice().into(),
        items: items.as_slice().into(),
        dim: d,
        target_users: target_users.as_slice().into(),
        target_items: target_items.as_slice().into(),
        target_dim: d,
        target_lse: target_lse.as_slice().into(),
        weights: weights.as_slice().into(),
        tau,
        target_tau,
    };
    let (mut d_users, mut d_items) = (vec![0f32; b * d], vec![0f32; n * d]);
    let kernel = best_of(reps, || {
        soft_ce_all_items(&req, &mut d_users, &mut d_items).map(|_| ())
    })?;

    let spec = GemmSpec {
        m: b,
        n,
        k: d,
        trans_a: false,
        trans_b: true,
        alpha: 1.0,
        beta: 0.0,
    };
    let mut c = vec![0f32; b * n];
    let matmul = best_of(reps, || gemm(spec, &users, &items, &mut c))?;

    let (bf, nf, df) = (b as f64, n as f64, d as f64);
    let flops = 2.0 * bf * nf * (df + df) + 4.0 * bf * nf * df;
    let (ks, ms) = (kernel.as_secs_f64(), matmul.as_secs_f64());
    Ok(SdrBench {
        kernel_gflops: flops / ks / 1e9,
        matmul_gflops: 2.0 * bf * nf * df / ms / 1e9,
        kernel_seconds: ks,
        matmul_seconds: ms,
        flops,
    })
}

/// What [`bench_spmm`] measured (best of the repetitions, after one warm-up call).
#[derive(Clone, Copy, Debug)]
pub struct SpmmBench {
    /// Nonzeros of the graph: both directions of every user–item pair.
    pub nnz: usize,
    /// One propagation step `out = A · x`.
    pub seconds: f64,
    /// `2·nnz·d / seconds / 1e9`.
    pub gflops: f64,
}

/// Benchmarks one graph propagation step ([`crate::spmm::spmm`]) over a random bipartite
/// graph of `users + items` nodes in which each user has `per_user` items (uniform,
/// seeded; the symmetric adjacency a LightGCN layer multiplies by), at width `d`.
pub fn bench_spmm(
    users: usize,
    items: usize,
    per_user: usize,
    d: usize,
    reps: usize,
    seed: u64,
) -> Result<SpmmBench, KernelError> {
    if users == 0 || items == 0 || per_user == 0 || d == 0 {
        return Err(KernelError::Shape(format!(
            "bench_spmm: users, items, per_user and dim must be > 0, got {users}, {items}, \
             {per_user}, {d}"
        )));
    }
    let n = users + items;
    if u32::try_from(n).is_err() {
        return Err(KernelError::Shape(format!(
            "bench_spmm: {n} nodes do not fit u32 ids"
        )));
    }
    let mut rng = SplitMix(seed);
    let mut triplets = Vec::with_capacity(2 * users * per_user);
    for u in 0..users {
        for _ in 0..per_user {
            let i = users + (rng.next_u64() % items as u64) as usize;
            let v = rng.symmetric(1.0) as f32;
            triplets.push((u as u32, i as u32, v));
            triplets.push((i as u32, u as u32, v));
        }
    }
    let a = crate::CsrMatrix::from_triplets(n, n, &triplets);
    let x: Vec<f32> = (0..n * d).map(|_| rng.symmetric(1.0) as f32).collect();
    let mut out = vec![0f32; n * d];
    let view = a.view();
    let best = best_of(reps.max(1), || {
        crate::spmm::spmm(&view, &x, d, &mut out, 0.0)
    })?;
    let nnz = a.values.len();
    let seconds = best.as_secs_f64();
    Ok(SpmmBench {
        nnz,
        seconds,
        gflops: 2.0 * nnz as f64 * d as f64 / seconds / 1e9,
    })
}

/// Best wall time of `reps` calls after one untimed warm-up call (which also page-faults
/// the buffers and grows the per-thread scratch).
fn best_of(
    reps: usize,
    mut f: impl FnMut() -> Result<(), KernelError>,
) -> Result<Duration, KernelError> {
    f()?;
    let mut best = Duration::MAX;
    for _ in 0..reps {
        let start = Instant::now();
        f()?;
        best = best.min(start.elapsed());
    }
    Ok(best)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spmm_bench_runs_and_refuses_empty_shapes() {
        let r = bench_spmm(30, 20, 3, 8, 1, 5).expect("valid shapes");
        // Duplicate pairs are merged, so at most both directions of 90 pairs.
        assert!(r.nnz > 0 && r.nnz <= 180, "{}", r.nnz);
        assert!(r.seconds > 0.0 && r.gflops.is_finite());
        let e = bench_spmm(30, 20, 0, 8, 1, 5).unwrap_err().to_string();
        assert!(e.contains("per_user"), "{e}");
    }

    #[test]
    fn bench_runs_on_a_small_shape() {
        let r = bench_sdr(37, 101, 8, 1, 3).expect("valid shapes");
        assert!(r.kernel_seconds > 0.0 && r.matmul_seconds > 0.0);
        assert_eq!(r.flops, 2.0 * 37.0 * 101.0 * (8.0 * 2.0 + 16.0));
        assert!(r.kernel_gflops.is_finite() && r.matmul_gflops.is_finite());
    }
}
