//! The report stage of `canao run`: gathers what the run found and measures what the report
//! shows beyond it (reference models, a random-search baseline, the predictor against this
//! machine, the compiled models against burn eager), then hands the numbers to `reports`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use arch::Arch;
use compiler::{Batch, CompileOptions, compile};
use latency::calibrate::Progress;
use latency::{DeviceProfile, Predictor};
use search::{
    Evaluation, Evaluator, RandomSearchConfig, feasible_front, hypervolume, hypervolume_curve, random_search,
};
use serde::{Deserialize, Serialize};

use crate::cmd::bench::{Budget, time_eager, time_program};
use crate::cmd::infer::load_checkpoint;
use crate::cmd::latency::Bar;
use crate::cmd::search::{Costs, SearchRun};
use crate::io::{threads_label, write_atomic};

/// A reference model of the report: scored and timed the same way as the searched archs.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReferenceModel {
    /// What it stands for, e.g. `BERT-Tiny size`.
    pub label: String,
    /// Compact arch (`L2-H128-A2-F512`); the fields it does not name come from the space.
    pub arch: String,
}

/// The default reference models: the sizes of Turc et al.'s compact BERTs.
pub fn default_references() -> Vec<ReferenceModel> {
    [
        ("BERT-Tiny size", "L2-H128-A2-F512"),
        ("BERT-Mini size", "L4-H256-A4-F1024"),
        ("BERT-Small size", "L4-H512-A8-F2048"),
    ]
    .into_iter()
    .map(|(label, arch)| ReferenceModel { label: label.into(), arch: arch.into() })
    .collect()
}

/// An exported model, as `canao run` chose and wrote it.
#[derive(Debug, Clone, Serialize)]
pub struct Exported {
    pub label: String,
    #[serde(skip)]
    pub arch: Arch,
    #[serde(rename = "arch")]
    pub arch_text: String,
    pub score: f64,
    pub latency_ms: f64,
    pub dir: PathBuf,
    pub run: String,
}

/// What the report stage is given.
pub struct Inputs<'a> {
    pub name: &'a str,
    pub task: supernet::data::Task,
    pub note: Option<&'a str>,
    pub costs: &'a Costs,
    pub search: &'a SearchRun,
    pub exported: &'a [Exported],
    /// The profile of each Latency objective, in objective order, with the budget on it.
    pub devices: Vec<(PathBuf, Option<f64>)>,
    pub references: &'a [ReferenceModel],
    /// Run random search with the same budget, seed and evaluator.
    pub random_baseline: bool,
    /// Refuse to run random search (`canao report`): only a saved trace may be used.
    pub saved_only: bool,
    pub seed: u64,
    pub reference_point: Option<&'a [f64]>,
    pub teacher_dev: Option<f64>,
    pub facts: Vec<(String, String)>,
    /// Where the random-search trace is kept between runs.
    pub search_dir: &'a Path,
    pub quiet: bool,
}

/// Positions of the dev score and of the latency objectives (in order) in the search's
/// objectives.
fn axes(search: &SearchRun) -> Option<(usize, Vec<usize>)> {
    let a = search.specs.iter().position(|s| s.name.contains("_dev_"))?;
    let l: Vec<usize> = (0..search.specs.len()).filter(|&i| search.specs[i].name.starts_with("latency_ms")).collect();
    (!l.is_empty()).then_some((a, l))
}

/// Whether each point is on the front of (score, maximised; latency, minimised) among the
/// feasible points.
fn front_2d(points: &[(f64, f64, bool)]) -> Vec<bool> {
    points
        .iter()
        .map(|&(s, l, feasible)| {
            feasible && !points.iter().any(|&(s2, l2, f2)| f2 && s2 >= s && l2 <= l && (s2 > s || l2 < l))
        })
        .collect()
}

/// Random search's seed: its own stream, so that its first draws are not NSGA-II's initial
/// population (both sample the space with a seeded generator).
fn random_seed(seed: u64) -> u64 {
    seed ^ 0x9e37_79b9_7f4a_7c15
}

