#![allow(clippy::unwrap_used)] // A test that unwraps fails loudly, which is what it is for.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;
use crate::pareto::dominates;
use crate::testing::{params_vs_flops, params_vs_flops_reference, pool, scratch};
use crate::{Count, CountLimit, CountsEvaluator, Error, RandomSearchConfig, Sense, random_search};

fn config(seed: u64) -> Nsga2Config {
    let mut config = Nsga2Config::new(24, 15, seed);
    config.reference_point = Some(params_vs_flops_reference(&SearchSpace::default()));
    config
}

fn finished(config: Nsga2Config) -> Nsga2<CountsEvaluator> {
    let mut run = Nsga2::new(SearchSpace::default(), params_vs_flops(), config).unwrap();
    run.run().unwrap();
    run
}

#[test]
fn front_is_feasible_non_dominated_and_inside_the_space() {
    let space = SearchSpace::default();
    let limit = space.largest().params() as f64 * 0.6;
    let evaluator = params_vs_flops().with_limit(Count::Params, limit);
    let mut run = Nsga2::new(space.clone(), evaluator, config(3)).unwrap();
    run.run().unwrap();
    let state = run.state();
    assert_eq!(state.population().len(), 24);
    assert_eq!(state.generation(), Some(15));
    assert_eq!(state.history().len(), 16);
    let front = run.front();
    assert!(!front.is_empty());
    for a in &front {
        space.contains(&a.arch).unwrap();
        assert!(a.evaluation.is_feasible() && a.arch.params() as f64 <= limit, "{}", a.arch);
        assert!(!front.iter().any(|b| dominates(&b.evaluation.objectives, &a.evaluation.objectives)));
    }
    // Sorted by the first objective.
    assert!(front.windows(2).all(|w| w[0].evaluation.objectives[0] <= w[1].evaluation.objectives[0]));
}

#[test]
fn same_seed_same_state_whatever_the_threads() {
    let one = pool(1).install(|| finished(config(7)));
    let four = pool(4).install(|| finished(config(7)));
    assert_eq!(one.state(), four.state());
    assert_eq!(one.front(), four.front());
    assert_ne!(finished(config(8)).state().cache(), one.state().cache(), "another seed searches elsewhere");
}

#[test]
fn history_counts_evaluations_hits_and_hypervolume() {
    let run = finished(config(1));
    let history = run.state().history();
    for (g, record) in history.iter().enumerate() {
        assert_eq!(record.generation, g);
    }
    let last = history.last().unwrap();
    assert_eq!(last.evaluations, run.state().cache().len());
    assert_eq!(last.cache_hits, run.state().cache().hits());
    assert_eq!(last.front_size, run.archive_front().len());
    assert_eq!(run.state().archive_front(), run.archive_front());
    let hv: Vec<f64> = history.iter().map(|r| r.hypervolume.unwrap()).collect();
    assert!(hv.windows(2).all(|w| w[0] <= w[1]), "the front of all evaluations only grows: {hv:?}");
    assert!(hv[0] > 0.0 && hv[hv.len() - 1] > hv[0]);
    // The archive's hypervolume is the one recorded.
    let points: Vec<Vec<f64>> = run.archive_front().into_iter().map(|i| i.evaluation.objectives).collect();
    assert_eq!(
        crate::hypervolume(&points, run.state().config().reference_point.as_ref().unwrap()).unwrap(),
        hv[hv.len() - 1]
    );
}

#[test]
fn identical_archs_are_evaluated_once_in_a_small_space() {
    // 2 · 2 · 2 · 2 = 16 uniform archs: the search soon proposes archs it has seen.
    let space = SearchSpace {
        layers: vec![1, 2],
        hidden: vec![128, 256],
        heads: vec![2, 4],
        ffn: vec![256, 512],
        per_layer: false,
        ..SearchSpace::default()
    };
    let calls = AtomicUsize::new(0);
    struct Counted<'a>(&'a AtomicUsize, CountsEvaluator);
    impl Evaluator for Counted<'_> {
        fn objectives(&self) -> Vec<ObjectiveSpec> {
            self.1.objectives()
        }
        fn evaluate(&self, arch: &Arch) -> Result<Evaluation> {
            self.0.fetch_add(1, Ordering::SeqCst);
            self.1.evaluate(arch)
        }
    }
    let mut run = Nsga2::new(space, Counted(&calls, params_vs_flops()), Nsga2Config::new(6, 20, 0)).unwrap();
    run.run().unwrap();
    let state = run.state();
    assert_eq!(calls.load(Ordering::SeqCst), state.cache().len());
    assert!(state.cache().len() <= 16);
    assert!(state.cache().hits() > 0, "twenty generations of six children revisit archs");
}

