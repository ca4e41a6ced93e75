//! `canao run`: every stage of an experiment file (teacher, supernet, search) that an earlier run
//! has not finished, in `runs/<name>/`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use arch::SearchSpace;
use search::Nsga2Config;
use serde::Deserialize;
use serde_json::json;
use supernet::data::Task;
use supernet::{Supernet, TrainConfig, teacher};

use crate::cmd::report::{
    Exported, Inputs, ReferenceModel, default_references, no_random_trace, saved_random_trace, write_report,
};
use crate::cmd::search::{Constraint, Objective, SearchExperiment, check, costs, run_search};
use crate::cmd::train::{Phase, PhaseRun, run_phase};
use crate::io::{cache_dir, print_json, write_atomic};

/// An experiment: what `canao run` needs from the data to the Pareto front (RON; unknown fields
/// are rejected).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    /// The run folder is `runs/<name>/` unless `out` is given.
    pub name: String,
    /// sst2, cola, stsb or trec (`Sst2`, `Cola`, `Stsb`, `Trec`).
    pub task: Task,
    /// The data directory (default: $CANAO_DATA, ./data, ../shared/data).
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
    /// A pretrained Hugging Face BERT directory (default: all-MiniLM-L6-v2, fetched once).
    #[serde(default)]
    pub teacher: Option<PathBuf>,
    /// The searched space; the supernet is trained on it too (default: the built-in space).
    #[serde(default)]
    pub space: Option<SearchSpace>,
    /// Phase one: fine-tuning the teacher.
    pub teacher_training: TrainConfig,
    /// Phase two: training the supernet (its `sandwich.space` is the experiment's space).
    pub supernet_training: TrainConfig,
    /// What the search optimises; `Accuracy` scores on the run's own supernet and task.
    pub objectives: Vec<Objective>,
    #[serde(default)]
    pub constraints: Vec<Constraint>,
    pub search: Nsga2Config,
    #[serde(default)]
    pub out: Option<PathBuf>,
    /// Said with the results (for example, that the training budget is reduced).
    #[serde(default)]
    pub note: Option<String>,
    /// Models the report scores and times the same way as the searched archs, as
    /// `(label: "BERT-Tiny size", arch: "L2-H128-A2-F512")` (default: the BERT-Tiny, -Mini and
    /// -Small sizes). The largest subnet and the fine-tuned teacher are always shown.
    #[serde(default)]
    pub references: Option<Vec<ReferenceModel>>,
    /// Run random search with NSGA-II's evaluation budget (and a seed derived from the search's)
    /// for the report's progress plot (default true; it costs as many evaluations again).
    #[serde(default = "yes")]
    pub random_baseline: bool,
}

fn yes() -> bool {
    true
}

/// A stage of `canao run`, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Stage {
    Teacher,
    Supernet,
    Search,
}

impl Stage {
    const ALL: [Stage; 3] = [Stage::Teacher, Stage::Supernet, Stage::Search];

    fn dir(self, out: &Path) -> PathBuf {
        out.join(match self {
            Stage::Teacher => "teacher",
            Stage::Supernet => "supernet",
            Stage::Search => "search",
        })
    }
}

/// Run an experiment: fine-tune the teacher, train the supernet, search — each stage that is not
/// yet done.
///
/// Writes `runs/<name>/` (or the experiment's `out`): `experiment.ron` (the file as run),
/// `teacher/` and `supernet/` (checkpoints, `model/`, `result.json`), `search/` (the resumable
/// search state and `pareto.csv`), `export/` (the chosen models), `report/` (report.html,
/// report.md, plots, pareto.csv, report.json) and `summary.json`. A stage that was interrupted resumes from
/// its checkpoint; a finished one is reused. `--force STAGE` redoes that stage and those after it.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The experiment file (RON), e.g. experiments/default.ron.
    experiment: PathBuf,
    /// Redo this stage and every stage after it (repeatable).
    #[arg(long, value_enum)]
    force: Vec<Stage>,
    /// No progress bars.
    #[arg(long)]
    quiet: bool,
    /// Print one JSON object (the summary) as the last line.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<()> {
    execute(&args, None)
}

