//! The fast kernels against the naive ones: every method of [`CpuKernels`] against
//! plugin-api's [`ReferenceKernels`] on random cases, and the host's graph builder against
//! the reference one, through the ABI objects plugins receive.

use promax_kernels::graph::{bipartite_adjacency, EdgeDropout};
use promax_kernels::{CpuKernels, CsrMatrix};
use promax_plugin_api::testing::{self, ReferenceKernels, SplitMix};
use promax_plugin_api::{
    GemmSpec, InfoNceRequest, KernelsRef, PairedNceRequest, ReduceRequest, Reduction,
    SoftCeRequest, SoftmaxStatsRequest, TopkRequest,
};

/// The two tables, fast first.
fn tables() -> [KernelsRef<'static>; 2] {
    static CPU: CpuKernels = CpuKernels;
    static REF: ReferenceKernels = ReferenceKernels;
    [CPU.as_ref(), REF.as_ref()]
}

/// `got` equals `want` within `rtol` of `want`'s largest magnitude.
fn assert_close(what: &str, got: &[f32], want: &[f32], rtol: f32) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let scale = want.iter().fold(1e-30f32, |m, v| m.max(v.abs()));
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= rtol * scale, "{what}[{i}]: {g} vs {w}");
    }
}

fn assert_close_f64(what: &str, got: f64, want: f64, rtol: f64) {
    assert!(
        (got - want).abs() <= rtol * want.abs().max(1e-30),
        "{what}: {got} vs {want}"
    );
}

/// A random sparse n_rows × n_cols matrix, about `density` of it stored.
fn random_csr(rng: &mut SplitMix, n_rows: usize, n_cols: usize, density: f64) -> CsrMatrix {
    let mut triplets = Vec::new();
    for r in 0..n_rows as u32 {
        for c in 0..n_cols as u32 {
            if rng.uniform() < density {
                triplets.push((r, c, rng.symmetric(1.0) as f32));
            }
        }
    }
    CsrMatrix::from_triplets(n_rows, n_cols, &triplets)
}

#[test]
fn spmm_matches() {
    let mut rng = SplitMix(1);
    for (n_rows, n_cols, cols, beta) in [(7, 5, 3, 0.0), (20, 31, 8, 1.0), (1, 9, 1, -0.5)] {
        let a = random_csr(&mut rng, n_rows, n_cols, 0.3);
        let x = rng.noise(n_cols * cols);
        let start = rng.noise(n_rows * cols);
        let outs = tables().map(|k| {
            let mut out = start.clone();
            let r = k.spmm(
                a.view(),
                x.as_slice().into(),
                cols,
                out.as_mut_slice().into(),
                beta,
            );
            r.into_result().expect("spmm runs");
            out
        });
        assert_close("spmm", &outs[0], &outs[1], 1e-5);
    }
}

#[test]
fn gemm_matches_in_every_orientation() {
    let mut rng = SplitMix(2);
    for (m, n, k) in [(3, 4, 5), (17, 9, 33), (1, 1, 1)] {
        for (trans_a, trans_b, alpha, beta) in [
            (false, false, 1.0, 0.0),
            (true, false, 0.5, 1.0),
            (false, true, 2.0, -1.0),
            (true, true, 1.0, 0.25),
        ] {
            let spec = GemmSpec {
                m,
                n,
                k,
                trans_a,
                trans_b,
                alpha,
                beta,
            };
            let (a, b, start) = (rng.noise(m * k), rng.noise(k * n), rng.noise(m * n));
            let outs = tables().map(|t| {
                let mut c = start.clone();
                let r = t.gemm(
                    spec,
                    a.as_slice().into(),
                    b.as_slice().into(),
                    c.as_mut_slice().into(),
                );
                r.into_result().expect("gemm runs");
                c
            });
            assert_close(&format!("gemm {spec:?}"), &outs[0], &outs[1], 1e-5);
        }
    }
}

#[test]
fn score_topk_matches_exactly_on_integer_scores() {
    // Small integers: every score is exact in f32, so ties (broken by the lower id) and the
    // ranking are the same bits in both tables.
    let mut rng = SplitMix(3);
    let mut ints =
        |n: usize| -> Vec<f32> { (0..n).map(|_| (rng.next_u64() % 5) as f32 - 2.0).collect() };
    let (rows, n, dim) = (9, 40, 3);
    let (queries, items) = (ints(rows * dim), ints(n * dim));
    let exclude = CsrMatrix::from_triplets(rows, n, &[(0, 3, 1.0), (0, 7, 1.0), (4, 0, 1.0)]);
    let none = CsrMatrix::default();
    for (ex, k) in [(&exclude, 5), (&none, 12), (&exclude, n + 2)] {
        let req = TopkRequest {
            queries: queries.as_slice().into(),
            items: items.as_slice().into(),
            dim,
            exclude: ex.view(),
            k,
        };
        let outs = tables().map(|t| {
            let (mut ids, mut scores) = (vec![0u32; rows * k], vec![0f32; rows * k]);
            let r = t.score_topk(req, ids.as_mut_slice().into(), scores.as_mut_slice().into());
            r.into_result().expect("score_topk runs");
            (ids, scores)
        });
        assert_eq!(outs[0], outs[1], "k = {k}");
    }
}

