//! NSGA-II (Deb et al., IEEE TEVC 2002) over a [`SearchSpace`], resumable.
//!
//! One generation: binary tournaments with the crowded comparison pick parents; children come
//! from `SearchSpace::crossover` and `SearchSpace::mutate` only; the children are evaluated
//! through the cache, in parallel; parents and children compete in elitist (μ+λ) survival under
//! Deb's constraint domination. Rank and crowding for the tournaments are recomputed from the
//! population at the start of each generation, so the population alone (with the cache and the
//! RNG) is the whole state.
//!
//! Determinism: every random choice draws from one seeded `ChaCha8Rng` on the calling thread;
//! only evaluation runs on rayon threads and is merged back in a fixed order. The same config
//! and seed give the same state — population, cache, history — whatever the number of threads,
//! and whether or not the run was killed and resumed.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use arch::{Arch, SearchSpace};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::history::{Progress, individuals};
use crate::pareto::non_dominated_sort;
use crate::selection::{Fitness, breed, distinct, survive};
use crate::{EvalCache, Evaluation, Evaluator, GenerationRecord, Individual, ObjectiveSpec, Result, pareto};
use persist::Checkpointer;
pub use persist::journal_path;

/// Version of the checkpoint format; a checkpoint of another version is refused.
pub const CHECKPOINT_FORMAT: u32 = 1;

/// Settings of an NSGA-II run. RON field names follow the Rust ones; omitted fields take the
/// defaults of [`Nsga2Config::new`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Nsga2Config {
    /// Population size μ.
    pub population: usize,
    /// Children per generation λ; μ when omitted.
    #[serde(default)]
    pub offspring: Option<usize>,
    /// Generations after the initial population.
    pub generations: usize,
    /// Stop once this many distinct archs were evaluated: the generation that reaches it
    /// evaluates only the children that fit (the first ones bred), and the run ends after it.
    #[serde(default)]
    pub max_evaluations: Option<usize>,
    /// Probability that a child is a crossover of its two parents rather than a copy of one.
    #[serde(default = "default_crossover")]
    pub crossover_prob: f64,
    /// Probability that mutation redraws each gene of a child.
    #[serde(default = "default_mutation")]
    pub mutation_prob: f64,
    /// How many times a child that repeats a population member or a sibling is bred again
    /// before it is kept anyway.
    #[serde(default = "default_retries")]
    pub duplicate_retries: usize,
    /// Seed of the search's RNG.
    pub seed: u64,
    /// Reference point (minimised form) for the hypervolume in the history; none records none.
    #[serde(default)]
    pub reference_point: Option<Vec<f64>>,
}

fn default_crossover() -> f64 {
    0.9
}
fn default_mutation() -> f64 {
    0.1
}
fn default_retries() -> usize {
    10
}

impl Nsga2Config {
    /// μ = λ = `population`, crossover 0.9, mutation 0.1 per gene, 10 retries, no evaluation
    /// limit and no reference point.
    pub fn new(population: usize, generations: usize, seed: u64) -> Nsga2Config {
        Nsga2Config {
            population,
            offspring: None,
            generations,
            max_evaluations: None,
            crossover_prob: default_crossover(),
            mutation_prob: default_mutation(),
            duplicate_retries: default_retries(),
            seed,
            reference_point: None,
        }
    }

    /// λ, the children per generation.
    pub fn offspring(&self) -> usize {
        self.offspring.unwrap_or(self.population)
    }

    /// Checks sizes and probabilities, and that the reference point has one value per
    /// objective.
    pub fn validate(&self, objectives: usize) -> Result<()> {
        validate_common(
            self.population,
            self.offspring(),
            self.crossover_prob,
            self.mutation_prob,
            self.max_evaluations,
        )?;
        validate_reference(self.reference_point.as_deref(), objectives)
    }
}

