//! `cargo bench -p compiler`: compiled latency of the benchmark table, at 1 and 2 threads,
//! against the unfused program measured in the same run. Medians of at least 20 timed runs after
//! warm-up. The peers' numbers are the (best of ONNX Runtime and TFLite+XNNPACK on this
//! machine class); `benchmarks/peers.py` measures ONNX Runtime here.
#![allow(clippy::unwrap_used)] // a tool: a failure should stop it loudly

use arch::Arch;
use compiler::timing::time_runs;
use compiler::{Batch, CompileOptions, PassSelection, Tuning, Weights, compile};

const TABLE: [(&str, usize, f64, f64); 6] = [
    ("L2-H128-A2-F512", 32, 0.38, 0.23),
    ("L2-H128-A2-F512", 128, 1.57, 0.81),
    ("L4-H256-A4-F1024", 128, 11.3, 5.35),
    ("L4-H512-A8-F2048", 128, 41.2, 21.1),
    ("L6-H384-A12-F1536-D32", 128, 36.7, 18.4),
    ("L12-H768-A12-F3072", 128, 270.0, 134.0),
];

fn main() {
    // `cargo bench -- FILTER` keeps the rows whose arch contains FILTER.
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let cache = std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cache/canao/gemm-tuning.ron"));
    println!("machine: {}", compiler::tune::cpu_signature());
    println!(
        "{:<24} {:>4} {:>3} {:>10} {:>10} {:>8} {:>8} {:>10} {:>7}",
        "arch", "seq", "thr", "compiled", "unfused", "speedup", "GFLOP/s", "issue peer", "ratio"
    );
    for (name, seq, peer1, peer2) in TABLE {
        if filter.as_deref().is_some_and(|f| !name.contains(f)) {
            continue;
        }
        let mut arch = Arch::parse(name).expect("table arch");
        arch.seq_len = seq;
        let weights = Weights::random(&arch, 0);
        let input = Batch::synthetic(&arch, &[seq], 0);
        for (threads, peer) in [(1, peer1), (2, peer2)] {
            let tuning = Tuning::Auto { cache_file: cache.clone() };
            let options = CompileOptions { threads, tuning, ..Default::default() };
            let median = |passes: PassSelection| {
                let options = CompileOptions { passes, ..options.clone() };
                let mut program = compile(&arch, &weights, &options).expect("compile");
                time_runs(|| drop(program.run(&input).expect("run")), 5, 20, 1.0, 2000).median_ms
            };
            let fused = median(PassSelection::All);
            let unfused = median(PassSelection::None);
            let gflops = arch.flops(1) as f64 / (fused * 1e-3) / 1e9;
            println!(
                "{name:<24} {seq:>4} {threads:>3} {fused:>8.3}ms {unfused:>8.3}ms {:>7.2}x {gflops:>8.1} {peer:>8.2}ms {:>6.2}x",
                unfused / fused,
                peer / fused
            );
        }
    }
}
