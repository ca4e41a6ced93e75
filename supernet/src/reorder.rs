//! Importance reordering (after DynaBERT): permute the hidden dims, each layer's heads and each
//! layer's FFN neurons so that the most important come first, where slicing keeps them.
//!
//! Every permutation is applied to every tensor that reads or writes the permuted axis, so the
//! full model computes exactly what it did before (LayerNorm is permutation-equivariant); only
//! which dims, heads and neurons a narrower subnet keeps changes.
//!
//! Importance is measured either on the weights alone ([`importance_order`], no data):
//! - an FFN neuron: ‖row of the intermediate projection‖ · ‖column of the output projection‖;
//! - a head: ‖its value rows‖ · ‖its output-projection columns‖ (the path it writes through);
//! - a hidden dim: the sum over every LayerNorm of γ², which also ranks BERT's few outlier
//!   dims (large γ, and harmful to drop) first;
//!
//! or on data ([`data_importance_order`], DynaBERT after Michel et al. 2019): how much the task
//! loss moves when a head, a neuron or a hidden dim is masked, to first order, `|∂L/∂m|` at the
//! mask `m = 1`, summed over batches. A mask on a unit's output is a factor on the weights that
//! read it, so `∂L/∂m` is a sum of `w · ∂L/∂w` over those weights: a head's rows of the attention
//! output projection, a neuron's row of the FFN output projection, a hidden dim's γ and β in
//! every LayerNorm (whose outputs make the hidden state).

use arch::{Arch, TaskHead};
use burn::nn::LayerNorm;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::data::Task;
use crate::export::{Named, subnet_tensors};
use crate::model::{Mode, ModelError, Supernet};
use crate::tokens::Batch;

/// How importance is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Importance {
    /// On the weights alone ([`importance_order`]).
    #[default]
    Magnitude,
    /// On training batches ([`data_importance_order`]).
    Data,
}

/// Training batches (of [`IMPORTANCE_BATCH`] examples, a seeded sample of the split) that data
/// importance is measured on.
pub const IMPORTANCE_BATCHES: usize = 64;
pub const IMPORTANCE_BATCH: usize = 32;

/// The batches data importance is measured on: the first [`IMPORTANCE_BATCHES`] of a seeded plan of
/// `examples` (a fixed, length-bucketed sample).
pub fn importance_batches(examples: &[crate::Encoded], pad: u32) -> Vec<Batch> {
    crate::tokens::plan(examples, IMPORTANCE_BATCH, Some(0))
        .into_iter()
        .take(IMPORTANCE_BATCHES)
        .map(|index| Batch::new(examples, index, pad))
        .collect()
}

/// The order of each axis, most important first: `new[i] = old[order[i]]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub hidden: Vec<usize>,
    /// Per layer.
    pub heads: Vec<Vec<usize>>,
    /// Per layer.
    pub neurons: Vec<Vec<usize>>,
}

impl Order {
    /// Whether every axis is already in order (nothing moves).
    pub fn is_identity(&self) -> bool {
        let id = |v: &[usize]| v.iter().enumerate().all(|(i, &j)| i == j);
        id(&self.hidden) && self.heads.iter().all(|h| id(h)) && self.neurons.iter().all(|n| id(n))
    }
}

fn find<'a>(tensors: &'a [Named], name: &str) -> Result<&'a Named, ModelError> {
    tensors.iter().find(|t| t.0 == name).ok_or_else(|| ModelError::Input(format!("reorder: tensor `{name}` missing")))
}

/// Indices sorted by descending score (ties keep their order, so equal scores do not move).
fn descending(scores: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    order
}

/// Euclidean norms of the rows of a `[rows, cols]` matrix.
fn row_norms(t: &Named) -> Vec<f64> {
    let cols = t.1[1];
    t.2.chunks(cols).map(|r| r.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt()).collect()
}

/// Euclidean norms of the columns of a `[rows, cols]` matrix.
fn col_norms(t: &Named) -> Vec<f64> {
    let cols = t.1[1];
    let mut sums = vec![0.0f64; cols];
    for row in t.2.chunks(cols) {
        for (s, &v) in sums.iter_mut().zip(row) {
            *s += (v as f64).powi(2);
        }
    }
    sums.into_iter().map(f64::sqrt).collect()
}

