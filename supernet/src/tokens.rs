//! Tokenization with the teacher's `tokenizer.json`, and length-bucketed batches with attention
//! masks, so that SST-2's short train phrases do not pay for padding.

use std::path::Path;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use tokenizers::{EncodeInput, Tokenizer, TruncationParams};

use crate::data::{Example, Label};

/// Errors of tokenization.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    #[error("{path}: {message}")]
    Load { path: String, message: String },
    #[error("tokenizing: {0}")]
    Encode(String),
}

/// One tokenized example.
#[derive(Clone, Debug, PartialEq)]
pub struct Encoded {
    pub ids: Vec<u32>,
    pub types: Vec<u32>,
    pub label: Label,
}

/// The tokenizer with padding off and truncation set explicitly (the teacher's file fixes both
/// at 128).
pub struct Encoder {
    tokenizer: Tokenizer,
    /// `[PAD]`'s id.
    pub pad: u32,
    /// `[MASK]`'s id, when the vocabulary has one (masking augmentation needs it).
    pub mask: Option<u32>,
    /// Longest sequence, special tokens included.
    pub max_len: usize,
}

impl Encoder {
    /// Loads `tokenizer.json`, truncating at `max_len` tokens.
    pub fn from_file(path: &Path, max_len: usize) -> Result<Encoder, TokenError> {
        let load_err = |message: String| TokenError::Load { path: path.display().to_string(), message };
        let mut tokenizer = Tokenizer::from_file(path).map_err(|e| load_err(e.to_string()))?;
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams { max_length: max_len, ..Default::default() }))
            .map_err(|e| load_err(e.to_string()))?;
        let pad = tokenizer.token_to_id("[PAD]").ok_or_else(|| load_err("no [PAD] token in the vocabulary".into()))?;
        let mask = tokenizer.token_to_id("[MASK]");
        Ok(Encoder { tokenizer, pad, mask, max_len })
    }

    /// The vocabulary size, special tokens included.
    pub fn vocab_size(&self) -> usize {
        self.tokenizer.get_vocab_size(true)
    }

    /// Tokenizes `examples` (pairs as `[CLS] a [SEP] b [SEP]` with token types 0 and 1).
    pub fn encode(&self, examples: &[Example]) -> Result<Vec<Encoded>, TokenError> {
        let _span = tracing::info_span!("tokenize", examples = examples.len()).entered();
        let inputs: Vec<EncodeInput> = examples
            .iter()
            .map(|e| match &e.pair {
                Some(b) => EncodeInput::Dual(e.text.as_str().into(), b.as_str().into()),
                None => EncodeInput::Single(e.text.as_str().into()),
            })
            .collect();
        let encodings = self.tokenizer.encode_batch(inputs, true).map_err(|e| TokenError::Encode(e.to_string()))?;
        Ok(encodings
            .into_iter()
            .zip(examples)
            .map(|(enc, ex)| Encoded {
                ids: enc.get_ids().to_vec(),
                types: enc.get_type_ids().to_vec(),
                label: ex.label,
            })
            .collect())
    }
}

/// A padded batch: `rows × seq` row-major ids, token types and a 0/1 mask, with the labels and the
/// indices of the examples it holds.
#[derive(Clone, Debug)]
pub struct Batch {
    pub ids: Vec<u32>,
    pub types: Vec<u32>,
    pub mask: Vec<f32>,
    pub rows: usize,
    pub seq: usize,
    pub labels: Vec<Label>,
    pub index: Vec<usize>,
}

impl Batch {
    /// Pads `examples[index]` to the longest of them.
    pub fn new(examples: &[Encoded], index: Vec<usize>, pad: u32) -> Batch {
        let seq = index.iter().map(|&i| examples[i].ids.len()).max().unwrap_or(1).max(1);
        let mut batch = Batch {
            ids: Vec::with_capacity(index.len() * seq),
            types: Vec::with_capacity(index.len() * seq),
            mask: Vec::with_capacity(index.len() * seq),
            rows: index.len(),
            seq,
            labels: Vec::with_capacity(index.len()),
            index: Vec::new(),
        };
        for &i in &index {
            let e = &examples[i];
            let n = e.ids.len();
            batch.ids.extend(e.ids.iter().copied().chain(std::iter::repeat_n(pad, seq - n)));
            batch.types.extend(e.types.iter().copied().chain(std::iter::repeat_n(0, seq - n)));
            batch.mask.extend(std::iter::repeat_n(1.0, n).chain(std::iter::repeat_n(0.0, seq - n)));
            batch.labels.push(e.label);
        }
        batch.index = index;
        batch
    }

