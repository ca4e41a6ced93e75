//! Calibration: compile archs that span a search space, time every kernel of their programs on
//! this device, fit one model per kernel kind, and detect which fusions pay off here.
//!
//! Kernels are timed where they run: inside real programs, one kernel after another, so each
//! sees the caches its predecessors leave (what end-to-end latency is made of). The programs of a
//! batch are profiled taking turns, in rounds, until a program's summed kernel times improve by
//! less than 1 % between rounds; kernels whose spread stays wide are re-measured. Worker threads
//! are pinned to CPUs.

use std::collections::BTreeMap;
use std::path::PathBuf;

use arch::{Arch, SearchSpace};
use compiler::timing::{Timing, summarize, time_runs};
use compiler::{Batch, CompileOptions, KernelKey, PassSelection, Tuning, Weights, compile, passes};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::features::{feature_names, features};
use crate::models::fit_kind;
use crate::profile::{CacheTerm, Device, DeviceProfile, FusionRule, KernelSample, ProgramSample};
use crate::{Error, Result};

/// Archs calibrated by default. On the development machine at 1 thread, 80 archs validated at
/// 100 % and 99 % of held-out archs within ±5 % where 40, calibrated minutes before, gave 83 % and
/// 97 % (BENCHMARKS.md, issue 4); 80 take about two minutes there.
pub const DEFAULT_ARCHS: usize = 80;

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
            archs: DEFAULT_ARCHS,
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

/// Passes of end-to-end measurement over all archs, every other one in reverse order.
pub(crate) const PASSES: usize = 2;

/// End-to-end milliseconds of every arch compiled with `options`, measured in interleaved
/// batches; `progress` is told after each batch, with the archs measured so far over all passes.
///
/// A slow spell of a shared machine can outlast a batch's rounds and land on its eight programs
/// together. So every arch is measured in [`PASSES`] passes, the second in reverse order (an
/// arch measured late in the first pass comes early in the second, next to other neighbours),
/// and keeps its fastest pass, in keeping with [`ROUNDS`].
pub fn measure_end_to_end(
    archs: &[Arch],
    options: &CompileOptions,
    progress: &mut dyn FnMut(usize),
) -> Result<Vec<f64>> {
    let mut best = vec![f64::INFINITY; archs.len()];
    let mut done = 0;
    for pass in 0..PASSES {
        end_to_end_pass(archs, pass % 2 == 1, options, &mut best, &mut |n| {
            done += n;
            progress(done)
        })?;
    }
    Ok(best)
}

/// One pass of [`measure_end_to_end`], forward or in reverse order, lowering each arch's entry
/// of `best` to what this pass measured; `progress` is told each batch's size.
fn end_to_end_pass(
    archs: &[Arch],
    reverse: bool,
    options: &CompileOptions,
    best: &mut [f64],
    progress: &mut dyn FnMut(usize),
) -> Result<()> {
    let order: Vec<usize> = if reverse { (0..archs.len()).rev().collect() } else { (0..archs.len()).collect() };
    for chunk in order.chunks(BATCH) {
        let mut runners = chunk.iter().map(|&i| Runner::new(&archs[i], options)).collect::<Result<Vec<_>>>()?;
        for (&i, ms) in chunk.iter().zip(interleaved(&mut runners)?) {
            best[i] = best[i].min(ms);
        }
        progress(chunk.len());
    }
    Ok(())
}

