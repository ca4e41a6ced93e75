//! Piecewise-linear latency models: `latency = a·flops + b·bytes + c·elements + d·calls + e` per
//! segment of the FLOP range, fitted by least squares on *relative* error (weights `1/y²`), which
//! is what RMSPE measures.

use serde::{Deserialize, Serialize};

/// One linear piece, valid for FLOPs up to `upto`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Piece {
    pub upto: f64,
    /// Coefficients of the scaled features, then the intercept.
    pub coef: Vec<f64>,
}

/// Pieces in increasing FLOP order, with the scale each feature is divided by.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PiecewiseLinear {
    pub scale: Vec<f64>,
    pub pieces: Vec<Piece>,
}

/// Solves the weighted least-squares problem `min Σ w (x·c - y)²` with a little ridge for
/// stability. `None` if the system is singular even so.
pub(crate) fn solve(rows: &[(Vec<f64>, f64, f64)], dim: usize) -> Option<Vec<f64>> {
    let mut a = vec![vec![0.0; dim + 1]; dim];
    for (x, y, w) in rows {
        for i in 0..dim {
            for j in 0..dim {
                a[i][j] += w * x[i] * x[j];
            }
            a[i][dim] += w * x[i] * y;
        }
    }
    let trace: f64 = (0..dim).map(|i| a[i][i]).sum::<f64>() / dim as f64;
    for (i, row) in a.iter_mut().enumerate() {
        row[i] += 1e-9 * trace.max(1e-30);
    }
    // Gaussian elimination with partial pivoting.
    for col in 0..dim {
        let pivot = (col..dim).max_by(|&p, &q| a[p][col].abs().total_cmp(&a[q][col].abs()))?;
        if a[pivot][col].abs() < 1e-300 {
            return None;
        }
        a.swap(col, pivot);
        for r in 0..dim {
            if r != col {
                let f = a[r][col] / a[col][col];
                for c in col..=dim {
                    a[r][c] -= f * a[col][c];
                }
            }
        }
    }
    Some((0..dim).map(|i| a[i][dim] / a[i][i]).collect())
}

impl PiecewiseLinear {
    /// Fits `pieces` segments split at FLOP quantiles (fewer when samples are scarce).
    pub fn fit(xs: &[[f64; 4]], ys: &[f64], pieces: usize) -> Option<PiecewiseLinear> {
        let scale: Vec<f64> = (0..4).map(|f| xs.iter().map(|x| x[f].abs()).fold(0.0, f64::max).max(1e-12)).collect();
        let mut flops: Vec<f64> = xs.iter().map(|x| x[0]).collect();
        flops.sort_by(f64::total_cmp);
        let pieces = pieces.clamp(1, (xs.len() / 12).max(1));
        let mut bounds: Vec<f64> = (1..pieces).map(|p| flops[p * flops.len() / pieces]).collect();
        bounds.push(f64::INFINITY);
        let mut out = Vec::new();
        let mut lower = f64::NEG_INFINITY;
        for upto in bounds {
            let rows: Vec<(Vec<f64>, f64, f64)> = xs
                .iter()
                .zip(ys)
                .filter(|(x, _)| x[0] > lower && x[0] <= upto)
                .map(|(x, &y)| {
                    let mut row: Vec<f64> = (0..4).map(|f| x[f] / scale[f]).collect();
                    row.push(1.0);
                    (row, y, 1.0 / (y * y).max(1e-18))
                })
                .collect();
            let coef = if rows.len() >= 3 { solve(&rows, 5)? } else { out.last().map(|p: &Piece| p.coef.clone())? };
            out.push(Piece { upto, coef });
            lower = upto;
        }
        Some(PiecewiseLinear { scale, pieces: out })
    }

    /// Predicted milliseconds (never below a microsecond).
    pub fn predict(&self, x: &[f64; 4]) -> f64 {
        let piece = self.pieces.iter().find(|p| x[0] <= p.upto).or(self.pieces.last());
        let Some(piece) = piece else { return 0.0 };
        let mut y = piece.coef[4];
        for f in 0..4 {
            y += piece.coef[f] * x[f] / self.scale[f];
        }
        y.max(1e-3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_a_linear_law() {
        let xs: Vec<[f64; 4]> = (1..60).map(|i| [i as f64 * 1e6, (i * i) as f64 * 1e3, i as f64 * 10.0, 1.0]).collect();
        let ys: Vec<f64> = xs.iter().map(|x| 2e-8 * x[0] + 1e-6 * x[1] + 0.01).collect();
        let model = PiecewiseLinear::fit(&xs, &ys, 1).unwrap();
        for (x, y) in xs.iter().zip(&ys) {
            assert!((model.predict(x) - y).abs() / y < 1e-6);
        }
    }
}
