//! The load bench's chart: requests/s and server CPU per request by scenario, as a
//! self-contained SVG (no script, no font files, no assets from elsewhere).
//!
//! Both panels use a logarithmic axis: the scenarios span three orders of magnitude (a cache
//! hit near 150k requests/s, brotli on 1 MiB near 500), and a linear axis would flatten
//! everything but the fastest.

use std::fmt::Write as _;

/// Who serves a scenario, which sets its bar's colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The bare handler, and other baselines without a layer.
    Baseline,
    /// A tower-edge layer or preset.
    TowerEdge,
    /// tower-http's equivalent.
    TowerHttp,
    /// nginx serving the same files.
    Nginx,
}

impl Kind {
    /// The kind of the scenario called `name`, from the load bench's naming.
    pub fn of(name: &str) -> Self {
        if name == "bare" || name.starts_with("bare-") || name == "redis-bare" {
            Self::Baseline
        } else if name.starts_with("tower-http") {
            Self::TowerHttp
        } else if name.starts_with("nginx") {
            Self::Nginx
        } else {
            Self::TowerEdge
        }
    }

    fn colour(self) -> &'static str {
        match self {
            Self::Baseline => "#8c8c8c",
            Self::TowerEdge => "#2f6fb0",
            Self::TowerHttp => "#d08a2e",
            Self::Nginx => "#3b9a57",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Baseline => "baseline",
            Self::TowerEdge => "tower-edge",
            Self::TowerHttp => "tower-http",
            Self::Nginx => "nginx",
        }
    }
}

/// One scenario's figures.
#[derive(Clone, Debug)]
pub struct Row {
    /// The scenario's name.
    pub name: String,
    /// Requests per second.
    pub rps: f64,
    /// Server CPU time per request, in microseconds.
    pub cpu_us: f64,
}

const LABEL_W: f64 = 200.0;
const PANEL_W: f64 = 360.0;
const GAP: f64 = 40.0;
const ROW_H: f64 = 18.0;
const TOP: f64 = 70.0;
const BOTTOM: f64 = 40.0;

/// The chart of `rows`, titled `title`, as an SVG document.
pub fn svg(title: &str, rows: &[Row]) -> String {
    let width = LABEL_W + 2.0 * PANEL_W + GAP + 80.0;
    let height = TOP + ROW_H * rows.len() as f64 + BOTTOM;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(
        out,
        r##"<rect width="100%" height="100%" fill="#ffffff"/>"##
    );
    let _ = writeln!(
        out,
        r#"<text x="10" y="20" font-size="14" font-weight="bold">{}</text>"#,
        escape(title)
    );
    // The legend.
    let mut x = 10.0;
    for kind in [
        Kind::Baseline,
        Kind::TowerEdge,
        Kind::TowerHttp,
        Kind::Nginx,
    ] {
        let _ = writeln!(
            out,
            r#"<rect x="{x}" y="30" width="10" height="10" fill="{}"/><text x="{}" y="39">{}</text>"#,
            kind.colour(),
            x + 14.0,
            kind.label()
        );
        x += 100.0;
    }
    let rps = Axis::spanning(rows.iter().map(|r| r.rps));
    let cpu = Axis::spanning(rows.iter().map(|r| r.cpu_us));
    let left = LABEL_W;
    let right = LABEL_W + PANEL_W + GAP;
    panel(
        &mut out,
        left,
        "requests/s (log scale; longer is better)",
        &rps,
        rows.len(),
        si,
    );
    panel(
        &mut out,
        right,
        "server CPU per request, µs (log scale; shorter is better)",
        &cpu,
        rows.len(),
        |v| format!("{v}"),
    );
    for (i, row) in rows.iter().enumerate() {
        let y = TOP + ROW_H * i as f64;
        let colour = Kind::of(&row.name).colour();
        let _ = writeln!(
            out,
            r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#,
            LABEL_W - 8.0,
            y + 12.5,
            escape(&row.name)
        );
        bar(&mut out, left, y, rps.length(row.rps), colour, &si(row.rps));
        bar(
            &mut out,
            right,
            y,
            cpu.length(row.cpu_us),
            colour,
            &format!("{:.1}", row.cpu_us),
        );
    }
    out.push_str("</svg>\n");
    out
}

/// A logarithmic axis from the power of ten below the smallest value to the one above the
/// largest.
struct Axis {
    low: f64,
    high: f64,
}

