//! `promax augment --evaluate`: how many of an augmented set's ADDED pairs are pairs of the
//! held-out splits. It reads valid and test, so it is an evaluation, never part of
//! building (which reads train only), and its result is kept under its own report key.

use std::collections::HashSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::data::Pairs;

/// The held-out hits of an augmented set's added pairs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// What this is: it reads the held-out splits.
    pub note: String,
    /// Pairs of the augmented set that are not train pairs.
    pub added_pairs: usize,
    /// Of those, pairs of valid.tsv / test.tsv.
    pub in_valid: usize,
    pub in_test: usize,
    /// `in_valid / added_pairs`, `in_test / added_pairs`, and of either (0 without added pairs).
    pub share_valid: f64,
    pub share_test: f64,
    pub share_held_out: f64,
}

/// The evaluation of `augmented` (train ∪ added) against the held-out `valid` and `test`.
pub fn evaluate(train: &Pairs, augmented: &Pairs, valid: &Pairs, test: &Pairs) -> Evaluation {
    let train: HashSet<&(u32, u32)> = train.iter().collect();
    let (valid, test): (HashSet<_>, HashSet<_>) = (valid.iter().collect(), test.iter().collect());
    let added: HashSet<&(u32, u32)> = augmented.iter().filter(|p| !train.contains(p)).collect();
    let in_valid = added.iter().filter(|p| valid.contains(*p)).count();
    let in_test = added.iter().filter(|p| test.contains(*p)).count();
    let either = added
        .iter()
        .filter(|p| valid.contains(*p) || test.contains(*p))
        .count();
    let share = |n: usize| {
        if added.is_empty() {
            0.0
        } else {
            n as f64 / added.len() as f64
        }
    };
    Evaluation {
        note: "evaluation: reads the held-out splits valid.tsv and test.tsv (building the set \
               read train only)"
            .into(),
        added_pairs: added.len(),
        in_valid,
        in_test,
        share_valid: share(in_valid),
        share_test: share(in_test),
        share_held_out: share(either),
    }
}

impl fmt::Display for Evaluation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}\n  of {} added pairs: {} in valid ({:.2}%), {} in test ({:.2}%), {:.2}% held out",
            self.note,
            self.added_pairs,
            self.in_valid,
            100.0 * self.share_valid,
            self.in_test,
            100.0 * self.share_test,
            100.0 * self.share_held_out
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_of_added_pairs_by_split() {
        let train = vec![(0, 0), (1, 1)];
        let aug = vec![(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (1, 3)];
        let e = evaluate(&train, &aug, &vec![(0, 1), (1, 1)], &vec![(1, 3), (0, 9)]);
        assert_eq!((e.added_pairs, e.in_valid, e.in_test), (4, 1, 1));
        assert_eq!((e.share_valid, e.share_held_out), (0.25, 0.5));
        assert!(e.to_string().contains("reads the held-out splits"));
        assert_eq!(evaluate(&train, &train, &train, &train).share_test, 0.0);
    }
}
