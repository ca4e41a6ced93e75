use super::{Notes, Pass, describe, remove_if_unused};
use crate::Result;
use crate::ir::{Graph, NodeId, Op};

/// `LayerNorm(gather(word) + gather(position) + gather(type))` → one `EmbedLayerNorm` kernel
/// that gathers, sums and normalises each token's row in registers.
pub struct EmbeddingLayerNorm;

/// The addends of a sum tree rooted at `n`: single-use `Add`s are opened, anything else is a leaf.
fn addends(g: &Graph, n: NodeId, interior: &mut Vec<NodeId>, leaves: &mut Vec<NodeId>) {
    if matches!(g.op(n), Op::Add) && g.use_count(n) == 1 {
        interior.push(n);
        for i in g.inputs(n) {
            addends(g, i, interior, leaves);
        }
    } else {
        leaves.push(n);
    }
}

impl Pass for EmbeddingLayerNorm {
    fn name(&self) -> &'static str {
        "embedding-layer-norm"
    }

    fn run(&self, g: &mut Graph, notes: &mut Notes) -> Result<bool> {
        let norms: Vec<NodeId> = g
            .dag
            .node_indices()
            .filter(|&n| matches!(g.op(n), Op::LayerNorm { .. } | Op::AddLayerNorm { .. }))
            .collect();
        let mut changed = false;
        for ln in norms {
            let (eps, summed) = match *g.op(ln) {
                Op::LayerNorm { eps } => (eps, 1),
                Op::AddLayerNorm { eps } => (eps, 2),
                _ => continue,
            };
            let inputs = g.inputs(ln);
            let (mut interior, mut leaves) = (Vec::new(), Vec::new());
            for &i in &inputs[..summed] {
                addends(g, i, &mut interior, &mut leaves);
            }
            let gathers = leaves.iter().filter(|&&l| matches!(g.op(l), Op::Gather)).count();
            if gathers == 0 {
                continue;
            }
            if let Some(&bad) = leaves.iter().find(|&&l| !matches!(g.op(l), Op::Gather) || g.use_count(l) != 1) {
                notes.refused(|| {
                    format!("{} stays unfused: addend {} is not a single-use gather", describe(g, ln), describe(g, bad))
                });
                continue;
            }
            let mut operands = Vec::new();
            for &leaf in &leaves {
                operands.extend(g.inputs(leaf));
            }
            operands.extend(&inputs[summed..]);
            let op = Op::EmbedLayerNorm { parts: leaves.len(), eps };
            let fused = g.add(op, g.node(ln).shape.clone(), &operands);
            g.replace_uses(ln, fused);
            notes.rewrote(|| {
                format!("{} gathers + {} -> %{} embed_layer_norm", leaves.len(), describe(g, ln), fused.index())
            });
            let mut dead = vec![ln];
            dead.extend(interior);
            dead.extend(leaves);
            remove_if_unused(g, &dead);
            changed = true;
        }
        Ok(changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{InputKind, WeightRef};

    #[test]
    fn three_gathers_and_norm_become_one_kernel() {
        let mut g = Graph::new(1, 4);
        let mut parts = Vec::new();
        for (name, input) in [("w", InputKind::TokenIds), ("p", InputKind::Positions), ("t", InputKind::TokenTypes)] {
            let table = g.add(Op::Weight(WeightRef::Single(name.into())), vec![10, 8], &[]);
            let idx = g.add(Op::Input(input), vec![1, 4], &[]);
            parts.push((table, idx, g.add(Op::Gather, vec![4, 8], &[table, idx])));
        }
        let s = g.add(Op::Add, vec![4, 8], &[parts[0].2, parts[1].2]);
        let gm = g.add(Op::Weight(WeightRef::Single("g".into())), vec![8], &[]);
        let bt = g.add(Op::Weight(WeightRef::Single("b".into())), vec![8], &[]);
        let ln = g.add(Op::AddLayerNorm { eps: 1e-12 }, vec![4, 8], &[s, parts[2].2, gm, bt]);
        g.outputs.push(ln);

        let mut expected = Graph::new(1, 4);
        let mut operands = Vec::new();
        for (name, input) in [("w", InputKind::TokenIds), ("p", InputKind::Positions), ("t", InputKind::TokenTypes)] {
            operands.push(expected.add(Op::Weight(WeightRef::Single(name.into())), vec![10, 8], &[]));
            operands.push(expected.add(Op::Input(input), vec![1, 4], &[]));
        }
        operands.push(expected.add(Op::Weight(WeightRef::Single("g".into())), vec![8], &[]));
        operands.push(expected.add(Op::Weight(WeightRef::Single("b".into())), vec![8], &[]));
        let e = expected.add(Op::EmbedLayerNorm { parts: 3, eps: 1e-12 }, vec![4, 8], &operands);
        expected.outputs.push(e);

        assert!(EmbeddingLayerNorm.run(&mut g, &mut Notes::recording()).unwrap());
        assert_eq!(g.canonical(), expected.canonical());
    }
}
