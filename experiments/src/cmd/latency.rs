//! The latency commands: `calibrate`, `predict`, `validate-latency`, `import`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use arch::SearchSpace;
use indicatif::{ProgressBar, ProgressStyle};
use latency::calibrate::{CalibrationOptions, Progress, calibrate};
use latency::validate::{held_out_archs, validate};
use latency::{Device, DeviceProfile, Predictor};
use serde_json::json;

use crate::io::{parse_arch, print_json, threads_label, tuning_cache, write_atomic};

/// A progress bar fed by the latency crate's progress callbacks.
pub struct Bar(Option<ProgressBar>);

impl Bar {
    pub fn new(quiet: bool) -> Bar {
        Bar((!quiet).then(|| {
            let bar = ProgressBar::new(1);
            bar.set_style(
                ProgressStyle::with_template("{msg:>14} [{bar:30}] {pos}/{len} {elapsed_precise} eta {eta}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar
        }))
    }
    pub fn update(&self, p: Progress) {
        if let Some(bar) = &self.0 {
            bar.set_message(p.stage);
            bar.set_length(p.total as u64);
            bar.set_position(p.done as u64);
        }
    }
    pub fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

/// Reads a search space: a RON `SearchSpace` file, or an experiment file with a `space` field.
fn read_space(path: &Path) -> Result<SearchSpace> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let space: SearchSpace = match ron::from_str(&text) {
        Ok(space) => space,
        Err(direct) => {
            let value: ron::Value = ron::from_str(&text).with_context(|| format!("{}: not RON", path.display()))?;
            let ron::Value::Map(map) = value else { bail!("{}: not a search space: {direct}", path.display()) };
            let space = map
                .iter()
                .find(|(k, _)| matches!(k, ron::Value::String(s) if s == "space"))
                .map(|(_, v)| v.clone())
                .with_context(|| format!("{}: not a search space ({direct}) and no `space` field", path.display()))?;
            space.into_rust().with_context(|| format!("{}: field `space`", path.display()))?
        }
    };
    space.validate().with_context(|| format!("in {}", path.display()))?;
    Ok(space)
}

/// Drift since calibration (as a fraction) above which `validate-latency` says to calibrate again:
/// on the development machine, 2.9 % of drift took a 1-thread profile from 94 % of held-out archs
/// within ±5 % (at calibration speed) to 72 %, and 1.0 % took another validation from 98 % to 95 %
/// (BENCHMARKS.md, issue 4).
const DRIFT_WARNING: f64 = 0.02;

/// Calibrate a latency profile of this machine: time the compiled kernels of archs that span a
/// search space, fit a model per kernel kind, detect which fusions pay off.
#[derive(Debug, clap::Args)]
pub struct CalibrateArgs {
    /// Worker threads the programs will run with on this device.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Search space (a RON SearchSpace or an experiment file); default: the built-in space.
    #[arg(long)]
    space: Option<PathBuf>,
    /// Where to write the profile (RON).
    #[arg(long)]
    out: PathBuf,
    /// Device name recorded in the profile.
    #[arg(long, default_value = "this-machine")]
    name: String,
    /// Archs whose programs are timed end to end, for the program-level terms (about 1.5 s each
    /// at 1 thread on the default space; see `latency::calibrate::DEFAULT_ARCHS`).
    #[arg(long, default_value_t = latency::calibrate::DEFAULT_ARCHS)]
    archs: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Skip fusion-rule detection (keep every pass on).
    #[arg(long)]
    no_fusion_rules: bool,
    /// Measure nothing: refit the kernel models and program-level terms of this existing
    /// profile from the samples it stores (after a canao update that changed the fitting), and
    /// write the result to --out.
    #[arg(long, conflicts_with_all = ["threads", "space", "archs", "seed", "no_fusion_rules"])]
    refit: Option<PathBuf>,
}

pub fn calibrate_cmd(args: CalibrateArgs) -> Result<()> {
    if let Some(path) = &args.refit {
        let mut profile = DeviceProfile::load(path)?;
        latency::calibrate::fit_models(&mut profile).with_context(|| format!("refitting {}", path.display()))?;
        profile.save(&args.out)?;
        println!("refitted {} into {}", path.display(), args.out.display());
        print_fit(&profile);
        return Ok(());
    }
    let space = match &args.space {
        Some(path) => read_space(path)?,
        None => SearchSpace::default(),
    };
    let options = CalibrationOptions {
        name: args.name.clone(),
        threads: args.threads,
        batch: 1,
        archs: args.archs,
        seed: args.seed,
        tuning_cache: Some(tuning_cache()),
        fusion_rules: !args.no_fusion_rules,
    };
    let start = Instant::now();
    let bar = Bar::new(false);
    let profile = calibrate(&space, &options, &mut |p| bar.update(p))?;
    bar.finish();
    profile.save(&args.out)?;
    println!(
        "wrote {} in {:.0} s: {} kernel samples, {} kinds",
        args.out.display(),
        start.elapsed().as_secs_f64(),
        profile.samples.len(),
        profile.models.len(),
    );
    print_fit(&profile);
    Ok(())
}

/// The fitted models, program-level terms and fusion rules of a profile.
fn print_fit(profile: &DeviceProfile) {
    print!(
        "  program terms: overhead {:.4} ms, {:.4} ms per kernel, scale {:.4}",
        profile.overhead_ms, profile.per_kernel_ms, profile.scale
    );
    match &profile.cache {
        Some(c) => println!(
            ", {:+.4} × (1 − weights / {} MiB) for programs whose weights take less",
            c.factor, c.footprint_mib
        ),
        None => println!(", no cache term"),
    }
    for (kind, model) in &profile.models {
        let fmt = |e: Option<f64>| e.map_or("-".to_string(), |e| format!("{:.1}%", e * 100.0));
        println!(
            "  {kind:<26} {:>4} samples  {:<16} held-out RMSPE: linear {} trees {}",
            model.samples,
            model.family(),
            fmt(model.holdout_rmspe_linear),
            fmt(model.holdout_rmspe_trees)
        );
    }
    for rule in &profile.fusion_rules {
        println!(
            "  fusion {:<22} {} (the ops it fuses take {:.2}× the fused kernels' time{})",
            rule.pass,
            if rule.enabled { "on " } else { "off" },
            rule.speedup,
            if rule.compared.is_empty() { String::new() } else { format!(": {}", rule.compared) }
        );
    }
}

/// Predict the end-to-end latency of an arch on a profiled device, with a per-kernel breakdown;
/// or, with --sample N, time the prediction of N sampled archs.
#[derive(Debug, clap::Args)]
pub struct PredictArgs {
    /// Device profile (RON).
    #[arg(long)]
    profile: PathBuf,
    /// Architecture: compact string, RON, or a RON file.
    #[arg(long, required_unless_present = "sample")]
    arch: Option<String>,
    /// Sequence length (overrides the arch's).
    #[arg(long)]
    seq: Option<usize>,
    /// Instead of one arch, predict this many archs sampled from the profile's space and report
    /// the throughput.
    #[arg(long)]
    sample: Option<usize>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print one JSON object as the last line.
    #[arg(long)]
    json: bool,
}

pub fn predict_cmd(args: PredictArgs) -> Result<()> {
    let profile = DeviceProfile::load(&args.profile)?;
    let predictor = Predictor::new(&profile);
    if let Some(n) = args.sample {
        let archs = held_out_archs(&profile, n, args.seed)?;
        let start = Instant::now();
        let results = predictor.predict_many(&archs);
        let secs = start.elapsed().as_secs_f64();
        let ms: Vec<f64> = results.into_iter().collect::<Result<_, _>>()?;
        let mean = ms.iter().sum::<f64>() / ms.len().max(1) as f64;
        println!("predicted {n} archs in {secs:.3} s ({:.0} archs/s); mean latency {mean:.3} ms", n as f64 / secs);
        if args.json {
            print_json(&json!({"archs": n, "seconds": secs, "archs_per_second": n as f64 / secs, "mean_ms": mean}));
        }
        return Ok(());
    }
    let Some(arch) = &args.arch else { bail!("give --arch or --sample") };
    let arch = parse_arch(arch, args.seq)?;
    let p = predictor.predict(&arch)?;
    println!(
        "{arch} on {} ({}): {:.3} ms predicted",
        profile.device.name,
        threads_label(profile.device.threads),
        p.total_ms
    );
    if p.extrapolated {
        println!("note: some kernels lie outside the calibrated shapes; the prediction extrapolates");
    }
    if let Some(why) = &p.outside_space {
        println!("note: {why}");
    }
    println!(
        "  {:>9.4} ms  fixed: overhead {:.4} ms + {} kernels × {:.4} ms",
        p.overhead_ms,
        profile.overhead_ms,
        p.kernels.len(),
        profile.per_kernel_ms
    );
    println!("  × {:.4}      on the sum of the kernels below", p.scale);
    for (key, ms) in &p.kernels {
        println!("  {ms:>9.4} ms  {key}");
    }
    if args.json {
        print_json(&json!({
            "arch": arch.to_string(),
            "device": profile.device.name,
            "threads": profile.device.threads,
            "predicted_ms": p.total_ms,
            "overhead_ms": p.overhead_ms,
            "scale": p.scale,
            "extrapolated": p.extrapolated,
            "outside_space": p.outside_space,
            "kernels": p.kernels.iter().map(|(k, ms)| json!({"kernel": k.to_string(), "kind": k.kind(), "ms": ms})).collect::<Vec<_>>(),
        }));
    }
    Ok(())
}

/// Validate a profile on this machine: sample held-out archs, compile and measure them end to
/// end, compare with the predictions (RMSPE, share within ±5 % and ±10 %, Spearman's ρ).
#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    #[arg(long)]
    profile: PathBuf,
    /// Held-out archs.
    #[arg(long, default_value_t = 100)]
    n: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Where to write the per-arch CSV (default: next to the profile, `<profile>.validation.csv`).
    #[arg(long)]
    csv: Option<PathBuf>,
    /// Where to write the predicted-against-measured scatter plot (default `<profile>.validation.svg`).
    #[arg(long)]
    svg: Option<PathBuf>,
    /// Print one JSON object as the last line.
    #[arg(long)]
    json: bool,
}

pub fn validate_cmd(args: ValidateArgs) -> Result<()> {
    let profile = DeviceProfile::load(&args.profile)?;
    let archs = held_out_archs(&profile, args.n, args.seed)?;
    let bar = Bar::new(args.json);
    let v = validate(&profile, &archs, &mut |p| bar.update(p))?;
    bar.finish();
    let csv = args.csv.unwrap_or_else(|| args.profile.with_extension("validation.csv"));
    let svg = args.svg.unwrap_or_else(|| args.profile.with_extension("validation.svg"));
    write_atomic(&csv, v.to_csv().as_bytes())?;
    let points: Vec<(f64, f64)> = v.rows.iter().map(|r| (r.measured_ms, r.predicted_ms)).collect();
    let threads = threads_label(profile.device.threads);
    let title = format!("{} ({threads}): predicted vs measured, {} archs", profile.device.name, v.rows.len());
    write_atomic(&svg, reports::scatter_svg(&title, &points)?.as_bytes())?;
    println!(
        "{} held-out archs on {} ({threads}): RMSPE {:.2}% (measured shapes looked up: {:.2}%), within ±5% {:.0}%, within ±10% {:.0}%, Spearman {:.4}",
        v.rows.len(),
        profile.device.name,
        v.rmspe * 100.0,
        v.rmspe_lookup * 100.0,
        v.within_5 * 100.0,
        v.within_10 * 100.0,
        v.spearman
    );
    if let Some(d) = &v.drift {
        println!(
            "this machine ran {} calibration programs {:+.1}% against calibration time; at calibration speed: RMSPE {:.2}%, within ±5% {:.0}%, within ±10% {:.0}% (a diagnostic: the result is the line above)",
            d.probes,
            d.drift * 100.0,
            d.rmspe_at_calibration_speed * 100.0,
            d.within_5_at_calibration_speed * 100.0,
            d.within_10_at_calibration_speed * 100.0
        );
        if d.drift.abs() > DRIFT_WARNING {
            eprintln!(
                "warning: the device runs {:.1}% {} than when {} was calibrated; a predictor of a few percent error \
                 has no room for that at ±5%: calibrate again with the device as idle as it will be when it is \
                 validated, then validate right after",
                100.0 * d.drift.abs(),
                if d.drift > 0.0 { "slower" } else { "faster" },
                args.profile.display()
            );
        }
    }
    println!("wrote {} and {}", csv.display(), svg.display());
    if args.json {
        print_json(&json!({
            "profile": args.profile.display().to_string(),
            "n": v.rows.len(),
            "seed": args.seed,
            "rmspe": v.rmspe,
            "rmspe_lookup": v.rmspe_lookup,
            "within_5": v.within_5,
            "within_10": v.within_10,
            "spearman": v.spearman,
            "drift": v.drift,
            "csv": csv.display().to_string(),
            "svg": svg.display().to_string(),
        }));
    }
    Ok(())
}

/// Build a profile from kernel latencies measured with your own harness (see the README:
/// columns `kind,dims,median_ms`).
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The measurements.
    #[arg(long)]
    csv: PathBuf,
    /// Where to write the profile.
    #[arg(long)]
    out: PathBuf,
    /// Device name.
    #[arg(long)]
    name: String,
    /// Threads the measurements used.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Device kind (cpu, gpu, npu, …).
    #[arg(long, default_value = "cpu")]
    kind: String,
    /// Fixed per-program overhead in milliseconds, if your harness measured one.
    #[arg(long, default_value_t = 0.0)]
    overhead_ms: f64,
}

pub fn import_cmd(args: ImportArgs) -> Result<()> {
    let device = Device {
        name: args.name.clone(),
        kind: args.kind.clone(),
        cpu_model: "unknown (imported)".into(),
        cores: 0,
        simd: "unknown".into(),
        threads: args.threads,
        os: "unknown".into(),
        notes: Default::default(),
    };
    let profile = latency::import::import_csv(&args.csv, device, args.overhead_ms)?;
    profile.save(&args.out)?;
    println!("wrote {}: {} samples, {} kinds", args.out.display(), profile.samples.len(), profile.models.len());
    Ok(())
}
