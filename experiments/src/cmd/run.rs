//! `canao run`: every stage of an experiment file (teacher, supernet, search) that an earlier run
//! has not finished, in `runs/<name>/`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use arch::SearchSpace;
use search::Nsga2Config;
use serde::Deserialize;
use serde_json::json;
use supernet::data::Task;
use supernet::{TrainConfig, teacher};

use crate::cmd::search::{Constraint, Objective, SearchExperiment, run_search};
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
/// search state and `pareto.csv`) and `summary.json`. A stage that was interrupted resumes from
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
    let origin = &args.experiment;
    let text = std::fs::read_to_string(origin).with_context(|| format!("reading {}", origin.display()))?;
    let experiment: Experiment =
        ron::from_str(&text).with_context(|| format!("{}: not an experiment", origin.display()))?;
    let space = experiment.space.clone().unwrap_or_default();
    space.validate().with_context(|| format!("{}: `space`", origin.display()))?;
    let out = experiment.out.clone().unwrap_or_else(|| PathBuf::from("runs").join(&experiment.name));
    if let Some(first) = args.force.iter().min() {
        for stage in Stage::ALL.iter().filter(|s| *s >= first) {
            let dir = stage.dir(&out);
            if dir.exists() {
                std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
            }
        }
    }
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    write_atomic(&out.join("experiment.ron"), text.as_bytes())?;
    let started = Instant::now();
    let mut stages = Vec::new();

    // Phases one and two: a finished phase leaves model/; an interrupted one, checkpoint/.
    let teacher_start = teacher::locate(experiment.teacher.as_deref(), &cache_dir())?;
    let mut supernet_config = experiment.supernet_training.clone();
    supernet_config.sandwich.get_or_insert_with(Default::default).space = space.clone();
    let phases = [
        (Stage::Teacher, Phase::Teacher, experiment.teacher_training.clone(), teacher_start),
        (Stage::Supernet, Phase::Supernet, supernet_config, Stage::Teacher.dir(&out).join("model")),
    ];
    let mut results = serde_json::Map::new();
    for (stage, phase, mut config, start) in phases {
        config.task = experiment.task;
        let dir = stage.dir(&out);
        let t = Instant::now();
        if dir.join("result.json").is_file() && dir.join("model/model.safetensors").is_file() {
            eprintln!("{}: done in an earlier run, reusing {}", phase.name(), dir.display());
            let result = std::fs::read_to_string(dir.join("result.json"))?;
            results.insert(phase.name().into(), serde_json::from_str(&result)?);
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
    let objectives = experiment
        .objectives
        .iter()
        .map(|o| match o {
            Objective::Accuracy { supernet, task } => Objective::Accuracy {
                supernet: Some(supernet.clone().unwrap_or_else(|| Stage::Supernet.dir(&out).join("model"))),
                task: Some(task.unwrap_or(experiment.task)),
            },
            other => other.clone(),
        })
        .collect();
    let search = SearchExperiment {
        name: experiment.name.clone(),
        space: Some(space),
        objectives,
        constraints: experiment.constraints.clone(),
        search: experiment.search.clone(),
        out: Some(Stage::Search.dir(&out)),
        data_dir: experiment.data_dir.clone(),
    };
    let resume = Stage::Search.dir(&out).join("search_state.ron").is_file();
    let front = run_search(&search, origin, resume, !args.quiet)?;
    stages.push(json!({"stage": "search", "resumed": resume, "seconds": t.elapsed().as_secs_f64()}));

    let summary = json!({
        "name": experiment.name,
        "task": experiment.task.to_string(),
        "out": out.display().to_string(),
        "note": experiment.note,
        "seconds": started.elapsed().as_secs_f64(),
        "stages": stages,
        "teacher": results.get("teacher"),
        "supernet": results.get("supernet"),
        "search": front,
    });
    write_atomic(&out.join("summary.json"), serde_json::to_string_pretty(&summary)?.as_bytes())?;
    if let Some(note) = &experiment.note {
        println!("note: {note}");
    }
    println!("{}: done in {:.0} s; results in {}", experiment.name, started.elapsed().as_secs_f64(), out.display());
    if args.json {
        print_json(&summary);
    }
    Ok(())
}
