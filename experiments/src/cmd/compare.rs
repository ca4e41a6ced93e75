//! `canao compare`: NSGA-II against random search with an experiment's real objectives.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, Result, bail};
use arch::Arch;
use indicatif::{ProgressBar, ProgressStyle};
use search::{ComparisonConfig, Evaluation, Evaluator, Nsga2Config, ObjectiveSpec, compare_with_random};
use serde_json::json;

use crate::cmd::search::{CostEvaluator, SearchExperiment, costs};
use crate::io::{print_json, write_atomic};

/// How many evaluations NSGA-II needs to reach a share (default 99 %) of a reference
/// hypervolume, against random search with the same budget (or a larger one), over several
/// seeds, with the
/// objectives and constraints of a search experiment (accuracy from a trained supernet, latency
/// from a device profile, …).
///
/// The reference front is the union of the fronts of long NSGA-II runs and of every compared
/// run. Every distinct arch is evaluated once for all runs (runs that meet the same arch share
/// its evaluation), and the dev scores of the Accuracy objective, the costly part, are kept in
/// `--cache`, so that an interrupted comparison continues where it stopped (latencies are
/// predicted again: a recalibrated profile keeps the scores). Needs the experiment's
/// `reference_point`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A search experiment (RON), as `canao search` takes.
    #[arg(long)]
    experiment: PathBuf,
    /// One NSGA-II run and one random search per seed (and a HAT-style search with --hat).
    #[arg(long, value_delimiter = ',', default_value = "1,2,3,4,5")]
    seeds: Vec<u64>,
    /// Evaluations of each compared run.
    #[arg(long, default_value_t = 300)]
    budget: usize,
    /// Evaluations of each random search, when it should run longer than NSGA-II (a random
    /// search that misses the target within --budget only bounds the ratio). Default: --budget.
    #[arg(long)]
    random_budget: Option<usize>,
    /// Seeds of the long NSGA-II runs whose fronts make the reference.
    #[arg(long, value_delimiter = ',', default_value = "1001,1002")]
    reference_seeds: Vec<u64>,
    /// Evaluations of each long run.
    #[arg(long, default_value_t = 900)]
    reference_budget: usize,
    /// Also run a HAT-style constrained search per seed (one objective under the experiment's
    /// constraints, as HAT searches for one latency budget), optimising the experiment's first
    /// objective with NSGA-II's budget, and report the best value each search found. Its
    /// evaluations join the reference front, so NSGA-II's and random search's shares, counts and
    /// IGD+ are comparable only between runs that both used --hat or both did not.
    #[arg(long)]
    hat: bool,
    /// Share of the reference hypervolume to reach.
    #[arg(long, default_value_t = 0.99)]
    target: f64,
    /// Dev scores of every arch scored so far by the experiment's supernet (JSON; read when
    /// present, rewritten as it grows). A few are scored again first, to check that the file
    /// belongs to this supernet and task.
    #[arg(long)]
    cache: Option<PathBuf>,
    /// Print one JSON object as the last line.
    #[arg(long)]
    json: bool,
}

/// An evaluator that evaluates each distinct arch once, shared by every run of the comparison,
/// and saves the dev scores every `SAVE_EVERY` new archs.
struct Memo<'a> {
    inner: &'a CostEvaluator,
    evaluations: Mutex<HashMap<Arch, Evaluation>>,
    file: Option<&'a Path>,
    /// Evaluations since the last save; held while saving, so that two workers never write the
    /// file at once (archs whose scores are known come back in microseconds, and many of them
    /// can fall due together).
    unsaved: Mutex<usize>,
    bar: &'a ProgressBar,
    /// When the last progress line was written (see `LOG_EVERY`).
    logged: Mutex<std::time::Instant>,
}

const SAVE_EVERY: usize = 25;

/// The least time between two progress lines on stderr when no bar is drawn (`--json`, or stderr
/// not a terminal, as in a background run writing to a log).
const LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

impl Memo<'_> {
    fn save(&self) -> Result<()> {
        let Some(file) = self.file else { return Ok(()) };
        let mut rows: Vec<(String, f64)> = self.inner.scores().into_iter().map(|(a, s)| (a.to_ron(), s)).collect();
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        write_atomic(file, serde_json::to_string(&rows)?.as_bytes())
    }
}

