//! Calibration: compile archs that span a search space, time every kernel of their programs on
//! this device, fit one model per kernel kind, and detect which fusions pay off here.
//!
//! Kernels are timed where they run: inside real programs, one kernel after another, so each
//! sees the caches its predecessors leave (what end-to-end latency is made of). Each program is
//! profiled in rounds until its summed kernel medians move by less than 2 % between rounds;
//! kernels whose spread stays wide are re-measured. Worker threads are pinned to CPUs.

use std::collections::BTreeMap;
use std::path::PathBuf;

use arch::{Arch, SearchSpace};
use compiler::timing::{summarize, time_runs};
use compiler::{Batch, CompileOptions, KernelKey, PassSelection, Tuning, Weights, compile, passes};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::features::{feature_names, features};
use crate::models::fit_kind;
use crate::profile::{Device, DeviceProfile, FusionRule, KernelSample, ProgramSample};
use crate::{Error, Result};

/// How to calibrate.
#[derive(Debug, Clone)]
pub struct CalibrationOptions {
    /// Device name written into the profile.
    pub name: String,
    pub threads: usize,
    pub batch: usize,
    /// Archs sampled from the space (the smallest and largest are always added).
    pub archs: usize,
    pub seed: u64,
    /// Where tuned GEMM schedules are cached across runs.
    pub tuning_cache: Option<PathBuf>,
    /// Time each fusion pass on and off and record which pay off.
    pub fusion_rules: bool,
}

impl Default for CalibrationOptions {
    fn default() -> Self {
        CalibrationOptions {
            name: "this-machine".into(),
            threads: 1,
            batch: 1,
            archs: 40,
            seed: 0,
            tuning_cache: None,
            fusion_rules: true,
        }
    }
}

/// What calibration is doing, for progress bars.
#[derive(Debug, Clone)]
pub struct Progress {
    pub stage: &'static str,
    pub done: usize,
    pub total: usize,
}

/// Programs compiled with `disabled` passes off, tuned and pinned as calibration runs them.
fn options(opts: &CalibrationOptions, disabled: &[String]) -> CompileOptions {
    CompileOptions {
        batch: opts.batch,
        threads: opts.threads,
        passes: if disabled.is_empty() { PassSelection::All } else { PassSelection::Without(disabled.to_vec()) },
        tuning: Tuning::Auto { cache_file: opts.tuning_cache.clone() },
        pin_threads: true,
        ..Default::default()
    }
}

/// The archs whose kernels are measured: the extremes of the space and a seeded sample.
pub fn sample_archs(space: &SearchSpace, count: usize, seed: u64) -> Vec<Arch> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut archs = vec![space.smallest(), space.largest()];
    while archs.len() < count.max(2) {
        let arch = space.sample(&mut rng);
        if !archs.contains(&arch) {
            archs.push(arch);
        }
    }
    archs
}

/// A compiled program with its input, ready to time.
struct Runner {
    program: compiler::Program,
    input: Batch,
}

impl Runner {
    fn new(arch: &Arch, options: &CompileOptions) -> Result<Runner> {
        let weights = Weights::random(arch, 0);
        let input = Batch::synthetic(arch, &vec![arch.seq_len; options.batch], 0);
        let mut program = compile(arch, &weights, options)?;
        program.run(&input)?;
        Ok(Runner { program, input })
    }

    /// Median milliseconds of one round (at least 5 runs and 30 ms).
    fn round(&mut self) -> Result<f64> {
        let mut failure = None;
        let (program, input) = (&mut self.program, &self.input);
        let t = time_runs(
            || {
                if let Err(e) = program.run(input) {
                    failure = Some(e);
                }
            },
            1,
            5,
            0.03,
            500,
        );
        failure.map_or(Ok(t.median_ms), |e| Err(e.into()))
    }
}

/// Rounds of end-to-end timing per program; the programs of a batch take turns, so that a slow
/// spell of the machine spreads over all of them instead of landing on one.
///
/// A program's latency is the *fastest* of its round medians: on a shared machine, neighbours
/// only ever add time, and over a minute the median of one program drifts by 5–15 % while its
/// fastest round median stays within a few percent. Kernels are summarised the same way, so
/// that prediction and measurement speak of the same quantity: the latency of the device when
/// nothing else weighs on it.
const ROUNDS: usize = 9;
/// Programs compiled and timed together.
const BATCH: usize = 8;

/// End-to-end milliseconds of each runner: the fastest of its round medians.
fn interleaved(runners: &mut [Runner]) -> Result<Vec<f64>> {
    let mut best = vec![f64::INFINITY; runners.len()];
    for _ in 0..ROUNDS {
        for (runner, best) in runners.iter_mut().zip(best.iter_mut()) {
            *best = best.min(runner.round()?);
        }
    }
    Ok(best)
}

