//! Top-K ranking metrics for one user, and their averages.

use std::collections::BTreeMap;

/// The metric families reported at every K.
pub const METRICS: [&str; 5] = ["recall", "ndcg", "precision", "hitrate", "mrr"];

/// Metrics of one user's ranked list (`ranked`, best first, at least max K long or padded
/// with `u32::MAX`) against their held-out items (`heldout`, sorted).
/// Returns, for each K, [recall, ndcg, precision, hitrate, mrr].
pub fn user_metrics(ranked: &[u32], heldout: &[u32], ks: &[usize]) -> Vec<[f64; 5]> {
    let max_k = ks.iter().copied().max().unwrap_or(0);
    let hit: Vec<bool> = ranked
        .iter()
        .take(max_k)
        .map(|i| heldout.binary_search(i).is_ok())
        .collect();
    ks.iter()
        .map(|&k| {
            let mut hits = 0usize;
            let mut dcg = 0f64;
            let mut first = None;
            for (pos, _) in hit.iter().take(k).enumerate().filter(|(_, h)| **h) {
                hits += 1;
                dcg += 1.0 / ((pos + 2) as f64).log2();
                first.get_or_insert(pos);
            }
            let idcg: f64 = (0..k.min(heldout.len()))
                .map(|pos| 1.0 / ((pos + 2) as f64).log2())
                .sum();
            let n = heldout.len() as f64;
            [
                hits as f64 / n,
                if idcg > 0.0 { dcg / idcg } else { 0.0 },
                hits as f64 / k as f64,
                if hits > 0 { 1.0 } else { 0.0 },
                first.map_or(0.0, |p| 1.0 / (p + 1) as f64),
            ]
        })
        .collect()
}

/// Averages of per-user metrics, keyed `recall@20`, `ndcg@20`, ….
pub fn average(per_user: &[Vec<[f64; 5]>], ks: &[usize]) -> BTreeMap<String, f64> {
    let n = per_user.len().max(1) as f64;
    let mut out = BTreeMap::new();
    for (ki, k) in ks.iter().enumerate() {
        for (mi, name) in METRICS.iter().enumerate() {
            let s: f64 = per_user.iter().map(|u| u[ki][mi]).sum();
            out.insert(format!("{name}@{k}"), s / n);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-12, "{a} vs {b}");
    }

    #[test]
    fn hand_computed_ranking() {
        // Ranked: 7 3 9 1 4; held-out {1, 3, 8}.
        let m = user_metrics(&[7, 3, 9, 1, 4], &[1, 3, 8], &[2, 5]);
        // K=2: one hit at position 1 (0-based).
        close(m[0][0], 1.0 / 3.0);
        close(m[0][1], (1.0 / 3f64.log2()) / (1.0 + 1.0 / 3f64.log2()));
        close(m[0][2], 0.5);
        close(m[0][3], 1.0);
        close(m[0][4], 0.5);
        // K=5: hits at positions 1 and 3; IDCG over min(5, 3) = 3 slots.
        let dcg = 1.0 / 3f64.log2() + 1.0 / 5f64.log2();
        let idcg = 1.0 + 1.0 / 3f64.log2() + 1.0 / 4f64.log2();
        close(m[1][0], 2.0 / 3.0);
        close(m[1][1], dcg / idcg);
        close(m[1][2], 2.0 / 5.0);
        close(m[1][3], 1.0);
        close(m[1][4], 0.5);
    }

    #[test]
    fn no_hits_and_padding() {
        let m = user_metrics(&[5, u32::MAX, u32::MAX], &[1], &[3]);
        assert_eq!(m[0], [0.0; 5]);
        let perfect = user_metrics(&[1, 2], &[1, 2], &[2]);
        close(perfect[0][1], 1.0);
        close(perfect[0][0], 1.0);
    }

    #[test]
    fn averages_are_keyed_by_metric_and_k() {
        let a = user_metrics(&[1, 2], &[1], &[1, 2]);
        let b = user_metrics(&[1, 2], &[2], &[1, 2]);
        let avg = average(&[a, b], &[1, 2]);
        close(avg["recall@1"], 0.5);
        close(avg["recall@2"], 1.0);
        close(avg["mrr@2"], 0.75);
        close(avg["precision@2"], 0.5);
        assert_eq!(avg.len(), 10);
    }
}
