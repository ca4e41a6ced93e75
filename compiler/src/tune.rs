//! Auto-tuning of GEMM schedules on the running machine.
//!
//! For each GEMM shape `(m, n, k)` and thread count, candidate [`GemmPlan`]s (row-block heights,
//! rows split over threads or the product split inside the `gemm` crate) are timed on random data
//! and the fastest kept. Results live in a process-wide cache and, when a cache file is given, are
//! saved there (written to a temporary file, then renamed) tagged with the CPU they were measured
//! on; a file from another CPU is ignored.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::ir::Epilogue;
use crate::kernels::gemm::{GemmKernel, GemmPlan, Split, Weight, linear};
use crate::kernels::packed::{self, PackedB};
use crate::kernels::rows::EpilogueArgs;
use crate::timing::CpuSample;

/// A tuned shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct GemmShape {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub threads: usize,
}

/// The on-disk form of the cache.
#[derive(Debug, Default, Serialize, Deserialize)]
struct TuningFile {
    version: u32,
    cpu: String,
    plans: Vec<(GemmShape, GemmPlan)>,
}

const FORMAT_VERSION: u32 = 5;

#[derive(Default)]
struct Cache {
    plans: BTreeMap<GemmShape, GemmPlan>,
    loaded: Option<PathBuf>,
}

fn cache() -> &'static Mutex<Cache> {
    static CACHE: OnceLock<Mutex<Cache>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(Cache::default()))
}

/// A description of this CPU (model name and SIMD level) that tuning results are tagged with.
pub fn cpu_signature() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let simd = if crate::kernels::simd::has_avx2_fma() { "avx2+fma" } else { "baseline" };
    format!("{model} ({simd})")
}

/// Makes `plans` (e.g. a device profile's) the choice for their shapes in this process.
pub fn preload(plans: &[(GemmShape, GemmPlan)]) {
    if let Ok(mut c) = cache().lock() {
        c.plans.extend(plans.iter().copied());
    }
}

/// Every plan tuned so far in this process, for the latency profile to record.
pub fn tuned_plans() -> Vec<(GemmShape, GemmPlan)> {
    cache().lock().map(|c| c.plans.iter().map(|(s, p)| (*s, *p)).collect()).unwrap_or_default()
}

fn load(path: &Path, cache: &mut Cache) {
    if cache.loaded.as_deref() == Some(path) {
        return;
    }
    cache.loaded = Some(path.to_path_buf());
    let Ok(text) = std::fs::read_to_string(path) else { return };
    match ron::from_str::<TuningFile>(&text) {
        Ok(file) if file.version == FORMAT_VERSION && file.cpu == cpu_signature() => {
            cache.plans.extend(file.plans);
        }
        Ok(_) => tracing::info!(path = %path.display(), "tuning cache is for another CPU or version; retuning"),
        Err(e) => tracing::warn!(path = %path.display(), error = %e, "unreadable tuning cache; retuning"),
    }
}

fn save(path: &Path, cache: &Cache) {
    let file = TuningFile {
        version: FORMAT_VERSION,
        cpu: cpu_signature(),
        plans: cache.plans.iter().map(|(s, p)| (*s, *p)).collect(),
    };
    let Ok(text) = ron::ser::to_string_pretty(&file, ron::ser::PrettyConfig::default()) else { return };
    let tmp = path.with_extension("ron.tmp");
    let result = path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|_| std::fs::write(&tmp, text))
        .and_then(|_| std::fs::rename(&tmp, path));
    if let Err(e) = result {
        tracing::warn!(path = %path.display(), error = %e, "could not save the tuning cache");
    }
}

/// The plan for `shape`: from the cache, or tuned now (the caller runs inside the program's
/// thread pool, so candidates are timed with the threads they will run with).
///
/// A plan tuned while other processes kept the CPUs busy (more than [`BUSY_LIMIT`] of their
/// time) is used by this process but not saved: on a shared machine such a choice reflects the
/// neighbours, not the machine, and a later quiet run retunes.
pub fn gemm_plan(shape: GemmShape, cache_file: Option<&Path>) -> GemmPlan {
    if let Ok(mut c) = cache().lock() {
        if let Some(path) = cache_file {
            load(path, &mut c);
        }
        if let Some(plan) = c.plans.get(&shape) {
            return *plan;
        }
    }
    let before = CpuSample::now();
    let plan = measure(shape);
    let busy = before.and_then(|b| CpuSample::now().map(|a| a.others_busy_since(&b)));
    if let Ok(mut c) = cache().lock() {
        c.plans.insert(shape, plan);
        match (cache_file, busy) {
            (Some(path), Some(busy)) if busy <= BUSY_LIMIT => save(path, &c),
            (Some(path), busy) => {
                // Once per process at warning level; the shapes follow at debug level.
                static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
                if !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
                    tracing::warn!(
                        others_busy = ?busy,
                        path = %path.display(),
                        "other processes kept the CPUs busy while tuning: plans are used but not cached"
                    );
                }
                tracing::debug!(?shape, others_busy = ?busy, "tuned on a busy machine; not cached");
            }
            (None, _) => {}
        }
    }
    plan
}

/// Share of the machine's CPU time that other processes may take while a shape is tuned before
/// its result counts as disturbed.
pub const BUSY_LIMIT: f64 = 0.15;

