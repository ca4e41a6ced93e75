//! The compiler's intermediate representation: a dataflow graph of tensor ops on petgraph.
//!
//! Every node produces one f32 tensor (index inputs aside) whose shape it carries. Edges carry the
//! input slot they feed, so an op's operands are ordered without relying on edge insertion order.
//! Ops form a closed enum; each declares its [`FusionKind`], and passes reason over kinds (after
//! TVM's `OpPatternKind`), never over op names where a kind will do.

use std::fmt;

use petgraph::Direction;
use petgraph::stable_graph::{NodeIndex, StableGraph};
use petgraph::visit::EdgeRef;
use serde::{Deserialize, Serialize};

/// A node handle in a [`Graph`].
pub type NodeId = NodeIndex<u32>;

/// How an op may combine with its neighbours, ordered from the most to the least fusable
/// (TVM's `OpPatternKind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum FusionKind {
    /// One output element from the same-index input elements.
    Elementwise,
    /// Elementwise with an operand broadcast along some axes (bias, mask).
    Broadcast,
    /// Each output element from one input element at a computed index (slices, head layout).
    Injective,
    /// Reduces along an axis (layer norm, softmax, pooling).
    Reduce,
    /// Expensive op whose output elementwise consumers can be fused into it (GEMM epilogues).
    OutElementwiseFusable,
    /// Fuses with nothing (inputs, weights, and kernels that are already fused).
    Opaque,
}

/// A runtime input of the model, shaped `[batch, seq]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum InputKind {
    /// WordPiece token ids.
    TokenIds,
    /// Segment (token type) ids.
    TokenTypes,
    /// Positions `0..seq` of every sequence (implied, not supplied by the caller).
    Positions,
    /// Attention mask: 1 for real tokens, 0 for padding.
    Mask,
}

/// A parameter tensor, named as in the Hugging Face BERT checkpoint layout.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub enum WeightRef {
    /// One checkpoint tensor.
    Single(String),
    /// Several checkpoint tensors concatenated along their first axis (merged projections).
    Concat(Vec<String>),
}

/// The activation applied in a GEMM epilogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Activation {
    /// Exact (erf) GELU, as in BERT.
    Gelu,
    /// Hyperbolic tangent, as in BERT's pooler.
    Tanh,
}

/// What a fused GEMM does to its result before storing it, in this order: add a bias, apply an
/// activation, add a residual, normalise each row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Epilogue {
    pub bias: bool,
    pub activation: Option<Activation>,
    pub residual: bool,
    /// Row LayerNorm with this epsilon (stored as bits so that the key stays `Eq + Hash`).
    pub layer_norm_eps_bits: Option<u32>,
}

impl Epilogue {
    /// The LayerNorm epsilon, if the epilogue normalises rows.
    pub fn layer_norm_eps(&self) -> Option<f32> {
        self.layer_norm_eps_bits.map(f32::from_bits)
    }

    /// Short human name, e.g. `bias+gelu` or `bias+residual+ln`.
    pub fn label(&self) -> String {
        let mut parts = Vec::new();
        if self.bias {
            parts.push("bias");
        }
        match self.activation {
            Some(Activation::Gelu) => parts.push("gelu"),
            Some(Activation::Tanh) => parts.push("tanh"),
            None => {}
        }
        if self.residual {
            parts.push("residual");
        }
        if self.layer_norm_eps_bits.is_some() {
            parts.push("ln");
        }
        if parts.is_empty() { "plain".into() } else { parts.join("+") }
    }
}

/// One tensor operation. Shapes in the docs use `T = batch * seq` token rows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Op {
    /// A runtime input, `[B, S]`.
    Input(InputKind),
    /// A parameter tensor.
    Weight(WeightRef),
    /// `(table [R, H], index [B, S]) -> [T, H]`: rows of a table.
    Gather,
    /// `(a, b) -> a + b`, same shapes.
    Add,
    /// `(x [T, H], gamma [H], beta [H])`: normalise each row.
    LayerNorm { eps: f32 },
    /// `(x [M, K], w [N, K]) -> x · wᵀ [M, N]` (the checkpoint's Linear layout).
    MatMul,
    /// `(x [M, N], b [N])`.
    BiasAdd,
    /// Exact GELU.
    Gelu,
    /// Hyperbolic tangent.
    Tanh,
    /// Columns `start..start + len` of `[M, N]`.
    Slice { start: usize, len: usize },
    /// `[T, heads * d] -> [B, heads, S, d]`.
    SplitHeads { heads: usize, head_dim: usize },
    /// `[B, heads, S, d] -> [T, heads * d]`.
    MergeHeads { heads: usize, head_dim: usize },
    /// `(q [B, h, S, d], k [B, h, S, d]) -> q · kᵀ [B, h, S, S]`.
    QkT,
    /// Multiply by a constant.
    Scale { factor: f32 },
    /// `(scores [B, h, S, S], mask [B, S])`: padding keys get the most negative f32.
    MaskAdd,
    /// Softmax over the last axis.
    Softmax,
    /// `(p [B, h, S, S], v [B, h, S, d]) -> p · v [B, h, S, d]`.
    AttnV,
    /// `[T, H] -> [B, H]`: the first token of every sequence.
    FirstToken,
    /// `(x [T, H], mask [B, S]) -> [B, H]`: mean over the real tokens.
    MeanPool,
    /// Fused `(x, residual, gamma, beta)`: LayerNorm(x + residual).
    AddLayerNorm { eps: f32 },
    /// Fused `(x, w, [bias], [residual], [gamma, beta])`: a GEMM and its epilogue.
    Gemm(Epilogue),
    /// Fused `(q_src, k_src, v_src, mask) -> [T, heads * d]`: scaled, masked softmax attention
    /// for all heads of a layer. Each source is `[T, width]`, read from the given column offset.
    Attention { heads: usize, head_dim: usize, scale: f32, q_col: usize, k_col: usize, v_col: usize },
    /// Fused `(table_0, index_0, …, table_n, index_n, gamma, beta)`: sum of gathers, then LayerNorm.
    EmbedLayerNorm { parts: usize, eps: f32 },
}

