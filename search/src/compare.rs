//! How many evaluations NSGA-II needs to reach a share of a reference hypervolume, against
//! random search with the same budget or a larger one, over several seeds: the headline
//! measurement, reusable with any evaluator.
//!
//! Random search may be given more evaluations than NSGA-II (`random_budget`): where it misses
//! the target within NSGA-II's budget, the ratio is only bounded by that budget, and a longer
//! random run measures how many evaluations it really needs (or bounds it more tightly).
//!
//! The reference front is the feasible non-dominated union of everything evaluated by several
//! long NSGA-II runs and by every compared run, so that no compared run exceeds it. A run's
//! count is the first `n` such that the front of its first `n` evaluations (in evaluation order)
//! reaches `target × reference hypervolume`. Each run's final front is also scored by IGD+
//! against the reference front, in units of the reference front's range in each objective.
//!
//! Optionally a HAT-style constrained genetic search ([`crate::constrained_ga`], one objective
//! under the evaluator's constraints, HAT's proportions scaled to NSGA-II's population) runs per
//! seed with NSGA-II's budget: what a search for one point of the front finds, against the best
//! point of that objective on NSGA-II's and random search's fronts after the same evaluations.

use std::fmt;

use arch::SearchSpace;
use serde::{Deserialize, Serialize};

use crate::metrics::{evaluations_to_reach, feasible_front, normalised_igd_plus};
use crate::{
    ConstrainedGaConfig, Error, Evaluation, Evaluator, Nsga2, Nsga2Config, RandomSearchConfig, Result, constrained_ga,
    hypervolume, random_search,
};

/// Settings of a comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComparisonConfig {
    /// NSGA-II settings of the compared and reference runs; their seed, evaluation limit and
    /// reference point are set by the comparison. Give enough generations to spend the budget.
    pub nsga2: Nsga2Config,
    /// Evaluations each compared NSGA-II run may spend.
    pub budget: usize,
    /// Evaluations each random search may spend; `None`: `budget`.
    #[serde(default)]
    pub random_budget: Option<usize>,
    /// One NSGA-II run and one random search per seed (and a HAT-style search with
    /// `hat_objective`).
    pub seeds: Vec<u64>,
    /// Seeds of the long NSGA-II runs that make the reference front.
    pub reference_seeds: Vec<u64>,
    /// Evaluations of each long run.
    pub reference_budget: usize,
    /// Reference point of the hypervolume (minimised form).
    pub reference_point: Vec<f64>,
    /// Share of the reference hypervolume to reach, e.g. 0.99.
    pub target: f64,
    /// Also run the HAT-style constrained search per seed, optimising this objective (an index
    /// into the evaluator's objectives) under the evaluator's constraints.
    #[serde(default)]
    pub hat_objective: Option<usize>,
}

/// What the HAT-style search of one seed found, beside the other two searches of that seed.
/// Objective values are in the minimised form (an accuracy is negated).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HatResult {
    /// Evaluations it needed to reach the hypervolume target (it searches for one point of the
    /// front, so it rarely does).
    pub evaluations: Option<usize>,
    /// Hypervolume of its front at the budget, as a share of the reference.
    pub share: f64,
    /// IGD+ of its front at the budget; `None` when nothing it evaluated was feasible.
    pub igd_plus: Option<f64>,
    /// The best feasible value of the objective it optimises, within the budget; `None` when
    /// nothing it evaluated was feasible.
    pub best: Option<f64>,
    /// The same for NSGA-II's run of the seed (its first `budget` evaluations).
    pub nsga2_best: Option<f64>,
    /// The same for random search's run of the seed (its first `budget` evaluations).
    pub random_best: Option<f64>,
}