/// A random-search trace as the search folder keeps it.
#[derive(Serialize, Deserialize, PartialEq)]
struct SavedRandom {
    budget: usize,
    seed: u64,
    objectives: Vec<String>,
    trace: Vec<(String, Evaluation)>,
}

/// The random-search trace that an earlier run of the same `budget`, search `seed` and
/// objectives left in `search_dir`, if there is one.
pub fn saved_random_trace(
    search_dir: &Path,
    objectives: &[String],
    seed: u64,
    budget: usize,
) -> Option<Vec<Evaluation>> {
    let text = std::fs::read_to_string(search_dir.join("random_search.json")).ok()?;
    let saved = serde_json::from_str::<SavedRandom>(&text).ok()?;
    (saved.budget == budget && saved.seed == random_seed(seed) && saved.objectives == objectives)
        .then(|| saved.trace.into_iter().map(|(_, e)| e).collect())
}

/// The error of `canao report` when `search_dir` holds no random-search trace of `budget`.
pub fn no_random_trace(search_dir: &Path, budget: usize) -> anyhow::Error {
    anyhow::anyhow!(
        "{}: no random-search trace of this search (budget {budget}); `canao report` searches nothing: \
         `canao run` on the experiment file runs it and writes the report",
        search_dir.join("random_search.json").display()
    )
}

/// The random-search trace of `budget` evaluations, reused from the search folder when an earlier run with
/// the same budget, seed and objectives left it.
fn random_trace(inputs: &Inputs, budget: usize) -> Result<Vec<Evaluation>> {
    let path = inputs.search_dir.join("random_search.json");
    let objectives: Vec<String> = inputs.search.specs.iter().map(|s| s.name.clone()).collect();
    if let Some(trace) = saved_random_trace(inputs.search_dir, &objectives, inputs.seed, budget) {
        return Ok(trace);
    }
    if inputs.saved_only {
        return Err(no_random_trace(inputs.search_dir, budget));
    }
    if !inputs.quiet {
        eprintln!("random search: {budget} evaluations (the baseline of the progress plot)…");
    }
    let outcome = random_search(
        &inputs.costs.space,
        &inputs.costs.evaluator,
        &RandomSearchConfig::new(budget, random_seed(inputs.seed)),
    )?;
    let trace: Vec<(String, Evaluation)> = outcome.cache.entries().map(|(a, e)| (a.to_ron(), e.clone())).collect();
    let saved = SavedRandom { budget, seed: random_seed(inputs.seed), objectives, trace };
    write_atomic(&path, serde_json::to_string(&saved)?.as_bytes())?;
    Ok(saved.trace.into_iter().map(|(_, e)| e).collect())
}

/// NSGA-II's and random search's hypervolume after each evaluation, as shares of the hypervolume
/// of everything both evaluated.
fn progress(inputs: &Inputs) -> Result<Option<reports::Progress>> {
    let nsga2: Vec<Evaluation> = inputs.search.trace.iter().map(|(_, e)| e.clone()).collect();
    let random = if inputs.random_baseline { Some(random_trace(inputs, nsga2.len())?) } else { None };
    let everything: Vec<&Evaluation> = nsga2.iter().chain(random.iter().flatten()).collect();
    let front = feasible_front(everything.iter().copied());
    let Some(first) = front.first() else { return Ok(None) };
    // The search's reference point, else the worst feasible value of each objective plus a tenth
    // of its range, so that every front point adds volume.
    let reference: Vec<f64> = match inputs.reference_point {
        Some(r) => r.to_vec(),
        None => (0..first.len())
            .map(|k| {
                let values = everything.iter().filter(|e| e.is_feasible()).map(|e| e.objectives[k]);
                let (lo, hi) = values.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
                hi + 0.1 * (hi - lo).max(1e-9)
            })
            .collect(),
    };
    let total = hypervolume(&front, &reference)?;
    if total <= 0.0 {
        return Ok(None);
    }
    let share = |trace: &[Evaluation]| -> Result<Vec<f64>> {
        Ok(hypervolume_curve(trace, &reference)?.into_iter().map(|v| v / total).collect())
    };
    Ok(Some(reports::Progress {
        nsga2: share(&nsga2)?,
        generations: inputs.search.generations.clone(),
        random: random.as_deref().map(share).transpose()?,
        reference_point: reference,
    }))
}

