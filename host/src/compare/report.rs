//! The comparison report: per dataset × backbone × method, each metric's mean ± std over
//! seeds, its improvement over the baseline method and the paired t-test against it; test
//! metrics per user group; efficiency. Written as `report.md`, `report.csv`, `report.json`
//! (and `report.html`, html.rs).

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;

use super::results::{
    bounds, pvalue, Curve, Efficiency, GroupMetric, GroupStats, MetricStats, Report, Row, Summary,
};
use super::runner::{cell_dir, is_finished};
use super::spec::Plan;
use super::stats::{improvement_pct, mean, paired_t_test, sample_std};
use crate::eval::GROUP_LABELS;
use crate::runfolder::{write_atomic, RunSummary};

/// Reads every finished cell under `out` and computes the report.
pub fn build(plan: &Plan, out: &Path) -> Result<Report> {
    let mut missing = Vec::new();
    let mut results: Vec<(&super::spec::Cell, RunSummary)> = Vec::new();
    let mut curves = Vec::new();
    let curve_metric = &plan.metrics[0];
    for cell in &plan.cells {
        if !is_finished(out, cell) {
            missing.push(cell.name.clone());
            continue;
        }
        let dir = cell_dir(out, cell);
        results.push((cell, crate::runfolder::read_metrics(&dir)?));
        curves.push(Curve {
            cell: cell.name.clone(),
            dataset: cell.dataset.clone(),
            backbone: cell.backbone.clone(),
            method: cell.method.clone(),
            seed: cell.seed,
            points: read_curve(&dir.join("epochs.csv"), &format!("valid_{curve_metric}"))?,
        });
    }
    let group_metrics: Vec<String> = plan.metrics.iter().take(2).cloned().collect();
    let of = |d: &str, b: &str, m: &str| -> Vec<(u64, &RunSummary)> {
        results
            .iter()
            .filter(|(c, _)| c.dataset == d && c.backbone == b && c.method == m)
            .map(|(c, s)| (c.seed, s))
            .collect()
    };
    let mut rows = Vec::new();
    for d in &plan.datasets {
        for b in &plan.backbones {
            let base = of(d, b, &plan.baseline);
            for m in &plan.methods {
                let runs = of(d, b, m);
                let is_baseline = *m == plan.baseline;
                let metrics = plan
                    .metrics
                    .iter()
                    .map(|k| {
                        let get = |s: &RunSummary| s.test.get(k).copied().unwrap_or(f64::NAN);
                        let values: Vec<f64> = runs.iter().map(|(_, s)| get(s)).collect();
                        let base_values: Vec<f64> = base.iter().map(|(_, s)| get(s)).collect();
                        let (mut a, mut bv) = (Vec::new(), Vec::new());
                        for (seed, s) in &runs {
                            if let Some((_, bs)) = base.iter().find(|(bseed, _)| bseed == seed) {
                                a.push(get(s));
                                bv.push(get(bs));
                            }
                        }
                        let test = if is_baseline {
                            None
                        } else {
                            paired_t_test(&a, &bv)
                        };
                        let mu = mean(&values);
                        let stats = MetricStats {
                            mean: mu,
                            std: sample_std(&values),
                            improvement_pct: match (is_baseline, mu, mean(&base_values)) {
                                (false, Some(v), Some(bm)) => improvement_pct(v, bm),
                                _ => None,
                            },
                            t: test.map(|t| t.t),
                            p_value: test.map(|t| t.p),
                            pairs: a.len(),
                            best: false,
                            values,
                        };
                        (k.clone(), stats)
                    })
                    .collect();
                let groups = group_stats(&runs, &base, is_baseline, &group_metrics);
                let eff = |f: fn(&RunSummary) -> f64| {
                    Summary::of(&runs.iter().map(|(_, s)| f(s)).collect::<Vec<_>>())
                };
                rows.push(Row {
                    dataset: d.clone(),
                    backbone: b.clone(),
                    method: m.clone(),
                    is_baseline,
                    seeds: runs.iter().map(|(s, _)| *s).collect(),
                    metrics,
                    groups,
                    efficiency: Efficiency {
                        seconds_per_epoch: eff(|s| s.seconds_per_epoch),
                        total_seconds: eff(|s| s.total_seconds),
                        best_epoch: eff(|s| s.best_epoch as f64),
                        epochs_run: eff(|s| s.epochs_run as f64),
                    },
                });
            }
        }
    }
    mark_best(&mut rows);
    Ok(Report {
        title: plan.title.clone(),
        compare_file: plan.path.display().to_string(),
        baseline: plan.baseline.clone(),
        seeds: plan.seeds.clone(),
        metrics: plan.metrics.clone(),
        group_metrics,
        rows,
        missing,
        curves,
    })
}

