//! `report.html`: one self-contained page (no script, stylesheet, font or image from
//! anywhere else) with the report's tables and inline SVG charts drawn with plotters:
//! validation curves of every cell, and grouped bars of each method per user group.

use std::fmt::Write as _;

use anyhow::{anyhow, Result};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::results::{bounds, pvalue, Report, Row, Summary};

/// Escapes text for HTML element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

pub(crate) const STYLE: &str =
    "body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1400px}\
table{border-collapse:collapse;margin:1em 0;font-size:14px}\
th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}\
th{background:#f3f3f3}td.l,th.l{text-align:left}\
td.best{font-weight:bold;background:#eef7ee}\
.charts{display:flex;flex-wrap:wrap;gap:12px}\
.charts svg{border:1px solid #ddd}";

pub(crate) fn method_color(i: usize) -> RGBColor {
    // Colour-blind-safe qualitative colours (Okabe–Ito), cycled.
    const C: [(u8, u8, u8); 8] = [
        (0, 114, 178),
        (213, 94, 0),
        (0, 158, 115),
        (204, 121, 167),
        (230, 159, 0),
        (86, 180, 233),
        (240, 228, 66),
        (0, 0, 0),
    ];
    let (r, g, b) = C[i % C.len()];
    RGBColor(r, g, b)
}

fn fmt_num(v: Option<f64>, digits: usize) -> String {
    v.filter(|x| x.is_finite())
        .map_or_else(|| "—".into(), |x| format!("{x:.digits$}"))
}

fn fmt_pct(v: Option<f64>) -> String {
    v.filter(|x| x.is_finite())
        .map_or_else(|| "—".into(), |x| format!("{x:+.2}%"))
}

pub(crate) fn err<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow!("drawing a chart: {e}")
}

/// Valid-metric curves of every cell of one dataset × backbone: a line per method and
/// seed, coloured by method.
fn curve_chart(r: &Report, dataset: &str, backbone: &str) -> Result<Option<String>> {
    let curves: Vec<_> = r
        .curves
        .iter()
        .filter(|c| c.dataset == dataset && c.backbone == backbone && !c.points.is_empty())
        .collect();
    if curves.is_empty() {
        return Ok(None);
    }
    let max_e = curves
        .iter()
        .flat_map(|c| c.points.iter().map(|p| p.0))
        .fold(1.0, f64::max);
    let (lo, hi) = curves
        .iter()
        .flat_map(|c| c.points.iter().map(|p| p.1))
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
    let pad = ((hi - lo) * 0.08).max(1e-3);
    let metric = &r.metrics[0];
    let methods: Vec<&str> = r
        .rows
        .iter()
        .filter(|row| row.dataset == dataset && row.backbone == backbone)
        .map(|row| row.method.as_str())
        .collect();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (560, 360)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("{dataset} / {backbone}: valid {metric} per epoch"),
                ("sans-serif", 16),
            )
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d(0.0..max_e, (lo - pad).max(0.0)..hi + pad)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .y_desc(format!("valid {metric}"))
            .light_line_style(RGBColor(246, 246, 246))
            .draw()
            .map_err(err)?;
        for (mi, m) in methods.iter().enumerate() {
            let color = method_color(mi);
            let mine: Vec<_> = curves.iter().filter(|c| c.method == *m).collect();
            for (si, c) in mine.iter().enumerate() {
                let alpha = 1.0 - 0.45 * si as f64 / mine.len().max(1) as f64;
                let style = color.mix(alpha).stroke_width(2);
                let series = chart
                    .draw_series(LineSeries::new(c.points.iter().copied(), style).point_size(2))
                    .map_err(err)?;
                if si == 0 {
                    series
                        .label(m.to_string())
                        .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], color));
                }
            }
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(180, 180, 180))
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(Some(svg))
}

