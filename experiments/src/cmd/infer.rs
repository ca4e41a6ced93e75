//! `canao infer`: run a Hugging Face BERT directory through the compiled program.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use arch::TaskHead;
use arch::hf::HfConfig;
use compiler::{Batch, CompileOptions, Weights, compile};
use serde_json::json;
use tokenizers::{Tokenizer, TruncationParams};

use crate::io::print_json;

/// Run a BERT checkpoint directory (config.json, model.safetensors, tokenizer.json) on texts.
///
/// Tokenizes the texts (padded to the longest, truncated at the model's maximum positions),
/// compiles the model for that shape and prints, per text, the mean-pooled sentence embedding, or
/// the logits when the checkpoint has a classification head.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Checkpoint directory.
    #[arg(long)]
    model: PathBuf,
    /// Text to run (repeatable: the texts form one batch).
    #[arg(long, required = true)]
    text: Vec<String>,
    /// Worker threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Print one JSON object as the last line (token ids, mask and full outputs).
    #[arg(long)]
    json: bool,
}

/// A checkpoint directory, loaded.
pub struct Checkpoint {
    pub config: HfConfig,
    pub weights: Weights,
    pub tokenizer: Tokenizer,
}

fn need(dir: &Path, name: &str) -> Result<PathBuf> {
    let path = dir.join(name);
    if !path.is_file() {
        bail!(
            "{} not found: a model directory holds config.json, model.safetensors and tokenizer.json",
            path.display()
        );
    }
    Ok(path)
}

/// Loads config, weights and tokenizer of `dir`.
pub fn load_checkpoint(dir: &Path) -> Result<Checkpoint> {
    let config_path = need(dir, "config.json")?;
    let text = std::fs::read_to_string(&config_path).with_context(|| format!("reading {}", config_path.display()))?;
    let config = HfConfig::from_json(&text).with_context(|| format!("in {}", config_path.display()))?;
    let weights = Weights::load_safetensors(&need(dir, "model.safetensors")?)?;
    let tok_path = need(dir, "tokenizer.json")?;
    let tokenizer = Tokenizer::from_file(&tok_path).map_err(|e| anyhow::anyhow!("{}: {e}", tok_path.display()))?;
    Ok(Checkpoint { config, weights, tokenizer })
}

/// Tokenizes `texts` into one batch padded to the longest, truncated at `max_len` tokens.
pub fn tokenize(tokenizer: &mut Tokenizer, texts: &[String], max_len: usize) -> Result<(Batch, usize)> {
    // The shipped tokenizer.json may fix padding and truncation (all-MiniLM's fixes both at 128):
    // turn padding off and set truncation explicitly.
    tokenizer.with_padding(None);
    tokenizer
        .with_truncation(Some(TruncationParams { max_length: max_len, ..Default::default() }))
        .map_err(|e| anyhow::anyhow!("setting truncation: {e}"))?;
    let encodings = tokenizer.encode_batch(texts.to_vec(), true).map_err(|e| anyhow::anyhow!("tokenizing: {e}"))?;
    let seq = encodings.iter().map(|e| e.get_ids().len()).max().unwrap_or(1).max(1);
    let pad = tokenizer.token_to_id("[PAD]").unwrap_or(0);
    let mut batch = Batch { ids: vec![], types: vec![], mask: vec![] };
    for e in &encodings {
        let n = e.get_ids().len();
        batch.ids.extend(e.get_ids().iter().copied().chain(std::iter::repeat_n(pad, seq - n)));
        batch.types.extend(e.get_type_ids().iter().copied().chain(std::iter::repeat_n(0, seq - n)));
        batch.mask.extend(std::iter::repeat_n(1.0, n).chain(std::iter::repeat_n(0.0, seq - n)));
    }
    Ok((batch, seq))
}

pub fn run(args: Args) -> Result<()> {
    let Checkpoint { config, weights, mut tokenizer } = load_checkpoint(&args.model)?;
    let (input, seq) = tokenize(&mut tokenizer, &args.text, config.max_position_embeddings)?;
    let arch = config.to_arch(seq).with_context(|| format!("in {}", args.model.join("config.json").display()))?;
    let options = CompileOptions {
        batch: args.text.len(),
        threads: args.threads,
        layer_norm_eps: config.layer_norm_eps as f32,
        ..Default::default()
    };
    let mut program = compile(&arch, &weights, &options)?;
    let output = program.run(&input)?;
    let width = program.output_shape()[1];
    let kind = match arch.task {
        TaskHead::Embedding => "embedding",
        _ => "logits",
    };
    let rows: Vec<&[f32]> = output.chunks(width).collect();
    for (text, row) in args.text.iter().zip(&rows) {
        let shown: Vec<String> = row.iter().take(8).map(|v| format!("{v:.6}")).collect();
        let more = if row.len() > 8 { format!(", … ({} values)", row.len()) } else { String::new() };
        println!("{kind} of {text:?}: [{}{more}]", shown.join(", "));
    }
    if args.json {
        let ids: Vec<&[u32]> = input.ids.chunks(seq).collect();
        let mask: Vec<Vec<u32>> = input.mask.chunks(seq).map(|m| m.iter().map(|&v| v as u32).collect()).collect();
        print_json(&json!({
            "model": args.model.display().to_string(),
            "arch": arch.to_string(),
            "kind": kind,
            "input_ids": ids,
            "attention_mask": mask,
            "output": rows,
        }));
    }
    Ok(())
}