/// Sums consecutive groups of `size` squared norms into group norms.
fn group(norms: &[f64], size: usize) -> Vec<f64> {
    norms.chunks(size).map(|c| c.iter().map(|v| v * v).sum::<f64>().sqrt()).collect()
}

fn prefix(max: &Arch) -> &'static str {
    if max.task == TaskHead::Embedding { "" } else { "bert." }
}

/// The importance order of a full model's tensors (Hugging Face names and `[out, in]` layout).
pub fn importance_order(tensors: &[Named], max: &Arch) -> Result<Order, ModelError> {
    let p = prefix(max);
    let mut hidden = vec![0.0f64; max.hidden];
    let mut add_gamma = |name: String| -> Result<(), ModelError> {
        for (s, &g) in hidden.iter_mut().zip(&find(tensors, &name)?.2) {
            *s += (g as f64).powi(2);
        }
        Ok(())
    };
    add_gamma(format!("{p}embeddings.LayerNorm.weight"))?;
    let (mut heads, mut neurons) = (Vec::new(), Vec::new());
    for l in 0..max.layers {
        let q = format!("{p}encoder.layer.{l}");
        add_gamma(format!("{q}.attention.output.LayerNorm.weight"))?;
        add_gamma(format!("{q}.output.LayerNorm.weight"))?;
        let value = group(&row_norms(find(tensors, &format!("{q}.attention.self.value.weight"))?), max.head_dim);
        let out = group(&col_norms(find(tensors, &format!("{q}.attention.output.dense.weight"))?), max.head_dim);
        heads.push(descending(&value.iter().zip(&out).map(|(a, b)| a * b).collect::<Vec<_>>()));
        let up = row_norms(find(tensors, &format!("{q}.intermediate.dense.weight"))?);
        let down = col_norms(find(tensors, &format!("{q}.output.dense.weight"))?);
        neurons.push(descending(&up.iter().zip(&down).map(|(a, b)| a * b).collect::<Vec<_>>()));
    }
    Ok(Order { hidden: descending(&hidden), heads, neurons })
}

/// Which axis of a tensor a permutation applies to.
#[derive(Clone, Copy)]
enum Axis {
    Rows,
    Cols,
}

/// Which permutation of an [`Order`] a tensor axis takes.
#[derive(Clone, Copy)]
enum Perm {
    Hidden,
    /// The heads of a layer (blocks of `head_dim`).
    Heads(usize),
    /// The FFN neurons of a layer.
    Neurons(usize),
}

/// Permutes the rows or columns of a `[rows, cols]` tensor (a vector is one column of rows) in
/// blocks of `block`: `new block i = old block order[i]`.
fn permute(t: &mut Named, axis: Axis, order: &[usize], block: usize) {
    let (rows, cols) = if t.1.len() == 1 { (t.1[0], 1) } else { (t.1[0], t.1[1]) };
    let old = t.2.clone();
    match axis {
        Axis::Rows => {
            let width = block * cols;
            for (i, &j) in order.iter().enumerate() {
                t.2[i * width..(i + 1) * width].copy_from_slice(&old[j * width..(j + 1) * width]);
            }
        }
        Axis::Cols => {
            for r in 0..rows {
                let row = &old[r * cols..(r + 1) * cols];
                for (i, &j) in order.iter().enumerate() {
                    t.2[r * cols + i * block..r * cols + (i + 1) * block]
                        .copy_from_slice(&row[j * block..(j + 1) * block]);
                }
            }
        }
    }
}