/// Write a finished run's exported models and report again, from the run folder.
///
/// Reads the folder's `experiment.ron`, trained teacher and supernet, finished search and
/// random-search trace; nothing is trained or searched (a missing stage is an error). The
/// exported models, the report and `summary.json` are written anew (the summary keeps the
/// run's own stage times); the latency measurements in the report (the predictor against this
/// machine, compiled against eager) are taken again, and the front is the one the search found.
/// Paths inside `experiment.ron` (device profiles, data) resolve from the current directory,
/// as they did for the run: start it from the same directory.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// The run folder (`runs/<name>/`, or the experiment's `out`).
    run: PathBuf,
    /// No progress bars.
    #[arg(long)]
    quiet: bool,
    /// Print one JSON object (the summary) as the last line.
    #[arg(long)]
    json: bool,
}

pub fn report(args: ReportArgs) -> Result<()> {
    let dir = &args.run;
    let experiment = dir.join("experiment.ron");
    if !experiment.is_file() {
        bail!("{}: no experiment.ron: not a run folder of `canao run`", dir.display());
    }
    // summary.json is written last: without it a stage may be unfinished, and a report must not
    // train or search.
    if !dir.join("summary.json").is_file() {
        bail!(
            "{}: no summary.json: the run has not finished; `canao run` on its experiment file continues it \
             (in the experiment's `out`, or runs/<name>)",
            dir.display()
        );
    }
    let run = Args { experiment, force: Vec::new(), quiet: args.quiet, json: args.json };
    execute(&run, Some(dir))
}

/// Refuses to reuse a phase whose folder `dir` holds a run (finished or begun) with other
/// settings than `config`.
fn check_unchanged(dir: &Path, phase: Phase, config: &TrainConfig, origin: &Path) -> Result<()> {
    let differs = |path: &Path| -> Result<bool> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let ran: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("reading {}", path.display()))?;
        let ran = if ran.get("config").is_some() { ran["config"].clone() } else { ran };
        // Parsed, so that fields added since (with their defaults) do not count as changes.
        let ran: TrainConfig =
            serde_json::from_value(ran).with_context(|| format!("{}: not a training config", path.display()))?;
        Ok(&ran != config)
    };
    let field = if phase == Phase::Teacher { "teacher_training" } else { "supernet_training" };
    for record in [dir.join("result.json"), dir.join("checkpoint/config.json")] {
        if record.is_file() && differs(&record)? {
            bail!(
                "{}: `{field}` differs from the config {} ran with: pass --force {} to redo it",
                origin.display(),
                dir.display(),
                phase.name()
            );
        }
    }
    Ok(())
}

/// The search of `experiment` run in the folder `out`: over the run's own supernet and task
/// unless its Accuracy objective names others.
fn search_of(experiment: &Experiment, out: &Path) -> SearchExperiment {
    let objectives = experiment
        .objectives
        .iter()
        .map(|o| match o {
            Objective::Accuracy { supernet, task } => Objective::Accuracy {
                supernet: Some(supernet.clone().unwrap_or_else(|| Stage::Supernet.dir(out).join("model"))),
                task: Some(task.unwrap_or(experiment.task)),
            },
            other => other.clone(),
        })
        .collect();
    SearchExperiment {
        name: experiment.name.clone(),
        space: Some(experiment.space.clone().unwrap_or_default()),
        objectives,
        constraints: experiment.constraints.clone(),
        search: experiment.search.clone(),
        out: Some(Stage::Search.dir(out)),
        data_dir: experiment.data_dir.clone(),
    }
}

