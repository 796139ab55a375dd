//! Proposing trials: every point of a grid in order, uniform random draws, or TPE (the
//! `tpe` crate: one Parzen estimator per key, a histogram for choices, as hyperopt and
//! Optuna's default sampler). Every proposal draws from its own generator, seeded by the
//! study's seed and the trial's index, so a study repeats whatever ran before it.

use anyhow::{anyhow, Result};
use rand_tpe::{RngExt, SeedableRng};

use super::spec::{Dist, SamplerKind, Study};

type Rng = rand_tpe::rngs::Xoshiro256PlusPlus;

/// One trial's values, in the order of the study's space.
#[derive(Debug, Clone, PartialEq)]
pub struct Point(pub Vec<toml::Value>);

/// A finished (or stopped) trial as the sampler sees it: its point and its value.
#[derive(Debug, Clone)]
pub struct Told {
    pub point: Point,
    pub value: f64,
}

/// The choice lists of a grid study, in key order.
fn grid_axes(study: &Study) -> Vec<&[toml::Value]> {
    (study.space.iter())
        .filter_map(|(_, d)| match d {
            Dist::Choice(v) => Some(v.as_slice()),
            _ => None, // refused at load time
        })
        .collect()
}

/// How many points the grid runs: the product of the choice counts (saturating), cut to
/// `trials` when set.
fn grid_len(study: &Study) -> usize {
    let all = (grid_axes(study).iter()).fold(1usize, |n, v| n.saturating_mul(v.len()));
    if study.trials > 0 {
        all.min(study.trials)
    } else {
        all
    }
}

/// Point `i` of the grid (the last key varies fastest), without building the others.
fn grid_point(study: &Study, i: usize) -> Option<Point> {
    if i >= grid_len(study) {
        return None;
    }
    let axes = grid_axes(study);
    let mut rest = i;
    let mut values = vec![toml::Value::Boolean(false); axes.len()];
    for (slot, v) in values.iter_mut().zip(&axes).rev() {
        *slot = v[rest % v.len()].clone();
        rest /= v.len();
    }
    Some(Point(values))
}

/// Every point of the grid, in order.
pub fn grid(study: &Study) -> Vec<Point> {
    (0..grid_len(study))
        .filter_map(|i| grid_point(study, i))
        .collect()
}

/// How many trials the study runs.
pub fn n_trials(study: &Study) -> usize {
    match study.sampler {
        SamplerKind::Grid => grid_len(study),
        _ => study.trials,
    }
}

fn rng_of(study: &Study, trial: usize, attempt: usize) -> Rng {
    let mix = (study.seed ^ 0x7475_6e65).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let stream = (attempt as u64).wrapping_mul(0xD1B5_4A32_D192_ED03);
    Rng::seed_from_u64(mix.wrapping_add(trial as u64) ^ stream)
}

/// Draws before a point that repeats an earlier trial is accepted anyway.
const REDRAWS: usize = 32;

/// The point of trial `trial`, given the trials told so far (those of earlier batches).
/// A random or TPE point that repeats a told trial (likely when every key is a choice) is
/// drawn again from the next stream, up to [`REDRAWS`] times, then from uniform draws (a
/// peaked estimator may know only its best point): a repeat would spend a trial on a known
/// value. Only when every draw repeats is a repeat run.
pub fn propose(study: &Study, trial: usize, told: &[Told]) -> Result<Point> {
    if study.sampler == SamplerKind::Grid {
        return grid_point(study, trial).ok_or_else(|| anyhow!("trial {trial} is past the grid"));
    }
    let model = study.sampler == SamplerKind::Tpe && told.len() >= study.startup.max(1);
    let fresh = |p: &Point| !told.iter().any(|t| t.point == *p);
    let mut first = None;
    for attempt in 0..2 * REDRAWS {
        let mut rng = rng_of(study, trial, attempt);
        let p = if model && attempt < REDRAWS {
            tpe_point(study, told, &mut rng)?
        } else {
            random_point(study, &mut rng)
        };
        if fresh(&p) {
            return Ok(p);
        }
        first.get_or_insert(p);
    }
    Ok(first.expect("REDRAWS > 0"))
}

fn random_point(study: &Study, rng: &mut Rng) -> Point {
    Point(
        study
            .space
            .iter()
            .map(|(_, d)| match d {
                Dist::Choice(v) => v[rng.random_range(0..v.len())].clone(),
                Dist::Uniform([lo, hi]) => toml::Value::Float(rng.random_range(*lo..=*hi)),
                Dist::LogUniform([lo, hi]) => {
                    toml::Value::Float(rng.random_range(lo.ln()..=hi.ln()).exp())
                }
                Dist::IntUniform([lo, hi]) => toml::Value::Integer(rng.random_range(*lo..=*hi)),
            })
            .collect(),
    )
}