impl Op {
    /// The op's fusion kind (what it may combine with).
    pub fn fusion_kind(&self) -> FusionKind {
        use FusionKind::*;
        match self {
            Op::Add | Op::Gelu | Op::Tanh | Op::Scale { .. } => Elementwise,
            Op::BiasAdd | Op::MaskAdd => Broadcast,
            Op::Gather | Op::Slice { .. } | Op::SplitHeads { .. } | Op::MergeHeads { .. } | Op::FirstToken => Injective,
            Op::LayerNorm { .. } | Op::Softmax | Op::MeanPool | Op::AddLayerNorm { .. } => Reduce,
            Op::MatMul | Op::QkT | Op::AttnV | Op::Gemm(_) => OutElementwiseFusable,
            Op::Input(_) | Op::Weight(_) | Op::Attention { .. } | Op::EmbedLayerNorm { .. } => Opaque,
        }
    }

    /// Whether this node is computed by a kernel (inputs and weights are not).
    pub fn is_kernel(&self) -> bool {
        !matches!(self, Op::Input(_) | Op::Weight(_))
    }

    /// A short name for listings and DOT output.
    pub fn name(&self) -> String {
        match self {
            Op::Input(kind) => format!("input:{kind:?}"),
            Op::Weight(WeightRef::Single(name)) => format!("weight:{name}"),
            Op::Weight(WeightRef::Concat(names)) => format!("weight:concat({})", names.join(",")),
            Op::Gemm(epilogue) => format!("gemm[{}]", epilogue.label()),
            Op::Slice { start, len } => format!("slice[{start}..{}]", start + len),
            Op::Attention { heads, head_dim, .. } => format!("attention[{heads}x{head_dim}]"),
            Op::EmbedLayerNorm { parts, .. } => format!("embed_layer_norm[{parts}]"),
            other => {
                let debug = format!("{other:?}");
                let head = debug.split([' ', '{', '(']).next().unwrap_or_default().to_string();
                to_snake(&head)
            }
        }
    }
}

fn to_snake(camel: &str) -> String {
    let mut out = String::new();
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// A node: its op and the shape of the tensor it produces.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Node {
    pub op: Op,
    pub shape: Vec<usize>,
}

impl Node {
    /// Number of elements of the node's output.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// An edge feeds its source node's output into input slot `slot` of its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Edge {
    pub slot: usize,
}

/// The dataflow graph of one model, for a fixed batch size and sequence length.
#[derive(Debug, Clone)]
pub struct Graph {
    pub dag: StableGraph<Node, Edge, petgraph::Directed, u32>,
    /// The model's outputs, in order.
    pub outputs: Vec<NodeId>,
    pub batch: usize,
    pub seq: usize,
}

impl Graph {
    /// An empty graph for `batch` sequences of `seq` tokens.
    pub fn new(batch: usize, seq: usize) -> Graph {
        Graph { dag: StableGraph::default(), outputs: Vec::new(), batch, seq }
    }

    /// Adds a node computing `op` over `inputs` (in slot order).
    pub fn add(&mut self, op: Op, shape: Vec<usize>, inputs: &[NodeId]) -> NodeId {
        let id = self.dag.add_node(Node { op, shape });
        for (slot, &input) in inputs.iter().enumerate() {
            self.dag.add_edge(input, id, Edge { slot });
        }
        id
    }

    /// The node behind `id`. Panics on a removed id, which is a compiler bug, not bad input.
    pub fn node(&self, id: NodeId) -> &Node {
        &self.dag[id]
    }

    /// The op of `id`.
    pub fn op(&self, id: NodeId) -> &Op {
        &self.dag[id].op
    }

    /// The operands of `id`, in slot order.
    pub fn inputs(&self, id: NodeId) -> Vec<NodeId> {
        let mut edges: Vec<(usize, NodeId)> =
            self.dag.edges_directed(id, Direction::Incoming).map(|e| (e.weight().slot, e.source())).collect();
        edges.sort_by_key(|&(slot, _)| slot);
        edges.into_iter().map(|(_, n)| n).collect()
    }

