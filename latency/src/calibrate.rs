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

use crate::features::features;
use crate::models::fit_kind;
use crate::profile::{Device, DeviceProfile, FusionRule, KernelSample};
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

/// End-to-end median milliseconds of `arch` compiled with `options`.
pub fn measure_end_to_end(arch: &Arch, options: &CompileOptions) -> Result<f64> {
    let weights = Weights::random(arch, 0);
    let input = Batch::synthetic(arch, &vec![arch.seq_len; options.batch], 0);
    let mut program = compile(arch, &weights, options)?;
    program.run(&input)?;
    let mut failure = None;
    let timing = time_runs(
        || {
            if let Err(e) = program.run(&input) {
                failure = Some(e);
            }
        },
        3,
        10,
        0.2,
        1000,
    );
    match failure {
        Some(e) => Err(e.into()),
        None => Ok(timing.median_ms),
    }
}

/// Fusion rules after nn-Meter's pairwise test, at pass granularity: each rewriting pass is
/// switched off in turn on a few archs; it stays on unless the programs run faster without it.
fn detect_fusion_rules(archs: &[Arch], opts: &CalibrationOptions) -> Result<Vec<FusionRule>> {
    let rewriting: Vec<&str> = passes::pass_names().into_iter().filter(|p| *p != "dead-code").collect();
    let mut rules = Vec::new();
    for pass in rewriting {
        let mut ratios = Vec::new();
        for arch in archs {
            let with = measure_end_to_end(arch, &options(opts, &[]))?;
            let without = measure_end_to_end(arch, &options(opts, &[pass.to_string()]))?;
            ratios.push(without / with);
        }
        let speedup = summarize(&mut ratios).median_ms;
        // Keep a pass unless switching it off is clearly (more than 3 %) faster.
        rules.push(FusionRule { pass: pass.into(), enabled: speedup > 0.97, speedup });
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
    let mut overheads = Vec::new();
    for (i, arch) in archs.iter().enumerate() {
        progress(Progress { stage: "kernels", done: i, total: archs.len() });
        let weights = Weights::random(arch, 0);
        let input = Batch::synthetic(arch, &vec![arch.seq_len; opts.batch], 0);
        let mut program = compile(arch, &weights, &compile_options)?;
        program.run(&input)?;
        // Rounds of 5 until the summed medians settle.
        let mut rounds: Vec<Vec<compiler::timing::Timing>> = Vec::new();
        let mut last_total = f64::INFINITY;
        for _ in 0..8 {
            let timings = program.profile(&input, 5)?;
            let total: f64 = timings.iter().map(|t| t.median_ms).sum();
            rounds.push(timings);
            if ((total - last_total) / total).abs() < 0.02 {
                break;
            }
            last_total = total;
        }
        let best = rounds.last().cloned().unwrap_or_default();
        // Re-measure once if some kernel's spread is wide (an outlier round).
        let best = if best.iter().any(|t| t.p90_ms > 1.5 * t.p10_ms && t.median_ms > 0.01) {
            program.profile(&input, 9)?
        } else {
            best
        };
        let kernel_sum: f64 = best.iter().map(|t| t.median_ms).sum();
        let e2e = time_runs(|| drop(program.run(&input)), 2, 9, 0.1, 500).median_ms;
        overheads.push(e2e - kernel_sum);
        for (kernel, t) in program.kernels().iter().zip(&best) {
            let entry = by_key.entry(kernel.key.to_string()).or_insert_with(|| (kernel.key.clone(), vec![], vec![]));
            entry.1.push(t.median_ms);
            entry.2.push(t.p90_ms - t.p10_ms);
        }
    }
    progress(Progress { stage: "kernels", done: archs.len(), total: archs.len() });

    for (_, (key, mut medians, spreads)) in by_key {
        let s = summarize(&mut medians);
        let spread = spreads.iter().sum::<f64>() / spreads.len().max(1) as f64;
        profile.samples.push(KernelSample {
            key,
            median_ms: s.median_ms,
            p10_ms: (s.median_ms - spread / 2.0).max(0.0),
            p90_ms: s.median_ms + spread / 2.0,
            runs: medians.len(),
        });
    }
    profile.overhead_ms = summarize(&mut overheads).median_ms.max(0.0);
    fit_models(&mut profile)?;
    profile.gemm_plans = compiler::tune::tuned_plans().into_iter().filter(|(s, _)| s.threads == opts.threads).collect();
    Ok(profile)
}

/// Fits one model per kernel kind from the profile's samples.
pub fn fit_models(profile: &mut DeviceProfile) -> Result<()> {
    let mut kinds: BTreeMap<String, (Vec<[f64; 4]>, Vec<f64>)> = BTreeMap::new();
    // A stable, shape-mixed order, so that every fifth sample held out spans the range.
    let mut samples: Vec<&KernelSample> = profile.samples.iter().collect();
    samples.sort_by_key(|s| s.key.to_string());
    for s in samples {
        let entry = kinds.entry(s.key.kind()).or_default();
        entry.0.push(features(&s.key));
        entry.1.push(s.median_ms.max(1e-6));
    }
    if kinds.is_empty() {
        return Err(Error::Calibration("no kernel samples".into()));
    }
    profile.models = kinds.into_iter().map(|(kind, (xs, ys))| (kind, fit_kind(&xs, &ys))).collect();
    Ok(())
}