/// End-to-end milliseconds of every arch compiled with `options`, measured in interleaved
/// batches; `progress` is told after each batch.
pub fn measure_end_to_end(
    archs: &[Arch],
    options: &CompileOptions,
    progress: &mut dyn FnMut(usize),
) -> Result<Vec<f64>> {
    let mut out = Vec::with_capacity(archs.len());
    for chunk in archs.chunks(BATCH) {
        let mut runners = chunk.iter().map(|a| Runner::new(a, options)).collect::<Result<Vec<_>>>()?;
        out.extend(interleaved(&mut runners)?);
        progress(out.len());
    }
    Ok(out)
}

/// Fusion rules after nn-Meter's pairwise test, at pass granularity: each rewriting pass is
/// switched off in turn on a few archs; it stays on unless the programs run faster without it.
fn detect_fusion_rules(archs: &[Arch], opts: &CalibrationOptions) -> Result<Vec<FusionRule>> {
    let rewriting: Vec<&str> = passes::pass_names().into_iter().filter(|p| *p != "dead-code").collect();
    let mut rules = Vec::new();
    for pass in rewriting {
        let mut ratios = Vec::new();
        for arch in archs {
            let mut runners =
                vec![Runner::new(arch, &options(opts, &[]))?, Runner::new(arch, &options(opts, &[pass.to_string()]))?];
            let times = interleaved(&mut runners)?;
            ratios.push(times[1] / times[0]);
        }
        let speedup = summarize(&mut ratios).median_ms;
        // Keep a pass unless switching it off is clearly (more than 5 %, beyond this machine's
        // run-to-run noise) faster.
        rules.push(FusionRule { pass: pass.into(), enabled: speedup > 0.95, speedup });
    }
    Ok(rules)
}

