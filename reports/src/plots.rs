//! The report's figures, each drawn once per backend: SVG (kept as text for the HTML) and PNG.

use std::path::Path;

use plotters::chart::MeshStyle;
use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use crate::font::FAMILY;
use crate::{Error, Report, Result};

/// Colours, shared by the figures and named in the captions.
pub(crate) const FRONT: RGBColor = RGBColor(31, 119, 180);
pub(crate) const RANDOM: RGBColor = RGBColor(255, 127, 14);
pub(crate) const REFERENCE: RGBColor = RGBColor(214, 39, 40);
pub(crate) const CHOSEN: RGBColor = RGBColor(44, 160, 44);
const EVALUATED: RGBColor = RGBColor(165, 165, 165);
const BAND: RGBColor = RGBColor(190, 190, 190);
/// Stacked kernel kinds, in palette order.
const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

type Drawn = std::result::Result<(), String>;

fn fail<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// One figure of the report.
pub(crate) struct Figure {
    /// File stem: `<stem>.svg` and `<stem>.png`.
    pub stem: String,
    /// The device of a Pareto plot.
    pub device: Option<usize>,
    pub title: String,
    pub caption: String,
    pub svg: String,
}

/// A figure that can be drawn on any plotters backend.
trait Plot {
    fn size(&self) -> (u32, u32);
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Drawn;
}

/// `plot` as an SVG string.
fn svg(plot: &impl Plot, stem: &str) -> Result<String> {
    let failed = |reason: String| Error::Plot { plot: stem.into(), reason };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, plot.size()).into_drawing_area();
        root.fill(&WHITE).map_err(fail).map_err(failed)?;
        plot.draw(&root).map_err(failed)?;
        root.present().map_err(fail).map_err(failed)?;
    }
    Ok(svg)
}

/// Draws `plot` as SVG (returned) and as `<dir>/<stem>.png`.
fn render(plot: &impl Plot, stem: &str, dir: &Path) -> Result<String> {
    let svg = svg(plot, stem)?;
    let failed = |reason: String| Error::Plot { plot: stem.into(), reason };
    let png = dir.join(format!("{stem}.png"));
    let root = BitMapBackend::new(&png, plot.size()).into_drawing_area();
    root.fill(&WHITE).map_err(fail).map_err(failed)?;
    plot.draw(&root).map_err(failed)?;
    root.present().map_err(fail).map_err(failed)?;
    Ok(svg)
}

/// Every figure the report has data for; PNGs are written into `dir`.
pub(crate) fn draw_all(report: &Report, dir: &Path) -> Result<Vec<Figure>> {
    let mut figures = Vec::new();
    let metric = &report.metric;
    let contention = match report.measured_busy {
        Some(busy) if busy > 0.15 => format!(
            " Other processes used {:.0} % of the CPUs during these measurements: they are inflated; rerun on an idle machine.",
            100.0 * busy
        ),
        _ => String::new(),
    };
    for (d, device) in report.devices.iter().enumerate() {
        // The first device's plot is `pareto`; others are `pareto-<device>`.
        let stem = if d == 0 { "pareto".to_string() } else { format!("pareto-{}", file_safe(&device.name)) };
        let svg = render(&Pareto { report, device: d }, &stem, dir)?;
        figures.push(Figure {
            title: format!("{metric} against latency on {}", device.name),
            caption: format!(
                "Every arch the search evaluated (grey; crosses break a constraint), the front on this device \
                 (blue), reference models scored the same way (red triangles) and the exported models (green \
                 rings). Latency is predicted for {} from its calibrated profile; {metric} is on the {} dev split \
                 with weights inherited from the supernet.",
                device.name, report.task
            ),
            stem,
            device: Some(d),
            svg,
        });
    }
    if let Some(progress) = &report.progress {
        let random = if progress.random.is_some() {
            " against random search with the same budget and its own seed (orange)"
        } else {
            " (random search was not run)"
        };
        figures.push(Figure {
            stem: "progress".into(),
            device: None,
            title: "Search progress".into(),
            caption: format!(
                "Hypervolume of the front of the first n evaluations, as a share of the hypervolume of \
                 everything evaluated: NSGA-II (blue, dots at generation ends){random}."
            ),
            svg: render(&ProgressPlot(progress), "progress", dir)?,
        });
    }
    if let Some(check) = &report.predictor {
        let points: Vec<(f64, f64)> = check.rows.iter().map(|r| (r.measured_ms, r.predicted_ms)).collect();
        figures.push(Figure {
            stem: "predictor".into(),
            device: None,
            title: format!("Latency predictor for {}", check.device),
            caption: format!(
                "Predicted against measured end-to-end latency of {} archs compiled and run on {}: RMSPE \
                 {:.1} %, {:.0} % within ±10 % (grey lines).{contention}",
                check.rows.len(),
                check.machine,
                100.0 * check.rmspe,
                100.0 * check.within_10
            ),
            svg: render(
                &Scatter { title: format!("predicted against measured ({})", check.device), points },
                "predictor",
                dir,
            )?,
        });
    }
    if !report.breakdown.is_empty() {
        figures.push(Figure {
            stem: "kernels".into(),
            device: None,
            title: "Latency by kernel kind".into(),
            caption: format!(
                "Predicted latency of each exported model on {}, summed by kernel kind (with the profile's \
                 program-level scale and per-run overhead, so that the bars add up to the end-to-end prediction).",
                report.devices[0].name
            ),
            svg: render(&Kernels(report), "kernels", dir)?,
        });
    }
    if !report.speedups.is_empty() {
        figures.push(Figure {
            stem: "speedup".into(),
            device: None,
            title: "Compiled against burn eager".into(),
            caption: format!(
                "Median latency of each exported model's compiled program (blue) and of burn's eager forward \
                 of the same weights (grey), one sequence at a time, measured in the same run on this machine.{contention}"
            ),
            svg: render(&Speedups(report), "speedup", dir)?,
        });
    }
    Ok(figures)
}

