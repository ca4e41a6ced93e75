//! SVG plots (plotters' SVG backend needs no font files).

use anyhow::{Result, anyhow};
use plotters::prelude::*;

/// A predicted-against-measured scatter with the diagonal and ±10 % bands.
pub fn scatter_svg(title: &str, points: &[(f64, f64)]) -> Result<String> {
    let mut svg = String::new();
    {
        let hi = points.iter().flat_map(|&(a, b)| [a, b]).fold(0.0f64, f64::max).max(1e-3) * 1.05;
        let root = SVGBackend::with_string(&mut svg, (720, 640)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow!("plot: {e}"))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..hi, 0.0..hi)
            .map_err(|e| anyhow!("plot: {e}"))?;
        chart
            .configure_mesh()
            .x_desc("measured latency (ms)")
            .y_desc("predicted latency (ms)")
            .draw()
            .map_err(|e| anyhow!("plot: {e}"))?;
        for (factor, style) in [
            (1.0, BLACK.stroke_width(1)),
            (1.1, RGBColor(180, 180, 180).stroke_width(1)),
            (0.9, RGBColor(180, 180, 180).stroke_width(1)),
        ] {
            chart
                .draw_series(LineSeries::new([(0.0, 0.0), (hi, hi * factor)], style))
                .map_err(|e| anyhow!("plot: {e}"))?;
        }
        chart
            .draw_series(points.iter().map(|&(m, p)| Circle::new((m, p), 3, BLUE.mix(0.7).filled())))
            .map_err(|e| anyhow!("plot: {e}"))?;
        root.present().map_err(|e| anyhow!("plot: {e}"))?;
    }
    Ok(svg)
}