/// Refuses to continue the search in the run folder `out` when the experiment it began with
/// (the folder's `experiment.ron`) searched another space, objectives, constraints or settings
/// than `search`: checked before the folder's `experiment.ron` is replaced by the file being
/// refused. A folder without `experiment.ron` is left to the search's own checkpoint checks.
fn check_search_unchanged(out: &Path, search: &SearchExperiment, origin: &Path) -> Result<()> {
    let ran = out.join("experiment.ron");
    let Ok(text) = std::fs::read_to_string(&ran) else {
        return Ok(());
    };
    let before: Experiment = ron::from_str(&text).with_context(|| format!("{}: not an experiment", ran.display()))?;
    let before = search_of(&before, out);
    let field = if before.space != search.space {
        "space"
    } else if before.objectives != search.objectives {
        "objectives"
    } else if before.constraints != search.constraints {
        "constraints"
    } else if before.search != search.search {
        "search"
    } else {
        return Ok(());
    };
    bail!(
        "{}: `{field}` differs from the search {} began: pass --force search to search again",
        origin.display(),
        ran.display()
    )
}

/// A run's `summary.json`.
fn read_summary(path: &Path) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not a run summary", path.display()))
}

/// Runs the experiment of `args` in its own folder; or, with `report`, writes the report of the
/// finished run in that folder, refusing to train or search.
fn execute(args: &Args, report: Option<&Path>) -> Result<()> {
    let origin = &args.experiment;
    let text = std::fs::read_to_string(origin).with_context(|| format!("reading {}", origin.display()))?;
    let experiment: Experiment =
        ron::from_str(&text).with_context(|| format!("{}: not an experiment", origin.display()))?;
    let space = experiment.space.clone().unwrap_or_default();
    space.validate().with_context(|| format!("{}: `space`", origin.display()))?;
    let out = match report {
        Some(dir) => dir.to_path_buf(),
        None => experiment.out.clone().unwrap_or_else(|| PathBuf::from("runs").join(&experiment.name)),
    };
    // The search, over the run's own supernet: checked before hours of training.
    let search = search_of(&experiment, &out);
    check(&search, origin)?;
    // A finished phase leaves model/; an interrupted one, checkpoint/.
    let finished = |stage: Stage| {
        let dir = stage.dir(&out);
        dir.join("result.json").is_file() && dir.join("model/model.safetensors").is_file()
    };
    let search_state = Stage::Search.dir(&out).join("search_state.ron");
    if report.is_some() {
        for stage in [Stage::Teacher, Stage::Supernet] {
            if !finished(stage) {
                bail!(
                    "{}: no trained model (result.json and model/model.safetensors): `canao report` trains nothing",
                    stage.dir(&out).display()
                );
            }
        }
        let random = Stage::Search.dir(&out).join("random_search.json");
        for (path, what) in [(&search_state, true), (&random, experiment.random_baseline)] {
            if what && !path.is_file() {
                bail!("{}: missing: `canao report` searches nothing", path.display());
            }
        }
    }
    // A rewritten report keeps the run's own stage times (this process only reuses them).
    let previous = match report {
        Some(dir) => Some(read_summary(&dir.join("summary.json"))?),
        None => None,
    };
    if let Some(first) = args.force.iter().min() {
        // The stage, those after it, and what they produced.
        let later = Stage::ALL.iter().filter(|s| *s >= first).map(|s| s.dir(&out));
        for path in later.chain([out.join("export"), out.join("report"), out.join("summary.json")]) {
            if path.is_dir() {
                std::fs::remove_dir_all(&path).with_context(|| format!("removing {}", path.display()))?;
            } else if path.is_file() {
                std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
            }
        }
    }
    // Phases one and two, with the settings the run gives them. A phase that ran (or began)
    // with other settings is not silently reused; checked before the run folder's
    // experiment.ron is replaced by the file being refused.
    let mut teacher_config = experiment.teacher_training.clone();
    teacher_config.task = experiment.task;
    teacher_config.sandwich = None;
    let mut supernet_config = experiment.supernet_training.clone();
    supernet_config.task = experiment.task;
    supernet_config.sandwich.get_or_insert_with(Default::default).space = space.clone();
    check_unchanged(&Stage::Teacher.dir(&out), Phase::Teacher, &teacher_config, origin)?;
    check_unchanged(&Stage::Supernet.dir(&out), Phase::Supernet, &supernet_config, origin)?;
    if search_state.is_file() {
        check_search_unchanged(&out, &search, origin)?;
    }
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    if report.is_none() {
        write_atomic(&out.join("experiment.ron"), text.as_bytes())?;
    }
    let started = Instant::now();
    let mut stages = Vec::new();
    // The pretrained teacher is needed (and fetched) only when phase one has to run.
    let teacher_start = if finished(Stage::Teacher) {
        PathBuf::new()
    } else {
        teacher::locate(experiment.teacher.as_deref(), &cache_dir())?
    };
    let phases = [
        (Stage::Teacher, Phase::Teacher, teacher_config, teacher_start),
        (Stage::Supernet, Phase::Supernet, supernet_config, Stage::Teacher.dir(&out).join("model")),
    ];
    let mut results = serde_json::Map::new();
    for (stage, phase, config, start) in phases {
        let dir = stage.dir(&out);
        let t = Instant::now();
        let _span = tracing::info_span!("stage", stage = phase.name()).entered();
        if finished(stage) {
            let text = std::fs::read_to_string(dir.join("result.json"))?;
            let result: serde_json::Value = serde_json::from_str(&text)?;
            eprintln!("{}: done in an earlier run, reusing {}", phase.name(), dir.display());
            results.insert(phase.name().into(), result);
            stages.push(json!({"stage": phase.name(), "reused": true}));
            continue;
        }
        let run = PhaseRun {
            phase,
            config,
            out: dir.clone(),
            start,
            data_dir: experiment.data_dir.clone(),
            resume: dir.join("checkpoint/progress.json").is_file(),
            steps: None,
            quiet: args.quiet,
        };
        results.insert(phase.name().into(), run_phase(&run)?);
        stages.push(json!({"stage": phase.name(), "reused": false, "seconds": t.elapsed().as_secs_f64()}));
    }

    // The search, over the run's own supernet.
    let t = Instant::now();
    let resume = search_state.is_file();
    let (costs, searched) = {
        // Loading the supernet for the Accuracy objective is part of the stage and of its time.
        let _span = tracing::info_span!("stage", stage = "search").entered();
        let costs = costs(&search, origin)?;
        let searched = run_search(&search, &costs, resume, report.is_some(), !args.quiet)?;
        (costs, searched)
    };
    let search_seconds = t.elapsed().as_secs_f64();
    if report.is_some() && experiment.random_baseline {
        // Checked before the exports are replaced: a refused report changes nothing.
        let names: Vec<String> = searched.specs.iter().map(|s| s.name.clone()).collect();
        let dir = Stage::Search.dir(&out);
        if saved_random_trace(&dir, &names, experiment.search.seed, searched.trace.len()).is_none() {
            return Err(no_random_trace(&dir, searched.trace.len()));
        }
    }
    stages.push(json!({"stage": "search", "resumed": resume, "seconds": search_seconds}));
    let teacher_dev = results.get("teacher").and_then(|r| r["dev"].as_f64());
    let chosen = match costs.evaluator.supernet() {
        Some(supernet) => {
            export_chosen(&searched.summary, teacher_dev, experiment.task, supernet, &out.join("export"))?
        }
        None => vec![],
    };

    // The report: a front per Latency objective's device, with the budget on that device.
    let t = Instant::now();
    let devices: Vec<(PathBuf, Option<f64>)> = experiment
        .objectives
        .iter()
        .filter_map(|o| match o {
            Objective::Latency { profile } => Some(profile.clone()),
            _ => None,
        })
        .map(|profile| {
            let budget = experiment.constraints.iter().find_map(|c| match c {
                Constraint::LatencyAtMost { profile: p, ms } if *p == profile => Some(*ms),
                _ => None,
            });
            (profile, budget)
        })
        .collect();
    if let Some(previous) = &previous {
        stages =
            previous["stages"].as_array().into_iter().flatten().filter(|s| s["stage"] != "report").cloned().collect();
    }
    let mut facts = Vec::new();
    if let Some(dev) = teacher_dev {
        facts.push(("teacher (fine-tuned) dev".to_string(), format!("{:.2} %", 100.0 * dev)));
    }
    if let Some(dev) = results.get("supernet").and_then(|r| r["dev"].as_f64()) {
        facts.push(("largest subnet dev after supernet training".to_string(), format!("{:.2} %", 100.0 * dev)));
    }
    for stage in &stages {
        let what = format!("{} stage", stage["stage"].as_str().unwrap_or("?"));
        let how = match stage["seconds"].as_f64() {
            Some(s) if stage["reused"].as_bool() != Some(true) => format!("{:.0} s in this run", s),
            _ => "reused from an earlier run".to_string(),
        };
        facts.push((what, how));
    }
    facts.push(("archs evaluated by NSGA-II".into(), searched.trace.len().to_string()));
    let references = experiment.references.clone().unwrap_or_else(default_references);
    let report_span = tracing::info_span!("stage", stage = "report").entered();
    let written = write_report(
        Inputs {
            name: &experiment.name,
            task: experiment.task,
            note: experiment.note.as_deref(),
            costs: &costs,
            search: &searched,
            exported: &chosen,
            devices,
            references: &references,
            random_baseline: experiment.random_baseline,
            saved_only: report.is_some(),
            seed: experiment.search.seed,
            reference_point: experiment.search.reference_point.as_deref(),
            teacher_dev,
            facts,
            search_dir: &Stage::Search.dir(&out),
            quiet: args.quiet,
        },
        &out.join("report"),
    )?;
    drop(report_span);
    let mut report_stage = json!({"stage": "report", "seconds": t.elapsed().as_secs_f64()});
    if report.is_some() {
        report_stage["rewritten_by"] = "canao report".into();
    }
    stages.push(report_stage);
    let front = searched.summary;
    let seconds = match previous.as_ref().and_then(|p| p["seconds"].as_f64()) {
        Some(run) => run,
        None => started.elapsed().as_secs_f64(),
    };

    let summary = json!({
        "name": experiment.name,
        "task": experiment.task.to_string(),
        "out": out.display().to_string(),
        "note": experiment.note,
        "seconds": seconds,
        "stages": stages,
        "teacher": results.get("teacher"),
        "supernet": results.get("supernet"),
        "search": front,
        "exported": chosen,
        "report": written.as_ref().map(|w| w.dir.join("report.html").display().to_string()),
    });
    write_atomic(&out.join("summary.json"), serde_json::to_string_pretty(&summary)?.as_bytes())?;
    if let Some(note) = &experiment.note {
        println!("note: {note}");
    }
    println!("{}: done in {:.0} s; results in {}", experiment.name, started.elapsed().as_secs_f64(), out.display());
    match &written {
        Some(w) => println!("report: {}", w.dir.join("report.html").display()),
        None => println!(
            "no report: it plots an Accuracy objective against a Latency objective, and this experiment lacks one"
        ),
    }
    if args.json {
        print_json(&summary);
    }
    Ok(())
}

