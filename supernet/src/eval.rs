//! Scoring an arch with inherited weights on a labelled split: accuracy (SST-2, TREC), Matthews
//! correlation (CoLA), Pearson and Spearman correlation (STS-B).

use arch::Arch;
use serde::Serialize;

use crate::data::{Label, Task};
use crate::model::{Mode, ModelError, Supernet};
use crate::tokens::{Batch, Encoded, plan};

/// The scores of one arch on one split.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Score {
    pub task: Task,
    /// The task's headline metric (accuracy, Matthews or Pearson), in [−1, 1] or [0, 1].
    pub value: f64,
    /// Every metric of the task, by name.
    pub metrics: Vec<(String, f64)>,
    pub examples: usize,
}

/// Runs `arch` over `examples` in length-sorted batches of `batch_size` and scores it. The
/// supernet should be on a device without autodiff (`Module::valid`).
pub fn evaluate(
    net: &Supernet,
    arch: &Arch,
    task: Task,
    examples: &[Encoded],
    pad: u32,
    batch_size: usize,
) -> Result<Score, ModelError> {
    let mut arch = arch.clone();
    arch.task = net.max.task;
    evaluate_with(task, examples, pad, batch_size, |batch| {
        let logits = net.forward(batch, &arch, Mode::default())?.logits;
        logits.into_data().try_into_vec::<f32>().map_err(|e| ModelError::Input(format!("{e:?}")))
    })
}

/// Scores the logits `run` gives for each length-sorted batch of `batch_size` examples (`rows ×
/// outputs`, row-major): evaluation whatever computes the logits (the supernet in burn, or the
/// subnet's compiled program).
pub fn evaluate_with<E: From<ModelError>>(
    task: Task,
    examples: &[Encoded],
    pad: u32,
    batch_size: usize,
    mut run: impl FnMut(&Batch) -> Result<Vec<f32>, E>,
) -> Result<Score, E> {
    let _span = tracing::info_span!("evaluate", %task, examples = examples.len()).entered();
    let mut predictions = vec![0.0f64; examples.len()];
    for index in plan(examples, batch_size, None) {
        let batch = Batch::new(examples, index, pad);
        let values = run(&batch)?;
        let rows = batch.index.len();
        if rows == 0 || values.len() % rows != 0 {
            return Err(ModelError::Input(format!("{} logits for a batch of {rows} examples", values.len())).into());
        }
        let width = values.len() / rows;
        for (r, &i) in batch.index.iter().enumerate() {
            let row = &values[r * width..(r + 1) * width];
            predictions[i] = if task.is_regression() { f64::from(row[0]) } else { argmax(row) as f64 };
        }
    }
    Ok(score(task, &predictions, examples))
}

fn argmax(row: &[f32]) -> usize {
    row.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map_or(0, |(i, _)| i)
}

/// Scores `predictions` (class indices, or scores for regression) against the labels.
pub fn score(task: Task, predictions: &[f64], examples: &[Encoded]) -> Score {
    let gold: Vec<f64> = examples
        .iter()
        .map(|e| match e.label {
            Label::Class(c) => c as f64,
            Label::Score(s) => f64::from(s),
        })
        .collect();
    let accuracy = predictions.iter().zip(&gold).filter(|(p, g)| p == g).count() as f64 / gold.len().max(1) as f64;
    let metrics: Vec<(String, f64)> = match task {
        Task::Sst2 | Task::Trec => vec![("accuracy".into(), accuracy)],
        Task::Cola => vec![("matthews".into(), matthews(predictions, &gold)), ("accuracy".into(), accuracy)],
        Task::Stsb => {
            vec![("pearson".into(), pearson(predictions, &gold)), ("spearman".into(), spearman(predictions, &gold))]
        }
    };
    Score { task, value: metrics[0].1, metrics, examples: gold.len() }
}

/// Matthews correlation of binary predictions (0 when a row or column of the confusion matrix
/// is empty, as scikit-learn does).
pub fn matthews(pred: &[f64], gold: &[f64]) -> f64 {
    let (mut tp, mut tn, mut fp, mut fn_) = (0.0, 0.0, 0.0, 0.0);
    for (&p, &g) in pred.iter().zip(gold) {
        match (p > 0.5, g > 0.5) {
            (true, true) => tp += 1.0,
            (false, false) => tn += 1.0,
            (true, false) => fp += 1.0,
            (false, true) => fn_ += 1.0,
        }
    }
    let denom: f64 = (tp + fp) * (tp + fn_) * (tn + fp) * (tn + fn_);
    if denom == 0.0 { 0.0 } else { (tp * tn - fp * fn_) / denom.sqrt() }
}

/// Pearson correlation (0 for a constant input).
pub fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len()) as f64;
    if n < 2.0 {
        return 0.0;
    }
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut cov, mut va, mut vb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        cov += (x - ma) * (y - mb);
        va += (x - ma) * (x - ma);
        vb += (y - mb) * (y - mb);
    }
    if va == 0.0 || vb == 0.0 { 0.0 } else { cov / (va * vb).sqrt() }
}

/// Ranks with ties given their average rank.
fn ranks(v: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&i, &j| v[i].total_cmp(&v[j]));
    let mut r = vec![0.0; v.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
            j += 1;
        }
        for &k in &idx[i..=j] {
            r[k] = (i + j) as f64 / 2.0 + 1.0;
        }
        i = j + 1;
    }
    r
}

/// Spearman rank correlation.
pub fn spearman(a: &[f64], b: &[f64]) -> f64 {
    pearson(&ranks(a), &ranks(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_match_known_values() {
        // scikit-learn: matthews_corrcoef([1,1,1,0,0,0], [1,1,0,0,0,1]) = 1/3
        let m = matthews(&[1., 1., 0., 0., 0., 1.], &[1., 1., 1., 0., 0., 0.]);
        assert!((m - 1.0 / 3.0).abs() < 1e-12, "{m}");
        assert_eq!(matthews(&[1., 1.], &[1., 0.]), 0.0);
        // scipy: pearsonr([1,2,3,4], [1,3,2,5]) = 0.8315218...; spearmanr = 0.8
        let p = pearson(&[1., 2., 3., 4.], &[1., 3., 2., 5.]);
        assert!((p - 0.831_521_8).abs() < 1e-6, "{p}");
        let s = spearman(&[1., 2., 3., 4.], &[1., 3., 2., 5.]);
        assert!((s - 0.8).abs() < 1e-12, "{s}");
        // Ties: spearmanr([1,1,2], [1,2,3]) = 0.8660254
        let t = spearman(&[1., 1., 2.], &[1., 2., 3.]);
        assert!((t - 0.866_025_4).abs() < 1e-6, "{t}");
    }
}
