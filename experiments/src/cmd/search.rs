//! `canao search`: NSGA-II over a search space, with objectives and constraints from a file.
//!
//! Objectives: accuracy on a task's dev split with weights inherited from a trained supernet,
//! device latency (from profiles), parameters and planned peak activation memory. The file
//! format is the search part of the experiment format of issue 6.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, Result, bail};
use arch::{Arch, SearchSpace};
use compiler::plan::plan_buffers;
use compiler::{CompileOptions, fused_graph};
use indicatif::{ProgressBar, ProgressStyle};
use latency::{DeviceProfile, Predictor};
use search::{Evaluation, Evaluator, Nsga2, Nsga2Config, ObjectiveSpec, Sense, normalised_excess};
use serde::Deserialize;
use serde_json::json;
use supernet::data::{self, Split, Task};
use supernet::{Encoded, Encoder, Supernet};

use crate::compiled_eval::{cores, evaluate_compiled};
use crate::io::{print_json, threads_label, write_atomic};

/// A search experiment (RON). Unknown fields are rejected.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchExperiment {
    /// Results go to `runs/<name>/` unless `out` is given.
    pub name: String,
    /// The space searched; the built-in default space when omitted.
    #[serde(default)]
    pub space: Option<SearchSpace>,
    /// What to minimise, in order.
    pub objectives: Vec<Objective>,
    /// Upper limits; archs beyond them are infeasible (Deb's constraint domination).
    #[serde(default)]
    pub constraints: Vec<Constraint>,
    /// NSGA-II settings (population, generations, seed, reference point, …).
    pub search: Nsga2Config,
    #[serde(default)]
    pub out: Option<PathBuf>,
    /// Where the Accuracy objective reads its dev split (default: $CANAO_DATA, ./data,
    /// ../shared/data).
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
}

/// An objective (minimised).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum Objective {
    /// Predicted end-to-end latency (ms) on the device of a profile.
    Latency { profile: PathBuf },
    /// Parameter count, minimised.
    Params,
    /// Parameter count, *maximised*: model capacity per unit of latency, a stand-in for accuracy
    /// until the supernet can score archs (it is not an accuracy signal).
    Capacity,
    /// Peak activation memory of the compiled program (bytes), from its buffer plan.
    PeakMemory,
    /// The task's dev metric (accuracy, Matthews or Pearson) with the weights the arch inherits
    /// from a trained supernet (a Hugging Face directory written by `canao train`), maximised.
    /// In `canao run` experiments both fields default to the run's own supernet and task.
    Accuracy {
        #[serde(default)]
        supernet: Option<PathBuf>,
        #[serde(default)]
        task: Option<Task>,
    },
}

/// An upper limit.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum Constraint {
    LatencyAtMost { profile: PathBuf, ms: f64 },
    ParamsAtMost(f64),
}

/// What an objective or constraint reads from an arch.
#[derive(Debug, Clone, Copy)]
enum Measure {
    Latency(usize),
    Params,
    /// Parameters, negated (the search minimises).
    Capacity,
    PeakMemory,
    Accuracy,
}

/// A trained supernet and the dev split it scores archs on.
struct AccuracyJudge {
    net: Supernet,
    /// The supernet's tokenizer.json.
    tokenizer: PathBuf,
    task: Task,
    dev: Vec<Encoded>,
    pad: u32,
    /// Every score so far (an arch's score never changes for one supernet and dev split).
    scores: Mutex<HashMap<Arch, f64>>,
}

impl AccuracyJudge {
    fn load(dir: &Path, task: Task, data_dir: Option<&Path>) -> Result<AccuracyJudge> {
        let (net, tokenizer) = crate::cmd::train::load_supernet(Some(dir.to_path_buf()), task)?;
        let encoder = Encoder::from_file(&tokenizer, net.max.max_positions.min(128))?;
        let data_dir = data::data_dir(data_dir)?;
        let dev = encoder.encode(&data::load(task, &data_dir, Split::Dev)?)?;
        Ok(AccuracyJudge { net, tokenizer, task, dev, pad: encoder.pad, scores: Mutex::default() })
    }
}

/// The experiment's objectives and constraints over its profiles.
pub struct CostEvaluator {
    accuracy: Option<AccuracyJudge>,
    predictors: Vec<Predictor<'static>>,
    objectives: Vec<(Measure, ObjectiveSpec)>,
    constraints: Vec<(Measure, f64)>,
    /// What each constraint is, for the search's checkpoint.
    constraint_labels: Vec<String>,
}

