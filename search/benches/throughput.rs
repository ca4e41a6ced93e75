//! Archs evaluated per second with `CountsEvaluator` (parameters and FLOPs), the issue's
//! throughput target (≥ 10,000/s on the 2-core machine):
//!
//! - `cache`: `EvalCache::evaluate` on distinct random archs, on one thread (the baseline) and on
//!   the global rayon pool;
//! - `nsga2`: whole NSGA-II runs (tournaments, variation, cache, parallel evaluation, sorting,
//!   survival, hypervolume), counted in distinct archs evaluated, without and with a checkpoint
//!   written every generation.
//!
//! `cargo bench -p search` prints one line per measurement, the median of 5 repetitions.

use std::time::{Duration, Instant};

use arch::{Arch, SearchSpace};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use search::{Count, CountsEvaluator, EvalCache, Nsga2, Nsga2Config, Sense};

const REPEATS: usize = 5;

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn per_second(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

fn evaluator() -> CountsEvaluator {
    CountsEvaluator::new(&[(Count::Params, Sense::Minimise), (Count::Flops, Sense::Maximise)])
}

fn cache_rate(archs: &[Arch]) -> f64 {
    median(
        (0..REPEATS)
            .map(|_| {
                let mut cache = EvalCache::new();
                let start = Instant::now();
                let slots = cache.evaluate(archs, &evaluator(), 2).unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(slots.len(), archs.len());
                per_second(cache.len(), start.elapsed())
            })
            .collect(),
    )
}

fn nsga2_rate(checkpoint: bool) -> (f64, usize, u64) {
    let space = SearchSpace::default();
    let scratch = tempfile::Builder::new().prefix("canao-search-bench-").tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut last = (0, 0);
    let rates = (0..REPEATS)
        .map(|seed| {
            let config = Nsga2Config {
                max_evaluations: Some(20_000),
                reference_point: Some(vec![space.largest().params() as f64 * 1.1, 0.0]),
                ..Nsga2Config::new(100, 1_000, seed as u64)
            };
            let mut run = Nsga2::new(space.clone(), evaluator(), config).unwrap_or_else(|e| panic!("{e}"));
            if checkpoint {
                run = run.with_checkpoint(scratch.path().join("state.ron"));
            }
            let start = Instant::now();
            run.run().unwrap_or_else(|e| panic!("{e}"));
            let elapsed = start.elapsed();
            let cache = run.state().cache();
            last = (cache.len(), cache.hits());
            per_second(cache.len(), elapsed)
        })
        .collect();
    (median(rates), last.0, last.1)
}

fn main() {
    let space = SearchSpace::default();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let archs: Vec<Arch> = (0..50_000).map(|_| space.sample(&mut rng)).collect();
    let threads = rayon::current_num_threads();
    let single = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap_or_else(|e| panic!("{e}"));
    let one = single.install(|| cache_rate(&archs));
    let all = cache_rate(&archs);
    println!("cache    1 thread   {one:>12.0} archs/s  (baseline)");
    println!("cache    {threads} threads  {all:>12.0} archs/s  ({:.2}x)", all / one);
    let (plain, evaluations, hits) = nsga2_rate(false);
    println!(
        "nsga2    {threads} threads  {plain:>12.0} archs/s  (μ = λ = 100, {evaluations} distinct archs, {hits} cache hits)"
    );
    let (saved, _, _) = nsga2_rate(true);
    println!(
        "nsga2+ckpt {threads} threads {saved:>11.0} archs/s  ({:.2}x of nsga2; RON checkpoint every generation)",
        saved / plain
    );
}
