//! Helpers shared by the unit tests.

use arch::SearchSpace;

use crate::{Count, CountsEvaluator, Evaluation, Sense};

/// A fresh scratch folder under the system temporary directory, removed when dropped.
pub(crate) fn scratch(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("canao-search-{name}-"))
        .tempdir()
        .unwrap_or_else(|e| panic!("cannot create a scratch folder for {name}: {e}"))
}

/// Minimise parameters, maximise FLOPs: two conflicting counts.
pub(crate) fn params_vs_flops() -> CountsEvaluator {
    CountsEvaluator::new(&[(Count::Params, Sense::Minimise), (Count::Flops, Sense::Maximise)])
}

/// A reference point that every arch of `space` dominates for [`params_vs_flops`].
pub(crate) fn params_vs_flops_reference(space: &SearchSpace) -> Vec<f64> {
    vec![space.largest().params() as f64 * 1.1, 0.0]
}

/// A rayon pool of `threads` threads.
pub(crate) fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap_or_else(|e| panic!("rayon pool: {e}"))
}

/// An evaluation from its objectives and violation.
pub(crate) fn eval(objectives: &[f64], violation: f64) -> Evaluation {
    Evaluation { objectives: objectives.to_vec(), violation }
}
