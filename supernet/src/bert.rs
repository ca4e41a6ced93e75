//! An eager BERT forward on burn. Weights are the Hugging Face checkpoint tensors (with or without
//! the `bert.` prefix) of a model at least as wide and deep as any arch run on it; each forward
//! slices them to the arch (first heads, first FFN neurons, first hidden dims, first layers).

use std::collections::HashMap;

use arch::{Arch, TaskHead};
use burn::tensor::activation::{gelu, softmax, tanh};
use burn::tensor::{Device, Int, Tensor, TensorData};
use thiserror::Error;

/// Errors of the eager forward.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// A tensor the arch needs is missing.
    #[error("no tensor `{0}` (also tried `bert.{0}`)")]
    Missing(String),
    /// A tensor is smaller than the arch needs, or has the wrong rank.
    #[error("tensor `{name}` has shape {found:?}; the arch needs at least {needed:?}")]
    TooSmall { name: String, needed: Vec<usize>, found: Vec<usize> },
    /// The arch itself is invalid.
    #[error(transparent)]
    Arch(#[from] arch::Error),
    /// Inputs of the wrong length.
    #[error("bad input: {0}")]
    Input(String),
}

/// Shared weights on a device.
pub struct Bert {
    device: Device,
    mats: HashMap<String, Tensor<2>>,
    vecs: HashMap<String, Tensor<1>>,
    eps: f64,
}

impl Bert {
    /// Puts named tensors (`(name, shape, row-major f32 data)`) on `device`.
    pub fn new(tensors: impl IntoIterator<Item = (String, Vec<usize>, Vec<f32>)>, eps: f64, device: &Device) -> Bert {
        let (mut mats, mut vecs) = (HashMap::new(), HashMap::new());
        for (name, shape, data) in tensors {
            let name = name.strip_prefix("bert.").map(str::to_string).unwrap_or(name);
            match shape[..] {
                [rows, cols] => {
                    mats.insert(name, Tensor::<2>::from_data(TensorData::new(data, [rows, cols]), device));
                }
                [n] => {
                    vecs.insert(name, Tensor::<1>::from_data(TensorData::new(data, [n]), device));
                }
                _ => {}
            }
        }
        Bert { device: device.clone(), mats, vecs, eps }
    }

    fn mat(&self, name: &str, rows: usize, cols: usize) -> Result<Tensor<2>, Error> {
        let t = self.mats.get(name).ok_or_else(|| Error::Missing(name.into()))?;
        let [r, c] = t.dims();
        if r < rows || c < cols {
            return Err(Error::TooSmall { name: name.into(), needed: vec![rows, cols], found: vec![r, c] });
        }
        Ok(t.clone().narrow(0, 0, rows).narrow(1, 0, cols))
    }

    fn vec(&self, name: &str, n: usize) -> Result<Tensor<1>, Error> {
        let t = self.vecs.get(name).ok_or_else(|| Error::Missing(name.into()))?;
        let [len] = t.dims();
        if len < n {
            return Err(Error::TooSmall { name: name.into(), needed: vec![n], found: vec![len] });
        }
        Ok(t.clone().narrow(0, 0, n))
    }

    /// `x · Wᵀ + b` for the Linear at `prefix`, sliced to `[out, inp]`.
    fn linear(&self, x: Tensor<2>, prefix: &str, inp: usize, out: usize) -> Result<Tensor<2>, Error> {
        let w = self.mat(&format!("{prefix}.weight"), out, inp)?;
        let b = self.vec(&format!("{prefix}.bias"), out)?;
        Ok(x.matmul(w.transpose()) + b.unsqueeze::<2>())
    }

    fn layer_norm(&self, x: Tensor<2>, prefix: &str, width: usize) -> Result<Tensor<2>, Error> {
        let g = self.vec(&format!("{prefix}.weight"), width)?;
        let b = self.vec(&format!("{prefix}.bias"), width)?;
        let (var, mean) = x.clone().var_mean_bias(1);
        Ok((x - mean) / (var + self.eps).sqrt() * g.unsqueeze::<2>() + b.unsqueeze::<2>())
    }

