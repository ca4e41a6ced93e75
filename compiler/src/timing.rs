//! Wall-clock timing with warm-up and medians, shared by `canao bench`, the tuner and calibration.

use std::time::Instant;

use serde::Serialize;

/// Summary of repeated timings, in milliseconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Timing {
    pub median_ms: f64,
    pub p10_ms: f64,
    pub p90_ms: f64,
    pub runs: usize,
}

/// Times `f`: `warmup` untimed calls, then at least `min_runs` timed calls and until `min_secs`
/// have passed (at most `max_runs`).
pub fn time_runs(mut f: impl FnMut(), warmup: usize, min_runs: usize, min_secs: f64, max_runs: usize) -> Timing {
    for _ in 0..warmup {
        f();
    }
    let mut times = Vec::new();
    let start = Instant::now();
    while times.len() < min_runs.max(1) || (start.elapsed().as_secs_f64() < min_secs && times.len() < max_runs) {
        let t = Instant::now();
        f();
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    summarize(&mut times)
}

/// Median and 10th/90th percentiles of `times` (sorted in place).
pub fn summarize(times: &mut [f64]) -> Timing {
    times.sort_by(f64::total_cmp);
    let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    let median = if times.len() % 2 == 1 {
        times[times.len() / 2]
    } else {
        (times[times.len() / 2 - 1] + times[times.len() / 2]) / 2.0
    };
    Timing { median_ms: median, p10_ms: at(0.1), p90_ms: at(0.9), runs: times.len() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_percentiles() {
        let mut t = [5.0, 1.0, 3.0, 2.0, 4.0];
        let s = summarize(&mut t);
        assert_eq!((s.median_ms, s.p10_ms, s.p90_ms, s.runs), (3.0, 1.0, 5.0, 5));
        let mut t = [4.0, 1.0, 3.0, 2.0];
        assert_eq!(summarize(&mut t).median_ms, 2.5);
    }
}