    /// An unlabelled batch of `ids.len() / seq` rows from already padded inputs.
    pub fn unlabelled(ids: Vec<u32>, types: Vec<u32>, mask: Vec<f32>, seq: usize) -> Batch {
        let rows = ids.len() / seq.max(1);
        Batch { ids, types, mask, rows, seq, labels: vec![], index: (0..rows).collect() }
    }

    /// Real (unpadded) tokens in the batch.
    pub fn tokens(&self) -> usize {
        self.mask.iter().filter(|&&m| m > 0.0).count()
    }

    /// A copy with the augmentations of Tang et al. (2019, "Distilling Task-Specific Knowledge
    /// from BERT into Simple Neural Networks"), drawn from `rng`: with probability `ngram` a
    /// single-sentence row is cut to one of its n-grams (n uniform in 1..=5 word pieces), then each
    /// word piece becomes `mask_id` with probability `mask`. `[CLS]` and the `[SEP]`s stay; the
    /// shape stays (a cut row is padded with `pad`). An augmented row keeps its label, though only
    /// a teacher's output on it is a fit target.
    pub fn augmented(&self, rng: &mut ChaCha8Rng, mask_id: u32, mask: f64, ngram: f64, pad: u32) -> Batch {
        use rand::Rng;
        let mut out = self.clone();
        for r in 0..self.rows {
            let row = r * self.seq..(r + 1) * self.seq;
            let n = self.mask[row.clone()].iter().filter(|&&m| m > 0.0).count();
            let single = self.types[row.clone()].iter().all(|&t| t == 0);
            // [CLS] w₁ … wₖ [SEP]: the words are positions 1..n-1.
            if single && n > 3 && rng.random_bool(ngram) {
                let words = n - 2;
                let len = rng.random_range(1..=words.min(5));
                let start = 1 + rng.random_range(0..=words - len);
                let ids = &self.ids[row.clone()];
                let cut: Vec<u32> = std::iter::once(ids[0])
                    .chain(ids[start..start + len].iter().copied())
                    .chain(std::iter::once(ids[n - 1]))
                    .collect();
                let dst = &mut out.ids[row.clone()];
                dst.fill(pad);
                dst[..cut.len()].copy_from_slice(&cut);
                let m = &mut out.mask[row.clone()];
                m.fill(0.0);
                m[..cut.len()].fill(1.0);
            }
            if mask > 0.0 {
                let n = out.mask[row.clone()].iter().filter(|&&m| m > 0.0).count();
                // The pair's middle [SEP] is the last token of type 0.
                let middle = (!single).then(|| self.types[row.clone()].iter().rposition(|&t| t == 0)).flatten();
                for p in 1..n.saturating_sub(1) {
                    if Some(p) != middle && rng.random_bool(mask) {
                        out.ids[row.start + p] = mask_id;
                    }
                }
            }
        }
        out
    }
}

/// How many batches a bucket spans: examples are sorted by length within a window of this many
/// batches, so that batches hold similar lengths while the order stays random.
const BUCKET_WINDOW: usize = 50;

