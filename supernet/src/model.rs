//! The weight-sharing supernet: one BERT (the teacher's dimensions are the maximum) whose forward
//! runs any [`Arch`] inside that maximum by slicing the shared parameters, with no "active
//! subnet" state. A subnet of width `h` uses the first `h` hidden dims of every table and matrix,
//! the first `heads` heads and the first `ffn` neurons of each of its layers, and the first `L`
//! layers (as Once-for-All keeps the first blocks: shared layer `l` then always sees inputs of the
//! same depth, and a shallower subnet is a prefix of a deeper one).

use std::path::Path;

use arch::hf::HfConfig;
use arch::{Arch, TaskHead};
use burn::module::{Module, ModuleMapper, Param};
use burn::nn::{Embedding, EmbeddingConfig, Initializer, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::store::{ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore};
use burn::tensor::activation::tanh;
use burn::tensor::{DType, Device, Int, Tensor, TensorData};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::fused::{attention_probs, gelu, layer_norm};
use crate::tokens::Batch;

/// Errors of the supernet model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// An arch outside the supernet's maximum.
    #[error("arch {arch} is outside the supernet (maximum {max}): {why}")]
    OutsideMax { arch: String, max: String, why: String },
    /// The arch itself is invalid.
    #[error(transparent)]
    Arch(#[from] arch::Error),
    /// Weights that could not be loaded.
    #[error("{}: {message}", path.display())]
    Load { path: std::path::PathBuf, message: String },
    /// Inputs of the wrong shape.
    #[error("bad input: {0}")]
    Input(String),
}

#[derive(Module, Debug)]
pub struct Embeddings {
    pub word_embeddings: Embedding,
    pub position_embeddings: Embedding,
    pub token_type_embeddings: Embedding,
    pub layer_norm: LayerNorm,
}

#[derive(Module, Debug)]
pub struct SelfAttention {
    pub query: Linear,
    pub key: Linear,
    pub value: Linear,
}

#[derive(Module, Debug)]
pub struct DenseNorm {
    pub dense: Linear,
    pub layer_norm: LayerNorm,
}

#[derive(Module, Debug)]
pub struct Attention {
    pub self_attn: SelfAttention,
    pub output: DenseNorm,
}

#[derive(Module, Debug)]
pub struct Dense {
    pub dense: Linear,
}

#[derive(Module, Debug)]
pub struct Layer {
    pub attention: Attention,
    pub intermediate: Dense,
    pub output: DenseNorm,
}

#[derive(Module, Debug)]
pub struct Encoder {
    pub layer: Vec<Layer>,
}

/// The supernet. Parameter paths follow the Hugging Face BERT key layout (`attention.self` is
/// `attention.self_attn`, `LayerNorm` is `layer_norm`, burn's Linear stores `[in, out]`).
#[derive(Module, Debug)]
pub struct Supernet {
    pub embeddings: Embeddings,
    pub encoder: Encoder,
    pub pooler: Dense,
    pub classifier: Linear,
    /// The largest arch, with the task head.
    #[module(skip)]
    pub max: Arch,
    #[module(skip)]
    pub eps: f64,
}

/// What a forward returns: the head's output and, when asked, what distillation compares.
pub struct Output {
    /// `[rows, outputs]`: logits, the regression score, or the mean-pooled embedding.
    pub logits: Tensor<2>,
    /// The hidden state after each layer, `[rows · seq, hidden]` (when asked).
    pub hidden: Vec<Tensor<2>>,
    /// The attention probabilities of each layer, `[rows, heads, seq, seq]` (when asked).
    pub attention: Vec<Tensor<4>>,
}

/// How a forward runs: which intermediate tensors it keeps, and its dropout.
#[derive(Clone, Copy, Debug, Default)]
pub struct Mode {
    /// Keep the hidden state after each layer.
    pub hidden: bool,
    /// Keep the attention probabilities of each layer.
    pub attention: bool,
    /// Dropout probability where BERT applies it in training (the embeddings' output, attention
    /// probabilities, both sublayers' outputs before their residual, the pooled state); 0 for
    /// inference.
    pub dropout: f64,
    /// Seed of the dropout masks: the same seed, the same masks (a resumed run draws what the
    /// uninterrupted one drew).
    pub seed: u64,
}

/// Dropout with masks drawn from a seeded generator of its own, not from the backend's global
/// one: reproducible whatever else runs in the process, and constants of the autodiff graph.
struct Dropout {
    p: f64,
    rng: ChaCha8Rng,
}

impl Dropout {
    /// Zeroes each entry with probability `p` and scales the rest by `1 / (1 - p)`.
    fn apply<const D: usize>(&mut self, x: Tensor<D>) -> Tensor<D> {
        if self.p <= 0.0 {
            return x;
        }
        let shape = x.shape();
        let scale = (1.0 / (1.0 - self.p)) as f32;
        // One 32-bit draw per entry, kept when below `(1 - p) · 2³²`.
        let threshold = ((1.0 - self.p) * 4_294_967_296.0) as u64;
        let mask: Vec<f32> = (0..shape.num_elements())
            .map(|_| if u64::from(self.rng.next_u32()) < threshold { scale } else { 0.0 })
            .collect();
        let mask = Tensor::<D>::from_data(TensorData::new(mask, shape), &x.device());
        x * mask
    }
}

fn linear(inp: usize, out: usize, device: &Device) -> Linear {
    LinearConfig::new(inp, out).init(device)
}

/// Casts every float parameter that is not F32 to F32.
struct ToF32;

impl ModuleMapper for ToF32 {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        if param.val().dtype() == DType::F32 {
            return param;
        }
        // A leaf again after the cast (not a node of the autodiff graph), trainable as it was.
        param.map(|t| {
            let trainable = t.is_require_grad();
            t.cast(DType::F32).detach().set_require_grad(trainable)
        })
    }
}