#[test]
fn a_tight_constraint_is_met_by_the_whole_population() {
    // Fewer than one random arch in ten fits; Deb's rules drive the population inside.
    let space = SearchSpace::default();
    let limit = space.smallest().params() as f64 * 1.2;
    let evaluator = CountsEvaluator::new(&[(Count::Flops, Sense::Maximise)]).with_limit(Count::Params, limit);
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let fits = (0..1000).filter(|_| evaluator.evaluate(&space.sample(&mut rng)).unwrap().is_feasible()).count();
    assert!(fits < 100, "{fits} of 1000 random archs fit");
    let mut run = Nsga2::new(space, evaluator, Nsga2Config::new(20, 30, 5)).unwrap();
    run.run().unwrap();
    assert!(run.state().population().iter().all(|i| i.evaluation.is_feasible()));
}

#[test]
fn max_evaluations_stops_the_run() {
    let limited = Nsga2Config { generations: 1000, max_evaluations: Some(100), ..config(2) };
    let run = finished(limited);
    let evaluations = run.state().cache().len();
    assert_eq!(evaluations, 100, "the last generation evaluates only the children that fit");
    // And the same evaluations, in order, as the first 100 of a run without the limit.
    let unlimited = finished(Nsga2Config { max_evaluations: None, generations: 10, ..config(2) });
    let prefix: Vec<_> = unlimited.state().cache().evaluations().take(100).collect();
    assert_eq!(prefix, run.state().cache().evaluations().collect::<Vec<_>>());
}

#[test]
fn resume_in_process_ends_where_an_uninterrupted_run_does() {
    let dir = scratch("nsga2-resume");
    let path = dir.path().join("state.ron");
    let uninterrupted = finished(config(11));
    for stop_after in [1, 2, 9] {
        let _ = std::fs::remove_file(&path);
        let mut first = Nsga2::resume(SearchSpace::default(), params_vs_flops(), config(11), &path).unwrap();
        for _ in 0..stop_after {
            first.step().unwrap();
        }
        drop(first);
        let mut resumed = Nsga2::resume(SearchSpace::default(), params_vs_flops(), config(11), &path).unwrap();
        assert_eq!(resumed.state().generation(), Some(stop_after - 1));
        resumed.run().unwrap();
        assert_eq!(resumed.state(), uninterrupted.state(), "stopped after {stop_after} steps");
        assert_eq!(resumed.front(), uninterrupted.front());
    }
}

#[test]
fn resume_cuts_journal_entries_the_state_does_not_rely_on() {
    let dir = scratch("nsga2-journal");
    let path = dir.path().join("state.ron");
    let uninterrupted = finished(config(12));
    let mut run = Nsga2::resume(SearchSpace::default(), params_vs_flops(), config(12), &path).unwrap();
    run.step().unwrap();
    run.step().unwrap();
    let after_two = std::fs::read(&path).unwrap();
    run.step().unwrap();
    drop(run);
    // A kill after the journal append of generation 2 and before its rename: the old state
    // document with a longer journal, whose last line is torn.
    std::fs::write(&path, after_two).unwrap();
    let journal = journal_path(&path);
    let mut bytes = std::fs::read(&journal).unwrap();
    bytes.extend_from_slice(b"((layers: 3, hid");
    std::fs::write(&journal, bytes).unwrap();
    let mut resumed = Nsga2::resume(SearchSpace::default(), params_vs_flops(), config(12), &path).unwrap();
    assert_eq!(resumed.state().generation(), Some(1));
    resumed.run().unwrap();
    assert_eq!(resumed.state(), uninterrupted.state());
    assert_eq!(Nsga2State::load(&path).unwrap().as_ref(), Some(uninterrupted.state()));
}

#[test]
fn a_missing_journal_is_an_error() {
    let dir = scratch("nsga2-no-journal");
    let path = dir.path().join("state.ron");
    let mut run = Nsga2::resume(SearchSpace::default(), params_vs_flops(), config(1), &path).unwrap();
    run.step().unwrap();
    std::fs::remove_file(journal_path(&path)).unwrap();
    let err = Nsga2::resume(SearchSpace::default(), params_vs_flops(), config(1), &path).err().unwrap();
    assert!(err.to_string().contains("state.cache.ron"), "{err}");
}

