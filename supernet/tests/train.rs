//! Training on real data: the loss falls, dev accuracy rises clearly above chance in both phases,
//! and a resumed run continues exactly where its checkpoint left it. Uses `../shared/data` and
//! the teacher when present (the teacher is fetched into the cache on first use).

#![allow(clippy::unwrap_used)] // a test: a failure should stop it loudly

use std::path::{Path, PathBuf};

use arch::{Arch, SearchSpace, TaskHead};
use burn::module::Module;
use burn::tensor::Device;
use supernet::data::{self, Split, Task};
use supernet::eval::evaluate;
use supernet::export::subnet_tensors;
use supernet::{Encoded, Encoder, Sandwich, Supernet, TrainConfig, Trainer, teacher};

const SST2: TaskHead = TaskHead::Classification { labels: 2 };

/// A run folder that does not exist yet, inside a fresh scratch folder that goes when the guard
/// (the first element) drops, also when the test panics.
fn tmp(name: &str) -> (tempfile::TempDir, PathBuf) {
    let scratch = tempfile::Builder::new().prefix(&format!("canao-train-{name}-")).tempdir().unwrap();
    let dir = scratch.path().join("run");
    (scratch, dir)
}

/// The teacher's directory, its tokenizer, and SST-2 train and the first `dev` dev examples;
/// `None` without `../shared/data`.
fn sst2(dev: usize) -> Option<(PathBuf, Encoder, Vec<Encoded>, Vec<Encoded>)> {
    let data_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data");
    if !data_dir.is_dir() {
        return None;
    }
    let model_dir = teacher::locate(None, &teacher::cache_dir()).unwrap();
    let encoder = Encoder::from_file(&model_dir.join("tokenizer.json"), 64).unwrap();
    let train = encoder.encode(&data::load(Task::Sst2, &data_dir, Split::Train).unwrap()).unwrap();
    let dev = encoder.encode(&data::load(Task::Sst2, &data_dir, Split::Dev).unwrap()[..dev]).unwrap();
    Some((model_dir, encoder, train, dev))
}

/// The mean loss over `range` of steps: of the whole step, or of the `subnet`-th subnet.
fn mean_loss(trainer: &Trainer, range: std::ops::Range<usize>, subnet: Option<usize>) -> f64 {
    let log = &trainer.progress.log[range];
    log.iter().map(|e| subnet.map_or(e.loss, |s| e.subnets[s])).sum::<f64>() / log.len() as f64
}