/// A new task head as BERT initialises one (`initializer_range` 0.02, Devlin et al.; transformers'
/// `BertForSequenceClassification`): weights drawn from N(0, 0.02²), biases zero, where burn's
/// default draws weights and biases uniformly in ±1/√h (a standard deviation of 0.03 for h = 384).
fn fresh_head(inp: usize, out: usize, device: &Device) -> Linear {
    let mut head =
        LinearConfig::new(inp, out).with_initializer(Initializer::Normal { mean: 0.0, std: 0.02 }).init(device);
    head.bias = Some(Param::from_tensor(Tensor::zeros([out], device)));
    head
}

fn dense_norm(inp: usize, out: usize, eps: f64, device: &Device) -> DenseNorm {
    DenseNorm { dense: linear(inp, out, device), layer_norm: LayerNormConfig::new(out).with_epsilon(eps).init(device) }
}

impl Supernet {
    /// A randomly initialised supernet whose largest subnet is `max` with its task head. `max`
    /// may have per-layer widths (a standalone per-layer model); layer `l` of a subnet is then at
    /// most `max`'s layer `l`.
    pub fn init(max: &Arch, eps: f64, device: &Device) -> Result<Supernet, ModelError> {
        max.validate()?;
        let h = max.hidden;
        let layer = |l: usize| {
            let (a, f) = (max.heads[l] * max.head_dim, max.ffn[l]);
            Layer {
                attention: Attention {
                    self_attn: SelfAttention {
                        query: linear(h, a, device),
                        key: linear(h, a, device),
                        value: linear(h, a, device),
                    },
                    output: dense_norm(a, h, eps, device),
                },
                intermediate: Dense { dense: linear(h, f, device) },
                output: dense_norm(f, h, eps, device),
            }
        };
        Ok(Supernet {
            embeddings: Embeddings {
                word_embeddings: EmbeddingConfig::new(max.vocab_size, h).init(device),
                position_embeddings: EmbeddingConfig::new(max.max_positions, h).init(device),
                token_type_embeddings: EmbeddingConfig::new(max.type_vocab_size, h).init(device),
                layer_norm: LayerNormConfig::new(h).with_epsilon(eps).init(device),
            },
            encoder: Encoder { layer: (0..max.layers).map(layer).collect() },
            pooler: Dense { dense: linear(h, h, device) },
            classifier: fresh_head(h, max.task.output_width(h).max(1), device),
            max: max.clone(),
            eps,
        })
    }