/// The batch plan of one epoch: lists of example indices, each list one batch. With `seed`, the
/// examples are shuffled, sorted by length within windows of [`BUCKET_WINDOW`] batches, and the
/// batches shuffled again (the same seed gives the same plan); without, they are sorted by length
/// (evaluation order: least padding).
pub fn plan(examples: &[Encoded], batch_size: usize, seed: Option<u64>) -> Vec<Vec<usize>> {
    let batch_size = batch_size.max(1);
    let mut order: Vec<usize> = (0..examples.len()).collect();
    let len = |i: &usize| examples[*i].ids.len();
    match seed {
        None => {
            order.sort_by_key(len);
            order.chunks(batch_size).map(<[usize]>::to_vec).collect()
        }
        Some(seed) => {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            order.shuffle(&mut rng);
            let mut batches: Vec<Vec<usize>> = Vec::new();
            for window in order.chunks_mut(batch_size * BUCKET_WINDOW) {
                window.sort_by_key(len);
                batches.extend(window.chunks(batch_size).map(<[usize]>::to_vec));
            }
            batches.shuffle(&mut rng);
            batches
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(n: usize) -> Encoded {
        Encoded { ids: vec![7; n], types: vec![0; n], label: Label::Class(n % 2) }
    }

    #[test]
    fn batches_pad_to_their_longest_and_mask_the_rest() {
        let examples = vec![ex(3), ex(5)];
        let b = Batch::new(&examples, vec![0, 1], 0);
        assert_eq!((b.rows, b.seq, b.tokens()), (2, 5, 8));
        assert_eq!(&b.ids[..5], &[7, 7, 7, 0, 0]);
        assert_eq!(&b.mask[..5], &[1.0, 1.0, 1.0, 0.0, 0.0]);
    }

    #[test]
    fn plans_cover_every_example_once_and_bucket_lengths() {
        let examples: Vec<Encoded> = (0..1000).map(|i| ex(1 + (i * 37) % 60)).collect();
        let plan_a = plan(&examples, 16, Some(3));
        assert_eq!(plan_a, plan(&examples, 16, Some(3)), "same seed, same plan");
        assert_ne!(plan_a, plan(&examples, 16, Some(4)));
        let mut all: Vec<usize> = plan_a.iter().flatten().copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..1000).collect::<Vec<_>>());
        let padded: usize = plan_a.iter().map(|b| Batch::new(&examples, b.clone(), 0).ids.len()).sum();
        let real: usize = examples.iter().map(|e| e.ids.len()).sum();
        assert!((padded as f64) < 1.1 * real as f64, "bucketing keeps padding low: {padded} vs {real}");
    }

    /// `[CLS]` = 1, words 10.., `[SEP]` = 2, `[MASK]` = 3, `[PAD]` = 0.
    fn sentence(words: usize) -> Encoded {
        let ids = std::iter::once(1).chain(10..10 + words as u32).chain(std::iter::once(2)).collect::<Vec<_>>();
        Encoded { types: vec![0; ids.len()], ids, label: Label::Class(1) }
    }

    #[test]
    fn augmentation_masks_words_and_cuts_ngrams_but_keeps_special_tokens() {
        let examples: Vec<Encoded> = (0..200).map(|i| sentence(3 + i % 20)).collect();
        let b = Batch::new(&examples, (0..200).collect(), 0);
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let a = b.augmented(&mut rng, 3, 0.1, 0.25, 0);
        assert_eq!((a.rows, a.seq, &a.labels), (b.rows, b.seq, &b.labels));
        let (mut cut, mut masked, mut words) = (0, 0, 0);
        for r in 0..a.rows {
            let row = &a.ids[r * a.seq..(r + 1) * a.seq];
            let n = a.mask[r * a.seq..(r + 1) * a.seq].iter().filter(|&&m| m > 0.0).count();
            assert!(a.mask[r * a.seq..r * a.seq + n].iter().all(|&m| m == 1.0), "real tokens first");
            assert!(row[n..].iter().all(|&t| t == 0), "padding after them");
            assert_eq!((row[0], row[n - 1]), (1, 2), "row {r} keeps [CLS] and [SEP]");
            let inner = &row[1..n - 1];
            assert!(!inner.is_empty());
            let original = examples[r].ids.len();
            if n < original {
                cut += 1;
                assert!(inner.len() <= 5, "an n-gram of at most 5: {inner:?}");
            }
            // The kept words are consecutive in the original, masks aside.
            let kept: Vec<u32> = inner.iter().copied().filter(|&t| t != 3).collect();
            assert!(kept.windows(2).all(|w| w[1] > w[0]), "row {r}: {inner:?}");
            masked += inner.iter().filter(|&&t| t == 3).count();
            words += inner.len();
        }
        let (cut, masked) = (cut as f64 / 200.0, masked as f64 / words as f64);
        assert!((0.15..0.35).contains(&cut), "a quarter of the rows cut: {cut}");
        assert!((0.05..0.15).contains(&masked), "a tenth of the words masked: {masked}");
        let again = b.augmented(&mut ChaCha8Rng::seed_from_u64(5), 3, 0.1, 0.25, 0);
        assert_eq!(again.ids, a.ids, "the same draw from the same seed");
        let none = b.augmented(&mut rng, 3, 0.0, 0.0, 0);
        assert_eq!((none.ids, none.mask), (b.ids.clone(), b.mask.clone()), "zero probabilities change nothing");
    }

    #[test]
    fn augmentation_never_masks_the_separator_of_a_pair_nor_cuts_it() {
        // [CLS] a b [SEP] c d [SEP], token types 0 0 0 0 1 1 1.
        let pair =
            Encoded { ids: vec![1, 10, 11, 2, 12, 13, 2], types: vec![0, 0, 0, 0, 1, 1, 1], label: Label::Class(0) };
        let b = Batch::new(&[pair], vec![0], 0);
        let a = b.augmented(&mut ChaCha8Rng::seed_from_u64(1), 3, 1.0, 1.0, 0);
        assert_eq!(a.ids, vec![1, 3, 3, 2, 3, 3, 2]);
        assert_eq!(a.mask, b.mask);
    }
}
