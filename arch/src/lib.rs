//! The vocabulary every canao crate shares: one BERT variant ([`Arch`]), the space of variants a
//! search explores ([`SearchSpace`]), and what can be counted from an architecture alone
//! (parameters, FLOPs, activation memory). Also the scalar math that two crates above share
//! ([`math`]: vectorisable `exp`, `erf` and GELU).
//!
//! This crate knows nothing of burn, devices or files: it is plain data with serde (and the
//! Hugging Face `config.json` form of an arch, parsed from text).

mod counts;
mod error;
pub mod hf;
pub mod math;
mod space;
mod text;

pub use error::{Error, Result};
pub use space::{Choice, SearchSpace};

use serde::{Deserialize, Serialize};

/// BERT-base's WordPiece vocabulary size; the default for compact arch strings.
pub const BERT_VOCAB: usize = 30_522;
/// BERT's position-embedding table size; the default for compact arch strings.
pub const BERT_MAX_POSITIONS: usize = 512;
/// Default per-head width (BERT-base, BERT-Mini, BERT-Tiny).
pub const DEFAULT_HEAD_DIM: usize = 64;
/// Default sequence length of a compact arch string.
pub const DEFAULT_SEQ_LEN: usize = 128;

/// One BERT variant. Per-layer widths may differ (`heads[i]`, `ffn[i]`); the attention width of
/// layer `i` is `heads[i] * head_dim`, which may differ from `hidden`.
///
/// Build one with [`Arch::uniform`], parse `L4-H256-A4-F1024` or RON with [`Arch::parse`], and
/// call [`Arch::validate`] before use: fields are public so that tools can edit them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Arch {
    /// Number of transformer layers.
    pub layers: usize,
    /// Width of the residual stream (embedding size).
    pub hidden: usize,
    /// Attention heads of each layer; `heads.len() == layers`.
    pub heads: Vec<usize>,
    /// Intermediate (FFN) width of each layer; `ffn.len() == layers`.
    pub ffn: Vec<usize>,
    /// Width of one attention head.
    #[serde(default = "default_head_dim")]
    pub head_dim: usize,
    /// Rows of the word-embedding table.
    #[serde(default = "default_vocab")]
    pub vocab_size: usize,
    /// Rows of the position-embedding table: the longest sequence the model accepts.
    #[serde(default = "default_max_positions")]
    pub max_positions: usize,
    /// Rows of the token-type (segment) embedding table.
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    /// Sequence length the model is compiled and measured for.
    #[serde(default = "default_seq_len")]
    pub seq_len: usize,
    /// What sits on top of the encoder.
    #[serde(default)]
    pub task: TaskHead,
}

/// The output head on top of the encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum TaskHead {
    /// No head: the output is the mean-pooled sentence embedding (over the attention mask).
    #[default]
    Embedding,
    /// BERT pooler (dense + tanh on the first token) and a linear layer to `labels` logits.
    Classification { labels: usize },
    /// BERT pooler and a linear layer to one score.
    Regression,
}

impl TaskHead {
    /// Width of the head's output per sequence, given the encoder's hidden width.
    pub fn output_width(&self, hidden: usize) -> usize {
        match self {
            TaskHead::Embedding => hidden,
            TaskHead::Classification { labels } => *labels,
            TaskHead::Regression => 1,
        }
    }

    /// Whether the head uses BERT's pooler (dense + tanh over the first token).
    pub fn has_pooler(&self) -> bool {
        !matches!(self, TaskHead::Embedding)
    }
}

fn default_head_dim() -> usize {
    DEFAULT_HEAD_DIM
}
fn default_vocab() -> usize {
    BERT_VOCAB
}
fn default_max_positions() -> usize {
    BERT_MAX_POSITIONS
}
fn default_type_vocab() -> usize {
    2
}
fn default_seq_len() -> usize {
    DEFAULT_SEQ_LEN
}

impl Arch {
    /// A uniform arch: every layer has `heads` heads and an FFN of width `ffn`; BERT defaults for
    /// the rest (vocabulary, positions, head size 64, sequence length 128, embedding output).
    pub fn uniform(layers: usize, hidden: usize, heads: usize, ffn: usize) -> Arch {
        Arch {
            layers,
            hidden,
            heads: vec![heads; layers],
            ffn: vec![ffn; layers],
            head_dim: DEFAULT_HEAD_DIM,
            vocab_size: BERT_VOCAB,
            max_positions: BERT_MAX_POSITIONS,
            type_vocab_size: 2,
            seq_len: DEFAULT_SEQ_LEN,
            task: TaskHead::Embedding,
        }
    }

    /// Attention width (`heads * head_dim`) of layer `layer`.
    pub fn attn_width(&self, layer: usize) -> usize {
        self.heads[layer] * self.head_dim
    }

    /// True when all layers have the same heads and FFN width.
    pub fn is_uniform(&self) -> bool {
        self.heads.windows(2).all(|w| w[0] == w[1]) && self.ffn.windows(2).all(|w| w[0] == w[1])
    }

    /// Checks every field; the error names the field and says what was expected.
    pub fn validate(&self) -> Result<()> {
        fn positive(field: &'static str, value: usize) -> Result<()> {
            if value == 0 {
                return Err(Error::InvalidField { field: field.into(), reason: "must be at least 1".into() });
            }
            Ok(())
        }
        positive("layers", self.layers)?;
        positive("hidden", self.hidden)?;
        positive("head_dim", self.head_dim)?;
        positive("vocab_size", self.vocab_size)?;
        positive("max_positions", self.max_positions)?;
        positive("type_vocab_size", self.type_vocab_size)?;
        positive("seq_len", self.seq_len)?;
        for (name, list) in [("heads", &self.heads), ("ffn", &self.ffn)] {
            if list.len() != self.layers {
                return Err(Error::InvalidField {
                    field: name.into(),
                    reason: format!("has {} entries but the arch has {} layers", list.len(), self.layers),
                });
            }
            if let Some(i) = list.iter().position(|&v| v == 0) {
                return Err(Error::InvalidField { field: format!("{name}[{i}]"), reason: "must be at least 1".into() });
            }
        }
        if self.seq_len > self.max_positions {
            return Err(Error::InvalidField {
                field: "seq_len".into(),
                reason: format!("{} is longer than max_positions ({})", self.seq_len, self.max_positions),
            });
        }
        if let TaskHead::Classification { labels } = self.task
            && labels < 2
        {
            return Err(Error::InvalidField {
                field: "task.labels".into(),
                reason: format!("a classifier needs at least 2 labels, got {labels}"),
            });
        }
        Ok(())
    }
}
