//! Running one kernel: operands resolved from buffers, weights and inputs, then the matching
//! kernel function called with the shapes fixed at compile time.

use std::sync::Arc;

use crate::ir::{Activation, InputKind, Op};
use crate::kernels::attention::{AttentionShape, attention};
use crate::kernels::gemm::{GemmPlan, View, Weight, gemm_views, linear};
use crate::kernels::packed::PackedB;
use crate::kernels::rows::{EpilogueArgs, activation, add_layer_norm, softmax_rows};
use crate::kernels::{self, for_row_chunks};
use crate::key::KernelKey;
use crate::program::Batch;

/// Where a kernel operand lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Src {
    Buffer(usize),
    Weight(usize),
    Input(InputKind),
}

/// One step of a [`crate::Program`].
#[derive(Debug, Clone)]
pub struct Kernel {
    /// Kind and shape, for latency prediction.
    pub key: KernelKey,
    pub(crate) op: Op,
    pub(crate) inputs: Vec<Src>,
    pub(crate) input_shapes: Vec<Vec<usize>>,
    pub(crate) out_shape: Vec<usize>,
    pub(crate) output: usize,
    /// The tuned schedule, for GEMM kernels.
    pub gemm: Option<GemmPlan>,
    /// The weight operand packed for the packed GEMM kernel.
    pub(crate) packed: Option<Arc<PackedB>>,
}

/// What operands are read from while a program runs.
pub(crate) struct Env<'a> {
    pub buffers: &'a [Vec<f32>],
    pub weights: &'a [Arc<Vec<f32>>],
    pub positions: &'a [u32],
    pub input: &'a Batch,
    pub seq: usize,
    pub threads: usize,
}

impl Env<'_> {
    fn f(&self, src: Src) -> &[f32] {
        match src {
            Src::Buffer(b) => &self.buffers[b],
            Src::Weight(w) => &self.weights[w],
            Src::Input(InputKind::Mask) => &self.input.mask,
            Src::Input(kind) => unreachable!("{kind:?} is an index input, read with `index`"),
        }
    }

    fn index(&self, src: Src) -> &[u32] {
        match src {
            Src::Input(InputKind::TokenIds) => &self.input.ids,
            Src::Input(InputKind::TokenTypes) => &self.input.types,
            Src::Input(InputKind::Positions) => self.positions,
            other => unreachable!("{other:?} is not an index input"),
        }
    }
}

