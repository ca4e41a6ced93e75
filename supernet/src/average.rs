//! An exponential moving average of a model's weights (Polyak averaging), the model that
//! training keeps and evaluates when `TrainConfig::ema` is set: late in fine-tuning the weights
//! wander from step to step with the mini-batches, and their average sits nearer the middle of
//! where they wander.

use std::collections::HashMap;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::tensor::Tensor;

use crate::model::Supernet;

/// The decay used at optimizer step `step` (1-based) for a configured `decay`: `(1 + step) /
/// (10 + step)` while that is smaller, so that the first steps do not leave the average stuck
/// at the initial weights (TensorFlow's `ExponentialMovingAverage` with `num_updates`).
pub fn decay_at(decay: f64, step: usize) -> f64 {
    decay.min((1.0 + step as f64) / (10.0 + step as f64))
}

/// `average · decay + live · (1 - decay)`, parameter by parameter (matched by id). `average`
/// holds no autodiff state; `live` may.
pub fn blend(average: Supernet, live: &Supernet, decay: f64) -> Supernet {
    let mut collect = Collect(HashMap::new());
    live.visit(&mut collect);
    let mut blend = Blend { live: collect.0, decay };
    let average = average.map(&mut blend);
    // Both are the same model: every live parameter has its average (ids survive optimizer
    // steps and `valid()`).
    debug_assert!(blend.live.is_empty(), "{} parameters have no average", blend.live.len());
    average
}

/// Every float parameter of a model, flattened and without autodiff, by id.
struct Collect(HashMap<ParamId, Tensor<1>>);

impl ModuleVisitor for Collect {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let value = param.val().without_autodiff();
        let n = value.shape().num_elements();
        self.0.insert(param.id, value.reshape([n]));
    }
}

struct Blend {
    live: HashMap<ParamId, Tensor<1>>,
    decay: f64,
}

impl ModuleMapper for Blend {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let Some(live) = self.live.remove(&param.id) else { return param };
        let decay = self.decay;
        param.map(|average| {
            let live = live.reshape(average.shape());
            average.mul_scalar(decay) + live.mul_scalar(1.0 - decay)
        })
    }
}

#[cfg(test)]
mod tests {
    use arch::Arch;
    use burn::tensor::Device;

    use super::*;

    fn weights(net: &Supernet) -> Vec<f32> {
        let mut collect = Collect(HashMap::new());
        net.visit(&mut collect);
        let mut ids: Vec<_> = collect.0.keys().copied().collect();
        ids.sort_by_key(|id| id.val());
        ids.iter().flat_map(|id| collect.0[id].to_data().try_to_vec::<f32>().unwrap_or_default()).collect()
    }

    #[test]
    fn blending_averages_each_parameter_with_its_live_value() {
        let max = Arch::parse("L2-H64-A2-F128-D32").unwrap();
        let start = Supernet::init(&max, 1e-12, &Device::flex().autodiff()).unwrap().valid();
        // The same parameter ids, other values: a model "trained" away from the start.
        let moved = start.clone().map(&mut Shift(0.5));
        let (a, b) = (weights(&start), weights(&moved));
        let half = weights(&blend(start.clone(), &moved, 0.25));
        assert_eq!(a.len(), half.len());
        for ((a, b), h) in a.iter().zip(&b).zip(&half) {
            assert!((h - (0.25 * a + 0.75 * b)).abs() < 1e-6, "{h} is not 0.25·{a} + 0.75·{b}");
        }
        assert_eq!(weights(&blend(start.clone(), &moved, 1.0)), a);
        assert_eq!(weights(&blend(start, &moved, 0.0)), b);
    }

    #[test]
    fn the_decay_warms_up() {
        assert!((decay_at(0.999, 1) - 2.0 / 11.0).abs() < 1e-12);
        assert_eq!(decay_at(0.999, 100_000), 0.999);
    }

    /// Adds a constant to every float parameter.
    struct Shift(f64);

    impl ModuleMapper for Shift {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let shift = self.0;
            param.map(|t| t.add_scalar(shift))
        }
    }
}
