//! Row kernels: LayerNorm, softmax and the elementwise epilogue steps, each over one row that
//! sits in L1 while it is worked on.

use super::math;
use super::simd::{self, multiversion};
use crate::ir::{Activation, Epilogue};

/// Normalises `row` in place: `(x - mean) / sqrt(var + eps) * gamma + beta` (two passes, as
/// PyTorch computes it).
#[inline(always)]
pub fn layer_norm_row(row: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
    let n = row.len() as f32;
    let mean = simd::sum(row) / n;
    let mut lanes = [0.0f32; 8];
    let chunks = row.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for l in 0..8 {
            let d = c[l] - mean;
            lanes[l] += d * d;
        }
    }
    let mut var: f32 = lanes.iter().sum();
    for &x in rest {
        var += (x - mean) * (x - mean);
    }
    let rstd = 1.0 / (var / n + eps).sqrt();
    for ((x, g), b) in row.iter_mut().zip(gamma).zip(beta) {
        *x = (*x - mean) * rstd * g + b;
    }
}

/// In-place softmax of one row (exponentials and their sum in one pass, eight lanes at a time).
#[inline(always)]
pub fn softmax_row(row: &mut [f32]) {
    let m = simd::max(row);
    let mut lanes = [0.0f32; 8];
    let mut chunks = row.chunks_exact_mut(8);
    for c in &mut chunks {
        for l in 0..8 {
            c[l] = math::exp(c[l] - m);
            lanes[l] += c[l];
        }
    }
    let mut total: f32 = lanes.iter().sum();
    for x in chunks.into_remainder() {
        *x = math::exp(*x - m);
        total += *x;
    }
    let inv = 1.0 / total;
    for x in row.iter_mut() {
        *x *= inv;
    }
}

/// The operands an epilogue reads besides the GEMM result.
#[derive(Clone, Copy, Default)]
pub struct EpilogueArgs<'a> {
    pub bias: Option<&'a [f32]>,
    /// The residual, `[rows, n]` with the same row numbering as the output block.
    pub residual: Option<&'a [f32]>,
    pub gamma_beta: Option<(&'a [f32], &'a [f32])>,
}

multiversion! {
    /// Applies `epilogue` to `rows` consecutive rows of width `n` stored in `out`, whose first
    /// row is row `row0` of the whole output (the residual is indexed from there).
    pub fn apply_epilogue(out: &mut [f32], n: usize, row0: usize, epilogue: &Epilogue, args: &EpilogueArgs) {
        let eps = epilogue.layer_norm_eps();
        for (r, row) in out.chunks_exact_mut(n).enumerate() {
            if let Some(b) = args.bias {
                for (x, b) in row.iter_mut().zip(b) {
                    *x += b;
                }
            }
            match epilogue.activation {
                Some(Activation::Gelu) => row.iter_mut().for_each(|x| *x = math::gelu(*x)),
                Some(Activation::Tanh) => row.iter_mut().for_each(|x| *x = math::tanh(*x)),
                None => {}
            }
            if let Some(res) = args.residual {
                let res = &res[(row0 + r) * n..(row0 + r + 1) * n];
                for (x, y) in row.iter_mut().zip(res) {
                    *x += y;
                }
            }
            if let (Some(eps), Some((g, b))) = (eps, args.gamma_beta) {
                layer_norm_row(row, g, b, eps);
            }
        }
    }
}

multiversion! {
    /// LayerNorm of every `n`-wide row of `out`, in place.
    pub fn layer_norm_rows(out: &mut [f32], n: usize, gamma: &[f32], beta: &[f32], eps: f32) {
        for row in out.chunks_exact_mut(n) {
            layer_norm_row(row, gamma, beta, eps);
        }
    }
}

multiversion! {
    /// `out[r] = LayerNorm(a[r] + b[r])` for each row of width `n` (`b` may be absent).
    pub fn add_layer_norm(out: &mut [f32], a: &[f32], b: Option<&[f32]>, gamma: &[f32], beta: &[f32], n: usize, eps: f32) {
        for (r, row) in out.chunks_exact_mut(n).enumerate() {
            row.copy_from_slice(&a[r * n..(r + 1) * n]);
            if let Some(b) = b {
                for (x, y) in row.iter_mut().zip(&b[r * n..(r + 1) * n]) {
                    *x += y;
                }
            }
            layer_norm_row(row, gamma, beta, eps);
        }
    }
}

multiversion! {
    /// Softmax of each row of width `n`, in place.
    pub fn softmax_rows(x: &mut [f32], n: usize) {
        for row in x.chunks_exact_mut(n) {
            softmax_row(row);
        }
    }
}

multiversion! {
    /// Elementwise GELU or tanh from `x` into `out`.
    pub fn activation(out: &mut [f32], x: &[f32], act: Activation) {
        match act {
            Activation::Gelu => out.iter_mut().zip(x).for_each(|(o, &v)| *o = math::gelu(v)),
            Activation::Tanh => out.iter_mut().zip(x).for_each(|(o, &v)| *o = math::tanh(v)),
        }
    }
}