/// Applies `order` to a full model's tensors.
pub fn apply(tensors: &mut [Named], max: &Arch, order: &Order) -> Result<(), ModelError> {
    let p = prefix(max);
    let hd = max.head_dim;
    let mut plan: Vec<(String, Axis, Perm)> = Vec::new();
    for table in ["word_embeddings", "position_embeddings", "token_type_embeddings"] {
        plan.push((format!("{p}embeddings.{table}.weight"), Axis::Cols, Perm::Hidden));
    }
    let norm = |plan: &mut Vec<(String, Axis, Perm)>, name: &str| {
        plan.push((format!("{name}.weight"), Axis::Rows, Perm::Hidden));
        plan.push((format!("{name}.bias"), Axis::Rows, Perm::Hidden));
    };
    norm(&mut plan, &format!("{p}embeddings.LayerNorm"));
    for l in 0..max.layers {
        let q = format!("{p}encoder.layer.{l}");
        for proj in ["query", "key", "value"] {
            plan.push((format!("{q}.attention.self.{proj}.weight"), Axis::Cols, Perm::Hidden));
            plan.push((format!("{q}.attention.self.{proj}.weight"), Axis::Rows, Perm::Heads(l)));
            plan.push((format!("{q}.attention.self.{proj}.bias"), Axis::Rows, Perm::Heads(l)));
        }
        plan.push((format!("{q}.attention.output.dense.weight"), Axis::Rows, Perm::Hidden));
        plan.push((format!("{q}.attention.output.dense.weight"), Axis::Cols, Perm::Heads(l)));
        plan.push((format!("{q}.attention.output.dense.bias"), Axis::Rows, Perm::Hidden));
        norm(&mut plan, &format!("{q}.attention.output.LayerNorm"));
        plan.push((format!("{q}.intermediate.dense.weight"), Axis::Cols, Perm::Hidden));
        plan.push((format!("{q}.intermediate.dense.weight"), Axis::Rows, Perm::Neurons(l)));
        plan.push((format!("{q}.intermediate.dense.bias"), Axis::Rows, Perm::Neurons(l)));
        plan.push((format!("{q}.output.dense.weight"), Axis::Rows, Perm::Hidden));
        plan.push((format!("{q}.output.dense.weight"), Axis::Cols, Perm::Neurons(l)));
        plan.push((format!("{q}.output.dense.bias"), Axis::Rows, Perm::Hidden));
        norm(&mut plan, &format!("{q}.output.LayerNorm"));
    }
    plan.push((format!("{p}pooler.dense.weight"), Axis::Rows, Perm::Hidden));
    plan.push((format!("{p}pooler.dense.weight"), Axis::Cols, Perm::Hidden));
    plan.push((format!("{p}pooler.dense.bias"), Axis::Rows, Perm::Hidden));
    if max.task != TaskHead::Embedding {
        plan.push(("classifier.weight".into(), Axis::Cols, Perm::Hidden));
    }
    for (name, axis, which) in plan {
        let (perm, block) = match which {
            Perm::Hidden => (&order.hidden, 1),
            Perm::Heads(l) => (&order.heads[l], hd),
            Perm::Neurons(l) => (&order.neurons[l], 1),
        };
        let t = tensors
            .iter_mut()
            .find(|t| t.0 == name)
            .ok_or_else(|| ModelError::Input(format!("reorder: tensor `{name}` missing")))?;
        let len = match axis {
            Axis::Rows => t.1[0],
            Axis::Cols => t.1[1],
        };
        if len != perm.len() * block {
            return Err(ModelError::Input(format!(
                "reorder: `{name}` has {len} along the permuted axis, expected {}",
                perm.len() * block
            )));
        }
        permute(t, axis, perm, block);
    }
    Ok(())
}

/// `net` with its hidden dims, heads and FFN neurons in importance order, on `device`; and the
/// order applied.
pub fn reorder(net: &Supernet, device: &Device) -> Result<(Supernet, Order), ModelError> {
    let tensors = subnet_tensors(net, &net.max)?;
    let order = importance_order(&tensors, &net.max)?;
    Ok((reordered(net, tensors, &order, device)?, order))
}

/// `net` with its axes in `order`, on `device`.
pub fn reorder_by(net: &Supernet, order: &Order, device: &Device) -> Result<Supernet, ModelError> {
    reordered(net, subnet_tensors(net, &net.max)?, order, device)
}

fn reordered(net: &Supernet, mut tensors: Vec<Named>, order: &Order, device: &Device) -> Result<Supernet, ModelError> {
    apply(&mut tensors, &net.max, order)?;
    Supernet::from_tensors(&net.max, net.eps, tensors, device)
}

