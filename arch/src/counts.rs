//! What can be counted from an architecture alone: parameters, forward FLOPs, and a peak
//! activation-memory estimate.
//!
//! The parameter count follows the Hugging Face `BertModel` layout (the checkpoints the supernet
//! loads), so that BERT-base counts 109,482,240 with its pooler. Counts assume a valid arch
//! ([`Arch::validate`]); a layer is counted when both `heads` and `ffn` describe it. Arithmetic
//! saturates: a count too large for `u64` reads as `u64::MAX` instead of overflowing.

use crate::Arch;

impl Arch {
    /// Number of parameters, in the Hugging Face `BertModel` layout:
    ///
    /// - embeddings: word `V·H`, position `P·H`, token type `T·H`, LayerNorm `2H`;
    /// - each layer, with attention width `W = heads·head_dim` and FFN width `F`: Q, K and V
    ///   `3(H·W + W)`, output `W·H + H`, LayerNorm `2H`, FFN in `H·F + F`, FFN out `F·H + H`,
    ///   LayerNorm `2H`;
    /// - when the task head has a pooler: pooler `H·H + H` and the classifier `H·n + n`, `n`
    ///   being the labels (1 for regression).
    ///
    /// The [`Embedding`](crate::TaskHead::Embedding) head (mean pooling) has no parameters.
    pub fn params(&self) -> u64 {
        let h = self.hidden;
        let embeddings = sum(&[
            prod(&[self.vocab_size, h]),
            prod(&[self.max_positions, h]),
            prod(&[self.type_vocab_size, h]),
            prod(&[2, h]),
        ]);
        let layers = self.per_layer().map(|(w, f)| {
            let qkv = sum(&[prod(&[3, h, w]), prod(&[3, w])]);
            let attention_out = sum(&[prod(&[w, h]), prod(&[h])]);
            let ffn_in = sum(&[prod(&[h, f]), prod(&[f])]);
            let ffn_out = sum(&[prod(&[f, h]), prod(&[h])]);
            let layer_norms = prod(&[4, h]);
            sum(&[qkv, attention_out, ffn_in, ffn_out, layer_norms])
        });
        let head = if self.task.has_pooler() {
            let n = self.task.output_width(h);
            sum(&[prod(&[h, h]), prod(&[h]), prod(&[h, n]), prod(&[n])])
        } else {
            0
        };
        sum(&[embeddings, layers.fold(0, u64::saturating_add), head])
    }

    /// Forward FLOPs for `batch` sequences of `seq_len` tokens, a multiply-add counted as 2 FLOPs.
    ///
    /// Counted, per sequence of `S` tokens and per layer (`W = heads·head_dim`):
    /// the QKV projections `2·S·H·3W`, the attention output `2·S·W·H`, the scores `Q·Kᵀ`
    /// `2·S·S·W` (`heads` products of `[S, head_dim]·[head_dim, S]`), the context `P·V`
    /// `2·S·S·W`, and the FFN `2·S·H·F + 2·S·F·H`; then the pooler `2·H·H` (first token only)
    /// and classifier `2·H·n` when the head has them.
    ///
    /// Ignored, because they are a few percent at most and depend on fusion rather than on the
    /// arch: the embedding gathers, bias adds, LayerNorms, GELU, softmax, scaling and masking,
    /// residual adds, and mean pooling. BERT-base at `S = 128` counts 22.35 GFLOPs per sequence.
    pub fn flops(&self, batch: usize) -> u64 {
        let (s, h) = (self.seq_len, self.hidden);
        let layers = self.per_layer().map(|(w, f)| {
            sum(&[
                prod(&[2, s, h, 3, w]), // QKV
                prod(&[2, s, w, h]),    // attention output
                prod(&[2, 2, s, s, w]), // Q·Kᵀ and P·V
                prod(&[2, 2, s, h, f]), // FFN in and out
            ])
        });
        let head =
            if self.task.has_pooler() { sum(&[prod(&[2, h, h]), prod(&[2, h, self.task.output_width(h)])]) } else { 0 };
        let per_sequence = sum(&[layers.fold(0, u64::saturating_add), head]);
        per_sequence.saturating_mul(batch as u64)
    }

    /// Peak bytes of f32 activations held at once by an unfused, op-by-op forward of `batch`
    /// sequences of `seq_len` tokens; weights are not included.
    ///
    /// The estimate is the largest of these live sets, per sequence of `S` tokens, times
    /// `batch · 4` bytes:
    /// - embeddings: the summed embeddings and their LayerNorm output, `2·S·H`;
    /// - attention of each layer (`A` heads, `W = A·head_dim`): the layer input kept for the
    ///   residual `S·H`, Q, K and V `3·S·W`, and the scores and softmax probabilities `2·A·S·S`;
    /// - FFN of each layer: the attention block output kept for the residual `S·H`, and the
    ///   intermediate before and after GELU `2·S·F`.
    ///
    /// The pooler and classifier hold a few vectors per sequence and are left out. The compiler's
    /// buffer planner gives the exact, fused figure; this one is for comparing archs before
    /// compiling them.
    pub fn activation_bytes(&self, batch: usize) -> u64 {
        let (s, h) = (self.seq_len, self.hidden);
        let embeddings = prod(&[2, s, h]);
        let peak = self
            .heads
            .iter()
            .zip(&self.ffn)
            .map(|(&a, &f)| {
                let attention = sum(&[prod(&[s, h]), prod(&[3, s, a, self.head_dim]), prod(&[2, a, s, s])]);
                let ffn = sum(&[prod(&[s, h]), prod(&[2, s, f])]);
                attention.max(ffn)
            })
            .fold(embeddings, u64::max);
        prod(&[batch, 4]).saturating_mul(peak)
    }