pub(crate) fn validate_common(
    population: usize,
    offspring: usize,
    crossover: f64,
    mutation: f64,
    max_evaluations: Option<usize>,
) -> Result<()> {
    use crate::Error;
    if population == 0 {
        return Err(Error::config("population", "must be at least 1"));
    }
    if let Some(limit) = max_evaluations.filter(|&limit| limit < population) {
        // The first population would be cut short: the "front" would be a random sample.
        let reason = format!("must be at least the population ({population}), got {limit}");
        return Err(Error::config("max_evaluations", reason));
    }
    if offspring == 0 {
        return Err(Error::config("offspring", "must be at least 1"));
    }
    for (field, p) in [("crossover_prob", crossover), ("mutation_prob", mutation)] {
        if !(0.0..=1.0).contains(&p) {
            return Err(Error::config(field, format!("must lie in [0, 1], got {p}")));
        }
    }
    Ok(())
}

pub(crate) fn validate_reference(reference: Option<&[f64]>, objectives: usize) -> Result<()> {
    if let Some(r) = reference {
        if r.len() != objectives {
            let reason = format!("has {} values for {objectives} objectives", r.len());
            return Err(crate::Error::config("reference_point", reason));
        }
        if r.iter().any(|v| !v.is_finite()) {
            return Err(crate::Error::config("reference_point", format!("must be finite, got {r:?}")));
        }
    }
    Ok(())
}

/// Everything an NSGA-II run is: what a checkpoint stores and `resume` restores (see
/// [`Nsga2State::load`] for the files). It describes itself (format, config, space, objectives,
/// constraints) so that resuming another search is an error.
#[derive(Debug, Clone, PartialEq)]
pub struct Nsga2State {
    format: u32,
    config: Nsga2Config,
    space: SearchSpace,
    objectives: Vec<ObjectiveSpec>,
    /// The evaluator's constraints; `None` in checkpoints written before they were recorded.
    constraints: Option<Vec<String>>,
    rng: ChaCha8Rng,
    /// Cache indices of the current population.
    population: Vec<usize>,
    cache: EvalCache,
    history: Vec<GenerationRecord>,
}

impl Nsga2State {
    /// The run's config.
    pub fn config(&self) -> &Nsga2Config {
        &self.config
    }

    /// Names of the objectives.
    pub fn objectives(&self) -> &[ObjectiveSpec] {
        &self.objectives
    }

    /// Every arch evaluated, in evaluation order.
    pub fn cache(&self) -> &EvalCache {
        &self.cache
    }

    /// One record per generation done, the initial population first.
    pub fn history(&self) -> &[GenerationRecord] {
        &self.history
    }

    /// The last generation done; `None` before the initial population.
    pub fn generation(&self) -> Option<usize> {
        self.history.last().map(|r| r.generation)
    }

    /// The current population.
    pub fn population(&self) -> Vec<Individual> {
        individuals(&self.cache, &self.population)
    }

    /// The feasible members of the population's first front, sorted by objectives: the front
    /// the run reports.
    pub fn front(&self) -> Vec<Individual> {
        let evals = self.evaluations();
        let first = non_dominated_sort(&evals).into_iter().next().unwrap_or_default();
        let indices: Vec<usize> =
            first.into_iter().filter(|&k| evals[k].is_feasible()).map(|k| self.population[k]).collect();
        let mut front = individuals(&self.cache, &indices);
        front.sort_by(|a, b| compare_objectives(&a.evaluation.objectives, &b.evaluation.objectives));
        front
    }

    /// The feasible non-dominated set of every arch evaluated, in evaluation order.
    pub fn archive_front(&self) -> Vec<Individual> {
        let mut progress = Progress::default();
        // Without a reference point `update` computes no hypervolume and cannot fail.
        let _ = progress.update(&self.cache, None);
        progress.front(&self.cache)
    }

    fn evaluations(&self) -> Vec<&Evaluation> {
        self.population.iter().filter_map(|&i| self.cache.entry(i)).map(|(_, e)| e).collect()
    }
}

/// An NSGA-II run: its state, its evaluator and where it checkpoints.
pub struct Nsga2<E> {
    evaluator: E,
    state: Nsga2State,
    progress: Progress,
    checkpoint: Option<Checkpointer>,
}

