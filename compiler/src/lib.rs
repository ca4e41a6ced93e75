//! The canao compiler: lowers a BERT [`arch::Arch`] to a dataflow graph ([`ir`]), fuses it with an
//! ordered pipeline of small passes ([`passes`]), plans its buffers ([`plan`]), and builds an
//! executable CPU [`Program`] of SIMD, multi-threaded kernels whose GEMM schedules are tuned on the
//! running machine ([`tune`]). The kernel list of a program, each kernel with its [`KernelKey`],
//! is what latency is predicted from. An independent plain forward ([`reference`]) checks it.
//!
//! This crate must not know about burn training or the search.

mod error;
mod exec;
pub mod ir;
pub mod kernels;
mod key;
pub mod lower;
pub mod passes;
pub mod plan;
mod program;
pub mod reference;
pub mod timing;
pub mod tune;
mod weights;

pub use error::{Error, Result};
pub use exec::Kernel;
pub use key::{KernelKey, PrimitiveOp, kernel_keys};
pub use lower::{BERT_LAYER_NORM_EPS, lower, weight_specs};
pub use program::{
    Batch, CompileOptions, Optimized, PassReport, PassSelection, Program, Tuning, compile, fused_graph, optimize,
};
pub use weights::{Tensor, Weights};
