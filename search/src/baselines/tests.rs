#![allow(clippy::unwrap_used)] // A test that unwraps fails loudly, which is what it is for.

use super::*;
use crate::pareto::dominates;
use crate::testing::{params_vs_flops, params_vs_flops_reference, pool};
use crate::{Count, CountsEvaluator, Sense};

#[test]
fn random_search_spends_exactly_its_budget() {
    let space = SearchSpace::default();
    let config = RandomSearchConfig { batch: 64, ..RandomSearchConfig::new(300, 4) };
    let outcome = random_search(&space, &params_vs_flops(), &config).unwrap();
    assert_eq!(outcome.cache.len(), 300);
    assert_eq!(outcome.history.len(), 5); // 64 · 4 + 44
    for a in &outcome.front {
        space.contains(&a.arch).unwrap();
        assert!(!outcome.front.iter().any(|b| dominates(&b.evaluation.objectives, &a.evaluation.objectives)));
    }
}

#[test]
fn random_search_ignores_batch_size_and_threads() {
    let space = SearchSpace::default();
    let run = |batch, threads| {
        let config = RandomSearchConfig { batch, ..RandomSearchConfig::new(200, 9) };
        pool(threads).install(|| random_search(&space, &params_vs_flops(), &config).unwrap())
    };
    let reference = run(7, 1);
    assert_eq!(run(200, 4).cache, reference.cache);
    assert_eq!(run(64, 2).front, reference.front);
}

#[test]
fn random_search_stops_when_the_space_runs_out() {
    let space =
        SearchSpace { layers: vec![1], hidden: vec![128], heads: vec![2, 4], ffn: vec![256], ..SearchSpace::default() };
    let outcome = random_search(&space, &params_vs_flops(), &RandomSearchConfig::new(50, 0)).unwrap();
    assert_eq!(outcome.cache.len(), 2);
}

#[test]
fn constrained_ga_finds_the_best_feasible_arch_of_a_small_space() {
    // Uniform archs only: 6 · 5 · 6 · 6 = 1080 archs, small enough to enumerate for the truth.
    let space = SearchSpace { per_layer: false, ..SearchSpace::default() };
    let limit = space.largest().params() as f64 * 0.4;
    let evaluator = CountsEvaluator::new(&[(Count::Flops, Sense::Maximise)]).with_limit(Count::Params, limit);
    let mut truth = f64::INFINITY;
    for layers in &space.layers {
        for hidden in &space.hidden {
            for heads in &space.heads {
                for ffn in &space.ffn {
                    let arch = Arch { head_dim: space.head_dim, ..Arch::uniform(*layers, *hidden, *heads, *ffn) };
                    let e = evaluator.evaluate(&arch).unwrap();
                    if e.is_feasible() {
                        truth = truth.min(e.objectives[0]);
                    }
                }
            }
        }
    }
    let config = ConstrainedGaConfig { generations: 15, ..ConstrainedGaConfig::new(0, 1) };
    let outcome = constrained_ga(&space, &evaluator, &config).unwrap();
    let best = outcome.best.unwrap();
    assert!(best.evaluation.is_feasible() && best.arch.params() as f64 <= limit);
    assert_eq!(best.evaluation.objectives[0], truth, "best {}", best.arch);
    assert!(outcome.best_history.windows(2).all(|w| w[1] <= w[0]), "top-k elitism never loses the best");
    assert_eq!(outcome.outcome.history.len(), 16);
}

#[test]
fn constrained_ga_stops_at_its_evaluation_limit() {
    let space = SearchSpace::default();
    let config = ConstrainedGaConfig { generations: 100, max_evaluations: Some(300), ..ConstrainedGaConfig::new(0, 5) };
    let limited = constrained_ga(&space, &params_vs_flops(), &config).unwrap();
    let evaluated = limited.outcome.cache.len();
    // HAT's 125 + 100 per generation: the generation that reaches 300 evaluates only what fits.
    assert_eq!(evaluated, 300);
    assert!(limited.outcome.history.len() < 101, "stopped before its last generation");
    // The same run without the limit starts with the same evaluations.
    let unlimited =
        constrained_ga(&space, &params_vs_flops(), &ConstrainedGaConfig { max_evaluations: None, ..config }).unwrap();
    let prefix: Vec<_> = unlimited.outcome.cache.evaluations().take(evaluated).collect();
    assert_eq!(prefix, limited.outcome.cache.evaluations().collect::<Vec<_>>());
}

#[test]
fn constrained_ga_is_deterministic_across_threads() {
    let space = SearchSpace::default();
    let evaluator = params_vs_flops().with_limit(Count::Params, space.largest().params() as f64 * 0.5);
    let config = ConstrainedGaConfig {
        generations: 5,
        reference_point: Some(params_vs_flops_reference(&space)),
        ..ConstrainedGaConfig::new(1, 3)
    };
    let one = pool(1).install(|| constrained_ga(&space, &evaluator, &config).unwrap());
    let four = pool(4).install(|| constrained_ga(&space, &evaluator, &config).unwrap());
    assert_eq!(one, four);
}

#[test]
fn constrained_ga_checks_its_config() {
    let space = SearchSpace::default();
    let bad = ConstrainedGaConfig::new(2, 0); // params_vs_flops has objectives 0 and 1
    assert!(constrained_ga(&space, &params_vs_flops(), &bad).is_err());
    let no_parents = ConstrainedGaConfig { parents: 0, ..ConstrainedGaConfig::new(0, 0) };
    assert!(constrained_ga(&space, &params_vs_flops(), &no_parents).is_err());
}