/// The importance order of `net`'s full model measured on `batches` of labelled examples (see the
/// module's doc). `net` must be on an autodiff device; its weights are not changed.
pub fn data_importance_order(net: &Supernet, task: Task, batches: &[Batch]) -> Result<Order, ModelError> {
    let _span = tracing::info_span!("importance", %task, batches = batches.len()).entered();
    if !net.device().is_autodiff() {
        return Err(ModelError::Input("data importance needs the supernet on an autodiff device".into()));
    }
    if batches.is_empty() {
        return Err(ModelError::Input("data importance needs at least one batch".into()));
    }
    let max = &net.max;
    let mut hidden = vec![0.0f64; max.hidden];
    let mut heads: Vec<Vec<f64>> = max.heads.iter().map(|&h| vec![0.0; h]).collect();
    let mut neurons: Vec<Vec<f64>> = max.ffn.iter().map(|&f| vec![0.0; f]).collect();
    for batch in batches {
        let logits = net.forward(batch, max, Mode::default())?.logits;
        let grads = crate::train::task_loss(task, logits, &batch.labels, 0.0).backward();
        // Σ w · ∂L/∂w per row of a `[rows, cols]` weight: the derivative by a mask on each row.
        let row_sums = |w: Tensor<2>| -> Result<Vec<f64>, ModelError> {
            let g = w.grad(&grads).ok_or_else(|| ModelError::Input("a weight has no gradient".into()))?;
            let rows = w.dims()[0];
            values((w.inner() * g).sum_dim(1).reshape([rows]))
        };
        // Σ over the LayerNorms of γ · ∂L/∂γ + β · ∂L/∂β, per hidden dim.
        let mut ln_sum = vec![0.0f64; max.hidden];
        let mut add_norm = |ln: &LayerNorm| -> Result<(), ModelError> {
            let mut add = |p: Tensor<1>| -> Result<(), ModelError> {
                let g = p.grad(&grads).ok_or_else(|| ModelError::Input("a LayerNorm has no gradient".into()))?;
                for (s, v) in ln_sum.iter_mut().zip(values(p.inner() * g)?) {
                    *s += v;
                }
                Ok(())
            };
            add(ln.gamma.val())?;
            if let Some(b) = &ln.beta {
                add(b.val())?;
            }
            Ok(())
        };
        add_norm(&net.embeddings.layer_norm)?;
        for (l, layer) in net.encoder.layer.iter().enumerate() {
            add_norm(&layer.attention.output.layer_norm)?;
            add_norm(&layer.output.layer_norm)?;
            let per_row = row_sums(layer.attention.output.dense.weight.val())?;
            for (score, head) in heads[l].iter_mut().zip(per_row.chunks(max.head_dim)) {
                *score += head.iter().sum::<f64>().abs();
            }
            for (score, v) in neurons[l].iter_mut().zip(row_sums(layer.output.dense.weight.val())?) {
                *score += v.abs();
            }
        }
        for (score, v) in hidden.iter_mut().zip(ln_sum) {
            *score += v.abs();
        }
    }
    Ok(Order {
        hidden: descending(&hidden),
        heads: heads.iter().map(|h| descending(h)).collect(),
        neurons: neurons.iter().map(|n| descending(n)).collect(),
    })
}