impl CostEvaluator {
    /// The Accuracy objective's supernet and its tokenizer.json, when there is one.
    pub fn supernet(&self) -> Option<(&Supernet, &Path)> {
        self.accuracy.as_ref().map(|j| (&j.net, j.tokenizer.as_path()))
    }

    /// Whether the Accuracy objective's supernet can score `arch` (always, without one).
    pub fn supernet_check(&self, arch: &Arch) -> Result<(), supernet::ModelError> {
        self.accuracy.as_ref().map_or(Ok(()), |j| j.net.check(arch))
    }

    fn measure(&self, m: Measure, arch: &Arch) -> Result<f64, search::Error> {
        match m {
            Measure::Latency(i) => self.predictors[i].predict_ms(arch).map_err(search::Error::evaluator),
            Measure::Params => Ok(arch.params() as f64),
            Measure::Capacity => Ok(-(arch.params() as f64)),
            Measure::PeakMemory => {
                let graph = fused_graph(arch, &CompileOptions::default()).map_err(search::Error::evaluator)?;
                Ok(plan_buffers(&graph, &graph.schedule()).peak_bytes() as f64)
            }
            Measure::Accuracy => {
                let judge = self.judge()?;
                let known = judge.scores.lock().ok().and_then(|s| s.get(arch).copied());
                let score = match known {
                    Some(score) => score,
                    None => {
                        let score = self.score(arch)?;
                        if let Ok(mut scores) = judge.scores.lock() {
                            scores.insert(arch.clone(), score);
                        }
                        score
                    }
                };
                // The search minimises: a maximised objective is reported negated, as Capacity is.
                Ok(-score)
            }
        }
    }

    fn judge(&self) -> Result<&AccuracyJudge, search::Error> {
        self.accuracy.as_ref().ok_or_else(|| search::Error::evaluator(std::io::Error::other("no supernet loaded")))
    }

    /// `arch`'s dev metric with inherited weights, scored now (not from memory).
    pub fn score(&self, arch: &Arch) -> Result<f64, search::Error> {
        let judge = self.judge()?;
        let score = evaluate_compiled(&judge.net, arch, judge.task, &judge.dev, judge.pad, 128, scoring_threads())
            .map_err(|e| search::Error::evaluator(std::io::Error::other(format!("{e:#}"))))?;
        Ok(score.value)
    }

    /// Every dev score of the Accuracy objective so far: the costly part of an evaluation, kept
    /// by `canao compare` across runs (latencies are predicted again, so that a recalibrated
    /// profile does not discard them).
    pub fn scores(&self) -> Vec<(Arch, f64)> {
        let scores = self.accuracy.as_ref().and_then(|j| j.scores.lock().ok().map(|s| s.clone()));
        scores.map(|s| s.into_iter().collect()).unwrap_or_default()
    }

    /// Dev scores known from an earlier run, used instead of scoring those archs again.
    pub fn remember_scores(&self, known: impl IntoIterator<Item = (Arch, f64)>) {
        if let Some(mut scores) = self.accuracy.as_ref().and_then(|j| j.scores.lock().ok()) {
            scores.extend(known);
        }
    }
}

/// Threads for one arch's program: every core, unless the arch is one of several that a search
/// scores at once on rayon's workers. Then the archs in flight already keep every core busy, and
/// a program's own threads would only add a meeting point to each of its kernels, which costs
/// the small archs that most draws are more than it gives them.
fn scoring_threads() -> usize {
    if rayon::current_thread_index().is_some() && rayon::current_num_threads() > 1 { 1 } else { cores() }
}

impl Evaluator for CostEvaluator {
    fn objectives(&self) -> Vec<ObjectiveSpec> {
        self.objectives.iter().map(|(_, spec)| spec.clone()).collect()
    }

    fn constraints(&self) -> Vec<String> {
        self.constraint_labels.clone()
    }

    fn evaluate(&self, arch: &Arch) -> Result<Evaluation, search::Error> {
        // A profile named by an objective and a constraint is asked once: prediction lowers and
        // fuses the arch, the costliest step of an evaluation.
        let mut latency: Vec<Option<f64>> = vec![None; self.predictors.len()];
        let mut value = |m: Measure| match (m, &mut latency[..]) {
            (Measure::Latency(i), memo) => match memo[i] {
                Some(v) => Ok(v),
                None => self.measure(m, arch).inspect(|&v| memo[i] = Some(v)),
            },
            _ => self.measure(m, arch),
        };
        let objectives = self.objectives.iter().map(|(m, _)| value(*m)).collect::<Result<_, _>>()?;
        let mut violation = 0.0;
        for (m, limit) in &self.constraints {
            violation += normalised_excess(value(*m)?, *limit);
        }
        Ok(Evaluation { objectives, violation })
    }
}

