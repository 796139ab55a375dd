//! What a comparison found: the report's rows and curves, and the text forms of a p-value
//! and a group's bounds. Shared by the writers of the report files (report.rs: md, csv,
//! json; html.rs: the page), which therefore need not import each other.

use serde::Serialize;

use super::stats::{mean, sample_std};

/// Mean and sample standard deviation of one quantity over seeds.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub mean: Option<f64>,
    /// `None` below two seeds.
    pub std: Option<f64>,
    pub n: usize,
}

impl Summary {
    pub(super) fn of(values: &[f64]) -> Summary {
        Summary {
            mean: mean(values),
            std: sample_std(values),
            n: values.len(),
        }
    }
}

/// One metric of one row.
#[derive(Debug, Clone, Serialize)]
pub struct MetricStats {
    pub mean: Option<f64>,
    pub std: Option<f64>,
    /// The per-seed values, in the order of the row's `seeds`.
    pub values: Vec<f64>,
    /// `(mean − baseline mean) / baseline mean · 100`; `None` for the baseline itself.
    pub improvement_pct: Option<f64>,
    /// Paired t statistic against the baseline (pairs by seed); `None` when undefined.
    pub t: Option<f64>,
    /// Two-sided p-value of that test; `None` when undefined (fewer than 2 pairs, or the
    /// differences have no variance) and for the baseline itself.
    pub p_value: Option<f64>,
    /// Seeds present in both this row and the baseline's.
    pub pairs: usize,
    /// The highest mean of this metric among the dataset's rows.
    pub best: bool,
}

/// One metric of one user group: mean ± std over seeds, improvement over the baseline.
#[derive(Debug, Clone, Serialize)]
pub struct GroupMetric {
    pub mean: Option<f64>,
    pub std: Option<f64>,
    pub n: usize,
    pub improvement_pct: Option<f64>,
}

/// Serialises a list of (metric name, value) pairs as a JSON object in list order.
fn as_map<S: serde::Serializer, T: Serialize>(v: &[(String, T)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(v.iter().map(|(k, x)| (k, x)))
}

/// One user group of one row: user count and the group metrics' mean ± std over seeds.
#[derive(Debug, Clone, Serialize)]
pub struct GroupStats {
    pub group: usize,
    pub label: String,
    /// Train-count bounds of the group in the first seed's run (same data for every seed).
    pub lower: Option<f64>,
    pub upper: Option<f64>,
    pub users: usize,
    #[serde(serialize_with = "as_map")]
    pub metrics: Vec<(String, GroupMetric)>,
}

/// Seconds per epoch, total training time, epochs to the best validation epoch.
#[derive(Debug, Clone, Serialize)]
pub struct Efficiency {
    pub seconds_per_epoch: Summary,
    pub total_seconds: Summary,
    pub best_epoch: Summary,
    pub epochs_run: Summary,
}

/// One dataset × backbone × method.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub dataset: String,
    pub backbone: String,
    pub method: String,
    pub is_baseline: bool,
    /// Seeds with a finished cell.
    pub seeds: Vec<u64>,
    #[serde(serialize_with = "as_map")]
    pub metrics: Vec<(String, MetricStats)>,
    pub groups: Vec<GroupStats>,
    pub efficiency: Efficiency,
}

/// A validation curve of one cell: (epoch, value of the first report metric).
#[derive(Debug, Clone, Serialize)]
pub struct Curve {
    pub cell: String,
    pub dataset: String,
    pub backbone: String,
    pub method: String,
    pub seed: u64,
    pub points: Vec<(f64, f64)>,
}

/// Everything the report files show.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub title: String,
    pub compare_file: String,
    pub baseline: String,
    pub seeds: Vec<u64>,
    pub metrics: Vec<String>,
    /// The metrics broken down by user group (the first two report metrics).
    pub group_metrics: Vec<String>,
    pub rows: Vec<Row>,
    /// Cells without `metrics.json` (left out of the statistics).
    pub missing: Vec<String>,
    pub curves: Vec<Curve>,
}

/// A p-value as text: `—` when undefined, `<1e-4` below that.
pub fn pvalue(p: Option<f64>) -> String {
    match p {
        Some(p) if p < 1e-4 => "<1e-4".into(),
        Some(p) => format!("{p:.4}"),
        None => "—".into(),
    }
}

/// A group's label with its bounds on the TRAIN count n, e.g. `[Q1, Q2): 4.0 <= n < 7.5`.
pub fn bounds(g: &GroupStats) -> String {
    match (g.lower, g.upper) {
        (None, Some(u)) => format!("{}: n < {u:.1}", g.label),
        (Some(l), None) => format!("{}: n >= {l:.1}", g.label),
        (Some(l), Some(u)) => format!("{}: {l:.1} <= n < {u:.1}", g.label),
        (None, None) => g.label.clone(),
    }
}