/// Calibrates this machine on `space`.
pub fn calibrate(
    space: &SearchSpace,
    opts: &CalibrationOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<DeviceProfile> {
    space.validate()?;
    let archs = sample_archs(space, opts.archs, opts.seed);
    let mut profile = DeviceProfile::new(
        Device::this_machine(&opts.name, opts.threads),
        "calibrate",
        Some(space.clone()),
        opts.batch,
    );

    if opts.fusion_rules {
        let probes = [archs[0].clone(), archs[1].clone(), archs[2.min(archs.len() - 1)].clone()];
        progress(Progress { stage: "fusion rules", done: 0, total: 1 });
        profile.fusion_rules = detect_fusion_rules(&probes, opts)?;
    }
    let disabled = profile.disabled_passes();
    let compile_options = options(opts, &disabled);

    let mut by_key: BTreeMap<String, (KernelKey, Vec<f64>, Vec<f64>)> = BTreeMap::new();
    let mut e2e = Vec::new();
    for (b, chunk) in archs.chunks(BATCH).enumerate() {
        progress(Progress { stage: "kernels", done: b * BATCH, total: archs.len() });
        let mut runners = chunk.iter().map(|a| Runner::new(a, &compile_options)).collect::<Result<Vec<_>>>()?;
        for runner in &mut runners {
            let best = profile_kernels(runner)?;
            for (kernel, t) in runner.program.kernels().iter().zip(&best) {
                let entry =
                    by_key.entry(kernel.key.to_string()).or_insert_with(|| (kernel.key.clone(), vec![], vec![]));
                entry.1.push(t.median_ms);
                entry.2.push(t.p90_ms - t.p10_ms);
            }
        }
        e2e.extend(interleaved(&mut runners)?);
    }
    progress(Progress { stage: "kernels", done: archs.len(), total: archs.len() });

    for (_, (key, mut medians, spreads)) in by_key {
        // The kernel's latency is its fastest occurrence's (see [`ROUNDS`]).
        let mut s = summarize(&mut medians);
        s.median_ms = medians.iter().copied().fold(f64::INFINITY, f64::min);
        let spread = spreads.iter().sum::<f64>() / spreads.len().max(1) as f64;
        profile.samples.push(KernelSample {
            key,
            median_ms: s.median_ms,
            p10_ms: (s.median_ms - spread / 2.0).max(0.0),
            p90_ms: s.median_ms + spread / 2.0,
            runs: medians.len(),
        });
    }
    profile.programs =
        archs.iter().zip(&e2e).map(|(a, &ms)| ProgramSample { arch: a.to_ron(), measured_ms: ms }).collect();
    fit_models(&mut profile)?;
    profile.gemm_plans = compiler::tune::tuned_plans().into_iter().filter(|(s, _)| s.threads == opts.threads).collect();
    Ok(profile)
}

/// Kernel timings of one program: rounds of 5 profiled runs, each kernel keeping its fastest
/// round (see [`ROUNDS`]), until a round improves the summed kernel times by less than 1 %
/// (at least 4 rounds, at most 8); a kernel whose spread stays wide is re-measured in a round
/// of 9.
fn profile_kernels(runner: &mut Runner) -> Result<Vec<compiler::timing::Timing>> {
    let mut best: Vec<compiler::timing::Timing> = Vec::new();
    let mut last_total = f64::INFINITY;
    for round in 0..8 {
        let timings = runner.program.profile(&runner.input, 5)?;
        if best.is_empty() {
            best = timings;
        } else {
            for (b, t) in best.iter_mut().zip(timings) {
                if t.median_ms < b.median_ms {
                    *b = t;
                }
            }
        }
        let total: f64 = best.iter().map(|t| t.median_ms).sum();
        if round >= 3 && (last_total - total) / total < 0.01 {
            break;
        }
        last_total = total;
    }
    if best.iter().any(|t| t.p90_ms > 1.5 * t.p10_ms && t.median_ms > 0.01) {
        let again = runner.program.profile(&runner.input, 9)?;
        for (b, t) in best.iter_mut().zip(again) {
            if t.median_ms < b.median_ms {
                *b = t;
            }
        }
    }
    Ok(best)
}

/// `measured ≈ scale · sum + overhead`, least squares on relative error, `scale` and `overhead`
/// kept non-negative.
pub fn fit_program_terms(sums: &[f64], measured: &[f64]) -> (f64, f64) {
    // Normal equations of Σ ((s·a + b - m)/m)².
    let (mut saa, mut sab, mut sbb, mut sam, mut sbm) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for (&s, &m) in sums.iter().zip(measured) {
        let w = 1.0 / (m * m).max(1e-18);
        saa += w * s * s;
        sab += w * s;
        sbb += w;
        sam += w * s * m;
        sbm += w * m;
    }
    let det = saa * sbb - sab * sab;
    if det.abs() < 1e-300 || sums.len() < 3 {
        return (1.0, 0.0);
    }
    let scale = (sam * sbb - sab * sbm) / det;
    let overhead = (saa * sbm - sab * sam) / det;
    if overhead < 0.0 {
        // Refit through the origin.
        return ((sam / saa).max(0.0), 0.0);
    }
    (scale.max(0.0), overhead)
}

/// Fits one model per kernel kind from the profile's samples, then the program-level terms.
pub fn fit_models(profile: &mut DeviceProfile) -> Result<()> {
    /// Per kind: feature names, features, milliseconds.
    type KindSamples = ([&'static str; 4], Vec<[f64; 4]>, Vec<f64>);
    let mut kinds: BTreeMap<String, KindSamples> = BTreeMap::new();
    // A stable, shape-mixed order, so that every fifth sample held out spans the range.
    let mut samples: Vec<&KernelSample> = profile.samples.iter().collect();
    samples.sort_by_key(|s| s.key.to_string());
    for s in samples {
        let entry = kinds.entry(s.key.kind()).or_insert_with(|| (feature_names(&s.key), vec![], vec![]));
        entry.1.push(features(&s.key));
        entry.2.push(s.median_ms.max(1e-6));
    }
    if kinds.is_empty() {
        return Err(Error::Calibration("no kernel samples".into()));
    }
    profile.models = kinds.into_iter().map(|(kind, (names, xs, ys))| (kind, fit_kind(names, &xs, &ys))).collect();
    fit_programs(profile)
}

/// Fits the program-level terms (`scale`, `overhead_ms`) on the profile's end-to-end samples,
/// against the kernel models' own predictions (what prediction sums). Without end-to-end samples
/// (an import without them) the terms stay at scale 1 and the given overhead.
fn fit_programs(profile: &mut DeviceProfile) -> Result<()> {
    if profile.programs.len() < 3 {
        return Ok(());
    }
    (profile.scale, profile.overhead_ms) = (1.0, 0.0);
    let predictor = crate::Predictor::new(profile);
    let mut sums = Vec::new();
    let mut measured = Vec::new();
    for p in &profile.programs {
        let arch = Arch::parse(&p.arch)?;
        sums.push(predictor.predict_ms(&arch)?);
        measured.push(p.measured_ms);
    }
    (profile.scale, profile.overhead_ms) = fit_program_terms(&sums, &measured);
    Ok(())
}
