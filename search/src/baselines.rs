//! The baselines NSGA-II is measured against: random search with the same evaluation budget,
//! and a single-constraint genetic search in the style of HAT (Wang et al., "HAT:
//! Hardware-Aware Transformers", ACL 2020, `evolution.py`): optimise one objective under the
//! evaluator's constraints, keeping the top-k as parents and filling the rest of each population
//! with mutants and crossovers of them.
//!
//! Both draw every random choice from one seeded `ChaCha8Rng` on the calling thread and evaluate
//! through the cache in parallel, so their results do not depend on the number of threads.

use arch::{Arch, SearchSpace};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::history::{Progress, individuals};
use crate::nsga2::{validate_common, validate_reference};
use crate::selection::distinct;
use crate::{EvalCache, Evaluation, Evaluator, GenerationRecord, Individual, Result};

/// What a finished baseline leaves.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchOutcome {
    /// Every arch evaluated, in evaluation order.
    pub cache: EvalCache,
    /// One record per generation (per batch for random search).
    pub history: Vec<GenerationRecord>,
    /// The feasible non-dominated set of everything evaluated, in evaluation order.
    pub front: Vec<Individual>,
}

/// Settings of a random search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RandomSearchConfig {
    /// Distinct archs to evaluate.
    pub budget: usize,
    /// Seed of the RNG.
    pub seed: u64,
    /// Archs evaluated in parallel at once; does not change the result.
    #[serde(default = "default_batch")]
    pub batch: usize,
    /// Reference point for the hypervolume in the history.
    #[serde(default)]
    pub reference_point: Option<Vec<f64>>,
}

fn default_batch() -> usize {
    256
}

impl RandomSearchConfig {
    /// A search of `budget` evaluations in batches of 256, without reference point.
    pub fn new(budget: usize, seed: u64) -> RandomSearchConfig {
        RandomSearchConfig { budget, seed, batch: default_batch(), reference_point: None }
    }
}

/// How many times a draw that repeats an evaluated arch is redrawn before random search gives
/// up on the slot (a space nearly exhausted).
const RANDOM_RETRIES: usize = 100;

/// Uniformly random distinct archs until `budget` were evaluated (or the space runs out).
pub fn random_search<E: Evaluator>(
    space: &SearchSpace,
    evaluator: &E,
    config: &RandomSearchConfig,
) -> Result<SearchOutcome> {
    space.validate()?;
    let objectives = evaluator.objectives().len();
    validate_reference(config.reference_point.as_deref(), objectives)?;
    if config.batch == 0 {
        return Err(crate::Error::config("batch", "must be at least 1"));
    }
    let reference = config.reference_point.as_deref();
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let (mut cache, mut progress, mut history) = (EvalCache::new(), Progress::default(), Vec::new());
    while cache.len() < config.budget {
        let need = config.batch.min(config.budget - cache.len());
        let archs = distinct(need, RANDOM_RETRIES, |a| cache.index_of(a).is_some(), &mut rng, |r| space.sample(r));
        if archs.is_empty() {
            break;
        }
        cache.evaluate(&archs, evaluator, objectives)?;
        progress.update(&cache, reference)?;
        history.push(progress.record(history.len(), &cache));
    }
    let front = progress.front(&cache);
    Ok(SearchOutcome { cache, history, front })
}

/// Settings of the HAT-style constrained genetic search. The defaults (of
/// [`ConstrainedGaConfig::new`]) are HAT's: population 125, 25 parents, 50 mutants, 50
/// crossovers, mutation probability 0.3, 30 generations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConstrainedGaConfig {
    /// Index of the objective to optimise (minimised form, as every objective).
    pub objective: usize,
    /// Size of the initial random population.
    pub population: usize,
    /// Best members kept as parents each generation (k of top-k).
    pub parents: usize,
    /// Mutants of random parents per generation.
    pub mutations: usize,
    /// Crossovers of random parent pairs per generation.
    pub crossovers: usize,
    /// Probability that mutation redraws each gene.
    pub mutation_prob: f64,
    /// Generations after the initial population.
    pub generations: usize,
    /// Seed of the RNG.
    pub seed: u64,
    /// How many times a child that repeats a member is bred again before it is dropped.
    pub duplicate_retries: usize,
    /// Reference point for the hypervolume in the history.
    #[serde(default)]
    pub reference_point: Option<Vec<f64>>,
    /// Stop once this many distinct archs were evaluated: the generation (or first population)
    /// that reaches it evaluates only the archs that fit; `None`: run every generation.
    #[serde(default)]
    pub max_evaluations: Option<usize>,
}