impl Axis {
    fn spanning(values: impl Iterator<Item = f64>) -> Self {
        let (mut min, mut max) = (f64::INFINITY, 0.0_f64);
        for v in values.filter(|v| v.is_finite() && *v > 0.0) {
            min = min.min(v);
            max = max.max(v);
        }
        if !min.is_finite() {
            return Self {
                low: 1.0,
                high: 10.0,
            };
        }
        let low = 10f64.powf(min.log10().floor());
        let high = 10f64.powf(max.log10().ceil()).max(low * 10.0);
        Self { low, high }
    }

    /// The bar length of `v`, in pixels.
    fn length(&self, v: f64) -> f64 {
        if !(v.is_finite() && v > self.low) {
            return 0.0;
        }
        PANEL_W * (v / self.low).log10() / (self.high / self.low).log10()
    }

    /// The powers of ten from `low` to `high`.
    fn ticks(&self) -> impl Iterator<Item = f64> + '_ {
        std::iter::successors(Some(self.low), |t| Some(t * 10.0))
            .take_while(|t| *t <= self.high * 1.000_001)
    }
}

fn panel(
    out: &mut String,
    x0: f64,
    title: &str,
    axis: &Axis,
    rows: usize,
    tick_label: impl Fn(f64) -> String,
) {
    let bottom = TOP + ROW_H * rows as f64;
    let _ = writeln!(
        out,
        r#"<text x="{x0}" y="{}" font-weight="bold">{}</text>"#,
        TOP - 12.0,
        escape(title)
    );
    for tick in axis.ticks() {
        let x = x0 + axis.length(tick);
        let _ = writeln!(
            out,
            r##"<line x1="{x:.1}" y1="{}" x2="{x:.1}" y2="{bottom}" stroke="#dddddd"/><text x="{x:.1}" y="{}" text-anchor="middle" fill="#555555">{}</text>"##,
            TOP - 4.0,
            bottom + 14.0,
            escape(&tick_label(tick))
        );
    }
}

fn bar(out: &mut String, x0: f64, y: f64, length: f64, colour: &str, value: &str) {
    let _ = writeln!(
        out,
        r#"<rect x="{x0}" y="{}" width="{length:.1}" height="{}" fill="{colour}"/><text x="{:.1}" y="{}">{}</text>"#,
        y + 3.0,
        ROW_H - 6.0,
        x0 + length + 4.0,
        y + 12.5,
        escape(value)
    );
}

/// `v` with a k or M suffix.
fn si(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> Vec<Row> {
        vec![
            Row {
                name: "bare".into(),
                rps: 150_000.0,
                cpu_us: 6.0,
            },
            Row {
                name: "preset-hit".into(),
                rps: 120_000.0,
                cpu_us: 8.0,
            },
            Row {
                name: "zip-br-1m".into(),
                rps: 500.0,
                cpu_us: 2000.0,
            },
        ]
    }

    #[test]
    fn every_scenario_has_a_labelled_bar_in_each_panel() {
        let svg = svg("t <&>", &rows());
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("t &lt;&amp;&gt;"));
        for name in ["bare", "preset-hit", "zip-br-1m"] {
            assert!(svg.contains(&format!(">{name}</text>")), "{name}");
        }
        assert!(svg.contains(">150.0k</text>") && svg.contains(">2000.0</text>"));
        // Six bars and four legend swatches.
        assert_eq!(svg.matches("<rect").count(), 1 + 4 + 6);
    }

    #[test]
    fn the_log_axis_orders_bars_by_value_and_fits_them_in_the_panel() {
        let axis = Axis::spanning(rows().iter().map(|r| r.rps));
        assert_eq!((axis.low, axis.high), (100.0, 1_000_000.0));
        let (slow, fast) = (axis.length(500.0), axis.length(150_000.0));
        assert!(
            0.0 < slow && slow < fast && fast <= PANEL_W,
            "{slow} {fast}"
        );
        assert_eq!(axis.ticks().count(), 5);
        // A value of zero (a scenario that failed) has no bar rather than a broken one.
        assert_eq!(axis.length(0.0), 0.0);
    }

    #[test]
    fn kinds_follow_the_bench_naming() {
        assert_eq!(Kind::of("bare"), Kind::Baseline);
        assert_eq!(Kind::of("bare-hit-fields"), Kind::Baseline);
        assert_eq!(Kind::of("tower-http-10k"), Kind::TowerHttp);
        assert_eq!(Kind::of("nginx-304"), Kind::Nginx);
        assert_eq!(Kind::of("fs-10k"), Kind::TowerEdge);
    }
}
