//! The planted-cluster synthetic dataset: users and items in clusters, interactions mostly
//! within a user's cluster and personalised by hidden tastes, and profile embeddings that
//! carry a controllable share of the cluster signal.

use std::collections::HashSet;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::profiles::load_profiles;
use super::{DataConfig, DataError, Dataset, Pairs, Profiles};
use crate::config::SyntheticConfig;

/// The synthetic dataset `cfg.synthetic` describes, named and with profiles as `cfg` says.
pub(super) fn load_synthetic(cfg: &DataConfig) -> Result<Dataset, DataError> {
    let s = &cfg.synthetic;
    for (key, declared, generated) in [
        ("data.n_users", cfg.n_users, s.n_users),
        ("data.n_items", cfg.n_items, s.n_items),
    ] {
        if declared != 0 && declared != generated {
            let reason = format!("is {declared} but the synthetic dataset has {generated} (set data.synthetic.{} instead)", key.trim_start_matches("data."));
            return Err(DataError::Config {
                key: key.into(),
                reason,
            });
        }
    }
    let mut ds = generate(s)?.dataset;
    if !cfg.name.is_empty() {
        ds.name = cfg.name.clone();
    }
    // The generated profiles stay unless [data.profiles] names another source.
    if cfg.profiles.is_set() {
        ds.profiles = load_profiles(cfg, ds.n_users, ds.n_items)?;
    }
    Ok(ds)
}

/// Dimension of the hidden per-user / per-item taste vectors of the synthetic generator;
/// they personalise choices within a cluster so that a model can beat cluster popularity.
const LATENT_DIM: usize = 8;

/// The synthetic dataset and its planted clusters (kept for tests and diagnostics).
struct Synthetic {
    dataset: Dataset,
    #[cfg_attr(not(test), allow(dead_code))]
    user_cluster: Vec<usize>,
    #[cfg_attr(not(test), allow(dead_code))]
    item_cluster: Vec<usize>,
}

fn check_synthetic(s: &SyntheticConfig) -> Result<(), DataError> {
    let bad = |key: &str, reason: String| {
        Err(DataError::Config {
            key: format!("data.synthetic.{key}"),
            reason,
        })
    };
    if s.n_users == 0 {
        return bad("n_users", "is 0; must be at least 1".into());
    }
    if s.n_items < 5 {
        return bad(
            "n_items",
            format!(
                "is {}; must be at least 5 (every user gets at least 5 items)",
                s.n_items
            ),
        );
    }
    if s.n_clusters == 0 || s.n_clusters > s.n_items {
        return bad(
            "n_clusters",
            format!(
                "is {}; must be between 1 and n_items ({})",
                s.n_clusters, s.n_items
            ),
        );
    }
    if s.profile_dim == 0 {
        return bad("profile_dim", "is 0; must be at least 1".into());
    }
    for (key, v) in [
        ("affinity", s.affinity),
        ("profile_signal", s.profile_signal),
    ] {
        if !(0.0..=1.0).contains(&v) {
            return bad(key, format!("is {v}; must be between 0 and 1"));
        }
    }
    Ok(())
}

/// A standard normal draw (Box–Muller); rand 0.8 has no normal distribution without
/// the extra rand_distr crate.
fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = 1.0 - rng.gen::<f64>(); // (0, 1]: ln stays finite
    let u2: f64 = rng.gen();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Assigns `n` members to `k` clusters as evenly as possible, in random order, so that no
/// cluster is empty when `n >= k`.
fn balanced_clusters(n: usize, k: usize, rng: &mut ChaCha8Rng) -> Vec<usize> {
    let mut c: Vec<usize> = (0..n).map(|i| i % k).collect();
    c.shuffle(rng);
    c
}

