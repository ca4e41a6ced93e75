//! What the search optimises: the [`Evaluator`] trait, the [`Evaluation`] it returns and the
//! [`ObjectiveSpec`]s that name its values.
//!
//! One convention holds everywhere in this crate: **objective values are in minimised form**.
//! An evaluator of a quantity to maximise (accuracy) returns it negated, via
//! [`Sense::minimised`], and declares [`Sense::Maximise`] in its spec so that reports can turn
//! the value back into natural units with [`ObjectiveSpec::natural`]. The algorithms, the cache,
//! the metrics and the reference points therefore never look at a sense.

use arch::Arch;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Whether an objective is better small or large.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Sense {
    /// Smaller is better (latency, parameters); stored as is.
    Minimise,
    /// Larger is better (accuracy); stored negated.
    Maximise,
}

impl Sense {
    /// The minimised form of a natural value: as is, or negated for [`Sense::Maximise`].
    pub fn minimised(self, natural: f64) -> f64 {
        match self {
            Sense::Minimise => natural,
            Sense::Maximise => -natural,
        }
    }

    /// The natural value of a minimised one (the inverse of [`Sense::minimised`]).
    pub fn natural(self, minimised: f64) -> f64 {
        // Negation is its own inverse.
        self.minimised(minimised)
    }
}

/// The name, unit and sense of one objective, for reports.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectiveSpec {
    /// Short name (`accuracy`, `latency_ms`, `params`).
    pub name: String,
    /// Unit of the natural value (`%`, `ms`, `FLOPs`), empty when it has none.
    #[serde(default)]
    pub unit: String,
    /// Whether the natural value is better small or large.
    pub sense: Sense,
}

impl ObjectiveSpec {
    /// A spec from its parts.
    pub fn new(name: impl Into<String>, unit: impl Into<String>, sense: Sense) -> ObjectiveSpec {
        ObjectiveSpec { name: name.into(), unit: unit.into(), sense }
    }

    /// The natural value of this objective from its minimised form.
    pub fn natural(&self, minimised: f64) -> f64 {
        self.sense.natural(minimised)
    }
}

/// What an evaluator says of one arch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Evaluation {
    /// One value per objective of the evaluator, in minimised form (see the module doc).
    pub objectives: Vec<f64>,
    /// 0 when the arch meets every constraint; else the sum over violated constraints of the
    /// normalised excess ([`normalised_excess`]). Deb's constraint domination compares it.
    pub violation: f64,
}

impl Evaluation {
    /// A feasible evaluation.
    pub fn feasible(objectives: Vec<f64>) -> Evaluation {
        Evaluation { objectives, violation: 0.0 }
    }

    /// Whether the arch meets every constraint.
    pub fn is_feasible(&self) -> bool {
        self.violation == 0.0
    }

    /// Checks that the evaluation has `objectives` finite values and a finite, non-negative
    /// violation.
    pub fn validate(&self, objectives: usize) -> Result<()> {
        if self.objectives.len() != objectives {
            return Err(Error::InvalidEvaluation(format!(
                "{} objective values for {objectives} objectives",
                self.objectives.len()
            )));
        }
        if let Some(i) = self.objectives.iter().position(|v| !v.is_finite()) {
            return Err(Error::InvalidEvaluation(format!("objective {i} is {}", self.objectives[i])));
        }
        if !(self.violation.is_finite() && self.violation >= 0.0) {
            return Err(Error::InvalidEvaluation(format!("violation is {}", self.violation)));
        }
        Ok(())
    }
}

/// How far `value` exceeds an upper `limit`, relative to the limit: `(value - limit) / |limit|`
/// when above it, else 0. A limit of 0 normalises by 1. Relative excesses let constraints of
/// different units (milliseconds, parameters) add up in one violation.
pub fn normalised_excess(value: f64, limit: f64) -> f64 {
    let scale = if limit == 0.0 { 1.0 } else { limit.abs() };
    ((value - limit) / scale).max(0.0)
}

/// Estimates the objectives and constraint violation of an arch.
///
/// The search receives an evaluator, it never builds one: accuracy from the supernet, latency
/// from a device profile, counts from [`crate::CountsEvaluator`]. `evaluate` is called from
/// several rayon threads at once, hence `Sync`; it must be a pure function of the arch (the
/// cache and the determinism guarantee rely on it).
pub trait Evaluator: Sync {
    /// Names and senses of the objectives, in the order of [`Evaluation::objectives`].
    fn objectives(&self) -> Vec<ObjectiveSpec>;

    /// What the constraints are (for example `LatencyAtMost(profile: "p.ron", ms: 10.0)`): a
    /// checkpoint records them, and resuming under other constraints is an error. None by default.
    fn constraints(&self) -> Vec<String> {
        Vec::new()
    }

    /// Objectives (minimised form) and violation of `arch`. An evaluator from another crate
    /// wraps its own failure with [`Error::evaluator`].
    fn evaluate(&self, arch: &Arch) -> Result<Evaluation>;
}

impl<T: Evaluator + ?Sized> Evaluator for &T {
    fn objectives(&self) -> Vec<ObjectiveSpec> {
        (**self).objectives()
    }

    fn constraints(&self) -> Vec<String> {
        (**self).constraints()
    }

    fn evaluate(&self, arch: &Arch) -> Result<Evaluation> {
        (**self).evaluate(arch)
    }
}

/// An arch and its evaluation: a member of a population or a front.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Individual {
    /// The architecture.
    pub arch: Arch,
    /// What the evaluator said of it.
    pub evaluation: Evaluation,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // A test that unwraps fails loudly, which is what it is for.
mod tests {
    use super::*;

    #[test]
    fn maximised_objectives_are_negated_and_back() {
        let accuracy = ObjectiveSpec::new("accuracy", "%", Sense::Maximise);
        let stored = accuracy.sense.minimised(91.5);
        assert_eq!(stored, -91.5);
        assert_eq!(accuracy.natural(stored), 91.5);
        assert_eq!(Sense::Minimise.minimised(3.0), 3.0);
    }

    #[test]
    fn excess_is_relative_and_zero_when_met() {
        assert_eq!(normalised_excess(5.0, 10.0), 0.0);
        assert_eq!(normalised_excess(10.0, 10.0), 0.0);
        assert_eq!(normalised_excess(15.0, 10.0), 0.5);
        assert_eq!(normalised_excess(2.0, 0.0), 2.0);
    }

    #[test]
    fn validate_refuses_what_cannot_be_compared() {
        assert!(Evaluation::feasible(vec![1.0, 2.0]).validate(2).is_ok());
        assert!(Evaluation::feasible(vec![1.0]).validate(2).is_err());
        assert!(Evaluation::feasible(vec![1.0, f64::NAN]).validate(2).is_err());
        assert!(Evaluation { objectives: vec![1.0], violation: -1.0 }.validate(1).is_err());
        assert!(Evaluation { objectives: vec![1.0], violation: f64::INFINITY }.validate(1).is_err());
    }
}
