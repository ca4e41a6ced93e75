//! The pass pipeline: one ordered list of small rewrites over the [`Graph`].
//!
//! Each pass is a unit struct implementing [`Pass`]. Policy (may this fuse, and if not, why) is kept
//! apart from mechanism (the rewrite), after XLA's instruction fusion; a refusal is recorded with
//! its reason in [`Notes`] so that `canao compile --explain` can show it. Passes differ from the
//! workspace's plain `run(&self, g) -> Result<bool>` shape only by that `Notes` argument.

mod attention;
mod dead_code;
mod embedding;
mod epilogue;
mod qkv_merge;
mod residual_norm;

pub use attention::AttentionFusion;
pub use dead_code::DeadCode;
pub use embedding::EmbeddingLayerNorm;
pub use epilogue::GemmEpilogue;
pub use qkv_merge::QkvMerge;
pub use residual_norm::ResidualLayerNorm;

use crate::Result;
use crate::ir::{Graph, NodeId};

/// One graph rewrite.
pub trait Pass {
    /// The pass's name, as `--explain` and `--disable-pass` spell it.
    fn name(&self) -> &'static str;
    /// Rewrites `g` in place; returns whether the graph changed.
    fn run(&self, g: &mut Graph, notes: &mut Notes) -> Result<bool>;
}

/// What passes did and refused to do, for `--explain`. Recording is off unless asked for: the
/// latency predictor optimizes thousands of archs a second and needs no prose.
#[derive(Debug, Default, Clone)]
pub struct Notes {
    pub rewrites: Vec<String>,
    pub refusals: Vec<String>,
    record: bool,
}

impl Notes {
    /// Notes that record what they are told.
    pub fn recording() -> Notes {
        Notes { record: true, ..Notes::default() }
    }
    pub(crate) fn rewrote(&mut self, what: impl FnOnce() -> String) {
        if self.record {
            self.rewrites.push(what());
        }
    }
    pub(crate) fn refused(&mut self, what: impl FnOnce() -> String) {
        if self.record {
            self.refusals.push(what());
        }
    }
}

/// The full pipeline, in order. Order matters: the QKV merge must see the three projections
/// before their bias adds are folded into epilogues, and residual + LayerNorm must be paired
/// before the GEMM epilogue pass decides whether the pair joins the preceding GEMM.
pub fn pipeline() -> Vec<Box<dyn Pass>> {
    vec![
        Box::new(QkvMerge),
        Box::new(ResidualLayerNorm),
        Box::new(GemmEpilogue),
        Box::new(AttentionFusion),
        Box::new(EmbeddingLayerNorm),
        Box::new(DeadCode),
    ]
}

/// Names of the passes of [`pipeline`], in order.
pub fn pass_names() -> Vec<&'static str> {
    pipeline().iter().map(|p| p.name()).collect()
}

/// `%12 matmul` — how notes name a node.
pub(crate) fn describe(g: &Graph, n: NodeId) -> String {
    format!("%{} {}", n.index(), g.op(n).name())
}

/// Removes `nodes` that nothing reads any more (after a rewrite rerouted their uses).
pub(crate) fn remove_if_unused(g: &mut Graph, nodes: &[NodeId]) {
    for &n in nodes {
        if g.dag.contains_node(n) && g.use_count(n) == 0 {
            g.dag.remove_node(n);
        }
    }
}
