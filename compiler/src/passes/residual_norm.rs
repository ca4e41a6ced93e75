use super::{Notes, Pass, describe, remove_if_unused};
use crate::Result;
use crate::ir::{Graph, Op};

/// `LayerNorm(a + b)` → one `AddLayerNorm` kernel: the sum is never written out.
pub struct ResidualLayerNorm;

impl Pass for ResidualLayerNorm {
    fn name(&self) -> &'static str {
        "residual-layer-norm"
    }

    fn run(&self, g: &mut Graph, notes: &mut Notes) -> Result<bool> {
        let mut changed = false;
        let norms: Vec<_> = g.dag.node_indices().filter(|&n| matches!(g.op(n), Op::LayerNorm { .. })).collect();
        for ln in norms {
            let Op::LayerNorm { eps } = *g.op(ln) else { continue };
            let inputs = g.inputs(ln);
            let sum = inputs[0];
            if !matches!(g.op(sum), Op::Add) {
                continue;
            }
            if g.use_count(sum) != 1 {
                notes.refused(|| {
                    format!(
                        "{} + {}: the sum is read {} times, so it must be written out",
                        describe(g, sum),
                        describe(g, ln),
                        g.use_count(sum)
                    )
                });
                continue;
            }
            let addends = g.inputs(sum);
            let shape = g.node(ln).shape.clone();
            let fused = g.add(Op::AddLayerNorm { eps }, shape, &[addends[0], addends[1], inputs[1], inputs[2]]);
            g.replace_uses(ln, fused);
            notes
                .rewrote(|| format!("{} + {} -> %{} add_layer_norm", describe(g, sum), describe(g, ln), fused.index()));
            remove_if_unused(g, &[ln, sum]);
            changed = true;
        }
        Ok(changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{InputKind, WeightRef};

    fn w(g: &mut Graph, name: &str) -> crate::ir::NodeId {
        g.add(Op::Weight(WeightRef::Single(name.into())), vec![4], &[])
    }

    #[test]
    fn structure_before_and_expected() {
        let mut before = Graph::new(1, 2);
        let a = before.add(Op::Input(InputKind::Mask), vec![2, 4], &[]);
        let b = before.add(Op::Gelu, vec![2, 4], &[a]);
        let s = before.add(Op::Add, vec![2, 4], &[a, b]);
        let (gm, bt) = (w(&mut before, "g"), w(&mut before, "b"));
        let ln = before.add(Op::LayerNorm { eps: 1e-5 }, vec![2, 4], &[s, gm, bt]);
        before.outputs.push(ln);

        let mut expected = Graph::new(1, 2);
        let a2 = expected.add(Op::Input(InputKind::Mask), vec![2, 4], &[]);
        let b2 = expected.add(Op::Gelu, vec![2, 4], &[a2]);
        let (gm2, bt2) = (w(&mut expected, "g"), w(&mut expected, "b"));
        let f = expected.add(Op::AddLayerNorm { eps: 1e-5 }, vec![2, 4], &[a2, b2, gm2, bt2]);
        expected.outputs.push(f);

        assert!(ResidualLayerNorm.run(&mut before, &mut Notes::recording()).unwrap());
        assert_eq!(before.canonical(), expected.canonical());
        assert_eq!(before.kernel_names(), expected.kernel_names());
    }

    #[test]
    fn refuses_when_the_sum_is_read_twice() {
        let mut g = Graph::new(1, 2);
        let a = g.add(Op::Input(InputKind::Mask), vec![2, 4], &[]);
        let s = g.add(Op::Add, vec![2, 4], &[a, a]);
        let (gm, bt) = (w(&mut g, "g"), w(&mut g, "b"));
        let ln = g.add(Op::LayerNorm { eps: 1e-5 }, vec![2, 4], &[s, gm, bt]);
        g.outputs.extend([ln, s]);
        let mut notes = Notes::recording();
        assert!(!ResidualLayerNorm.run(&mut g, &mut notes).unwrap());
        assert!(notes.refusals[0].contains("read 2 times"), "{:?}", notes.refusals);
    }
}