/// A reference arch from its compact text, with the fields it does not name (the head size
/// unless `-D` is given, the vocabulary, the sequence length, the task head) taken from the
/// space's largest arch.
fn reference_arch(text: &str, template: &Arch) -> Result<Arch> {
    let named = Arch::parse(text)?;
    let head_dim = if text.contains("-D") { named.head_dim } else { template.head_dim };
    let arch = Arch {
        layers: named.layers,
        hidden: named.hidden,
        heads: named.heads,
        ffn: named.ffn,
        head_dim,
        ..template.clone()
    };
    arch.validate()?;
    Ok(arch)
}

fn references(inputs: &Inputs, (a, l): (usize, &[usize])) -> Result<Vec<reports::Reference>> {
    let specs = &inputs.search.specs;
    let largest = inputs.costs.space.largest();
    let mut out = Vec::new();
    let score = |label: &str, arch: &Arch| -> Result<reports::Reference> {
        let text = arch.to_string();
        if let Err(e) = inputs.costs.evaluator.supernet_check(arch) {
            return Ok(reports::Reference {
                label: label.into(),
                arch: text,
                score: None,
                latency_ms: vec![],
                skipped: Some(e.to_string()),
            });
        }
        let e = inputs.costs.evaluator.evaluate(arch).with_context(|| format!("evaluating the reference {text}"))?;
        Ok(reports::Reference {
            label: label.into(),
            arch: text,
            score: Some(specs[a].natural(e.objectives[a])),
            latency_ms: l.iter().map(|&i| specs[i].natural(e.objectives[i])).collect(),
            skipped: None,
        })
    };
    for r in inputs.references {
        let arch = reference_arch(&r.arch, &largest).with_context(|| format!("the reference model {:?}", r.label))?;
        out.push(score(&r.label, &arch)?);
    }
    let largest_ref = score("largest subnet", &largest)?;
    if let Some(dev) = inputs.teacher_dev
        && largest_ref.skipped.is_none()
    {
        out.push(reports::Reference {
            label: "teacher (fine-tuned)".into(),
            arch: largest.to_string(),
            score: Some(dev),
            latency_ms: largest_ref.latency_ms.clone(),
            skipped: None,
        });
    }
    out.push(largest_ref);
    Ok(out)
}

/// Predicted against measured on this machine, when the profile describes it.
fn predictor_check(
    inputs: &Inputs,
    profile: &DeviceProfile,
    archs: &[Arch],
    facts: &mut Vec<(String, String)>,
) -> Result<Option<reports::PredictorCheck>> {
    let here = compiler::tune::cpu_signature();
    let bar = Bar::new(inputs.quiet);
    let validation = match latency::validate::validate(profile, archs, &mut |p| bar.update(p)) {
        Err(other @ latency::Error::OtherDevice { .. }) => {
            // Another device's profile is not measured here: that is not an error of the report.
            facts.push(("predictor check".into(), format!("skipped: {other}")));
            return Ok(None);
        }
        validation => validation?,
    };
    bar.finish();
    Ok(Some(reports::PredictorCheck {
        device: device_label(profile),
        machine: format!("{here}, {}", threads_label(profile.device.threads)),
        rows: validation
            .rows
            .iter()
            .map(|r| reports::PredictorRow {
                arch: r.arch.clone(),
                predicted_ms: r.predicted_ms,
                measured_ms: r.measured_ms,
            })
            .collect(),
        rmspe: validation.rmspe,
        within_10: validation.within_10,
    }))
}

/// Each exported model's predicted latency, summed by kernel kind in order of first appearance:
/// each kernel's in-isolation prediction times the program-level scale of this program, and the
/// per-run overhead, so that the parts add up to the end-to-end prediction.
fn breakdown(profile: &DeviceProfile, exported: &[Exported]) -> Result<Vec<reports::Breakdown>> {
    let predictor = Predictor::new(profile);
    let mut out = Vec::new();
    for e in exported {
        let prediction = predictor.predict(&e.arch)?;
        let mut parts: Vec<(String, f64)> = Vec::new();
        for (key, ms) in &prediction.kernels {
            let (kind, ms) = (key.kind(), ms * prediction.scale);
            match parts.iter_mut().find(|(k, _)| *k == kind) {
                Some(part) => part.1 += ms,
                None => parts.push((kind, ms)),
            }
        }
        if prediction.overhead_ms > 0.0 {
            parts.push(("per-run overhead".into(), prediction.overhead_ms));
        }
        out.push(reports::Breakdown { label: e.label.clone(), arch: e.arch_text.clone(), parts });
    }
    Ok(out)
}

