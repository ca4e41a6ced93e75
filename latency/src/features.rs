//! The features a kernel's latency is modelled on, derived from its [`KernelKey`]: the named
//! dimensions of its shape plus work (FLOPs), memory traffic (bytes) and output elements. Every
//! kind uses the same schema so that a profile can state it once.

use compiler::KernelKey;

/// Names of the features, in the order [`features`] returns them.
pub const FEATURE_NAMES: [&str; 4] = ["flops", "bytes", "elements", "calls"];

/// `[flops, bytes, elements, calls]` of a kernel.
///
/// - `flops`: multiply-adds count 2 (GEMM products, attention's two products);
/// - `bytes`: f32 bytes that must cross memory at least once (operands and result);
/// - `elements`: output elements, which elementwise epilogues, softmax and norms touch;
/// - `calls`: inner products the kernel issues (attention: one per sequence and head), which
///   carry a fixed cost each.
pub fn features(key: &KernelKey) -> [f64; 4] {
    let f = |x: usize| x as f64;
    match *key {
        KernelKey::Gemm { m, n, k, .. } => [2.0 * f(m) * f(n) * f(k), 4.0 * f(m * k + n * k + m * n), f(m * n), 1.0],
        KernelKey::BatchedGemm { batch, m, n, k } => {
            [2.0 * f(batch) * f(m) * f(n) * f(k), 4.0 * f(batch) * f(m * k + n * k + m * n), f(batch * m * n), f(batch)]
        }
        KernelKey::Attention { batch, seq, heads, head_dim } => {
            let (b, s, h, d) = (f(batch), f(seq), f(heads), f(head_dim));
            [4.0 * b * h * s * s * d, 4.0 * (4.0 * b * s * h * d), b * h * s * s, b * h]
        }
        KernelKey::EmbedLayerNorm { tokens, hidden, parts } => {
            [f(tokens) * f(hidden) * (f(parts) + 8.0), 4.0 * f(tokens * hidden * (parts + 1)), f(tokens * hidden), 1.0]
        }
        KernelKey::AddLayerNorm { rows, width } => {
            [10.0 * f(rows * width), 12.0 * f(rows * width), f(rows * width), 1.0]
        }
        KernelKey::Primitive { rows, width, .. } => [f(rows * width), 8.0 * f(rows * width), f(rows * width), 1.0],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gemm_features() {
        let key = KernelKey::Gemm { m: 2, n: 3, k: 4, epilogue: Default::default() };
        assert_eq!(features(&key), [48.0, 4.0 * (8.0 + 12.0 + 6.0), 6.0, 1.0]);
    }
}