/// The evaluations one run needed, `None` when it did not reach the target within the budget.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeedResult {
    /// Seed of the seed's runs.
    pub seed: u64,
    /// Evaluations NSGA-II needed.
    pub nsga2: Option<usize>,
    /// Evaluations random search needed.
    pub random: Option<usize>,
    /// Hypervolume NSGA-II reached with the whole budget, as a share of the reference.
    pub nsga2_share: f64,
    /// Hypervolume random search reached with the whole budget, as a share of the reference.
    pub random_share: f64,
    /// IGD+ of NSGA-II's front at its budget against the reference front (normalised by the
    /// reference front's ranges; 0 when it covers the reference); `None` when nothing it
    /// evaluated was feasible.
    #[serde(default)]
    pub nsga2_igd_plus: Option<f64>,
    /// IGD+ of random search's front at its budget.
    #[serde(default)]
    pub random_igd_plus: Option<f64>,
    /// The HAT-style search of this seed, when the comparison ran one.
    #[serde(default)]
    pub hat: Option<HatResult>,
    /// NSGA-II's feasible front at its budget (minimised form): beside the reference front, it
    /// shows which part of the front a run that missed the target did not find.
    #[serde(default)]
    pub nsga2_front: Vec<Vec<f64>>,
    /// Random search's feasible front at its budget.
    #[serde(default)]
    pub random_front: Vec<Vec<f64>>,
}

/// Mean evaluations of one algorithm over the seeds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Mean over the seeds, a run that missed the target counted at its budget: a lower bound
    /// unless `reached == runs`.
    pub mean: f64,
    /// Runs that reached the target.
    pub reached: usize,
    /// Runs.
    pub runs: usize,
}

/// The result of [`compare_with_random`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// Hypervolume of the reference front.
    pub reference_hypervolume: f64,
    /// Points of the reference front.
    pub reference_front: Vec<Vec<f64>>,
    /// The budget of each NSGA-II run.
    pub budget: usize,
    /// The budget of each random search (`budget` unless the config gave more).
    #[serde(default)]
    pub random_budget: usize,
    /// The share of the reference hypervolume to reach.
    pub target: f64,
    /// One entry per seed.
    pub runs: Vec<SeedResult>,
    /// The objective the HAT-style searches optimised, when they ran.
    #[serde(default)]
    pub hat_objective: Option<usize>,
}

impl Comparison {
    /// NSGA-II's mean evaluations to the target.
    pub fn nsga2(&self) -> Summary {
        self.summary(|r| r.nsga2, self.budget)
    }

    /// Random search's mean evaluations to the target.
    pub fn random(&self) -> Summary {
        self.summary(|r| r.random, self.random_budget)
    }

    /// NSGA-II's mean over random search's mean: an upper bound when some random run missed
    /// the target (its count is at least the budget), a lower bound when some NSGA-II run did.
    pub fn ratio(&self) -> f64 {
        self.nsga2().mean / self.random().mean
    }

    /// What [`Comparison::ratio`] is, given that a run that missed the target counts at its
    /// budget: exact, an upper bound (only random runs missed), a lower bound (only NSGA-II runs
    /// missed), or neither (runs of both missed).
    pub fn ratio_kind(&self) -> &'static str {
        let (n, r) = (self.nsga2(), self.random());
        match (n.reached == n.runs, r.reached == r.runs) {
            (true, true) => "exact",
            (true, false) => "upper bound",
            (false, true) => "lower bound",
            (false, false) => "no bound",
        }
    }

    fn summary(&self, count: impl Fn(&SeedResult) -> Option<usize>, budget: usize) -> Summary {
        let counts: Vec<usize> = self.runs.iter().map(|r| count(r).unwrap_or(budget)).collect();
        let reached = self.runs.iter().filter(|r| count(r).is_some()).count();
        let mean = counts.iter().sum::<usize>() as f64 / counts.len().max(1) as f64;
        Summary { mean, reached, runs: self.runs.len() }
    }
}

