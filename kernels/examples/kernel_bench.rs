//! Throughput of the CPU kernels at the sizes promax trains at (Amazon-like: 11,000 users,
//! 9,332 items, 120k interactions, 32-dim embeddings).
//!
//! ```text
//! cargo run --release -p promax-kernels --example kernel_bench
//! ```
//! Append `gemm`, `graph`, `topk`, `sdr` or `info_nce` to run one section only. Each timing is the best and the median of several runs after one warm-up run. On a shared
//! machine, trust the best more than the median.

use std::time::{Duration, Instant};

use promax_kernels::{
    dense::gemm,
    graph,
    infonce::info_nce,
    softmax::{soft_ce_all_items, softmax_stats},
    spmm::spmm,
    topk::score_topk,
    CsrMatrix,
};
use promax_plugin_api::{
    GemmSpec, InfoNceRequest, SoftCeRequest, SoftmaxStatsRequest, TopkRequest,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const USERS: usize = 11_000;
const ITEMS: usize = 9_332;
const PAIRS: usize = 120_000;
const DIM: usize = 32;
const K: usize = 20;

/// Wall time (best and median of `reps` runs, after one warm-up run) and the process CPU time
/// per run. Other people's builds share this machine: CPU time per run is the steadier figure,
/// and on an idle machine wall time ≈ CPU time / threads for the parallel kernels.
struct Timing {
    best: Duration,
    median: Duration,
    cpu: Option<Duration>,
}

fn time(reps: usize, mut f: impl FnMut()) -> Timing {
    f();
    let cpu_before = process_cpu_time();
    let mut t: Vec<Duration> = (0..reps)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    let cpu = match (cpu_before, process_cpu_time()) {
        (Some(a), Some(b)) => Some((b - a) / reps as u32),
        _ => None,
    };
    t.sort();
    Timing {
        best: t[0],
        median: t[reps / 2],
        cpu,
    }
}

/// User + system CPU time of this process so far, from /proc (Linux; 10 ms resolution).
fn process_cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is parenthesised and may contain spaces.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}

impl std::fmt::Display for Timing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "best {:8.3} ms, median {:8.3} ms",
            ms(self.best),
            ms(self.median)
        )?;
        if let Some(cpu) = self.cpu {
            write!(f, ", CPU {:8.1} ms/run", ms(cpu))?;
        }
        Ok(())
    }
}