/// Fusion rules after nn-Meter's pairwise test, one per rewriting pass: each probe arch is
/// compiled with the pass and without it, and the kernels of both programs are profiled taking
/// turns; the kernels only the program without the pass has (op A, op B, …: a GEMM, its bias add
/// and GELU) are timed against the kernels only the program with it has (the fused A+B). The
/// pass stays on unless the fused kernels are clearly slower than the ops they replace.
fn detect_fusion_rules(archs: &[Arch], opts: &CalibrationOptions) -> Result<Vec<FusionRule>> {
    let rewriting: Vec<&str> = passes::pass_names().into_iter().filter(|p| *p != "dead-code").collect();
    let mut rules = Vec::new();
    for pass in rewriting {
        let mut ratios = Vec::new();
        let mut compared = String::new();
        for arch in archs {
            let mut runners =
                vec![Runner::new(arch, &options(opts, &[]))?, Runner::new(arch, &options(opts, &[pass.to_string()]))?];
            let timings = profile_kernels(&mut runners)?;
            let timed = |i: usize| -> Timed {
                let kernels = runners[i].program.kernels().iter().map(|k| k.key.clone());
                kernels.zip(timings[i].iter().map(|t| t.median_ms)).collect()
            };
            let (fused, unfused) = kernel_difference(timed(0), timed(1));
            if fused.is_empty() && unfused.is_empty() {
                continue; // the pass rewrites nothing in this arch
            }
            let sum = |ks: &[(KernelKey, f64)]| ks.iter().map(|(_, ms)| ms).sum::<f64>();
            ratios.push(sum(&unfused) / sum(&fused).max(1e-9));
            if compared.is_empty() {
                compared = format!("{} against {}", kinds(&fused), kinds(&unfused));
            }
        }
        let speedup = if ratios.is_empty() { 1.0 } else { summarize(&mut ratios).median_ms };
        // Keep a pass unless switching it off is clearly (more than 5 %, beyond this machine's
        // run-to-run noise) faster.
        rules.push(FusionRule { pass: pass.into(), enabled: speedup > 0.95, speedup, compared });
    }
    Ok(rules)
}

/// Kernels with their milliseconds.
type Timed = Vec<(KernelKey, f64)>;

/// The kernels (with their times) that only the first list has and those only the second has,
/// matched by key as multisets.
fn kernel_difference(mut first: Timed, second: Timed) -> (Timed, Timed) {
    let mut only_second = Vec::new();
    for (key, ms) in second {
        match first.iter().position(|(k, _)| *k == key) {
            Some(i) => {
                first.remove(i);
            }
            None => only_second.push((key, ms)),
        }
    }
    (first, only_second)
}

