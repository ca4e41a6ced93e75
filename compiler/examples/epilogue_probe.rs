//! Times one GEMM shape with each epilogue: `cargo run --release -p compiler --example epilogue_probe`.
#![allow(clippy::unwrap_used)] // a tool: a failure should stop it loudly
use compiler::ir::{Activation, Epilogue};
use compiler::kernels::gemm::{GemmPlan, Weight, linear};
use compiler::kernels::packed::PackedB;
use compiler::kernels::rows::EpilogueArgs;
use compiler::timing::time_runs;

fn main() {
    for (m, n, k) in [(32, 512, 128), (128, 1536, 384)] {
        let x: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 * 0.1).collect();
        let w: Vec<f32> = (0..n * k).map(|i| (i % 5) as f32 * 0.01).collect();
        let bias = vec![0.1f32; n];
        let packed = PackedB::pack(&w, n, k);
        let weight = Weight { raw: &w, packed: Some(&packed) };
        let mut out = vec![0.0f32; m * n];
        let plan = GemmPlan::heuristic(m, n, 1);
        for (name, e) in [
            ("plain", Epilogue::default()),
            ("bias", Epilogue { bias: true, ..Default::default() }),
            ("bias+gelu", Epilogue { bias: true, activation: Some(Activation::Gelu), ..Default::default() }),
        ] {
            let args = EpilogueArgs { bias: Some(&bias), ..Default::default() };
            let t = time_runs(|| linear(&mut out, &x, weight, m, n, k, &e, &args, plan, 1), 10, 100, 0.5, 100_000);
            println!("{m}x{n}x{k} {name:<10} {:.4} ms", t.median_ms);
        }
    }
}
