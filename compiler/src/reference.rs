//! An independent reference forward of BERT: plain loops in f64, no fusion, no shared kernels,
//! written from the Hugging Face `BertModel` definition. It is slow on purpose-free simplicity and
//! exists to check compiled programs against.

use arch::{Arch, TaskHead};

use crate::program::Batch;
use crate::weights::Weights;
use crate::{Error, Result};

/// `erf` in double precision: Maclaurin series below 3, a continued fraction for `erfc` above.
pub fn erf64(x: f64) -> f64 {
    let a = x.abs();
    let y = if a < 3.0 {
        let (mut term, mut sum, mut n) = (a, a, 0.0);
        while term.abs() > 1e-17 * sum.abs() {
            n += 1.0;
            term *= -a * a / n;
            sum += term / (2.0 * n + 1.0);
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    } else {
        // erfc(a) = exp(-a²)/√π · 1/(a + (1/2)/(a + 1/(a + (3/2)/(a + …))))
        let mut t = a;
        for k in (1..=60).rev() {
            t = a + (k as f64 / 2.0) / t;
        }
        1.0 - (-a * a).exp() / (std::f64::consts::PI.sqrt() * t)
    };
    y.copysign(x)
}

struct Ref<'a> {
    w: &'a Weights,
}

impl Ref<'_> {
    fn t(&self, name: &str, shape: &[usize]) -> Result<Vec<f64>> {
        Ok(self.w.get(name, shape)?.data.iter().map(|&v| v as f64).collect())
    }

    /// `x [rows, inp] · Wᵀ + b` for a Linear stored at `prefix`.
    fn linear(&self, x: &[f64], rows: usize, inp: usize, out: usize, prefix: &str) -> Result<Vec<f64>> {
        let w = self.t(&format!("{prefix}.weight"), &[out, inp])?;
        let b = self.t(&format!("{prefix}.bias"), &[out])?;
        let mut y = vec![0.0; rows * out];
        for r in 0..rows {
            for o in 0..out {
                let mut acc = b[o];
                for i in 0..inp {
                    acc += x[r * inp + i] * w[o * inp + i];
                }
                y[r * out + o] = acc;
            }
        }
        Ok(y)
    }

    fn layer_norm(&self, x: &mut [f64], width: usize, prefix: &str, eps: f64) -> Result<()> {
        let g = self.t(&format!("{prefix}.weight"), &[width])?;
        let b = self.t(&format!("{prefix}.bias"), &[width])?;
        for row in x.chunks_mut(width) {
            let mean = row.iter().sum::<f64>() / width as f64;
            let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / width as f64;
            for (i, v) in row.iter_mut().enumerate() {
                *v = (*v - mean) / (var + eps).sqrt() * g[i] + b[i];
            }
        }
        Ok(())
    }
}

