use super::{Notes, Pass, describe, remove_if_unused};
use crate::Result;
use crate::ir::{Activation, Epilogue, FusionKind, Graph, NodeId, Op};

/// Folds the ops after a GEMM into its epilogue: bias, activation, residual add and, because
/// every GEMM tile of the CPU runtime spans whole rows, the row LayerNorm that follows them.
/// The epilogue runs on each tile while it is still in cache, so the intermediate results are
/// never written to memory.
pub struct GemmEpilogue;

/// What a consumer adds to an epilogue: the new epilogue and the extra operands it brings.
struct Step {
    epilogue: Epilogue,
    operands: Vec<NodeId>,
}

/// Policy: may `consumer`, which reads the GEMM's result in `slot`, join `epilogue`?
fn should_fuse(g: &Graph, epilogue: Epilogue, consumer: NodeId, slot: usize) -> std::result::Result<Step, String> {
    let inputs = g.inputs(consumer);
    let other = |slot: usize| inputs[1 - slot];
    let done_after_bias = epilogue.activation.is_some() || epilogue.residual || epilogue.layer_norm_eps_bits.is_some();
    let mut next = epilogue;
    let operands = match g.op(consumer) {
        Op::BiasAdd if !epilogue.bias && !done_after_bias => {
            next.bias = true;
            vec![inputs[1]]
        }
        Op::Gelu | Op::Tanh
            if epilogue.activation.is_none() && !epilogue.residual && next.layer_norm_eps_bits.is_none() =>
        {
            next.activation =
                Some(if matches!(g.op(consumer), Op::Gelu) { Activation::Gelu } else { Activation::Tanh });
            vec![]
        }
        Op::Add if !epilogue.residual && epilogue.layer_norm_eps_bits.is_none() => {
            next.residual = true;
            vec![other(slot)]
        }
        Op::LayerNorm { eps } if epilogue.layer_norm_eps_bits.is_none() => {
            next.layer_norm_eps_bits = Some(eps.to_bits());
            vec![inputs[1], inputs[2]]
        }
        Op::AddLayerNorm { eps } if !epilogue.residual && epilogue.layer_norm_eps_bits.is_none() && slot < 2 => {
            next.residual = true;
            next.layer_norm_eps_bits = Some(eps.to_bits());
            vec![other(slot), inputs[2], inputs[3]]
        }
        op @ (Op::BiasAdd | Op::Gelu | Op::Tanh | Op::Add | Op::LayerNorm { .. } | Op::AddLayerNorm { .. }) => {
            return Err(format!(
                "{} cannot follow the epilogue [{}] (order is bias, activation, residual, norm)",
                op.name(),
                epilogue.label()
            ));
        }
        op => {
            let kind = op.fusion_kind();
            return Err(match kind {
                FusionKind::Elementwise | FusionKind::Broadcast => format!("{} has no epilogue form", op.name()),
                FusionKind::Reduce => format!("{} reduces across tiles, not along a tile's rows", op.name()),
                _ => format!(
                    "{} is {:?}: an epilogue takes elementwise, broadcast and row-reduce ops only",
                    op.name(),
                    kind
                ),
            });
        }
    };
    Ok(Step { epilogue: next, operands })
}

