//! An SVG plot of a scale run: ingest and lookup throughput, and p99
//! latencies, against log size (log scale).

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::scale::Point;

/// A line: its label, colour, and value at a point.
type Series = (&'static str, RGBColor, fn(&Point) -> f64);

fn err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("plot: {e}")
}

/// Draws `points` into an SVG file at `out`.
pub fn draw(points: &[Point], out: &Path) -> anyhow::Result<()> {
    if points.is_empty() {
        anyhow::bail!("nothing to plot");
    }
    let root = SVGBackend::new(out, (1000, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let (left, right) = root.split_horizontally(500);
    panel(
        &left,
        points,
        "throughput (median) vs log size",
        "per second",
        SeriesLabelPosition::LowerLeft,
        &[
            ("ingest (acked entries/s)", BLUE, |p| {
                p.ingest_median_per_sec
            }),
            ("lookups with proof/s", RED, |p| p.lookups_median_per_sec),
            ("offline proof verif./s/core", GREEN, |p| p.bundles.per_sec),
        ],
    )?;
    panel(
        &right,
        points,
        "p99 latency vs log size",
        "milliseconds",
        SeriesLabelPosition::UpperLeft,
        &[
            ("submit ack (256 entries/request)", BLUE, |p| {
                p.ack_p99_median_ms
            }),
            ("lookup with proof", RED, |p| {
                crate::sys::median(p.lookups.iter().map(|l| l.p99_ms).collect())
            }),
            ("added by substituter", MAGENTA, |p| {
                p.substituter.added_p99_ms
            }),
        ],
    )?;
    root.present().map_err(err)?;
    Ok(())
}

/// One chart: `series` against log size (log scale), from 0 to a little
/// above the largest value.
fn panel(
    area: &DrawingArea<SVGBackend, Shift>,
    points: &[Point],
    caption: &str,
    y_desc: &str,
    legend: SeriesLabelPosition,
    series: &[Series],
) -> anyhow::Result<()> {
    let xmin = points.iter().map(|p| p.size).min().unwrap_or(1) as f64 / 2.0;
    let xmax = points.iter().map(|p| p.size).max().unwrap_or(1) as f64 * 2.0;
    let ymax = series
        .iter()
        .flat_map(|(_, _, f)| points.iter().map(f))
        .fold(0.1f64, f64::max)
        * 1.2;
    let mut c = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d((xmin..xmax).log_scale(), 0f64..ymax)
        .map_err(err)?;
    c.configure_mesh()
        .x_desc("entries in the log")
        .y_desc(y_desc)
        .x_label_formatter(&|x| format!("{x:.0e}"))
        .draw()
        .map_err(err)?;
    for &(name, colour, f) in series {
        let pts: Vec<(f64, f64)> = points.iter().map(|p| (p.size as f64, f(p))).collect();
        c.draw_series(LineSeries::new(pts.clone(), colour.stroke_width(2)))
            .map_err(err)?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], colour));
        c.draw_series(pts.into_iter().map(|p| Circle::new(p, 3, colour.filled())))
            .map_err(err)?;
    }
    c.configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(legend)
        .draw()
        .map_err(err)?;
    Ok(())
}