/// The model's output for `input`: `[batch, width]` row-major, as [`crate::Program::run`] gives.
pub fn forward(arch: &Arch, weights: &Weights, input: &Batch, eps: f32) -> Result<Vec<f32>> {
    arch.validate()?;
    let (s, h) = (arch.seq_len, arch.hidden);
    let batch = input.mask.len() / s;
    if batch == 0 || input.ids.len() != batch * s || input.types.len() != batch * s || input.mask.len() != batch * s {
        return Err(Error::Input(format!("inputs must hold batch × {s} entries each")));
    }
    let r = Ref { w: weights };
    let eps = eps as f64;
    let tokens = batch * s;

    let word = r.t("embeddings.word_embeddings.weight", &[arch.vocab_size, h])?;
    let pos = r.t("embeddings.position_embeddings.weight", &[arch.max_positions, h])?;
    let typ = r.t("embeddings.token_type_embeddings.weight", &[arch.type_vocab_size, h])?;
    let mut x = vec![0.0; tokens * h];
    for t in 0..tokens {
        let (id, ty, p) = (input.ids[t] as usize, input.types[t] as usize, t % s);
        if id >= arch.vocab_size || ty >= arch.type_vocab_size {
            return Err(Error::Input(format!("token {t}: id {id} or type {ty} out of range")));
        }
        for c in 0..h {
            x[t * h + c] = word[id * h + c] + pos[p * h + c] + typ[ty * h + c];
        }
    }
    r.layer_norm(&mut x, h, "embeddings.LayerNorm", eps)?;

    for l in 0..arch.layers {
        let (heads, d, f) = (arch.heads[l], arch.head_dim, arch.ffn[l]);
        let a = heads * d;
        let p = format!("encoder.layer.{l}");
        let q = r.linear(&x, tokens, h, a, &format!("{p}.attention.self.query"))?;
        let k = r.linear(&x, tokens, h, a, &format!("{p}.attention.self.key"))?;
        let v = r.linear(&x, tokens, h, a, &format!("{p}.attention.self.value"))?;
        let mut ctx = vec![0.0; tokens * a];
        let scale = 1.0 / (d as f64).sqrt();
        for b in 0..batch {
            for hd in 0..heads {
                for i in 0..s {
                    let qi = (b * s + i) * a + hd * d;
                    let mut scores = vec![f64::NEG_INFINITY; s];
                    for (j, score) in scores.iter_mut().enumerate() {
                        if input.mask[b * s + j] != 0.0 {
                            let kj = (b * s + j) * a + hd * d;
                            *score = (0..d).map(|c| q[qi + c] * k[kj + c]).sum::<f64>() * scale;
                        }
                    }
                    let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let exps: Vec<f64> = scores.iter().map(|sc| (sc - max).exp()).collect();
                    let total: f64 = exps.iter().sum();
                    for (j, e) in exps.iter().enumerate() {
                        let vj = (b * s + j) * a + hd * d;
                        for c in 0..d {
                            ctx[qi + c] += e / total * v[vj + c];
                        }
                    }
                }
            }
        }
        let mut attn = r.linear(&ctx, tokens, a, h, &format!("{p}.attention.output.dense"))?;
        attn.iter_mut().zip(&x).for_each(|(o, i)| *o += i);
        r.layer_norm(&mut attn, h, &format!("{p}.attention.output.LayerNorm"), eps)?;
        let mut inter = r.linear(&attn, tokens, h, f, &format!("{p}.intermediate.dense"))?;
        inter.iter_mut().for_each(|v| *v = 0.5 * *v * (1.0 + erf64(*v / std::f64::consts::SQRT_2)));
        let mut out = r.linear(&inter, tokens, f, h, &format!("{p}.output.dense"))?;
        out.iter_mut().zip(&attn).for_each(|(o, i)| *o += i);
        r.layer_norm(&mut out, h, &format!("{p}.output.LayerNorm"), eps)?;
        x = out;
    }

    let result = match arch.task {
        TaskHead::Embedding => {
            let mut pooled = vec![0.0; batch * h];
            for b in 0..batch {
                let count: f64 = (0..s).map(|t| input.mask[b * s + t] as f64).sum::<f64>().max(1e-9);
                for t in 0..s {
                    let m = input.mask[b * s + t] as f64;
                    for c in 0..h {
                        pooled[b * h + c] += m * x[(b * s + t) * h + c] / count;
                    }
                }
            }
            pooled
        }
        TaskHead::Classification { .. } | TaskHead::Regression => {
            let first: Vec<f64> = (0..batch).flat_map(|b| x[b * s * h..(b * s + 1) * h].to_vec()).collect();
            let mut pooled = r.linear(&first, batch, h, h, "pooler.dense")?;
            pooled.iter_mut().for_each(|v| *v = v.tanh());
            r.linear(&pooled, batch, h, arch.task.output_width(h), "classifier")?
        }
    };
    Ok(result.into_iter().map(|v| v as f32).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf64_known_values() {
        assert!((erf64(0.5) - 0.520_499_877_813_046_5).abs() < 1e-15);
        assert!((erf64(-1.0) + 0.842_700_792_949_714_9).abs() < 1e-15);
        assert!((erf64(3.5) - 0.999_999_256_901_627_7).abs() < 1e-13);
        assert_eq!(erf64(0.0), 0.0);
    }
}