    /// Loads a Hugging Face BERT directory (`config.json`, `model.safetensors`) with burn-store,
    /// remapping its keys; the task head `task` replaces the checkpoint's when they differ (a
    /// fresh classifier), and is loaded when the checkpoint has one of the same width.
    pub fn from_pretrained(dir: &Path, task: TaskHead, device: &Device) -> Result<Supernet, ModelError> {
        let config_path = dir.join("config.json");
        let text = std::fs::read_to_string(&config_path)
            .map_err(|e| ModelError::Load { path: config_path.clone(), message: e.to_string() })?;
        let config = HfConfig::from_json(&text)
            .map_err(|e| ModelError::Load { path: config_path.clone(), message: e.to_string() })?;
        let mut max =
            config.to_arch(128).map_err(|e| ModelError::Load { path: config_path.clone(), message: e.to_string() })?;
        if !max.is_uniform() {
            return Err(ModelError::Load {
                path: config_path,
                message: "a supernet starts from a uniform model".into(),
            });
        }
        // The checkpoint's head is kept when it is the task's; otherwise a fresh one is made.
        let same_head = max.task == task && task != TaskHead::Embedding;
        max.task = task;
        let weights = dir.join("model.safetensors");
        if !weights.is_file() {
            return Err(ModelError::Load { path: weights, message: "not found".into() });
        }
        let mut net = Supernet::init(&max, config.layer_norm_eps, device)?;
        net.load(SafetensorsStore::from_file(&weights), same_head, &weights)?;
        // burn-store keeps a tensor's stored precision: a checkpoint saved in FP16 or BF16 (as
        // many on the Hub are) is brought to the F32 that training and evaluation run in.
        Ok(net.map(&mut ToF32))
    }

    /// The weights of a training checkpoint folder (`model.bpk` and `max.json`, as
    /// [`crate::Trainer`] writes them): the moving average of the weights (`average.bpk`) when
    /// the run keeps one, as its evaluations and its final model do, else the last weights.
    pub fn from_checkpoint(dir: &Path, device: &Device) -> Result<Supernet, ModelError> {
        let err = |path: &Path, message: String| ModelError::Load { path: path.to_path_buf(), message };
        let shape_path = dir.join("max.json");
        let text = std::fs::read_to_string(&shape_path).map_err(|e| err(&shape_path, e.to_string()))?;
        let (max, eps): (Arch, f64) = serde_json::from_str(&text).map_err(|e| err(&shape_path, e.to_string()))?;
        let weights = match dir.join(crate::train::AVERAGE) {
            average if average.is_file() => average,
            _ => dir.join("model.bpk"),
        };
        Supernet::init(&max, eps, device)?.try_load_file(&weights).map_err(|e| err(&weights, e.to_string()))
    }

    /// A supernet of maximum `max` holding named tensors (`(name, shape, row-major f32 data)`,
    /// Hugging Face names with or without the `bert.` prefix); the head is loaded when given.
    pub fn from_tensors(
        max: &Arch,
        eps: f64,
        tensors: impl IntoIterator<Item = (String, Vec<usize>, Vec<f32>)>,
        device: &Device,
    ) -> Result<Supernet, ModelError> {
        let tensors: Vec<(String, Vec<usize>, Vec<f32>)> = tensors.into_iter().collect();
        let bytes = crate::export::safetensors_bytes(&tensors)?;
        let has_head = tensors.iter().any(|(name, ..)| name.ends_with("classifier.weight"));
        let mut net = Supernet::init(max, eps, device)?;
        net.load(SafetensorsStore::from_bytes(Some(bytes)), has_head, Path::new("<tensors>"))?;
        Ok(net)
    }

