//! Probes GEMM schedules: `cargo run --release -p compiler --example gemm_probe`.
#![allow(clippy::unwrap_used)] // a tool: a failure should stop it loudly
use compiler::ir::Epilogue;
use compiler::kernels::gemm::{GemmKernel, GemmPlan, Split, Weight, linear};
use compiler::kernels::packed::PackedB;
use compiler::kernels::rows::EpilogueArgs;
use compiler::timing::time_runs;

fn main() {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    for (m, n, k) in
        [(128, 768, 256), (128, 1024, 256), (128, 256, 1024), (32, 512, 128), (128, 3072, 768), (128, 768, 3072)]
    {
        let x: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 * 0.1).collect();
        let w: Vec<f32> = (0..n * k).map(|i| (i % 5) as f32 * 0.1).collect();
        let packed = PackedB::pack(&w, n, k);
        let w = Weight { raw: &w, packed: Some(&packed) };
        let mut out = vec![0.0f32; m * n];
        let e = Epilogue::default();
        let a = EpilogueArgs::default();
        let flops = 2.0 * (m * n * k) as f64;
        let mut line = format!("{m}x{n}x{k}:");
        for (threads, plan) in [
            (1, GemmPlan { kernel: GemmKernel::Crate, row_block: m, kc: 0, split: Split::Rows }),
            (1, GemmPlan { kernel: GemmKernel::Packed, row_block: m, kc: 256, split: Split::Rows }),
            (2, GemmPlan { kernel: GemmKernel::Crate, row_block: m / 2, kc: 0, split: Split::Rows }),
            (2, GemmPlan { kernel: GemmKernel::Crate, row_block: m, kc: 0, split: Split::Cols }),
            (2, GemmPlan { kernel: GemmKernel::Packed, row_block: m, kc: 256, split: Split::Rows }),
            (2, GemmPlan { kernel: GemmKernel::Packed, row_block: m, kc: 256, split: Split::Cols }),
        ] {
            let t = pool
                .install(|| time_runs(|| linear(&mut out, &x, w, m, n, k, &e, &a, plan, threads), 5, 30, 0.3, 10000));
            line += &format!("  t{threads} {:?} {:?}: {:.1}", plan.kernel, plan.split, flops / t.median_ms / 1e6);
        }
        println!("{line}");
    }
}
