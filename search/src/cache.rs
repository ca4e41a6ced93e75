//! The evaluation cache: every arch a search evaluated, in evaluation order, evaluated once.
//!
//! The entries live in a `Vec` (evaluation order, which is what checkpoints store and what
//! reports and metrics replay); a `HashMap` indexes them for lookup only, never for iteration,
//! so nothing that affects results depends on hash order. Evaluation of a batch runs in parallel
//! on the current rayon pool and is merged back in batch order, so the cache is the same
//! whatever the number of threads.

use std::collections::{HashMap, HashSet};

use arch::Arch;
use rayon::prelude::*;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{Error, Evaluation, Evaluator, Result};

/// Every arch evaluated so far and its evaluation.
#[derive(Debug, Clone, Default)]
pub struct EvalCache {
    entries: Vec<(Arch, Evaluation)>,
    index: HashMap<Arch, usize>,
    hits: u64,
}

/// What a checkpoint stores of a cache: the entries in order and the hit count (the index is
/// rebuilt on load).
#[derive(Serialize)]
struct CacheRef<'a> {
    entries: &'a [(Arch, Evaluation)],
    hits: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CacheOwned {
    entries: Vec<(Arch, Evaluation)>,
    hits: u64,
}

impl Serialize for EvalCache {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        CacheRef { entries: &self.entries, hits: self.hits }.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for EvalCache {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let owned = CacheOwned::deserialize(deserializer)?;
        EvalCache::from_entries(owned.entries, owned.hits).map_err(serde::de::Error::custom)
    }
}

impl PartialEq for EvalCache {
    fn eq(&self, other: &Self) -> bool {
        // The index follows from the entries.
        self.entries == other.entries && self.hits == other.hits
    }
}

impl EvalCache {
    /// An empty cache.
    pub fn new() -> EvalCache {
        EvalCache::default()
    }

    /// A cache of `entries` (in evaluation order) that has answered `hits` requests; errors
    /// naming an arch that appears twice.
    pub(crate) fn from_entries(entries: Vec<(Arch, Evaluation)>, hits: u64) -> Result<EvalCache, String> {
        let mut index = HashMap::with_capacity(entries.len());
        for (i, (arch, _)) in entries.iter().enumerate() {
            if index.insert(arch.clone(), i).is_some() {
                return Err(format!("arch {arch} is cached twice"));
            }
        }
        Ok(EvalCache { entries, index, hits })
    }

    /// The entries from position `start` on, in evaluation order.
    pub(crate) fn entries_from(&self, start: usize) -> &[(Arch, Evaluation)] {
        self.entries.get(start..).unwrap_or_default()
    }

    /// Number of distinct archs evaluated: the evaluations a search has spent.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing was evaluated yet.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// How many requested archs were answered from the cache instead of the evaluator.
    pub fn hits(&self) -> u64 {
        self.hits
    }

    /// The position of `arch` in evaluation order, if it was evaluated.
    pub fn index_of(&self, arch: &Arch) -> Option<usize> {
        self.index.get(arch).copied()
    }

    /// The evaluation of `arch`, if it was evaluated.
    pub fn get(&self, arch: &Arch) -> Option<&Evaluation> {
        self.index_of(arch).map(|i| &self.entries[i].1)
    }

    /// The `i`-th evaluated arch and its evaluation.
    pub fn entry(&self, i: usize) -> Option<(&Arch, &Evaluation)> {
        self.entries.get(i).map(|(a, e)| (a, e))
    }

    /// Every evaluated arch and its evaluation, in evaluation order.
    pub fn entries(&self) -> impl ExactSizeIterator<Item = (&Arch, &Evaluation)> {
        self.entries.iter().map(|(a, e)| (a, e))
    }

    /// How many of `archs`, from the front, can be evaluated without the cache passing `limit`
    /// distinct archs (all of them without a limit): a search's last generation stops at its
    /// evaluation budget instead of paying for evaluations it would throw away. Archs already
    /// evaluated, or repeated, cost nothing.
    pub fn fitting(&self, archs: &[Arch], limit: Option<usize>) -> usize {
        let Some(limit) = limit else { return archs.len() };
        let room = limit.saturating_sub(self.len());
        let mut new = HashSet::new();
        for (i, arch) in archs.iter().enumerate() {
            if self.index_of(arch).is_none() && new.insert(arch) && new.len() > room {
                return i;
            }
        }
        archs.len()
    }

    /// The evaluations in evaluation order: the trace that metrics replay.
    pub fn evaluations(&self) -> impl ExactSizeIterator<Item = &Evaluation> {
        self.entries.iter().map(|(_, e)| e)
    }