    /// Loads the parameters from `store` (Hugging Face keys): every tensor but a new head must be
    /// there, with the shape of the supernet's.
    fn load(&mut self, store: SafetensorsStore, with_head: bool, path: &Path) -> Result<(), ModelError> {
        let err = |message: String| ModelError::Load { path: path.to_path_buf(), message };
        let mut store = store
            .with_from_adapter(PyTorchToBurnAdapter)
            .with_key_remapping(r"^bert\.", "")
            .with_key_remapping(r"\.attention\.self\.", ".attention.self_attn.")
            .with_key_remapping(r"LayerNorm", "layer_norm")
            .allow_partial(true)
            .validate(true);
        if !with_head {
            // A head of another task (or width) is not loaded: the new head starts fresh.
            store = store.with_key_remapping(r"^classifier\.", "replaced_head.");
        }
        let result = self.load_from(&mut store).map_err(|e| err(e.to_string()))?;
        if !result.errors.is_empty() {
            return Err(err(format!("{:?}", result.errors)));
        }
        // A new head starts fresh; an embedding model needs no pooler.
        let optional = |p: &str| {
            (!with_head && p.starts_with("classifier"))
                || (self.max.task == TaskHead::Embedding && p.starts_with("pooler"))
        };
        let missing: Vec<&String> = result.missing.iter().map(|(p, _)| p).filter(|p| !optional(p)).collect();
        if !missing.is_empty() {
            return Err(err(format!("tensors missing: {missing:?}")));
        }
        Ok(())
    }

    /// Checks that `arch` is a subnet of this supernet.
    pub fn check(&self, arch: &Arch) -> Result<(), ModelError> {
        arch.validate()?;
        let m = &self.max;
        let why = if arch.layers > m.layers {
            Some(format!("{} layers > {}", arch.layers, m.layers))
        } else if arch.hidden > m.hidden {
            Some(format!("hidden {} > {}", arch.hidden, m.hidden))
        } else if arch.head_dim != m.head_dim {
            Some(format!("head size {} ≠ {}", arch.head_dim, m.head_dim))
        } else if let Some(l) = (0..arch.layers).find(|&l| arch.heads[l] > m.heads[l]) {
            Some(format!("layer {l} has {} heads > {}", arch.heads[l], m.heads[l]))
        } else if let Some(l) = (0..arch.layers).find(|&l| arch.ffn[l] > m.ffn[l]) {
            Some(format!("layer {l} has FFN {} > {}", arch.ffn[l], m.ffn[l]))
        } else if arch.vocab_size != m.vocab_size || arch.type_vocab_size != m.type_vocab_size {
            Some("vocabulary sizes differ".into())
        } else if arch.max_positions > m.max_positions {
            Some(format!("{} positions > {}", arch.max_positions, m.max_positions))
        } else if arch.task != TaskHead::Embedding && arch.task != m.task {
            Some(format!("head {:?} ≠ the supernet's {:?}", arch.task, m.task))
        } else {
            None
        };
        match why {
            Some(why) => Err(ModelError::OutsideMax { arch: arch.to_string(), max: m.to_string(), why }),
            None => Ok(()),
        }
    }

    /// The device the parameters live on.
    pub fn device(&self) -> Device {
        self.classifier.weight.val().device()
    }