fn group_stats(
    runs: &[(u64, &RunSummary)],
    base: &[(u64, &RunSummary)],
    is_baseline: bool,
    metrics: &[String],
) -> Vec<GroupStats> {
    let Some((_, first)) = runs.first() else {
        return Vec::new();
    };
    if first.test_groups.is_empty() {
        return Vec::new();
    }
    let value = |s: &RunSummary, g: usize, k: &str| {
        s.test_groups
            .get(g)
            .and_then(|gr| gr.metrics.get(k))
            .copied()
    };
    (0..first.test_groups.len())
        .map(|g| {
            let info = &first.test_groups[g];
            GroupStats {
                group: g,
                label: info.label.clone(),
                lower: info.lower,
                upper: info.upper,
                users: info.users,
                metrics: metrics
                    .iter()
                    .map(|k| {
                        let v: Vec<f64> = runs.iter().filter_map(|(_, s)| value(s, g, k)).collect();
                        let b: Vec<f64> = base.iter().filter_map(|(_, s)| value(s, g, k)).collect();
                        let s = Summary::of(&v);
                        let imp = match (is_baseline, s.mean, mean(&b)) {
                            (false, Some(x), Some(y)) => improvement_pct(x, y),
                            _ => None,
                        };
                        let gm = GroupMetric {
                            mean: s.mean,
                            std: s.std,
                            n: s.n,
                            improvement_pct: imp,
                        };
                        (k.clone(), gm)
                    })
                    .collect(),
            }
        })
        .collect()
}

/// Marks, per dataset and metric, the rows with the highest mean.
fn mark_best(rows: &mut [Row]) {
    let datasets: Vec<String> = rows.iter().map(|r| r.dataset.clone()).collect();
    let n_metrics = rows.first().map_or(0, |r| r.metrics.len());
    for d in &datasets {
        for k in 0..n_metrics {
            let best = rows
                .iter()
                .filter(|r| r.dataset == *d)
                .filter_map(|r| r.metrics[k].1.mean)
                .fold(f64::NEG_INFINITY, f64::max);
            for r in rows.iter_mut().filter(|r| r.dataset == *d) {
                r.metrics[k].1.best = r.metrics[k].1.mean == Some(best);
            }
        }
    }
}

/// The (epoch, value) rows of `column` in an `epochs.csv` (rows with a value only).
pub fn read_curve(path: &Path, column: &str) -> Result<Vec<(f64, f64)>> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(Vec::new());
    };
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split(',').collect();
    let (Some(ei), Some(ci)) = (
        header.iter().position(|h| *h == "epoch"),
        header.iter().position(|h| *h == column),
    ) else {
        return Ok(Vec::new());
    };
    Ok(lines
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let e = f.get(ei)?.parse::<f64>().ok()?;
            let v = f.get(ci)?.parse::<f64>().ok()?;
            Some((e, v))
        })
        .collect())
}

/// `0.1234`, or `—` when undefined.
fn num(v: Option<f64>, digits: usize) -> String {
    v.filter(|x| x.is_finite())
        .map_or_else(|| "—".into(), |x| format!("{x:.digits$}"))
}

fn pct(v: Option<f64>) -> String {
    v.filter(|x| x.is_finite())
        .map_or_else(|| "—".into(), |x| format!("{x:+.2}%"))
}

fn mean_std(s: &Summary, digits: usize) -> String {
    match s.std {
        Some(sd) => format!("{} ± {}", num(s.mean, digits), num(Some(sd), digits)),
        None => num(s.mean, digits),
    }
}

/// `report.md`: the main table, then per user group, then efficiency.
pub fn markdown(r: &Report) -> String {
    let mut s = format!("# {}\n\n", r.title);
    s.push_str(&main_table(r));
    s.push_str(&group_and_efficiency_tables(r));
    s
}

