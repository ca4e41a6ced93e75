//! How fast archs lower and fuse: `cargo run --release -p compiler --example optimize_speed`.
#![allow(clippy::unwrap_used)] // a tool: a failure should stop it loudly
use arch::SearchSpace;
use compiler::{CompileOptions, fused_graph, kernel_keys};
use rand::SeedableRng;

fn main() {
    let space = SearchSpace::default();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let archs: Vec<_> = (0..2000).map(|_| space.sample(&mut rng)).collect();
    let start = std::time::Instant::now();
    let mut kernels = 0;
    for a in &archs {
        kernels += kernel_keys(&fused_graph(a, &CompileOptions::default()).unwrap()).len();
    }
    let secs = start.elapsed().as_secs_f64();
    println!("{} archs in {secs:.3}s = {:.0} archs/s ({kernels} kernels)", archs.len(), archs.len() as f64 / secs);
}