/// Each exported model compiled, against burn's eager forward of the same weights, on one
/// sequence of the arch's length.
fn speedups(inputs: &Inputs, threads: usize) -> Result<Vec<reports::Speedup>> {
    let budget = Budget { warmup: 3, runs: 10, min_secs: 0.5 };
    let bar = Bar::new(inputs.quiet);
    let total = inputs.exported.len();
    let mut out = Vec::new();
    for (done, e) in inputs.exported.iter().enumerate() {
        bar.update(Progress { stage: "speed-ups", done, total });
        let checkpoint = load_checkpoint(&e.dir)?;
        // The exported model's own arch: the searched one with the task head it was exported with.
        let arch = &checkpoint.config.to_arch(e.arch.seq_len).with_context(|| format!("in {}", e.dir.display()))?;
        let input = Batch::synthetic(arch, &[arch.seq_len], 0);
        let options = CompileOptions {
            batch: 1,
            threads,
            layer_norm_eps: checkpoint.config.layer_norm_eps as f32,
            ..Default::default()
        };
        let mut program = compile(arch, &checkpoint.weights, &options)?;
        let compiled = time_program(&mut program, &input, budget)?;
        let eager = time_eager(arch, &checkpoint.weights, &input, threads, budget)?;
        out.push(reports::Speedup {
            label: e.label.clone(),
            arch: e.arch_text.clone(),
            compiled_ms: compiled.median_ms,
            eager_ms: eager.median_ms,
            threads,
        });
    }
    bar.finish();
    Ok(out)
}