    /// Evaluates `archs` and returns the cache index of each, in order. Archs seen before (in
    /// the cache or earlier in `archs`) count as hits; the others are evaluated in parallel on
    /// the current rayon pool and appended in order of first appearance. Each evaluation is
    /// checked against the `objectives` count.
    ///
    /// On error the cache is left unchanged and the error names the first failing arch in
    /// `archs` order.
    pub fn evaluate<E: Evaluator>(&mut self, archs: &[Arch], evaluator: &E, objectives: usize) -> Result<Vec<usize>> {
        let mut pending: Vec<&Arch> = Vec::new();
        let mut pending_index: HashMap<&Arch, usize> = HashMap::new();
        let mut slots = Vec::with_capacity(archs.len());
        let mut hits = 0;
        for arch in archs {
            if let Some(i) = self.index.get(arch) {
                slots.push(*i);
                hits += 1;
            } else if let Some(&p) = pending_index.get(arch) {
                slots.push(self.entries.len() + p);
                hits += 1;
            } else {
                pending_index.insert(arch, pending.len());
                slots.push(self.entries.len() + pending.len());
                pending.push(arch);
            }
        }
        let fresh: Vec<Result<Evaluation>> = pending
            .par_iter()
            .map(|arch| {
                let evaluation = evaluator.evaluate(arch)?;
                evaluation.validate(objectives)?;
                Ok(evaluation)
            })
            .collect();
        let mut evaluated = Vec::with_capacity(fresh.len());
        for (arch, result) in pending.iter().zip(fresh) {
            match result {
                Ok(evaluation) => evaluated.push(evaluation),
                Err(source) => return Err(Error::Evaluation { arch: arch.to_string(), source: Box::new(source) }),
            }
        }
        for (arch, evaluation) in pending.into_iter().zip(evaluated) {
            self.index.insert(arch.clone(), self.entries.len());
            self.entries.push((arch.clone(), evaluation));
        }
        self.hits += hits;
        Ok(slots)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // A test that unwraps fails loudly, which is what it is for.
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::{Count, CountsEvaluator, ObjectiveSpec, Sense};

    /// Counts its calls; fails on archs with 3 layers.
    struct Counting {
        calls: AtomicUsize,
        inner: CountsEvaluator,
    }

    impl Evaluator for Counting {
        fn objectives(&self) -> Vec<ObjectiveSpec> {
            self.inner.objectives()
        }
        fn evaluate(&self, arch: &Arch) -> Result<Evaluation> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if arch.layers == 3 {
                return Err(Error::InvalidEvaluation("three layers".into()));
            }
            self.inner.evaluate(arch)
        }
    }

    fn counting() -> Counting {
        Counting { calls: AtomicUsize::new(0), inner: CountsEvaluator::new(&[(Count::Params, Sense::Minimise)]) }
    }

    #[test]
    fn identical_archs_are_evaluated_once() {
        let evaluator = counting();
        let a = Arch::parse("L1-H128-A2-F256").unwrap();
        let b = Arch::parse("L2-H128-A2-F256").unwrap();
        let mut cache = EvalCache::new();
        assert_eq!(cache.evaluate(&[a.clone(), b.clone(), a.clone()], &evaluator, 1).unwrap(), [0, 1, 0]);
        assert_eq!(cache.evaluate(&[b.clone(), a.clone()], &evaluator, 1).unwrap(), [1, 0]);
        assert_eq!((evaluator.calls.load(Ordering::SeqCst), cache.len(), cache.hits()), (2, 2, 3));
        assert_eq!(cache.get(&b).unwrap().objectives, vec![b.params() as f64]);
    }

    #[test]
    fn fitting_counts_only_archs_that_would_cost_an_evaluation() {
        let evaluator = counting();
        let arch = |layers: usize| Arch::parse(&format!("L{layers}-H128-A2-F256")).unwrap();
        let mut cache = EvalCache::new();
        cache.evaluate(&[arch(1)], &evaluator, 1).unwrap();
        // Room for two more: the known arch and the repeat are free, the third new one is not.
        let batch = [arch(1), arch(2), arch(2), arch(4), arch(5), arch(6)];
        assert_eq!(cache.fitting(&batch, Some(3)), 4);
        assert_eq!(cache.fitting(&batch, None), batch.len());
        assert_eq!(cache.fitting(&batch, Some(1)), 1, "no room: only the known arch");
        assert_eq!(cache.fitting(&batch, Some(100)), batch.len());
    }

    #[test]
    fn a_failure_names_the_arch_and_leaves_the_cache_alone() {
        let evaluator = counting();
        let mut cache = EvalCache::new();
        let ok = Arch::parse("L1-H128-A2-F256").unwrap();
        let bad = Arch::parse("L3-H128-A2-F256").unwrap();
        let err = cache.evaluate(&[ok, bad], &evaluator, 1).unwrap_err();
        assert!(err.to_string().contains("L3-H128"), "{err}");
        assert!(cache.is_empty());
        // A wrong objective count is refused too.
        let err = cache.evaluate(&[Arch::parse("L1-H128-A2-F256").unwrap()], &evaluator, 2).unwrap_err();
        assert!(matches!(err, Error::Evaluation { .. }), "{err}");
    }

    #[test]
    fn ron_round_trip_rebuilds_the_index() {
        let evaluator = counting();
        let mut cache = EvalCache::new();
        let archs: Vec<Arch> = ["L1-H128-A2-F256", "L2-H192-A[2,4]-F[256,512]"].map(|s| Arch::parse(s).unwrap()).into();
        cache.evaluate(&archs, &evaluator, 1).unwrap();
        let text = ron::to_string(&cache).unwrap();
        let back: EvalCache = ron::from_str(&text).unwrap();
        assert_eq!(back, cache);
        assert_eq!(back.index_of(&archs[1]), Some(1));
    }
}