fn values<const D: usize>(t: Tensor<D>) -> Result<Vec<f64>, ModelError> {
    let v: Vec<f32> = t.into_data().try_into_vec().map_err(|e| ModelError::Input(format!("{e:?}")))?;
    Ok(v.into_iter().map(f64::from).collect())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn permute_rows_cols_and_blocks() {
        // [[0, 1, 2], [3, 4, 5]]
        let base: Named = ("m".into(), vec![2, 3], vec![0., 1., 2., 3., 4., 5.]);
        let mut t = base.clone();
        permute(&mut t, Axis::Rows, &[1, 0], 1);
        assert_eq!(t.2, vec![3., 4., 5., 0., 1., 2.]);
        let mut t = base.clone();
        permute(&mut t, Axis::Cols, &[2, 0, 1], 1);
        assert_eq!(t.2, vec![2., 0., 1., 5., 3., 4.]);
        // Blocks of two columns.
        let mut t: Named = ("m".into(), vec![1, 4], vec![0., 1., 2., 3.]);
        permute(&mut t, Axis::Cols, &[1, 0], 2);
        assert_eq!(t.2, vec![2., 3., 0., 1.]);
        let mut v: Named = ("v".into(), vec![3], vec![7., 8., 9.]);
        permute(&mut v, Axis::Rows, &[2, 1, 0], 1);
        assert_eq!(v.2, vec![9., 8., 7.]);
        assert_eq!(descending(&[1.0, 3.0, 2.0, 3.0]), vec![1, 3, 2, 0]);
    }

    /// A small classifier with seeded random weights (LayerNorm gammas included, so that every
    /// axis has an order to find).
    fn random_net(device: &Device) -> Supernet {
        let mut max = Arch::uniform(2, 32, 4, 48);
        max.head_dim = 8;
        max.vocab_size = 40;
        max.max_positions = 16;
        max.seq_len = 8;
        max.task = TaskHead::Classification { labels: 3 };
        let init = Supernet::init(&max, 1e-12, device).unwrap();
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        };
        let tensors: Vec<Named> = subnet_tensors(&init, &max)
            .unwrap()
            .into_iter()
            .map(|(name, shape, values)| {
                let scale = if name.contains("LayerNorm.weight") { 1.0 } else { 0.0 };
                let values = values.iter().map(|_| scale + next()).collect();
                (name, shape, values)
            })
            .collect();
        Supernet::from_tensors(&max, 1e-12, tensors, device).unwrap()
    }

    fn logits(net: &Supernet, arch: &Arch) -> Vec<f32> {
        let ids: Vec<u32> = (0..16).map(|i| (i * 7 % 40) as u32).collect();
        let batch = crate::Batch::unlabelled(ids, vec![0; 16], vec![1.0; 16], 8);
        net.forward(&batch, arch, crate::Mode::default()).unwrap().logits.into_data().try_to_vec::<f32>().unwrap()
    }

    #[test]
    fn reordering_keeps_the_full_model_and_changes_subnets() {
        let device = Device::flex();
        let net = random_net(&device);
        let (sorted, order) = reorder(&net, &device).unwrap();
        assert!(!order.is_identity());
        let full = net.max.clone();
        let (a, b) = (logits(&net, &full), logits(&sorted, &full));
        let diff = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
        assert!(diff < 1e-4, "the full model changed by {diff}");
        let mut sub = full.clone();
        sub.hidden = 16;
        sub.heads = vec![2, 2];
        sub.ffn = vec![24, 24];
        let (a, b) = (logits(&net, &sub), logits(&sorted, &sub));
        assert!(a.iter().zip(&b).any(|(x, y)| (x - y).abs() > 1e-3), "the subnet kept the same weights");
        // Sorted again, nothing moves.
        let (_, again) = reorder(&sorted, &device).unwrap();
        assert!(again.is_identity(), "{again:?}");
    }

    #[test]
    fn data_importance_ranks_dead_units_last_and_keeps_the_full_model() {
        let device = Device::flex().autodiff();
        let net = random_net(&device);
        // Silence head 1 and neuron 5 of layer 0: nothing reads them, so masking them moves no
        // loss.
        let mut tensors = subnet_tensors(&net, &net.max).unwrap();
        let (hd, h) = (net.max.head_dim, net.max.hidden);
        let out = tensors.iter_mut().find(|t| t.0 == "bert.encoder.layer.0.attention.output.dense.weight").unwrap();
        for row in out.2.chunks_mut(net.max.heads[0] * hd) {
            row[hd..2 * hd].fill(0.0); // `[out, in]`: head 1's columns
        }
        let down = tensors.iter_mut().find(|t| t.0 == "bert.encoder.layer.0.output.dense.weight").unwrap();
        for row in down.2.chunks_mut(net.max.ffn[0]) {
            row[5] = 0.0;
        }
        let net = Supernet::from_tensors(&net.max, net.eps, tensors, &device).unwrap();
        let batches: Vec<Batch> = (0..3)
            .map(|b| {
                let ids: Vec<u32> = (0..16).map(|i| ((i * 7 + b * 3) % 40) as u32).collect();
                let mut batch = Batch::unlabelled(ids, vec![0; 16], vec![1.0; 16], 8);
                batch.labels = vec![crate::Label::Class(b % 3), crate::Label::Class((b + 1) % 3)];
                batch
            })
            .collect();
        let order = data_importance_order(&net, Task::Trec, &batches).unwrap();
        assert_eq!(order.heads[0].last(), Some(&1), "{:?}", order.heads[0]);
        assert_eq!(order.neurons[0].last(), Some(&5), "{:?}", order.neurons[0]);
        assert_eq!(order.hidden.len(), h);
        let sorted = reorder_by(&net, &order, &Device::flex()).unwrap();
        let plain = Supernet::from_tensors(&net.max, net.eps, subnet_tensors(&net, &net.max).unwrap(), &Device::flex())
            .unwrap();
        let full = net.max.clone();
        let (a, b) = (logits(&plain, &full), logits(&sorted, &full));
        let diff = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
        assert!(diff < 1e-4, "the full model changed by {diff}");
        // Without autodiff there is no gradient to measure.
        assert!(data_importance_order(&plain, Task::Trec, &batches).is_err());
    }
}
