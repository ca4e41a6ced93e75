//! Times single kernels in isolation: `cargo run --release -p compiler --example kernel_probe`.
#![allow(clippy::unwrap_used)] // a tool: a failure should stop it loudly
use compiler::ir::Activation;
use compiler::kernels::rows::activation;
use compiler::timing::time_runs;

fn main() {
    let n = 128 * 1024;
    let x: Vec<f32> = (0..n).map(|i| (i % 1000) as f32 * 0.01 - 5.0).collect();
    let mut out = vec![0.0f32; n];
    for act in [Activation::Gelu, Activation::Tanh] {
        let t = time_runs(|| activation(&mut out, &x, act), 10, 200, 0.5, 100_000);
        println!("{act:?}: {:.4} ms for {n} elements = {:.2} ns/element", t.median_ms, t.median_ms * 1e6 / n as f64);
    }
    let t = time_runs(|| out.iter_mut().zip(&x).for_each(|(o, v)| *o = v.exp()), 10, 200, 0.5, 100_000);
    println!("std exp: {:.4} ms", t.median_ms);
}
