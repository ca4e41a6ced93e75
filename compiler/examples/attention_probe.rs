//! Times fused attention and its softmax alone: `cargo run --release -p compiler --example attention_probe`.
#![allow(clippy::unwrap_used)] // a tool: a failure should stop it loudly
use compiler::kernels::attention::{AttentionShape, attention};
use compiler::kernels::rows::softmax_rows;
use compiler::timing::time_runs;

fn main() {
    for (seq, heads, d) in [(128, 12, 32), (128, 12, 64), (128, 2, 64), (32, 2, 64)] {
        let width = heads * d;
        let qkv: Vec<f32> = (0..seq * 3 * width).map(|i| ((i * 31) % 17) as f32 * 0.05 - 0.4).collect();
        let mask = vec![1.0f32; seq];
        let mut out = vec![0.0f32; seq * width];
        let s = AttentionShape {
            batch: 1,
            seq,
            heads,
            head_dim: d,
            scale: 1.0 / (d as f32).sqrt(),
            q_ld: 3 * width,
            k_ld: 3 * width,
            v_ld: 3 * width,
            q_col: 0,
            k_col: width,
            v_col: 2 * width,
        };
        let t = time_runs(|| attention(&mut out, &qkv, &qkv, &qkv, &mask, s, 1), 10, 50, 0.3, 10000);
        let mut scores: Vec<f32> = (0..heads * seq * seq).map(|i| (i % 13) as f32 * 0.1).collect();
        let sm = time_runs(|| softmax_rows(&mut scores, seq), 10, 50, 0.3, 10000);
        let flops = 4.0 * (heads * seq * seq * d) as f64;
        println!(
            "seq {seq} heads {heads} d {d}: attention {:.4} ms ({:.1} GFLOP/s), softmax alone {:.4} ms",
            t.median_ms,
            flops / t.median_ms / 1e6,
            sm.median_ms
        );
    }
}