impl Evaluator for Memo<'_> {
    fn objectives(&self) -> Vec<ObjectiveSpec> {
        self.inner.objectives()
    }

    fn evaluate(&self, arch: &Arch) -> search::Result<Evaluation> {
        self.bar.inc(1);
        if let Some(e) = self.evaluations.lock().ok().and_then(|s| s.get(arch).cloned()) {
            return Ok(e);
        }
        let e = self.inner.evaluate(arch)?;
        let new = match self.evaluations.lock() {
            Ok(mut s) => {
                s.insert(arch.clone(), e.clone());
                s.len()
            }
            Err(_) => 0,
        };
        self.bar.set_message(format!("{new} distinct archs evaluated"));
        let due = self.bar.is_hidden()
            && self.logged.lock().is_ok_and(|mut at| {
                let due = at.elapsed() >= LOG_EVERY;
                if due {
                    *at = std::time::Instant::now();
                }
                due
            });
        if due {
            // The runs may overshoot their budgets by part of a generation: the total is a guide.
            let scores = match self.inner.supernet() {
                Some(_) => format!(" ({} dev scores known)", self.inner.scores().len()),
                None => String::new(),
            };
            eprintln!(
                "{new} distinct archs evaluated{scores}, {} of about {} requests, {:.0} s",
                self.bar.position(),
                self.bar.length().unwrap_or(0),
                self.bar.elapsed().as_secs_f64()
            );
        }
        if let Ok(mut unsaved) = self.unsaved.lock() {
            *unsaved += 1;
            if *unsaved >= SAVE_EVERY {
                // Saved under the lock: a concurrent save would rename the other's temporary file
                // away from under it.
                self.save().map_err(|e| search::Error::evaluator(std::io::Error::other(e.to_string())))?;
                *unsaved = 0;
            }
        }
        Ok(e)
    }
}

