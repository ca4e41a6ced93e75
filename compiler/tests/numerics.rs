//! The compiled program against the independent reference forward, and fused against unfused.

#![allow(clippy::unwrap_used)] // a test: a failure should stop it loudly

use arch::{Arch, SearchSpace, TaskHead};
use compiler::{Batch, CompileOptions, PassSelection, Weights, compile, optimize, reference};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const TOLERANCE: f32 = 1e-4;

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// Lengths for `batch` sequences: the first is full, the others padded.
fn lengths(batch: usize, seq: usize, rng: &mut impl Rng) -> Vec<usize> {
    (0..batch).map(|b| if b == 0 { seq } else { rng.random_range(1..=seq) }).collect()
}

fn check(arch: &Arch, batch: usize, threads: usize, seed: u64) -> f32 {
    let weights = Weights::random(arch, seed);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let input = Batch::synthetic(arch, &lengths(batch, arch.seq_len, &mut rng), seed);
    let options = CompileOptions { batch, threads, ..Default::default() };
    let mut program = compile(arch, &weights, &options).unwrap();
    let got = program.run(&input).unwrap();
    let want = reference::forward(arch, &weights, &input, options.layer_norm_eps).unwrap();
    let err = max_abs_diff(&got, &want);
    assert!(err <= TOLERANCE, "{arch} batch {batch} threads {threads}: max abs error {err}");
    // A second run on the same buffers gives the same answer.
    assert_eq!(program.run(&input).unwrap(), got, "{arch}: rerun differs");
    err
}

#[test]
fn hundred_random_archs_of_the_search_space_match_the_reference() {
    let space = SearchSpace::default();
    let mut rng = ChaCha8Rng::seed_from_u64(2026);
    let mut worst = 0.0f32;
    for i in 0..100 {
        let mut arch = space.sample(&mut rng);
        arch.seq_len = rng.random_range(1..=48);
        arch.task = match i % 3 {
            0 => TaskHead::Embedding,
            1 => TaskHead::Classification { labels: rng.random_range(2..=6) },
            _ => TaskHead::Regression,
        };
        worst = worst.max(check(&arch, 1 + i % 3, 1 + i % 2, i as u64));
    }
    eprintln!("worst max abs error over 100 archs: {worst:e}");
}

#[test]
fn minilm_teacher_shape_matches_the_reference() {
    let arch = Arch::parse("L6-H384-A12-F1536-D32").unwrap();
    for threads in [1, 2] {
        check(&arch, 2, threads, 7);
    }
}

#[test]
fn sequence_lengths_from_one_to_the_maximum() {
    let mut arch = Arch::parse("L1-H64-A2-F128-D32").unwrap();
    arch.max_positions = 512;
    for seq in [1, 2, 7, 64, 127, 128, 129, 511, 512] {
        arch.seq_len = seq;
        check(&arch, 2, 2, seq as u64);
    }
}

/// Every pass alone, against the unfused program: fused == unfused.
#[test]
fn each_pass_alone_preserves_the_output() {
    let arch = Arch::parse("L2-H96-A[2,3]-F[192,128]-D32-S19").unwrap();
    let mut arch = arch;
    arch.task = TaskHead::Classification { labels: 3 };
    let weights = Weights::random(&arch, 3);
    let input = Batch::synthetic(&arch, &[19, 5, 11], 3);
    let run = |passes: PassSelection| {
        let options = CompileOptions { batch: 3, threads: 2, passes, ..Default::default() };
        compile(&arch, &weights, &options).unwrap().run(&input).unwrap()
    };
    let unfused = run(PassSelection::None);
    let names = compiler::passes::pass_names();
    for only in &names {
        let without: Vec<String> = names.iter().filter(|n| *n != only).map(|n| n.to_string()).collect();
        let fused = run(PassSelection::Without(without));
        let err = max_abs_diff(&fused, &unfused);
        assert!(err <= TOLERANCE, "pass {only}: fused differs from unfused by {err}");
    }
    let err = max_abs_diff(&run(PassSelection::All), &unfused);
    assert!(err <= TOLERANCE, "full pipeline differs from unfused by {err}");
}

/// Kernel counts of a whole model after each pass, cumulatively.
#[test]
fn kernel_counts_through_the_pipeline() {
    let arch = Arch::parse("L2-H128-A2-F512").unwrap();
    let opt = optimize(&arch, &CompileOptions { explain: true, ..Default::default() }).unwrap();
    let counts: Vec<(&str, usize)> = opt.passes.iter().map(|p| (p.name, p.kernels_after.len())).collect();
    assert_eq!(opt.before.kernel_count(), 6 + 2 * 26 + 1);
    // qkv-merge: 9 kernels (3 matmul, 3 bias) become 2 + 3 slices per layer: -1 each.
    // residual-layer-norm: 2 per layer + 1 in the embeddings.
    // gemm-epilogue: per layer 1 (qkv bias) + 2 (bias, add+ln) + 2 (bias, gelu) + 2 (bias, add+ln).
    // attention: slices, splits, qkT, scale, mask, softmax, attnV, merge (12) -> 1.
    // embedding: 3 gathers + add + add_layer_norm -> 1.
    assert_eq!(
        counts,
        [
            ("qkv-merge", 59 - 2),
            ("residual-layer-norm", 57 - 5),
            ("gemm-epilogue", 52 - 2 * 7),
            ("attention-fusion", 38 - 2 * 11),
            ("embedding-layer-norm", 16 - 4),
            ("dead-code", 12),
        ]
    );
    // Embedding, then per layer: QKV GEMM, attention, out-proj GEMM (+residual+LN), FFN GEMMs.
    assert_eq!(
        opt.after.kernel_names()[..6],
        [
            "embed_layer_norm[3]",
            "gemm[bias]",
            "attention[2x64]",
            "gemm[bias+residual+ln]",
            "gemm[bias+gelu]",
            "gemm[bias+residual+ln]"
        ]
    );
}

#[test]
fn fusion_shrinks_peak_activation_memory() {
    let arch = Arch::parse("L4-H256-A4-F1024").unwrap();
    let weights = Weights::random(&arch, 1);
    let fused = compile(&arch, &weights, &CompileOptions::default()).unwrap();
    let options = CompileOptions { passes: PassSelection::None, ..Default::default() };
    let unfused = compile(&arch, &weights, &options).unwrap();
    eprintln!(
        "peak activation bytes: fused {}, unfused {}",
        fused.peak_activation_bytes(),
        unfused.peak_activation_bytes()
    );
    // The unfused program keeps [heads, S, S] score tensors live; the fused one never has one,
    // and needs no more than two buffers of its widest activation (the FFN's [S, 1024]).
    assert!(fused.peak_activation_bytes() < unfused.peak_activation_bytes());
    assert!(fused.peak_activation_bytes() <= 2 * 128 * 1024 * 4);
}