impl<E: Evaluator> Nsga2<E> {
    /// A run that has done nothing yet; checks the space and the config.
    pub fn new(space: SearchSpace, evaluator: E, config: Nsga2Config) -> Result<Nsga2<E>> {
        space.validate()?;
        let objectives = evaluator.objectives();
        config.validate(objectives.len())?;
        let state = Nsga2State {
            format: CHECKPOINT_FORMAT,
            rng: ChaCha8Rng::seed_from_u64(config.seed),
            config,
            space,
            objectives,
            constraints: Some(evaluator.constraints()),
            population: Vec::new(),
            cache: EvalCache::new(),
            history: Vec::new(),
        };
        Ok(Nsga2 { evaluator, state, progress: Progress::default(), checkpoint: None })
    }

    /// The run checkpointed at `path`: continued from the checkpoint when it exists, else
    /// started afresh. Either way it checkpoints to `path` after every generation. Errors when
    /// the checkpoint belongs to another search (format, config, space, objectives or constraints
    /// differ).
    pub fn resume(space: SearchSpace, evaluator: E, config: Nsga2Config, path: impl Into<PathBuf>) -> Result<Nsga2<E>> {
        let path = path.into();
        let mut run = Nsga2::new(space, evaluator, config)?;
        let Some((state, journal_len)) = persist::read(&path)? else {
            run.checkpoint = Some(Checkpointer::fresh(path));
            return Ok(run);
        };
        let mismatch = |what| crate::Error::CheckpointMismatch { path: path.clone(), what };
        if state.format != CHECKPOINT_FORMAT {
            return Err(mismatch("format version"));
        }
        if state.config != run.state.config {
            return Err(mismatch("config"));
        }
        if state.space != run.state.space {
            return Err(mismatch("search space"));
        }
        if state.objectives != run.state.objectives {
            return Err(mismatch("objective list"));
        }
        if state.constraints.is_some() && state.constraints != run.state.constraints {
            return Err(mismatch("constraints"));
        }
        run.checkpoint = Some(Checkpointer::continuing(path, state.cache.len(), journal_len)?);
        // A checkpoint from before constraints were recorded takes them on from here.
        let constraints = state.constraints.or(run.state.constraints.take());
        run.state = Nsga2State { constraints, ..state };
        let reference = run.state.config.reference_point.clone();
        run.progress.update(&run.state.cache, reference.as_deref())?;
        Ok(run)
    }

    /// Checkpoints to `path` after every generation, overwriting what is there.
    pub fn with_checkpoint(mut self, path: impl Into<PathBuf>) -> Nsga2<E> {
        self.checkpoint = Some(Checkpointer::fresh(path.into()));
        self
    }

    /// Whether the run has done its generations or spent its evaluations.
    pub fn is_done(&self) -> bool {
        let config = &self.state.config;
        match self.state.history.last() {
            None => false,
            Some(last) => {
                last.generation >= config.generations || config.max_evaluations.is_some_and(|m| last.evaluations >= m)
            }
        }
    }

    /// Runs generations until [`Nsga2::is_done`].
    pub fn run(&mut self) -> Result<()> {
        while !self.is_done() {
            self.step()?;
        }
        Ok(())
    }