/// The legend and the table of test metrics (what `promax compare` prints).
pub fn main_table(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Compare file `{}`; seeds {:?}; baseline `{}`. Test metrics, mean ± sample std over \
         seeds; Δ = improvement of the mean over the baseline's (same dataset and backbone); \
         p = two-sided paired t-test against the baseline across seeds (— when undefined: \
         fewer than 2 paired seeds, or differences without variance); **bold** = best mean \
         of the dataset.\n",
        r.compare_file, r.seeds, r.baseline
    );
    if !r.missing.is_empty() {
        let _ = writeln!(
            s,
            "**Unfinished cells (left out):** {}\n",
            r.missing.join(", ")
        );
    }
    s.push_str("| dataset | backbone | method | seeds |");
    for m in &r.metrics {
        let _ = write!(s, " {m} | Δ | p |");
    }
    s.push_str("\n|---|---|---|---|");
    for _ in &r.metrics {
        s.push_str("---|---|---|");
    }
    s.push('\n');
    for row in &r.rows {
        let _ = write!(
            s,
            "| {} | {} | {}{} | {} |",
            row.dataset,
            row.backbone,
            row.method,
            if row.is_baseline { " (baseline)" } else { "" },
            row.seeds.len()
        );
        for (_, m) in &row.metrics {
            let ms = mean_std(
                &Summary {
                    mean: m.mean,
                    std: m.std,
                    n: m.values.len(),
                },
                4,
            );
            let cell = if m.best { format!("**{ms}**") } else { ms };
            let _ = write!(
                s,
                " {cell} | {} | {} |",
                pct(m.improvement_pct),
                pvalue(m.p_value)
            );
        }
        s.push('\n');
    }
    s
}

fn group_and_efficiency_tables(r: &Report) -> String {
    let mut s = String::new();
    if r.rows.iter().any(|row| !row.groups.is_empty()) {
        let _ = writeln!(
            s,
            "\n## Per user group\n\nTest users in four groups by quartiles Q1–Q3 of their \
             TRAIN interaction counts (linear interpolation); mean over seeds (Δ against the \
             baseline).\n"
        );
        for k in &r.group_metrics {
            let _ = write!(s, "### {k}\n\n| dataset | backbone | method |");
            let first = r.rows.iter().find(|row| !row.groups.is_empty());
            for g in first.map(|row| row.groups.as_slice()).unwrap_or(&[]) {
                let _ = write!(s, " {} ({} users) |", bounds(g), g.users);
            }
            s.push_str("\n|---|---|---|");
            for _ in 0..first.map_or(0, |row| row.groups.len()) {
                s.push_str("---|");
            }
            s.push('\n');
            for row in &r.rows {
                let _ = write!(s, "| {} | {} | {} |", row.dataset, row.backbone, row.method);
                for g in &row.groups {
                    match g.metrics.iter().find(|(name, _)| name == k) {
                        Some((_, gm)) if gm.improvement_pct.is_some() => {
                            let _ =
                                write!(s, " {} ({}) |", num(gm.mean, 4), pct(gm.improvement_pct));
                        }
                        Some((_, gm)) => {
                            let _ = write!(s, " {} |", num(gm.mean, 4));
                        }
                        None => s.push_str(" — |"),
                    }
                }
                s.push('\n');
            }
            s.push('\n');
        }
    }

    s.push_str(
        "\n## Efficiency\n\n| dataset | backbone | method | s/epoch | total s | epochs to best | \
         epochs run |\n|---|---|---|---|---|---|---|\n",
    );
    for row in &r.rows {
        let e = &row.efficiency;
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} |",
            row.dataset,
            row.backbone,
            row.method,
            mean_std(&e.seconds_per_epoch, 3),
            mean_std(&e.total_seconds, 1),
            mean_std(&e.best_epoch, 1),
            mean_std(&e.epochs_run, 1)
        );
    }
    s
}

fn csv_num(v: Option<f64>) -> String {
    v.filter(|x| x.is_finite())
        .map_or_else(String::new, |x| format!("{x}"))
}

