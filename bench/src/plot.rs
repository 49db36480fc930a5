//! The scaling plot: start-all time and memory against N, one polyline per supervisor and
//! jail, log-log axes (a straight line of slope 1 is linear growth; a dotted one is drawn
//! for reference). Plain SVG, written by hand: no plotting crate to build.

use std::fmt::Write;

/// One curve: its label and its (N, value) points.
#[derive(Debug, Clone)]
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

/// One panel: a title, a y-axis label, its curves.
#[derive(Debug, Clone)]
pub struct Panel {
    pub title: String,
    pub y_label: String,
    pub series: Vec<Series>,
}

const PANEL_W: f64 = 460.0;
const PANEL_H: f64 = 320.0;
const MARGIN: f64 = 60.0;
const LEGEND_H: f64 = 110.0;
const COLORS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
];

/// Panels side by side in one SVG document.
pub fn svg(panels: &[Panel]) -> String {
    let width = panels.len() as f64 * (PANEL_W + MARGIN) + MARGIN;
    let height = PANEL_H + 2.0 * MARGIN + LEGEND_H;
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    for (i, panel) in panels.iter().enumerate() {
        let left = MARGIN + i as f64 * (PANEL_W + MARGIN);
        draw_panel(&mut out, panel, left, MARGIN);
    }
    out += "</svg>\n";
    out
}

/// Decades covering `values` (log10 floor and ceiling).
fn decades(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| *v > 0.0)
        .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if lo > hi {
        return (0.0, 1.0);
    }
    let (lo, hi) = (lo.log10().floor(), hi.log10().ceil());
    (lo, if hi > lo { hi } else { lo + 1.0 })
}

fn draw_panel(out: &mut String, panel: &Panel, left: f64, top: f64) {
    let points = || panel.series.iter().flat_map(|s| s.points.iter());
    let (x0, x1) = decades(points().map(|p| p.0));
    let (y0, y1) = decades(points().map(|p| p.1));
    let x = |v: f64| left + (v.log10() - x0) / (x1 - x0) * PANEL_W;
    let y = |v: f64| top + PANEL_H - (v.log10() - y0) / (y1 - y0) * PANEL_H;
    let bottom = top + PANEL_H;
    let _ = writeln!(
        out,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-weight=\"bold\">{}</text>",
        left + PANEL_W / 2.0,
        top - 20.0,
        escape(&panel.title)
    );
    let _ = writeln!(
        out,
        "<rect x=\"{left}\" y=\"{top}\" width=\"{PANEL_W}\" height=\"{PANEL_H}\" fill=\"none\" stroke=\"black\"/>"
    );
    for d in x0 as i32..=x1 as i32 {
        let v = 10f64.powi(d);
        let _ = writeln!(
            out,
            "<line x1=\"{0}\" y1=\"{top}\" x2=\"{0}\" y2=\"{bottom}\" stroke=\"#ddd\"/>\
             <text x=\"{0}\" y=\"{1}\" text-anchor=\"middle\">{2}</text>",
            x(v),
            bottom + 16.0,
            number(v)
        );
    }
    for d in y0 as i32..=y1 as i32 {
        let v = 10f64.powi(d);
        let _ = writeln!(
            out,
            "<line x1=\"{left}\" y1=\"{0}\" x2=\"{1}\" y2=\"{0}\" stroke=\"#ddd\"/>\
             <text x=\"{2}\" y=\"{3}\" text-anchor=\"end\">{4}</text>",
            y(v),
            left + PANEL_W,
            left - 6.0,
            y(v) + 4.0,
            number(v)
        );
    }
    let _ = writeln!(
        out,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">vassals (N, log)</text>\
         <text x=\"{}\" y=\"{}\" text-anchor=\"middle\" transform=\"rotate(-90 {} {})\">{}</text>",
        left + PANEL_W / 2.0,
        bottom + 36.0,
        left - 45.0,
        top + PANEL_H / 2.0,
        left - 45.0,
        top + PANEL_H / 2.0,
        escape(&panel.y_label)
    );
    for (i, series) in panel.series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let path: Vec<String> = series
            .points
            .iter()
            .filter(|p| p.0 > 0.0 && p.1 > 0.0)
            .map(|&(px, py)| format!("{:.1},{:.1}", x(px), y(py)))
            .collect();
        let _ = writeln!(
            out,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2\"/>",
            path.join(" ")
        );
        for p in &path {
            let (cx, cy) = p.split_once(',').unwrap_or(("0", "0"));
            let _ = writeln!(
                out,
                "<circle cx=\"{cx}\" cy=\"{cy}\" r=\"3\" fill=\"{color}\"/>"
            );
        }
        let ly = bottom + 56.0 + i as f64 * 16.0;
        let _ = writeln!(
            out,
            "<line x1=\"{left}\" y1=\"{ly}\" x2=\"{}\" y2=\"{ly}\" stroke=\"{color}\" stroke-width=\"2\"/>\
             <text x=\"{}\" y=\"{}\">{}</text>",
            left + 24.0,
            left + 30.0,
            ly + 4.0,
            escape(&series.label)
        );
    }
    linear_reference(out, panel, &x, &y);
}

/// A dotted line of slope 1 through the first series' first point: linear growth.
fn linear_reference(
    out: &mut String,
    panel: &Panel,
    x: &dyn Fn(f64) -> f64,
    y: &dyn Fn(f64) -> f64,
) {
    let Some(&(n0, v0)) = panel.series.first().and_then(|s| s.points.first()) else {
        return;
    };
    let Some(&(n1, _)) = panel.series.first().and_then(|s| s.points.last()) else {
        return;
    };
    if n0 <= 0.0 || v0 <= 0.0 || n1 <= n0 {
        return;
    }
    let _ = writeln!(
        out,
        "<polyline points=\"{:.1},{:.1} {:.1},{:.1}\" fill=\"none\" stroke=\"gray\" stroke-dasharray=\"2,4\"/>\
         <text x=\"{:.1}\" y=\"{:.1}\" fill=\"gray\" text-anchor=\"end\">linear</text>",
        x(n0),
        y(v0),
        x(n1),
        y(v0 * n1 / n0),
        x(n1) - 4.0,
        y(v0 * n1 / n0) - 4.0
    );
}

fn number(v: f64) -> String {
    if v >= 1.0 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_a_polyline_per_series() {
        let panel = Panel {
            title: "start <all>".into(),
            y_label: "s".into(),
            series: vec![Series {
                label: "emperor".into(),
                points: vec![(10.0, 0.03), (1000.0, 2.9)],
            }],
        };
        let doc = svg(&[panel]);
        assert!(doc.starts_with("<svg"));
        assert_eq!(doc.matches("<polyline").count(), 2);
        assert!(doc.contains("start &lt;all&gt;"));
    }

    #[test]
    fn decades_cover_the_values() {
        assert_eq!(decades([10.0, 5000.0].into_iter()), (1.0, 4.0));
        assert_eq!(decades([0.03, 2.9].into_iter()), (-2.0, 1.0));
    }
}