    /// One generation (the first call evaluates the initial population), then the history
    /// record and the checkpoint. When an evaluation fails the state is as before the call; when
    /// only the checkpoint cannot be written, the generation is done in memory and the error
    /// names the file.
    pub fn step(&mut self) -> Result<&GenerationRecord> {
        let generation = self.state.generation().map_or(0, |g| g + 1);
        let _span = tracing::info_span!("generation", generation).entered();
        let mut rng = self.state.rng.clone();
        let state = &mut self.state;
        let objectives = state.objectives.len();
        // `EvalCache::evaluate` leaves the cache unchanged on error and the RNG is a copy until
        // the end, so a failed step changes nothing.
        let population = if generation == 0 {
            initial(&state.config, &state.space, &mut rng, &mut state.cache, &self.evaluator, objectives)?
        } else {
            next(
                &state.config,
                &state.space,
                &state.population,
                &mut rng,
                &mut state.cache,
                &self.evaluator,
                objectives,
            )?
        };
        state.rng = rng;
        state.population = population;
        self.progress.update(&self.state.cache, self.state.config.reference_point.as_deref())?;
        let record = self.progress.record(generation, &self.state.cache);
        tracing::info!(
            evaluations = record.evaluations,
            cache_hits = record.cache_hits,
            hypervolume = record.hypervolume,
            front = record.front_size,
            "generation done"
        );
        self.state.history.push(record);
        if let Some(checkpointer) = &mut self.checkpoint {
            checkpointer.save(&self.state)?;
        }
        let last = self.state.history.len() - 1;
        Ok(&self.state.history[last])
    }

    /// The state, for reports and checkpoints.
    pub fn state(&self) -> &Nsga2State {
        &self.state
    }

    /// The feasible members of the population's first front, sorted by objectives.
    pub fn front(&self) -> Vec<Individual> {
        self.state.front()
    }

    /// The feasible non-dominated set of every arch evaluated so far, in evaluation order:
    /// what the history's hypervolume measures.
    pub fn archive_front(&self) -> Vec<Individual> {
        self.progress.front(&self.state.cache)
    }

    /// Where the run checkpoints.
    pub fn checkpoint_path(&self) -> Option<&Path> {
        self.checkpoint.as_ref().map(Checkpointer::path)
    }
}

/// Lexicographic order of objective vectors.
pub(crate) fn compare_objectives(a: &[f64], b: &[f64]) -> std::cmp::Ordering {
    a.iter().zip(b).map(|(x, y)| x.total_cmp(y)).find(|o| o.is_ne()).unwrap_or(std::cmp::Ordering::Equal)
}

/// μ distinct random archs, evaluated.
fn initial<E: Evaluator>(
    config: &Nsga2Config,
    space: &SearchSpace,
    rng: &mut ChaCha8Rng,
    cache: &mut EvalCache,
    evaluator: &E,
    objectives: usize,
) -> Result<Vec<usize>> {
    let archs = distinct(config.population, config.duplicate_retries, |_| false, rng, |r| space.sample(r));
    let fitting = cache.fitting(&archs, config.max_evaluations);
    cache.evaluate(&archs[..fitting], evaluator, objectives)
}

/// λ children of `population`, evaluated, then (μ+λ) survival: the next population.
fn next<E: Evaluator>(
    config: &Nsga2Config,
    space: &SearchSpace,
    population: &[usize],
    rng: &mut ChaCha8Rng,
    cache: &mut EvalCache,
    evaluator: &E,
    objectives: usize,
) -> Result<Vec<usize>> {
    let (members, evals): (Vec<&Arch>, Vec<&Evaluation>) = population.iter().filter_map(|&i| cache.entry(i)).unzip();
    let (rank, crowding) = pareto::rank_and_crowding(&evals);
    let fitness = Fitness { rank, crowding };
    // Lookup only: the set decides which children to breed again, never an order.
    let taken: HashSet<Arch> = members.iter().map(|&a| a.clone()).collect();
    let children = distinct(
        config.offspring(),
        config.duplicate_retries,
        |a| taken.contains(a),
        rng,
        |r| breed(space, &members, &fitness, config.crossover_prob, config.mutation_prob, r),
    );
    let fitting = cache.fitting(&children, config.max_evaluations);
    let child_slots = cache.evaluate(&children[..fitting], evaluator, objectives)?;
    let mut merged = population.to_vec();
    for slot in child_slots {
        if !merged.contains(&slot) {
            merged.push(slot);
        }
    }
    let merged_evals: Vec<&Evaluation> = merged.iter().filter_map(|&i| cache.entry(i)).map(|(_, e)| e).collect();
    Ok(survive(&merged_evals, config.population).into_iter().map(|k| merged[k]).collect())
}

mod persist;
#[cfg(test)]
mod tests;