    /// Runs `arch` on `batch` (any sequence length up to the positions the arch has).
    pub fn forward(&self, batch: &Batch, arch: &Arch, mode: Mode) -> Result<Output, ModelError> {
        self.check(arch)?;
        let (rows, s, h) = (batch.rows, batch.seq, arch.hidden);
        let tokens = rows * s;
        if tokens == 0 || batch.ids.len() != tokens || batch.types.len() != tokens || batch.mask.len() != tokens {
            return Err(ModelError::Input(format!("ids, types and mask must hold {rows} × {s} entries each")));
        }
        if s > arch.max_positions {
            return Err(ModelError::Input(format!("sequence of {s} tokens > {} positions", arch.max_positions)));
        }
        if let Some(&bad) = batch.ids.iter().find(|&&i| i as usize >= arch.vocab_size) {
            return Err(ModelError::Input(format!("token id {bad} ≥ vocabulary {}", arch.vocab_size)));
        }
        let d = self.device();
        let index = |v: Vec<i64>| Tensor::<1, Int>::from_data(TensorData::new(v, [tokens]), &d);
        let table = |e: &Embedding, idx: Vec<i64>| prefix(e.weight.val(), 1, h).select(0, index(idx));
        let e = &self.embeddings;
        let x = table(&e.word_embeddings, batch.ids.iter().map(|&i| i64::from(i)).collect())
            + table(&e.position_embeddings, (0..tokens).map(|t| (t % s) as i64).collect())
            + table(&e.token_type_embeddings, batch.types.iter().map(|&t| i64::from(t)).collect());
        let mut drop = Dropout { p: mode.dropout, rng: ChaCha8Rng::seed_from_u64(mode.seed) };
        let mut x = drop.apply(self.norm(x, &e.layer_norm, h));

        let mask = Tensor::<2>::from_data(TensorData::new(batch.mask.clone(), [rows, s]), &d);
        // Hugging Face's additive mask: a large negative bias on padded keys.
        let key_bias: Vec<f32> = batch.mask.iter().map(|&m| (1.0 - m) * -1e9).collect();
        let mut out = Output { logits: Tensor::zeros([1, 1], &d), hidden: vec![], attention: vec![] };
        for (l, layer) in self.encoder.layer.iter().take(arch.layers).enumerate() {
            let (heads, hd, f) = (arch.heads[l], arch.head_dim, arch.ffn[l]);
            let a = heads * hd;
            let split = |t: Tensor<2>| t.reshape([rows, s, heads, hd]).swap_dims(1, 2);
            let sa = &layer.attention.self_attn;
            let q = split(sliced(&sa.query, x.clone(), h, a));
            let k = split(sliced(&sa.key, x.clone(), h, a));
            let v = split(sliced(&sa.value, x.clone(), h, a));
            let probs = attention_probs(q.matmul(k.swap_dims(2, 3)), 1.0 / (hd as f32).sqrt(), &key_bias);
            if mode.attention {
                out.attention.push(probs.clone());
            }
            let ctx = drop.apply(probs).matmul(v).swap_dims(1, 2).reshape([tokens, a]);
            let ao = &layer.attention.output;
            let attn = self.norm(drop.apply(sliced(&ao.dense, ctx, a, h)) + x, &ao.layer_norm, h);
            let inter = gelu(sliced(&layer.intermediate.dense, attn.clone(), h, f));
            let o = &layer.output;
            x = self.norm(drop.apply(sliced(&o.dense, inter, f, h)) + attn, &o.layer_norm, h);
            if mode.hidden {
                out.hidden.push(x.clone());
            }
        }
        out.logits = match arch.task {
            TaskHead::Embedding => {
                let m = mask.reshape([rows, s, 1]);
                let summed = (x.reshape([rows, s, h]) * m.clone()).sum_dim(1).reshape([rows, h]);
                summed / m.sum_dim(1).reshape([rows, 1]).clamp_min(1e-9)
            }
            _ => {
                let first = x.reshape([rows, s, h]).narrow(1, 0, 1).reshape([rows, h]);
                let pooled = drop.apply(tanh(sliced(&self.pooler.dense, first, h, h)));
                sliced(&self.classifier, pooled, h, self.max.task.output_width(self.max.hidden))
            }
        };
        Ok(out)
    }

    fn norm(&self, x: Tensor<2>, ln: &LayerNorm, width: usize) -> Tensor<2> {
        let g = prefix(ln.gamma.val(), 0, width);
        let b = match &ln.beta {
            Some(b) => prefix(b.val(), 0, width),
            None => Tensor::zeros([width], &g.device()),
        };
        layer_norm(x, g, b, self.eps)
    }
}

/// `x · W[..inp, ..out] + b[..out]` (burn stores Linear weights as `[in, out]`).
fn sliced(lin: &Linear, x: Tensor<2>, inp: usize, out: usize) -> Tensor<2> {
    let w = prefix(prefix(lin.weight.val(), 0, inp), 1, out);
    let y = x.matmul(w);
    match &lin.bias {
        Some(b) => y + prefix(b.val(), 0, out).unsqueeze::<2>(),
        None => y,
    }
}