/// The estimator's coordinate of a value: the value, its logarithm, an integer's cell
/// centre or a choice's index.
fn coordinate(d: &Dist, v: &toml::Value) -> f64 {
    match (d, v) {
        (Dist::Choice(vs), v) => vs.iter().position(|x| x == v).unwrap_or(0) as f64,
        (Dist::LogUniform(_), v) => v.as_float().unwrap_or(f64::NAN).ln(),
        (Dist::IntUniform(_), v) => v.as_integer().unwrap_or(0) as f64 + 0.5,
        (Dist::Uniform(_), v) => v.as_float().unwrap_or(f64::NAN),
    }
}

fn value_at(d: &Dist, x: f64) -> toml::Value {
    match d {
        Dist::Choice(vs) => vs[(x.max(0.0) as usize).min(vs.len() - 1)].clone(),
        Dist::LogUniform([lo, hi]) => toml::Value::Float(x.exp().clamp(*lo, *hi)),
        Dist::IntUniform([lo, hi]) => toml::Value::Integer((x.floor() as i64).clamp(*lo, *hi)),
        Dist::Uniform([lo, hi]) => toml::Value::Float(x.clamp(*lo, *hi)),
    }
}

fn optimizer(d: &Dist) -> Result<tpe::TpeOptimizer> {
    // tpe's ranges are half-open, [start, end): the upper end itself must stay tellable.
    let range = |a: f64, b: f64| tpe::range(a, b.next_up()).map_err(|e| anyhow!("{e}"));
    Ok(match d {
        Dist::Choice(vs) => tpe::TpeOptimizer::new(
            tpe::histogram_estimator(),
            tpe::categorical_range(vs.len()).map_err(|e| anyhow!("{e}"))?,
        ),
        Dist::Uniform([lo, hi]) => {
            tpe::TpeOptimizer::new(tpe::parzen_estimator(), range(*lo, *hi)?)
        }
        Dist::LogUniform([lo, hi]) => {
            tpe::TpeOptimizer::new(tpe::parzen_estimator(), range(lo.ln(), hi.ln())?)
        }
        // Integer k is the cell [k, k + 1): the range ends where the last cell does.
        Dist::IntUniform([lo, hi]) => tpe::TpeOptimizer::new(
            tpe::parzen_estimator(),
            tpe::range(*lo as f64, *hi as f64 + 1.0).map_err(|e| anyhow!("{e}"))?,
        ),
    })
}

