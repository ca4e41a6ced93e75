//! Lowering: an [`Arch`] becomes the unfused dataflow graph of BERT's forward pass, op by op, as
//! Hugging Face's `BertModel` computes it. Weight nodes carry the checkpoint's tensor names.

use arch::{Arch, TaskHead};

use crate::ir::{Graph, InputKind, NodeId, Op, WeightRef};

/// LayerNorm epsilon of BERT checkpoints (`layer_norm_eps` in `config.json`).
pub const BERT_LAYER_NORM_EPS: f32 = 1e-12;

/// Lowers `arch` for `batch` sequences of `arch.seq_len` tokens, without any fusion.
///
/// The graph's single output is `[batch, width]`: the mean-pooled embedding for
/// [`TaskHead::Embedding`], else the head's logits.
pub fn lower(arch: &Arch, batch: usize, eps: f32) -> Graph {
    let mut b = Builder { g: Graph::new(batch, arch.seq_len), tokens: batch * arch.seq_len };
    let hidden = arch.hidden;
    let mask = b.g.add(Op::Input(InputKind::Mask), vec![batch, arch.seq_len], &[]);

    let mut x = embeddings(&mut b, arch, eps);
    for layer in 0..arch.layers {
        x = encoder_layer(&mut b, arch, layer, x, mask, eps);
    }

    let out = match arch.task {
        TaskHead::Embedding => b.g.add(Op::MeanPool, vec![batch, hidden], &[x, mask]),
        TaskHead::Classification { .. } | TaskHead::Regression => {
            let first = b.g.add(Op::FirstToken, vec![batch, hidden], &[x]);
            let pooled = b.linear(first, "pooler.dense", hidden, hidden);
            let pooled = b.g.add(Op::Tanh, vec![batch, hidden], &[pooled]);
            b.linear(pooled, "classifier", hidden, arch.task.output_width(hidden))
        }
    };
    b.g.outputs.push(out);
    b.g
}

struct Builder {
    g: Graph,
    tokens: usize,
}

impl Builder {
    fn weight(&mut self, name: String, shape: Vec<usize>) -> NodeId {
        self.g.add(Op::Weight(WeightRef::Single(name)), shape, &[])
    }

    /// `x · Wᵀ + b` for a Linear layer stored at `prefix.weight` `[out, in]` and `prefix.bias`.
    fn linear(&mut self, x: NodeId, prefix: &str, inp: usize, out: usize) -> NodeId {
        let rows = self.g.node(x).shape[0];
        let w = self.weight(format!("{prefix}.weight"), vec![out, inp]);
        let bias = self.weight(format!("{prefix}.bias"), vec![out]);
        let y = self.g.add(Op::MatMul, vec![rows, out], &[x, w]);
        self.g.add(Op::BiasAdd, vec![rows, out], &[y, bias])
    }

    fn layer_norm(&mut self, x: NodeId, prefix: &str, width: usize, eps: f32) -> NodeId {
        let gamma = self.weight(format!("{prefix}.weight"), vec![width]);
        let beta = self.weight(format!("{prefix}.bias"), vec![width]);
        self.g.add(Op::LayerNorm { eps }, vec![self.tokens, width], &[x, gamma, beta])
    }
}

fn embeddings(b: &mut Builder, arch: &Arch, eps: f32) -> NodeId {
    let (batch, seq, hidden) = (b.g.batch, b.g.seq, arch.hidden);
    let tables = [
        ("word_embeddings", arch.vocab_size, InputKind::TokenIds),
        ("position_embeddings", arch.max_positions, InputKind::Positions),
        ("token_type_embeddings", arch.type_vocab_size, InputKind::TokenTypes),
    ];
    let mut sum = None;
    for (name, rows, input) in tables {
        let table = b.weight(format!("embeddings.{name}.weight"), vec![rows, hidden]);
        let index = b.g.add(Op::Input(input), vec![batch, seq], &[]);
        let gathered = b.g.add(Op::Gather, vec![b.tokens, hidden], &[table, index]);
        sum = Some(match sum {
            None => gathered,
            Some(acc) => b.g.add(Op::Add, vec![b.tokens, hidden], &[acc, gathered]),
        });
    }
    let sum = sum.unwrap_or_else(|| unreachable!("three embedding tables"));
    b.layer_norm(sum, "embeddings.LayerNorm", hidden, eps)
}