/// The legend of the labelled series, in the lower right corner.
fn legend<'a, DB, CT>(chart: &mut ChartContext<'a, DB, CT>) -> Drawn
where
    DB: DrawingBackend + 'a,
    CT: CoordTranslate,
{
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BAND)
        .label_font(text_style(13))
        .draw()
        .map_err(fail)
}

/// The mesh style every figure shares: label sizes and faint minor lines.
fn styled<'m, 'a, 'b, X, Y, DB>(mesh: &'m mut MeshStyle<'a, 'b, X, Y, DB>) -> &'m mut MeshStyle<'a, 'b, X, Y, DB>
where
    X: Ranged,
    Y: Ranged,
    DB: DrawingBackend,
{
    mesh.label_style(text_style(14)).axis_desc_style(text_style(15)).light_line_style(RGBColor(235, 235, 235))
}

fn text_style(size: u32) -> TextStyle<'static> {
    (FAMILY, size).into_font().color(&BLACK)
}

/// A log-axis tick label, kept only at 1, 2, 3 and 5 times a power of ten (the others crowd).
fn log_label(v: &f64) -> String {
    let power = 10f64.powf(v.log10().floor());
    let mantissa = (v / power * 10.0).round() / 10.0;
    if [1.0, 2.0, 3.0, 5.0].contains(&mantissa) {
        format!("{v:.3}").trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        String::new()
    }
}

/// A device name as a file-name part: letters, digits, `-` and `_` kept, the rest `_`.
fn file_safe(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect()
}

/// Accuracy against latency on one device.
struct Pareto<'a> {
    report: &'a Report,
    device: usize,
}