fn generate(s: &SyntheticConfig) -> Result<Synthetic, DataError> {
    check_synthetic(s)?;
    let mut rng = ChaCha8Rng::seed_from_u64(s.seed);
    let (n_users, n_items, k) = (s.n_users, s.n_items, s.n_clusters);
    let user_cluster = balanced_clusters(n_users, k, &mut rng);
    let item_cluster = balanced_clusters(n_items, k, &mut rng);
    let mut cluster_items: Vec<Vec<u32>> = vec![Vec::new(); k];
    for (i, &c) in item_cluster.iter().enumerate() {
        cluster_items[c].push(i as u32);
    }
    let user_latent: Vec<f64> = (0..n_users * LATENT_DIM)
        .map(|_| normal(&mut rng))
        .collect();
    let item_latent: Vec<f64> = (0..n_items * LATENT_DIM)
        .map(|_| normal(&mut rng))
        .collect();
    let latent_scale = 1.0 / (LATENT_DIM as f64).sqrt();

    let (mut train, mut valid, mut test) = (Vec::new(), Vec::new(), Vec::new());
    for u in 0..n_users {
        // Log-normal spread around the mean (mean-preserving: E[exp(σz - σ²/2)] = 1).
        let factor = (0.5 * normal(&mut rng) - 0.125).exp();
        let n = ((s.mean_interactions as f64 * factor).round() as usize).clamp(5, n_items);
        let own = &cluster_items[user_cluster[u]];
        let n_own = ((s.affinity * n as f64).round() as usize).min(own.len());

        // Own-cluster items, weighted by taste affinity, without replacement
        // (Efraimidis–Spirakis: key = ln(r) / w, keep the largest keys).
        let lu = &user_latent[u * LATENT_DIM..(u + 1) * LATENT_DIM];
        let mut keyed: Vec<(f64, u32)> = own
            .iter()
            .map(|&i| {
                let li = &item_latent[i as usize * LATENT_DIM..(i as usize + 1) * LATENT_DIM];
                let dot: f64 = lu.iter().zip(li).map(|(a, b)| a * b).sum();
                let r: f64 = 1.0 - rng.gen::<f64>();
                (r.ln() / (dot * latent_scale).exp(), i)
            })
            .collect();
        keyed.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let mut items: Vec<u32> = keyed.iter().take(n_own).map(|&(_, i)| i).collect();
        let mut chosen: HashSet<u32> = items.iter().copied().collect();
        // The rest uniformly over all items; n <= n_items, so this terminates.
        while items.len() < n {
            let i = rng.gen_range(0..n_items as u32);
            if chosen.insert(i) {
                items.push(i);
            }
        }

        // 3:1:1 per user, as the published splits: every user has each split.
        items.shuffle(&mut rng);
        let n_held = ((0.2 * n as f64).round() as usize).max(1);
        let u32_user = u as u32;
        let push = |dst: &mut Pairs, part: &[u32]| {
            let mut part = part.to_vec();
            part.sort_unstable();
            dst.extend(part.into_iter().map(|i| (u32_user, i)));
        };
        push(&mut valid, &items[..n_held]);
        push(&mut test, &items[n_held..2 * n_held]);
        push(&mut train, &items[2 * n_held..]);
    }

    // Profiles draw from their own stream, so changing profile_dim or profile_signal
    // leaves the interactions identical (a fair with/without-signal comparison).
    let mut prng = ChaCha8Rng::seed_from_u64(s.seed);
    prng.set_stream(1);
    let dim = s.profile_dim;
    // One centre per cluster, shared by users and items (a common basis, so user–item
    // cosine carries the signal), scaled to squared norm `dim`: per-coordinate variance 1.
    let mut centres: Vec<f64> = (0..k * dim).map(|_| normal(&mut prng)).collect();
    for c in centres.chunks_mut(dim) {
        let norm = c
            .iter()
            .map(|x| x * x)
            .sum::<f64>()
            .sqrt()
            .max(f64::MIN_POSITIVE);
        let scale = (dim as f64).sqrt() / norm;
        c.iter_mut().for_each(|x| *x *= scale);
    }
    let (signal, noise) = (s.profile_signal.sqrt(), (1.0 - s.profile_signal).sqrt());
    let mut embed = |clusters: &[usize]| -> Vec<f32> {
        let mut out = Vec::with_capacity(clusters.len() * dim);
        for &c in clusters {
            for d in 0..dim {
                out.push((signal * centres[c * dim + d] + noise * normal(&mut prng)) as f32);
            }
        }
        out
    };
    let users = embed(&user_cluster);
    let items = embed(&item_cluster);

    Ok(Synthetic {
        dataset: Dataset {
            name: "synthetic".into(),
            dir: None,
            n_users,
            n_items,
            train,
            valid,
            test,
            profiles: Some(Profiles { dim, users, items }),
            ids: None,
        },
        user_cluster,
        item_cluster,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DataKind;
    use crate::data::{load_dataset, stats};

    fn synth_cfg() -> SyntheticConfig {
        SyntheticConfig::default()
    }

    #[test]
    fn synthetic_is_deterministic_per_seed() {
        let a = generate(&synth_cfg()).unwrap().dataset;
        let b = generate(&synth_cfg()).unwrap().dataset;
        assert_eq!(a, b);
        let c = generate(&SyntheticConfig {
            seed: 8,
            ..synth_cfg()
        })
        .unwrap()
        .dataset;
        assert_ne!(a.train, c.train);
        // The profile stream is separate: the signal share does not move interactions.
        let d = generate(&SyntheticConfig {
            profile_signal: 0.0,
            profile_dim: 5,
            ..synth_cfg()
        })
        .unwrap()
        .dataset;
        assert_eq!((&a.train, &a.valid, &a.test), (&d.train, &d.valid, &d.test));
    }

    #[test]
    fn synthetic_split_invariants() {
        let cfg = synth_cfg();
        let ds = load_dataset(&DataConfig {
            kind: DataKind::Synthetic,
            ..DataConfig::default()
        })
        .unwrap();
        assert_eq!(
            (ds.name.as_str(), ds.n_users, ds.n_items),
            ("synthetic", cfg.n_users, cfg.n_items)
        );
        let mut per_user: Vec<[usize; 3]> = vec![[0; 3]; ds.n_users];
        let mut all = HashSet::new();
        for (s, split) in [&ds.train, &ds.valid, &ds.test].into_iter().enumerate() {
            for &(u, i) in split {
                assert!((u as usize) < ds.n_users && (i as usize) < ds.n_items);
                assert!(all.insert((u, i)), "duplicate pair ({u}, {i})");
                per_user[u as usize][s] += 1;
            }
        }
        for [tr, va, te] in &per_user {
            let n = tr + va + te;
            assert!(n >= 5);
            let held = ((0.2 * n as f64).round() as usize).max(1);
            assert_eq!((*va, *te, *tr), (held, held, n - 2 * held));
        }
        let mean = all.len() as f64 / ds.n_users as f64;
        assert!(
            (mean - cfg.mean_interactions as f64).abs() < 4.0,
            "mean interactions {mean}"
        );
        let st = stats(&ds);
        assert_eq!(
            (
                st.users_without_train,
                st.users_without_valid,
                st.users_without_test
            ),
            (0, 0, 0)
        );

        // The share of own-cluster interactions tracks `affinity` (plus the uniform part's
        // chance hits, 1/n_clusters of the rest).
        let syn = generate(&cfg).unwrap();
        let own = [&ds.train, &ds.valid, &ds.test]
            .into_iter()
            .flatten()
            .filter(|&&(u, i)| syn.user_cluster[u as usize] == syn.item_cluster[i as usize])
            .count() as f64
            / all.len() as f64;
        let expect = cfg.affinity + (1.0 - cfg.affinity) / cfg.n_clusters as f64;
        assert!(
            (own - expect).abs() < 0.05,
            "own-cluster share {own}, expected ~{expect}"
        );
    }

    /// Mean cosine of each user's profile to items of its own cluster minus to the others.
    fn cluster_cosine_gap(signal: f64) -> f64 {
        let syn = generate(&SyntheticConfig {
            profile_signal: signal,
            ..synth_cfg()
        })
        .unwrap();
        let p = syn.dataset.profiles.as_ref().unwrap();
        let unit = |v: &[f32]| {
            let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.iter().map(|x| x / n).collect::<Vec<f32>>()
        };
        let users: Vec<Vec<f32>> = p.users.chunks(p.dim).map(unit).collect();
        let items: Vec<Vec<f32>> = p.items.chunks(p.dim).map(unit).collect();
        let (mut own, mut own_n, mut other, mut other_n) = (0.0f64, 0usize, 0.0f64, 0usize);
        for (u, uv) in users.iter().enumerate() {
            for (i, iv) in items.iter().enumerate() {
                let cos: f32 = uv.iter().zip(iv).map(|(a, b)| a * b).sum();
                if syn.user_cluster[u] == syn.item_cluster[i] {
                    own += f64::from(cos);
                    own_n += 1;
                } else {
                    other += f64::from(cos);
                    other_n += 1;
                }
            }
        }
        own / own_n as f64 - other / other_n as f64
    }

    #[test]
    fn synthetic_profiles_carry_the_requested_signal() {
        let strong = cluster_cosine_gap(0.7);
        assert!(strong > 0.5, "gap at signal 0.7: {strong}");
        let none = cluster_cosine_gap(0.0);
        assert!(none.abs() < 0.03, "gap at signal 0: {none}");
        let syn = generate(&synth_cfg()).unwrap();
        let p = syn.dataset.profiles.unwrap();
        assert_eq!((p.users.len(), p.items.len()), (600 * 32, 400 * 32));
    }

    #[test]
    fn synthetic_rejects_bad_settings() {
        for s in [
            SyntheticConfig {
                n_items: 4,
                ..synth_cfg()
            },
            SyntheticConfig {
                n_clusters: 0,
                ..synth_cfg()
            },
            SyntheticConfig {
                n_users: 0,
                ..synth_cfg()
            },
            SyntheticConfig {
                profile_dim: 0,
                ..synth_cfg()
            },
            SyntheticConfig {
                affinity: f64::NAN,
                ..synth_cfg()
            },
        ] {
            let cfg = DataConfig {
                kind: DataKind::Synthetic,
                synthetic: s,
                ..DataConfig::default()
            };
            let err = load_dataset(&cfg).unwrap_err();
            assert!(err.to_string().contains("data.synthetic."), "{err}");
        }
        // Tiny but legal: every user still gets each split.
        let s = SyntheticConfig {
            n_users: 3,
            n_items: 5,
            n_clusters: 5,
            mean_interactions: 0,
            ..synth_cfg()
        };
        let ds = generate(&s).unwrap().dataset;
        assert_eq!((ds.train.len(), ds.valid.len(), ds.test.len()), (9, 3, 3));
        let cfg = DataConfig {
            kind: DataKind::Synthetic,
            n_users: 5,
            ..DataConfig::default()
        };
        assert!(load_dataset(&cfg)
            .unwrap_err()
            .to_string()
            .contains("data.n_users"));
    }
}