impl Pass for GemmEpilogue {
    fn name(&self) -> &'static str {
        "gemm-epilogue"
    }

    fn run(&self, g: &mut Graph, notes: &mut Notes) -> Result<bool> {
        let mut changed = false;
        let roots: Vec<NodeId> = g.dag.node_indices().filter(|&n| matches!(g.op(n), Op::MatMul)).collect();
        for root in roots {
            let inputs = g.inputs(root);
            let mut gemm = g.add(Op::Gemm(Epilogue::default()), g.node(root).shape.clone(), &inputs);
            g.replace_uses(root, gemm);
            g.dag.remove_node(root);
            changed = true;
            while let Op::Gemm(epilogue) = *g.op(gemm) {
                let consumers = g.consumers(gemm);
                if g.use_count(gemm) != 1 {
                    if g.use_count(gemm) > 1 {
                        notes.refused(|| {
                            format!("{}: result read {} times, epilogue stops", describe(g, gemm), g.use_count(gemm))
                        });
                    }
                    break;
                }
                let Some(&consumer) = consumers.first() else { break }; // read only as a graph output
                let slot = g.inputs(consumer).iter().position(|&i| i == gemm).unwrap_or(0);
                match should_fuse(g, epilogue, consumer, slot) {
                    Ok(step) => {
                        let mut operands = g.inputs(gemm);
                        operands.extend(step.operands);
                        let fused = g.add(Op::Gemm(step.epilogue), g.node(consumer).shape.clone(), &operands);
                        g.replace_uses(consumer, fused);
                        notes.rewrote(|| {
                            format!("{} into %{} gemm[{}]", describe(g, consumer), fused.index(), step.epilogue.label())
                        });
                        remove_if_unused(g, &[consumer, gemm]);
                        gemm = fused;
                    }
                    Err(why) => {
                        notes
                            .refused(|| format!("{} stays out of {}: {why}", describe(g, consumer), describe(g, gemm)));
                        break;
                    }
                }
            }
        }
        Ok(changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{InputKind, WeightRef};

    fn weight(g: &mut Graph, name: &str, shape: Vec<usize>) -> NodeId {
        g.add(Op::Weight(WeightRef::Single(name.into())), shape, &[])
    }

    #[test]
    fn bias_gelu_fold_and_a_reduce_stays_out() {
        let mut g = Graph::new(1, 4);
        let x = g.add(Op::Input(InputKind::Mask), vec![4, 8], &[]);
        let (w, b) = (weight(&mut g, "w", vec![16, 8]), weight(&mut g, "b", vec![16]));
        let m = g.add(Op::MatMul, vec![4, 16], &[x, w]);
        let m = g.add(Op::BiasAdd, vec![4, 16], &[m, b]);
        let m = g.add(Op::Gelu, vec![4, 16], &[m]);
        let m = g.add(Op::Softmax, vec![4, 16], &[m]);
        g.outputs.push(m);

        let mut expected = Graph::new(1, 4);
        let x = expected.add(Op::Input(InputKind::Mask), vec![4, 8], &[]);
        let (w, b) = (weight(&mut expected, "w", vec![16, 8]), weight(&mut expected, "b", vec![16]));
        let e = Epilogue { bias: true, activation: Some(Activation::Gelu), ..Default::default() };
        let m = expected.add(Op::Gemm(e), vec![4, 16], &[x, w, b]);
        let m = expected.add(Op::Softmax, vec![4, 16], &[m]);
        expected.outputs.push(m);

        let mut notes = Notes::recording();
        assert!(GemmEpilogue.run(&mut g, &mut notes).unwrap());
        assert_eq!(g.canonical(), expected.canonical());
        assert!(notes.refusals.iter().any(|r| r.contains("softmax") && r.contains("reduces")), "{:?}", notes.refusals);
    }

    #[test]
    fn residual_then_norm_fold_but_gelu_after_residual_does_not() {
        let mut g = Graph::new(1, 4);
        let x = g.add(Op::Input(InputKind::Mask), vec![4, 8], &[]);
        let (w, b) = (weight(&mut g, "w", vec![8, 8]), weight(&mut g, "b", vec![8]));
        let (gm, bt) = (weight(&mut g, "g", vec![8]), weight(&mut g, "bt", vec![8]));
        let m = g.add(Op::MatMul, vec![4, 8], &[x, w]);
        let m = g.add(Op::BiasAdd, vec![4, 8], &[m, b]);
        let m = g.add(Op::AddLayerNorm { eps: 1e-12 }, vec![4, 8], &[m, x, gm, bt]);
        let m = g.add(Op::Gelu, vec![4, 8], &[m]);
        g.outputs.push(m);
        let mut notes = Notes::recording();
        GemmEpilogue.run(&mut g, &mut notes).unwrap();
        assert_eq!(g.kernel_names(), ["gemm[bias+residual+ln]", "gelu"]);
        assert!(notes.refusals.iter().any(|r| r.contains("cannot follow")), "{:?}", notes.refusals);
    }
}