/// The first `len` entries of `t` along `dim`: `t` itself when that is all of it, since a narrow
/// costs the backward pass a zeroed gradient of the full shape and a copy into it even when it
/// keeps everything (the largest subnet, the teacher).
fn prefix<const D: usize>(t: Tensor<D>, dim: usize, len: usize) -> Tensor<D> {
    if t.dims()[dim] == len { t } else { t.narrow(dim, 0, len) }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a test: a failure should stop it loudly
mod tests {
    use super::*;
    use crate::data::Task;

    /// Writes `tensors` as a Hugging Face directory with `config.json`, stored as `dtype`.
    fn write_dir(dir: &Path, arch: &Arch, tensors: &[crate::export::Named], dtype: DType) {
        let device = Device::flex();
        let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
            .iter()
            .map(|(name, shape, values)| {
                let t = Tensor::<1>::from_data(TensorData::new(values.clone(), [values.len()]), &device);
                let t = t.cast(dtype);
                (name.clone(), shape.clone(), t.into_data().as_bytes().to_vec())
            })
            .collect();
        let dtype = match dtype {
            DType::F16 => safetensors::Dtype::F16,
            DType::BF16 => safetensors::Dtype::BF16,
            _ => safetensors::Dtype::F32,
        };
        let views: Vec<_> = bytes
            .iter()
            .map(|(name, shape, b)| {
                (name.clone(), safetensors::tensor::TensorView::new(dtype, shape.clone(), b).unwrap())
            })
            .collect();
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("model.safetensors"), safetensors::serialize(views, None).unwrap()).unwrap();
        std::fs::write(dir.join("config.json"), HfConfig::from_arch(arch).to_json()).unwrap();
    }

    #[test]
    fn a_half_precision_checkpoint_loads_as_f32() {
        let device = Device::flex();
        let mut arch = Arch::parse("L2-H32-A2-F64-D16-S8").unwrap();
        arch.task = TaskHead::Classification { labels: 2 };
        let net = Supernet::init(&arch, 1e-12, &device).unwrap();
        let tensors = crate::export::subnet_tensors(&net, &arch).unwrap();
        let mask = vec![1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0];
        let batch = Batch::unlabelled(vec![1, 5, 7, 2, 1, 3, 0, 0], vec![0; 8], mask, 8);
        let logits = |net: &Supernet| -> Vec<f32> {
            net.forward(&batch, &arch, Mode::default()).unwrap().logits.into_data().try_into_vec().unwrap()
        };
        for half in [DType::F16, DType::BF16] {
            // The same values rounded to half precision, stored once so and once as F32.
            let rounded: Vec<crate::export::Named> = tensors
                .iter()
                .map(|(name, shape, values)| {
                    let t = Tensor::<1>::from_data(TensorData::new(values.clone(), [values.len()]), &device);
                    (name.clone(), shape.clone(), t.cast(half).cast(DType::F32).into_data().try_into_vec().unwrap())
                })
                .collect();
            let scratch = tempfile::tempdir().unwrap();
            let (half_dir, full_dir) = (scratch.path().join("half"), scratch.path().join("f32"));
            write_dir(&half_dir, &arch, &tensors, half);
            write_dir(&full_dir, &arch, &rounded, DType::F32);
            let from_half = Supernet::from_pretrained(&half_dir, arch.task, &device).unwrap();
            let from_full = Supernet::from_pretrained(&full_dir, arch.task, &device).unwrap();
            assert_eq!(from_half.classifier.weight.val().dtype(), DType::F32);
            assert_eq!(logits(&from_half), logits(&from_full), "{half:?}: loads as its values in F32");
            // And it trains: the cast parameters are leaves of the autodiff graph, not nodes of it.
            let trainable = Supernet::from_pretrained(&half_dir, arch.task, &device.clone().autodiff()).unwrap();
            let out = trainable.forward(&batch, &arch, Mode::default()).unwrap();
            let grads = crate::train::task_loss(Task::Sst2, out.logits, &[crate::Label::Class(0)], 0.0).backward();
            assert!(trainable.classifier.weight.val().grad(&grads).is_some(), "{half:?}: the head has a gradient");
            assert!(
                trainable.embeddings.word_embeddings.weight.val().grad(&grads).is_some(),
                "{half:?}: so do the embeddings"
            );
        }
    }
}