fn tpe_point(study: &Study, told: &[Told], rng: &mut Rng) -> Result<Point> {
    let mut out = Vec::with_capacity(study.space.len());
    for (k, (key, dist)) in study.space.iter().enumerate() {
        let mut opt = optimizer(dist)?;
        for t in told {
            let x = coordinate(dist, &t.point.0[k]);
            // TPE minimises; the study maximises its validation metric.
            opt.tell(x, -t.value)
                .map_err(|e| anyhow!("space.\"{key}\": trial value {x}: {e}"))?;
        }
        let x = opt
            .ask(rng)
            .map_err(|e| anyhow!("space.\"{key}\": the TPE estimator: {e}"))?;
        out.push(value_at(dist, x));
    }
    Ok(Point(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn study(sampler: SamplerKind, space: Vec<(&str, Dist)>, trials: usize) -> Study {
        Study {
            path: PathBuf::from("t.toml"),
            title: "t".into(),
            files: Vec::new(),
            sets: Vec::new(),
            metric: "recall@20".into(),
            sampler,
            trials,
            seeds: vec![1],
            final_seeds: Vec::new(),
            seed: 7,
            startup: 5,
            batch: 1,
            prune: None,
            space: space.into_iter().map(|(k, d)| (k.to_owned(), d)).collect(),
            slurm: Default::default(),
        }
    }

    fn ints(v: &[i64]) -> Vec<toml::Value> {
        v.iter().map(|&x| toml::Value::Integer(x)).collect()
    }

    #[test]
    fn the_grid_varies_the_last_key_fastest_and_is_cut_to_trials() {
        let space = vec![
            ("a", Dist::Choice(ints(&[1, 2]))),
            ("b", Dist::Choice(ints(&[3, 4, 5]))),
        ];
        let all = grid(&study(SamplerKind::Grid, space.clone(), 0));
        let want: Vec<Point> = [[1, 3], [1, 4], [1, 5], [2, 3], [2, 4], [2, 5]]
            .iter()
            .map(|p| Point(ints(p)))
            .collect();
        assert_eq!(all, want);
        assert_eq!(grid(&study(SamplerKind::Grid, space, 4)), want[..4]);
    }

    #[test]
    fn random_points_are_in_range_and_depend_on_the_trial_alone() {
        let space = vec![
            ("c", Dist::Choice(ints(&[1, 2, 3]))),
            ("i", Dist::IntUniform([-2, 2])),
            ("l", Dist::LogUniform([1e-4, 1e-1])),
            ("u", Dist::Uniform([0.5, 0.75])),
        ];
        let s = study(SamplerKind::Random, space, 50);
        let mut seen_ints = std::collections::BTreeSet::new();
        for t in 0..50 {
            let p = propose(&s, t, &[]).unwrap();
            assert_eq!(p, propose(&s, t, &[]).unwrap(), "trial {t} must repeat");
            let c = p.0[0].as_integer().unwrap();
            let i = p.0[1].as_integer().unwrap();
            let l = p.0[2].as_float().unwrap();
            let u = p.0[3].as_float().unwrap();
            assert!((1..=3).contains(&c) && (-2..=2).contains(&i), "{p:?}");
            assert!(
                (1e-4..=1e-1).contains(&l) && (0.5..=0.75).contains(&u),
                "{p:?}"
            );
            seen_ints.insert(i);
        }
        // Both ends of an integer range are drawn.
        assert_eq!(seen_ints.len(), 5);
        assert_ne!(propose(&s, 0, &[]).unwrap(), propose(&s, 1, &[]).unwrap());
    }

    #[test]
    fn a_point_already_told_is_drawn_again() {
        let space = vec![("c", Dist::Choice(ints(&[1, 2])))];
        let s = study(SamplerKind::Random, space, 2);
        let first = propose(&s, 1, &[]).unwrap();
        let told = [Told {
            point: first.clone(),
            value: 0.5,
        }];
        let second = propose(&s, 1, &told).unwrap();
        assert_ne!(first, second, "the other value of the choice");
        // With every point told, a repeat is accepted rather than looping.
        let all = [
            told[0].clone(),
            Told {
                point: second,
                value: 0.4,
            },
        ];
        assert!(propose(&s, 1, &all).is_ok());
    }

    /// Points on a range's upper end (uniform draws include it) can be told to TPE.
    #[test]
    fn the_upper_ends_of_ranges_are_tellable() {
        let space = vec![
            ("l", Dist::LogUniform([1e-3, 1.0])),
            ("u", Dist::Uniform([0.0, 1.0])),
            ("i", Dist::IntUniform([1, 3])),
        ];
        let s = study(SamplerKind::Tpe, space, 10);
        let ends = |l: f64, u: f64, i: i64| Told {
            point: Point(vec![l.into(), u.into(), i.into()]),
            value: 0.1,
        };
        let told = vec![
            ends(1.0, 1.0, 3),
            ends(1e-3, 0.0, 1),
            ends(0.5, 0.5, 2),
            ends(1.0, 0.0, 3),
            ends(0.01, 1.0, 1),
        ];
        let p = propose(&s, 5, &told).unwrap();
        assert_eq!(p.0.len(), 3);
    }

    #[test]
    fn coordinates_map_back_to_their_values() {
        let cases = [
            (
                Dist::Choice(vec!["a".into(), "b".into()]),
                toml::Value::from("b"),
            ),
            (Dist::IntUniform([1, 4]), toml::Value::Integer(4)),
            (Dist::LogUniform([1e-3, 1.0]), toml::Value::Float(0.02)),
            (Dist::Uniform([0.0, 1.0]), toml::Value::Float(0.25)),
        ];
        for (d, v) in cases {
            let back = value_at(&d, coordinate(&d, &v));
            match (&back, &v) {
                (toml::Value::Float(a), toml::Value::Float(b)) => assert!((a - b).abs() < 1e-12),
                _ => assert_eq!(back, v),
            }
        }
    }

    /// On a smooth objective TPE's proposals after the random start land nearer the optimum
    /// than random draws do, and a categorical key settles on its best value.
    #[test]
    fn tpe_concentrates_on_the_optimum() {
        let space = vec![
            ("k", Dist::Choice(ints(&[0, 1, 2]))),
            ("x", Dist::Uniform([-5.0, 5.0])),
        ];
        let objective = |p: &Point| {
            let k = p.0[0].as_integer().unwrap() as f64;
            let x = p.0[1].as_float().unwrap();
            -(x - 2.0).powi(2) - (k - 1.0).abs()
        };
        let run = |sampler| {
            let s = study(sampler, space.clone(), 60);
            let mut told: Vec<Told> = Vec::new();
            for t in 0..60 {
                let point = propose(&s, t, &told).unwrap();
                let value = objective(&point);
                told.push(Told { point, value });
            }
            told
        };
        let late_error = |told: &[Told]| {
            told[30..]
                .iter()
                .map(|t| (t.point.0[1].as_float().unwrap() - 2.0).abs())
                .sum::<f64>()
                / 30.0
        };
        let (tpe, random) = (run(SamplerKind::Tpe), run(SamplerKind::Random));
        assert!(
            late_error(&tpe) < 0.5 * late_error(&random),
            "TPE {} vs random {}",
            late_error(&tpe),
            late_error(&random)
        );
        let best_k = tpe[30..]
            .iter()
            .filter(|t| t.point.0[0].as_integer() == Some(1))
            .count();
        assert!(best_k > 20, "k = 1 in {best_k} of the last 30 TPE trials");
    }
}
