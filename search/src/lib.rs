//! The search controller of canao: NSGA-II over an [`arch::SearchSpace`] (fast non-dominated
//! sorting, crowding distance, Deb's constraint domination, elitist survival), the baselines it
//! is measured against (random search, a HAT-style single-constraint genetic search), the
//! evaluation cache, parallel evaluation, atomic checkpoints and resume, and the quality
//! indicators (exact hypervolume, IGD+, evaluations to a target hypervolume).
//!
//! It is generic over an [`Evaluator`]: it receives its accuracy and latency estimators, it does
//! not build them, and must not know about burn, the compiler or devices. The one evaluator it
//! owns, [`CountsEvaluator`], counts parameters, FLOPs and activation bytes.
//!
//! Conventions: objective values are always in minimised form (a maximised objective is stored
//! negated, see [`Sense`]); every random choice draws from a seeded `ChaCha8Rng` on the calling
//! thread, and only evaluation runs on rayon threads, so the same config and seed give the same
//! front whatever the number of threads and however often the run was killed and resumed.
//!
//! ```
//! use search::{Count, CountsEvaluator, Nsga2, Nsga2Config, Sense};
//!
//! let evaluator = CountsEvaluator::new(&[(Count::Params, Sense::Minimise), (Count::Flops, Sense::Maximise)]);
//! let mut run = Nsga2::new(arch::SearchSpace::default(), evaluator, Nsga2Config::new(20, 5, 42))?;
//! run.run()?;
//! assert!(!run.front().is_empty());
//! # Ok::<(), search::Error>(())
//! ```

mod baselines;
mod cache;
pub mod checkpoint;
mod compare;
mod counts;
mod error;
mod history;
mod hypervolume;
mod metrics;
mod nsga2;
mod objective;
pub mod pareto;
mod selection;
#[cfg(test)]
mod testing;

pub use baselines::{
    ConstrainedGaConfig, ConstrainedGaOutcome, RandomSearchConfig, SearchOutcome, constrained_ga, random_search,
};
pub use cache::EvalCache;
pub use compare::{Comparison, ComparisonConfig, HatResult, SeedResult, Summary, compare_with_random};
pub use counts::{Count, CountLimit, CountObjective, CountsEvaluator};
pub use error::{Error, Result};
pub use history::GenerationRecord;
pub use hypervolume::hypervolume;
pub use metrics::{evaluations_to_reach, feasible_front, hypervolume_curve, igd_plus, normalised_igd_plus};
pub use nsga2::{CHECKPOINT_FORMAT, Nsga2, Nsga2Config, Nsga2State, journal_path};
pub use objective::{Evaluation, Evaluator, Individual, ObjectiveSpec, Sense, normalised_excess};