/// Candidate plans for a shape.
pub fn candidates(shape: GemmShape) -> Vec<GemmPlan> {
    let mut blocks: Vec<usize> = [16, 32, 64, 128, 256].into_iter().filter(|&b| b < shape.m).collect();
    blocks.push(shape.m.max(1));
    if shape.threads > 1 {
        let even = shape.m.div_ceil(shape.threads);
        if !blocks.contains(&even) {
            blocks.push(even);
        }
    }
    let mut out = Vec::new();
    let crate_plan = |row_block, split| GemmPlan { kernel: GemmKernel::Crate, row_block, kc: 0, split };
    for &row_block in &blocks {
        out.push(crate_plan(row_block, Split::Rows));
        if shape.threads > 1 {
            out.push(crate_plan(row_block, Split::Cols));
            if row_block >= 32 {
                out.push(crate_plan(row_block, Split::Inner));
            }
        }
    }
    if packed::available() {
        let splits: &[Split] =
            if shape.threads > 1 { &[Split::Rows, Split::Cols, Split::Serial] } else { &[Split::Rows] };
        for kc in [128, 256, 512, 1024].into_iter().filter(|&kc| kc <= shape.k.next_power_of_two().max(128)) {
            for &split in splits {
                out.push(GemmPlan { kernel: GemmKernel::Packed, row_block: shape.m, kc, split });
            }
        }
    }
    if shape.threads > 1 {
        // Rows split into fewer blocks than threads leaves threads idle.
        out.retain(|p| {
            p.kernel == GemmKernel::Packed || p.split != Split::Rows || shape.m.div_ceil(p.row_block) >= shape.threads
        });
    }
    out
}

/// Times every candidate in interleaved rounds (so that a burst of load elsewhere hurts all
/// candidates alike) and keeps the one with the lowest median.
fn measure(shape: GemmShape) -> GemmPlan {
    let GemmShape { m, n, k, threads } = shape;
    let x: Vec<f32> = (0..m * k).map(|i| ((i * 7919) % 1000) as f32 * 1e-3 - 0.5).collect();
    let w: Vec<f32> = (0..n * k).map(|i| ((i * 104_729) % 1000) as f32 * 1e-3 - 0.5).collect();
    let packed = PackedB::pack(&w, n, k);
    let w = Weight { raw: &w, packed: Some(&packed) };
    let mut out = vec![0.0f32; m * n];
    let epilogue = Epilogue::default();
    let args = EpilogueArgs::default();
    let flops = 2.0 * (m * n * k) as f64;
    // About 30 ms of work per candidate in all, at least 7 samples.
    let rounds = (3e9 / flops).clamp(7.0, 41.0) as usize;
    let plans = candidates(shape);
    let mut samples = vec![Vec::with_capacity(rounds); plans.len()];
    for plan in &plans {
        linear(&mut out, &x, w, m, n, k, &epilogue, &args, *plan, threads);
    }
    for _ in 0..rounds {
        for (plan, times) in plans.iter().zip(samples.iter_mut()) {
            let t = Instant::now();
            linear(&mut out, &x, w, m, n, k, &epilogue, &args, *plan, threads);
            times.push(t.elapsed().as_secs_f64());
        }
    }
    let mut best = (f64::INFINITY, GemmPlan::heuristic(m, n, threads));
    for (plan, times) in plans.iter().zip(samples.iter_mut()) {
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        if median < best.0 {
            best = (median, *plan);
        }
    }
    tracing::debug!(?shape, plan = ?best.1, seconds = best.0, "tuned gemm");
    best.1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::Activation;

    /// Every candidate schedule computes the same fused GEMM (bias, GELU, residual, LayerNorm).
    #[test]
    fn every_candidate_plan_computes_the_same_result() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        for (m, n, k) in [(1, 8, 3), (13, 40, 33), (37, 100, 70)] {
            let x: Vec<f32> = (0..m * k).map(|i| ((i * 37) % 11) as f32 * 0.1 - 0.5).collect();
            let w: Vec<f32> = (0..n * k).map(|i| ((i * 53) % 7) as f32 * 0.1 - 0.3).collect();
            let bias: Vec<f32> = (0..n).map(|i| i as f32 * 0.01).collect();
            let residual: Vec<f32> = (0..m * n).map(|i| (i % 5) as f32 * 0.2).collect();
            let (gamma, beta) = (vec![1.5f32; n], vec![0.25f32; n]);
            let packed = PackedB::pack(&w, n, k);
            let weight = Weight { raw: &w, packed: Some(&packed) };
            let epilogue = Epilogue {
                bias: true,
                activation: Some(Activation::Gelu),
                residual: true,
                layer_norm_eps_bits: Some(1e-5f32.to_bits()),
            };
            let args = EpilogueArgs { bias: Some(&bias), residual: Some(&residual), gamma_beta: Some((&gamma, &beta)) };
            for threads in [1, 2] {
                let mut reference = None;
                for plan in candidates(GemmShape { m, n, k, threads }) {
                    let mut out = vec![f32::NAN; m * n];
                    pool.install(|| linear(&mut out, &x, weight, m, n, k, &epilogue, &args, plan, threads));
                    let want = reference.get_or_insert_with(|| out.clone());
                    let err = out.iter().zip(want.iter()).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
                    assert!(err < 1e-4, "({m},{n},{k}) threads {threads} {plan:?}: differs by {err}");
                }
            }
        }
    }

    #[test]
    fn tuning_picks_a_candidate_and_caches_it() {
        let shape = GemmShape { m: 8, n: 32, k: 16, threads: 1 };
        let plan = gemm_plan(shape, None);
        assert!(candidates(shape).contains(&plan));
        assert!(tuned_plans().contains(&(shape, plan)));
    }
}