/// Measures what the report needs and writes it to `dir`; `None` when the search has no
/// Accuracy or no Latency objective (the report plots one against the other).
pub fn write_report(inputs: Inputs, dir: &Path) -> Result<Option<reports::Written>> {
    let Some((a, l)) = axes(inputs.search) else {
        return Ok(None);
    };
    if l.len() != inputs.devices.len() {
        anyhow::bail!("{} latency objectives but {} device profiles", l.len(), inputs.devices.len());
    }
    let specs = &inputs.search.specs;
    let natural = |e: &Evaluation| -> (f64, Vec<f64>) {
        (specs[a].natural(e.objectives[a]), l.iter().map(|&i| specs[i].natural(e.objectives[i])).collect())
    };
    let values: Vec<(f64, Vec<f64>)> = inputs.search.trace.iter().map(|(_, e)| natural(e)).collect();
    let fronts: Vec<Vec<bool>> = (0..l.len())
        .map(|d| {
            let pairs: Vec<(f64, f64, bool)> =
                inputs.search.trace.iter().zip(&values).map(|((_, e), (s, ms))| (*s, ms[d], e.is_feasible())).collect();
            front_2d(&pairs)
        })
        .collect();
    let points: Vec<reports::Point> = inputs
        .search
        .trace
        .iter()
        .zip(&values)
        .enumerate()
        .map(|(i, ((arch, e), (score, ms)))| reports::Point {
            arch: arch.to_string(),
            score: *score,
            latency_ms: ms.clone(),
            feasible: e.is_feasible(),
            front: fronts.iter().map(|f| f[i]).collect(),
        })
        .collect();
    // The exported models' latencies on every device, from their evaluations.
    let latency_of = |arch: &Arch| -> Vec<f64> {
        inputs.search.trace.iter().find(|(x, _)| x == arch).map(|(_, e)| natural(e).1).unwrap_or_default()
    };
    let front: Vec<&Arch> = inputs.search.front.iter().collect();
    let mut facts = inputs.facts.clone();
    let progress = progress(&inputs)?;
    let references = references(&inputs, (a, &l))?;
    let profiles: Vec<DeviceProfile> =
        inputs.devices.iter().map(|(p, _)| DeviceProfile::load(p)).collect::<latency::Result<_>>()?;
    let profile = profiles.first();
    let (mut predictor, mut kernels, mut timed, mut measured_busy) = (None, Vec::new(), Vec::new(), None);
    if let Some(profile) = profile {
        // The exported models, the evaluated references and up to eight points along the front.
        let mut archs: Vec<Arch> = inputs.exported.iter().map(|e| e.arch.clone()).collect();
        let largest = inputs.costs.space.largest();
        for r in inputs.references {
            if let Ok(arch) = reference_arch(&r.arch, &largest)
                && inputs.costs.evaluator.supernet_check(&arch).is_ok()
            {
                archs.push(arch);
            }
        }
        let step = front.len().div_ceil(8).max(1);
        archs.extend(front.iter().step_by(step).map(|a| (*a).clone()));
        let mut seen = Vec::new();
        archs.retain(|a| {
            let new = !seen.contains(a);
            seen.push(a.clone());
            new
        });
        let before = compiler::timing::CpuSample::now();
        predictor = predictor_check(&inputs, profile, &archs, &mut facts)?;
        kernels = breakdown(profile, inputs.exported)?;
        timed = speedups(&inputs, profile.device.threads.min(available_threads()))?;
        let busy = before.and_then(|b| compiler::timing::CpuSample::now().map(|now| now.others_busy_since(&b)));
        if let Some(busy) = busy {
            let warning = if busy > compiler::tune::BUSY_LIMIT {
                " — the measured latencies are inflated: rerun on an idle machine"
            } else {
                ""
            };
            facts.push(("other processes' CPU use while measuring".into(), format!("{:.0} %{warning}", 100.0 * busy)));
            measured_busy = Some(busy);
        }
    }
    let report = reports::Report {
        name: inputs.name.to_string(),
        task: inputs.task.to_string(),
        metric: inputs.task.metric_name().to_string(),
        devices: profiles
            .iter()
            .zip(&inputs.devices)
            .map(|(p, (_, budget))| reports::Device { name: device_label(p), latency_budget_ms: *budget })
            .collect(),
        note: inputs.note.map(str::to_string),
        points,
        references,
        chosen: inputs
            .exported
            .iter()
            .map(|e| reports::Chosen {
                label: e.label.clone(),
                arch: e.arch_text.clone(),
                score: e.score,
                latency_ms: latency_of(&e.arch),
                dir: e.dir.display().to_string(),
                command: e.run.clone(),
            })
            .collect(),
        progress,
        predictor,
        breakdown: kernels,
        speedups: timed,
        measured_busy,
        facts,
    };
    Ok(Some(reports::write(&report, dir)?))
}

/// A profile's device as the report names it: its name and the threads its programs ran with
/// (profiles of one machine differ by threads).
fn device_label(profile: &DeviceProfile) -> String {
    format!("{}, {}", profile.device.name, threads_label(profile.device.threads))
}

fn available_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn front_2d_keeps_feasible_non_dominated_points() {
        // (score, latency, feasible)
        let points = [
            (0.80, 1.0, true),  // front: fastest
            (0.85, 2.0, true),  // front
            (0.84, 3.0, true),  // dominated by the previous one
            (0.90, 0.5, false), // would dominate everything, but infeasible
            (0.85, 2.0, true),  // equal to a front point: not dominated
            (0.88, 4.0, true),  // front: most accurate
        ];
        assert_eq!(front_2d(&points), vec![true, true, false, false, true, true]);
    }

    #[test]
    fn reference_archs_take_the_space_fields_they_do_not_name() {
        let mut template = Arch::uniform(6, 384, 12, 1536);
        template.head_dim = 32;
        template.task = arch::TaskHead::Classification { labels: 2 };
        let tiny = reference_arch("L2-H128-A2-F512", &template).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((tiny.layers, tiny.hidden, tiny.head_dim, tiny.task), (2, 128, 32, template.task));
        let explicit = reference_arch("L2-H128-A2-F512-D64", &template).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(explicit.head_dim, 64);
        assert!(reference_arch("L2-H128", &template).is_err());
    }
}
