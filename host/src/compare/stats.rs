//! Summary statistics of a comparison: mean, sample standard deviation, and the paired
//! two-sided t-test of a method against the baseline across seeds.

use serde::Serialize;
use statrs::distribution::{ContinuousCDF, StudentsT};

/// Mean of `x`; `None` when empty.
pub fn mean(x: &[f64]) -> Option<f64> {
    (!x.is_empty()).then(|| x.iter().sum::<f64>() / x.len() as f64)
}

/// Sample standard deviation (divisor n − 1); `None` below two values.
pub fn sample_std(x: &[f64]) -> Option<f64> {
    if x.len() < 2 {
        return None;
    }
    let m = mean(x)?;
    let ss: f64 = x.iter().map(|v| (v - m) * (v - m)).sum();
    Some((ss / (x.len() - 1) as f64).sqrt())
}

/// A paired t-test's statistic, degrees of freedom and two-sided p-value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TTest {
    pub t: f64,
    pub df: usize,
    pub p: f64,
}

/// Paired two-sided t-test of `a` against `b` (`a[i]` paired with `b[i]`):
/// t = mean(d) / (sd(d) / √n) with d = a − b, p = 2 · P(T_{n−1} > |t|).
/// `None` (undefined) with fewer than two pairs or when the differences do not vary (all
/// equal up to rounding), where t is 0/0 or ±∞.
pub fn paired_t_test(a: &[f64], b: &[f64]) -> Option<TTest> {
    if a.len() != b.len() || a.len() < 2 {
        return None;
    }
    let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    let n = d.len();
    let md = mean(&d)?;
    let sd = sample_std(&d)?;
    // Differences equal up to the rounding of the subtraction: no variance to test against.
    let scale = d.iter().fold(0f64, |m, v| m.max(v.abs()));
    if !sd.is_finite() || sd <= 16.0 * f64::EPSILON * scale {
        return None;
    }
    let t = md / (sd / (n as f64).sqrt());
    let dist = StudentsT::new(0.0, 1.0, (n - 1) as f64).ok()?;
    let p = (2.0 * dist.sf(t.abs())).clamp(0.0, 1.0);
    Some(TTest { t, df: n - 1, p })
}

/// Improvement of `value` over `base` in percent; `None` when `base` is 0.
pub fn improvement_pct(value: f64, base: f64) -> Option<f64> {
    (base != 0.0).then(|| (value - base) / base.abs() * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) {
        assert!((a - b).abs() <= tol, "{a} vs {b}");
    }

    #[test]
    fn mean_and_sample_std() {
        assert_eq!(mean(&[]), None);
        assert_eq!(sample_std(&[3.0]), None);
        close(mean(&[1.0, 2.0, 3.0, 6.0]).unwrap(), 3.0, 1e-15);
        // Squares of deviations 4 + 1 + 0 + 9 = 14, / (4 − 1).
        close(
            sample_std(&[1.0, 2.0, 3.0, 6.0]).unwrap(),
            (14.0f64 / 3.0).sqrt(),
            1e-15,
        );
        close(sample_std(&[2.0, 2.0]).unwrap(), 0.0, 0.0);
    }

    /// Student's sleep data (Cushny & Peebles; R's `t.test(extra ~ group, data = sleep,
    /// paired = TRUE)`): t = −4.0621, df = 9, p = 0.002833.
    #[test]
    fn textbook_paired_t_test() {
        let g1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0];
        let g2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4];
        let r = paired_t_test(&g1, &g2).unwrap();
        assert_eq!(r.df, 9);
        close(r.t, -4.062128, 1e-6);
        close(r.p, 0.002832890, 1e-8);
        let r2 = paired_t_test(&g2, &g1).unwrap();
        close(r2.t, -r.t, 1e-12);
        close(r2.p, r.p, 1e-15);
    }

    /// With two pairs (df = 1) the t distribution is Cauchy: p = 1 − 2·atan(|t|)/π.
    #[test]
    fn one_degree_of_freedom_matches_the_cauchy_formula() {
        let a = [0.30, 0.34];
        let b = [0.28, 0.31];
        let r = paired_t_test(&a, &b).unwrap();
        let d = [0.02f64, 0.03];
        let t = 0.025 / (sample_std(&d).unwrap() / 2f64.sqrt());
        close(r.t, t, 1e-9);
        close(
            r.p,
            1.0 - 2.0 * t.abs().atan() / std::f64::consts::PI,
            1e-12,
        );
    }

    #[test]
    fn undefined_cases() {
        assert_eq!(paired_t_test(&[1.0], &[0.5]), None, "one pair");
        assert_eq!(paired_t_test(&[], &[]), None);
        assert_eq!(paired_t_test(&[1.0, 2.0], &[1.0]), None, "unpaired");
        // Constant differences (0.1 each, up to rounding): zero variance.
        assert_eq!(paired_t_test(&[0.3, 0.5], &[0.2, 0.4]), None);
        assert_eq!(paired_t_test(&[0.3, 0.5], &[0.3, 0.5]), None, "identical");
    }

    #[test]
    fn improvement() {
        close(improvement_pct(0.11, 0.10).unwrap(), 10.0, 1e-9);
        close(improvement_pct(0.09, 0.10).unwrap(), -10.0, 1e-9);
        assert_eq!(improvement_pct(0.1, 0.0), None);
    }
}
