//! Summary statistics of a dataset: per-user counts and their quartiles (which the
//! sparsity groups and `promax augment`'s budgets are built on), and the summary printed
//! before a run.

use std::collections::HashSet;
use std::fmt;

use super::{Dataset, Pairs};

/// Interactions per user in `pairs` (length `n_users`); ids past `n_users` are skipped
/// rather than panicking on a hand-built dataset.
pub fn user_counts(pairs: &Pairs, n_users: usize) -> Vec<u32> {
    let mut counts = vec![0u32; n_users];
    for &(u, _) in pairs {
        if let Some(c) = counts.get_mut(u as usize) {
            *c += 1;
        }
    }
    counts
}

/// Number of train interactions of each user (length `n_users`).
pub fn train_counts(ds: &Dataset) -> Vec<u32> {
    user_counts(&ds.train, ds.n_users)
}

/// Q1, Q2, Q3 of `counts` with linear interpolation between order statistics (numpy's
/// default `percentile`): position `q·(n − 1)` in the sorted counts.
pub fn quartiles(counts: &[u32]) -> [f64; 3] {
    let mut sorted = counts.to_vec();
    sorted.sort_unstable();
    sorted_quartiles(&sorted)
}

fn sorted_quartiles(sorted: &[u32]) -> [f64; 3] {
    [0.25, 0.5, 0.75].map(|q| quantile(sorted, q))
}

/// Summary of a dataset, printed before a run and checked against the data READMEs.
#[derive(Debug, Clone, PartialEq)]
pub struct DataStats {
    /// Dataset name.
    pub name: String,
    /// Number of users.
    pub n_users: usize,
    /// Number of items.
    pub n_items: usize,
    /// Train interactions.
    pub n_train: usize,
    /// Validation interactions.
    pub n_valid: usize,
    /// Test interactions.
    pub n_test: usize,
    /// (train + valid + test) / (users × items).
    pub density: f64,
    /// Fewest train interactions of a user.
    pub train_min: u32,
    /// First quartile of per-user train counts (linear interpolation, as numpy).
    pub train_q1: f64,
    /// Median of per-user train counts.
    pub train_median: f64,
    /// Third quartile of per-user train counts.
    pub train_q3: f64,
    /// Most train interactions of a user.
    pub train_max: u32,
    /// Users with no train interaction (they cannot be learned).
    pub users_without_train: usize,
    /// Users with no validation interaction (skipped by validation).
    pub users_without_valid: usize,
    /// Users with no test interaction (skipped by test).
    pub users_without_test: usize,
    /// Users with neither a validation nor a test interaction.
    pub users_without_valid_or_test: usize,
    /// Items that never occur in train (the model only sees their initial embedding).
    pub items_not_in_train: usize,
    /// Pairs in both train and valid: a leak.
    pub train_valid_overlap: usize,
    /// Pairs in both train and test: a leak.
    pub train_test_overlap: usize,
    /// Pairs in both valid and test.
    pub valid_test_overlap: usize,
    /// Dimension of the profile embeddings, when the dataset has them.
    pub profile_dim: Option<usize>,
}

/// Computes [`DataStats`] for `ds`.
pub fn stats(ds: &Dataset) -> DataStats {
    let counts = train_counts(ds);
    let mut sorted = counts.clone();
    sorted.sort_unstable();
    let [train_q1, train_median, train_q3] = sorted_quartiles(&sorted);
    let presence = |pairs: &Pairs| {
        let mut seen = vec![false; ds.n_users];
        for &(u, _) in pairs {
            if let Some(s) = seen.get_mut(u as usize) {
                *s = true;
            }
        }
        seen
    };
    let (has_valid, has_test) = (presence(&ds.valid), presence(&ds.test));
    let mut item_in_train = vec![false; ds.n_items];
    for &(_, i) in &ds.train {
        if let Some(s) = item_in_train.get_mut(i as usize) {
            *s = true;
        }
    }
    let train_set: HashSet<(u32, u32)> = ds.train.iter().copied().collect();
    let valid_set: HashSet<(u32, u32)> = ds.valid.iter().copied().collect();
    let total = ds.train.len() + ds.valid.len() + ds.test.len();
    let cells = ds.n_users as f64 * ds.n_items as f64;
    DataStats {
        name: ds.name.clone(),
        n_users: ds.n_users,
        n_items: ds.n_items,
        n_train: ds.train.len(),
        n_valid: ds.valid.len(),
        n_test: ds.test.len(),
        density: if cells > 0.0 {
            total as f64 / cells
        } else {
            0.0
        },
        train_min: sorted.first().copied().unwrap_or(0),
        train_q1,
        train_median,
        train_q3,
        train_max: sorted.last().copied().unwrap_or(0),
        users_without_train: counts.iter().filter(|&&c| c == 0).count(),
        users_without_valid: has_valid.iter().filter(|&&h| !h).count(),
        users_without_test: has_test.iter().filter(|&&h| !h).count(),
        users_without_valid_or_test: has_valid
            .iter()
            .zip(&has_test)
            .filter(|(v, t)| !**v && !**t)
            .count(),
        items_not_in_train: item_in_train.iter().filter(|&&s| !s).count(),
        train_valid_overlap: ds.valid.iter().filter(|p| train_set.contains(p)).count(),
        train_test_overlap: ds.test.iter().filter(|p| train_set.contains(p)).count(),
        valid_test_overlap: ds.test.iter().filter(|p| valid_set.contains(p)).count(),
        profile_dim: ds.profiles.as_ref().map(|p| p.dim),
    }
}

