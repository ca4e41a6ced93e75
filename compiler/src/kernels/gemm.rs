//! GEMM with fused epilogues, built on the `gemm` crate's micro-kernels (the ones burn-flex uses).
//!
//! A fused GEMM is cut into blocks of whole rows. Each block is multiplied and then finished by
//! its epilogue (bias, activation, residual, LayerNorm) while it is still in cache. Blocks are
//! spread over the program's threads, or, for shapes where that is faster, the `gemm` crate
//! parallelises one big product itself and the epilogue follows in parallel row blocks. The choice
//! and the block height are a [`GemmPlan`], auto-tuned per shape (see [`crate::tune`]).

use gemm::Parallelism;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::rows::{EpilogueArgs, apply_epilogue};
use crate::ir::Epilogue;

/// How one GEMM shape is scheduled on the CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GemmPlan {
    /// Rows per block; the epilogue runs on each block right after its product.
    pub row_block: usize,
    /// `true`: blocks are spread over threads and each product is single-threaded.
    /// `false`: the `gemm` crate splits each block's product over all threads.
    pub split_rows: bool,
}

impl GemmPlan {
    /// The plan used when tuning is off: blocks of 64 rows spread over the threads.
    pub fn heuristic(m: usize, threads: usize) -> GemmPlan {
        let per_thread = m.div_ceil(threads.max(1));
        GemmPlan { row_block: per_thread.clamp(1, 64), split_rows: true }
    }
}

/// A row-major matrix view: element `(r, c)` at `ptr[r * rs + c * cs]`.
#[derive(Clone, Copy)]
pub struct View {
    pub ptr: *const f32,
    pub rs: isize,
    pub cs: isize,
}

// SAFETY: a view only reads; the kernels that share one across threads keep the viewed memory
// alive and unmodified for the whole parallel section.
unsafe impl Send for View {}
unsafe impl Sync for View {}

/// `dst[m×n] = (accumulate ? dst : 0) + scale · lhs[m×k] · rhs[k×n]`.
///
/// # Safety
/// Every view must be valid for the `m×k`, `k×n` and `m×n` elements its strides address, and
/// `dst` must not overlap `lhs` or `rhs`.
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemm_views(m: usize, n: usize, k: usize, dst: *mut f32, dst_rs: isize, lhs: View, rhs: View, accumulate: bool, scale: f32, par: Parallelism) {
    if m == 0 || n == 0 {
        return;
    }
    // SAFETY: forwarded from the caller's contract; `gemm` computes dst = 1·dst + scale·lhs·rhs.
    unsafe {
        gemm::gemm(
            m, n, k, dst, 1, dst_rs, accumulate, lhs.ptr, lhs.cs, lhs.rs, rhs.ptr, rhs.cs, rhs.rs, 1.0, scale, false, false,
            false, par,
        );
    }
}

/// `out[m×n] = x[m×k] · wᵀ` for `w` stored `[n, k]` (the checkpoint's Linear layout), then the
/// epilogue, scheduled by `plan` over `threads` threads (the caller runs inside that pool).
#[allow(clippy::too_many_arguments)]
pub fn linear(out: &mut [f32], x: &[f32], w: &[f32], m: usize, n: usize, k: usize, epilogue: &Epilogue, args: &EpilogueArgs, plan: GemmPlan, threads: usize) {
    assert!(out.len() >= m * n && x.len() >= m * k && w.len() >= n * k, "gemm operand sizes");
    let out = &mut out[..m * n];
    let rhs = View { ptr: w.as_ptr(), rs: 1, cs: k as isize };
    let block = plan.row_block.max(1);
    let run_block = |(b, chunk): (usize, &mut [f32]), par: Parallelism| {
        let row0 = b * block;
        let rows = chunk.len() / n;
        let lhs = View { ptr: x[row0 * k..].as_ptr(), rs: k as isize, cs: 1 };
        // SAFETY: `chunk` holds `rows×n`, `x` from `row0` holds `rows×k`, `w` holds `n×k`
        // (all checked above); the output never aliases the operands (the buffer planner
        // gives every kernel output its own buffer).
        unsafe { gemm_views(rows, n, k, chunk.as_mut_ptr(), n as isize, lhs, rhs, false, 1.0, par) };
        apply_epilogue(chunk, n, row0, epilogue, args);
    };
    if threads <= 1 {
        out.chunks_mut(block * n).enumerate().for_each(|c| run_block(c, Parallelism::None));
    } else if plan.split_rows {
        out.par_chunks_mut(block * n).enumerate().for_each(|c| run_block(c, Parallelism::None));
    } else {
        out.chunks_mut(block * n).enumerate().for_each(|c| run_block(c, Parallelism::Rayon(threads)));
    }
}

/// The `gemm` crate's parallelism for `threads`.
pub fn parallelism(threads: usize) -> Parallelism {
    if threads <= 1 { Parallelism::None } else { Parallelism::Rayon(threads) }
}
