//! [`KernelKey`]: what a kernel is (its kind) and the shape it runs at. The latency predictor is
//! built on these: one model per kind, fed with the named dimensions of [`KernelKey::dims`].

use serde::{Deserialize, Serialize};

use crate::ir::Epilogue;

/// A primitive (unfused) op, for keys of kernels that run unfused graphs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum PrimitiveOp {
    Gather,
    Add,
    BiasAdd,
    Gelu,
    Tanh,
    Scale,
    MaskAdd,
    Softmax,
    LayerNorm,
    Slice,
    SplitHeads,
    MergeHeads,
    FirstToken,
    MeanPool,
}

/// A kernel's kind and shape. Shapes are in elements; `m×k · k×n` for GEMMs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KernelKey {
    /// A weight GEMM with its fused epilogue.
    Gemm { m: usize, n: usize, k: usize, epilogue: Epilogue },
    /// Independent GEMMs over `batch` (unfused attention's `q·kᵀ` and `p·v`).
    BatchedGemm { batch: usize, m: usize, n: usize, k: usize },
    /// Fused attention of one layer.
    Attention { batch: usize, seq: usize, heads: usize, head_dim: usize },
    /// Fused embedding gathers, sum and LayerNorm.
    EmbedLayerNorm { tokens: usize, hidden: usize, parts: usize },
    /// Fused residual add and LayerNorm.
    AddLayerNorm { rows: usize, width: usize },
    /// Any unfused op over `rows` rows of `width` elements.
    Primitive { op: PrimitiveOp, rows: usize, width: usize },
}

impl KernelKey {
    /// The kind: what the latency model is fitted per (e.g. `gemm[bias+gelu]`, `attention`).
    pub fn kind(&self) -> String {
        match self {
            KernelKey::Gemm { epilogue, .. } => format!("gemm[{}]", epilogue.label()),
            KernelKey::BatchedGemm { .. } => "batched_gemm".into(),
            KernelKey::Attention { .. } => "attention".into(),
            KernelKey::EmbedLayerNorm { .. } => "embed_layer_norm".into(),
            KernelKey::AddLayerNorm { .. } => "add_layer_norm".into(),
            KernelKey::Primitive { op, .. } => format!("{op:?}").to_lowercase(),
        }
    }

    /// The shape as named dimensions, in a fixed order per kind.
    pub fn dims(&self) -> Vec<(&'static str, usize)> {
        match *self {
            KernelKey::Gemm { m, n, k, .. } => vec![("m", m), ("n", n), ("k", k)],
            KernelKey::BatchedGemm { batch, m, n, k } => vec![("batch", batch), ("m", m), ("n", n), ("k", k)],
            KernelKey::Attention { batch, seq, heads, head_dim } => {
                vec![("batch", batch), ("seq", seq), ("heads", heads), ("head_dim", head_dim)]
            }
            KernelKey::EmbedLayerNorm { tokens, hidden, parts } => {
                vec![("tokens", tokens), ("hidden", hidden), ("parts", parts)]
            }
            KernelKey::AddLayerNorm { rows, width } | KernelKey::Primitive { rows, width, .. } => {
                vec![("rows", rows), ("width", width)]
            }
        }
    }

    /// Floating-point operations (a multiply-add is 2), counting only the arithmetic that
    /// dominates: GEMM products and attention's two products.
    pub fn flops(&self) -> u64 {
        let f = |x: usize| x as u64;
        match *self {
            KernelKey::Gemm { m, n, k, .. } => 2 * f(m) * f(n) * f(k),
            KernelKey::BatchedGemm { batch, m, n, k } => 2 * f(batch) * f(m) * f(n) * f(k),
            KernelKey::Attention { batch, seq, heads, head_dim } => {
                4 * f(batch) * f(heads) * f(seq) * f(seq) * f(head_dim)
            }
            KernelKey::EmbedLayerNorm { tokens, hidden, parts } => f(tokens) * f(hidden) * (f(parts) + 8),
            KernelKey::AddLayerNorm { rows, width } | KernelKey::Primitive { rows, width, .. } => f(rows) * f(width),
        }
    }
}

impl std::fmt::Display for KernelKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let dims: Vec<String> = self.dims().iter().map(|(name, v)| format!("{name}={v}")).collect();
        write!(f, "{}({})", self.kind(), dims.join(","))
    }
}