/// Quantile of sorted values with linear interpolation (numpy's default), so the numbers
/// match those in the data READMEs.
fn quantile(sorted: &[u32], q: f64) -> f64 {
    match sorted.len() {
        0 => 0.0,
        n => {
            let pos = q * (n - 1) as f64;
            let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
            let (a, b) = (f64::from(sorted[lo]), f64::from(sorted[hi.min(n - 1)]));
            a + (b - a) * (pos - lo as f64)
        }
    }
}

impl fmt::Display for DataStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "dataset {}: {} users, {} items",
            self.name, self.n_users, self.n_items
        )?;
        writeln!(
            f,
            "  interactions: train {}, valid {}, test {} (total {}, density {:.6})",
            self.n_train,
            self.n_valid,
            self.n_test,
            self.n_train + self.n_valid + self.n_test,
            self.density
        )?;
        writeln!(
            f,
            "  train per user: min {}, Q1 {}, median {}, Q3 {}, max {}",
            self.train_min, self.train_q1, self.train_median, self.train_q3, self.train_max
        )?;
        writeln!(
            f,
            "  users without train {}, without valid {}, without test {}, without valid or test {}",
            self.users_without_train,
            self.users_without_valid,
            self.users_without_test,
            self.users_without_valid_or_test
        )?;
        writeln!(f, "  items never in train: {}", self.items_not_in_train)?;
        write!(
            f,
            "  overlap (pairs in both; train ones are leaks): train/valid {}, train/test {}, valid/test {}",
            self.train_valid_overlap, self.train_test_overlap, self.valid_test_overlap
        )?;
        if let Some(dim) = self.profile_dim {
            write!(f, "\n  profiles: dimension {dim} (users and items)")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quartiles_match_numpy_linear_percentiles() {
        // numpy.percentile([1, 2, 3, 4, 10], [25, 50, 75]) = [2, 3, 4]
        assert_eq!(quartiles(&[4, 1, 10, 3, 2]), [2.0, 3.0, 4.0]);
        // numpy.percentile([1, 2, 3, 4], [25, 50, 75]) = [1.75, 2.5, 3.25]
        assert_eq!(quartiles(&[1, 2, 3, 4]), [1.75, 2.5, 3.25]);
        assert_eq!(quartiles(&[7]), [7.0, 7.0, 7.0]);
    }

    #[test]
    fn stats_count_gaps_and_leaks() {
        let ds = Dataset {
            name: "t".into(),
            dir: None,
            n_users: 4,
            n_items: 5,
            train: vec![(0, 0), (0, 1), (1, 1), (2, 2), (2, 3), (2, 0)],
            valid: vec![(0, 0), (1, 2)],
            test: vec![(1, 2), (0, 4)],
            profiles: None,
            ids: None,
        };
        assert_eq!(train_counts(&ds), vec![2, 1, 3, 0]);
        let st = stats(&ds);
        assert_eq!((st.train_min, st.train_max), (0, 3));
        assert_eq!(
            (st.train_q1, st.train_median, st.train_q3),
            (0.75, 1.5, 2.25)
        );
        assert_eq!(st.users_without_train, 1);
        assert_eq!(
            (
                st.users_without_valid,
                st.users_without_test,
                st.users_without_valid_or_test
            ),
            (2, 2, 2)
        );
        assert_eq!(st.items_not_in_train, 1);
        assert_eq!(
            (
                st.train_valid_overlap,
                st.train_test_overlap,
                st.valid_test_overlap
            ),
            (1, 0, 1)
        );
        assert!((st.density - 10.0 / 20.0).abs() < 1e-12);
        let text = st.to_string();
        assert!(
            text.contains("4 users") && text.contains("train/valid 1"),
            "{text}"
        );
    }
}
