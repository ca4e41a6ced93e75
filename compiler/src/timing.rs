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

/// CPU time counters: the whole machine's (from `/proc/stat`) and this process's, to tell
/// whether other processes disturbed a measurement.
pub struct CpuSample {
    machine_busy: u64,
    machine_total: u64,
    own: u64,
}

impl CpuSample {
    /// `None` where `/proc` is unavailable.
    pub fn now() -> Option<CpuSample> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let fields: Vec<u64> = stat.lines().next()?.split_whitespace().skip(1).filter_map(|f| f.parse().ok()).collect();
        let total: u64 = fields.iter().take(8).sum();
        let idle = fields.get(3)? + fields.get(4).copied().unwrap_or(0);
        let own_stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
        let after = own_stat.rsplit_once(')')?.1;
        let own: Vec<u64> = after.split_whitespace().skip(11).take(2).filter_map(|f| f.parse().ok()).collect();
        Some(CpuSample { machine_busy: total - idle, machine_total: total, own: own.iter().sum() })
    }

    /// Share of all CPU time since `earlier` that went to other processes.
    pub fn others_busy_since(&self, earlier: &CpuSample) -> f64 {
        let total = self.machine_total.saturating_sub(earlier.machine_total).max(1);
        let busy = self.machine_busy.saturating_sub(earlier.machine_busy);
        let own = self.own.saturating_sub(earlier.own);
        busy.saturating_sub(own) as f64 / total as f64
    }
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

    /// A spinning child process is seen as another process keeping the CPUs busy.
    #[test]
    #[cfg(target_os = "linux")]
    fn a_busy_neighbour_is_noticed() {
        let before = CpuSample::now().unwrap();
        let mut child = std::process::Command::new("sh").args(["-c", "while :; do :; done"]).spawn().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(600));
        let after = CpuSample::now().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        let busy = after.others_busy_since(&before);
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        assert!(busy >= 0.5 / cpus && busy <= 1.0, "others busy {busy}");
    }
}