/// One line per seed (two with the HAT-style search), then the means and the ratio with what it
/// is.
impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |n: Option<usize>, budget: usize| n.map_or(format!("> {budget}"), |n| n.to_string());
        let best = |b: Option<f64>| b.map_or("none feasible".to_string(), |b| format!("{b:.4}"));
        let igd = |d: Option<f64>| d.map_or("- (nothing feasible)".to_string(), |d| format!("{d:.4}"));
        for run in &self.runs {
            writeln!(
                f,
                "  seed {}: NSGA-II {:>6} evaluations ({:.4} of the reference at its budget, IGD+ {}), random {:>6} ({:.4}, IGD+ {})",
                run.seed,
                show(run.nsga2, self.budget),
                run.nsga2_share,
                igd(run.nsga2_igd_plus),
                show(run.random, self.random_budget),
                run.random_share,
                igd(run.random_igd_plus)
            )?;
            if let Some(hat) = &run.hat {
                writeln!(
                    f,
                    "          HAT-style {:>6} ({:.4}, IGD+ {}); best objective {} (minimised form) within {} evaluations: HAT-style {}, NSGA-II {}, random {}",
                    show(hat.evaluations, self.budget),
                    hat.share,
                    igd(hat.igd_plus),
                    self.hat_objective.unwrap_or(0),
                    self.budget,
                    best(hat.best),
                    best(hat.nsga2_best),
                    best(hat.random_best)
                )?;
            }
        }
        let (n, r) = (self.nsga2(), self.random());
        write!(
            f,
            "mean evaluations to {:.0} %: NSGA-II {:.1} ({}/{} reached), random {:.1} ({}/{} reached); ratio {:.3} ({}; runs that missed count at the budget)",
            100.0 * self.target,
            n.mean,
            n.reached,
            n.runs,
            r.mean,
            r.reached,
            r.runs,
            self.ratio(),
            self.ratio_kind()
        )
    }
}