#[test]
fn both_phases_learn_on_an_sst2_slice() {
    let Some((model_dir, encoder, train, dev)) = sst2(300) else { return };
    // Phase one: fine-tune the pretrained teacher for 60 steps (the new head drawn from a seeded
    // generator, so that the run is the same every time).
    Device::flex().seed(1);
    let device = Device::flex().autodiff();
    let net = Supernet::from_pretrained(&model_dir, SST2, &device).unwrap();
    let config = TrainConfig {
        epochs: 1.0,
        batch_size: 16,
        lr: 1e-4,
        limit: Some(16 * 60),
        checkpoint_every: 0,
        ..TrainConfig::default()
    };
    let (_scratch, dir) = tmp("phase-one");
    let mut trainer = Trainer::new(config, net, None, train.clone(), dev.clone(), encoder.pad, &dir).unwrap();
    trainer.run(None, true).unwrap();
    let (first, last) = (mean_loss(&trainer, 0..8, None), mean_loss(&trainer, 52..60, None));
    let teacher_dev = trainer.progress.log.last().unwrap().dev.unwrap();
    eprintln!("phase one: loss {first:.3} → {last:.3}, dev accuracy {teacher_dev:.3}");
    assert!(last < first, "the loss should fall: {first} → {last}");
    assert!(teacher_dev > 0.7, "dev accuracy after 60 steps should be clearly above chance: {teacher_dev}");

    // Phase two: distil into the sandwich's subnets for 40 steps.
    let teacher = trainer.model.valid();
    let student = Supernet::from_pretrained(&model_dir, SST2, &device).unwrap();
    let student = student.load_record(teacher.clone().into_record());
    let space = SearchSpace {
        layers: vec![2, 6],
        hidden: vec![256, 384],
        heads: vec![8, 12],
        ffn: vec![1024, 1536],
        ..SearchSpace::default()
    };
    let sandwich = Sandwich { space: space.clone(), random: 1, hidden_weight: 1.0, ..Sandwich::default() };
    let config = TrainConfig {
        epochs: 1.0,
        batch_size: 16,
        lr: 3e-4,
        limit: Some(16 * 40),
        checkpoint_every: 0,
        sandwich: Some(sandwich),
        seed: 5,
        ..TrainConfig::default()
    };
    let (_scratch, dir) = tmp("phase-two");
    let mut trainer =
        Trainer::new(config, student, Some(teacher), train[16 * 60..].to_vec(), dev.clone(), encoder.pad, &dir)
            .unwrap();
    let valid = trainer.model.valid();
    let small_before = evaluate(&valid, &space.smallest(), Task::Sst2, &dev, encoder.pad, 128).unwrap().value;
    trainer.run(None, true).unwrap();
    // The smallest subnet starts far from the teacher (a shallow slice of a sentence-embedding
    // model carries almost no information in its [CLS] state): its loss falls first; its accuracy
    // needs the full run (BENCHMARKS.md).
    let (first, last) = (mean_loss(&trainer, 0..8, Some(1)), mean_loss(&trainer, 32..40, Some(1)));
    let valid = trainer.model.valid();
    let small_after = evaluate(&valid, &space.smallest(), Task::Sst2, &dev, encoder.pad, 128).unwrap().value;
    let largest = trainer.progress.log.last().unwrap().dev.unwrap();
    eprintln!(
        "phase two: smallest subnet's loss {first:.3} → {last:.3}, dev {small_before:.3} → {small_after:.3}; largest {largest:.3}"
    );
    assert!(last < first, "the smallest subnet's distillation loss should fall: {first} → {last}");
    assert!(largest > 0.7, "the largest subnet should stay good: {largest}");
}

/// A small random supernet with SST-2's head, for the resume test.
fn tiny(device: &Device) -> Supernet {
    let mut max = Arch::parse("L2-H64-A2-F128-D32").unwrap();
    max.task = SST2;
    Supernet::init(&max, 1e-12, device).unwrap()
}

/// A search space inside [`tiny`].
fn tiny_space() -> SearchSpace {
    SearchSpace {
        layers: vec![1, 2],
        hidden: vec![32, 64],
        heads: vec![1, 2],
        ffn: vec![64, 128],
        ..SearchSpace::default()
    }
}

#[test]
fn a_resumed_run_continues_exactly() {
    let Some((_, encoder, train, dev)) = sst2(50) else { return };
    let device = Device::flex().autodiff();
    let space = tiny_space();
    // The third trains a fixed subnet at a weight of its own on augmented batches, whose draws
    // must resume exactly too.
    let augmented = Sandwich {
        space: space.clone(),
        random: 1,
        fixed: vec!["L1-H32-A1-F64-D32".into()],
        fixed_weight: 2.0,
        augment_mask: 0.2,
        augment_ngram: 0.3,
        ..Sandwich::default()
    };
    for sandwich in [None, Some(Sandwich { space, random: 2, ..Sandwich::default() }), Some(augmented)] {
        let config = TrainConfig {
            epochs: 2.0,
            batch_size: 8,
            accumulate: 2,
            lr: 1e-3,
            limit: Some(40),
            checkpoint_every: 0,
            sandwich: sandwich.clone(),
            // The teacher's run keeps a moving average of its weights; it must resume exactly too.
            ema: sandwich.is_none().then_some(0.9),
            ..TrainConfig::default()
        };
        let start = tiny(&device);
        let teacher = || sandwich.as_ref().map(|_| tiny(&Device::flex()).load_record(start.valid().into_record()));
        let (_straight_scratch, straight_dir) = tmp("straight");
        let mut straight = Trainer::new(
            config.clone(),
            start.clone(),
            teacher(),
            train.clone(),
            dev.clone(),
            encoder.pad,
            &straight_dir,
        )
        .unwrap()
        .with_mask_token(encoder.mask)
        .unwrap();
        straight.run(None, true).unwrap();

        let (_scratch, dir) = tmp("resumed");
        let config_has_ema = config.ema.is_some();
        let mut first = Trainer::new(config, start.clone(), teacher(), train.clone(), dev.clone(), encoder.pad, &dir)
            .unwrap()
            .with_mask_token(encoder.mask)
            .unwrap();
        first.run(Some(2), true).unwrap(); // stops mid-epoch-one (3 steps per epoch) and checkpoints
        let mut resumed = Trainer::resume(&dir, tiny(&device), teacher(), train.clone(), dev.clone(), encoder.pad)
            .unwrap()
            .with_mask_token(encoder.mask)
            .unwrap();
        assert_eq!(resumed.progress.step, 2);
        resumed.run(None, true).unwrap();
        assert_eq!(resumed.progress.step, straight.progress.step);

        let weights = |t: &Trainer| subnet_tensors(&t.model.valid(), &t.model.max).unwrap();
        let trained = |t: &Trainer| subnet_tensors(&t.trained(), &t.model.max).unwrap();
        for (a, b) in [(weights(&straight), weights(&resumed)), (trained(&straight), trained(&resumed))] {
            for ((name, _, a), (_, _, b)) in a.iter().zip(&b) {
                let diff = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
                assert!(diff == 0.0, "{name} differs by {diff} after resuming (sandwich: {})", sandwich.is_some());
            }
        }
        // The moving average is what the run keeps, and it is not the last weights.
        let averaged = weights(&straight).iter().zip(&trained(&straight)).any(|((_, _, a), (_, _, b))| a != b);
        assert_eq!(averaged, config_has_ema, "sandwich: {}", sandwich.is_some());
        let losses = |t: &Trainer| t.progress.log.iter().map(|e| e.loss).collect::<Vec<_>>();
        assert_eq!(losses(&straight), losses(&resumed));
    }
}

