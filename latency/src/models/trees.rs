//! Gradient-boosted regression trees on log-features predicting log-latency (squared loss, so
//! the fit is of relative error). Small, exact split search: calibration yields hundreds of
//! samples per kernel kind, not millions.

use serde::{Deserialize, Serialize};

/// A node of a regression tree, stored flat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Node {
    Split { feature: usize, threshold: f64, left: usize, right: usize },
    Leaf(f64),
}

/// One tree; node 0 is the root.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tree {
    pub nodes: Vec<Node>,
}

impl Tree {
    fn predict(&self, x: &[f64]) -> f64 {
        let mut i = 0;
        loop {
            match self.nodes.get(i) {
                Some(Node::Split { feature, threshold, left, right }) => {
                    i = if x[*feature] <= *threshold { *left } else { *right };
                }
                Some(Node::Leaf(v)) => return *v,
                None => return 0.0,
            }
        }
    }
}

/// The ensemble: `exp(base + rate · Σ tree(log x))` milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BoostedTrees {
    pub base: f64,
    pub rate: f64,
    pub trees: Vec<Tree>,
}

/// Hyper-parameters of [`BoostedTrees::fit`].
#[derive(Debug, Clone, Copy)]
pub struct TreeParams {
    pub rounds: usize,
    pub depth: usize,
    pub rate: f64,
    pub min_leaf: usize,
}

impl Default for TreeParams {
    fn default() -> Self {
        TreeParams { rounds: 200, depth: 3, rate: 0.1, min_leaf: 1 }
    }
}

fn log_features(x: &[f64; 4]) -> [f64; 4] {
    x.map(|v| v.max(1e-12).ln())
}

fn build(nodes: &mut Vec<Node>, xs: &[[f64; 4]], r: &[f64], idx: &[usize], depth: usize, p: &TreeParams) -> usize {
    let mean = idx.iter().map(|&i| r[i]).sum::<f64>() / idx.len().max(1) as f64;
    let me = nodes.len();
    nodes.push(Node::Leaf(mean));
    if depth == 0 || idx.len() < 2 * p.min_leaf {
        return me;
    }
    let total: f64 = idx.iter().map(|&i| r[i]).sum();
    let mut best: Option<(f64, usize, f64)> = None;
    for f in 0..4 {
        let mut order = idx.to_vec();
        order.sort_by(|&a, &b| xs[a][f].total_cmp(&xs[b][f]));
        let mut left_sum = 0.0;
        for (count, w) in order.windows(2).enumerate() {
            left_sum += r[w[0]];
            let nl = count + 1;
            let nr = order.len() - nl;
            if nl < p.min_leaf || nr < p.min_leaf || xs[w[0]][f] == xs[w[1]][f] {
                continue;
            }
            // Maximising Σ n·mean² of the children minimises their squared error.
            let gain = left_sum * left_sum / nl as f64 + (total - left_sum).powi(2) / nr as f64;
            if best.is_none_or(|(g, _, _)| gain > g) {
                best = Some((gain, f, 0.5 * (xs[w[0]][f] + xs[w[1]][f])));
            }
        }
    }
    let Some((_, feature, threshold)) = best else { return me };
    let (l, rr): (Vec<usize>, Vec<usize>) = idx.iter().partition(|&&i| xs[i][feature] <= threshold);
    let left = build(nodes, xs, r, &l, depth - 1, p);
    let right = build(nodes, xs, r, &rr, depth - 1, p);
    nodes[me] = Node::Split { feature, threshold, left, right };
    me
}

impl BoostedTrees {
    /// Fits the ensemble to `(features, milliseconds)` samples.
    pub fn fit(xs: &[[f64; 4]], ys: &[f64], p: TreeParams) -> BoostedTrees {
        let lx: Vec<[f64; 4]> = xs.iter().map(log_features).collect();
        let ly: Vec<f64> = ys.iter().map(|y| y.max(1e-9).ln()).collect();
        let base = ly.iter().sum::<f64>() / ly.len().max(1) as f64;
        let mut pred = vec![base; ly.len()];
        let idx: Vec<usize> = (0..ly.len()).collect();
        let mut trees = Vec::with_capacity(p.rounds);
        for _ in 0..p.rounds {
            let residual: Vec<f64> = ly.iter().zip(&pred).map(|(y, q)| y - q).collect();
            let mut nodes = Vec::new();
            build(&mut nodes, &lx, &residual, &idx, p.depth, &p);
            let tree = Tree { nodes };
            for (q, x) in pred.iter_mut().zip(&lx) {
                *q += p.rate * tree.predict(x);
            }
            trees.push(tree);
        }
        BoostedTrees { base, rate: p.rate, trees }
    }

    /// Predicted milliseconds.
    pub fn predict(&self, x: &[f64; 4]) -> f64 {
        let lx = log_features(x);
        (self.base + self.rate * self.trees.iter().map(|t| t.predict(&lx)).sum::<f64>()).exp()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fits_a_power_law_within_a_few_percent() {
        let xs: Vec<[f64; 4]> = (1..80).map(|i| [(i * i) as f64 * 1e5, i as f64 * 1e4, i as f64, 1.0]).collect();
        let ys: Vec<f64> = xs.iter().map(|x| 1e-6 * x[0].powf(0.9) + 0.005).collect();
        let model = BoostedTrees::fit(&xs, &ys, TreeParams::default());
        let worst = xs.iter().zip(&ys).map(|(x, y)| ((model.predict(x) - y) / y).abs()).fold(0.0, f64::max);
        assert!(worst < 0.05, "worst relative error {worst}");
    }
}
