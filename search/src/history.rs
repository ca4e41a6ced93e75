//! Per-generation history of a search, kept in its state for reports, and the running front of
//! everything evaluated that it is measured on.

use serde::{Deserialize, Serialize};

use crate::pareto::Archive;
use crate::{EvalCache, Individual, Result, hypervolume};

/// What one generation of a search had reached.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerationRecord {
    /// Generation number; 0 is the initial population.
    pub generation: usize,
    /// Distinct archs evaluated so far (the evaluation budget spent).
    pub evaluations: usize,
    /// Requests answered from the cache so far.
    pub cache_hits: u64,
    /// Hypervolume of the front of everything evaluated so far (feasible archs only), when the
    /// search has a reference point.
    pub hypervolume: Option<f64>,
    /// Size of that front.
    pub front_size: usize,
}

/// The feasible non-dominated set of every arch in a cache, updated as the cache grows, and its
/// hypervolume. Rebuilt from the cache on resume: it follows from the cache's order alone.
#[derive(Debug, Clone, Default)]
pub(crate) struct Progress {
    archive: Archive,
    seen: usize,
    hypervolume: Option<f64>,
}

impl Progress {
    /// Takes in the cache entries added since the last call and recomputes the hypervolume when
    /// the front changed.
    pub fn update(&mut self, cache: &EvalCache, reference: Option<&[f64]>) -> Result<()> {
        let mut changed = self.seen == 0;
        for i in self.seen..cache.len() {
            if let Some((_, e)) = cache.entry(i)
                && e.is_feasible()
            {
                changed |= self.archive.insert(i, &e.objectives);
            }
        }
        self.seen = cache.len();
        if changed && let Some(reference) = reference {
            let points: Vec<&[f64]> = self.archive.points().collect();
            self.hypervolume = Some(hypervolume(&points, reference)?);
        }
        Ok(())
    }

    /// The record of `generation`, given the cache it was measured on.
    pub fn record(&self, generation: usize, cache: &EvalCache) -> GenerationRecord {
        GenerationRecord {
            generation,
            evaluations: cache.len(),
            cache_hits: cache.hits(),
            hypervolume: self.hypervolume,
            front_size: self.archive.len(),
        }
    }

    /// The archs of the front, in evaluation order.
    pub fn front(&self, cache: &EvalCache) -> Vec<Individual> {
        individuals(cache, &self.archive.ids())
    }
}

/// The cache entries at `indices`, cloned.
pub(crate) fn individuals(cache: &EvalCache, indices: &[usize]) -> Vec<Individual> {
    indices
        .iter()
        .filter_map(|&i| cache.entry(i))
        .map(|(arch, evaluation)| Individual { arch: arch.clone(), evaluation: evaluation.clone() })
        .collect()
}
