//! The Hugging Face `config.json` of a BERT checkpoint, and its translation to and from [`Arch`].
//! Only the fields canao reads are modelled; others are ignored on reading (HF configs carry many).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Arch, Error, Result, TaskHead};

/// A BERT `config.json`, as `transformers` writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HfConfig {
    #[serde(default)]
    pub architectures: Vec<String>,
    #[serde(default = "bert")]
    pub model_type: String,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub vocab_size: usize,
    pub max_position_embeddings: usize,
    #[serde(default = "two")]
    pub type_vocab_size: usize,
    #[serde(default = "bert_eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "gelu")]
    pub hidden_act: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_labels: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id2label: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem_type: Option<String>,
    /// Per-layer widths of a non-uniform canao subnet (`transformers` ignores this field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canao: Option<PerLayer>,
}

/// The widths that a uniform `config.json` cannot express.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PerLayer {
    pub heads: Vec<usize>,
    pub ffn: Vec<usize>,
    pub head_dim: usize,
}

fn bert() -> String {
    "bert".into()
}
fn two() -> usize {
    2
}
fn bert_eps() -> f64 {
    1e-12
}
fn gelu() -> String {
    "gelu".into()
}

fn invalid(field: &str, reason: impl Into<String>) -> Error {
    Error::InvalidField { field: field.into(), reason: reason.into() }
}

impl HfConfig {
    /// Parses `config.json` text.
    pub fn from_json(text: &str) -> Result<HfConfig> {
        serde_json::from_str(text).map_err(|e| Error::Parse { input: "config.json".into(), reason: e.to_string() })
    }

    /// JSON text of this config.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Whether the checkpoint carries a sequence-classification head.
    pub fn has_classifier(&self) -> bool {
        self.architectures.iter().any(|a| a == "BertForSequenceClassification")
    }

    /// The architecture this config describes, compiled for `seq_len` tokens.
    pub fn to_arch(&self, seq_len: usize) -> Result<Arch> {
        if self.model_type != "bert" {
            return Err(invalid("model_type", format!("is `{}`; canao runs `bert` models", self.model_type)));
        }
        if self.hidden_act != "gelu" {
            return Err(invalid("hidden_act", format!("is `{}`; canao implements `gelu` (exact)", self.hidden_act)));
        }
        let layers = self.num_hidden_layers;
        let (heads, ffn, head_dim) = match &self.canao {
            Some(p) => (p.heads.clone(), p.ffn.clone(), p.head_dim),
            None => {
                let heads = self.num_attention_heads;
                if heads == 0 || !self.hidden_size.is_multiple_of(heads) {
                    return Err(invalid(
                        "num_attention_heads",
                        format!("{heads} does not divide hidden_size {}", self.hidden_size),
                    ));
                }
                (vec![heads; layers], vec![self.intermediate_size; layers], self.hidden_size / heads)
            }
        };
        let task = if self.has_classifier() {
            let labels = self.num_labels.or(self.id2label.as_ref().map(|m| m.len())).unwrap_or(2);
            if labels == 1 || self.problem_type.as_deref() == Some("regression") {
                TaskHead::Regression
            } else {
                TaskHead::Classification { labels }
            }
        } else {
            TaskHead::Embedding
        };
        let arch = Arch {
            layers,
            hidden: self.hidden_size,
            heads,
            ffn,
            head_dim,
            vocab_size: self.vocab_size,
            max_positions: self.max_position_embeddings,
            type_vocab_size: self.type_vocab_size,
            seq_len,
            task,
        };
        arch.validate()?;
        Ok(arch)
    }

    /// The config of `arch`, loadable by `transformers` when the arch is uniform with
    /// `heads · head_dim == hidden`; other archs record their widths in the `canao` field.
    pub fn from_arch(arch: &Arch) -> HfConfig {
        let standard = arch.is_uniform() && arch.heads[0] * arch.head_dim == arch.hidden;
        let (architectures, num_labels, problem_type) = match arch.task {
            TaskHead::Embedding => (vec!["BertModel".to_string()], None, None),
            TaskHead::Classification { labels } => {
                (vec!["BertForSequenceClassification".into()], Some(labels), Some("single_label_classification".into()))
            }
            TaskHead::Regression => (vec!["BertForSequenceClassification".into()], Some(1), Some("regression".into())),
        };
        HfConfig {
            architectures,
            model_type: "bert".into(),
            hidden_size: arch.hidden,
            num_hidden_layers: arch.layers,
            num_attention_heads: arch.heads.first().copied().unwrap_or(1),
            intermediate_size: arch.ffn.first().copied().unwrap_or(1),
            vocab_size: arch.vocab_size,
            max_position_embeddings: arch.max_positions,
            type_vocab_size: arch.type_vocab_size,
            layer_norm_eps: 1e-12,
            hidden_act: "gelu".into(),
            num_labels,
            id2label: num_labels.map(|n| (0..n).map(|i| (i.to_string(), format!("LABEL_{i}"))).collect()),
            problem_type,
            canao: (!standard).then(|| PerLayer {
                heads: arch.heads.clone(),
                ffn: arch.ffn.clone(),
                head_dim: arch.head_dim,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINILM: &str = r#"{"architectures": ["BertModel"], "hidden_act": "gelu", "hidden_size": 384,
        "intermediate_size": 1536, "layer_norm_eps": 1e-12, "max_position_embeddings": 512,
        "model_type": "bert", "num_attention_heads": 12, "num_hidden_layers": 6, "pad_token_id": 0,
        "type_vocab_size": 2, "vocab_size": 30522}"#;

    #[test]
    fn minilm_config_is_l6_h384_a12_f1536_d32() {
        let arch = HfConfig::from_json(MINILM).unwrap().to_arch(128).unwrap();
        assert_eq!(arch, Arch::parse("L6-H384-A12-F1536-D32").unwrap());
    }

    #[test]
    fn round_trips_per_layer_and_classifier_archs() {
        let mut arch = Arch::parse("L3-H256-A[4,2,8]-F[512,256,1024]-D32").unwrap();
        arch.task = TaskHead::Classification { labels: 3 };
        let config = HfConfig::from_json(&HfConfig::from_arch(&arch).to_json()).unwrap();
        assert_eq!(config.to_arch(128).unwrap(), arch);
        arch.task = TaskHead::Regression;
        assert_eq!(HfConfig::from_arch(&arch).to_arch(128).unwrap(), arch);
    }

    #[test]
    fn rejects_what_it_cannot_run() {
        let bad = MINILM.replace("\"gelu\"", "\"relu\"");
        let err = HfConfig::from_json(&bad).unwrap().to_arch(128).unwrap_err().to_string();
        assert!(err.contains("hidden_act"), "{err}");
        let bad = MINILM.replace("\"num_attention_heads\": 12", "\"num_attention_heads\": 7");
        let err = HfConfig::from_json(&bad).unwrap().to_arch(128).unwrap_err().to_string();
        assert!(err.contains("num_attention_heads"), "{err}");
    }
}