#[test]
fn resume_refuses_another_search() {
    let dir = scratch("nsga2-mismatch");
    let path = dir.path().join("state.ron");
    let mut run = Nsga2::resume(SearchSpace::default(), params_vs_flops(), config(1), &path).unwrap();
    run.step().unwrap();
    let what = |result: Result<Nsga2<CountsEvaluator>>| match result {
        Err(Error::CheckpointMismatch { what, .. }) => what,
        Err(other) => panic!("expected CheckpointMismatch, got {other}"),
        Ok(_) => panic!("expected CheckpointMismatch, got a run"),
    };
    assert_eq!(what(Nsga2::resume(SearchSpace::default(), params_vs_flops(), config(2), &path)), "config");
    let other_space = SearchSpace { layers: vec![1, 2], ..SearchSpace::default() };
    assert_eq!(what(Nsga2::resume(other_space, params_vs_flops(), config(1), &path)), "search space");
    let flops = CountsEvaluator::new(&[(Count::Flops, Sense::Minimise), (Count::Params, Sense::Minimise)]);
    assert_eq!(what(Nsga2::resume(SearchSpace::default(), flops, config(1), &path)), "objective list");
    let limited =
        CountsEvaluator { limits: vec![CountLimit { count: Count::Params, limit: 1e7 }], ..params_vs_flops() };
    assert_eq!(what(Nsga2::resume(SearchSpace::default(), limited, config(1), &path)), "constraints");
    assert!(Nsga2::resume(SearchSpace::default(), params_vs_flops(), config(1), &path).is_ok());
}

#[test]
fn a_failed_step_changes_nothing() {
    struct FailsOnSixLayers(CountsEvaluator);
    impl Evaluator for FailsOnSixLayers {
        fn objectives(&self) -> Vec<ObjectiveSpec> {
            self.0.objectives()
        }
        fn evaluate(&self, arch: &Arch) -> Result<Evaluation> {
            if arch.layers == 6 {
                return Err(Error::InvalidEvaluation("six layers".into()));
            }
            self.0.evaluate(arch)
        }
    }
    let mut run = Nsga2::new(SearchSpace::default(), FailsOnSixLayers(params_vs_flops()), config(0)).unwrap();
    let before = run.state().clone();
    let err = run.step().unwrap_err();
    assert!(err.to_string().contains("L6-"), "{err}");
    assert_eq!(run.state(), &before);
}

#[test]
fn invalid_configs_name_the_field() {
    let field = |config: Nsga2Config| match Nsga2::new(SearchSpace::default(), params_vs_flops(), config) {
        Err(Error::InvalidConfig { field, .. }) => field,
        Err(other) => panic!("expected InvalidConfig, got {other}"),
        Ok(_) => panic!("expected InvalidConfig, got a run"),
    };
    assert_eq!(field(Nsga2Config { population: 0, ..config(0) }), "population");
    assert_eq!(field(Nsga2Config { offspring: Some(0), ..config(0) }), "offspring");
    assert_eq!(field(Nsga2Config { mutation_prob: 1.5, ..config(0) }), "mutation_prob");
    assert_eq!(field(Nsga2Config { crossover_prob: f64::NAN, ..config(0) }), "crossover_prob");
    assert_eq!(field(Nsga2Config { reference_point: Some(vec![1.0]), ..config(0) }), "reference_point");
    let population = config(0).population;
    assert_eq!(field(Nsga2Config { max_evaluations: Some(population - 1), ..config(0) }), "max_evaluations");
    assert!(
        Nsga2::new(
            SearchSpace::default(),
            params_vs_flops(),
            Nsga2Config { max_evaluations: Some(population), ..config(0) }
        )
        .is_ok()
    );
    let text = "(population: 10, generations: 5, seed: 3)";
    let parsed: Nsga2Config = ron::from_str(text).unwrap();
    assert_eq!(parsed, Nsga2Config::new(10, 5, 3));
    assert!(ron::from_str::<Nsga2Config>("(population: 10, generations: 5, seed: 3, elitism: true)").is_err());
}

#[test]
fn nsga2_beats_random_search_on_the_same_budget() {
    // Not a benchmark: a coarse check that selection does something, on five seeds together.
    let space = SearchSpace::default();
    let reference = params_vs_flops_reference(&space);
    let (mut nsga2, mut random) = (0.0, 0.0);
    for seed in 0..5 {
        let run = finished(Nsga2Config { generations: 20, ..config(seed) });
        let budget = run.state().cache().len();
        nsga2 += run.state().history().last().unwrap().hypervolume.unwrap();
        let config =
            RandomSearchConfig { reference_point: Some(reference.clone()), ..RandomSearchConfig::new(budget, seed) };
        random +=
            random_search(&space, &params_vs_flops(), &config).unwrap().history.last().unwrap().hypervolume.unwrap();
    }
    assert!(nsga2 > random, "NSGA-II {nsga2} vs random {random}");
}