impl ConstrainedGaConfig {
    /// Checks the settings for an evaluator of `objectives` objectives.
    pub fn validate(&self, objectives: usize) -> Result<()> {
        validate_common(
            self.population,
            self.mutations + self.crossovers,
            0.0,
            self.mutation_prob,
            self.max_evaluations,
        )?;
        validate_reference(self.reference_point.as_deref(), objectives)?;
        if self.objective >= objectives {
            return Err(crate::Error::config("objective", format!("is {} but there are {objectives}", self.objective)));
        }
        if self.parents == 0 {
            return Err(crate::Error::config("parents", "must be at least 1"));
        }
        Ok(())
    }

    /// HAT's settings for objective `objective`.
    pub fn new(objective: usize, seed: u64) -> ConstrainedGaConfig {
        ConstrainedGaConfig {
            objective,
            population: 125,
            parents: 25,
            mutations: 50,
            crossovers: 50,
            mutation_prob: 0.3,
            generations: 30,
            seed,
            duplicate_retries: 10,
            reference_point: None,
            max_evaluations: None,
        }
    }
}

/// What the constrained search found.
#[derive(Debug, Clone, PartialEq)]
pub struct ConstrainedGaOutcome {
    /// The best feasible arch for the objective, if any arch was feasible.
    pub best: Option<Individual>,
    /// The objective value (minimised form) of the best member after each generation; infinite
    /// while nothing is feasible.
    pub best_history: Vec<f64>,
    /// Cache, history and multi-objective front, as for the other searches.
    pub outcome: SearchOutcome,
}

/// HAT-style search: one objective, the evaluator's constraints. Members are ranked by Deb's
/// rules for one objective (feasible before infeasible, infeasible by violation, feasible by
/// the objective; ties by evaluation order); the top `parents` survive and breed. HAT redraws
/// infeasible children until they meet the latency budget, which needs a separate cheap
/// constraint check; ranking them last instead keeps the loop bounded and the evaluator single.
pub fn constrained_ga<E: Evaluator>(
    space: &SearchSpace,
    evaluator: &E,
    config: &ConstrainedGaConfig,
) -> Result<ConstrainedGaOutcome> {
    space.validate()?;
    let objectives = evaluator.objectives().len();
    config.validate(objectives)?;
    let reference = config.reference_point.as_deref();
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let (mut cache, mut progress, mut history, mut best_history) =
        (EvalCache::new(), Progress::default(), Vec::new(), Vec::new());
    let first = distinct(config.population, config.duplicate_retries, |_| false, &mut rng, |r| space.sample(r));
    let fitting = cache.fitting(&first, config.max_evaluations);
    let mut population = cache.evaluate(&first[..fitting], evaluator, objectives)?;
    for generation in 0..=config.generations {
        if generation > 0 && config.max_evaluations.is_some_and(|limit| cache.len() >= limit) {
            break;
        }
        if generation > 0 {
            let parents: Vec<&Arch> =
                population.iter().take(config.parents).filter_map(|&i| cache.entry(i)).map(|(a, _)| a).collect();
            let taken = |a: &Arch| parents.contains(&a);
            let mutants = distinct(config.mutations, config.duplicate_retries, taken, &mut rng, |r| {
                let parent = parents[r.random_range(0..parents.len())];
                space.mutate(parent, config.mutation_prob, r)
            });
            let crossed = distinct(config.crossovers, config.duplicate_retries, taken, &mut rng, |r| {
                let a = parents[r.random_range(0..parents.len())];
                let b = parents[r.random_range(0..parents.len())];
                space.crossover(a, b, r)
            });
            let children: Vec<Arch> = mutants.into_iter().chain(crossed).collect();
            let fitting = cache.fitting(&children, config.max_evaluations);
            let slots = cache.evaluate(&children[..fitting], evaluator, objectives)?;
            population.truncate(config.parents);
            for slot in slots {
                if !population.contains(&slot) {
                    population.push(slot);
                }
            }
        }
        let key = |i: usize| cache.entry(i).map(|(_, e)| rank_key(e, config.objective));
        // Stable: equal keys keep evaluation order.
        population.sort_by(|&a, &b| key(a).partial_cmp(&key(b)).unwrap_or(std::cmp::Ordering::Equal).then(a.cmp(&b)));
        progress.update(&cache, reference)?;
        history.push(progress.record(generation, &cache));
        best_history
            .push(population.first().and_then(|&i| key(i)).filter(|k| k.0 == 0.0).map_or(f64::INFINITY, |k| k.1));
    }
    let best = population.first().filter(|&&i| cache.entry(i).is_some_and(|(_, e)| e.is_feasible()));
    let best = best.and_then(|&i| individuals(&cache, &[i]).pop());
    let front = progress.front(&cache);
    Ok(ConstrainedGaOutcome { best, best_history, outcome: SearchOutcome { cache, history, front } })
}

/// Deb's order for one objective: violation first (0 for every feasible member), then the
/// objective.
fn rank_key(e: &Evaluation, objective: usize) -> (f64, f64) {
    (e.violation, e.objectives.get(objective).copied().unwrap_or(f64::INFINITY))
}

#[cfg(test)]
mod tests;
