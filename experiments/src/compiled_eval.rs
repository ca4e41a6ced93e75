//! Scoring an arch with inherited weights through its compiled program: the subnet's tensors are
//! taken from the supernet (as `canao export` writes them), compiled once per batch shape, and
//! run over the split. The logits equal the supernet's forward within 1e-4 (the export test), so
//! the score is the same but for an argmax tie; the programs run the dev split 1.55–2.0× faster
//! than burn's eager forward (BENCHMARKS.md, issue 3), which is what a search spends its time on.

use std::collections::HashMap;

use anyhow::{Context, Result};
use arch::Arch;
use compiler::{CompileOptions, Program, Weights, compile};
use supernet::data::Task;
use supernet::eval::{Score, evaluate_with};
use supernet::export::subnet_tensors;
use supernet::{Encoded, Supernet};

/// Worker threads for compiled programs by default: every core.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// How an arch's logits are computed when it is scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Engine {
    /// The subnet's compiled program (the default: the same scores, faster).
    Compiled,
    /// The supernet's own forward in burn.
    Burn,
}

/// Runs `arch`'s compiled program over `examples` in length-sorted batches of `batch_size` with
/// `threads` worker threads, and scores it.
pub fn evaluate_compiled(
    net: &Supernet,
    arch: &Arch,
    task: Task,
    examples: &[Encoded],
    pad: u32,
    batch_size: usize,
    threads: usize,
) -> Result<Score> {
    let mut arch = arch.clone();
    arch.task = net.max.task;
    let mut weights = Weights::new(format!("the supernet's {arch}"));
    for (name, shape, data) in subnet_tensors(net, &arch)? {
        weights.insert(name, compiler::Tensor::new(shape, data));
    }
    let options = CompileOptions { threads: threads.max(1), layer_norm_eps: net.eps as f32, ..Default::default() };
    // One program per batch shape: length-sorted batches differ in their longest example.
    let mut programs: HashMap<(usize, usize), Program> = HashMap::new();
    evaluate_with(task, examples, pad, batch_size, |batch| -> Result<Vec<f32>> {
        let key = (batch.rows, batch.seq);
        let program = match programs.entry(key) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                let shaped = Arch { seq_len: batch.seq, ..arch.clone() };
                let options = CompileOptions { batch: batch.rows, ..options.clone() };
                e.insert(compile(&shaped, &weights, &options).with_context(|| format!("compiling {shaped}"))?)
            }
        };
        let input = compiler::Batch { ids: batch.ids.clone(), types: batch.types.clone(), mask: batch.mask.clone() };
        Ok(program.run(&input)?)
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a test: a failure should stop it loudly
mod tests {
    use arch::TaskHead;
    use burn::tensor::Device;
    use supernet::Label;
    use supernet::eval::evaluate;

    use super::*;

    /// A random supernet's subnets score the same through their programs as through burn, on
    /// examples of many lengths (several batch shapes, a last batch smaller than the others).
    #[test]
    fn compiled_scores_equal_the_supernets() {
        let mut max = Arch::parse("L3-H96-A6-F192-D16-S40").unwrap();
        max.task = TaskHead::Classification { labels: 3 };
        let shared = Weights::random(&max, 11);
        let tensors: Vec<_> = shared
            .names()
            .map(|n| (n.to_string(), shared.find(n).unwrap().shape.clone(), shared.find(n).unwrap().data.to_vec()))
            .collect();
        let net = Supernet::from_tensors(&max, 1e-12, tensors, &Device::flex()).unwrap();
        let mut state = 7u64;
        let mut next = move |below: u64| {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) % below
        };
        let examples: Vec<Encoded> = (0..45)
            .map(|_| {
                let len = 2 + next(37) as usize;
                Encoded {
                    ids: (0..len).map(|_| 1 + next(max.vocab_size as u64 - 1) as u32).collect(),
                    types: vec![0; len],
                    label: Label::Class(next(3) as usize),
                }
            })
            .collect();
        for text in ["L3-H96-A6-F192-D16", "L2-H64-A[2,5]-F[64,160]-D16", "L1-H48-A3-F32-D16"] {
            let arch = Arch::parse(text).unwrap();
            let eager = evaluate(&net, &arch, Task::Trec, &examples, 0, 8).unwrap();
            for threads in [1, 2] {
                let compiled = evaluate_compiled(&net, &arch, Task::Trec, &examples, 0, 8, threads).unwrap();
                assert_eq!(compiled, eager, "{text}, {threads} threads");
            }
        }
    }
}
