//! The supernet against the compiler: the teacher loaded with burn-store gives the same sentence
//! embeddings as the compiler's independent reference, and an exported subnet, or a sampled
//! subnet's tensors, compiled, give the supernet's logits.

#![allow(clippy::unwrap_used)] // a test: a failure should stop it loudly

use arch::hf::HfConfig;
use arch::{Arch, TaskHead};
use burn::tensor::Device;
use compiler::{Batch, CompileOptions, Weights, compile, reference};
use supernet::export::export;
use supernet::{Encoder, Mode, Supernet, teacher};

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b))
}

#[test]
fn the_loaded_teacher_embeds_like_the_reference_and_knows_paraphrases() {
    let dir = teacher::locate(None, &teacher::cache_dir()).unwrap();
    let net = Supernet::from_pretrained(&dir, TaskHead::Embedding, &Device::flex()).unwrap();
    let encoder = Encoder::from_file(&dir.join("tokenizer.json"), 128).unwrap();
    let texts =
        ["A man is playing a guitar.", "Someone plays the guitar.", "The stock market fell sharply on Tuesday."];
    let examples: Vec<supernet::Example> = texts
        .iter()
        .map(|t| supernet::Example { text: t.to_string(), pair: None, label: supernet::Label::Class(0) })
        .collect();
    let batch = supernet::Batch::new(&encoder.encode(&examples).unwrap(), vec![0, 1, 2], encoder.pad);
    let got: Vec<f32> =
        net.forward(&batch, &net.max, Mode::default()).unwrap().logits.into_data().try_into_vec().unwrap();

    let config = HfConfig::from_json(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    let arch = config.to_arch(batch.seq).unwrap();
    let weights = Weights::load_safetensors(&dir.join("model.safetensors")).unwrap();
    let input = Batch { ids: batch.ids.clone(), types: batch.types.clone(), mask: batch.mask.clone() };
    let want = reference::forward(&arch, &weights, &input, config.layer_norm_eps as f32).unwrap();
    let diff = max_diff(&got, &want);
    assert!(diff <= 1e-4, "burn-store-loaded teacher differs from the reference by {diff}");

    let rows: Vec<&[f32]> = got.chunks(arch.hidden).collect();
    let (para, unrelated) = (cosine(rows[0], rows[1]), cosine(rows[0], rows[2]));
    eprintln!("cosine: paraphrase {para:.3}, unrelated {unrelated:.3}");
    assert!(para > unrelated + 0.3, "paraphrases should score higher: {para} vs {unrelated}");
}

#[test]
fn an_exported_subnet_compiles_to_the_supernets_logits() {
    let mut max = Arch::parse("L3-H96-A6-F192-D16-S12").unwrap();
    max.task = TaskHead::Classification { labels: 3 };
    let shared = Weights::random(&max, 7);
    let tensors: Vec<_> = shared
        .names()
        .map(|n| (n.to_string(), shared.find(n).unwrap().shape.clone(), shared.find(n).unwrap().data.to_vec()))
        .collect();
    let net = Supernet::from_tensors(&max, 1e-12, tensors, &Device::flex()).unwrap();
    let tokenizer = teacher::locate(None, &teacher::cache_dir()).unwrap().join("tokenizer.json");
    let scratch = tempfile::Builder::new().prefix("canao-export-").tempdir().unwrap();
    let dir = scratch.path();
    for text in ["L2-H64-A[2,5]-F[64,160]-D16-S12", "L3-H96-A6-F192-D16-S12", "L1-H48-A3-F32-D16-S12"] {
        let mut arch = Arch::parse(text).unwrap();
        arch.task = max.task;
        export(&net, &arch, &tokenizer, dir).unwrap();
        let config = HfConfig::from_json(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
        assert_eq!(config.canao.is_some(), !arch.is_uniform(), "{text}: per-layer widths go to the `canao` field");
        let exported = config.to_arch(arch.seq_len).unwrap();
        assert_eq!(
            (exported.heads.clone(), exported.ffn.clone(), exported.hidden),
            (arch.heads.clone(), arch.ffn.clone(), arch.hidden)
        );
        let weights = Weights::load_safetensors(&dir.join("model.safetensors")).unwrap();
        let input = Batch::synthetic(&arch, &[12, 7, 3], 9);
        let options = CompileOptions { batch: 3, layer_norm_eps: 1e-12, ..Default::default() };
        let compiled = compile(&exported, &weights, &options).unwrap().run(&input).unwrap();
        let batch =
            supernet::Batch::unlabelled(input.ids.clone(), input.types.clone(), input.mask.clone(), arch.seq_len);
        let logits: Vec<f32> =
            net.forward(&batch, &arch, Mode::default()).unwrap().logits.into_data().try_into_vec().unwrap();
        let diff = max_diff(&compiled, &logits);
        assert!(diff <= 1e-4, "{text}: the compiled export differs from the supernet by {diff}");
    }
}

/// The compiler against burn directly, on archs sampled from a space (per-layer widths
/// included): each subnet's tensors taken from the supernet as a search scores it, compiled,
/// give the supernet's own forward of that arch on a padded batch.
#[test]
fn sampled_subnets_compile_to_the_supernets_logits() {
    use rand::SeedableRng;
    let space = arch::SearchSpace {
        layers: vec![1, 2, 3],
        hidden: vec![48, 72, 96],
        heads: vec![2, 3, 6],
        ffn: vec![32, 96, 192],
        head_dim: 16,
        per_layer: true,
        seq_len: 12,
        task: TaskHead::Classification { labels: 3 },
        ..arch::SearchSpace::default()
    };
    let max = space.largest();
    let shared = Weights::random(&max, 11);
    let tensors: Vec<_> = shared
        .names()
        .map(|n| (n.to_string(), shared.find(n).unwrap().shape.clone(), shared.find(n).unwrap().data.to_vec()))
        .collect();
    let net = Supernet::from_tensors(&max, 1e-12, tensors, &Device::flex()).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    for _ in 0..30 {
        let arch = space.sample(&mut rng);
        let mut weights = Weights::new(format!("the supernet's {arch}"));
        for (name, shape, data) in supernet::export::subnet_tensors(&net, &arch).unwrap() {
            weights.insert(name, compiler::Tensor::new(shape, data));
        }
        let input = Batch::synthetic(&arch, &[12, 7, 3], 9);
        let options = CompileOptions { batch: 3, layer_norm_eps: 1e-12, ..Default::default() };
        let compiled = compile(&arch, &weights, &options).unwrap().run(&input).unwrap();
        let batch =
            supernet::Batch::unlabelled(input.ids.clone(), input.types.clone(), input.mask.clone(), arch.seq_len);
        let logits: Vec<f32> =
            net.forward(&batch, &arch, Mode::default()).unwrap().logits.into_data().try_into_vec().unwrap();
        let diff = max_diff(&compiled, &logits);
        assert!(diff <= 1e-4, "{arch}: the compiled subnet differs from the supernet by {diff}");
    }
}