    /// The output of `arch` for `batch` sequences of `arch.seq_len` tokens (row-major ids, token
    /// types and a 0/1 attention mask): `[batch, width]`, the mean-pooled embedding or the logits.
    pub fn forward(&self, arch: &Arch, ids: &[u32], types: &[u32], mask: &[f32]) -> Result<Tensor<2>, Error> {
        arch.validate()?;
        let (s, h) = (arch.seq_len, arch.hidden);
        let tokens = ids.len();
        if tokens == 0 || !tokens.is_multiple_of(s) || types.len() != tokens || mask.len() != tokens {
            return Err(Error::Input(format!("ids, types and mask must hold batch × {s} entries each")));
        }
        let batch = tokens / s;
        let d = &self.device;
        let index = |v: Vec<i64>| Tensor::<1, Int>::from_data(TensorData::new(v, [tokens]), d);
        let gather = |name: &str, rows: usize, idx: Vec<i64>| -> Result<Tensor<2>, Error> {
            Ok(self.mat(name, rows, h)?.select(0, index(idx)))
        };
        let x = gather("embeddings.word_embeddings.weight", arch.vocab_size, ids.iter().map(|&i| i as i64).collect())?
            + gather("embeddings.position_embeddings.weight", s, (0..tokens).map(|t| (t % s) as i64).collect())?
            + gather(
                "embeddings.token_type_embeddings.weight",
                arch.type_vocab_size,
                types.iter().map(|&t| t as i64).collect(),
            )?;
        let mut x = self.layer_norm(x, "embeddings.LayerNorm", h)?;

        let mask_t = Tensor::<2>::from_data(TensorData::new(mask.to_vec(), [batch, s]), d);
        // Hugging Face's additive mask: (1 - mask) · f32::MIN on the keys.
        let bias = (mask_t.clone().neg() + 1.0).mul_scalar(f32::MIN).reshape([batch, 1, 1, s]);
        for l in 0..arch.layers {
            let (heads, hd, f) = (arch.heads[l], arch.head_dim, arch.ffn[l]);
            let a = heads * hd;
            let p = format!("encoder.layer.{l}");
            let split = |t: Tensor<2>| t.reshape([batch, s, heads, hd]).swap_dims(1, 2);
            let q = split(self.linear(x.clone(), &format!("{p}.attention.self.query"), h, a)?);
            let k = split(self.linear(x.clone(), &format!("{p}.attention.self.key"), h, a)?);
            let v = split(self.linear(x.clone(), &format!("{p}.attention.self.value"), h, a)?);
            let scores = q.matmul(k.swap_dims(2, 3)).mul_scalar(1.0 / (hd as f64).sqrt()) + bias.clone();
            let ctx = softmax(scores, 3).matmul(v).swap_dims(1, 2).reshape([batch * s, a]);
            let attn = self.linear(ctx, &format!("{p}.attention.output.dense"), a, h)? + x;
            let attn = self.layer_norm(attn, &format!("{p}.attention.output.LayerNorm"), h)?;
            let inter = gelu(self.linear(attn.clone(), &format!("{p}.intermediate.dense"), h, f)?);
            let out = self.linear(inter, &format!("{p}.output.dense"), f, h)? + attn;
            x = self.layer_norm(out, &format!("{p}.output.LayerNorm"), h)?;
        }

        match arch.task {
            TaskHead::Embedding => {
                let m = mask_t.reshape([batch, s, 1]);
                let summed = (x.reshape([batch, s, h]) * m.clone()).sum_dim(1).reshape([batch, h]);
                let count = m.sum_dim(1).reshape([batch, 1]).clamp_min(1e-9);
                Ok(summed / count)
            }
            TaskHead::Classification { .. } | TaskHead::Regression => {
                let first = x.reshape([batch, s, h]).narrow(1, 0, 1).reshape([batch, h]);
                let pooled = tanh(self.linear(first, "pooler.dense", h, h)?);
                self.linear(pooled, "classifier", h, arch.task.output_width(h))
            }
        }
    }
}
