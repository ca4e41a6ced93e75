//! Probes GEMM schedules: `cargo run --release -p compiler --example gemm_probe -- M N K`.
#![allow(clippy::unwrap_used)] // a tool: a failure should stop it loudly
use compiler::ir::Epilogue;
use compiler::kernels::gemm::{GemmKernel, GemmPlan, Split, Weight, linear};
use compiler::kernels::packed::PackedB;
use compiler::kernels::rows::EpilogueArgs;
use compiler::timing::time_runs;

fn main() {
    let dims: Vec<usize> = std::env::args().skip(1).map(|a| a.parse().unwrap()).collect();
    let (m, n, k) = (dims[0], dims[1], dims[2]);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    let x: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 * 0.1).collect();
    let w: Vec<f32> = (0..n * k).map(|i| (i % 5) as f32 * 0.1).collect();
    let packed = PackedB::pack(&w, n, k);
    let w = Weight { raw: &w, packed: Some(&packed) };
    let mut out = vec![0.0f32; m * n];
    let (e, a) = (Epilogue::default(), EpilogueArgs::default());
    let flops = 2.0 * (m * n * k) as f64;
    for threads in [1, 2] {
        for split in [Split::Rows, Split::Cols] {
            for kc in [64, 128, 256, 512, 1024] {
                let plan = GemmPlan { kernel: GemmKernel::Packed, row_block: m, kc, split };
                let t = pool.install(|| {
                    time_runs(|| linear(&mut out, &x, w, m, n, k, &e, &a, plan, threads), 3, 20, 0.3, 10000)
                });
                println!("{m}x{n}x{k} t{threads} {split:?} kc{kc}: {:.1} GFLOP/s", flops / t.median_ms / 1e6);
            }
        }
    }
}