/// Exports the chosen points of a front whose objectives include the dev score (`…_dev_…`) and a
/// latency (`latency_ms…`): the most accurate, the fastest within one point of the teacher, and
/// the knee (the point farthest from the line between the front's extremes, both axes scaled to
/// [0, 1]). The subnets come from `net` (the supernet the Accuracy objective scored) with its
/// `tokenizer`. Returns what was written, with the command that runs each.
fn export_chosen(
    front: &serde_json::Value,
    teacher_dev: Option<f64>,
    task: Task,
    (net, tokenizer): (&Supernet, &Path),
    dir: &Path,
) -> Result<Vec<Exported>> {
    let names: Vec<&str> = front["objectives"].as_array().into_iter().flatten().filter_map(|v| v.as_str()).collect();
    let (Some(a), Some(l)) =
        (names.iter().position(|n| n.contains("_dev_")), names.iter().position(|n| n.starts_with("latency_ms")))
    else {
        return Ok(vec![]);
    };
    // (arch, score, latency) of the feasible points.
    let points: Vec<(String, f64, f64)> = front["front"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["feasible"].as_bool() == Some(true))
        .filter_map(|p| {
            let o = p["objectives"].as_array()?;
            Some((p["arch_ron"].as_str()?.to_string(), o.get(a)?.as_f64()?, o.get(l)?.as_f64()?))
        })
        .collect();
    if points.is_empty() {
        return Ok(vec![]);
    }
    let mut picks: Vec<(&str, &(String, f64, f64))> = Vec::new();
    if let Some(best) = points.iter().max_by(|x, y| x.1.total_cmp(&y.1)) {
        picks.push(("most-accurate", best));
    }
    if let Some(t) = teacher_dev
        && let Some(fast) = points.iter().filter(|p| p.1 >= t - 0.01).min_by(|x, y| x.2.total_cmp(&y.2))
    {
        picks.push(("fastest-within-1pt", fast));
    }
    let (lo_a, hi_a) = points.iter().fold((f64::MAX, f64::MIN), |(lo, hi), p| (lo.min(p.1), hi.max(p.1)));
    let (lo_l, hi_l) = points.iter().fold((f64::MAX, f64::MIN), |(lo, hi), p| (lo.min(p.2), hi.max(p.2)));
    let scaled =
        |p: &(String, f64, f64)| ((p.2 - lo_l) / (hi_l - lo_l).max(1e-12), (p.1 - lo_a) / (hi_a - lo_a).max(1e-12));
    // The extremes are (0, 0) (fastest, least accurate) and (1, 1); distance to y = x.
    if let Some(knee) = points.iter().max_by(|x, y| {
        let d = |p: &(String, f64, f64)| {
            let (x, y) = scaled(p);
            y - x
        };
        d(x).total_cmp(&d(y))
    }) {
        picks.push(("knee", knee));
    }
    let mut written = Vec::new();
    for (label, (arch_ron, score, ms)) in picks {
        let arch = arch::Arch::parse(arch_ron)?;
        let arch_text = arch.to_string();
        let out = dir.join(label);
        supernet::export::export(net, &arch, tokenizer, &out)?;
        let command = format!("canao infer --model {} --text \"a gorgeous, witty, seductive movie\"", out.display());
        println!("{label}: {arch_text} ({} {score:.4}, {ms:.2} ms) → {}", task.metric_name(), out.display());
        written.push(Exported {
            label: label.into(),
            arch,
            arch_text,
            score: *score,
            latency_ms: *ms,
            dir: out,
            run: command,
        });
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn files(dir: &str) -> Vec<PathBuf> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
        let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "ron"))
            .collect();
        found.sort();
        assert!(!found.is_empty(), "no files in {}", dir.display());
        found
    }

    fn read(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    #[test]
    fn every_shipped_experiment_and_config_parses() {
        for path in files(".") {
            let e: Experiment = ron::from_str(&read(&path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            e.search.validate(e.objectives.len()).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
        for path in files("searches") {
            let e: SearchExperiment = ron::from_str(&read(&path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            e.search.validate(e.objectives.len()).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
        for path in files("train") {
            let _: TrainConfig = ron::from_str(&read(&path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
    }
}
