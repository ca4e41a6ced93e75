//! `canao compare`: NSGA-II against random search with an experiment's real objectives.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, Result, bail};
use arch::Arch;
use indicatif::{ProgressBar, ProgressStyle};
use search::{ComparisonConfig, Evaluation, Evaluator, Nsga2Config, ObjectiveSpec, compare_with_random};
use serde_json::json;

use crate::cmd::search::{SearchExperiment, costs};
use crate::io::{print_json, write_atomic};

/// How many evaluations NSGA-II needs to reach a share (default 99 %) of a reference
/// hypervolume, against random search with the same budget, over several seeds, with the
/// objectives and constraints of a search experiment (accuracy from a trained supernet, latency
/// from a device profile, …).
///
/// The reference front is the union of the fronts of long NSGA-II runs and of every compared
/// run. Every distinct arch is scored once for all runs (runs that meet the same arch share its
/// score) and the scores are kept in `--cache`, so that an interrupted comparison continues
/// where it stopped. Needs the experiment's `reference_point`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A search experiment (RON), as `canao search` takes.
    #[arg(long)]
    experiment: PathBuf,
    /// One NSGA-II run and one random search per seed.
    #[arg(long, value_delimiter = ',', default_value = "1,2,3,4,5")]
    seeds: Vec<u64>,
    /// Evaluations of each compared run.
    #[arg(long, default_value_t = 300)]
    budget: usize,
    /// Seeds of the long NSGA-II runs whose fronts make the reference.
    #[arg(long, value_delimiter = ',', default_value = "1001,1002")]
    reference_seeds: Vec<u64>,
    /// Evaluations of each long run.
    #[arg(long, default_value_t = 900)]
    reference_budget: usize,
    /// Share of the reference hypervolume to reach.
    #[arg(long, default_value_t = 0.99)]
    target: f64,
    /// Scores of every arch evaluated so far (JSON; read when present, rewritten as it grows).
    #[arg(long)]
    cache: Option<PathBuf>,
    /// Print one JSON object as the last line.
    #[arg(long)]
    json: bool,
}

/// An evaluator that scores each distinct arch once, shared by every run of the comparison, and
/// saves its scores every `SAVE_EVERY` new archs.
struct Memo<'a, E> {
    inner: &'a E,
    scores: Mutex<HashMap<Arch, Evaluation>>,
    file: Option<&'a Path>,
    unsaved: Mutex<usize>,
    bar: &'a ProgressBar,
}

const SAVE_EVERY: usize = 25;

impl<E: Evaluator> Memo<'_, E> {
    fn save(&self) -> Result<()> {
        let Some(file) = self.file else { return Ok(()) };
        let scores = self.scores.lock().map_err(|_| anyhow::anyhow!("a scoring thread panicked"))?;
        let rows: Vec<(String, &Evaluation)> = scores.iter().map(|(a, e)| (a.to_ron(), e)).collect();
        write_atomic(file, serde_json::to_string(&rows)?.as_bytes())
    }
}

impl<E: Evaluator> Evaluator for Memo<'_, E> {
    fn objectives(&self) -> Vec<ObjectiveSpec> {
        self.inner.objectives()
    }

    fn evaluate(&self, arch: &Arch) -> search::Result<Evaluation> {
        self.bar.inc(1);
        if let Some(e) = self.scores.lock().ok().and_then(|s| s.get(arch).cloned()) {
            return Ok(e);
        }
        let e = self.inner.evaluate(arch)?;
        let new = match self.scores.lock() {
            Ok(mut s) => {
                s.insert(arch.clone(), e.clone());
                s.len()
            }
            Err(_) => 0,
        };
        self.bar.set_message(format!("{new} distinct archs scored"));
        let due = self.unsaved.lock().map(|mut n| {
            *n += 1;
            let due = *n >= SAVE_EVERY;
            if due {
                *n = 0;
            }
            due
        });
        if due.unwrap_or(false) {
            self.save().map_err(|e| search::Error::evaluator(std::io::Error::other(e.to_string())))?;
        }
        Ok(e)
    }
}