/// The dev scores of a `--cache` file (none when it does not exist yet).
fn load_cache(file: &Path) -> Result<Vec<(Arch, f64)>> {
    if !file.exists() {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let rows: Vec<(String, f64)> = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a score cache of canao compare ([[arch, score], …])", file.display()))?;
    rows.into_iter().map(|(a, s)| Ok((Arch::parse(&a).with_context(|| format!("in {}", file.display()))?, s))).collect()
}

/// Cached archs scored again to check that the cache was made with this supernet and task.
const CACHE_CHECKS: usize = 3;

/// Scores a few cached archs again and compares: a cache made with another supernet or task
/// would otherwise mix its scores silently with new ones.
/// How far a cached score may lie from the same arch scored again: scores made by the supernet's
/// burn forward and by the compiled program differ where an example's two largest logits lie
/// within their 1e-4 of each other (one example of SST-2 dev is 0.00115); another supernet or
/// task moves scores by far more.
const CACHE_TOLERANCE: f64 = 0.003;

fn check_cache(file: &Path, known: &[(Arch, f64)], evaluator: &CostEvaluator) -> Result<()> {
    let mut sample: Vec<&(Arch, f64)> = known.iter().collect();
    sample.sort_by_key(|(a, _)| a.to_ron());
    for (arch, cached) in sample.into_iter().take(CACHE_CHECKS) {
        let now = evaluator.score(arch)?;
        if (now - cached).abs() > CACHE_TOLERANCE {
            bail!(
                "{}: made with another supernet or task: {arch} scores {now} now but {cached} in the cache; \
                 remove the file or name another --cache",
                file.display()
            );
        }
    }
    Ok(())
}

pub fn run(args: Args) -> Result<()> {
    let origin = &args.experiment;
    let text = std::fs::read_to_string(origin).with_context(|| format!("reading {}", origin.display()))?;
    let experiment: SearchExperiment =
        ron::from_str(&text).with_context(|| format!("{}: not a search experiment", origin.display()))?;
    let Some(reference_point) = experiment.search.reference_point.clone() else {
        bail!("{}: `search.reference_point` is needed to measure hypervolume", origin.display());
    };
    if args.seeds.is_empty() || args.reference_seeds.is_empty() {
        bail!("--seeds and --reference-seeds must each name at least one seed");
    }
    let costs = costs(&experiment, origin)?;
    if let Some(file) = &args.cache {
        let known = load_cache(file)?;
        if !known.is_empty() && costs.evaluator.supernet().is_none() {
            bail!("{}: dev scores, but {} has no Accuracy objective", file.display(), origin.display());
        }
        check_cache(file, &known, &costs.evaluator)?;
        costs.evaluator.remember_scores(known);
    }
    let known = costs.evaluator.scores().len();
    let random_budget = args.random_budget.unwrap_or(args.budget);
    let hat_budget = if args.hat { args.budget } else { 0 };
    let requests = args.reference_seeds.len() * args.reference_budget
        + args.seeds.len() * (args.budget + random_budget + hat_budget);
    // Hidden with --json, and by indicatif itself when stderr is not a terminal: then `Memo` writes
    // a plain progress line at most every LOG_EVERY instead.
    let bar = if args.json {
        ProgressBar::with_draw_target(Some(requests as u64), indicatif::ProgressDrawTarget::hidden())
    } else {
        ProgressBar::new(requests as u64)
    };
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} requests {elapsed_precise} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(format!("{known} dev scores known"));
    let memo = Memo {
        inner: &costs.evaluator,
        evaluations: Mutex::default(),
        file: args.cache.as_deref(),
        unsaved: Mutex::new(0),
        bar: &bar,
        logged: Mutex::new(std::time::Instant::now()),
    };
    // Enough generations for any budget: the runs stop on their evaluation count.
    let nsga2 = Nsga2Config { generations: args.budget.max(args.reference_budget), ..experiment.search.clone() };
    let config = ComparisonConfig {
        nsga2,
        budget: args.budget,
        random_budget: args.random_budget,
        seeds: args.seeds.clone(),
        reference_seeds: args.reference_seeds.clone(),
        reference_budget: args.reference_budget,
        reference_point,
        target: args.target,
        hat_objective: args.hat.then_some(0),
    };
    let started = std::time::Instant::now();
    let result = compare_with_random(&costs.space, &memo, &config);
    memo.save()?;
    bar.finish_and_clear();
    let comparison = result?;
    let distinct = memo.evaluations.lock().map(|s| s.len()).unwrap_or(0);
    let scored = costs.evaluator.scores().len() - known;
    println!(
        "{}: reference front of {} archs, hypervolume {:.6}",
        experiment.name,
        comparison.reference_front.len(),
        comparison.reference_hypervolume
    );
    println!("{comparison}");
    if let Some(objective) = comparison.hat_objective {
        // The same bests in the objective's own units, averaged over the seeds that found one.
        let spec = costs.evaluator.objectives().get(objective).cloned();
        let mean = |pick: fn(&search::HatResult) -> Option<f64>| {
            let values: Vec<f64> = comparison.runs.iter().filter_map(|r| r.hat.as_ref().and_then(pick)).collect();
            let shown = values.iter().map(|&v| spec.as_ref().map_or(v, |s| s.natural(v))).sum::<f64>();
            match values.len() {
                0 => "none feasible".to_string(),
                n => format!("{:.4} ({n}/{} seeds)", shown / n as f64, comparison.runs.len()),
            }
        };
        println!(
            "best {} within {} evaluations, mean over the seeds: HAT-style {}, NSGA-II {}, random {}",
            spec.as_ref().map_or("objective".to_string(), |s| s.name.clone()),
            comparison.budget,
            mean(|h| h.best),
            mean(|h| h.nsga2_best),
            mean(|h| h.random_best)
        );
    }
    let (n, r) = (comparison.nsga2(), comparison.random());
    println!(
        "{distinct} distinct archs evaluated in {:.0} s ({scored} scored on the dev split now, the others known)",
        started.elapsed().as_secs_f64()
    );
    if args.json {
        print_json(&json!({
            "experiment": origin.display().to_string(),
            "comparison": comparison,
            "nsga2_mean": n.mean,
            "random_mean": r.mean,
            "ratio": comparison.ratio(),
            "ratio_kind": comparison.ratio_kind(),
            "distinct_archs": distinct,
            "newly_scored": scored,
            "seconds": started.elapsed().as_secs_f64(),
        }));
    }
    Ok(())
}