/// The distinct kinds of `kernels`, in order of appearance, each with its count: `3 × gemm[bias]`.
fn kinds(kernels: &[(KernelKey, f64)]) -> String {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for (key, _) in kernels {
        let kind = key.kind();
        match counts.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, n)) => *n += 1,
            None => counts.push((kind, 1)),
        }
    }
    counts.iter().map(|(k, n)| format!("{n} × {k}")).collect::<Vec<_>>().join(" + ")
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
        let timings = profile_kernels(&mut runners)?;
        for (runner, best) in runners.iter().zip(timings) {
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
    // The programs' second end-to-end pass (see [`measure_end_to_end`]), in reverse order.
    let mut done = 0;
    end_to_end_pass(&archs, true, &compile_options, &mut e2e, &mut |n| {
        done += n;
        progress(Progress { stage: "programs", done, total: archs.len() })
    })?;

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

/// Kernel timings of each program of a batch: rounds of 5 profiled runs, the programs taking
/// turns (as in [`interleaved`]: a slow spell of the machine spreads over the batch instead of
/// landing on every kernel of one program), each kernel keeping its fastest round (see
/// [`ROUNDS`]); a program stops once a round improves its summed kernel times by less than 1 %
/// (at least 4 rounds, at most 8). A kernel whose spread stays wide is re-measured in a round
/// of 9.
fn profile_kernels(runners: &mut [Runner]) -> Result<Vec<Vec<Timing>>> {
    let mut best: Vec<Vec<Timing>> = vec![Vec::new(); runners.len()];
    let mut last_total = vec![f64::INFINITY; runners.len()];
    let mut settled = vec![false; runners.len()];
    for round in 0..8 {
        for (i, runner) in runners.iter_mut().enumerate() {
            if settled[i] {
                continue;
            }
            keep_fastest(&mut best[i], runner.program.profile(&runner.input, 5)?);
            let total: f64 = best[i].iter().map(|t| t.median_ms).sum();
            settled[i] = round >= 3 && (last_total[i] - total) / total < 0.01;
            last_total[i] = total;
        }
        if settled.iter().all(|&s| s) {
            break;
        }
    }
    for (runner, best) in runners.iter_mut().zip(&mut best) {
        if best.iter().any(|t| t.p90_ms > 1.5 * t.p10_ms && t.median_ms > 0.01) {
            keep_fastest(best, runner.program.profile(&runner.input, 9)?);
        }
    }
    Ok(best)
}

/// Keeps, per kernel, the faster of `best` and `timings` (all of `timings` when `best` is empty).
fn keep_fastest(best: &mut Vec<Timing>, timings: Vec<Timing>) {
    if best.is_empty() {
        *best = timings;
        return;
    }
    for (b, t) in best.iter_mut().zip(timings) {
        if t.median_ms < b.median_ms {
            *b = t;
        }
    }
}

/// One calibration program, as the program-level terms see it.
#[derive(Debug, Clone, Copy)]
pub struct ProgramPoint {
    /// The sum of its kernels' predicted latencies.
    pub sum_ms: f64,
    /// Its GEMM weights, MiB ([`crate::predict::weights_mib`]).
    pub weights_mib: f64,
    /// How many kernels it runs.
    pub kernels: usize,
    pub measured_ms: f64,
}

/// The program-level terms of a profile and how well they fit.
#[derive(Debug, Clone, PartialEq)]
pub struct ProgramTerms {
    pub scale: f64,
    pub overhead_ms: f64,
    pub per_kernel_ms: f64,
    pub cache: Option<CacheTerm>,
    /// Root mean square relative error on the points fitted.
    pub rmspe: f64,
}

impl ProgramTerms {
    fn predict(&self, p: &ProgramPoint) -> f64 {
        let scale = self.scale + self.cache.as_ref().map_or(0.0, |c| c.at(p.weights_mib));
        self.overhead_ms + self.per_kernel_ms * p.kernels as f64 + scale * p.sum_ms
    }
}

/// Footprints tried for the cache term, MiB: from a core's L2 to beyond a server's L3.
const FOOTPRINTS_MIB: [f64; 8] = [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0];
/// A cache term is kept only when it cuts the relative error of the fit by at least this share,
/// and only at a footprint that at least this many points lie below.
const CACHE_TERM_GAIN: f64 = 0.1;
const CACHE_TERM_POINTS: usize = 4;
/// A per-kernel term is kept only when it is positive and cuts the relative error of the fit by
/// at least this share (one parameter more on tens of programs, which noise alone moves by a
/// few percent; on this machine it cut the error of held-out archs in most calibrations,
/// BENCHMARKS.md, issue 4).
const PER_KERNEL_GAIN: f64 = 0.05;

/// `measured ≈ overhead + per_kernel · kernels + sum · (scale + cache term)`, least squares on
/// relative error: without a cache term, then with one at each footprint of [`FOOTPRINTS_MIB`],
/// keeping the cache term only where it clearly helps; the same again with a per-kernel term,
/// kept where it is positive and helps. `scale` stays non-negative, and so does the fixed part
/// (`overhead + per_kernel · kernels`) of every point.
pub fn fit_program_terms(points: &[ProgramPoint]) -> ProgramTerms {
    let fit = |per_kernel: bool| {
        let plain = fit_terms(points, None, per_kernel);
        let with_cache = FOOTPRINTS_MIB
            .iter()
            .filter(|&&f| points.iter().filter(|p| p.weights_mib < f).count() >= CACHE_TERM_POINTS)
            .filter_map(|&f| fit_terms(points, Some(f), per_kernel))
            .min_by(|a, b| a.rmspe.total_cmp(&b.rmspe));
        match (plain, with_cache) {
            (Some(p), Some(c)) if c.rmspe < (1.0 - CACHE_TERM_GAIN) * p.rmspe => Some(c),
            (Some(p), _) => Some(p),
            (None, c) => c,
        }
    };
    let identity = ProgramTerms { scale: 1.0, overhead_ms: 0.0, per_kernel_ms: 0.0, cache: None, rmspe: f64::NAN };
    let base = fit(false).unwrap_or(identity);
    match fit(true) {
        Some(k) if k.per_kernel_ms > 0.0 && k.rmspe < (1.0 - PER_KERNEL_GAIN) * base.rmspe => k,
        _ => base,
    }
}

/// Weighted least squares of one form of the program terms; `None` when the points cannot
/// determine it.
fn fit_terms(points: &[ProgramPoint], footprint: Option<f64>, per_kernel: bool) -> Option<ProgramTerms> {
    let cache = |factor| footprint.map(|f| CacheTerm { footprint_mib: f, factor });
    // Columns: sum, [1], [kernels], [sum · cache shape].
    let columns = |p: &ProgramPoint, intercept: bool| {
        let mut x = vec![p.sum_ms];
        if intercept {
            x.push(1.0);
        }
        if per_kernel {
            x.push(p.kernels as f64);
        }
        if let Some(term) = cache(1.0) {
            x.push(p.sum_ms * term.at(p.weights_mib));
        }
        x
    };
    // Least squares on relative error: weights 1/y², as the kernel models are fitted.
    let solve_with = |intercept: bool| {
        let rows: Vec<(Vec<f64>, f64, f64)> = points
            .iter()
            .map(|p| (columns(p, intercept), p.measured_ms, 1.0 / (p.measured_ms * p.measured_ms).max(1e-18)))
            .collect();
        let dim = rows.first()?.0.len();
        if rows.len() <= dim {
            return None;
        }
        crate::models::solve(&rows, dim)
    };
    let fewest_kernels = points.iter().map(|p| p.kernels).min()? as f64;
    let mut coef = solve_with(true)?;
    let per_kernel_at = |coef: &[f64]| if per_kernel { coef[2] } else { 0.0 };
    if coef[1] + per_kernel_at(&coef) * fewest_kernels < 0.0 {
        // The fixed part of some program would be negative: refit through the origin.
        coef = solve_with(false)?;
        coef.insert(1, 0.0);
    }
    let per_kernel_ms = per_kernel_at(&coef);
    let terms = ProgramTerms {
        scale: coef[0].max(0.0),
        overhead_ms: coef[1],
        per_kernel_ms,
        cache: cache(coef.get(if per_kernel { 3 } else { 2 }).copied().unwrap_or(0.0)),
        rmspe: 0.0,
    };
    let errors: Vec<f64> = points.iter().map(|p| (terms.predict(p) - p.measured_ms) / p.measured_ms).collect();
    let rmspe = (errors.iter().map(|e| e * e).sum::<f64>() / errors.len() as f64).sqrt();
    Some(ProgramTerms { rmspe, ..terms })
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

/// Fits the program-level terms (`scale`, `overhead_ms`, `per_kernel_ms`, `cache`) on the profile's end-to-end samples,
/// against the kernel models' own predictions (what prediction sums). Without end-to-end samples
/// (an import without them) the terms stay at scale 1 and the given overhead.
fn fit_programs(profile: &mut DeviceProfile) -> Result<()> {
    if profile.programs.len() < 3 {
        return Ok(());
    }
    let predictor = crate::Predictor::new(profile);
    let mut points = Vec::new();
    for p in &profile.programs {
        let sum = predictor.kernel_sum(&Arch::parse(&p.arch)?)?;
        points.push(ProgramPoint {
            sum_ms: sum.sum_ms,
            weights_mib: sum.weights_mib,
            kernels: sum.kernels,
            measured_ms: p.measured_ms,
        });
    }
    let terms = fit_program_terms(&points);
    (profile.scale, profile.overhead_ms, profile.per_kernel_ms, profile.cache) =
        (terms.scale, terms.overhead_ms, terms.per_kernel_ms, terms.cache);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Points of programs from 0.2 to 40 MiB of 6 to 26 kernels whose latency follows
    /// `overhead + per_kernel · kernels + sum · scale(W)`, with a deterministic ±1 % wobble.
    fn points(overhead: f64, per_kernel: f64, scale: f64, cache: Option<CacheTerm>) -> Vec<ProgramPoint> {
        (0..40)
            .map(|i| {
                let weights_mib = 0.2 + i as f64;
                let kernels = 6 + 4 * (i * 5 % 6);
                let sum_ms = 0.5 + 0.4 * weights_mib;
                let factor = scale + cache.as_ref().map_or(0.0, |c| c.at(weights_mib));
                let wobble = 1.0 + 0.01 * ((i * 7 % 5) as f64 - 2.0) / 2.0;
                let measured_ms = (overhead + per_kernel * kernels as f64 + factor * sum_ms) * wobble;
                ProgramPoint { sum_ms, weights_mib, kernels, measured_ms }
            })
            .collect()
    }

    #[test]
    fn program_terms_recover_a_cache_effect() {
        let truth = CacheTerm { footprint_mib: 8.0, factor: -0.08 };
        let fit = fit_program_terms(&points(0.05, 0.0, 1.03, Some(truth.clone())));
        let cache = fit.cache.clone().expect("a cache term");
        assert_eq!(cache.footprint_mib, truth.footprint_mib);
        assert!((cache.factor - truth.factor).abs() < 0.02, "{fit:?}");
        assert!((fit.scale - 1.03).abs() < 0.01 && (fit.overhead_ms - 0.05).abs() < 0.02, "{fit:?}");
        assert!(fit.rmspe < 0.012, "{fit:?}");
    }

    #[test]
    fn program_terms_add_no_cache_or_per_kernel_term_where_there_is_none() {
        let fit = fit_program_terms(&points(0.05, 0.0, 1.03, None));
        assert_eq!((&fit.cache, fit.per_kernel_ms), (&None, 0.0), "{fit:?}");
        assert!((fit.scale - 1.03).abs() < 0.01 && (fit.overhead_ms - 0.05).abs() < 0.02, "{fit:?}");
    }

    #[test]
    fn program_terms_recover_a_per_kernel_cost_beside_a_negative_intercept() {
        // A line through programs of 6 kernels and more may cross zero below them.
        let fit = fit_program_terms(&points(-0.04, 0.01, 1.03, None));
        assert!((fit.per_kernel_ms - 0.01).abs() < 0.002, "{fit:?}");
        assert!((fit.overhead_ms + 0.04).abs() < 0.02 && (fit.scale - 1.03).abs() < 0.01, "{fit:?}");
        assert_eq!(fit.cache, None, "{fit:?}");
        // Beyond that, the fixed part of some program would be negative: no intercept then.
        let fit = fit_program_terms(&points(-0.2, 0.01, 1.03, None));
        assert!(fit.overhead_ms + fit.per_kernel_ms * 6.0 >= 0.0, "{fit:?}");
    }

    #[test]
    fn the_pairwise_test_compares_only_the_kernels_a_pass_changes() {
        use compiler::ir::{Activation, Epilogue};
        let gemm = |epilogue| KernelKey::Gemm { m: 128, n: 512, k: 128, epilogue };
        let prim = |op| KernelKey::Primitive { op, rows: 128, width: 512 };
        let embed = KernelKey::EmbedLayerNorm { tokens: 128, hidden: 128, parts: 3 };
        let fused_epilogue = Epilogue { bias: true, activation: Some(Activation::Gelu), ..Default::default() };
        let with_pass = vec![(embed.clone(), 0.05), (gemm(fused_epilogue), 0.30)];
        let without = vec![
            (embed.clone(), 0.06),
            (gemm(Epilogue::default()), 0.25),
            (prim(compiler::PrimitiveOp::BiasAdd), 0.03),
            (prim(compiler::PrimitiveOp::Gelu), 0.07),
        ];
        let (fused, unfused) = kernel_difference(with_pass, without);
        assert_eq!(fused, vec![(gemm(fused_epilogue), 0.30)]);
        assert_eq!(unfused.len(), 3, "{unfused:?}");
        assert!(!unfused.iter().any(|(k, _)| *k == embed), "shared kernels are not compared");
        assert_eq!(kinds(&unfused), "1 × gemm[plain] + 1 × biasadd + 1 × gelu");
    }

    #[test]
    fn program_terms_fall_back_to_the_identity_without_points() {
        let fit = fit_program_terms(&[]);
        assert_eq!((fit.scale, fit.overhead_ms, fit.per_kernel_ms, fit.cache), (1.0, 0.0, 0.0, None));
    }
}