/// Runs the comparison: the long reference runs, then per seed one NSGA-II run of `budget`
/// evaluations, one random search of `random_budget` and, with `hat_objective`, one HAT-style
/// search of `budget`.
pub fn compare_with_random<E: Evaluator>(
    space: &SearchSpace,
    evaluator: &E,
    config: &ComparisonConfig,
) -> Result<Comparison> {
    if !(config.target > 0.0 && config.target <= 1.0) {
        return Err(Error::config("target", format!("must lie in (0, 1], got {}", config.target)));
    }
    if config.seeds.is_empty() {
        return Err(Error::config("seeds", "must list at least one seed"));
    }
    // Every run's settings are checked before the first (the reference runs take hours, and
    // the HAT-style searches come after them): a budget below the population would cut the
    // first generation short.
    let objectives = evaluator.objectives().len();
    if let Some(objective) = config.hat_objective {
        if objective >= objectives {
            return Err(Error::config(
                "hat_objective",
                format!("names objective {objective}, but the evaluator has {objectives} (counted from 0)"),
            ));
        }
        // The seed changes nothing that is checked.
        hat_config(config, objective, 0).validate(objectives)?;
    }
    let random_budget = config.random_budget.unwrap_or(config.budget);
    if random_budget < config.budget {
        return Err(Error::config(
            "random_budget",
            format!("must be at least NSGA-II's budget ({}), got {random_budget}", config.budget),
        ));
    }
    for budget in [config.budget, config.reference_budget] {
        Nsga2Config { max_evaluations: Some(budget), reference_point: None, ..config.nsga2.clone() }
            .validate(objectives)?;
    }
    let nsga2_trace = |seed: u64, budget: usize| -> Result<Vec<Evaluation>> {
        let run_config =
            Nsga2Config { seed, max_evaluations: Some(budget), reference_point: None, ..config.nsga2.clone() };
        let mut run = Nsga2::new(space.clone(), evaluator, run_config)?;
        run.run()?;
        Ok(run.state().cache().evaluations().take(budget).cloned().collect())
    };
    let mut traces = Vec::new();
    for &seed in &config.reference_seeds {
        let _span = tracing::info_span!("reference run", seed).entered();
        traces.push(nsga2_trace(seed, config.reference_budget)?);
    }
    let mut compared = Vec::new();
    for &seed in &config.seeds {
        let _span = tracing::info_span!("compared runs", seed).entered();
        let nsga2 = nsga2_trace(seed, config.budget)?;
        let random = random_search(space, evaluator, &RandomSearchConfig::new(random_budget, seed))?;
        let hat = match config.hat_objective {
            Some(objective) => Some(hat_trace(space, evaluator, config, objective, seed)?),
            None => None,
        };
        compared.push((seed, nsga2, random.cache.evaluations().cloned().collect::<Vec<_>>(), hat));
    }
    let everything = traces
        .iter()
        .flatten()
        .chain(compared.iter().flat_map(|(_, n, r, h)| n.iter().chain(r).chain(h.iter().flatten())));
    let reference_front = feasible_front(everything);
    let reference_hypervolume = hypervolume(&reference_front, &config.reference_point)?;
    if reference_hypervolume <= 0.0 {
        return Err(Error::config("reference_point", "no feasible arch dominates it"));
    }
    let goal = config.target * reference_hypervolume;
    let share = |front: &[Vec<f64>]| -> Result<f64> {
        Ok(hypervolume(front, &config.reference_point)? / reference_hypervolume)
    };
    let igd = |front: &[Vec<f64>]| -> Result<Option<f64>> {
        if front.is_empty() { Ok(None) } else { normalised_igd_plus(front, &reference_front).map(Some) }
    };
    let mut runs = Vec::new();
    for (seed, nsga2, random, hat) in &compared {
        let hat = match (hat, config.hat_objective) {
            (Some(trace), Some(objective)) => {
                let front = feasible_front(trace);
                Some(HatResult {
                    evaluations: evaluations_to_reach(trace, &config.reference_point, goal)?,
                    share: share(&front)?,
                    igd_plus: igd(&front)?,
                    best: best_feasible(trace, objective),
                    nsga2_best: best_feasible(nsga2, objective),
                    random_best: best_feasible(&random[..config.budget.min(random.len())], objective),
                })
            }
            _ => None,
        };
        let (nsga2_front, random_front) = (feasible_front(nsga2), feasible_front(random));
        runs.push(SeedResult {
            seed: *seed,
            nsga2: evaluations_to_reach(nsga2, &config.reference_point, goal)?,
            random: evaluations_to_reach(random, &config.reference_point, goal)?,
            nsga2_share: share(&nsga2_front)?,
            random_share: share(&random_front)?,
            nsga2_igd_plus: igd(&nsga2_front)?,
            random_igd_plus: igd(&random_front)?,
            hat,
            nsga2_front,
            random_front,
        });
    }
    Ok(Comparison {
        reference_hypervolume,
        reference_front,
        budget: config.budget,
        random_budget,
        target: config.target,
        runs,
        hat_objective: config.hat_objective,
    })
}

/// The first `config.budget` evaluations of the HAT-style search of `objective` with `seed`.
fn hat_trace<E: Evaluator>(
    space: &SearchSpace,
    evaluator: &E,
    config: &ComparisonConfig,
    objective: usize,
    seed: u64,
) -> Result<Vec<Evaluation>> {
    let _span = tracing::info_span!("HAT-style run", seed).entered();
    let outcome = constrained_ga(space, evaluator, &hat_config(config, objective, seed))?;
    Ok(outcome.outcome.cache.evaluations().take(config.budget).cloned().collect())
}