#[test]
fn softmax_stats_match() {
    let mut rng = SplitMix(4);
    for (rows, keys, dim, tau) in [(5, 30, 4, 0.2), (1, 1, 1, 1.0), (12, 70, 8, 0.5)] {
        let (q, k) = (rng.noise(rows * dim), rng.noise(keys * dim));
        let req = SoftmaxStatsRequest {
            queries: q.as_slice().into(),
            keys: k.as_slice().into(),
            dim,
            tau,
        };
        let outs = tables().map(|t| {
            let (mut lse, mut h) = (vec![0f32; rows], vec![0f32; rows]);
            let r = t.softmax_stats(req, lse.as_mut_slice().into(), h.as_mut_slice().into());
            r.into_result().expect("softmax_stats runs");
            (lse, h)
        });
        assert_close("lse", &outs[0].0, &outs[1].0, 1e-5);
        assert_close("entropy", &outs[0].1, &outs[1].1, 1e-5);
    }
}

#[test]
fn soft_ce_matches() {
    let mut rng = SplitMix(5);
    let (b, n, dim, tdim, tau, ttau) = (6, 25, 4, 3, 0.2, 0.3);
    let (users, items) = (rng.noise(b * dim), rng.noise(n * dim));
    let mut tu = rng.noise(b * tdim);
    let mut ti = rng.noise(n * tdim);
    promax_plugin_api::sdk::rows::unit_rows(&mut tu, tdim);
    promax_plugin_api::sdk::rows::unit_rows(&mut ti, tdim);
    let (mut lse, mut h) = (vec![0f32; b], vec![0f32; b]);
    let stats = SoftmaxStatsRequest {
        queries: tu.as_slice().into(),
        keys: ti.as_slice().into(),
        dim: tdim,
        tau: ttau,
    };
    let r = ReferenceKernels.as_ref().softmax_stats(
        stats,
        lse.as_mut_slice().into(),
        h.as_mut_slice().into(),
    );
    r.into_result().expect("stats run");
    let weights: Vec<f32> = (0..b).map(|_| rng.uniform() as f32).collect();
    let req = SoftCeRequest {
        users: users.as_slice().into(),
        items: items.as_slice().into(),
        dim,
        target_users: tu.as_slice().into(),
        target_items: ti.as_slice().into(),
        target_dim: tdim,
        target_lse: lse.as_slice().into(),
        weights: weights.as_slice().into(),
        tau,
        target_tau: ttau,
    };
    let outs = tables().map(|t| {
        let (mut du, mut di) = (vec![0.5f32; b * dim], vec![0.5f32; n * dim]);
        let r = t.soft_ce_all_items(req, du.as_mut_slice().into(), di.as_mut_slice().into());
        (r.into_result().expect("soft_ce runs"), du, di)
    });
    assert_close_f64("soft_ce loss", outs[0].0, outs[1].0, 1e-5);
    assert_close("d_users", &outs[0].1, &outs[1].1, 1e-4);
    assert_close("d_items", &outs[0].2, &outs[1].2, 1e-4);
}

#[test]
fn info_nce_matches_with_and_without_the_log_guard() {
    let mut rng = SplitMix(6);
    for (n, m, dim, eps) in [(5, 5, 4, 0.0), (6, 11, 3, 1e-5), (1, 3, 2, 0.1)] {
        let (a, b) = (rng.noise(n * dim), rng.noise(m * dim));
        let req = InfoNceRequest {
            a: a.as_slice().into(),
            b: b.as_slice().into(),
            dim,
            tau: 0.2,
            eps,
            weight: 0.7,
        };
        let outs = tables().map(|t| {
            let (mut da, mut db) = (vec![0f32; n * dim], vec![0f32; m * dim]);
            let r = t.info_nce(req, da.as_mut_slice().into(), db.as_mut_slice().into());
            (r.into_result().expect("info_nce runs"), da, db)
        });
        assert_close_f64("info_nce loss", outs[0].0, outs[1].0, 1e-5);
        assert_close("d_a", &outs[0].1, &outs[1].1, 1e-4);
        assert_close("d_b", &outs[0].2, &outs[1].2, 1e-4);
    }
}