/// Bars of `metric` per user group (x) and method (bar colour), means over seeds, for one
/// dataset × backbone.
fn group_chart(r: &Report, dataset: &str, backbone: &str, metric: &str) -> Result<Option<String>> {
    let rows: Vec<&Row> = r
        .rows
        .iter()
        .filter(|row| row.dataset == dataset && row.backbone == backbone && !row.groups.is_empty())
        .collect();
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let n_groups = first.groups.len();
    let value = |row: &Row, g: usize| {
        row.groups
            .get(g)
            .and_then(|gs| gs.metrics.iter().find(|(k, _)| k == metric))
            .and_then(|(_, s)| s.mean)
            .filter(|v| v.is_finite())
    };
    let max = rows
        .iter()
        .flat_map(|row| (0..n_groups).filter_map(|g| value(row, g)))
        .fold(0.0, f64::max);
    let top = if max > 0.0 { max * 1.3 } else { 1.0 };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (560, 360)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("{dataset} / {backbone}: test {metric} per user group"),
                ("sans-serif", 16),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d(0.0..n_groups as f64, 0.0..top)
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_desc(format!("test {metric}"))
            .light_line_style(RGBColor(246, 246, 246))
            .draw()
            .map_err(err)?;
        let w = 0.8 / rows.len() as f64;
        for (mi, row) in rows.iter().enumerate() {
            let color = method_color(mi);
            let bars: Vec<Rectangle<(f64, f64)>> = (0..n_groups)
                .filter_map(|g| {
                    let v = value(row, g)?;
                    let x0 = g as f64 + 0.1 + mi as f64 * w;
                    Some(Rectangle::new(
                        [(x0, 0.0), (x0 + w * 0.92, v)],
                        color.filled(),
                    ))
                })
                .collect();
            chart
                .draw_series(bars)
                .map_err(err)?
                .label(row.method.clone())
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled())
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(180, 180, 180))
            .draw()
            .map_err(err)?;
        let style = ("sans-serif", 13)
            .into_font()
            .color(&BLACK)
            .pos(Pos::new(HPos::Center, VPos::Top));
        for (g, gs) in first.groups.iter().enumerate() {
            let (x, y) = chart.backend_coord(&(g as f64 + 0.5, 0.0));
            root.draw(&Text::new(
                format!("{} ({} users)", gs.label, gs.users),
                (x, y + 8),
                style.clone(),
            ))
            .map_err(err)?;
        }
        root.present().map_err(err)?;
    }
    Ok(Some(svg))
}

