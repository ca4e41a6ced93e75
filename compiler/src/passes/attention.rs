use super::{Notes, Pass, describe, remove_if_unused};
use crate::Result;
use crate::ir::{Graph, NodeId, Op};

/// `MergeHeads(AttnV(Softmax(MaskAdd(Scale(QkT(q, k)), mask)), v))` → one `Attention` kernel per
/// layer. The kernel works one (sequence, head) at a time with an `S×S` scratch tile per thread,
/// so the `[batch, heads, S, S]` score tensor is never materialised; it reads Q, K and V straight
/// from the projection output (the merged QKV GEMM) instead of splitting heads into copies.
pub struct AttentionFusion;

/// The matched chain, from the head merge back to the score product.
struct Chain {
    interior: Vec<NodeId>,
    q: NodeId,
    k: NodeId,
    v: NodeId,
    mask: NodeId,
    scale: f32,
}

/// Follows input `slot` of `n` if its op satisfies `want`.
fn producer(g: &Graph, n: NodeId, slot: usize, want: fn(&Op) -> bool) -> std::result::Result<NodeId, String> {
    let p = g.inputs(n)[slot];
    if want(g.op(p)) {
        Ok(p)
    } else {
        Err(format!("{} feeds {}, not the attention pattern", describe(g, p), describe(g, n)))
    }
}

fn match_chain(g: &Graph, merge: NodeId) -> std::result::Result<Chain, String> {
    let attn_v = producer(g, merge, 0, |o| matches!(o, Op::AttnV))?;
    let softmax = producer(g, attn_v, 0, |o| matches!(o, Op::Softmax))?;
    let mask_add = producer(g, softmax, 0, |o| matches!(o, Op::MaskAdd))?;
    let scale = producer(g, mask_add, 0, |o| matches!(o, Op::Scale { .. }))?;
    let qkt = producer(g, scale, 0, |o| matches!(o, Op::QkT))?;
    let Op::Scale { factor } = *g.op(scale) else { return Err("no scale".into()) };
    let split = |n: NodeId, slot: usize| producer(g, n, slot, |o| matches!(o, Op::SplitHeads { .. }));
    let (q, k, v) = (split(qkt, 0)?, split(qkt, 1)?, split(attn_v, 1)?);
    let interior = vec![attn_v, softmax, mask_add, scale, qkt];
    for &n in interior.iter().chain([q, k, v].iter()) {
        if g.use_count(n) != 1 {
            return Err(format!("{} is read {} times, so it must be written out", describe(g, n), g.use_count(n)));
        }
    }
    Ok(Chain { interior, q, k, v, mask: g.inputs(mask_add)[1], scale: factor })
}

/// The tensor a head split reads and the column it starts at; a column slice is read in place.
fn source(g: &Graph, split: NodeId) -> (NodeId, usize, Option<NodeId>) {
    let src = g.inputs(split)[0];
    match *g.op(src) {
        Op::Slice { start, .. } if g.use_count(src) == 1 => (g.inputs(src)[0], start, Some(src)),
        _ => (src, 0, None),
    }
}

impl Pass for AttentionFusion {
    fn name(&self) -> &'static str {
        "attention-fusion"
    }

    fn run(&self, g: &mut Graph, notes: &mut Notes) -> Result<bool> {
        let merges: Vec<NodeId> = g.dag.node_indices().filter(|&n| matches!(g.op(n), Op::MergeHeads { .. })).collect();
        let mut changed = false;
        for merge in merges {
            let Op::MergeHeads { heads, head_dim } = *g.op(merge) else { continue };
            let chain = match match_chain(g, merge) {
                Ok(chain) => chain,
                Err(why) => {
                    notes.refused(|| format!("{} stays unfused: {why}", describe(g, merge)));
                    continue;
                }
            };
            let (q_src, q_col, q_slice) = source(g, chain.q);
            let (k_src, k_col, k_slice) = source(g, chain.k);
            let (v_src, v_col, v_slice) = source(g, chain.v);
            let op = Op::Attention { heads, head_dim, scale: chain.scale, q_col, k_col, v_col };
            let fused = g.add(op, g.node(merge).shape.clone(), &[q_src, k_src, v_src, chain.mask]);
            g.replace_uses(merge, fused);
            notes.rewrote(|| {
                format!(
                    "{} and its {} producers -> %{} attention",
                    describe(g, merge),
                    chain.interior.len() + 3,
                    fused.index()
                )
            });
            let mut dead = vec![merge];
            dead.extend(chain.interior);
            dead.extend([chain.q, chain.k, chain.v]);
            dead.extend([q_slice, k_slice, v_slice].into_iter().flatten());
            remove_if_unused(g, &dead);
            changed = true;
        }
        Ok(changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::InputKind;

    /// One attention block over a merged `[T, 3·A]` projection, as the QKV merge leaves it.
    fn attention_block(g: &mut Graph, softmax_is_output: bool) -> NodeId {
        let (b, s, h, d) = (2, 4, 2, 3);
        let qkv = g.add(Op::Input(InputKind::TokenIds), vec![b * s, 3 * h * d], &[]);
        let mask = g.add(Op::Input(InputKind::Mask), vec![b, s], &[]);
        let split = |g: &mut Graph, i: usize| {
            let sl = g.add(Op::Slice { start: i * h * d, len: h * d }, vec![b * s, h * d], &[qkv]);
            g.add(Op::SplitHeads { heads: h, head_dim: d }, vec![b, h, s, d], &[sl])
        };
        let (q, k, v) = (split(g, 0), split(g, 1), split(g, 2));
        let sc = g.add(Op::QkT, vec![b, h, s, s], &[q, k]);
        let sc = g.add(Op::Scale { factor: 0.5 }, vec![b, h, s, s], &[sc]);
        let sc = g.add(Op::MaskAdd, vec![b, h, s, s], &[sc, mask]);
        let p = g.add(Op::Softmax, vec![b, h, s, s], &[sc]);
        let c = g.add(Op::AttnV, vec![b, h, s, d], &[p, v]);
        let out = g.add(Op::MergeHeads { heads: h, head_dim: d }, vec![b * s, h * d], &[c]);
        g.outputs.push(out);
        if softmax_is_output {
            g.outputs.push(p);
        }
        out
    }

    #[test]
    fn structure_before_and_expected() {
        let mut g = Graph::new(2, 4);
        attention_block(&mut g, false);
        let mut expected = Graph::new(2, 4);
        let qkv = expected.add(Op::Input(InputKind::TokenIds), vec![8, 18], &[]);
        let mask = expected.add(Op::Input(InputKind::Mask), vec![2, 4], &[]);
        let op = Op::Attention { heads: 2, head_dim: 3, scale: 0.5, q_col: 0, k_col: 6, v_col: 12 };
        let a = expected.add(op, vec![8, 6], &[qkv, qkv, qkv, mask]);
        expected.outputs.push(a);
        assert!(AttentionFusion.run(&mut g, &mut Notes::recording()).unwrap());
        assert_eq!(g.canonical(), expected.canonical());
        assert_eq!(g.kernel_count(), 1);
    }

    #[test]
    fn probabilities_that_are_an_output_block_the_fusion() {
        let mut g = Graph::new(2, 4);
        attention_block(&mut g, true);
        let mut notes = Notes::recording();
        assert!(!AttentionFusion.run(&mut g, &mut notes).unwrap());
        assert!(notes.refusals[0].contains("softmax is read 2 times"), "{:?}", notes.refusals);
    }
}
