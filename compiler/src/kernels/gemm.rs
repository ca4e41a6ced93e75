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

use super::packed::{self, PackedB, TileOps};
use super::rows::{EpilogueArgs, apply_epilogue, layer_norm_rows};
use crate::ir::Epilogue;

/// How a GEMM's work is divided among threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Split {
    /// Blocks of whole rows are spread over the threads; each block runs its epilogue at once.
    Rows,
    /// Each thread computes a panel of columns for all rows (it packs only its share of the
    /// weights); the epilogue follows in parallel row blocks.
    Cols,
    /// The `gemm` crate parallelises each row block's product itself.
    Inner,
    /// One thread does it all: for products too small to pay for waking the others.
    Serial,
}

/// Which micro-kernels compute the product.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum GemmKernel {
    /// The `gemm` crate (packs both operands on every call).
    Crate,
    /// canao's AVX2 kernel over weights packed at compile time ([`super::packed`]).
    Packed,
}

/// How one GEMM shape is scheduled on the CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GemmPlan {
    pub kernel: GemmKernel,
    /// Rows per block (crate kernel); the epilogue runs on each block right after its product.
    pub row_block: usize,
    /// Depth of a `k` block (packed kernel).
    pub kc: usize,
    pub split: Split,
}

impl GemmPlan {
    /// The plan used when tuning is off: the packed kernel where the CPU has it, columns split
    /// over threads when there are panels enough, else rows.
    pub fn heuristic(m: usize, n: usize, threads: usize) -> GemmPlan {
        let per_thread = m.div_ceil(threads.max(1));
        if packed::available() {
            let split = if n.div_ceil(packed::NR) >= 2 * threads { Split::Cols } else { Split::Rows };
            GemmPlan { kernel: GemmKernel::Packed, row_block: per_thread, kc: 256, split }
        } else {
            GemmPlan { kernel: GemmKernel::Crate, row_block: per_thread.clamp(1, 128), kc: 256, split: Split::Rows }
        }
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
pub unsafe fn gemm_views(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    dst_rs: isize,
    lhs: View,
    rhs: View,
    accumulate: bool,
    scale: f32,
    par: Parallelism,
) {
    if m == 0 || n == 0 {
        return;
    }
    // SAFETY: forwarded from the caller's contract; `gemm` computes dst = 1·dst + scale·lhs·rhs.
    unsafe {
        gemm::gemm(
            m, n, k, dst, 1, dst_rs, accumulate, lhs.ptr, lhs.cs, lhs.rs, rhs.ptr, rhs.cs, rhs.rs, 1.0, scale, false,
            false, false, par,
        );
    }
}

/// The weight operand of [`linear`]: `[n, k]` as stored, and packed for the packed kernel.
#[derive(Clone, Copy)]
pub struct Weight<'a> {
    pub raw: &'a [f32],
    pub packed: Option<&'a PackedB>,
}

/// `out[m×n] = x[m×k] · wᵀ` for `w` stored `[n, k]` (the checkpoint's Linear layout), then the
/// epilogue, scheduled by `plan` over `threads` threads (the caller runs inside that pool).
#[allow(clippy::too_many_arguments)]
pub fn linear(
    out: &mut [f32],
    x: &[f32],
    w: Weight,
    m: usize,
    n: usize,
    k: usize,
    epilogue: &Epilogue,
    args: &EpilogueArgs,
    plan: GemmPlan,
    threads: usize,
) {
    assert!(out.len() >= m * n && x.len() >= m * k && w.raw.len() >= n * k, "gemm operand sizes");
    let out = &mut out[..m * n];
    if let (GemmKernel::Packed, Some(packed), true) = (plan.kernel, w.packed, packed::available()) {
        assert!(packed.n == n && packed.k == k, "packed weight shape");
        return linear_packed(out, x, packed, m, epilogue, args, plan, threads);
    }
    let w = w.raw;
    let block = plan.row_block.max(1);
    let product = |row0: usize, rows: usize, col0: usize, cols: usize, dst: *mut f32, par: Parallelism| {
        let lhs = View { ptr: x[row0 * k..].as_ptr(), rs: k as isize, cs: 1 };
        let rhs = View { ptr: w[col0 * k..].as_ptr(), rs: 1, cs: k as isize };
        // SAFETY: rows row0..row0+rows of `x` and weight rows col0..col0+cols lie inside the
        // operands (sizes checked above); `dst` addresses a rows×cols block of `out` with row
        // stride n that only this call writes; outputs never alias operands (buffer planner).
        unsafe { gemm_views(rows, cols, k, dst, n as isize, lhs, rhs, false, 1.0, par) };
    };
    let block_task = |(b, chunk): (usize, &mut [f32]), par: Parallelism| {
        let row0 = b * block;
        product(row0, chunk.len() / n, 0, n, chunk.as_mut_ptr(), par);
        apply_epilogue(chunk, n, row0, epilogue, args);
    };
    match plan.split {
        _ if threads <= 1 => out.chunks_mut(block * n).enumerate().for_each(|c| block_task(c, Parallelism::None)),
        Split::Serial => out.chunks_mut(block * n).enumerate().for_each(|c| block_task(c, Parallelism::None)),
        Split::Rows => out.par_chunks_mut(block * n).enumerate().for_each(|c| block_task(c, Parallelism::None)),
        Split::Inner => out.chunks_mut(block * n).enumerate().for_each(|c| block_task(c, Parallelism::Rayon(threads))),
        Split::Cols => {
            // Panels of whole SIMD-friendly widths, one per thread.
            let panel = n.div_ceil(threads).next_multiple_of(16).min(n);
            let dst = SendPtr(out.as_mut_ptr());
            (0..n.div_ceil(panel)).into_par_iter().for_each(|p| {
                let col0 = p * panel;
                // SAFETY: panel p covers columns col0..col0+cols of every row, disjoint from
                // the other panels.
                let base = unsafe { dst.get().add(col0) };
                for row0 in (0..m).step_by(block) {
                    let rows = block.min(m - row0);
                    product(row0, rows, col0, panel.min(n - col0), unsafe { base.add(row0 * n) }, Parallelism::None);
                }
            });
            out.par_chunks_mut(block * n)
                .enumerate()
                .for_each(|(b, chunk)| apply_epilogue(chunk, n, b * block, epilogue, args));
        }
    }
}

/// The packed-kernel path of [`linear`].
#[allow(clippy::too_many_arguments)]
fn linear_packed(
    out: &mut [f32],
    x: &[f32],
    b: &PackedB,
    m: usize,
    epilogue: &Epilogue,
    args: &EpilogueArgs,
    plan: GemmPlan,
    threads: usize,
) {
    let n = b.n;
    let dst = SendPtr(out.as_mut_ptr());
    let ops = TileOps {
        bias: args.bias.filter(|_| epilogue.bias),
        activation: epilogue.activation,
        residual: args.residual.filter(|_| epilogue.residual),
    };
    let panels = b.panels();
    let norm = epilogue.layer_norm_eps().zip(args.gamma_beta);
    // A task that computes whole rows normalises them itself, while they are in its cache.
    let run = |rows: std::ops::Range<usize>, cols: std::ops::Range<usize>| {
        let whole_rows = cols == (0..panels);
        // SAFETY: the CPU has AVX2 + FMA (checked by the caller); `x` holds m×k and `out` m×n
        // (checked in `linear`); concurrent calls get disjoint row or panel ranges.
        unsafe { packed::gemm_packed(x, b, dst.get(), m, rows.clone(), cols, plan.kc, &ops) };
        if let (true, Some((eps, (gamma, beta)))) = (whole_rows, norm) {
            // SAFETY: these rows belong to this task alone (disjoint row ranges).
            let block = unsafe { std::slice::from_raw_parts_mut(dst.get().add(rows.start * n), rows.len() * n) };
            layer_norm_rows(block, n, gamma, beta, eps);
        }
    };
    let parts = if plan.split == Split::Serial { 1 } else { threads.max(1) };
    match plan.split {
        _ if parts == 1 => run(0..m, 0..panels),
        Split::Rows | Split::Inner | Split::Serial => {
            let per = m.div_ceil(parts).next_multiple_of(packed::MR);
            (0..m.div_ceil(per)).into_par_iter().for_each(|t| run(t * per..((t + 1) * per).min(m), 0..panels));
        }
        Split::Cols => {
            let per = panels.div_ceil(parts);
            (0..panels.div_ceil(per)).into_par_iter().for_each(|t| run(0..m, t * per..((t + 1) * per).min(panels)));
            if let Some((eps, (gamma, beta))) = norm.filter(|_| panels.div_ceil(per) > 1) {
                out.par_chunks_mut(n * 8).for_each(|rows| layer_norm_rows(rows, n, gamma, beta, eps));
            }
        }
    }
}

/// A raw output pointer shared by tasks that write disjoint parts of one buffer.
pub struct SendPtr(pub *mut f32);
// SAFETY: users write disjoint regions only (each says which in a SAFETY comment).
unsafe impl Sync for SendPtr {}
unsafe impl Send for SendPtr {}

impl SendPtr {
    /// Through a method, so that closures capture the `Sync` wrapper, not the raw field.
    pub fn get(&self) -> *mut f32 {
        self.0
    }
}