    /// The nodes that read `id` (one entry per reading slot), in a stable order.
    pub fn consumers(&self, id: NodeId) -> Vec<NodeId> {
        let mut out: Vec<NodeId> = self.dag.neighbors_directed(id, Direction::Outgoing).collect();
        out.sort();
        out
    }

    /// How many times `id` is read, counting graph outputs.
    pub fn use_count(&self, id: NodeId) -> usize {
        self.dag.edges_directed(id, Direction::Outgoing).count() + self.outputs.iter().filter(|&&o| o == id).count()
    }

    /// Makes every reader of `old` (and the outputs) read `new` instead.
    pub fn replace_uses(&mut self, old: NodeId, new: NodeId) {
        let uses: Vec<_> =
            self.dag.edges_directed(old, Direction::Outgoing).map(|e| (e.id(), e.target(), *e.weight())).collect();
        for (edge, target, weight) in uses {
            self.dag.remove_edge(edge);
            self.dag.add_edge(new, target, weight);
        }
        for out in &mut self.outputs {
            if *out == old {
                *out = new;
            }
        }
    }

    /// Kernel nodes in a deterministic topological order (ties broken by node index).
    pub fn schedule(&self) -> Vec<NodeId> {
        let mut indegree: std::collections::BTreeMap<NodeId, usize> =
            self.dag.node_indices().map(|n| (n, self.dag.edges_directed(n, Direction::Incoming).count())).collect();
        let mut ready: std::collections::BTreeSet<NodeId> =
            indegree.iter().filter(|&(_, &d)| d == 0).map(|(&n, _)| n).collect();
        let mut order = Vec::with_capacity(indegree.len());
        while let Some(n) = ready.pop_first() {
            order.push(n);
            for e in self.dag.edges_directed(n, Direction::Outgoing) {
                if let Some(d) = indegree.get_mut(&e.target()) {
                    *d -= 1;
                    if *d == 0 {
                        ready.insert(e.target());
                    }
                }
            }
        }
        order.retain(|&n| self.dag[n].op.is_kernel());
        order
    }

    /// Number of kernels (nodes that compute).
    pub fn kernel_count(&self) -> usize {
        self.dag.node_weights().filter(|n| n.op.is_kernel()).count()
    }

    /// Kernel names in schedule order, e.g. for `--explain`.
    pub fn kernel_names(&self) -> Vec<String> {
        self.schedule().into_iter().map(|n| self.dag[n].op.name()).collect()
    }

    /// A text form that depends only on structure, not on node ids: nodes are numbered in
    /// post-order from the outputs, operands in slot order. Two graphs that compute the same
    /// thing the same way print the same; structural pass tests compare these.
    pub fn canonical(&self) -> String {
        let mut number = std::collections::HashMap::new();
        let mut lines = Vec::new();
        for &out in &self.outputs {
            let mut stack = vec![(out, false)];
            while let Some((n, expanded)) = stack.pop() {
                if number.contains_key(&n) {
                    continue;
                }
                if expanded {
                    let args: Vec<String> = self
                        .inputs(n)
                        .iter()
                        .map(|i| format!("v{}", number.get(i).copied().unwrap_or(usize::MAX)))
                        .collect();
                    let node = &self.dag[n];
                    lines.push(format!(
                        "v{} = {}({}) : {:?}",
                        lines.len(),
                        node.op.name(),
                        args.join(", "),
                        node.shape
                    ));
                    number.insert(n, lines.len() - 1);
                } else {
                    stack.push((n, true));
                    for i in self.inputs(n).into_iter().rev() {
                        stack.push((i, false));
                    }
                }
            }
        }
        let outs: Vec<String> = self.outputs.iter().map(|o| format!("v{}", number[o])).collect();
        lines.push(format!("outputs({})", outs.join(", ")));
        lines.join("\n")
    }

    /// Graphviz DOT text of the graph.
    pub fn to_dot(&self) -> String {
        let mut out = String::from("digraph canao {\n  rankdir=TB;\n  node [shape=box, fontname=monospace];\n");
        for n in self.dag.node_indices() {
            let node = &self.dag[n];
            let style = if node.op.is_kernel() { "" } else { ", style=dashed" };
            out.push_str(&format!("  n{} [label=\"{}\\n{:?}\"{style}];\n", n.index(), node.op.name(), node.shape));
        }
        for e in self.dag.edge_indices() {
            if let Some((a, b)) = self.dag.edge_endpoints(e) {
                out.push_str(&format!("  n{} -> n{} [label=\"{}\"];\n", a.index(), b.index(), self.dag[e].slot));
            }
        }
        out.push_str("}\n");
        out
    }
}

impl fmt::Display for Graph {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for n in self.schedule() {
            let node = &self.dag[n];
            let inputs: Vec<String> = self.inputs(n).iter().map(|i| format!("%{}", i.index())).collect();
            writeln!(f, "%{} = {}({}) : {:?}", n.index(), node.op.name(), inputs.join(", "), node.shape)?;
        }
        Ok(())
    }
}
