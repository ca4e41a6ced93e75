//! `canao bench`: the compiled program's latency, against the unfused program in the same run.

use anyhow::Result;
use compiler::timing::{CpuSample, Timing, time_runs};
use compiler::{Batch, CompileOptions, PassSelection, Program, Tuning, Weights, compile};
use serde_json::json;

use crate::io::{ArchArgs, parse_arch, print_json, threads_label, tuning_cache};

/// Measure the compiled latency of an architecture on this machine (random weights).
///
/// Prints the median latency of the compiled program (after warm-up, at least --runs timed runs),
/// its attained GFLOP/s, and its speed-ups over the unfused program (every op its own kernel, same
/// GEMM micro-kernels) and over a burn eager forward of the same arch and weights, both measured
/// in the same run.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    target: ArchArgs,
    /// Worker threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Minimum number of timed runs.
    #[arg(long, default_value_t = 20)]
    runs: usize,
    /// Mode timing until this many seconds have passed (at most 2000 runs).
    #[arg(long, default_value_t = 1.0)]
    min_secs: f64,
    /// Untimed warm-up runs.
    #[arg(long, default_value_t = 5)]
    warmup: usize,
    /// Use the fixed GEMM heuristic instead of tuning on this machine.
    #[arg(long)]
    no_tune: bool,
    /// Pin worker thread i to CPU i.
    #[arg(long)]
    pin_threads: bool,
    /// Skip the baselines (unfused program, burn eager).
    #[arg(long)]
    no_baseline: bool,
    /// Also time every kernel and print the breakdown.
    #[arg(long)]
    breakdown: bool,
    /// Print one JSON object as the last line.
    #[arg(long)]
    json: bool,
}

/// How long to time something: untimed warm-up runs, then at least `runs` timed runs and until
/// `min_secs` have passed (at most 2000 runs).
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub warmup: usize,
    pub runs: usize,
    pub min_secs: f64,
}

/// Times `run`, stopping at its first error.
fn time_fallible<E>(
    mut run: impl FnMut() -> std::result::Result<(), E>,
    budget: Budget,
) -> std::result::Result<Timing, E> {
    run()?;
    let mut failure = None;
    let timing = time_runs(
        || {
            if let Err(e) = run() {
                failure.get_or_insert(e);
            }
        },
        budget.warmup,
        budget.runs,
        budget.min_secs,
        2000,
    );
    failure.map_or(Ok(timing), Err)
}

/// The median latency of a compiled program on `input`.
pub fn time_program(program: &mut Program, input: &Batch, budget: Budget) -> Result<Timing> {
    Ok(time_fallible(|| program.run(input).map(drop), budget)?)
}

/// The same arch and weights as a burn eager forward (`supernet::Supernet` on the flex backend), run
/// inside a pool of `threads` threads.
pub fn time_eager(
    arch: &arch::Arch,
    weights: &Weights,
    input: &Batch,
    threads: usize,
    budget: Budget,
) -> Result<Timing> {
    let tensors: Vec<(String, Vec<usize>, Vec<f32>)> = weights
        .names()
        .filter_map(|n| weights.find(n).map(|t| (n.to_string(), t.shape.clone(), t.data.to_vec())))
        .collect();
    let net = supernet::Supernet::from_tensors(arch, 1e-12, tensors, &burn::tensor::Device::flex())?;
    let batch = supernet::Batch::unlabelled(input.ids.clone(), input.types.clone(), input.mask.clone(), arch.seq_len);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build()?;
    pool.install(|| {
        time_fallible(
            || -> Result<()> {
                net.forward(&batch, arch, supernet::Mode::default())?.logits.into_data();
                Ok(())
            },
            budget,
        )
    })
}