/// Run an NSGA-II search from an experiment file; `--resume` continues an interrupted one.
///
/// Writes `runs/<name>/search_state.ron` (a checkpoint every generation, written atomically),
/// and `pareto.csv` with the final front.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The experiment file (RON).
    #[arg(long)]
    experiment: PathBuf,
    /// Continue from the checkpoint of an earlier run of the same experiment.
    #[arg(long)]
    resume: bool,
    /// Print one JSON object as the last line.
    #[arg(long)]
    json: bool,
}

fn load_profile(profiles: &mut Vec<(PathBuf, &'static DeviceProfile)>, path: &Path) -> Result<usize> {
    if let Some(i) = profiles.iter().position(|(p, _)| p == path) {
        return Ok(i);
    }
    // The profile lives as long as the command: leak it so that predictors can borrow it.
    let profile: &'static DeviceProfile = Box::leak(Box::new(DeviceProfile::load(path)?));
    profiles.push((path.to_path_buf(), profile));
    Ok(profiles.len() - 1)
}

pub fn run(args: Args) -> Result<()> {
    let text =
        std::fs::read_to_string(&args.experiment).with_context(|| format!("reading {}", args.experiment.display()))?;
    let experiment: SearchExperiment =
        ron::from_str(&text).with_context(|| format!("{}: not a search experiment", args.experiment.display()))?;
    let costs = costs(&experiment, &args.experiment)?;
    let run = run_search(&experiment, &costs, args.resume, false, !args.json)?;
    if args.json {
        print_json(&run.summary);
    }
    Ok(())
}

/// An experiment's space, and its objectives and constraints ready to evaluate archs.
pub struct Costs {
    pub space: SearchSpace,
    pub evaluator: CostEvaluator,
}

/// Checks what can be checked of `experiment` before anything runs: the space, the objectives,
/// the search settings, the constraint limits and every device profile it names — everything
/// but the supernet, which `canao run` trains first. `origin` is the file named in errors.
pub fn check(experiment: &SearchExperiment, origin: &Path) -> Result<()> {
    let at = |field: &str| format!("{}: `{field}`", origin.display());
    if let Some(space) = &experiment.space {
        space.validate().with_context(|| at("space"))?;
    }
    if experiment.objectives.is_empty() {
        bail!("{}: `objectives` is empty; name at least one", origin.display());
    }
    if experiment.objectives.iter().filter(|o| matches!(o, Objective::Accuracy { .. })).count() > 1 {
        bail!("{}: `objectives` names more than one Accuracy objective; name one", origin.display());
    }
    experiment.search.validate(experiment.objectives.len()).with_context(|| at("search"))?;
    let mut profiles = Vec::new();
    for o in &experiment.objectives {
        if let Objective::Latency { profile } = o {
            profiles.push(("objectives", profile));
        }
    }
    for c in &experiment.constraints {
        let (limit, field) = match c {
            Constraint::LatencyAtMost { profile, ms } => {
                profiles.push(("constraints", profile));
                (*ms, "LatencyAtMost.ms")
            }
            Constraint::ParamsAtMost(limit) => (*limit, "ParamsAtMost"),
        };
        if !(limit.is_finite() && limit > 0.0) {
            bail!("{}: constraint `{field}` must be a positive number, got {limit}", origin.display());
        }
    }
    for (field, path) in profiles {
        DeviceProfile::load(path).with_context(|| at(field))?;
    }
    Ok(())
}

/// Loads what `experiment`'s objectives and constraints need (profiles, the supernet and its dev
/// split) after [`check`]ing it; `origin` is the file named in errors.
pub fn costs(experiment: &SearchExperiment, origin: &Path) -> Result<Costs> {
    check(experiment, origin)?;
    let space = experiment.space.clone().unwrap_or_default();
    let mut profiles = Vec::new();
    let mut objectives = Vec::new();
    let mut accuracy = None;
    for o in &experiment.objectives {
        objectives.push(match o {
            Objective::Latency { profile } => {
                let i = load_profile(&mut profiles, profile)?;
                (
                    Measure::Latency(i),
                    ObjectiveSpec::new(format!("latency_ms[{}]", profiles[i].1.device.name), "ms", Sense::Minimise),
                )
            }
            Objective::Params => (Measure::Params, ObjectiveSpec::new("params", "", Sense::Minimise)),
            Objective::Capacity => (Measure::Capacity, ObjectiveSpec::new("capacity_params", "", Sense::Maximise)),
            Objective::PeakMemory => (Measure::PeakMemory, ObjectiveSpec::new("peak_memory", "bytes", Sense::Minimise)),
            Objective::Accuracy { supernet, task } => {
                let (Some(supernet), Some(task)) = (supernet, task) else {
                    bail!(
                        "{}: the Accuracy objective needs `supernet` (a trained supernet) and `task`",
                        origin.display()
                    );
                };
                accuracy = Some(
                    AccuracyJudge::load(supernet, *task, experiment.data_dir.as_deref())
                        .with_context(|| format!("{}: the Accuracy objective", origin.display()))?,
                );
                (
                    Measure::Accuracy,
                    ObjectiveSpec::new(format!("{task}_dev_{}", task.metric_name()), "", Sense::Maximise),
                )
            }
        });
    }
    let mut constraints = Vec::new();
    let mut constraint_labels = Vec::new();
    for c in &experiment.constraints {
        let (measure, limit, label) = match c {
            Constraint::LatencyAtMost { profile, ms } => {
                let i = load_profile(&mut profiles, profile)?;
                let device = &profiles[i].1.device;
                (
                    Measure::Latency(i),
                    *ms,
                    format!("latency_ms[{}, {}] <= {ms}", device.name, threads_label(device.threads)),
                )
            }
            Constraint::ParamsAtMost(limit) => (Measure::Params, *limit, format!("params <= {limit}")),
        };
        constraints.push((measure, limit));
        constraint_labels.push(label);
    }
    let evaluator = CostEvaluator {
        accuracy,
        predictors: profiles.iter().map(|(_, p)| Predictor::new(p)).collect(),
        objectives,
        constraints,
        constraint_labels,
    };
    Ok(Costs { space, evaluator })
}

/// A finished (or resumed to its end) search.
pub struct SearchRun {
    /// What `canao search --json` prints: the front and the search's counters.
    pub summary: serde_json::Value,
    pub specs: Vec<ObjectiveSpec>,
    /// Every evaluated arch, in evaluation order.
    pub trace: Vec<(Arch, Evaluation)>,
    /// The final front.
    pub front: Vec<Arch>,
    /// Evaluations spent at the end of each generation.
    pub generations: Vec<usize>,
}

/// Runs (or, with `resume`, continues) the search of `experiment` with `costs`; prints the front.
/// With `finished_only`, an unfinished search is an error instead of being continued.
pub fn run_search(
    experiment: &SearchExperiment,
    costs: &Costs,
    resume: bool,
    finished_only: bool,
    show_progress: bool,
) -> Result<SearchRun> {
    let space = costs.space.clone();
    let evaluator = &costs.evaluator;
    let out = experiment.out.clone().unwrap_or_else(|| PathBuf::from("runs").join(&experiment.name));
    let checkpoint = out.join("search_state.ron");
    let mut search = if resume && checkpoint.exists() {
        Nsga2::resume(space, evaluator, experiment.search.clone(), &checkpoint)
            .with_context(|| format!("resuming from {}", checkpoint.display()))?
    } else {
        if checkpoint.exists() {
            bail!(
                "{} exists: pass --resume to continue that search, or remove {}",
                checkpoint.display(),
                out.display()
            );
        }
        std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
        Nsga2::new(space, evaluator, experiment.search.clone())?.with_checkpoint(&checkpoint)
    };
    if finished_only && !search.is_done() {
        bail!("{}: the search has not finished; `canao report` searches nothing", checkpoint.display());
    }

    let bar = show_progress.then(|| {
        let bar = ProgressBar::new(experiment.search.generations as u64 + 1);
        bar.set_style(
            ProgressStyle::with_template("generation {pos}/{len} [{bar:30}] {msg} {elapsed_precise} eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar
    });
    let started = std::time::Instant::now();
    let evaluated_before = search.state().history().last().map_or(0, |r| r.evaluations);
    while !search.is_done() {
        let record = search.step()?.clone();
        if let Some(bar) = &bar {
            bar.set_position(record.generation as u64 + 1);
            let hv = record.hypervolume.map_or("-".to_string(), |h| format!("{h:.4e}"));
            bar.set_message(format!(
                "{} evaluated, {} cache hits, front {}, hypervolume {hv}",
                record.evaluations, record.cache_hits, record.front_size
            ));
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }

    let specs = search.state().objectives().to_vec();
    let front = search.front();
    let mut csv = String::from("arch");
    for s in &specs {
        csv.push_str(&format!(",{}", s.name));
    }
    csv.push_str(",feasible\n");
    for ind in &front {
        csv.push_str(&format!("\"{}\"", ind.arch));
        for (s, v) in specs.iter().zip(&ind.evaluation.objectives) {
            csv.push_str(&format!(",{}", s.natural(*v)));
        }
        csv.push_str(&format!(",{}\n", ind.evaluation.violation == 0.0));
    }
    write_atomic(&out.join("pareto.csv"), csv.as_bytes())?;
    let last = search.state().history().last().cloned();
    let seconds = started.elapsed().as_secs_f64();
    // Distinct archs evaluated by this invocation (a resumed search counts only its own).
    let evaluated = last.as_ref().map_or(0, |r| r.evaluations).saturating_sub(evaluated_before);
    let rate = evaluated as f64 / seconds.max(1e-9);
    println!(
        "{}: front of {} archs; {evaluated} archs evaluated in {seconds:.2} s ({rate:.0} archs/s, checkpoints included); wrote {}",
        experiment.name,
        front.len(),
        out.join("pareto.csv").display()
    );
    for ind in front.iter().take(20) {
        let values: Vec<String> = specs
            .iter()
            .zip(&ind.evaluation.objectives)
            .map(|(s, v)| format!("{}={:.4}", s.name, s.natural(*v)))
            .collect();
        println!("  {:<44} {}", ind.arch.to_string(), values.join("  "));
    }
    let summary = json!({
            "name": experiment.name,
            "generations": last.as_ref().map(|r| r.generation),
            "evaluations": last.as_ref().map(|r| r.evaluations),
            "cache_hits": last.as_ref().map(|r| r.cache_hits),
            "hypervolume": last.as_ref().and_then(|r| r.hypervolume),
            "seconds": seconds,
            "archs_per_s": rate,
            "objectives": specs.iter().map(|s| s.name.clone()).collect::<Vec<_>>(),
            "front": front.iter().map(|i| json!({
                "arch": i.arch.to_string(),
                // Every field, for tools that rebuild the arch (the compact form omits defaults).
                "arch_ron": i.arch.to_ron(),
                "objectives": specs.iter().zip(&i.evaluation.objectives).map(|(s, v)| s.natural(*v)).collect::<Vec<_>>(),
                "feasible": i.evaluation.violation == 0.0,
            })).collect::<Vec<_>>(),
    });
    let state = search.state();
    Ok(SearchRun {
        summary,
        specs: specs.clone(),
        trace: state.cache().entries().map(|(a, e)| (a.clone(), e.clone())).collect(),
        front: front.iter().map(|i| i.arch.clone()).collect(),
        generations: state.history().iter().map(|r| r.evaluations).collect(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a test: a failure should stop it loudly
mod tests {
    use super::*;

    /// Every committed experiment parses, and its search settings pass the checks a search makes
    /// before it starts (a population or reference point that does not fit would otherwise show
    /// only when someone runs it).
    #[test]
    fn committed_experiments_are_valid() {
        let files = crate::io::committed_configs("searches");
        assert!(files.len() >= 4, "{files:?}");
        for path in files {
            let text = std::fs::read_to_string(&path).unwrap();
            let experiment: SearchExperiment =
                ron::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let objectives = experiment.objectives.len();
            experiment.search.validate(objectives).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
    }

    /// A misspelt field of an objective or a constraint is an error naming it, not a default.
    #[test]
    fn unknown_fields_of_objectives_and_constraints_are_errors() {
        let experiment = |objective: &str, constraint: &str| {
            format!(
                "SearchExperiment(name: \"t\", objectives: [{objective}], constraints: [{constraint}], \
                 search: (population: 8, generations: 3, seed: 3))"
            )
        };
        let good = experiment("Accuracy(supernet: Some(\"s\"))", "LatencyAtMost(profile: \"p.ron\", ms: 5.0)");
        ron::from_str::<SearchExperiment>(&good).unwrap();
        let err = ron::from_str::<SearchExperiment>(&experiment(
            "Accuracy(supernett: Some(\"s\"))",
            "LatencyAtMost(profile: \"p.ron\", ms: 5.0)",
        ))
        .unwrap_err();
        assert!(err.to_string().contains("supernett"), "{err}");
        let err = ron::from_str::<SearchExperiment>(&experiment(
            "Params",
            "LatencyAtMost(profile: \"p.ron\", ms: 5.0, threads: 2)",
        ))
        .unwrap_err();
        assert!(err.to_string().contains("threads"), "{err}");
    }
}
