//! The report of a finished canao run: plots (SVG and PNG, with plotters) and the files beside
//! them — `report.html` (the plots embedded), `report.md`, `pareto.csv` and `report.json`.
//!
//! This crate knows nothing of how the numbers were made: the caller fills a [`Report`] with
//! plain values (archs as strings, scores, milliseconds) and [`write`] lays them out. Everything
//! goes to a staging folder first and replaces the report folder with one rename, so a failed
//! write leaves the previous report as it was.
//!
//! PNG text needs a TrueType font at run time: [`font`] looks in `$CANAO_FONT` and the usual
//! system folders (Debian's `fonts-dejavu-core` is enough).

pub mod font;
mod pages;
mod plots;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use plots::scatter_svg;

/// What can go wrong while writing a report.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("plot {plot}: {reason}")]
    Plot { plot: String, reason: String },
    #[error(
        "no TrueType font for the plots' text: tried {tried}; install one (Debian: apt-get install \
         fonts-dejavu-core) or set CANAO_FONT to a .ttf file"
    )]
    NoFont { tried: String },
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io { path: path.to_path_buf(), source }
}

/// A device the report shows a front for: one latency objective of the search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Device {
    pub name: String,
    /// The latency constraint on this device, drawn on its Pareto plot.
    pub latency_budget_ms: Option<f64>,
}

/// One evaluated arch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Point {
    pub arch: String,
    /// The task's dev metric in [0, 1] (accuracy, Matthews or Pearson).
    pub score: f64,
    /// Predicted latency on each device of [`Report::devices`], in order.
    pub latency_ms: Vec<f64>,
    /// Within every constraint.
    pub feasible: bool,
    /// On each device's front: not dominated in (score, latency on that device) by another
    /// feasible arch.
    pub front: Vec<bool>,
}

/// A reference model, scored the same way as the searched archs (or why it could not be).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reference {
    /// What it is, e.g. `BERT-Tiny size` or `teacher (fine-tuned)`.
    pub label: String,
    pub arch: String,
    pub score: Option<f64>,
    /// Per device, as [`Point::latency_ms`]; empty when skipped.
    pub latency_ms: Vec<f64>,
    /// Why it has no point: for example, wider than the supernet.
    pub skipped: Option<String>,
}

/// An exported model: a chosen point of the front.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chosen {
    /// Why it was chosen: `knee`, `most-accurate`, `fastest-within-1pt`, …
    pub label: String,
    pub arch: String,
    pub score: f64,
    /// Per device, as [`Point::latency_ms`].
    pub latency_ms: Vec<f64>,
    /// Where the exported checkpoint is.
    pub dir: String,
    /// The command that runs it.
    pub command: String,
}

/// Search progress: the hypervolume after each evaluation, as a share of the hypervolume of
/// everything either search evaluated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// NSGA-II, one value per evaluation in evaluation order.
    pub nsga2: Vec<f64>,
    /// Evaluations spent at the end of each NSGA-II generation.
    pub generations: Vec<usize>,
    /// Random search with the same budget, when it was run.
    pub random: Option<Vec<f64>>,
    /// The hypervolume's reference point (minimised objectives).
    pub reference_point: Vec<f64>,
}

/// Predicted against measured end-to-end latency on the machine that wrote the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PredictorCheck {
    /// The profile's device.
    pub device: String,
    /// The machine the latencies were measured on.
    pub machine: String,
    pub rows: Vec<PredictorRow>,
    /// Root mean square of the relative errors.
    pub rmspe: f64,
    /// Share of rows within ±10 %.
    pub within_10: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PredictorRow {
    pub arch: String,
    pub predicted_ms: f64,
    pub measured_ms: f64,
}

/// The predicted latency of a chosen arch, by kernel kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Breakdown {
    pub label: String,
    pub arch: String,
    /// (kernel kind, predicted milliseconds), in the order the kinds should be stacked.
    pub parts: Vec<(String, f64)>,
}

/// The compiled program of a chosen arch against burn's eager forward of the same weights, both
/// measured in the same run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Speedup {
    pub label: String,
    pub arch: String,
    pub compiled_ms: f64,
    pub eager_ms: f64,
    pub threads: usize,
}