/// `report.csv`: one line per row; empty fields where a value is undefined.
pub fn csv(r: &Report) -> String {
    let mut s = String::from("dataset,backbone,method,is_baseline,seeds");
    for m in &r.metrics {
        let _ = write!(
            s,
            ",{m}_mean,{m}_std,{m}_improvement_pct,{m}_t,{m}_p_value,{m}_best"
        );
    }
    for g in 0..GROUP_LABELS.len() {
        let _ = write!(s, ",group{g}_users");
        for m in &r.group_metrics {
            let _ = write!(s, ",group{g}_{m}_mean,group{g}_{m}_std");
        }
    }
    s.push_str(
        ",seconds_per_epoch_mean,seconds_per_epoch_std,total_seconds_mean,total_seconds_std,\
         best_epoch_mean,best_epoch_std\n",
    );
    for row in &r.rows {
        let seeds: Vec<String> = row.seeds.iter().map(u64::to_string).collect();
        let _ = write!(
            s,
            "{},{},{},{},{}",
            row.dataset,
            row.backbone,
            row.method,
            row.is_baseline,
            seeds.join(" ")
        );
        for (_, m) in &row.metrics {
            let _ = write!(
                s,
                ",{},{},{},{},{},{}",
                csv_num(m.mean),
                csv_num(m.std),
                csv_num(m.improvement_pct),
                csv_num(m.t),
                csv_num(m.p_value),
                m.best
            );
        }
        for g in 0..GROUP_LABELS.len() {
            let gs = row.groups.get(g);
            let _ = write!(
                s,
                ",{}",
                gs.map_or_else(String::new, |g| g.users.to_string())
            );
            for m in &r.group_metrics {
                let gm = gs.and_then(|gs| gs.metrics.iter().find(|(n, _)| n == m));
                let _ = write!(
                    s,
                    ",{},{}",
                    csv_num(gm.and_then(|(_, x)| x.mean)),
                    csv_num(gm.and_then(|(_, x)| x.std))
                );
            }
        }
        let e = &row.efficiency;
        let _ = writeln!(
            s,
            ",{},{},{},{},{},{}",
            csv_num(e.seconds_per_epoch.mean),
            csv_num(e.seconds_per_epoch.std),
            csv_num(e.total_seconds.mean),
            csv_num(e.total_seconds.std),
            csv_num(e.best_epoch.mean),
            csv_num(e.best_epoch.std)
        );
    }
    s
}

/// `report.json`: the whole report, in the order of the other files (undefined values are
/// `null`, never NaN).
pub fn json(r: &Report) -> Result<String> {
    Ok(serde_json::to_string_pretty(r)?)
}

/// Writes `report.md`, `report.csv`, `report.json` and `report.html` into `out`.
pub fn write_all(r: &Report, out: &Path) -> Result<()> {
    write_atomic(&out.join("report.md"), markdown(r).as_bytes())?;
    write_atomic(&out.join("report.csv"), csv(r).as_bytes())?;
    write_atomic(&out.join("report.json"), json(r)?.as_bytes())?;
    write_atomic(
        &out.join("report.html"),
        super::html::page(r, &intro(r))?.as_bytes(),
    )?;
    Ok(())
}

fn intro(r: &Report) -> String {
    format!(
        "Compare file {}; seeds {:?}; baseline {}.",
        r.compare_file, r.seeds, r.baseline
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_is_marked_per_dataset_and_undefined_values_are_dashes() {
        let mk = |dataset: &str, v: f64| Row {
            dataset: dataset.into(),
            backbone: "b".into(),
            method: "m".into(),
            is_baseline: false,
            seeds: vec![1],
            metrics: vec![(
                "recall@20".into(),
                MetricStats {
                    mean: Some(v),
                    std: None,
                    values: vec![v],
                    improvement_pct: None,
                    t: None,
                    p_value: None,
                    pairs: 0,
                    best: false,
                },
            )],
            groups: vec![],
            efficiency: Efficiency {
                seconds_per_epoch: Summary::of(&[1.0]),
                total_seconds: Summary::of(&[1.0]),
                best_epoch: Summary::of(&[1.0]),
                epochs_run: Summary::of(&[1.0]),
            },
        };
        let mut rows = vec![mk("a", 0.1), mk("a", 0.3), mk("b", 0.2), mk("b", 0.05)];
        mark_best(&mut rows);
        let best: Vec<bool> = rows.iter().map(|r| r.metrics[0].1.best).collect();
        assert_eq!(best, [false, true, true, false]);
        assert_eq!(pvalue(None), "—");
        assert_eq!(pvalue(Some(1e-6)), "<1e-4");
        assert_eq!(num(Some(f64::NAN), 2), "—");
        assert_eq!(csv_num(None), "");
    }

    #[test]
    fn curves_are_read_from_epochs_csv() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("epochs.csv");
        std::fs::write(
            &p,
            "epoch,loss,bpr,valid_recall@20,seconds,eval_seconds\n1,0.5,0.5,,1.0,\n\
             2,0.4,0.4,0.125,1.0,0.1\n",
        )
        .unwrap();
        assert_eq!(read_curve(&p, "valid_recall@20").unwrap(), [(2.0, 0.125)]);
        assert!(read_curve(&p, "valid_ndcg@20").unwrap().is_empty());
        assert!(read_curve(&dir.path().join("none.csv"), "x")
            .unwrap()
            .is_empty());
    }
}
