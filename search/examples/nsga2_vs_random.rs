//! Evaluations NSGA-II and random search need to reach 99% of a reference hypervolume on
//! `SearchSpace::default()`, averaged over 5 seeds, with count objectives as a stand-in for the
//! real ones (accuracy from the supernet, latency from a device profile), which do not exist yet.
//!
//! Maximising FLOPs is NOT an accuracy signal: it only gives the metric code a front to work on
//! that conflicts with minimising parameters and activation memory.
//!
//! `cargo run --release -p search --example nsga2_vs_random [BUDGET]`

use arch::SearchSpace;
use search::{ComparisonConfig, Count, CountsEvaluator, Nsga2Config, Sense, compare_with_random};

fn main() -> Result<(), search::Error> {
    let budget = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let space = SearchSpace::default();
    let largest = space.largest();
    let cases = [
        vec![(Count::Params, Sense::Minimise), (Count::Flops, Sense::Maximise)],
        vec![
            (Count::Params, Sense::Minimise),
            (Count::ActivationBytes, Sense::Minimise),
            (Count::Flops, Sense::Maximise),
        ],
    ];
    for objectives in cases {
        let evaluator = CountsEvaluator::new(&objectives);
        // Worse than every arch of the space in every objective (FLOPs are stored negated).
        let reference_point: Vec<f64> = objectives
            .iter()
            .map(|(count, sense)| match sense {
                Sense::Minimise => count.of(&largest, evaluator.batch) * 1.1,
                Sense::Maximise => 0.0,
            })
            .collect();
        let config = ComparisonConfig {
            // A larger population for the larger 3-objective front.
            nsga2: Nsga2Config::new(if objectives.len() > 2 { 200 } else { 50 }, 100_000, 0),
            budget,
            random_budget: None,
            seeds: (0..5).collect(),
            reference_seeds: vec![1000, 1001, 1002],
            reference_budget: budget * 5,
            reference_point,
            target: 0.99,
            hat_objective: None,
        };
        let names: Vec<String> = objectives
            .iter()
            .map(|(count, sense)| format!("{} {}", if *sense == Sense::Maximise { "max" } else { "min" }, count.name()))
            .collect();
        let start = std::time::Instant::now();
        let comparison = compare_with_random(&space, &evaluator, &config)?;
        println!(
            "objectives {names:?}: reference front {} points, hypervolume {:.6e}",
            comparison.reference_front.len(),
            comparison.reference_hypervolume
        );
        println!("{comparison}  [{:.1} s]", start.elapsed().as_secs_f64());
    }
    Ok(())
}