/// Runs `kernel`, writing its output into `out`.
pub(crate) fn run_kernel(kernel: &Kernel, env: &Env, out: &mut [f32]) {
    let numel: usize = kernel.out_shape.iter().product();
    let out = &mut out[..numel];
    let ins = &kernel.inputs;
    let shape = |i: usize| &kernel.input_shapes[i];
    let width = kernel.out_shape.last().copied().unwrap_or(1);
    let threads = env.threads;
    match &kernel.op {
        Op::MatMul | Op::Gemm(_) => {
            let epilogue = match &kernel.op {
                Op::Gemm(e) => *e,
                _ => Default::default(),
            };
            let (m, n, k) = (kernel.out_shape[0], kernel.out_shape[1], shape(0)[1]);
            let mut next = 2;
            let mut take = || {
                next += 1;
                env.f(ins[next - 1])
            };
            let bias = epilogue.bias.then(&mut take);
            let residual = epilogue.residual.then(&mut take);
            let gamma_beta = epilogue.layer_norm_eps_bits.map(|_| (take(), take()));
            let args = EpilogueArgs { bias, residual, gamma_beta };
            let plan = kernel.gemm.unwrap_or_else(|| GemmPlan::heuristic(m, n, threads));
            let w = Weight { raw: env.f(ins[1]), packed: kernel.packed.as_deref() };
            linear(out, env.f(ins[0]), w, m, n, k, &epilogue, &args, plan, threads);
        }
        Op::Attention { heads, head_dim, scale, q_col, k_col, v_col } => {
            let seq = env.seq;
            let s = AttentionShape {
                batch: kernel.out_shape[0] / seq,
                seq,
                heads: *heads,
                head_dim: *head_dim,
                scale: *scale,
                q_ld: shape(0)[1],
                k_ld: shape(1)[1],
                v_ld: shape(2)[1],
                q_col: *q_col,
                k_col: *k_col,
                v_col: *v_col,
            };
            attention(out, env.f(ins[0]), env.f(ins[1]), env.f(ins[2]), env.f(ins[3]), s, threads);
        }
        Op::EmbedLayerNorm { parts, eps } => {
            let tables: Vec<(&[f32], &[u32])> =
                (0..*parts).map(|p| (env.f(ins[2 * p]), env.index(ins[2 * p + 1]))).collect();
            let (gamma, beta) = (env.f(ins[2 * parts]), env.f(ins[2 * parts + 1]));
            kernels::embed_layer_norm(out, &tables, gamma, beta, width, *eps, threads);
        }
        Op::AddLayerNorm { eps } => {
            let (a, b, g, beta) = (env.f(ins[0]), env.f(ins[1]), env.f(ins[2]), env.f(ins[3]));
            for_row_chunks(out, width, threads, |r0, rows| {
                let span = r0 * width..r0 * width + rows.len();
                add_layer_norm(rows, &a[span.clone()], Some(&b[span]), g, beta, width, *eps)
            });
        }
        Op::LayerNorm { eps } => {
            let (a, g, beta) = (env.f(ins[0]), env.f(ins[1]), env.f(ins[2]));
            for_row_chunks(out, width, threads, |r0, rows| {
                add_layer_norm(rows, &a[r0 * width..r0 * width + rows.len()], None, g, beta, width, *eps)
            });
        }
        Op::Gather => kernels::gather(out, env.f(ins[0]), env.index(ins[1]), width),
        Op::Add => kernels::add(out, env.f(ins[0]), env.f(ins[1])),
        Op::BiasAdd => kernels::bias_add(out, env.f(ins[0]), env.f(ins[1])),
        Op::Gelu => activation(out, env.f(ins[0]), Activation::Gelu),
        Op::Tanh => activation(out, env.f(ins[0]), Activation::Tanh),
        Op::Scale { factor } => kernels::scale(out, env.f(ins[0]), *factor),
        Op::Softmax => {
            out.copy_from_slice(&env.f(ins[0])[..numel]);
            softmax_rows(out, width);
        }
        Op::MaskAdd => {
            let s = &kernel.out_shape;
            kernels::mask_add(out, env.f(ins[0]), env.f(ins[1]), s[0], s[1], s[2]);
        }
        Op::Slice { start, len } => kernels::slice_columns(out, env.f(ins[0]), shape(0)[1], *start, *len),
        Op::SplitHeads { heads, head_dim } => {
            let s = &kernel.out_shape;
            kernels::permute_heads(out, env.f(ins[0]), s[0], s[2], *heads, *head_dim, true);
        }
        Op::MergeHeads { heads, head_dim } => {
            let s = shape(0);
            kernels::permute_heads(out, env.f(ins[0]), s[0], s[2], *heads, *head_dim, false);
        }
        Op::QkT | Op::AttnV => batched_gemm(out, env.f(ins[0]), env.f(ins[1]), kernel, threads),
        Op::FirstToken => {
            let s = shape(0);
            let batch = kernel.out_shape[0];
            kernels::first_token(out, env.f(ins[0]), batch, s[0] / batch, s[1]);
        }
        Op::MeanPool => {
            let s = shape(0);
            let batch = kernel.out_shape[0];
            kernels::mean_pool(out, env.f(ins[0]), env.f(ins[1]), batch, s[0] / batch, s[1]);
        }
        Op::Input(_) | Op::Weight(_) => unreachable!("inputs and weights are not kernels"),
    }
}

/// `q·kᵀ` (`QkT`) or `p·v` (`AttnV`) for every (sequence, head), each a contiguous matrix.
fn batched_gemm(out: &mut [f32], a: &[f32], b: &[f32], kernel: &Kernel, threads: usize) {
    use rayon::prelude::*;
    let KernelKey::BatchedGemm { m, n, k, .. } = kernel.key else { unreachable!("batched gemm key") };
    let transpose_b = matches!(kernel.op, Op::QkT);
    let run = |(i, chunk): (usize, &mut [f32])| {
        let lhs = View { ptr: a[i * m * k..].as_ptr(), rs: k as isize, cs: 1 };
        let rhs = if transpose_b {
            View { ptr: b[i * n * k..].as_ptr(), rs: 1, cs: k as isize }
        } else {
            View { ptr: b[i * k * n..].as_ptr(), rs: n as isize, cs: 1 }
        };
        // SAFETY: chunk `i` is `m×n`; `a` and `b` hold `batch` matrices of `m×k` and `k×n`
        // (`n×k` when transposed), as the shapes of the graph say; outputs never alias inputs.
        unsafe { gemm_views(m, n, k, chunk.as_mut_ptr(), n as isize, lhs, rhs, false, 1.0, gemm::Parallelism::None) };
    };
    if threads <= 1 {
        out.chunks_mut(m * n).enumerate().for_each(run);
    } else {
        out.par_chunks_mut(m * n).enumerate().for_each(run);
    }
}
