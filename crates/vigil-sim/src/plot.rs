//! Charts of a run, as SVG and PNG (plotters, pure Rust): detection-time CDF,
//! false failures over time, bytes per member per second against cluster size.
//!
//! Text needs a TrueType font: DejaVu Sans at [`FONT_PATH`] is registered when
//! present. Without it the charts are still written, without any text.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::observe::FalseClass;
use crate::report::Report;

/// The font charts use when it exists.
pub const FONT_PATH: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// Charts could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlotError {
    /// The directory or a file could not be written.
    #[error("{path}: {source}")]
    Io {
        /// Which path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Drawing failed.
    #[error("drawing {chart}: {reason}")]
    Draw {
        /// Which chart.
        chart: &'static str,
        /// What the backend said.
        reason: String,
    },
}

/// Whether text can be drawn (the font was found and registered).
pub fn fonts_available() -> bool {
    static FONT: OnceLock<bool> = OnceLock::new();
    *FONT.get_or_init(|| match std::fs::read(FONT_PATH) {
        Ok(bytes) => {
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok()
        }
        Err(_) => false,
    })
}

/// One line of a chart.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend label.
    pub label: String,
    /// Points.
    pub points: Vec<(f64, f64)>,
}

/// A line chart.
#[derive(Debug, Clone)]
pub struct Chart {
    /// File stem.
    pub file: &'static str,
    /// Title.
    pub title: String,
    /// X axis label.
    pub x: &'static str,
    /// Y axis label.
    pub y: &'static str,
    /// Lines.
    pub series: Vec<Series>,
}

const COLORS: [RGBColor; 4] =
    [RGBColor(31, 119, 180), RGBColor(214, 39, 40), RGBColor(44, 160, 44), RGBColor(255, 127, 14)];

fn draw<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, chart: &Chart, text: bool) -> Result<(), String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let pts = chart.series.iter().flat_map(|s| s.points.iter());
    let (mut x0, mut x1, mut y1) = (f64::MAX, f64::MIN, 0f64);
    for &(x, y) in pts {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y1 = y1.max(y);
    }
    if x0 > x1 {
        (x0, x1) = (0.0, 1.0);
    }
    if x1 - x0 < 1e-9 {
        x1 = x0 + 1.0;
    }
    let y1 = if y1 <= 0.0 { 1.0 } else { y1 * 1.1 };
    let mut b = ChartBuilder::on(&root);
    b.margin(15);
    if text {
        b.caption(&chart.title, ("sans-serif", 22)).x_label_area_size(40).y_label_area_size(60);
    }
    let mut c = b.build_cartesian_2d(x0..x1, 0f64..y1).map_err(|e| e.to_string())?;
    let mut mesh = c.configure_mesh();
    if text {
        mesh.x_desc(chart.x).y_desc(chart.y);
    } else {
        mesh.x_labels(0).y_labels(0);
    }
    mesh.draw().map_err(|e| e.to_string())?;
    for (i, s) in chart.series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let drawn = c
            .draw_series(LineSeries::new(s.points.iter().copied(), color.stroke_width(2)))
            .map_err(|e| e.to_string())?;
        if text {
            drawn
                .label(s.label.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        }
    }
    if text {
        c.configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| e.to_string())?;
    }
    root.present().map_err(|e| e.to_string())
}

/// Writes `chart` as `DIR/FILE.svg` and `DIR/FILE.png`.
pub fn write_chart(dir: &Path, chart: &Chart) -> Result<Vec<PathBuf>, PlotError> {
    std::fs::create_dir_all(dir).map_err(|source| PlotError::Io { path: dir.to_path_buf(), source })?;
    let text = fonts_available();
    let svg = dir.join(format!("{}.svg", chart.file));
    let png = dir.join(format!("{}.png", chart.file));
    let err = |reason: String| PlotError::Draw { chart: chart.file, reason };
    draw(SVGBackend::new(&svg, (800, 500)).into_drawing_area(), chart, text).map_err(err)?;
    draw(BitMapBackend::new(&png, (800, 500)).into_drawing_area(), chart, text).map_err(err)?;
    Ok(vec![svg, png])
}

/// Empirical CDF points of `samples`.
fn cdf(samples: &[f64]) -> Vec<(f64, f64)> {
    let mut v = samples.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len() as f64;
    let mut out = vec![(0.0, 0.0)];
    for (i, x) in v.iter().enumerate() {
        out.push((*x, i as f64 / n));
        out.push((*x, (i + 1) as f64 / n));
    }
    out
}

/// The detection-time CDF chart of a run.
pub fn detection_cdf(r: &Report) -> Chart {
    Chart {
        file: "detection_cdf",
        title: format!("Crash detection, {} members, {:.1}% loss", r.members, r.loss * 100.0),
        x: "seconds after the crash",
        y: "share of crashes",
        series: vec![
            Series { label: "first detection".into(), points: cdf(&r.detection.first_samples) },
            Series { label: "full detection".into(), points: cdf(&r.detection.full_samples) },
        ],
    }
}

/// False failures per 10 s of simulated time, by class.
pub fn false_failures(r: &Report) -> Chart {
    let bins = (r.simulated_s / 10.0).ceil().max(1.0) as usize;
    let series = [
        (FalseClass::NeverPaused, "never paused"),
        (FalseClass::Paused, "paused"),
        (FalseClass::Partitioned, "partitioned"),
    ]
    .into_iter()
    .map(|(class, label)| {
        let mut counts = vec![0.0; bins];
        for &(t, c) in &r.false_failures.timeline {
            if c == class {
                let b = ((t / 10.0) as usize).min(bins - 1);
                counts[b] += 1.0;
            }
        }
        Series {
            label: label.into(),
            points: counts.iter().enumerate().map(|(i, &c)| (i as f64 * 10.0, c)).collect(),
        }
    })
    .collect();
    Chart {
        file: "false_failures",
        title: format!("False failures over time, {} members", r.members),
        x: "simulated seconds",
        y: "false failures per 10 s",
        series,
    }
}

/// Bytes per member per second (mean and max) against cluster size (log10).
pub fn bytes_vs_size(points: &[(usize, f64, f64)]) -> Chart {
    let lg = |n: usize| (n.max(1) as f64).log10();
    Chart {
        file: "bytes_vs_size",
        title: "Bytes sent per member per second (with encryption overhead)".into(),
        x: "log10(members)",
        y: "bytes / member / s",
        series: vec![
            Series { label: "mean".into(), points: points.iter().map(|&(n, m, _)| (lg(n), m)).collect() },
            Series { label: "max".into(), points: points.iter().map(|&(n, _, x)| (lg(n), x)).collect() },
        ],
    }
}

/// Writes every chart of `report` (and of `sizes`: (members, mean, max)
/// bytes per member per second) into `dir`.
pub fn write_all(
    dir: &Path,
    report: &Report,
    sizes: &[(usize, f64, f64)],
) -> Result<Vec<PathBuf>, PlotError> {
    let mut out = Vec::new();
    out.extend(write_chart(dir, &detection_cdf(report))?);
    out.extend(write_chart(dir, &false_failures(report))?);
    let own = [(
        report.members,
        report.traffic.bytes_per_member_per_sec_mean,
        report.traffic.bytes_per_member_per_sec_max,
    )];
    out.extend(write_chart(dir, &bytes_vs_size(if sizes.is_empty() { &own } else { sizes }))?);
    Ok(out)
}