fn encoder_layer(b: &mut Builder, arch: &Arch, layer: usize, x: NodeId, mask: NodeId, eps: f32) -> NodeId {
    let (batch, seq, hidden) = (b.g.batch, b.g.seq, arch.hidden);
    let (heads, head_dim) = (arch.heads[layer], arch.head_dim);
    let width = heads * head_dim;
    let ffn = arch.ffn[layer];
    let p = format!("encoder.layer.{layer}");
    let t = b.tokens;

    let split = |b: &mut Builder, name: &str| {
        let proj = b.linear(x, &format!("{p}.attention.self.{name}"), hidden, width);
        b.g.add(Op::SplitHeads { heads, head_dim }, vec![batch, heads, seq, head_dim], &[proj])
    };
    let q = split(b, "query");
    let k = split(b, "key");
    let v = split(b, "value");
    let scores = b.g.add(Op::QkT, vec![batch, heads, seq, seq], &[q, k]);
    let factor = 1.0 / (head_dim as f32).sqrt();
    let scores = b.g.add(Op::Scale { factor }, vec![batch, heads, seq, seq], &[scores]);
    let scores = b.g.add(Op::MaskAdd, vec![batch, heads, seq, seq], &[scores, mask]);
    let probs = b.g.add(Op::Softmax, vec![batch, heads, seq, seq], &[scores]);
    let ctx = b.g.add(Op::AttnV, vec![batch, heads, seq, head_dim], &[probs, v]);
    let ctx = b.g.add(Op::MergeHeads { heads, head_dim }, vec![t, width], &[ctx]);

    let attn = b.linear(ctx, &format!("{p}.attention.output.dense"), width, hidden);
    let attn = b.g.add(Op::Add, vec![t, hidden], &[attn, x]);
    let attn = b.layer_norm(attn, &format!("{p}.attention.output.LayerNorm"), hidden, eps);

    let inter = b.linear(attn, &format!("{p}.intermediate.dense"), hidden, ffn);
    let inter = b.g.add(Op::Gelu, vec![t, ffn], &[inter]);
    let out = b.linear(inter, &format!("{p}.output.dense"), ffn, hidden);
    let out = b.g.add(Op::Add, vec![t, hidden], &[out, attn]);
    b.layer_norm(out, &format!("{p}.output.LayerNorm"), hidden, eps)
}

/// The checkpoint tensors `arch` needs, with their shapes, in graph order.
pub fn weight_specs(arch: &Arch) -> Vec<(String, Vec<usize>)> {
    let g = lower(arch, 1, BERT_LAYER_NORM_EPS);
    let mut out: Vec<(usize, String, Vec<usize>)> = g
        .dag
        .node_indices()
        .filter_map(|n| match &g.dag[n].op {
            Op::Weight(WeightRef::Single(name)) => Some((n.index(), name.clone(), g.dag[n].shape.clone())),
            _ => None,
        })
        .collect();
    out.sort_by_key(|(i, _, _)| *i);
    out.into_iter().map(|(_, name, shape)| (name, shape)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowers_every_layer_with_checkpoint_names() {
        let arch = Arch::uniform(2, 128, 2, 512);
        let specs = weight_specs(&arch);
        // 3 tables + 2 LN, 16 per layer, no head for an embedding model.
        assert_eq!(specs.len(), 5 + 2 * 16);
        assert!(specs.iter().any(|(n, s)| n == "encoder.layer.1.attention.self.query.weight" && s == &[128, 128]));
        assert!(specs.iter().any(|(n, s)| n == "encoder.layer.0.intermediate.dense.weight" && s == &[512, 128]));
    }

    #[test]
    fn unfused_kernel_count() {
        let arch = Arch::uniform(3, 64, 2, 128);
        let g = lower(&arch, 1, BERT_LAYER_NORM_EPS);
        // embeddings: 3 gathers, 2 adds, LN = 6; layer: 3×(matmul, bias, split) + qkT, scale, mask,
        // softmax, attnV, merge + (matmul, bias, add, LN) + (matmul, bias, gelu) + (matmul, bias,
        // add, LN) = 26; mean pool = 1.
        assert_eq!(g.kernel_count(), 6 + 3 * 26 + 1);
    }
}
