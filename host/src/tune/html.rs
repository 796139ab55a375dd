//! `report.html` of a study: one self-contained page (inline SVG, nothing fetched) with the
//! validation metric over trials (and the best so far), one scatter per search-space key
//! (its value against the metric; log ranges on a log10 axis, choices by position), and
//! the trials table.

use std::fmt::Write as _;

use anyhow::Result;
use plotters::prelude::*;

use super::spec::{Dist, Study};
use super::{State, Trial};
use crate::compare::html::{err, esc, method_color, STYLE};

/// A point of a scatter: x, y, and whether the trial was pruned.
type Dot = (f64, f64, bool);

fn scatter(
    title: &str,
    x_desc: &str,
    y_desc: &str,
    dots: &[Dot],
    best_line: bool,
) -> Result<String> {
    let finite: Vec<&Dot> = dots
        .iter()
        .filter(|d| d.0.is_finite() && d.1.is_finite())
        .collect();
    let (xl, xh) = finite
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), d| {
            (a.min(d.0), b.max(d.0))
        });
    let (yl, yh) = finite
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), d| {
            (a.min(d.1), b.max(d.1))
        });
    let (xl, xh) = if xl.is_finite() { (xl, xh) } else { (0.0, 1.0) };
    let (yl, yh) = if yl.is_finite() { (yl, yh) } else { (0.0, 1.0) };
    let xpad = ((xh - xl) * 0.06).max(0.5e-3);
    let ypad = ((yh - yl) * 0.08).max(1e-3);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (460, 320)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 15))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d(xl - xpad..xh + xpad, yl - ypad..yh + ypad)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .light_line_style(RGBColor(246, 246, 246))
            .draw()
            .map_err(err)?;
        let (done, pruned) = (method_color(0), RGBColor(150, 150, 150));
        chart
            .draw_series(finite.iter().map(|d| {
                let style = if d.2 {
                    pruned.stroke_width(1)
                } else {
                    done.filled()
                };
                Circle::new((d.0, d.1), 4, style)
            }))
            .map_err(err)?;
        if best_line {
            let mut best = f64::NEG_INFINITY;
            let line: Vec<(f64, f64)> = dots
                .iter()
                .filter(|d| !d.2 && d.1.is_finite())
                .map(|d| {
                    best = best.max(d.1);
                    (d.0, best)
                })
                .collect();
            chart
                .draw_series(LineSeries::new(line, method_color(1).stroke_width(2)))
                .map_err(err)?;
        }
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// A key's value as a plot coordinate, and the axis description.
fn axis(key: &str, dist: &Dist, v: &toml::Value) -> (f64, String) {
    match dist {
        Dist::Choice(vs) => {
            let names: Vec<String> = vs
                .iter()
                .enumerate()
                .map(|(i, x)| format!("{i}: {x}"))
                .collect();
            let i = vs.iter().position(|x| x == v).unwrap_or(0);
            (i as f64, format!("{key} ({})", names.join(", ")))
        }
        Dist::LogUniform(_) => (
            v.as_float().unwrap_or(f64::NAN).log10(),
            format!("log10 {key}"),
        ),
        Dist::IntUniform(_) => (v.as_integer().unwrap_or(0) as f64, key.to_owned()),
        Dist::Uniform(_) => (v.as_float().unwrap_or(f64::NAN), key.to_owned()),
    }
}

/// The whole page.
pub fn page(
    study: &Study,
    trials: &[Trial],
    best: Option<&Trial>,
    last: Option<&super::Final>,
) -> Result<String> {
    let metric = format!("valid {}", study.metric);
    let mut s = String::new();
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>{t}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{t}</h1>\n\
         <p>Tune file <code>{f}</code>: {n} trials, {sampler} sampler, seeds {seeds:?}; each \
         trial's value is the mean over its seeds of {m} (validation only). Filled: finished; \
         hollow grey: pruned (its best before the stop); line: the best finished so far.</p>\n",
        t = esc(&study.title),
        f = esc(&study.path.display().to_string()),
        n = trials.len(),
        sampler = format!("{:?}", study.sampler).to_lowercase(),
        seeds = study.seeds,
        m = esc(&metric),
    );
    if let Some(b) = best {
        let values: Vec<String> = b.params.iter().map(|(k, v)| format!("{k} = {v}")).collect();
        let (over, test) = match last {
            Some(f) => (
                format!("trained again over the final seeds {:?}", f.seeds),
                f.test.clone(),
            ),
            None => ("mean over its seeds".to_owned(), super::test_means(b)),
        };
        let test: Vec<String> = test.iter().map(|(k, v)| format!("{k} {v:.4}")).collect();
        let _ = writeln!(
            s,
            "<p><strong>Best:</strong> trial {} ({}), {} {:.4}. Its test metrics, the only \
             test figures the study reports ({}): {}.</p>",
            b.trial,
            esc(&values.join(", ")),
            esc(&metric),
            b.value,
            esc(&over),
            esc(&test.join(", "))
        );
    }
    s.push_str("<div class=\"charts\">\n");
    let over: Vec<Dot> = trials
        .iter()
        .map(|t| (t.trial as f64, t.value, t.state == State::Pruned))
        .collect();
    s.push_str(&scatter(
        &format!("{metric} per trial"),
        "trial",
        &metric,
        &over,
        true,
    )?);
    for (k, (key, dist)) in study.space.iter().enumerate() {
        let mut desc = key.clone();
        let dots: Vec<Dot> = trials
            .iter()
            .map(|t| {
                let (x, d) = axis(key, dist, &t.params[k].1);
                desc = d;
                (x, t.value, t.state == State::Pruned)
            })
            .collect();
        s.push_str(&scatter(
            &format!("{metric} by {key}"),
            &desc,
            &metric,
            &dots,
            false,
        )?);
    }
    s.push_str("</div>\n<h2>Trials</h2>\n<table>\n<tr><th>trial</th><th class=\"l\">state</th><th>value</th>");
    for (key, _) in &study.space {
        let _ = write!(s, "<th>{}</th>", esc(key));
    }
    s.push_str("<th>epochs</th></tr>\n");
    for t in trials {
        let best_row = best.is_some_and(|b| b.trial == t.trial);
        let _ = write!(
            s,
            "<tr><td>{}</td><td class=\"l\">{}</td><td{}>{:.4}</td>",
            t.trial,
            if t.state == State::Pruned {
                "pruned"
            } else {
                "finished"
            },
            if best_row { " class=\"best\"" } else { "" },
            t.value
        );
        for (_, v) in &t.params {
            let _ = write!(s, "<td>{}</td>", esc(&v.to_string()));
        }
        let epochs: Vec<String> = t.runs.iter().map(|r| r.epoch.to_string()).collect();
        let _ = writeln!(s, "<td>{}</td></tr>", epochs.join(", "));
    }
    s.push_str("</table>\n</body>\n</html>\n");
    Ok(s)
}
