use super::{Notes, Pass, describe, remove_if_unused};
use crate::Result;
use crate::ir::{Graph, NodeId, Op, WeightRef};

/// Projections of one input (`x·Wqᵀ+bq`, `x·Wkᵀ+bk`, `x·Wvᵀ+bv`) → one GEMM against the
/// concatenated weights, whose column slices replace the three results. One pass over `x`
/// instead of three, and one larger GEMM that keeps the cores busy.
pub struct QkvMerge;

/// A `MatMul(x, W) → BiasAdd(b)` pair whose parameters are plain checkpoint tensors.
struct Projection {
    matmul: NodeId,
    bias_add: NodeId,
    weight: String,
    bias: String,
    width: usize,
}

fn single_weight(g: &Graph, n: NodeId) -> Option<String> {
    match g.op(n) {
        Op::Weight(WeightRef::Single(name)) => Some(name.clone()),
        _ => None,
    }
}

/// Why `matmul` cannot join a merge, or the projection it forms.
fn projection(g: &Graph, matmul: NodeId) -> std::result::Result<Projection, String> {
    let weight = single_weight(g, g.inputs(matmul)[1]).ok_or("its weight is not a checkpoint tensor")?;
    let consumers = g.consumers(matmul);
    if g.use_count(matmul) != 1 {
        return Err(format!("its result is read {} times", g.use_count(matmul)));
    }
    let bias_add = consumers[0];
    if !matches!(g.op(bias_add), Op::BiasAdd) {
        return Err(format!("it is followed by {}, not a bias add", g.op(bias_add).name()));
    }
    let bias = single_weight(g, g.inputs(bias_add)[1]).ok_or("its bias is not a checkpoint tensor")?;
    Ok(Projection { matmul, bias_add, weight, bias, width: g.node(matmul).shape[1] })
}

impl Pass for QkvMerge {
    fn name(&self) -> &'static str {
        "qkv-merge"
    }

    fn run(&self, g: &mut Graph, notes: &mut Notes) -> Result<bool> {
        let mut changed = false;
        let sources: Vec<NodeId> = g.dag.node_indices().collect();
        for x in sources {
            if !g.dag.contains_node(x) {
                continue;
            }
            let matmuls: Vec<NodeId> =
                g.consumers(x).into_iter().filter(|&c| matches!(g.op(c), Op::MatMul) && g.inputs(c)[0] == x).collect();
            if matmuls.len() < 2 {
                continue;
            }
            let mut group = Vec::new();
            for &m in &matmuls {
                match projection(g, m) {
                    Ok(p) => group.push(p),
                    Err(why) => {
                        notes.refused(|| format!("{} stays out of the merge of %{}: {why}", describe(g, m), x.index()))
                    }
                }
            }
            if group.len() < 2 {
                continue;
            }
            changed = true;
            merge(g, x, &group, notes);
        }
        Ok(changed)
    }
}

fn merge(g: &mut Graph, x: NodeId, group: &[Projection], notes: &mut Notes) {
    let rows = g.node(x).shape[0];
    let k = g.node(x).shape[1];
    let total: usize = group.iter().map(|p| p.width).sum();
    let weights = WeightRef::Concat(group.iter().map(|p| p.weight.clone()).collect());
    let biases = WeightRef::Concat(group.iter().map(|p| p.bias.clone()).collect());
    let w = g.add(Op::Weight(weights), vec![total, k], &[]);
    let b = g.add(Op::Weight(biases), vec![total], &[]);
    let mm = g.add(Op::MatMul, vec![rows, total], &[x, w]);
    let merged = g.add(Op::BiasAdd, vec![rows, total], &[mm, b]);
    let mut start = 0;
    for p in group {
        let slice = g.add(Op::Slice { start, len: p.width }, vec![rows, p.width], &[merged]);
        g.replace_uses(p.bias_add, slice);
        start += p.width;
    }
    let names: Vec<String> = group.iter().map(|p| describe(g, p.matmul)).collect();
    notes.rewrote(|| format!("{} -> %{} matmul [{rows}x{total}] + slices", names.join(", "), mm.index()));
    for p in group {
        let params = g.inputs(p.matmul).into_iter().skip(1).chain(g.inputs(p.bias_add).into_iter().skip(1));
        let params: Vec<_> = params.collect();
        remove_if_unused(g, &[p.bias_add, p.matmul]);
        remove_if_unused(g, &params);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::InputKind;

    fn linear(g: &mut Graph, x: NodeId, name: &str, n: usize) -> NodeId {
        let w = g.add(Op::Weight(WeightRef::Single(format!("{name}.weight"))), vec![n, 8], &[]);
        let b = g.add(Op::Weight(WeightRef::Single(format!("{name}.bias"))), vec![n], &[]);
        let m = g.add(Op::MatMul, vec![4, n], &[x, w]);
        g.add(Op::BiasAdd, vec![4, n], &[m, b])
    }

    #[test]
    fn structure_before_and_expected() {
        let mut before = Graph::new(1, 4);
        let x = before.add(Op::Input(InputKind::Mask), vec![4, 8], &[]);
        let q = linear(&mut before, x, "q", 6);
        let k = linear(&mut before, x, "k", 6);
        let v = linear(&mut before, x, "v", 4);
        let qk = before.add(Op::Add, vec![4, 6], &[q, k]);
        before.outputs.extend([qk, v]);

        let mut expected = Graph::new(1, 4);
        let x = expected.add(Op::Input(InputKind::Mask), vec![4, 8], &[]);
        let names = |s: &str| ["q", "k", "v"].iter().map(|p| format!("{p}.{s}")).collect::<Vec<_>>();
        let w = expected.add(Op::Weight(WeightRef::Concat(names("weight"))), vec![16, 8], &[]);
        let b = expected.add(Op::Weight(WeightRef::Concat(names("bias"))), vec![16], &[]);
        let m = expected.add(Op::MatMul, vec![4, 16], &[x, w]);
        let m = expected.add(Op::BiasAdd, vec![4, 16], &[m, b]);
        let q = expected.add(Op::Slice { start: 0, len: 6 }, vec![4, 6], &[m]);
        let k = expected.add(Op::Slice { start: 6, len: 6 }, vec![4, 6], &[m]);
        let v = expected.add(Op::Slice { start: 12, len: 4 }, vec![4, 4], &[m]);
        let qk = expected.add(Op::Add, vec![4, 6], &[q, k]);
        expected.outputs.extend([qk, v]);

        assert!(QkvMerge.run(&mut before, &mut Notes::recording()).unwrap());
        assert_eq!(before.canonical(), expected.canonical());
    }

    #[test]
    fn a_projection_read_twice_stays_out() {
        let mut g = Graph::new(1, 4);
        let x = g.add(Op::Input(InputKind::Mask), vec![4, 8], &[]);
        let q = linear(&mut g, x, "q", 6);
        let k = linear(&mut g, x, "k", 6);
        let kmm = g.inputs(k)[0];
        g.outputs.extend([q, k, kmm]);
        let mut notes = Notes::recording();
        assert!(!QkvMerge.run(&mut g, &mut notes).unwrap());
        assert!(notes.refusals[0].contains("read 2 times"), "{:?}", notes.refusals);
    }
}
