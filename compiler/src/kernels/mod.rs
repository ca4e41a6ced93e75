//! The CPU kernels a [`crate::Program`] runs. Fused kernels ([`gemm::linear`] with its epilogue,
//! [`attention::attention`], [`embed_layer_norm`], [`rows::add_layer_norm`]) are what the compiled
//! program is made of; the primitive kernels below run unfused graphs, the baseline that fusion is
//! measured against and the other side of every fused == unfused test.

pub mod attention;
pub mod gemm;
pub mod math;
pub mod packed;
pub mod rows;
pub mod simd;

use rayon::prelude::*;
use simd::multiversion;

/// Rows per parallel task for row-wise kernels.
const ROW_CHUNK: usize = 16;

/// Runs `f(row_index0, rows)` over chunks of `n`-wide rows of `out`, in parallel when asked.
pub fn for_row_chunks(out: &mut [f32], n: usize, threads: usize, f: impl Fn(usize, &mut [f32]) + Sync + Send) {
    if n == 0 {
        return;
    }
    if threads <= 1 {
        f(0, out);
    } else {
        out.par_chunks_mut(ROW_CHUNK * n).enumerate().for_each(|(i, c)| f(i * ROW_CHUNK, c));
    }
}

/// `out[t] = LayerNorm(Σ_i table_i[index_i[t]])` for every token `t`: the fused embedding.
pub fn embed_layer_norm(
    out: &mut [f32],
    parts: &[(&[f32], &[u32])],
    gamma: &[f32],
    beta: &[f32],
    hidden: usize,
    eps: f32,
    threads: usize,
) {
    for_row_chunks(out, hidden, threads, |t0, rows| embed_rows(rows, t0, parts, gamma, beta, hidden, eps));
}

multiversion! {
    fn embed_rows(rows: &mut [f32], t0: usize, parts: &[(&[f32], &[u32])], gamma: &[f32], beta: &[f32], hidden: usize, eps: f32) {
        for (r, row) in rows.chunks_exact_mut(hidden).enumerate() {
            let t = t0 + r;
            row.fill(0.0);
            for (table, index) in parts {
                let i = index[t] as usize;
                for (x, y) in row.iter_mut().zip(&table[i * hidden..(i + 1) * hidden]) {
                    *x += y;
                }
            }
            rows::layer_norm_row(row, gamma, beta, eps);
        }
    }
}

/// `out[t] = table[index[t]]`.
pub fn gather(out: &mut [f32], table: &[f32], index: &[u32], hidden: usize) {
    for (row, &i) in out.chunks_exact_mut(hidden).zip(index) {
        let i = i as usize;
        row.copy_from_slice(&table[i * hidden..(i + 1) * hidden]);
    }
}

/// Mean of the rows of each sequence over its real tokens (sentence-transformers' pooling:
/// padding excluded, the count clamped at 1e-9).
pub fn mean_pool(out: &mut [f32], x: &[f32], mask: &[f32], batch: usize, seq: usize, hidden: usize) {
    for b in 0..batch {
        let o = &mut out[b * hidden..(b + 1) * hidden];
        o.fill(0.0);
        let mut count = 0.0f32;
        for t in 0..seq {
            let m = mask[b * seq + t];
            if m != 0.0 {
                count += m;
                for (acc, v) in o.iter_mut().zip(&x[(b * seq + t) * hidden..(b * seq + t + 1) * hidden]) {
                    *acc += m * v;
                }
            }
        }
        let inv = 1.0 / count.max(1e-9);
        o.iter_mut().for_each(|v| *v *= inv);
    }
}

/// `out[b] = x[b·seq]`: the first token of each sequence.
pub fn first_token(out: &mut [f32], x: &[f32], batch: usize, seq: usize, hidden: usize) {
    for b in 0..batch {
        out[b * hidden..(b + 1) * hidden].copy_from_slice(&x[b * seq * hidden..(b * seq + 1) * hidden]);
    }
}

/// Columns `start..start+len` of the `width`-wide rows of `x`.
pub fn slice_columns(out: &mut [f32], x: &[f32], width: usize, start: usize, len: usize) {
    for (o, row) in out.chunks_exact_mut(len).zip(x.chunks_exact(width)) {
        o.copy_from_slice(&row[start..start + len]);
    }
}

/// `[B·S, H·D] ↔ [B, H, S, D]`; `split` chooses the direction.
pub fn permute_heads(out: &mut [f32], x: &[f32], batch: usize, seq: usize, heads: usize, d: usize, split: bool) {
    for b in 0..batch {
        for h in 0..heads {
            for s in 0..seq {
                let tokens = (b * seq + s) * heads * d + h * d;
                let split_at = ((b * heads + h) * seq + s) * d;
                let (from, to) = if split { (tokens, split_at) } else { (split_at, tokens) };
                out[to..to + d].copy_from_slice(&x[from..from + d]);
            }
        }
    }
}

multiversion! {
    /// `out = a + b`.
    pub fn add(out: &mut [f32], a: &[f32], b: &[f32]) {
        for ((o, x), y) in out.iter_mut().zip(a).zip(b) {
            *o = x + y;
        }
    }
}

multiversion! {
    /// `out[r] = x[r] + bias` for every `bias.len()`-wide row.
    pub fn bias_add(out: &mut [f32], x: &[f32], bias: &[f32]) {
        for (o, row) in out.chunks_exact_mut(bias.len()).zip(x.chunks_exact(bias.len())) {
            for ((o, x), b) in o.iter_mut().zip(row).zip(bias) {
                *o = x + b;
            }
        }
    }
}

multiversion! {
    /// `out = x · factor`.
    pub fn scale(out: &mut [f32], x: &[f32], factor: f32) {
        for (o, v) in out.iter_mut().zip(x) {
            *o = v * factor;
        }
    }
}

/// Scores `[B, H, S, S]` plus the additive padding mask: padding keys get `f32::MIN`, as
/// Hugging Face's `(1 - mask) · finfo.min`.
pub fn mask_add(out: &mut [f32], scores: &[f32], mask: &[f32], batch: usize, heads: usize, seq: usize) {
    let per_batch = heads * seq * seq;
    for b in 0..batch {
        let m = &mask[b * seq..(b + 1) * seq];
        let range = b * per_batch..(b + 1) * per_batch;
        for (o, row) in out[range.clone()].chunks_exact_mut(seq).zip(scores[range].chunks_exact(seq)) {
            for ((o, s), &keep) in o.iter_mut().zip(row).zip(m) {
                *o = if keep == 0.0 { s + f32::MIN } else { *s };
            }
        }
    }
}
