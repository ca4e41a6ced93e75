//! Export of a subnet as a standalone checkpoint in the Hugging Face BERT layout:
//! `model.safetensors` (PyTorch key names and `[out, in]` weights, with the `bert.` prefix of
//! `BertForSequenceClassification`), `config.json` (per-layer widths in its `canao` field when the
//! arch is not uniform) and the tokenizer's `tokenizer.json`.

use std::path::Path;

use arch::hf::HfConfig;
use arch::{Arch, TaskHead};
use burn::nn::{LayerNorm, Linear};
use burn::tensor::Tensor;

use crate::model::{ModelError, Supernet};

/// A named row-major f32 tensor.
pub type Named = (String, Vec<usize>, Vec<f32>);

fn data<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>, ModelError> {
    t.into_data().try_into_vec::<f32>().map_err(|e| ModelError::Input(format!("reading a tensor: {e:?}")))
}

/// A Linear's `[out, in]` weight and bias, sliced to `inp × out`.
fn linear(out: &mut Vec<Named>, name: &str, lin: &Linear, inp: usize, outw: usize) -> Result<(), ModelError> {
    let w = lin.weight.val().narrow(0, 0, inp).narrow(1, 0, outw).transpose();
    out.push((format!("{name}.weight"), vec![outw, inp], data(w)?));
    if let Some(b) = &lin.bias {
        out.push((format!("{name}.bias"), vec![outw], data(b.val().narrow(0, 0, outw))?));
    }
    Ok(())
}

fn norm(out: &mut Vec<Named>, name: &str, ln: &LayerNorm, width: usize) -> Result<(), ModelError> {
    out.push((format!("{name}.weight"), vec![width], data(ln.gamma.val().narrow(0, 0, width))?));
    if let Some(b) = &ln.beta {
        out.push((format!("{name}.bias"), vec![width], data(b.val().narrow(0, 0, width))?));
    }
    Ok(())
}

/// The tensors of `arch`'s subnet under Hugging Face names (with the `bert.` prefix when the
/// arch has a task head, as `BertForSequenceClassification` names them).
pub fn subnet_tensors(net: &Supernet, arch: &Arch) -> Result<Vec<Named>, ModelError> {
    net.check(arch)?;
    let h = arch.hidden;
    let p = if arch.task == TaskHead::Embedding { "" } else { "bert." };
    let mut out = Vec::new();
    let e = &net.embeddings;
    for (name, table, rows) in [
        ("word_embeddings", &e.word_embeddings, arch.vocab_size),
        ("position_embeddings", &e.position_embeddings, arch.max_positions),
        ("token_type_embeddings", &e.token_type_embeddings, arch.type_vocab_size),
    ] {
        let w = table.weight.val().narrow(0, 0, rows).narrow(1, 0, h);
        out.push((format!("{p}embeddings.{name}.weight"), vec![rows, h], data(w)?));
    }
    norm(&mut out, &format!("{p}embeddings.LayerNorm"), &e.layer_norm, h)?;
    for (l, layer) in net.encoder.layer.iter().take(arch.layers).enumerate() {
        let (a, f) = (arch.heads[l] * arch.head_dim, arch.ffn[l]);
        let q = format!("{p}encoder.layer.{l}");
        let sa = &layer.attention.self_attn;
        linear(&mut out, &format!("{q}.attention.self.query"), &sa.query, h, a)?;
        linear(&mut out, &format!("{q}.attention.self.key"), &sa.key, h, a)?;
        linear(&mut out, &format!("{q}.attention.self.value"), &sa.value, h, a)?;
        linear(&mut out, &format!("{q}.attention.output.dense"), &layer.attention.output.dense, a, h)?;
        norm(&mut out, &format!("{q}.attention.output.LayerNorm"), &layer.attention.output.layer_norm, h)?;
        linear(&mut out, &format!("{q}.intermediate.dense"), &layer.intermediate.dense, h, f)?;
        linear(&mut out, &format!("{q}.output.dense"), &layer.output.dense, f, h)?;
        norm(&mut out, &format!("{q}.output.LayerNorm"), &layer.output.layer_norm, h)?;
    }
    linear(&mut out, &format!("{p}pooler.dense"), &net.pooler.dense, h, h)?;
    if arch.task != TaskHead::Embedding {
        linear(&mut out, "classifier", &net.classifier, h, arch.task.output_width(h))?;
    }
    Ok(out)
}

/// Serializes named tensors as safetensors bytes.
pub fn safetensors_bytes(tensors: &[Named]) -> Result<Vec<u8>, ModelError> {
    let views = tensors
        .iter()
        .map(|(name, shape, values)| {
            // SAFETY: f32 has no padding and any byte is a valid u8; the length is exact.
            let bytes =
                unsafe { std::slice::from_raw_parts(values.as_ptr().cast::<u8>(), std::mem::size_of_val(&values[..])) };
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes)
                .map(|view| (name.clone(), view))
                .map_err(|e| ModelError::Input(format!("tensor `{name}`: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    safetensors::serialize(views, None).map_err(|e| ModelError::Input(e.to_string()))
}

/// Writes `arch`'s subnet to `out` (created; an earlier export there is replaced as a whole) through a
/// temporary folder and a rename, copying `tokenizer` beside the weights.
pub fn export(net: &Supernet, arch: &Arch, tokenizer: &Path, out: &Path) -> Result<(), ModelError> {
    let _span = tracing::info_span!("export", %arch, out = %out.display()).entered();
    let mut arch = arch.clone();
    arch.task = net.max.task;
    let tensors = subnet_tensors(net, &arch)?;
    let mut config = HfConfig::from_arch(&arch);
    config.layer_norm_eps = net.eps;
    write_model_dir(out, &safetensors_bytes(&tensors)?, &config.to_json(), tokenizer)
}

/// Writes a Hugging Face model folder (`model.safetensors`, `config.json`, a copy of `tokenizer`)
/// to `out` through a temporary folder and a rename: a failure leaves no half-written folder.
/// Only an earlier model folder (or an empty folder) at `out` is replaced, never an unrelated one.
pub(crate) fn write_model_dir(out: &Path, weights: &[u8], config: &str, tokenizer: &Path) -> Result<(), ModelError> {
    let err = |path: &Path, e: std::io::Error| ModelError::Load { path: path.to_path_buf(), message: e.to_string() };
    let refuse = |why: &str| ModelError::Load { path: out.to_path_buf(), message: why.into() };
    let Some(name) = out.file_name().map(|n| n.to_string_lossy().to_string()) else {
        return Err(refuse("not a folder name to write a model to"));
    };
    if out.exists() {
        let earlier = out.join("config.json").is_file() && out.join("model.safetensors").is_file();
        let empty = std::fs::read_dir(out).map(|mut d| d.next().is_none()).unwrap_or(false);
        if !earlier && !empty {
            return Err(refuse("exists and is not an earlier model folder: choose another folder"));
        }
    }
    let tmp = out.with_file_name(format!(".{name}.tmp"));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| err(&tmp, e))?;
    let written = (|| {
        std::fs::write(tmp.join("model.safetensors"), weights).map_err(|e| err(&tmp, e))?;
        std::fs::write(tmp.join("config.json"), config).map_err(|e| err(&tmp, e))?;
        std::fs::copy(tokenizer, tmp.join("tokenizer.json")).map_err(|e| err(tokenizer, e))?;
        if out.exists() {
            std::fs::remove_dir_all(out).map_err(|e| err(out, e))?;
        }
        std::fs::rename(&tmp, out).map_err(|e| err(out, e))
    })();
    if written.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    written
}