/// The HAT-style search of `objective` with `seed`: HAT's proportions (a fifth of the population
/// kept as parents, two fifths bred by mutation, the rest by crossover) at NSGA-II's population
/// size (at least 3), bred until NSGA-II's budget is spent. At least two parents: a crossover of
/// an arch with itself is that arch again, so with one parent every crossover child would be a
/// repeat and the population would not fill again.
fn hat_config(config: &ComparisonConfig, objective: usize, seed: u64) -> ConstrainedGaConfig {
    let population = config.nsga2.population.max(3);
    let parents = (population / 5).max(2);
    let mutations = (2 * population / 5).max(1);
    ConstrainedGaConfig {
        population,
        parents,
        mutations,
        // The rest, so that parents and children make a population again.
        crossovers: population - parents - mutations,
        // Children that repeat an evaluated arch cost nothing, so a generation may add fewer
        // than it breeds: the evaluation limit, not the generation count, ends the run.
        generations: config.budget,
        max_evaluations: Some(config.budget),
        ..ConstrainedGaConfig::new(objective, seed)
    }
}

/// The smallest value of `objective` among the feasible evaluations of `trace`.
fn best_feasible(trace: &[Evaluation], objective: usize) -> Option<f64> {
    trace.iter().filter(|e| e.is_feasible()).filter_map(|e| e.objectives.get(objective).copied()).reduce(f64::min)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // A test that unwraps fails loudly, which is what it is for.
mod tests {
    use super::*;
    use crate::testing::eval;
    use crate::{Count, CountsEvaluator, Sense};

    #[test]
    fn the_best_is_taken_over_feasible_evaluations_only() {
        let trace = [eval(&[1.0, 5.0], 0.5), eval(&[3.0, 1.0], 0.0), eval(&[2.0, 2.0], 0.0)];
        assert_eq!(best_feasible(&trace, 0), Some(2.0), "the infeasible 1.0 does not count");
        assert_eq!(best_feasible(&trace, 1), Some(1.0));
        assert_eq!(best_feasible(&trace[..1], 0), None, "nothing feasible");
    }

    #[test]
    fn small_comparison_is_consistent() {
        let space = SearchSpace::default();
        let evaluator = CountsEvaluator::new(&[(Count::Params, Sense::Minimise), (Count::Flops, Sense::Maximise)]);
        let largest = space.largest().params() as f64;
        let config = ComparisonConfig {
            nsga2: Nsga2Config::new(20, 100, 0),
            budget: 300,
            random_budget: None,
            seeds: vec![1, 2],
            reference_seeds: vec![100],
            reference_budget: 600,
            reference_point: vec![largest * 1.1, 0.0],
            target: 0.9,
            hat_objective: None,
        };
        let comparison = compare_with_random(&space, &evaluator, &config).unwrap();
        assert!(comparison.reference_hypervolume > 0.0);
        for run in &comparison.runs {
            assert!(run.nsga2_share <= 1.0 && run.random_share <= 1.0, "{run:?}");
            assert!(run.nsga2_igd_plus.is_some_and(|d| d.is_finite() && d >= 0.0), "{run:?}");
            assert!(run.hat.is_none());
            // Reaching the target within the budget and the final share agree.
            assert_eq!(run.nsga2.is_some(), run.nsga2_share >= 0.9, "{run:?}");
            assert_eq!(run.random.is_some(), run.random_share >= 0.9, "{run:?}");
            assert!(run.nsga2.is_none_or(|n| n <= 300));
            // The fronts are the ones the shares measure, and the reference covers them.
            for (front, share) in [(&run.nsga2_front, run.nsga2_share), (&run.random_front, run.random_share)] {
                let hv = hypervolume(front, &config.reference_point).unwrap();
                assert!((hv / comparison.reference_hypervolume - share).abs() < 1e-12, "{run:?}");
                assert_eq!(normalised_igd_plus(&comparison.reference_front, front).unwrap(), 0.0);
            }
        }
        assert_eq!(comparison.nsga2().runs, 2);
        assert!(comparison.ratio() > 0.0);
        let text = comparison.to_string();
        assert_eq!(text.lines().count(), 3, "a line per seed and the means: {text}");
        assert!(text.contains(comparison.ratio_kind()), "{text}");
        // Deterministic: the same config gives the same comparison.
        assert_eq!(compare_with_random(&space, &evaluator, &config).unwrap(), comparison);

        // A longer random search: its first 300 evaluations are the ones above, so it reaches
        // the target no later; missing runs count at its own budget.
        let longer =
            compare_with_random(&space, &evaluator, &ComparisonConfig { random_budget: Some(900), ..config.clone() })
                .unwrap();
        assert_eq!(longer.random_budget, 900);
        for (short, long) in comparison.runs.iter().zip(&longer.runs) {
            assert!(long.random_share >= short.random_share, "{long:?} against {short:?}");
            if let Some(n) = short.random {
                assert_eq!(long.random, Some(n), "the same samples come first");
            }
            assert!(long.random.is_none_or(|n| n <= 900));
        }
        let r = longer.random();
        assert!(r.mean <= 900.0 && (r.reached < r.runs) == longer.runs.iter().any(|x| x.random.is_none()));
        let shorter = ComparisonConfig { random_budget: Some(100), ..config };
        let err = compare_with_random(&space, &evaluator, &shorter).unwrap_err().to_string();
        assert!(err.contains("random_budget"), "{err}");
    }

    #[test]
    fn hat_style_runs_beside_the_others() {
        let space = SearchSpace::default();
        // Minimise parameters under a parameter limit, maximise FLOPs: the HAT-style search
        // optimises parameters alone.
        let limit = space.largest().params() as f64 * 0.5;
        let evaluator = CountsEvaluator::new(&[(Count::Params, Sense::Minimise), (Count::Flops, Sense::Maximise)])
            .with_limit(Count::Params, limit);
        let config = ComparisonConfig {
            nsga2: Nsga2Config::new(20, 100, 0),
            budget: 200,
            random_budget: None,
            seeds: vec![1, 2],
            reference_seeds: vec![100],
            reference_budget: 400,
            reference_point: vec![limit, 0.0],
            target: 0.9,
            hat_objective: Some(0),
        };
        let comparison = compare_with_random(&space, &evaluator, &config).unwrap();
        assert_eq!(comparison.hat_objective, Some(0));
        for run in &comparison.runs {
            let hat = run.hat.as_ref().unwrap();
            assert!(hat.igd_plus.is_some_and(|d| d >= 0.0), "{hat:?}");
            let (best, random) = (hat.best.unwrap(), hat.random_best.unwrap());
            // Searching parameters alone does at least as well at them as uniform samples with
            // the same budget (both may hit the smallest count: the embeddings dominate it).
            assert!(best <= random, "{hat:?}");
        }
        let text = comparison.to_string();
        assert_eq!(text.lines().count(), 5, "a line per search and seed and the means: {text}");
        assert!(text.contains("HAT-style"), "{text}");
        // An objective the evaluator does not have is refused before any run.
        let err =
            compare_with_random(&space, &evaluator, &ComparisonConfig { hat_objective: Some(2), ..config.clone() })
                .unwrap_err()
                .to_string();
        assert!(err.contains("hat_objective") && err.contains("has 2"), "{err}");
        // So is a budget below the population (it would cut the first generation short).
        let err = compare_with_random(&space, &evaluator, &ComparisonConfig { budget: 10, ..config.clone() })
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_evaluations") && err.contains("population (20)"), "{err}");
        // The HAT-style runs leave NSGA-II's and random search's own runs as they were: the
        // same hypervolume (only the reference it is a share of may grow). A guard: the runs
        // share no state today, and a shared cache or generator must not change that.
        let without =
            compare_with_random(&space, &evaluator, &ComparisonConfig { hat_objective: None, ..config }).unwrap();
        let (with_hv, without_hv) = (comparison.reference_hypervolume, without.reference_hypervolume);
        assert!(with_hv >= without_hv);
        for (a, b) in comparison.runs.iter().zip(&without.runs) {
            for (x, y) in [(a.nsga2_share, b.nsga2_share), (a.random_share, b.random_share)] {
                assert!((x * with_hv - y * without_hv).abs() <= 1e-9 * with_hv, "{a:?} against {b:?}");
            }
        }
    }
}