/// The whole page.
pub fn page(r: &Report, intro: &str) -> Result<String> {
    let mut s = String::new();
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>{t}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{t}</h1>\n\
         <p>{intro} Test metrics: mean ± sample std over seeds; Δ = improvement of the mean \
         over the baseline's (same dataset and backbone); p = two-sided paired t-test across \
         seeds against the baseline (— when undefined); bold = best mean of the dataset.</p>\n",
        t = esc(&r.title),
        intro = esc(intro)
    );
    if !r.missing.is_empty() {
        let _ = writeln!(
            s,
            "<p><strong>Unfinished cells (left out):</strong> {}</p>",
            esc(&r.missing.join(", "))
        );
    }
    s.push_str("<h2>Test metrics</h2>\n<table>\n<tr><th class=\"l\">dataset</th><th class=\"l\">backbone</th><th class=\"l\">method</th><th>seeds</th>");
    for m in &r.metrics {
        let _ = write!(s, "<th>{}</th><th>Δ</th><th>p</th>", esc(m));
    }
    s.push_str("</tr>\n");
    for row in &r.rows {
        let _ = write!(
            s,
            "<tr><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}{}</td><td>{}</td>",
            esc(&row.dataset),
            esc(&row.backbone),
            esc(&row.method),
            if row.is_baseline { " (baseline)" } else { "" },
            row.seeds.len()
        );
        for (_, m) in &row.metrics {
            let value = match m.std {
                Some(sd) => format!("{} ± {}", fmt_num(m.mean, 4), fmt_num(Some(sd), 4)),
                None => fmt_num(m.mean, 4),
            };
            let _ = write!(
                s,
                "<td{}>{value}</td><td>{}</td><td>{}</td>",
                if m.best { " class=\"best\"" } else { "" },
                fmt_pct(m.improvement_pct),
                esc(&pvalue(m.p_value))
            );
        }
        s.push_str("</tr>\n");
    }
    s.push_str("</table>\n");

    let pairs: Vec<(&str, &str)> = {
        let mut v: Vec<(&str, &str)> = Vec::new();
        for row in &r.rows {
            let k = (row.dataset.as_str(), row.backbone.as_str());
            if !v.contains(&k) {
                v.push(k);
            }
        }
        v
    };

    if r.rows.iter().any(|row| !row.groups.is_empty()) {
        s.push_str(
            "<h2>Per user group</h2>\n<p>Test users in four groups by quartiles of their TRAIN \
             interaction counts; mean over seeds (Δ against the baseline).</p>\n",
        );
        for metric in &r.group_metrics {
            let _ = write!(
                s,
                "<h3>{}</h3>\n<table>\n<tr><th class=\"l\">dataset</th><th class=\"l\">backbone</th><th class=\"l\">method</th>",
                esc(metric)
            );
            if let Some(first) = r.rows.iter().find(|row| !row.groups.is_empty()) {
                for g in &first.groups {
                    let _ = write!(s, "<th>{} ({} users)</th>", esc(&bounds(g)), g.users);
                }
            }
            s.push_str("</tr>\n");
            for row in &r.rows {
                let _ = write!(
                    s,
                    "<tr><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td>",
                    esc(&row.dataset),
                    esc(&row.backbone),
                    esc(&row.method)
                );
                for g in &row.groups {
                    let cell = g.metrics.iter().find(|(k, _)| k == metric).map_or_else(
                        || "—".to_string(),
                        |(_, gm)| match gm.improvement_pct {
                            Some(imp) => {
                                format!("{} ({})", fmt_num(gm.mean, 4), fmt_pct(Some(imp)))
                            }
                            None => fmt_num(gm.mean, 4),
                        },
                    );
                    let _ = write!(s, "<td>{}</td>", esc(&cell));
                }
                s.push_str("</tr>\n");
            }
            s.push_str("</table>\n");
        }
    }

    s.push_str("<h2>Efficiency</h2>\n<table>\n<tr><th class=\"l\">dataset</th><th class=\"l\">backbone</th><th class=\"l\">method</th><th>s/epoch</th><th>total s</th><th>epochs to best</th><th>epochs run</th></tr>\n");
    for row in &r.rows {
        let e = &row.efficiency;
        let ms = |x: &Summary, d: usize| match x.std {
            Some(sd) => format!("{} ± {}", fmt_num(x.mean, d), fmt_num(Some(sd), d)),
            None => fmt_num(x.mean, d),
        };
        let _ = writeln!(
            s,
            "<tr><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&row.dataset),
            esc(&row.backbone),
            esc(&row.method),
            ms(&e.seconds_per_epoch, 3),
            ms(&e.total_seconds, 1),
            ms(&e.best_epoch, 1),
            ms(&e.epochs_run, 1)
        );
    }
    s.push_str("</table>\n");

    s.push_str("<h2>Charts</h2>\n");
    for (d, b) in pairs {
        let _ = writeln!(
            s,
            "<h3>{} / {}</h3>\n<div class=\"charts\">",
            esc(d),
            esc(b)
        );
        if let Some(svg) = curve_chart(r, d, b)? {
            s.push_str(&svg);
            s.push('\n');
        }
        for metric in &r.group_metrics {
            if let Some(svg) = group_chart(r, d, b, metric)? {
                s.push_str(&svg);
                s.push('\n');
            }
        }
        s.push_str("</div>\n");
    }
    s.push_str("</body>\n</html>\n");
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(esc("a<b & \"c\">'"), "a&lt;b &amp; &quot;c&quot;&gt;&#39;");
    }
}