    /// `(attention width, FFN width)` of each layer that both lists describe.
    fn per_layer(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        let head_dim = self.head_dim;
        self.heads.iter().zip(&self.ffn).map(move |(&a, &f)| (a.saturating_mul(head_dim), f))
    }
}

/// Saturating product, widened to `u64`.
fn prod(factors: &[usize]) -> u64 {
    factors.iter().fold(1u64, |acc, &x| acc.saturating_mul(x as u64))
}

/// Saturating sum.
fn sum(terms: &[u64]) -> u64 {
    terms.iter().fold(0u64, |acc, &x| acc.saturating_add(x))
}

#[cfg(test)]
mod tests {
    use crate::{Arch, TaskHead};

    fn bert_base() -> Arch {
        Arch::uniform(12, 768, 12, 3072)
    }

    #[test]
    fn bert_base_params_match_hugging_face() {
        // `BertModel.from_pretrained("bert-base-uncased")`: 109,482,240 with the pooler,
        // 108,891,648 without (`add_pooling_layer=False`).
        assert_eq!(bert_base().params(), 108_891_648);
        let with_pooler = Arch { task: TaskHead::Regression, ..bert_base() };
        // Pooler 768·768 + 768 = 590,592, regression layer 768 + 1.
        assert_eq!(with_pooler.params(), 109_482_240 + 769);
        let sst2 = Arch { task: TaskHead::Classification { labels: 2 }, ..bert_base() };
        assert_eq!(sst2.params(), 109_482_240 + 2 * 768 + 2);
    }

    #[test]
    fn minilm_params_match_hugging_face() {
        // sentence-transformers/all-MiniLM-L6-v2 as a `BertModel`: 22,713,216 with the pooler,
        // of which the pooler is 384·384 + 384 = 147,840.
        let minilm = Arch { head_dim: 32, ..Arch::uniform(6, 384, 12, 1536) };
        assert_eq!(minilm.params(), 22_713_216 - 147_840);
    }

    #[test]
    fn tiny_params_by_hand() {
        // L1-H4-A1-F8-D2, vocab 10, positions 6, types 2, 2 labels.
        let arch = Arch {
            head_dim: 2,
            vocab_size: 10,
            max_positions: 6,
            seq_len: 4,
            task: TaskHead::Classification { labels: 2 },
            ..Arch::uniform(1, 4, 1, 8)
        };
        let embeddings = (10 + 6 + 2) * 4 + 8; // 80
        let attention = 3 * (4 * 2 + 2) + (2 * 4 + 4) + 8; // 30 + 12 + 8
        let ffn = (4 * 8 + 8) + (8 * 4 + 4) + 8; // 40 + 36 + 8
        let head = (4 * 4 + 4) + (4 * 2 + 2); // 20 + 10
        assert_eq!(arch.params(), embeddings + attention + ffn + head);
    }

    #[test]
    fn per_layer_params_sum_layers() {
        let mixed = Arch { heads: vec![4, 2], ffn: vec![512, 1024], ..Arch::uniform(2, 256, 1, 1) };
        let one = |a, f| Arch::uniform(1, 256, a, f).params() - Arch::uniform(0, 256, 1, 1).params();
        assert_eq!(mixed.params(), Arch::uniform(0, 256, 1, 1).params() + one(4, 512) + one(2, 1024));
    }

    #[test]
    fn bert_base_flops() {
        // Per layer at S = 128: GEMMs 2·128·(4·768² + 2·768·3072) = 1,811,939,328,
        // attention 2·2·128²·768 = 50,331,648.
        let per_sequence = 12 * (1_811_939_328 + 50_331_648);
        assert_eq!(bert_base().flops(1), per_sequence);
        assert_eq!(bert_base().flops(8), 8 * per_sequence);
        assert_eq!(bert_base().flops(0), 0);
        let classifier = Arch { task: TaskHead::Classification { labels: 3 }, ..bert_base() };
        assert_eq!(classifier.flops(1), per_sequence + 2 * 768 * (768 + 3));
    }

    #[test]
    fn flops_scale_with_head_dim_and_seq() {
        let arch = Arch { head_dim: 2, seq_len: 4, ..Arch::uniform(1, 4, 1, 8) };
        // QKV 2·4·4·6 = 192, out 2·4·2·4 = 64, attention 2·2·16·2 = 128, FFN 2·2·4·4·8 = 512.
        assert_eq!(arch.flops(1), 192 + 64 + 128 + 512);
    }

    #[test]
    fn activation_bytes_by_hand() {
        // BERT-base at S = 128: attention 128·768 + 3·128·768 + 2·12·128² = 786,432;
        // FFN 128·768 + 2·128·3072 = 884,736 elements, the peak.
        assert_eq!(bert_base().activation_bytes(1), 884_736 * 4);
        assert_eq!(bert_base().activation_bytes(2), 2 * 884_736 * 4);
        // Long sequences: the score matrices dominate.
        let long = Arch { seq_len: 512, ..bert_base() };
        assert_eq!(long.activation_bytes(1), (512 * 768 + 3 * 512 * 768 + 2 * 12 * 512 * 512) * 4);
        // No layers: the embeddings alone.
        assert_eq!(Arch::uniform(0, 8, 1, 1).activation_bytes(1), 2 * 128 * 8 * 4);
    }

    #[test]
    fn counts_saturate_instead_of_overflowing() {
        let huge = Arch { vocab_size: usize::MAX, ..bert_base() };
        assert_eq!(huge.params(), u64::MAX);
        assert_eq!(bert_base().flops(usize::MAX), u64::MAX);
        assert_eq!(bert_base().activation_bytes(usize::MAX), u64::MAX);
    }
}