/// Everything a report shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The experiment's name.
    pub name: String,
    pub task: String,
    /// Name of the dev metric (`accuracy`, `matthews`, `pearson`).
    pub metric: String,
    /// The devices of the search's latency objectives: one Pareto plot each. The first is the
    /// one the exports were chosen, broken down and measured on.
    pub devices: Vec<Device>,
    /// Said at the top (for example, that the training budget is reduced).
    pub note: Option<String>,
    /// Every arch the search evaluated.
    pub points: Vec<Point>,
    pub references: Vec<Reference>,
    pub chosen: Vec<Chosen>,
    pub progress: Option<Progress>,
    pub predictor: Option<PredictorCheck>,
    pub breakdown: Vec<Breakdown>,
    pub speedups: Vec<Speedup>,
    /// Share of the CPUs other processes used while the predictor check and the speed-ups were
    /// measured; above 15 % the report warns that the measured latencies are inflated.
    #[serde(default)]
    pub measured_busy: Option<f64>,
    /// How the run went, as (what, value) lines: stage timings, teacher score, …
    pub facts: Vec<(String, String)>,
}

/// The files [`write`] produced, relative to the report folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Written {
    pub dir: PathBuf,
    pub files: Vec<String>,
}

impl Report {
    fn check(&self) -> Result<()> {
        let finite = |what: &str, arch: &str, v: f64| {
            if v.is_finite() { Ok(()) } else { Err(Error::Invalid(format!("{what} of {arch} is {v}"))) }
        };
        if self.devices.is_empty() {
            return Err(Error::Invalid("no device to show latency on".into()));
        }
        if self.points.is_empty() {
            return Err(Error::Invalid("no evaluated archs to report".into()));
        }
        let n = self.devices.len();
        let latencies = self
            .points
            .iter()
            .map(|p| (&p.arch, &p.latency_ms))
            .chain(self.chosen.iter().map(|c| (&c.arch, &c.latency_ms)));
        for (arch, latency) in
            latencies.chain(self.references.iter().filter(|r| r.skipped.is_none()).map(|r| (&r.arch, &r.latency_ms)))
        {
            if latency.len() != n {
                return Err(Error::Invalid(format!("{arch} has {} latencies for {n} devices", latency.len())));
            }
            for &ms in latency {
                finite("latency", arch, ms)?;
                if ms <= 0.0 {
                    return Err(Error::Invalid(format!("latency of {arch} is {ms} ms")));
                }
            }
        }
        for p in &self.points {
            finite("score", &p.arch, p.score)?;
            if p.front.len() != n {
                return Err(Error::Invalid(format!("{} has {} front flags for {n} devices", p.arch, p.front.len())));
            }
        }
        Ok(())
    }
}

/// Writes the report into `dir` (created; an earlier report there is replaced as a whole).
pub fn write(report: &Report, dir: &Path) -> Result<Written> {
    report.check()?;
    font::ensure()?;
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "report".into());
    let staging = dir.with_file_name(format!(".{name}.tmp"));
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(io_error(&staging))?;
    }
    std::fs::create_dir_all(&staging).map_err(io_error(&staging))?;
    let result = write_into(report, &staging);
    let files = match result {
        Ok(files) => files,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(io_error(dir))?;
    }
    std::fs::rename(&staging, dir).map_err(io_error(dir))?;
    Ok(Written { dir: dir.to_path_buf(), files })
}

fn write_into(report: &Report, dir: &Path) -> Result<Vec<String>> {
    let mut files = Vec::new();
    let mut save = |name: &str, bytes: &[u8]| -> Result<()> {
        let path = dir.join(name);
        std::fs::write(&path, bytes).map_err(io_error(&path))?;
        files.push(name.to_string());
        Ok(())
    };
    let figures = plots::draw_all(report, dir)?;
    for figure in &figures {
        save(&format!("{}.svg", figure.stem), figure.svg.as_bytes())?;
    }
    save("pareto.csv", pages::pareto_csv(report).as_bytes())?;
    save("report.md", pages::markdown(report, &figures).as_bytes())?;
    save("report.html", pages::html(report, &figures).as_bytes())?;
    let json = serde_json::to_string_pretty(report).map_err(|e| Error::Invalid(e.to_string()))?;
    save("report.json", json.as_bytes())?;
    files.extend(figures.iter().map(|f| format!("{}.png", f.stem)));
    files.sort();
    Ok(files)
}
