//! Fused multi-head attention: for each (sequence, head), `softmax(q·kᵀ·scale + mask)·v` with one
//! `S×S` tile per thread; Q, K and V are read in place from the projection output.

use std::cell::RefCell;

use gemm::Parallelism;
use rayon::prelude::*;

use super::gemm::{SendPtr, View, gemm_views};
use super::packed::{self, PackedB};
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

/// Per-thread scratch: the score tile and the packed K and V of one head, grown once to the
/// largest shapes seen and then reused.
struct Scratch {
    tile: Vec<f32>,
    k: PackedB,
    v: PackedB,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch {
        tile: Vec::new(),
        k: PackedB::pack(&[], 0, 0),
        v: PackedB::pack(&[], 0, 0),
    });
}

multiversion! {
    /// Scales each score row, masks padding keys and takes the softmax, in place.
    fn mask_softmax(tile: &mut [f32], mask: &[f32], seq: usize, scale: f32) {
        for row in tile.chunks_exact_mut(seq) {
            for (x, &m) in row.iter_mut().zip(mask) {
                *x = if m == 0.0 { f32::MIN } else { *x * scale };
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
    let use_packed = packed::available();
    let task = |bh: usize| {
        let (b, h) = (bh / s.heads, bh % s.heads);
        let row0 = b * seq;
        let (q0, k0, v0) =
            (row0 * s.q_ld + s.q_col + h * d, row0 * s.k_ld + s.k_col + h * d, row0 * s.v_ld + s.v_col + h * d);
        // The destination block (rows of sequence b, columns of head h) is written by this task
        // alone, and lies inside `out` (checked above).
        let out_offset = row0 * width + h * d;
        SCRATCH.with_borrow_mut(|scratch| {
            let Scratch { tile, k: kp, v: vp } = scratch;
            if tile.len() < seq * seq {
                tile.resize(seq * seq, 0.0);
            }
            let tile = &mut tile[..seq * seq];
            if use_packed {
                // Scores: B(kk, j) = k[j, kk] (keys as columns); context: B(j, c) = v[j, c].
                kp.repack(&k[k0..], seq, d, s.k_ld, 1);
                vp.repack(&v[v0..], d, seq, 1, s.v_ld);
                let none = packed::TileOps::default();
                // SAFETY: AVX2 is available; the q block holds seq rows of d at stride q_ld
                // (the views start at q0 and stay inside `q`), the tile holds seq×seq.
                unsafe {
                    packed::gemm_packed_strided(
                        &q[q0..],
                        s.q_ld,
                        kp,
                        tile.as_mut_ptr(),
                        seq,
                        seq,
                        0..seq,
                        0..kp.panels(),
                        256,
                        &none,
                    )
                };
                mask_softmax(tile, &mask[row0..row0 + seq], seq, s.scale);
                // SAFETY: as above; the output block at out_offset has row stride `width`.
                unsafe {
                    let dst = dst.get().add(out_offset);
                    packed::gemm_packed_strided(tile, seq, vp, dst, width, seq, 0..seq, 0..vp.panels(), 256, &none)
                };
            } else {
                let qv = View { ptr: q[q0..].as_ptr(), rs: s.q_ld as isize, cs: 1 };
                // kᵀ: element (c, j) is k[row0 + j, col + c].
                let kt = View { ptr: k[k0..].as_ptr(), rs: 1, cs: s.k_ld as isize };
                let vv = View { ptr: v[v0..].as_ptr(), rs: s.v_ld as isize, cs: 1 };
                let pv = View { ptr: tile.as_ptr(), rs: seq as isize, cs: 1 };
                // SAFETY: the views address rows row0..row0+seq and columns of head h, inside
                // the sources checked above; the tile is this thread's own.
                unsafe {
                    gemm_views(seq, seq, d, tile.as_mut_ptr(), seq as isize, qv, kt, false, 1.0, Parallelism::None)
                };
                mask_softmax(tile, &mask[row0..row0 + seq], seq, s.scale);
                // SAFETY: see above.
                unsafe {
                    gemm_views(
                        seq,
                        d,
                        seq,
                        dst.get().add(out_offset),
                        width as isize,
                        pv,
                        vv,
                        false,
                        1.0,
                        Parallelism::None,
                    )
                };
            }
        });
    };
    let tasks = s.batch * s.heads;
    if threads <= 1 {
        (0..tasks).for_each(task);
    } else {
        (0..tasks).into_par_iter().for_each(task);
    }
}
