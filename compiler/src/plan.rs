//! Buffer planning: every kernel's output gets a buffer; a buffer is reused once the last reader
//! of its value has run. The planner never hands a kernel's output the buffer of one of its own
//! inputs, so kernels may read and write without aliasing. The sum of buffer sizes is the
//! program's peak activation memory.

use std::collections::HashMap;

use crate::ir::{Graph, NodeId};

/// Where each kernel's output lives.
#[derive(Debug, Clone)]
pub struct BufferPlan {
    /// Kernel node → buffer index.
    pub assignment: HashMap<NodeId, usize>,
    /// Buffer sizes in f32 elements.
    pub sizes: Vec<usize>,
}

impl BufferPlan {
    /// Peak activation memory in bytes (all buffers together).
    pub fn peak_bytes(&self) -> usize {
        self.sizes.iter().sum::<usize>() * 4
    }
}

/// Plans buffers for `schedule` (kernel nodes in execution order).
pub fn plan_buffers(g: &Graph, schedule: &[NodeId]) -> BufferPlan {
    let position: HashMap<NodeId, usize> = schedule.iter().enumerate().map(|(i, &n)| (n, i)).collect();
    let mut last_use: HashMap<NodeId, usize> = HashMap::new();
    for (i, &n) in schedule.iter().enumerate() {
        for input in g.inputs(n) {
            if position.contains_key(&input) {
                last_use.insert(input, i);
            }
        }
    }
    for out in &g.outputs {
        last_use.insert(*out, usize::MAX);
    }

    let mut sizes: Vec<usize> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut assignment = HashMap::new();
    for (i, &n) in schedule.iter().enumerate() {
        let need = g.node(n).numel();
        // Best fit among free buffers: the smallest that is large enough, else the largest
        // (grown), else a new one.
        let fit =
            free.iter().enumerate().filter(|&(_, &b)| sizes[b] >= need).min_by_key(|&(_, &b)| sizes[b]).map(|(j, _)| j);
        let pick = fit.or_else(|| free.iter().enumerate().max_by_key(|&(_, &b)| sizes[b]).map(|(j, _)| j));
        let buffer = match pick {
            Some(j) => free.swap_remove(j),
            None => {
                sizes.push(0);
                sizes.len() - 1
            }
        };
        sizes[buffer] = sizes[buffer].max(need);
        assignment.insert(n, buffer);
        // Values whose last reader is this kernel free their buffers after it ran; a value that
        // nobody reads (dead, or read by nothing but a later pass removed it) frees at once.
        for input in g.inputs(n).into_iter().chain(std::iter::once(n)) {
            if last_use.get(&input).copied().unwrap_or(i) == i
                && let Some(&b) = assignment.get(&input)
                && !free.contains(&b)
            {
                free.push(b);
            }
        }
    }
    BufferPlan { assignment, sizes }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{InputKind, Op};

    #[test]
    fn a_chain_reuses_two_buffers() {
        let mut g = Graph::new(1, 4);
        let mut x = g.add(Op::Input(InputKind::Mask), vec![4, 4], &[]);
        for _ in 0..6 {
            x = g.add(Op::Gelu, vec![4, 4], &[x]);
        }
        g.outputs.push(x);
        let plan = plan_buffers(&g, &g.schedule());
        assert_eq!(plan.sizes.len(), 2);
        assert_eq!(plan.peak_bytes(), 2 * 16 * 4);
    }

    #[test]
    fn outputs_and_live_values_are_never_shared() {
        let mut g = Graph::new(1, 4);
        let x = g.add(Op::Input(InputKind::Mask), vec![4, 4], &[]);
        let a = g.add(Op::Gelu, vec![4, 4], &[x]);
        let b = g.add(Op::Tanh, vec![4, 4], &[a]);
        let c = g.add(Op::Add, vec![4, 4], &[a, b]);
        let d = g.add(Op::Gelu, vec![4, 4], &[c]);
        g.outputs.extend([a, d]);
        let plan = plan_buffers(&g, &g.schedule());
        let buf = |n| plan.assignment[&n];
        assert_ne!(buf(a), buf(b));
        assert_ne!(buf(c), buf(a));
        assert_ne!(buf(c), buf(b));
        assert_ne!(buf(d), buf(a));
        assert_ne!(buf(d), buf(c));
    }
}
