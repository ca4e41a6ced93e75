use std::collections::BTreeSet;

use super::{Notes, Pass};
use crate::Result;
use crate::ir::Graph;

/// Removes every node that no output depends on.
pub struct DeadCode;

impl Pass for DeadCode {
    fn name(&self) -> &'static str {
        "dead-code"
    }

    fn run(&self, g: &mut Graph, notes: &mut Notes) -> Result<bool> {
        let mut live = BTreeSet::new();
        let mut stack = g.outputs.clone();
        while let Some(n) = stack.pop() {
            if live.insert(n) {
                stack.extend(g.inputs(n));
            }
        }
        let dead: Vec<_> = g.dag.node_indices().filter(|n| !live.contains(n)).collect();
        for &n in &dead {
            g.dag.remove_node(n);
        }
        if !dead.is_empty() {
            notes.rewrote(|| format!("removed {} dead nodes", dead.len()));
        }
        Ok(!dead.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{InputKind, Op};

    #[test]
    fn removes_what_no_output_reads() {
        let mut g = Graph::new(1, 4);
        let a = g.add(Op::Input(InputKind::Mask), vec![1, 4], &[]);
        let b = g.add(Op::Gelu, vec![1, 4], &[a]);
        let _dead = g.add(Op::Tanh, vec![1, 4], &[a]);
        g.outputs.push(b);
        assert!(DeadCode.run(&mut g, &mut Notes::recording()).unwrap());
        assert_eq!(g.dag.node_count(), 2);
        assert!(!DeadCode.run(&mut g, &mut Notes::recording()).unwrap());
    }
}