impl Plot for Pareto<'_> {
    fn size(&self) -> (u32, u32) {
        (960, 620)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Drawn {
        let (r, d) = (self.report, self.device);
        let device = &r.devices[d];
        // References at the same point (the teacher and the largest subnet, say) share one label.
        let mut refs: Vec<(String, f64, f64)> = Vec::new();
        for x in &r.references {
            let (Some(&ms), Some(score)) = (x.latency_ms.get(d), x.score) else { continue };
            match refs.iter_mut().find(|p| p.1 == ms && p.2 == score) {
                Some(p) => p.0 = format!("{} = {}", p.0, x.label),
                None => refs.push((x.label.clone(), ms, score)),
            }
        }
        let latencies = r.points.iter().map(|p| p.latency_ms[d]).chain(refs.iter().map(|x| x.1));
        let scores = r.points.iter().map(|p| p.score).chain(refs.iter().map(|x| x.2));
        let (lo_l, hi_l) = latencies.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
        let hi_l = device.latency_budget_ms.map_or(hi_l, |b| hi_l.max(b));
        let (lo_s, hi_s) = scores.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
        let y = (100.0 * lo_s - 2.0).max(0.0)..(100.0 * hi_s + 2.0).min(100.0);
        let (x0, x1) = (lo_l * 0.8, hi_l * 1.25);
        let right_third = x0 * (x1 / x0).powf(2.0 / 3.0);
        let mut chart = ChartBuilder::on(root)
            .caption(format!("{}: {} against latency ({})", r.name, r.metric, device.name), text_style(20))
            .margin(18)
            .x_label_area_size(48)
            .y_label_area_size(64)
            .build_cartesian_2d((x0..x1).log_scale(), y)
            .map_err(fail)?;
        styled(&mut chart.configure_mesh())
            .x_labels(30)
            .x_label_formatter(&log_label)
            .x_desc(format!("predicted latency on {} (ms, log scale)", device.name))
            .y_desc(format!("{} dev {} (%)", r.task, r.metric))
            .draw()
            .map_err(fail)?;
        if let Some(budget) = device.latency_budget_ms {
            let (y0, y1) = (chart.y_range().start, chart.y_range().end);
            chart
                .draw_series(DashedLineSeries::new([(budget, y0), (budget, y1)], 6, 4, BAND.stroke_width(2)))
                .map_err(fail)?
                .label(format!("latency budget {budget} ms"))
                .legend(|(x, y)| PathElement::new([(x, y), (x + 18, y)], BAND.stroke_width(2)));
        }
        let infeasible = r.points.iter().filter(|p| !p.feasible);
        chart
            .draw_series(
                infeasible.map(|p| Cross::new((p.latency_ms[d], 100.0 * p.score), 3, EVALUATED.stroke_width(1))),
            )
            .map_err(fail)?;
        let evaluated = r.points.iter().filter(|p| p.feasible && !p.front[d]);
        chart
            .draw_series(evaluated.map(|p| Circle::new((p.latency_ms[d], 100.0 * p.score), 3, EVALUATED.filled())))
            .map_err(fail)?
            .label(format!("evaluated ({})", r.points.len()))
            .legend(|(x, y)| Circle::new((x + 9, y), 3, EVALUATED.filled()));
        let mut front: Vec<(f64, f64)> =
            r.points.iter().filter(|p| p.front[d]).map(|p| (p.latency_ms[d], 100.0 * p.score)).collect();
        front.sort_by(|a, b| a.0.total_cmp(&b.0));
        // The front as a staircase: each point holds until the next, faster-and-worse, one.
        let stairs = front.windows(2).flat_map(|w| [w[0], (w[1].0, w[0].1)]).chain(front.last().copied());
        chart.draw_series(LineSeries::new(stairs, FRONT.stroke_width(2))).map_err(fail)?;
        chart
            .draw_series(front.iter().map(|&p| Circle::new(p, 4, FRONT.filled())))
            .map_err(fail)?
            .label(format!("Pareto front ({})", front.len()))
            .legend(|(x, y)| Circle::new((x + 9, y), 4, FRONT.filled()));
        if !refs.is_empty() {
            chart
                .draw_series(refs.iter().map(|(name, ms, score)| {
                    EmptyElement::at((*ms, 100.0 * score))
                        + TriangleMarker::new((0, 0), 7, REFERENCE.filled())
                        // Labels right of the point, or left of it in the right third of the plot.
                        + Text::new(name.clone(), (if *ms > right_third { -8 - 7 * name.len() as i32 } else { 8 }, 4), text_style(13).color(&REFERENCE))
                }))
                .map_err(fail)?
                .label("reference models")
                .legend(|(x, y)| TriangleMarker::new((x + 9, y), 6, REFERENCE.filled()));
        }
        if !r.chosen.is_empty() {
            chart
                .draw_series(r.chosen.iter().map(|c| {
                    EmptyElement::at((c.latency_ms[d], 100.0 * c.score))
                        + Circle::new((0, 0), 8, CHOSEN.stroke_width(2))
                        + Text::new(
                            c.label.clone(),
                            (if c.latency_ms[d] > right_third { -8 - 7 * c.label.len() as i32 } else { 8 }, -18),
                            text_style(13).color(&CHOSEN),
                        )
                }))
                .map_err(fail)?
                .label("exported")
                .legend(|(x, y)| Circle::new((x + 9, y), 6, CHOSEN.stroke_width(2)));
        }
        legend(&mut chart)
    }
}

/// Hypervolume share against evaluations.
struct ProgressPlot<'a>(&'a crate::Progress);

