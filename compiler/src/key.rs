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

impl PrimitiveOp {
    pub const ALL: [PrimitiveOp; 14] = [
        PrimitiveOp::Gather,
        PrimitiveOp::Add,
        PrimitiveOp::BiasAdd,
        PrimitiveOp::Gelu,
        PrimitiveOp::Tanh,
        PrimitiveOp::Scale,
        PrimitiveOp::MaskAdd,
        PrimitiveOp::Softmax,
        PrimitiveOp::LayerNorm,
        PrimitiveOp::Slice,
        PrimitiveOp::SplitHeads,
        PrimitiveOp::MergeHeads,
        PrimitiveOp::FirstToken,
        PrimitiveOp::MeanPool,
    ];

    /// The kind name of its kernels: a key of device profiles' models and of imported CSV
    /// files, so spelt out here rather than derived from the variant's name (renaming a variant
    /// must not orphan the models of existing profiles).
    pub fn name(self) -> &'static str {
        match self {
            PrimitiveOp::Gather => "gather",
            PrimitiveOp::Add => "add",
            PrimitiveOp::BiasAdd => "biasadd",
            PrimitiveOp::Gelu => "gelu",
            PrimitiveOp::Tanh => "tanh",
            PrimitiveOp::Scale => "scale",
            PrimitiveOp::MaskAdd => "maskadd",
            PrimitiveOp::Softmax => "softmax",
            PrimitiveOp::LayerNorm => "layernorm",
            PrimitiveOp::Slice => "slice",
            PrimitiveOp::SplitHeads => "splitheads",
            PrimitiveOp::MergeHeads => "mergeheads",
            PrimitiveOp::FirstToken => "firsttoken",
            PrimitiveOp::MeanPool => "meanpool",
        }
    }
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
            KernelKey::Primitive { op, .. } => op.name().to_string(),
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

impl KernelKey {
    /// The key with kind `kind` (as [`KernelKey::kind`] spells it) and the named dimensions of
    /// [`KernelKey::dims`]; the error says what is unknown or missing.
    pub fn from_kind(kind: &str, dims: &std::collections::BTreeMap<String, usize>) -> Result<KernelKey, String> {
        let get = |name: &str| dims.get(name).copied().ok_or_else(|| format!("kind `{kind}` needs dimension `{name}`"));
        if let Some(label) = kind.strip_prefix("gemm[").and_then(|r| r.strip_suffix(']')) {
            let mut epilogue = Epilogue::default();
            for part in label.split('+').filter(|p| *p != "plain") {
                match part {
                    "bias" => epilogue.bias = true,
                    "gelu" => epilogue.activation = Some(crate::ir::Activation::Gelu),
                    "tanh" => epilogue.activation = Some(crate::ir::Activation::Tanh),
                    "residual" => epilogue.residual = true,
                    "ln" => epilogue.layer_norm_eps_bits = Some(crate::lower::BERT_LAYER_NORM_EPS.to_bits()),
                    other => return Err(format!("unknown GEMM epilogue step `{other}` in `{kind}`")),
                }
            }
            return Ok(KernelKey::Gemm { m: get("m")?, n: get("n")?, k: get("k")?, epilogue });
        }
        let prim = |op| Ok(KernelKey::Primitive { op, rows: get("rows")?, width: get("width")? });
        match kind {
            "batched_gemm" => {
                Ok(KernelKey::BatchedGemm { batch: get("batch")?, m: get("m")?, n: get("n")?, k: get("k")? })
            }
            "attention" => Ok(KernelKey::Attention {
                batch: get("batch")?,
                seq: get("seq")?,
                heads: get("heads")?,
                head_dim: get("head_dim")?,
            }),
            "embed_layer_norm" => {
                Ok(KernelKey::EmbedLayerNorm { tokens: get("tokens")?, hidden: get("hidden")?, parts: get("parts")? })
            }
            "add_layer_norm" => Ok(KernelKey::AddLayerNorm { rows: get("rows")?, width: get("width")? }),
            other => {
                let op = PrimitiveOp::ALL
                    .into_iter()
                    .find(|op| op.name() == other)
                    .ok_or_else(|| format!("unknown kernel kind `{other}`"))?;
                prim(op)
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_dims_round_trip() {
        let keys = [
            KernelKey::Gemm { m: 3, n: 4, k: 5, epilogue: Default::default() },
            KernelKey::Gemm {
                m: 3,
                n: 4,
                k: 5,
                epilogue: Epilogue {
                    bias: true,
                    activation: None,
                    residual: true,
                    layer_norm_eps_bits: Some(crate::lower::BERT_LAYER_NORM_EPS.to_bits()),
                },
            },
            KernelKey::Attention { batch: 1, seq: 8, heads: 2, head_dim: 4 },
            KernelKey::EmbedLayerNorm { tokens: 8, hidden: 4, parts: 3 },
            KernelKey::Primitive { op: PrimitiveOp::MeanPool, rows: 1, width: 4 },
        ];
        for key in keys {
            let dims = key.dims().into_iter().map(|(n, v)| (n.to_string(), v)).collect();
            assert_eq!(KernelKey::from_kind(&key.kind(), &dims).unwrap(), key);
        }
        assert!(KernelKey::from_kind("warp_drive", &Default::default()).unwrap_err().contains("warp_drive"));
    }

    /// The primitive kinds keep the names profiles and imported files were written with, and
    /// every one of them parses back.
    #[test]
    fn primitive_kind_names_are_stable() {
        let names: Vec<&str> = PrimitiveOp::ALL.iter().map(|op| op.name()).collect();
        assert_eq!(
            names,
            [
                "gather",
                "add",
                "biasadd",
                "gelu",
                "tanh",
                "scale",
                "maskadd",
                "softmax",
                "layernorm",
                "slice",
                "splitheads",
                "mergeheads",
                "firsttoken",
                "meanpool"
            ]
        );
        for op in PrimitiveOp::ALL {
            let key = KernelKey::Primitive { op, rows: 2, width: 3 };
            let dims = key.dims().into_iter().map(|(n, v)| (n.to_string(), v)).collect();
            assert_eq!(KernelKey::from_kind(&key.kind(), &dims).unwrap(), key);
        }
    }
}
