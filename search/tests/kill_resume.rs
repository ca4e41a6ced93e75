//! A search killed with SIGKILL at random moments and resumed ends in exactly the state
//! (population, cache, RNG, history, hence front) of an uninterrupted run.
//!
//! The test binary re-invokes itself: with `CANAO_SEARCH_KILL_TEST` set, the `child_search` test
//! runs a slowed-down search that resumes from (and checkpoints to) the path in that variable;
//! without it, `child_search` does nothing.

#![allow(clippy::unwrap_used)] // A test that unwraps fails loudly, which is what it is for.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use arch::{Arch, SearchSpace};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use search::{
    Count, CountsEvaluator, Evaluation, Evaluator, Nsga2, Nsga2Config, Nsga2State, ObjectiveSpec, Result, Sense,
};

const CHILD_ENV: &str = "CANAO_SEARCH_KILL_TEST";
const GENERATIONS: usize = 40;

fn counts() -> CountsEvaluator {
    CountsEvaluator::new(&[(Count::Params, Sense::Minimise), (Count::Flops, Sense::Maximise)])
}

fn config() -> Nsga2Config {
    let space = SearchSpace::default();
    Nsga2Config {
        reference_point: Some(vec![space.largest().params() as f64 * 1.1, 0.0]),
        ..Nsga2Config::new(16, GENERATIONS, 99)
    }
}

/// The counts, slowed down so that a run lasts about a second and a kill lands mid-run.
struct Slow(CountsEvaluator);

impl Evaluator for Slow {
    fn objectives(&self) -> Vec<ObjectiveSpec> {
        self.0.objectives()
    }

    fn evaluate(&self, arch: &Arch) -> Result<Evaluation> {
        sleep(Duration::from_millis(2));
        self.0.evaluate(arch)
    }
}

#[test]
fn child_search() {
    let Ok(path) = std::env::var(CHILD_ENV) else { return };
    let mut run = Nsga2::resume(SearchSpace::default(), Slow(counts()), config(), path).unwrap();
    run.run().unwrap();
}

fn spawn_child(path: &Path, stdio: fn() -> Stdio) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_search", "--nocapture", "--test-threads", "1"])
        .env(CHILD_ENV, path)
        .stdout(stdio())
        .stderr(stdio())
        .spawn()
        .unwrap()
}

fn generation_at(path: &Path) -> Option<usize> {
    Nsga2State::load(path).unwrap().and_then(|s| s.generation())
}

#[test]
fn killed_and_resumed_search_ends_with_the_uninterrupted_state() {
    let mut uninterrupted = Nsga2::new(SearchSpace::default(), counts(), config()).unwrap();
    uninterrupted.run().unwrap();
    let expected = uninterrupted.state();

    // How long one child run takes here, to spread the kills over it.
    let scratch = tempfile::Builder::new().prefix("canao-search-kill-").tempdir().unwrap();
    let dir = scratch.path();
    let timed = dir.join("timed.ron");
    let start = Instant::now();
    assert!(spawn_child(&timed, Stdio::null).wait().unwrap().success());
    let run_ms = start.elapsed().as_millis() as u64;
    let timed_state = Nsga2State::load(&timed).unwrap().unwrap();
    assert_eq!(&timed_state, expected, "an uninterrupted child ends like the in-process run");

    let mut rng = ChaCha8Rng::seed_from_u64(2026);
    let mut mid_run_kills = 0;
    for scenario in 0..4 {
        let path: PathBuf = dir.join(format!("scenario-{scenario}.ron"));
        let mut kill_points = Vec::new();
        for _ in 0..3 {
            let mut child = spawn_child(&path, Stdio::null);
            sleep(Duration::from_millis(rng.random_range(0..run_ms / 2 + 1)));
            child.kill().unwrap(); // SIGKILL on unix
            child.wait().unwrap();
            let reached = generation_at(&path);
            if reached.is_some_and(|g| g < GENERATIONS) {
                mid_run_kills += 1;
            }
            kill_points.push(reached);
        }
        eprintln!(
            "scenario {scenario}: one run {run_ms} ms, last generation checkpointed at each kill {kill_points:?}"
        );
        let output = spawn_child(&path, Stdio::piped).wait_with_output().unwrap();
        assert!(output.status.success(), "resumed child failed: {}", String::from_utf8_lossy(&output.stderr));
        let state = Nsga2State::load(&path).unwrap().unwrap();
        assert_eq!(state.generation(), Some(GENERATIONS));
        assert_eq!(&state, expected, "scenario {scenario}, killed at generations {kill_points:?}");
    }
    assert!(mid_run_kills >= 4, "only {mid_run_kills} of 12 kills landed mid-run; the child runs too fast");
}
