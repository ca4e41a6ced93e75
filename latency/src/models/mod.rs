//! One latency model per kernel kind. Two families are fitted on the calibration samples of a
//! kind and compared on held-out samples; the better one (lower RMSPE) is refitted on all samples
//! and kept, and the profile says which won and by how much.

mod linear;
mod trees;

pub use linear::PiecewiseLinear;
pub(crate) use linear::solve;
pub use trees::{BoostedTrees, TreeParams};

use serde::{Deserialize, Serialize};

/// A fitted model of one kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Model {
    PiecewiseLinear(PiecewiseLinear),
    BoostedTrees(BoostedTrees),
}

impl Model {
    /// Predicted milliseconds for a kernel with these features.
    pub fn predict(&self, x: &[f64; 4]) -> f64 {
        match self {
            Model::PiecewiseLinear(m) => m.predict(x),
            Model::BoostedTrees(m) => m.predict(x),
        }
    }
}

/// The model kept for a kind, with the evidence for the choice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KindModel {
    /// The features the model reads, in order (see [`crate::features::feature_names`]).
    pub features: Vec<String>,
    pub model: Model,
    /// Held-out RMSPE of each family (`None` when too few samples to hold any out).
    pub holdout_rmspe_linear: Option<f64>,
    pub holdout_rmspe_trees: Option<f64>,
    pub samples: usize,
    /// Range of each feature over the samples: predictions outside are extrapolations.
    pub ranges: Vec<(f64, f64)>,
}

impl KindModel {
    /// Which family won.
    pub fn family(&self) -> &'static str {
        match self.model {
            Model::PiecewiseLinear(_) => "piecewise-linear",
            Model::BoostedTrees(_) => "boosted-trees",
        }
    }

    /// Whether `x` lies outside the calibrated ranges (with a 1% margin).
    pub fn extrapolates(&self, x: &[f64; 4]) -> bool {
        x.iter().zip(&self.ranges).any(|(v, (lo, hi))| *v < lo * 0.99 || *v > hi * 1.01)
    }
}

/// Root mean square percentage error of `model` on samples.
pub fn rmspe(predict: impl Fn(&[f64; 4]) -> f64, xs: &[[f64; 4]], ys: &[f64]) -> f64 {
    let n = xs.len().max(1) as f64;
    (xs.iter().zip(ys).map(|(x, y)| ((predict(x) - y) / y).powi(2)).sum::<f64>() / n).sqrt()
}

fn fit_linear(xs: &[[f64; 4]], ys: &[f64]) -> Option<PiecewiseLinear> {
    PiecewiseLinear::fit(xs, ys, 3)
}

fn fit_trees(xs: &[[f64; 4]], ys: &[f64]) -> BoostedTrees {
    BoostedTrees::fit(xs, ys, TreeParams::default())
}

/// Fits both families on `(features, ms)` samples of one kind and keeps the better. Every fifth
/// sample (in the given, deterministic order) is held out for the comparison.
pub fn fit_kind(names: [&str; 4], xs: &[[f64; 4]], ys: &[f64]) -> KindModel {
    let ranges = (0..4)
        .map(|f| {
            let lo = xs.iter().map(|x| x[f]).fold(f64::INFINITY, f64::min);
            let hi = xs.iter().map(|x| x[f]).fold(f64::NEG_INFINITY, f64::max);
            (lo, hi)
        })
        .collect();
    let (mut train, mut test) = ((vec![], vec![]), (vec![], vec![]));
    for (i, (x, y)) in xs.iter().zip(ys).enumerate() {
        let part = if i % 5 == 4 { &mut test } else { &mut train };
        part.0.push(*x);
        part.1.push(*y);
    }
    let (mut linear_err, mut trees_err) = (None, None);
    if test.0.len() >= 2 && train.0.len() >= 8 {
        linear_err = fit_linear(&train.0, &train.1).map(|m| rmspe(|x| m.predict(x), &test.0, &test.1));
        let trees = fit_trees(&train.0, &train.1);
        trees_err = Some(rmspe(|x| trees.predict(x), &test.0, &test.1));
    }
    let use_trees = match (linear_err, trees_err) {
        (Some(l), Some(t)) => t < l,
        (None, Some(_)) => true,
        _ => false,
    };
    let model = match (use_trees, fit_linear(xs, ys)) {
        (false, Some(linear)) => Model::PiecewiseLinear(linear),
        _ => Model::BoostedTrees(fit_trees(xs, ys)),
    };
    KindModel {
        features: names.iter().map(|s| s.to_string()).collect(),
        model,
        holdout_rmspe_linear: linear_err,
        holdout_rmspe_trees: trees_err,
        samples: xs.len(),
        ranges,
    }
}
