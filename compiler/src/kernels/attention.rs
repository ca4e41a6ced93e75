//! Fused multi-head attention: for each (sequence, head), `softmax(q·kᵀ·scale + mask)·v` with one
//! `S×S` tile per thread; Q, K and V are read in place from the projection output.

use std::cell::RefCell;

use gemm::Parallelism;
use rayon::prelude::*;

use super::gemm::{SendPtr, View, gemm_views};
use super::rows::softmax_row;
use super::simd::multiversion;

/// Shapes and layout of one fused attention call.
#[derive(Debug, Clone, Copy)]
pub struct AttentionShape {
    pub batch: usize,
    pub seq: usize,
    pub heads: usize,
    pub head_dim: usize,
    pub scale: f32,
    /// Row strides (widths) of the Q, K and V sources.
    pub q_ld: usize,
    pub k_ld: usize,
    pub v_ld: usize,
    /// First column of head 0 in each source.
    pub q_col: usize,
    pub k_col: usize,
    pub v_col: usize,
}

thread_local! {
    /// The per-thread score tile, grown once to the largest `S×S` seen and then reused.
    static TILE: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

multiversion! {
    fn mask_softmax(tile: &mut [f32], mask: &[f32], seq: usize) {
        for row in tile.chunks_exact_mut(seq) {
            for (x, &m) in row.iter_mut().zip(mask) {
                *x = if m == 0.0 { f32::MIN } else { *x };
            }
            softmax_row(row);
        }
    }
}

/// Writes the attention context `[batch·seq, heads·head_dim]` into `out`.
pub fn attention(out: &mut [f32], q: &[f32], k: &[f32], v: &[f32], mask: &[f32], s: AttentionShape, threads: usize) {
    let (seq, d) = (s.seq, s.head_dim);
    let width = s.heads * d;
    assert!(out.len() >= s.batch * seq * width, "attention output size");
    for (src, ld, col) in [(q, s.q_ld, s.q_col), (k, s.k_ld, s.k_col), (v, s.v_ld, s.v_col)] {
        assert!(col + width <= ld && src.len() >= s.batch * seq * ld, "attention source size");
    }
    assert!(mask.len() >= s.batch * seq, "attention mask size");
    // Tasks write disjoint column blocks of the output (one head of one sequence each).
    let dst = SendPtr(out.as_mut_ptr());
    let task = |bh: usize| {
        let (b, h) = (bh / s.heads, bh % s.heads);
        let row0 = b * seq;
        TILE.with_borrow_mut(|tile| {
            if tile.len() < seq * seq {
                tile.resize(seq * seq, 0.0);
            }
            let tile = &mut tile[..seq * seq];
            let qv = View { ptr: q[row0 * s.q_ld + s.q_col + h * d..].as_ptr(), rs: s.q_ld as isize, cs: 1 };
            // kᵀ: element (c, j) is k[row0 + j, col + c].
            let kt = View { ptr: k[row0 * s.k_ld + s.k_col + h * d..].as_ptr(), rs: 1, cs: s.k_ld as isize };
            let vv = View { ptr: v[row0 * s.v_ld + s.v_col + h * d..].as_ptr(), rs: s.v_ld as isize, cs: 1 };
            let pv = View { ptr: tile.as_ptr(), rs: seq as isize, cs: 1 };
            // SAFETY: the views address rows row0..row0+seq and columns of head h, inside the
            // sources checked above; the tile is this thread's own.
            unsafe {
                gemm_views(seq, seq, d, tile.as_mut_ptr(), seq as isize, qv, kt, false, s.scale, Parallelism::None)
            };
            mask_softmax(tile, &mask[row0..row0 + seq], seq);
            // SAFETY: the destination block (rows of sequence b, columns of head h) is written by
            // this task alone, and lies inside `out` (checked above).
            unsafe {
                let out_ptr = dst.get().add(row0 * width + h * d);
                gemm_views(seq, d, seq, out_ptr, width as isize, pv, vv, false, 1.0, Parallelism::None)
            };
        });
    };
    let tasks = s.batch * s.heads;
    if threads <= 1 {
        (0..tasks).for_each(task);
    } else {
        (0..tasks).into_par_iter().for_each(task);
    }
}
