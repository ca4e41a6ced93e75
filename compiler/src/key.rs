//! [`KernelKey`]: what a kernel is (its kind) and the shape it runs at. The latency predictor is
//! built on these: one model per kind, fed with the named dimensions of [`KernelKey::dims`].

use serde::{Deserialize, Serialize};

use crate::ir::{Epilogue, Graph, Op};

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
    /// The key of the kernel computing `op` over inputs of `shapes` into `out` (`seq` tokens per
    /// sequence).
    pub fn of(op: &Op, shapes: &[Vec<usize>], out: &[usize], seq: usize) -> KernelKey {
        let rows = out.iter().rev().skip(1).product();
        let width = out.last().copied().unwrap_or(1);
        let prim = |op| KernelKey::Primitive { op, rows, width };
        match op {
            Op::MatMul => KernelKey::Gemm { m: out[0], n: out[1], k: shapes[0][1], epilogue: Default::default() },
            Op::Gemm(epilogue) => KernelKey::Gemm { m: out[0], n: out[1], k: shapes[0][1], epilogue: *epilogue },
            Op::QkT => KernelKey::BatchedGemm { batch: out[0] * out[1], m: out[2], n: out[3], k: shapes[0][3] },
            Op::AttnV => KernelKey::BatchedGemm { batch: out[0] * out[1], m: out[2], n: out[3], k: shapes[0][3] },
            Op::Attention { heads, head_dim, .. } => {
                KernelKey::Attention { batch: out[0] / seq, seq, heads: *heads, head_dim: *head_dim }
            }
            Op::EmbedLayerNorm { parts, .. } => {
                KernelKey::EmbedLayerNorm { tokens: out[0], hidden: out[1], parts: *parts }
            }
            Op::AddLayerNorm { .. } => KernelKey::AddLayerNorm { rows, width },
            Op::Gather => prim(PrimitiveOp::Gather),
            Op::Add => prim(PrimitiveOp::Add),
            Op::BiasAdd => prim(PrimitiveOp::BiasAdd),
            Op::Gelu => prim(PrimitiveOp::Gelu),
            Op::Tanh => prim(PrimitiveOp::Tanh),
            Op::Scale { .. } => prim(PrimitiveOp::Scale),
            Op::MaskAdd => prim(PrimitiveOp::MaskAdd),
            Op::Softmax => prim(PrimitiveOp::Softmax),
            Op::LayerNorm { .. } => prim(PrimitiveOp::LayerNorm),
            Op::Slice { .. } => prim(PrimitiveOp::Slice),
            Op::SplitHeads { .. } => prim(PrimitiveOp::SplitHeads),
            Op::MergeHeads { .. } => prim(PrimitiveOp::MergeHeads),
            Op::FirstToken => prim(PrimitiveOp::FirstToken),
            Op::MeanPool => prim(PrimitiveOp::MeanPool),
            Op::Input(_) | Op::Weight(_) => unreachable!("inputs and weights are not kernels"),
        }
    }

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

/// The keys of the kernels of `graph`, in execution order: what a program compiled from it runs.
pub fn kernel_keys(graph: &Graph) -> Vec<KernelKey> {
    graph
        .schedule()
        .into_iter()
        .map(|n| {
            let shapes: Vec<Vec<usize>> = graph.inputs(n).iter().map(|&i| graph.node(i).shape.clone()).collect();
            let node = graph.node(n);
            KernelKey::of(&node.op, &shapes, &node.shape, graph.seq)
        })
        .collect()
}