fn random(rng: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn bench_gemm(label: &str, spec: GemmSpec, a: &[f32], b: &[f32], c: &mut [f32], reps: usize) {
    let flops = 2.0 * (spec.m * spec.n * spec.k) as f64;
    let t = time(reps, || {
        if let Err(e) = gemm(spec, a, b, c) {
            panic!("{label}: {e}");
        }
    });
    println!(
        "gemm {label:<40} {t}  => {:5.1} GFLOP/s (best), {:5.1} (median)",
        flops / t.best.as_secs_f64() / 1e9,
        flops / t.median.as_secs_f64() / 1e9,
    );
}

fn all_gemms(rng: &mut ChaCha8Rng) {
    let a = random(rng, 4096 * DIM);
    let b = random(rng, DIM * ITEMS);
    let mut c = vec![0f32; 4096 * ITEMS];
    let spec = |m, trans_b| GemmSpec {
        m,
        n: ITEMS,
        k: DIM,
        trans_a: false,
        trans_b,
        alpha: 1.0,
        beta: 0.0,
    };
    bench_gemm("4096×32 · 32×9332", spec(4096, false), &a, &b, &mut c, 7);
    bench_gemm("4096×32 · (9332×32)ᵀ", spec(4096, true), &a, &b, &mut c, 7);
    let q = random(rng, USERS * DIM);
    let mut c = vec![0f32; USERS * ITEMS];
    bench_gemm(
        "11000×32 · (9332×32)ᵀ (topk shape)",
        spec(USERS, true),
        &q,
        &b,
        &mut c,
        5,
    );
}

fn main() {
    let only = std::env::args().nth(1);
    let run = |section: &str| only.as_deref().is_none_or(|o| o == section);
    println!(
        "rayon threads: {} (RAYON_NUM_THREADS changes it)",
        rayon::current_num_threads()
    );
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    if run("gemm") {
        all_gemms(&mut rng);
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .expect("a one-thread pool");
        println!("-- the same on one thread:");
        one.install(|| all_gemms(&mut rng));
    }
    let pairs: Vec<(u32, u32)> = (0..PAIRS)
        .map(|_| {
            (
                rng.gen_range(0..USERS as u32),
                rng.gen_range(0..ITEMS as u32),
            )
        })
        .collect();
    if run("graph") {
        graph_kernels(&mut rng, &pairs);
    }
    if run("topk") {
        topk(&mut rng, &pairs);
    }
    if run("sdr") {
        sdr(&mut rng);
    }
    if run("info_nce") {
        info_nce_bench(&mut rng);
    }
}

/// ProMax's SDR kernel at a batch's worth of unique users (forward + backward): first
/// `bench::bench_sdr` (the kernel next to a dense matmul of the same B × N × d timed in the
/// same run, wall time), then the kernel alone with its CPU time per call.
fn sdr(rng: &mut ChaCha8Rng) {
    const B: usize = 3000;
    match promax_kernels::bench::bench_sdr(B, ITEMS, DIM, 5, 7) {
        Ok(r) => println!(
            "bench_sdr {B}×{ITEMS}×{DIM}: kernel best {:7.2} ms => {:5.1} GFLOP/s \
             ({:.2} GFLOP credited); matmul best {:6.2} ms => {:5.1} GFLOP/s; ratio {:.2}",
            r.kernel_seconds * 1e3,
            r.kernel_gflops,
            r.flops / 1e9,
            r.matmul_seconds * 1e3,
            r.matmul_gflops,
            r.kernel_gflops / r.matmul_gflops
        ),
        Err(e) => panic!("bench_sdr: {e}"),
    }
    let unit = |mut x: Vec<f32>| {
        for r in x.chunks_exact_mut(DIM) {
            let n = r.iter().map(|v| v * v).sum::<f32>().sqrt();
            r.iter_mut().for_each(|v| *v /= n);
        }
        x
    };
    let users = random(rng, B * DIM);
    let items = random(rng, ITEMS * DIM);
    let tu = unit(random(rng, B * DIM));
    let ti = unit(random(rng, ITEMS * DIM));
    let (mut lse, mut entropy) = (vec![0f32; B], vec![0f32; B]);
    let stats = SoftmaxStatsRequest {
        queries: tu.as_slice().into(),
        keys: ti.as_slice().into(),
        dim: DIM,
        tau: 0.2,
    };
    let t = time(5, || {
        if let Err(e) = softmax_stats(&stats, &mut lse, &mut entropy) {
            panic!("softmax_stats: {e}");
        }
    });
    println!("softmax_stats {B}×{ITEMS}×{DIM}:              {t}");
    let weights = vec![1.0 / B as f32; B];
    let req = SoftCeRequest {
        users: users.as_slice().into(),
        items: items.as_slice().into(),
        dim: DIM,
        target_users: tu.as_slice().into(),
        target_items: ti.as_slice().into(),
        target_dim: DIM,
        target_lse: lse.as_slice().into(),
        weights: weights.as_slice().into(),
        tau: 0.2,
        target_tau: 0.2,
    };
    let (mut du, mut di) = (vec![0f32; B * DIM], vec![0f32; ITEMS * DIM]);
    let t = time(7, || {
        if let Err(e) = soft_ce_all_items(&req, &mut du, &mut di) {
            panic!("soft_ce_all_items: {e}");
        }
    });
    println!("soft_ce_all_items {B}×{ITEMS}×{DIM} (fwd+bwd): {t}");
}

/// InfoNCE (forward + backward) at S2DR's shapes (users × users, the 4096-pair cross term)
/// and SimGCL's (batch users against all 11,000 users).
fn info_nce_bench(rng: &mut ChaCha8Rng) {
    for (n, m) in [(3000, 3000), (4096, 4096), (3000, USERS)] {
        let a = random(rng, n * DIM);
        let b = random(rng, m * DIM);
        let (mut da, mut db) = (vec![0f32; n * DIM], vec![0f32; m * DIM]);
        let req = InfoNceRequest {
            a: a.as_slice().into(),
            b: b.as_slice().into(),
            dim: DIM,
            tau: 0.2,
            eps: 1e-5,
            weight: 1.0,
        };
        let t = time(7, || {
            if let Err(e) = info_nce(&req, &mut da, &mut db) {
                panic!("info_nce: {e}");
            }
        });
        // Credited: the logits and the two gradient products.
        let flops = 6.0 * (n * m * DIM) as f64;
        println!(
            "info_nce {n}×{m}×{DIM} (fwd+bwd):          {t}  => {:.1} GFLOP/s (best)",
            flops / t.best.as_secs_f64() / 1e9
        );
    }
}

fn graph_kernels(rng: &mut ChaCha8Rng, pairs: &[(u32, u32)]) {
    let t = time(3, || {
        graph::bipartite_adjacency(USERS, ITEMS, pairs, false);
    });
    let adj = graph::bipartite_adjacency(USERS, ITEMS, pairs, false);
    println!(
        "bipartite_adjacency, {} nodes, {} nnz:        {t}",
        adj.n_rows,
        adj.nnz()
    );
    let mut drop = graph::EdgeDropout::new();
    let mut seed = 0;
    let t = time(10, || {
        seed += 1;
        drop.apply(&adj, 0.8, seed);
    });
    println!("EdgeDropout::apply, keep 0.8, with transpose: {t}");

    let n = USERS + ITEMS;
    let x = random(rng, n * DIM);
    let mut out = vec![0f32; n * DIM];
    let view = adj.view();
    let t = time(50, || {
        if let Err(e) = spmm(&view, &x, DIM, &mut out, 0.0) {
            panic!("spmm: {e}");
        }
    });
    println!(
        "spmm {n} rows, {} nnz × {DIM} cols:          {t}  => {:.1} GFLOP/s (best)",
        adj.nnz(),
        2.0 * (adj.nnz() * DIM) as f64 / t.best.as_secs_f64() / 1e9
    );
}

fn topk(rng: &mut ChaCha8Rng, pairs: &[(u32, u32)]) {
    let queries = random(rng, USERS * DIM);
    let items = random(rng, ITEMS * DIM);
    let train = CsrMatrix::from_triplets(
        USERS,
        ITEMS,
        &pairs.iter().map(|&(u, i)| (u, i, 1.0)).collect::<Vec<_>>(),
    );
    let req = TopkRequest {
        queries: queries.as_slice().into(),
        items: items.as_slice().into(),
        dim: DIM,
        exclude: train.view(),
        k: K,
    };
    let (mut ids, mut scores) = (vec![0u32; USERS * K], vec![0f32; USERS * K]);
    let t = time(7, || {
        if let Err(e) = score_topk(&req, &mut ids, &mut scores) {
            panic!("score_topk: {e}");
        }
    });
    println!(
        "score_topk {USERS}×{ITEMS}×{DIM}, k={K}, {} excluded: {t}  => {:.1} GFLOP/s of scoring (best)",
        train.nnz(),
        2.0 * (USERS * ITEMS * DIM) as f64 / t.best.as_secs_f64() / 1e9
    );
}