#[test]
fn info_nce_pairs_matches_with_column_counts() {
    let mut rng = SplitMix(7);
    let (n, m, dim) = (4, 7, 3);
    let (a, b) = (rng.noise(n * dim), rng.noise(m * dim));
    let pairs: Vec<u32> = (0..10)
        .flat_map(|_| {
            [
                (rng.next_u64() % n as u64) as u32,
                (rng.next_u64() % m as u64) as u32,
            ]
        })
        .collect();
    let counts: Vec<u32> = (0..m).map(|_| 1 + (rng.next_u64() % 3) as u32).collect();
    for (col_counts, eps) in [(&counts[..], 0.0), (&[][..], 1e-5)] {
        let req = PairedNceRequest {
            a: a.as_slice().into(),
            b: b.as_slice().into(),
            dim,
            col_counts: col_counts.into(),
            pairs: pairs.as_slice().into(),
            tau: 0.5,
            eps,
            weight: 1.3,
        };
        let outs = tables().map(|t| {
            let (mut da, mut db) = (vec![0f32; n * dim], vec![0f32; m * dim]);
            let r = t.info_nce_pairs(req, da.as_mut_slice().into(), db.as_mut_slice().into());
            (r.into_result().expect("info_nce_pairs runs"), da, db)
        });
        assert_close_f64("pairs loss", outs[0].0, outs[1].0, 1e-5);
        assert_close("d_a", &outs[0].1, &outs[1].1, 1e-4);
        assert_close("d_b", &outs[0].2, &outs[1].2, 1e-4);
    }
}

/// Rows with a clear spectrum (column j scaled by D − j, plus a shared direction), so that
/// the kept eigenvectors are unique up to sign, which the convention then fixes.
fn profile_table(rng: &mut SplitMix, n: usize, d: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(n * d);
    for _ in 0..n {
        let z = rng.symmetric(1.0) as f32;
        for j in 0..d {
            out.push(rng.symmetric(1.0) as f32 * (d - j) as f32 + 0.7 * z * (j as f32 + 1.0) + 0.3);
        }
    }
    out
}

#[test]
fn reduce_profiles_matches_in_both_modes() {
    let mut rng = SplitMix(8);
    let (d, dim, nu, ni) = (6, 3, 40, 55);
    let (users, items) = (
        profile_table(&mut rng, nu, d),
        profile_table(&mut rng, ni, d),
    );
    for mode in [Reduction::Separate, Reduction::Joint] {
        for whiten in [false, true] {
            let req = ReduceRequest {
                users: users.as_slice().into(),
                items: items.as_slice().into(),
                in_dim: d,
                dim,
                mode,
                whiten,
            };
            let outs = tables().map(|t| {
                let (mut ou, mut oi) = (vec![0f32; nu * dim], vec![0f32; ni * dim]);
                let r = t.reduce_profiles(req, ou.as_mut_slice().into(), oi.as_mut_slice().into());
                r.into_result().expect("reduce_profiles runs");
                (ou, oi)
            });
            assert_close(&format!("{mode:?} users"), &outs[0].0, &outs[1].0, 1e-4);
            assert_close(&format!("{mode:?} items"), &outs[0].1, &outs[1].1, 1e-4);
        }
    }
    // Both refuse what cannot be reduced.
    let req = ReduceRequest {
        users: users.as_slice().into(),
        items: items.as_slice().into(),
        in_dim: d,
        dim: d + 1,
        mode: Reduction::Separate,
        whiten: false,
    };
    for t in tables() {
        let (mut ou, mut oi) = (vec![0f32; nu * (d + 1)], vec![0f32; ni * (d + 1)]);
        let r = t.reduce_profiles(req, ou.as_mut_slice().into(), oi.as_mut_slice().into());
        assert!(r.into_result().is_err());
    }
}

#[test]
fn graphs_match_the_reference_builder_entry_for_entry() {
    let mut rng = SplitMix(9);
    let (nu, ni) = (13, 17);
    let pairs: Vec<(u32, u32)> = (0..60)
        .map(|_| {
            (
                (rng.next_u64() % nu as u64) as u32,
                (rng.next_u64() % ni as u64) as u32,
            )
        })
        .collect();
    for self_loops in [false, true] {
        let fast = bipartite_adjacency(nu, ni, &pairs, self_loops);
        let naive = testing::bipartite_adjacency(nu, ni, &pairs, self_loops);
        let same = |a: &CsrMatrix, b: &testing::Csr| {
            (a.n_rows, a.n_cols, &a.indptr, &a.indices, &a.values)
                == (b.n_rows, b.n_cols, &b.indptr, &b.indices, &b.values)
        };
        assert!(same(&fast, &naive), "self_loops = {self_loops}");
        let mut dropout = EdgeDropout::new();
        for (keep, seed) in [(0.6, 11), (0.9, 2025), (1.0, 1), (0.0, 1)] {
            let (d, dt) = dropout.apply(&fast, keep, seed);
            let (nd, ndt) = testing::drop_edges(&naive, keep, seed);
            assert!(same(d, &nd) && same(dt, &ndt), "keep {keep}, seed {seed}");
        }
    }
}