fn load_cache(file: &Path) -> Result<HashMap<Arch, Evaluation>> {
    if !file.exists() {
        return Ok(HashMap::new());
    }
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let rows: Vec<(String, Evaluation)> = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a score cache of canao compare", file.display()))?;
    rows.into_iter().map(|(a, e)| Ok((Arch::parse(&a).with_context(|| format!("in {}", file.display()))?, e))).collect()
}

/// Cached archs scored again to check that the cache was made with these objectives.
const CACHE_CHECKS: usize = 3;

/// Scores a few cached archs again and compares: a cache made with another profile, supernet or
/// objective list would otherwise mix its scores silently with new ones.
fn check_cache(file: &Path, scores: &HashMap<Arch, Evaluation>, evaluator: &impl Evaluator) -> Result<()> {
    let mut sample: Vec<(&Arch, &Evaluation)> = scores.iter().collect();
    sample.sort_by_key(|(a, _)| a.to_ron());
    for (arch, cached) in sample.into_iter().take(CACHE_CHECKS) {
        let now = evaluator.evaluate(arch)?;
        let same = now.objectives.len() == cached.objectives.len()
            && now.objectives.iter().zip(&cached.objectives).all(|(a, b)| (a - b).abs() <= 1e-6 * a.abs().max(1.0));
        if !same {
            bail!(
                "{}: made with other objectives: {arch} scores {:?} now but {:?} in the cache (a changed device \
                 profile, supernet or experiment?); remove the file or name another --cache",
                file.display(),
                now.objectives,
                cached.objectives
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
    let scores = match &args.cache {
        Some(file) => load_cache(file)?,
        None => HashMap::new(),
    };
    if let Some(file) = &args.cache {
        check_cache(file, &scores, &costs.evaluator)?;
    }
    let requests = args.reference_seeds.len() * args.reference_budget + 2 * args.seeds.len() * args.budget;
    let bar = if args.json { ProgressBar::hidden() } else { ProgressBar::new(requests as u64) };
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} requests {elapsed_precise} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(format!("{} distinct archs scored", scores.len()));
    let memo = Memo {
        inner: &costs.evaluator,
        scores: Mutex::new(scores),
        file: args.cache.as_deref(),
        unsaved: Mutex::new(0),
        bar: &bar,
    };
    // Enough generations for any budget: the runs stop on their evaluation count.
    let nsga2 = Nsga2Config { generations: args.budget.max(args.reference_budget), ..experiment.search.clone() };
    let config = ComparisonConfig {
        nsga2,
        budget: args.budget,
        seeds: args.seeds.clone(),
        reference_seeds: args.reference_seeds.clone(),
        reference_budget: args.reference_budget,
        reference_point,
        target: args.target,
    };
    let started = std::time::Instant::now();
    let result = compare_with_random(&costs.space, &memo, &config);
    memo.save()?;
    bar.finish_and_clear();
    let comparison = result?;
    let distinct = memo.scores.lock().map(|s| s.len()).unwrap_or(0);
    println!(
        "{}: reference front of {} archs, hypervolume {:.6}",
        experiment.name,
        comparison.reference_front.len(),
        comparison.reference_hypervolume
    );
    println!("{comparison}");
    let (n, r) = (comparison.nsga2(), comparison.random());
    println!("{distinct} distinct archs scored in {:.0} s", started.elapsed().as_secs_f64());
    if args.json {
        print_json(&json!({
            "experiment": origin.display().to_string(),
            "comparison": comparison,
            "nsga2_mean": n.mean,
            "random_mean": r.mean,
            "ratio": comparison.ratio(),
            "ratio_kind": comparison.ratio_kind(),
            "distinct_archs": distinct,
            "seconds": started.elapsed().as_secs_f64(),
        }));
    }
    Ok(())
}
