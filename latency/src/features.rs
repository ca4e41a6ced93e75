//! The features a kernel's latency is modelled on, derived from its [`KernelKey`]: the work it
//! does (FLOPs, or elements for memory-bound kinds) first, then the dimensions of its shape that
//! decide how well that work maps onto the micro-kernels (panel counts, `k`-block remainders,
//! head sizes). Every kind has four, named by [`feature_names`].

use compiler::KernelKey;

/// Names of the four features of `kind`'s kernels, in the order [`features`] returns them.
pub fn feature_names(key: &KernelKey) -> [&'static str; 4] {
    match key {
        KernelKey::Gemm { .. } => ["flops", "n", "k", "m"],
        KernelKey::BatchedGemm { .. } => ["flops", "batch", "n", "k"],
        KernelKey::Attention { .. } => ["flops", "seq", "heads", "head_dim"],
        KernelKey::EmbedLayerNorm { .. } => ["elements", "tokens", "hidden", "parts"],
        KernelKey::AddLayerNorm { .. } | KernelKey::Primitive { .. } => ["elements", "rows", "width", "one"],
    }
}

/// The four features of a kernel (see [`feature_names`]). The first is always the work, which
/// the piecewise-linear family splits its pieces on.
pub fn features(key: &KernelKey) -> [f64; 4] {
    let f = |x: usize| x as f64;
    match *key {
        KernelKey::Gemm { m, n, k, .. } => [2.0 * f(m) * f(n) * f(k), f(n), f(k), f(m)],
        KernelKey::BatchedGemm { batch, m, n, k } => [2.0 * f(batch) * f(m) * f(n) * f(k), f(batch), f(n), f(k)],
        KernelKey::Attention { batch, seq, heads, head_dim } => {
            [4.0 * f(batch) * f(heads) * f(seq) * f(seq) * f(head_dim), f(seq), f(heads) * f(batch), f(head_dim)]
        }
        KernelKey::EmbedLayerNorm { tokens, hidden, parts } => [f(tokens * hidden), f(tokens), f(hidden), f(parts)],
        KernelKey::AddLayerNorm { rows, width } | KernelKey::Primitive { rows, width, .. } => {
            [f(rows * width), f(rows), f(width), 1.0]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gemm_features() {
        let key = KernelKey::Gemm { m: 2, n: 3, k: 4, epilogue: Default::default() };
        assert_eq!(features(&key), [48.0, 3.0, 4.0, 2.0]);
        assert_eq!(feature_names(&key), ["flops", "n", "k", "m"]);
    }
}