pub fn run(args: Args) -> Result<()> {
    let arch = parse_arch(&args.target.arch, args.target.seq)?;
    let weights = Weights::random(&arch, 0);
    let input = Batch::synthetic(&arch, &vec![arch.seq_len; args.target.batch], 0);
    let budget = Budget { warmup: args.warmup, runs: args.runs, min_secs: args.min_secs };
    let tuning = if args.no_tune { Tuning::Off } else { Tuning::Auto { cache_file: Some(tuning_cache()) } };
    let options = CompileOptions {
        batch: args.target.batch,
        threads: args.threads,
        tuning,
        pin_threads: args.pin_threads,
        ..Default::default()
    };
    if !args.json {
        eprintln!(
            "compiling {arch} (seq {}, batch {}, {})…",
            arch.seq_len,
            args.target.batch,
            threads_label(args.threads)
        );
    }
    let mut program = compile(&arch, &weights, &options)?;
    let start = CpuSample::now();
    let fused = time_program(&mut program, &input, budget)?;
    let flops = arch.flops(args.target.batch) as f64;
    let gflops = flops / (fused.median_ms * 1e-3) / 1e9;
    let unfused = if args.no_baseline {
        None
    } else {
        let options = CompileOptions { passes: PassSelection::None, ..options.clone() };
        let mut baseline = compile(&arch, &weights, &options)?;
        Some(time_program(&mut baseline, &input, budget)?)
    };
    let others_busy = start.and_then(|s| CpuSample::now().map(|e| e.others_busy_since(&s)));
    let eager = if args.no_baseline { None } else { Some(time_eager(&arch, &weights, &input, args.threads, budget)?) };
    let cpu = compiler::tune::cpu_signature();
    println!("arch        {arch}  seq {}  batch {}  threads {}", arch.seq_len, args.target.batch, args.threads);
    println!("machine     {cpu}");
    println!(
        "compiled    median {:.3} ms  (p10 {:.3}, p90 {:.3}, {} runs)  {:.1} GFLOP/s  {} kernels",
        fused.median_ms,
        fused.p10_ms,
        fused.p90_ms,
        fused.runs,
        gflops,
        program.kernels().len()
    );
    if let Some(u) = &unfused {
        println!(
            "unfused     median {:.3} ms  → compiled is {:.2}× faster",
            u.median_ms,
            u.median_ms / fused.median_ms
        );
    }
    let breakdown = if args.breakdown { Some(program.profile(&input, args.runs.max(20))?) } else { None };
    if let Some(times) = &breakdown {
        let times: Vec<f64> = times.iter().map(|t| t.median_ms).collect();
        let total: f64 = times.iter().sum();
        println!("per kernel (median ms, share of the summed medians {total:.3} ms):");
        for (kernel, ms) in program.kernels().iter().zip(&times) {
            let gf = kernel.key.flops() as f64 / (ms * 1e-3) / 1e9;
            println!("  {ms:>8.4} {:>5.1}%  {:>6.1} GFLOP/s  {}", 100.0 * ms / total, gf, kernel.key);
        }
    }
    if let Some(busy) = others_busy.filter(|&b| b > compiler::tune::BUSY_LIMIT) {
        println!("warning     other processes used {:.0}% of the CPUs during the measurement", busy * 100.0);
    }
    if let Some(e) = &eager {
        println!(
            "burn eager  median {:.3} ms  → compiled is {:.2}× faster (burn 0.22 flex, same weights)",
            e.median_ms,
            e.median_ms / fused.median_ms
        );
    }
    if args.json {
        print_json(&json!({
            "arch": arch.to_string(),
            "seq": arch.seq_len,
            "batch": args.target.batch,
            "threads": args.threads,
            "machine": cpu,
            "compiled": fused,
            "gflops": gflops,
            "kernels": program.kernels().len(),
            "peak_activation_bytes": program.peak_activation_bytes(),
            "unfused": unfused,
            "speedup_vs_unfused": unfused.map(|u| u.median_ms / fused.median_ms),
            "burn_eager": eager,
            "speedup_vs_burn_eager": eager.map(|e| e.median_ms / fused.median_ms),
            "others_busy": others_busy,
            "breakdown": breakdown.map(|t| program.kernels().iter().zip(t).map(|(k, t)| json!({"kernel": k.key.to_string(), "median_ms": t.median_ms})).collect::<Vec<_>>()),
        }));
    }
    Ok(())
}
