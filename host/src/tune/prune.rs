//! The median rule: a running trial stops at the first evaluation epoch (at or after the
//! warm-up) where its best validation value so far is below the median of the earlier
//! trials' best values so far at that epoch, among the runs of the same seed, once at least
//! `min_trials` of them reached it. Earlier trials are those of earlier batches, all
//! finished, so the decision depends on the rows of `epochs.csv` alone.

use std::collections::BTreeMap;
use std::path::Path;

use crate::compare::report::read_curve;
use crate::compare::runner::Watch;
use crate::compare::Cell;

use super::spec::Prune;

/// Best-so-far value at each evaluation epoch.
pub type Curve = Vec<(usize, f64)>;

/// A validation curve as best-so-far values, cut after `until` (a stopped run's rows past
/// its stopping epoch are not part of its record).
pub fn best_so_far(raw: &[(f64, f64)], until: Option<usize>) -> Curve {
    let mut best = f64::NEG_INFINITY;
    raw.iter()
        .map(|&(e, v)| (e as usize, v))
        .take_while(|&(e, _)| until.is_none_or(|u| e <= u))
        .filter(|(_, v)| v.is_finite())
        .map(|(e, v)| {
            best = best.max(v);
            (e, best)
        })
        .collect()
}

/// The curve of a cell folder's `epochs.csv` for `column`.
pub fn curve_of(dir: &Path, column: &str, until: Option<usize>) -> Curve {
    let raw = read_curve(&dir.join("epochs.csv"), column).unwrap_or_default();
    best_so_far(&raw, until)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The first epoch at which `curve` is pruned against `earlier`, if any.
pub fn prune_epoch(rule: Prune, curve: &Curve, earlier: &[Curve]) -> Option<usize> {
    let at: Vec<BTreeMap<usize, f64>> = earlier
        .iter()
        .map(|c| c.iter().copied().collect())
        .collect();
    curve.iter().find_map(|&(e, best)| {
        if e < rule.warmup {
            return None;
        }
        let others: Vec<f64> = at.iter().filter_map(|m| m.get(&e).copied()).collect();
        (others.len() >= rule.min_trials && best < median(others)).then_some(e)
    })
}

/// The pruner of one batch: the curves of every earlier trial, by seed.
pub struct MedianPruner {
    pub rule: Prune,
    /// `valid_<metric>`, the `epochs.csv` column.
    pub column: String,
    pub earlier: BTreeMap<u64, Vec<Curve>>,
}

impl Watch for MedianPruner {
    fn stop_at(&self, cell: &Cell, dir: &Path) -> Option<usize> {
        let earlier = self.earlier.get(&cell.seed)?;
        prune_epoch(self.rule, &curve_of(dir, &self.column, None), earlier)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: Prune = Prune {
        warmup: 6,
        min_trials: 2,
    };

    #[test]
    fn best_so_far_is_a_running_max_cut_at_the_stop() {
        let raw = [(3.0, 0.2), (6.0, 0.1), (9.0, 0.4), (12.0, 0.3)];
        assert_eq!(
            best_so_far(&raw, None),
            vec![(3, 0.2), (6, 0.2), (9, 0.4), (12, 0.4)]
        );
        assert_eq!(best_so_far(&raw, Some(6)), vec![(3, 0.2), (6, 0.2)]);
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
    }

    #[test]
    fn a_trial_below_the_median_after_warmup_is_pruned_at_that_epoch() {
        let earlier = vec![
            vec![(3, 0.5), (6, 0.5), (9, 0.6)],
            vec![(3, 0.4), (6, 0.45), (9, 0.5)],
            vec![(3, 0.3), (6, 0.35)], // stopped at 6
        ];
        // Epoch 3 is in the warm-up; at 6 the median is 0.45 and 0.40 is below it.
        let low = vec![(3, 0.1), (6, 0.40), (9, 0.7)];
        assert_eq!(prune_epoch(RULE, &low, &earlier), Some(6));
        // At the median is not below it; at 9 only two earlier trials remain, median 0.55.
        let level = vec![(3, 0.1), (6, 0.45), (9, 0.56)];
        assert_eq!(prune_epoch(RULE, &level, &earlier), None);
        let late = vec![(3, 0.1), (6, 0.45), (9, 0.54)];
        assert_eq!(prune_epoch(RULE, &late, &earlier), Some(9));
        // Too few earlier trials reached the epoch: nothing to compare with.
        let strict = Prune {
            warmup: 6,
            min_trials: 4,
        };
        assert_eq!(prune_epoch(strict, &low, &earlier), None);
    }
}