impl Plot for ProgressPlot<'_> {
    fn size(&self) -> (u32, u32) {
        (860, 480)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Drawn {
        let p = self.0;
        let n = p.nsga2.len().max(p.random.as_ref().map_or(0, Vec::len)).max(2);
        // From a little below the lowest share either search had once it had a front.
        let lowest =
            p.nsga2.iter().chain(p.random.iter().flatten()).filter(|&&v| v > 0.0).fold(1.0f64, |a, &b| a.min(b));
        let bottom = (100.0 * lowest - 5.0).clamp(0.0, 95.0).floor();
        let mut chart = ChartBuilder::on(root)
            .caption("search progress", text_style(20))
            .margin(18)
            .x_label_area_size(48)
            .y_label_area_size(64)
            .build_cartesian_2d(1.0..n as f64, bottom..101.0)
            .map_err(fail)?;
        styled(&mut chart.configure_mesh())
            .x_desc("evaluations")
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_desc("hypervolume (% of everything evaluated)")
            .draw()
            .map_err(fail)?;
        let curve = |values: &[f64]| -> Vec<(f64, f64)> {
            values.iter().enumerate().map(|(i, v)| ((i + 1) as f64, 100.0 * v)).collect()
        };
        if let Some(random) = &p.random {
            chart
                .draw_series(LineSeries::new(curve(random), RANDOM.stroke_width(2)))
                .map_err(fail)?
                .label("random search")
                .legend(|(x, y)| PathElement::new([(x, y), (x + 18, y)], RANDOM.stroke_width(2)));
        }
        chart
            .draw_series(LineSeries::new(curve(&p.nsga2), FRONT.stroke_width(2)))
            .map_err(fail)?
            .label("NSGA-II")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 18, y)], FRONT.stroke_width(2)));
        let ends = p.generations.iter().filter(|&&e| e >= 1 && e <= p.nsga2.len());
        chart
            .draw_series(ends.map(|&e| Circle::new((e as f64, 100.0 * p.nsga2[e - 1]), 3, FRONT.filled())))
            .map_err(fail)?;
        legend(&mut chart)
    }
}

/// Predicted against measured, with the diagonal and ±10 % lines.
struct Scatter {
    title: String,
    points: Vec<(f64, f64)>,
}

impl Plot for Scatter {
    fn size(&self) -> (u32, u32) {
        (720, 640)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Drawn {
        let hi = self.points.iter().flat_map(|&(a, b)| [a, b]).fold(0.0f64, f64::max).max(1e-3) * 1.05;
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, text_style(18))
            .margin(16)
            .x_label_area_size(48)
            .y_label_area_size(64)
            .build_cartesian_2d(0.0..hi, 0.0..hi)
            .map_err(fail)?;
        styled(&mut chart.configure_mesh())
            .x_desc("measured latency (ms)")
            .y_desc("predicted latency (ms)")
            .draw()
            .map_err(fail)?;
        for (factor, style) in [(1.0, BLACK.stroke_width(1)), (1.1, BAND.stroke_width(1)), (0.9, BAND.stroke_width(1))]
        {
            chart.draw_series(LineSeries::new([(0.0, 0.0), (hi, hi * factor)], style)).map_err(fail)?;
        }
        chart
            .draw_series(self.points.iter().map(|&(m, p)| Circle::new((m, p), 4, FRONT.mix(0.8).filled())))
            .map_err(fail)?;
        Ok(())
    }
}

/// A horizontal bar chart, one row per exported model, drawn as rows of rectangles over a
/// numeric y axis with the row names written above the bars.
fn bar_rows<'a, DB: DrawingBackend>(
    root: &'a DrawingArea<DB, Shift>,
    title: &str,
    x_desc: &str,
    rows: &[String],
    max: f64,
) -> std::result::Result<ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>, String> {
    let mut chart = ChartBuilder::on(root)
        .caption(title, text_style(20))
        .margin(18)
        .x_label_area_size(48)
        .y_label_area_size(12)
        .build_cartesian_2d(0.0..max * 1.18, 0.0..rows.len() as f64)
        .map_err(fail)?;
    styled(&mut chart.configure_mesh()).disable_y_mesh().y_labels(0).x_desc(x_desc).draw().map_err(fail)?;
    // Row i spans [n - i - 1, n - i): the first row on top; its name sits above its bars.
    let n = rows.len() as f64;
    chart
        .draw_series(
            rows.iter()
                .enumerate()
                .map(|(i, name)| Text::new(name.clone(), (0.0, n - i as f64 - 0.04), text_style(14))),
        )
        .map_err(fail)?;
    Ok(chart)
}