/// A `fixed` subnet at weight 0 adds nothing to the step: the same weights as without it. At
/// weight 3 it moves them, and a masking config without a `[MASK]` token is refused.
#[test]
fn the_fixed_subnets_weigh_as_configured() {
    let Some((_, encoder, train, dev)) = sst2(20) else { return };
    let device = Device::flex().autodiff();
    let space = tiny_space();
    let start = tiny(&device);
    let run = |fixed: Vec<String>, fixed_weight: f64| {
        let sandwich = Sandwich { space: space.clone(), random: 0, fixed, fixed_weight, ..Sandwich::default() };
        let config = TrainConfig {
            epochs: 1.0,
            batch_size: 8,
            lr: 1e-3,
            limit: Some(16),
            checkpoint_every: 0,
            eval_every: 0,
            sandwich: Some(sandwich),
            ..TrainConfig::default()
        };
        let teacher = tiny(&Device::flex()).load_record(start.valid().into_record());
        let (_scratch, dir) = tmp("weights");
        let mut t =
            Trainer::new(config, start.clone(), Some(teacher), train.clone(), dev.clone(), encoder.pad, &dir).unwrap();
        t.run(None, true).unwrap();
        subnet_tensors(&t.model.valid(), &t.model.max).unwrap()
    };
    let fixed = || vec!["L1-H32-A1-F64-D32".to_string()];
    let (plain, zero, three) = (run(vec![], 1.0), run(fixed(), 0.0), run(fixed(), 3.0));
    let differs = |a: &[(String, Vec<usize>, Vec<f32>)], b: &[(String, Vec<usize>, Vec<f32>)]| {
        a.iter().zip(b).any(|((_, _, x), (_, _, y))| x != y)
    };
    assert!(!differs(&plain, &zero), "a fixed subnet at weight 0 changed the weights");
    assert!(differs(&plain, &three), "a fixed subnet at weight 3 left the weights as they were");

    let masking = TrainConfig {
        sandwich: Some(Sandwich { space: space.clone(), augment_mask: 0.1, ..Sandwich::default() }),
        ..TrainConfig::default()
    };
    let teacher = tiny(&Device::flex());
    let (_scratch, dir) = tmp("masking");
    let err = Trainer::new(masking, start.clone(), Some(teacher), train, dev, encoder.pad, &dir)
        .unwrap()
        .with_mask_token(None)
        .err()
        .unwrap();
    assert!(err.to_string().contains("[MASK]"), "{err}");
}
