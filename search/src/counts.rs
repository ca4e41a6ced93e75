//! [`CountsEvaluator`]: objectives and constraints from what can be counted from an arch alone
//! (parameters, FLOPs, activation bytes). It needs nothing outside this crate and `arch`, so it
//! is what tests and the throughput benchmark run on, and a real objective in its own right
//! (parameters ≤ limit is a constraint users set).

use arch::Arch;
use serde::{Deserialize, Serialize};

use crate::{Error, Evaluation, Evaluator, ObjectiveSpec, Result, Sense, normalised_excess};

/// A quantity counted from an arch (see `arch`'s counts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Count {
    /// [`Arch::params`].
    Params,
    /// [`Arch::flops`] for the evaluator's batch.
    Flops,
    /// [`Arch::activation_bytes`] for the evaluator's batch.
    ActivationBytes,
}

impl Count {
    /// The count for `arch` at `batch` sequences.
    pub fn of(self, arch: &Arch, batch: usize) -> f64 {
        match self {
            Count::Params => arch.params() as f64,
            Count::Flops => arch.flops(batch) as f64,
            Count::ActivationBytes => arch.activation_bytes(batch) as f64,
        }
    }

    /// Name used in objective specs and reports.
    pub fn name(self) -> &'static str {
        match self {
            Count::Params => "params",
            Count::Flops => "flops",
            Count::ActivationBytes => "activation_bytes",
        }
    }

    fn unit(self) -> &'static str {
        match self {
            Count::Params => "",
            Count::Flops => "FLOPs",
            Count::ActivationBytes => "B",
        }
    }
}

/// One objective of a [`CountsEvaluator`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CountObjective {
    /// What is counted.
    pub count: Count,
    /// Whether fewer or more is better.
    pub sense: Sense,
}

/// An upper limit on a count: a constraint of a [`CountsEvaluator`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CountLimit {
    /// What is counted.
    pub count: Count,
    /// Largest feasible value.
    pub limit: f64,
}

/// Objectives and constraints from arch counts alone.
///
/// The violation is the sum of [`normalised_excess`] over the limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CountsEvaluator {
    /// The objectives, in order.
    pub objectives: Vec<CountObjective>,
    /// Upper limits; an arch over any of them is infeasible.
    #[serde(default)]
    pub limits: Vec<CountLimit>,
    /// Sequences per forward for FLOPs and activation bytes.
    #[serde(default = "default_batch")]
    pub batch: usize,
}

fn default_batch() -> usize {
    1
}

impl CountsEvaluator {
    /// An evaluator of `objectives`, without limits, at batch 1; check it with
    /// [`CountsEvaluator::validate`] when the parts come from a user.
    pub fn new(objectives: &[(Count, Sense)]) -> CountsEvaluator {
        let objectives = objectives.iter().map(|&(count, sense)| CountObjective { count, sense }).collect();
        CountsEvaluator { objectives, limits: Vec::new(), batch: default_batch() }
    }

    /// Adds the constraint `count ≤ limit`.
    pub fn with_limit(mut self, count: Count, limit: f64) -> CountsEvaluator {
        self.limits.push(CountLimit { count, limit });
        self
    }

    /// Sets the batch for FLOPs and activation bytes.
    pub fn with_batch(mut self, batch: usize) -> CountsEvaluator {
        self.batch = batch;
        self
    }

    /// Checks that there is an objective, the batch is positive and every limit finite and
    /// positive.
    pub fn validate(&self) -> Result<()> {
        if self.objectives.is_empty() {
            return Err(Error::config("objectives", "must list at least one count"));
        }
        if self.batch == 0 {
            return Err(Error::config("batch", "must be at least 1"));
        }
        for (i, limit) in self.limits.iter().enumerate() {
            if !(limit.limit.is_finite() && limit.limit > 0.0) {
                return Err(Error::config(
                    format!("limits[{i}].limit"),
                    format!("must be positive, got {}", limit.limit),
                ));
            }
        }
        Ok(())
    }
}

impl Evaluator for CountsEvaluator {
    fn objectives(&self) -> Vec<ObjectiveSpec> {
        self.objectives.iter().map(|o| ObjectiveSpec::new(o.count.name(), o.count.unit(), o.sense)).collect()
    }

    fn constraints(&self) -> Vec<String> {
        self.limits.iter().map(|l| format!("{} <= {}", l.count.name(), l.limit)).collect()
    }

    fn evaluate(&self, arch: &Arch) -> Result<Evaluation> {
        let objectives = self.objectives.iter().map(|o| o.sense.minimised(o.count.of(arch, self.batch))).collect();
        let violation = self.limits.iter().map(|l| normalised_excess(l.count.of(arch, self.batch), l.limit)).sum();
        Ok(Evaluation { objectives, violation })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // A test that unwraps fails loudly, which is what it is for.
mod tests {
    use super::*;

    #[test]
    fn objectives_are_minimised_counts() {
        let arch = Arch::parse("L2-H128-A2-F512").unwrap();
        let eval = CountsEvaluator::new(&[(Count::Params, Sense::Minimise), (Count::Flops, Sense::Maximise)])
            .with_batch(2)
            .evaluate(&arch)
            .unwrap();
        assert_eq!(eval.objectives, vec![arch.params() as f64, -(arch.flops(2) as f64)]);
        assert!(eval.is_feasible());
    }

    #[test]
    fn limits_give_normalised_violation() {
        let arch = Arch::parse("L2-H128-A2-F512").unwrap();
        let params = arch.params() as f64;
        let tight = CountsEvaluator::new(&[(Count::Params, Sense::Minimise)]).with_limit(Count::Params, params / 2.0);
        assert_eq!(tight.evaluate(&arch).unwrap().violation, 1.0);
        let loose = CountsEvaluator::new(&[(Count::Params, Sense::Minimise)]).with_limit(Count::Params, params);
        assert!(loose.evaluate(&arch).unwrap().is_feasible());
    }

    #[test]
    fn validate_names_the_field() {
        let field = |e: CountsEvaluator| match e.validate() {
            Err(Error::InvalidConfig { field, .. }) => field,
            other => panic!("expected InvalidConfig, got {other:?}"),
        };
        assert_eq!(field(CountsEvaluator::new(&[])), "objectives");
        let one = CountsEvaluator::new(&[(Count::Params, Sense::Minimise)]);
        assert_eq!(field(one.clone().with_batch(0)), "batch");
        assert_eq!(field(one.clone().with_limit(Count::Flops, -1.0)), "limits[0].limit");
        one.validate().unwrap();
    }

    #[test]
    fn specs_name_the_counts() {
        let e = CountsEvaluator::new(&[(Count::ActivationBytes, Sense::Minimise), (Count::Flops, Sense::Maximise)]);
        let names: Vec<String> = e.objectives().into_iter().map(|s| s.name).collect();
        assert_eq!(names, ["activation_bytes", "flops"]);
    }
}