fn row_height(rows: usize) -> u32 {
    140 + 90 * rows as u32
}

/// Predicted milliseconds of each exported model, stacked by kernel kind.
struct Kernels<'a>(&'a Report);

impl Plot for Kernels<'_> {
    fn size(&self) -> (u32, u32) {
        (960, row_height(self.0.breakdown.len()) + 40)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Drawn {
        let rows: Vec<String> = self.0.breakdown.iter().map(|b| format!("{}: {}", b.label, b.arch)).collect();
        let max = self.0.breakdown.iter().map(|b| b.parts.iter().map(|p| p.1).sum::<f64>()).fold(1e-6, f64::max);
        let mut chart = bar_rows(root, "predicted latency by kernel kind", "predicted latency (ms)", &rows, max)?;
        let mut kinds: Vec<&str> = Vec::new();
        for b in &self.0.breakdown {
            for (kind, _) in &b.parts {
                if !kinds.contains(&kind.as_str()) {
                    kinds.push(kind);
                }
            }
        }
        let n = rows.len() as f64;
        for (k, kind) in kinds.iter().enumerate() {
            let colour = PALETTE[k % PALETTE.len()];
            let mut bars = Vec::new();
            for (i, b) in self.0.breakdown.iter().enumerate() {
                let top = n - i as f64 - 0.32;
                let mut start = 0.0;
                for (name, ms) in &b.parts {
                    if name == kind {
                        bars.push(Rectangle::new([(start, top - 0.5), (start + ms, top)], colour.filled()));
                    }
                    start += ms;
                }
            }
            chart
                .draw_series(bars)
                .map_err(fail)?
                .label(kind.to_string())
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], colour.filled()));
        }
        chart
            .draw_series(self.0.breakdown.iter().enumerate().map(|(i, b)| {
                let total: f64 = b.parts.iter().map(|p| p.1).sum();
                Text::new(format!("{total:.2} ms"), (total + max * 0.01, n - i as f64 - 0.62), text_style(13))
            }))
            .map_err(fail)?;
        legend(&mut chart)
    }
}

/// Compiled against burn eager, per exported model.
struct Speedups<'a>(&'a Report);

impl Plot for Speedups<'_> {
    fn size(&self) -> (u32, u32) {
        (960, row_height(self.0.speedups.len()))
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Drawn {
        let s = &self.0.speedups;
        let rows: Vec<String> = s
            .iter()
            .map(|x| format!("{}: {}  —  {:.1}× faster compiled", x.label, x.arch, x.eager_ms / x.compiled_ms))
            .collect();
        let max = s.iter().map(|x| x.eager_ms.max(x.compiled_ms)).fold(1e-6, f64::max);
        let mut chart = bar_rows(root, "compiled program against burn eager", "median latency (ms)", &rows, max)?;
        let n = rows.len() as f64;
        for (series, colour, value) in [
            ("burn eager (flex)", BAND, (|x: &crate::Speedup| x.eager_ms) as fn(&crate::Speedup) -> f64),
            ("canao compiled", FRONT, |x: &crate::Speedup| x.compiled_ms),
        ] {
            let offset = if colour == FRONT { 0.62 } else { 0.32 };
            chart
                .draw_series(s.iter().enumerate().map(|(i, x)| {
                    let top = n - i as f64 - offset;
                    Rectangle::new([(0.0, top - 0.26), (value(x), top)], colour.filled())
                }))
                .map_err(fail)?
                .label(series)
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], colour.filled()));
            chart
                .draw_series(s.iter().enumerate().map(|(i, x)| {
                    let mid = n - i as f64 - offset - 0.2;
                    Text::new(format!("{:.2} ms", value(x)), (value(x) + max * 0.01, mid + 0.1), text_style(13))
                }))
                .map_err(fail)?;
        }
        legend(&mut chart)
    }
}

/// A predicted-against-measured scatter as an SVG string, with the diagonal and ±10 % lines (for
/// `canao validate-latency`).
pub fn scatter_svg(title: &str, points: &[(f64, f64)]) -> Result<String> {
    crate::font::ensure()?;
    svg(&Scatter { title: title.to_string(), points: points.to_vec() }, "scatter")
}
