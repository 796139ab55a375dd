//! `promax compare` end to end on the built-in synthetic dataset: a 2 backbones × 2
//! methods × 2 seeds matrix run through the binary, interrupted and resumed, then the
//! report checked against statistics computed here by hand (paired t-test with df = 1:
//! p = 1 − 2·atan(|t|)/π), and report.html's SVGs parsed as XML.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

mod common;
use common::{ok, promax};

const SEEDS: [u64; 2] = [11, 12];
const BACKBONES: [&str; 2] = ["mf", "lightgcn"];
const METHODS: [&str; 2] = ["base", "promax"];

/// A tiny matrix: a small synthetic dataset, validation every epoch.
fn compare_file(dir: &Path, max_epochs: usize) -> PathBuf {
    common::tiny_compare(dir, max_epochs, 160, 120)
}

fn cell(b: &str, m: &str, seed: u64) -> String {
    format!("syn-{b}-{m}-s{seed}")
}

fn mtime(p: &Path) -> SystemTime {
    std::fs::metadata(p).unwrap().modified().unwrap()
}

fn json(p: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn mean(x: &[f64]) -> f64 {
    x.iter().sum::<f64>() / x.len() as f64
}

fn sd(x: &[f64]) -> f64 {
    let m = mean(x);
    (x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (x.len() - 1) as f64).sqrt()
}

fn close(a: f64, b: f64, what: &str) {
    assert!(
        (a - b).abs() <= 1e-9 * (1.0 + b.abs()),
        "{what}: {a} vs {b}"
    );
}

#[test]
fn matrix_runs_resumes_and_reports() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = compare_file(tmp.path(), 3);
    let out = tmp.path().join("out");
    let (cfg_s, out_s) = (cfg.to_str().unwrap(), out.to_str().unwrap());
    let cells = out.join("cells");

    // 1. Interrupted after 3 cells (in plan order, one at a time).
    let text = ok(&promax(&[
        "compare",
        cfg_s,
        "--out",
        out_s,
        "--max-cells",
        "3",
    ]));
    assert!(
        text.contains("8 cells, 0 finished already, 8 to run"),
        "{text}"
    );
    assert!(text.contains("5 of 8 cells unfinished"), "{text}");
    assert!(!out.join("report.md").exists());
    let first3 = [
        cell("mf", "base", 11),
        cell("mf", "base", 12),
        cell("mf", "promax", 11),
    ];
    let finished: Vec<String> = std::fs::read_dir(&cells)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| cells.join(n).join("metrics.json").is_file())
        .collect();
    assert_eq!(finished.len(), 3, "{finished:?}");
    for c in &first3 {
        assert!(finished.contains(c), "{finished:?}");
        assert!(cells.join(c).join("config.toml").is_file());
    }

    // A cell killed half-way (no metrics.json) and a partial folder of a cell not yet run.
    let half = cells.join(&first3[2]);
    std::fs::remove_file(half.join("metrics.json")).unwrap();
    let partial = cells.join(cell("lightgcn", "promax", 12));
    std::fs::create_dir_all(&partial).unwrap();
    std::fs::write(partial.join("junk"), "half-written").unwrap();
    let kept: Vec<(PathBuf, SystemTime)> = first3[..2]
        .iter()
        .map(|c| {
            let p = cells.join(c).join("metrics.json");
            std::fs::write(cells.join(c).join("kept.marker"), "").unwrap();
            let t = mtime(&p);
            (p, t)
        })
        .collect();
    // Let a rerun of a kept cell show up in its mtime even on coarse clocks.
    std::thread::sleep(std::time::Duration::from_millis(1100));

    // 2. Resumed, two cells at a time.
    let text = ok(&promax(&["compare", cfg_s, "--out", out_s, "--jobs", "2"]));
    assert!(
        text.contains("8 cells, 2 finished already, 6 to run (2 unfinished, redone)"),
        "{text}"
    );
    for (p, t) in &kept {
        assert_eq!(mtime(p), *t, "finished cell rerun: {}", p.display());
        assert!(p.with_file_name("kept.marker").is_file());
    }
    assert!(half.join("metrics.json").is_file());
    assert!(partial.join("metrics.json").is_file());
    assert!(!partial.join("junk").exists(), "partial folder not removed");
    for f in ["report.md", "report.csv", "report.json", "report.html"] {
        assert!(out.join(f).is_file(), "missing {f}");
    }
    let resolved: toml::Table =
        toml::from_str(&std::fs::read_to_string(partial.join("config.toml")).unwrap()).unwrap();
    assert_eq!(resolved["train"]["threads"].as_integer(), Some(1));
    assert_eq!(resolved["train"]["seed"].as_integer(), Some(12));
    assert_eq!(resolved["train"]["max_epochs"].as_integer(), Some(3));
    assert_eq!(resolved["model"]["backbone"].as_str(), Some("lightgcn"));

    // Every cell's metrics.json has the per-group test metrics.
    let mut test: BTreeMap<(String, String, u64), BTreeMap<String, f64>> = BTreeMap::new();
    for b in BACKBONES {
        for m in METHODS {
            for s in SEEDS {
                let mj = json(&cells.join(cell(b, m, s)).join("metrics.json"));
                let groups = mj["test_groups"].as_array().unwrap();
                assert_eq!(groups.len(), 4, "{mj}");
                assert_eq!(groups[0]["label"], "< Q1");
                assert_eq!(groups[3]["label"], ">= Q3");
                let users: u64 = groups.iter().map(|g| g["users"].as_u64().unwrap()).sum();
                assert!(users > 0);
                let t = mj["test"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_f64().unwrap()))
                    .collect();
                test.insert((b.into(), m.into(), s), t);
            }
        }
    }

    // 3. The report against hand-computed statistics.
    let report = json(&out.join("report.json"));
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    let csv = std::fs::read_to_string(out.join("report.csv")).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 4);
    let mut p_checked = 0;
    for metric in ["recall@20", "ndcg@20", "recall@10", "ndcg@10"] {
        let best = BACKBONES
            .iter()
            .flat_map(|b| METHODS.iter().map(move |m| (*b, *m)))
            .map(|(b, m)| mean(&SEEDS.map(|s| test[&(b.into(), m.into(), s)][metric])))
            .fold(f64::NEG_INFINITY, f64::max);
        for b in BACKBONES {
            for m in METHODS {
                let vals = SEEDS.map(|s| test[&(b.into(), m.into(), s)][metric]);
                let base = SEEDS.map(|s| test[&(b.into(), "base".into(), s)][metric]);
                let (mu, sdv) = (mean(&vals), sd(&vals));
                let row = rows
                    .iter()
                    .find(|r| r["backbone"] == b && r["method"] == m)
                    .unwrap();
                let js = &row["metrics"][metric];
                let what = format!("{b}/{m}/{metric}");
                close(js["mean"].as_f64().unwrap(), mu, &what);
                close(js["std"].as_f64().unwrap(), sdv, &what);
                let is_best = mu == best;
                assert_eq!(js["best"].as_bool(), Some(is_best), "{what}");

                let line = csv
                    .lines()
                    .find(|l| l.starts_with(&format!("syn,{b},{m},")))
                    .unwrap();
                let f: Vec<&str> = line.split(',').collect();
                let num = |name: &str| f[col(&format!("{metric}_{name}"))].parse::<f64>();
                close(num("mean").unwrap(), mu, &what);
                close(num("std").unwrap(), sdv, &what);
                assert_eq!(f[col(&format!("{metric}_best"))], is_best.to_string());

                let md_row = md
                    .lines()
                    .find(|l| l.starts_with(&format!("| syn | {b} | {m}")))
                    .unwrap();
                let shown = format!("{mu:.4} ± {sdv:.4}");
                let shown = if is_best {
                    format!("**{shown}**")
                } else {
                    shown
                };
                assert!(md_row.contains(&format!(" {shown} |")), "{what}: {md_row}");

                if m == "base" {
                    assert!(js["improvement_pct"].is_null() && js["p_value"].is_null());
                    assert_eq!(f[col(&format!("{metric}_p_value"))], "");
                    continue;
                }
                let imp = (mu - mean(&base)) / mean(&base) * 100.0;
                close(js["improvement_pct"].as_f64().unwrap(), imp, &what);
                close(num("improvement_pct").unwrap(), imp, &what);
                assert!(
                    md_row.contains(&format!(" {imp:+.2}% |")),
                    "{what}: {md_row}"
                );
                // Paired by seed: d = method − base; df = 1, so T is Cauchy.
                let d = [vals[0] - base[0], vals[1] - base[1]];
                if (d[0] - d[1]).abs() < 1e-12 {
                    assert!(js["p_value"].is_null(), "{what}: zero variance");
                    continue;
                }
                let t = mean(&d) / (sd(&d) / 2f64.sqrt());
                let p = 1.0 - 2.0 * t.abs().atan() / std::f64::consts::PI;
                close(js["t"].as_f64().unwrap(), t, &what);
                close(js["p_value"].as_f64().unwrap(), p, &what);
                close(num("p_value").unwrap(), p, &what);
                let shown_p = if p < 1e-4 {
                    "<1e-4".to_string()
                } else {
                    format!("{p:.4}")
                };
                assert!(
                    md_row.contains(&format!(" {shown_p} |")),
                    "{what}: {md_row}"
                );
                p_checked += 1;
            }
        }
    }
    assert!(p_checked >= 4, "{p_checked} p-values checked");
    // Group means over seeds, from metrics.json by hand.
    let row = rows
        .iter()
        .find(|r| r["backbone"] == "lightgcn" && r["method"] == "promax")
        .unwrap();
    for g in 0..4 {
        let vals: Vec<f64> = SEEDS
            .iter()
            .filter_map(|s| {
                let mj = json(
                    &cells
                        .join(cell("lightgcn", "promax", *s))
                        .join("metrics.json"),
                );
                mj["test_groups"][g]["metrics"]["recall@20"].as_f64()
            })
            .collect();
        let got = &row["groups"][g]["metrics"]["recall@20"]["mean"];
        if vals.is_empty() {
            assert!(got.is_null());
        } else {
            close(got.as_f64().unwrap(), mean(&vals), "group mean");
        }
    }
    assert!(md.contains("## Per user group") && md.contains("## Efficiency"));
    assert!(
        row["efficiency"]["seconds_per_epoch"]["mean"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    assert_eq!(report["missing"].as_array().unwrap().len(), 0);
    assert_eq!(report["curves"].as_array().unwrap().len(), 8);

    // 4. report.html: self-contained, every SVG well-formed XML.
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    check_html(&html, 6);

    // 5. --report-only rewrites the report and trains nothing.
    let before: Vec<SystemTime> = test
        .keys()
        .map(|(b, m, s)| mtime(&cells.join(cell(b, m, *s)).join("metrics.json")))
        .collect();
    ok(&promax(&[
        "compare",
        cfg_s,
        "--out",
        out_s,
        "--report-only",
    ]));
    let after: Vec<SystemTime> = test
        .keys()
        .map(|(b, m, s)| mtime(&cells.join(cell(b, m, *s)).join("metrics.json")))
        .collect();
    assert_eq!(before, after);

    // 6. A compare file changed under finished cells is refused, naming them.
    let changed = compare_file(tmp.path(), 4);
    let o = promax(&["compare", changed.to_str().unwrap(), "--out", out_s]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("another configuration") && err.contains("max_epochs"),
        "{err}"
    );
}

/// The page loads nothing from elsewhere and each inline SVG parses as XML.
fn check_html(html: &str, min_svgs: usize) {
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("<table>") && html.trim_end().ends_with("</html>"));
    let lower = html.to_ascii_lowercase();
    for bad in [
        "<script", "<link", "<img", "<iframe", "src=", "href=", "url(", "@import",
    ] {
        assert!(!lower.contains(bad), "report.html has `{bad}`");
    }
    // The only address is the SVG namespace name (an identifier, never fetched).
    let ns = "http://www.w3.org/2000/svg";
    assert_eq!(
        lower.matches("http").count(),
        lower.matches(ns).count(),
        "report.html names an address"
    );
    let mut n = 0;
    let mut rest = html;
    while let Some(start) = rest.find("<svg") {
        let end = rest[start..].find("</svg>").expect("unclosed <svg>") + start + 6;
        let svg = &rest[start..end];
        let doc = roxmltree::Document::parse(svg)
            .unwrap_or_else(|e| panic!("SVG {n} is not well-formed XML: {e}\n{svg}"));
        assert_eq!(doc.root_element().tag_name().name(), "svg");
        assert_eq!(doc.root_element().tag_name().namespace(), Some(ns));
        n += 1;
        rest = &rest[end..];
    }
    assert!(n >= min_svgs, "{n} SVGs");
}

#[test]
fn bad_compare_files_fail_before_training() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = compare_file(tmp.path(), 3);
    let text = std::fs::read_to_string(&cfg).unwrap();
    let out = tmp.path().join("out");
    for (edit, want) in [
        (
            text.replace("baseline = \"base\"", "baseline = \"bare\""),
            "`baseline`",
        ),
        (text.replace("title", "titel"), "unknown field `titel`"),
        (
            text.replace("models/mf.toml", "models/nope.toml"),
            "nope.toml not found",
        ),
        (text.replace("eval.every=1", "eval.evry=1"), "eval.every"),
    ] {
        std::fs::write(&cfg, edit).unwrap();
        let o = promax(&[
            "compare",
            cfg.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains(want), "{want}: {err}");
        assert!(!out.join("cells").exists(), "{want}: ran something");
    }
}
