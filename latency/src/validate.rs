//! Validation of a profile against measured end-to-end latency on held-out archs.

use arch::Arch;
use compiler::{CompileOptions, PassSelection, Tuning};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::calibrate::{PASSES, Progress, measure_end_to_end};
use crate::predict::Predictor;
use crate::profile::DeviceProfile;
use crate::{Error, Result};

/// One held-out arch.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub arch: String,
    pub predicted_ms: f64,
    /// The prediction with the kernels whose exact shape calibration measured looked up instead of
    /// modelled ([`Predictor::with_measured_shapes`]).
    pub lookup_ms: f64,
    pub measured_ms: f64,
    pub extrapolated: bool,
}

impl Row {
    /// `(predicted - measured) / measured`.
    pub fn relative_error(&self) -> f64 {
        (self.predicted_ms - self.measured_ms) / self.measured_ms
    }
}

/// Accuracy of the predictor over the rows.
#[derive(Debug, Clone, Serialize)]
pub struct Validation {
    pub rows: Vec<Row>,
    pub rmspe: f64,
    /// RMSPE with measured shapes looked up.
    pub rmspe_lookup: f64,
    pub within_5: f64,
    pub within_10: f64,
    pub spearman: f64,
}

/// Ranks with ties averaged.
fn ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; values.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && values[order[j + 1]] == values[order[i]] {
            j += 1;
        }
        for &o in &order[i..=j] {
            ranks[o] = (i + j) as f64 / 2.0;
        }
        i = j + 1;
    }
    ranks
}

/// Spearman's rank correlation of two equally long series.
pub fn spearman(a: &[f64], b: &[f64]) -> f64 {
    let (ra, rb) = (ranks(a), ranks(b));
    let n = ra.len() as f64;
    let (ma, mb) = (ra.iter().sum::<f64>() / n, rb.iter().sum::<f64>() / n);
    let cov: f64 = ra.iter().zip(&rb).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = ra.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = rb.iter().map(|y| (y - mb).powi(2)).sum();
    cov / (va * vb).sqrt().max(1e-300)
}

impl Validation {
    /// Summarises rows.
    pub fn from_rows(rows: Vec<Row>) -> Validation {
        let n = rows.len().max(1) as f64;
        let errors: Vec<f64> = rows.iter().map(Row::relative_error).collect();
        let rmspe = (errors.iter().map(|e| e * e).sum::<f64>() / n).sqrt();
        let lookup = rows.iter().map(|r| ((r.lookup_ms - r.measured_ms) / r.measured_ms).powi(2)).sum::<f64>();
        let rmspe_lookup = (lookup / n).sqrt();
        let within = |t: f64| errors.iter().filter(|e| e.abs() <= t).count() as f64 / n;
        let predicted: Vec<f64> = rows.iter().map(|r| r.predicted_ms).collect();
        let measured: Vec<f64> = rows.iter().map(|r| r.measured_ms).collect();
        let spearman = spearman(&predicted, &measured);
        Validation { within_5: within(0.05), within_10: within(0.10), rmspe, rmspe_lookup, spearman, rows }
    }

    /// The rows as CSV text (`arch,predicted_ms,measured_ms,relative_error,extrapolated`).
    pub fn to_csv(&self) -> String {
        let mut out = String::from("arch,predicted_ms,lookup_ms,measured_ms,relative_error,extrapolated\n");
        for r in &self.rows {
            out.push_str(&format!(
                "\"{}\",{:.5},{:.5},{:.5},{:.5},{}\n",
                r.arch,
                r.predicted_ms,
                r.lookup_ms,
                r.measured_ms,
                r.relative_error(),
                r.extrapolated
            ));
        }
        out
    }
}

/// Held-out archs: drawn from the profile's space with `seed` (calibration draws with its own).
pub fn held_out_archs(profile: &DeviceProfile, n: usize, seed: u64) -> Result<Vec<Arch>> {
    let space = profile.space.as_ref().ok_or_else(|| {
        Error::Calibration("the profile records no search space (it was imported): give archs explicitly".into())
    })?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x05ee_d0fb_a11a);
    Ok((0..n).map(|_| space.sample(&mut rng)).collect())
}

/// Compiles and measures every arch on this machine as the profile's device ran its programs,
/// and compares with the predictions.
pub fn validate(profile: &DeviceProfile, archs: &[Arch], progress: &mut dyn FnMut(Progress)) -> Result<Validation> {
    compiler::tune::preload(&profile.gemm_plans);
    let predictor = Predictor::new(profile);
    let lookup = Predictor::with_measured_shapes(profile);
    let disabled = profile.disabled_passes();
    let options = CompileOptions {
        batch: profile.batch,
        threads: profile.device.threads,
        passes: if disabled.is_empty() { PassSelection::All } else { PassSelection::Without(disabled) },
        tuning: Tuning::Auto { cache_file: None },
        pin_threads: true,
        ..Default::default()
    };
    let measured = measure_end_to_end(archs, &options, &mut |done| {
        progress(Progress { stage: "validate", done, total: PASSES * archs.len() })
    })?;
    let mut rows = Vec::with_capacity(archs.len());
    for (arch, measured_ms) in archs.iter().zip(measured) {
        let prediction = predictor.predict(arch)?;
        rows.push(Row {
            arch: arch.to_string(),
            predicted_ms: prediction.total_ms,
            lookup_ms: lookup.predict_ms(arch)?,
            measured_ms,
            extrapolated: prediction.extrapolated,
        });
    }
    progress(Progress { stage: "validate", done: archs.len(), total: archs.len() });
    Ok(Validation::from_rows(rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spearman_of_monotone_and_reversed_series() {
        let a = [1.0, 2.0, 3.0, 4.0];
        assert!((spearman(&a, &[10.0, 20.0, 35.0, 100.0]) - 1.0).abs() < 1e-12);
        assert!((spearman(&a, &[4.0, 3.0, 2.0, 1.0]) + 1.0).abs() < 1e-12);
        assert_eq!(ranks(&[3.0, 1.0, 3.0]), vec![1.5, 0.0, 1.5]);
    }
}
