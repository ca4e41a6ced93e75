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
        Ok(Encoder { tokenizer, pad, max_len })
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
}
