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
    /// How much slower (positive) or faster this machine ran the profile's own calibration
    /// programs now than when it was calibrated: the median of `now / then − 1` over
    /// [`DRIFT_PROBES`] of them, measured taking turns with the held-out archs. `None` for a
    /// profile without end-to-end samples. A shared machine's speed moves over minutes (its
    /// neighbours, its clock); this says how much of a validation's error is that and not the
    /// predictor.
    pub drift: Option<Drift>,
}

/// The machine's speed now against calibration time, and the held-out errors with it taken out.
#[derive(Debug, Clone, Serialize)]
pub struct Drift {
    /// Median of `now / then − 1` over the calibration programs measured again.
    pub drift: f64,
    /// Calibration programs measured again.
    pub probes: usize,
    /// RMSPE and shares within ±5 % and ±10 % against `measured / (1 + drift)`: what the predictor
    /// would score had the machine run as fast as at calibration. A diagnostic, not the
    /// validation's result.
    pub rmspe_at_calibration_speed: f64,
    pub within_5_at_calibration_speed: f64,
    pub within_10_at_calibration_speed: f64,
}

/// Calibration programs measured again beside the held-out archs to estimate [`Drift`].
pub const DRIFT_PROBES: usize = 8;

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
        Validation { within_5: within(0.05), within_10: within(0.10), rmspe, rmspe_lookup, spearman, rows, drift: None }
    }

    /// Adds the drift estimated from `(then, now)` milliseconds of calibration programs.
    pub fn with_drift(mut self, probes: &[(f64, f64)]) -> Validation {
        let mut ratios: Vec<f64> =
            probes.iter().filter(|(then, _)| *then > 0.0).map(|(then, now)| now / then).collect();
        if ratios.is_empty() {
            return self;
        }
        ratios.sort_by(f64::total_cmp);
        let mid = ratios.len() / 2;
        let median = if ratios.len() % 2 == 1 { ratios[mid] } else { (ratios[mid - 1] + ratios[mid]) / 2.0 };
        let n = self.rows.len().max(1) as f64;
        let errors: Vec<f64> = self.rows.iter().map(|r| r.predicted_ms * median / r.measured_ms - 1.0).collect();
        let within = |t: f64| errors.iter().filter(|e| e.abs() <= t).count() as f64 / n;
        self.drift = Some(Drift {
            drift: median - 1.0,
            probes: ratios.len(),
            rmspe_at_calibration_speed: (errors.iter().map(|e| e * e).sum::<f64>() / n).sqrt(),
            within_5_at_calibration_speed: within(0.05),
            within_10_at_calibration_speed: within(0.10),
        });
        self
    }

    /// The rows as CSV text (`arch,predicted_ms,lookup_ms,measured_ms,relative_error,extrapolated`).
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

/// Up to [`DRIFT_PROBES`] of the profile's calibration programs, spread over their latencies:
/// their archs and the milliseconds calibration measured.
fn drift_probes(profile: &DeviceProfile) -> Result<Vec<(Arch, f64)>> {
    let mut programs: Vec<_> = profile.programs.iter().collect();
    programs.sort_by(|a, b| a.measured_ms.total_cmp(&b.measured_ms));
    let take = DRIFT_PROBES.min(programs.len());
    (0..take)
        .map(|i| {
            let p = programs[(2 * i + 1) * programs.len() / (2 * take)];
            Ok((Arch::parse(&p.arch)?, p.measured_ms))
        })
        .collect()
}

/// Compiles and measures every arch on this machine as the profile's device ran its programs,
/// and compares with the predictions; calibration programs measured again between them give the
/// machine's [`Drift`] since calibration.
pub fn validate(profile: &DeviceProfile, archs: &[Arch], progress: &mut dyn FnMut(Progress)) -> Result<Validation> {
    // Measuring an imported NPU profile's archs on this CPU would "validate" it against the
    // wrong device.
    let here = crate::Device::this_machine("", 1);
    if profile.device.kind != here.kind || profile.device.cpu_model != here.cpu_model {
        return Err(Error::OtherDevice {
            profile: profile.device.name.clone(),
            described: format!("{} `{}`", profile.device.kind, profile.device.cpu_model),
            here: format!("{} `{}`", here.kind, here.cpu_model),
        });
    }
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
    // The probes spread evenly among the held-out archs, so that they see the machine when the
    // archs do.
    let probes = drift_probes(profile)?;
    let mut all: Vec<Arch> = Vec::with_capacity(archs.len() + probes.len());
    let mut probe_at = Vec::with_capacity(probes.len());
    let mut next = probes.iter();
    for (i, arch) in archs.iter().enumerate() {
        if probe_at.len() < probes.len()
            && i * probes.len() >= probe_at.len() * archs.len()
            && let Some((probe, _)) = next.next()
        {
            probe_at.push(all.len());
            all.push(probe.clone());
        }
        all.push(arch.clone());
    }
    for (probe, _) in next {
        probe_at.push(all.len());
        all.push(probe.clone());
    }
    let measured = measure_end_to_end(&all, &options, &mut |done| {
        progress(Progress { stage: "validate", done, total: PASSES * all.len() })
    })?;
    let drift: Vec<(f64, f64)> = probes.iter().zip(&probe_at).map(|((_, then), &i)| (*then, measured[i])).collect();
    let held_out = measured.iter().enumerate().filter(|(i, _)| !probe_at.contains(i)).map(|(_, &ms)| ms);
    let mut rows = Vec::with_capacity(archs.len());
    for (arch, measured_ms) in archs.iter().zip(held_out) {
        let prediction = predictor.predict(arch)?;
        rows.push(Row {
            arch: arch.to_string(),
            predicted_ms: prediction.total_ms,
            lookup_ms: lookup.predict_ms(arch)?,
            measured_ms,
            extrapolated: prediction.extrapolated,
        });
    }
    progress(Progress { stage: "validate", done: all.len(), total: all.len() });
    Ok(Validation::from_rows(rows).with_drift(&drift))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_profile_of_another_device_is_not_validated_here() {
        let committed = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles/dev-epyc-2t.ron");
        let mut profile = DeviceProfile::load(&committed).expect("committed profile");
        profile.device.kind = "npu".into();
        profile.device.cpu_model = "unknown (imported)".into();
        let err = validate(&profile, &[], &mut |_| {}).expect_err("refused").to_string();
        assert!(err.contains("describes npu `unknown (imported)`") && err.contains("this machine is cpu `"), "{err}");
    }

    #[test]
    fn spearman_of_monotone_and_reversed_series() {
        let a = [1.0, 2.0, 3.0, 4.0];
        assert!((spearman(&a, &[10.0, 20.0, 35.0, 100.0]) - 1.0).abs() < 1e-12);
        assert!((spearman(&a, &[4.0, 3.0, 2.0, 1.0]) + 1.0).abs() < 1e-12);
        assert_eq!(ranks(&[3.0, 1.0, 3.0]), vec![1.5, 0.0, 1.5]);
    }

    #[test]
    fn drift_is_the_median_probe_ratio_and_taken_out_of_the_errors() {
        let row = |predicted_ms: f64, measured_ms: f64| Row {
            arch: String::new(),
            predicted_ms,
            lookup_ms: predicted_ms,
            measured_ms,
            extrapolated: false,
        };
        // The machine runs 8 % slower than at calibration: every arch measures 8 % over its
        // prediction, one more 20 % over.
        let rows = vec![row(1.0, 1.08), row(2.0, 2.16), row(3.0, 3.24), row(1.0, 1.30)];
        let v = Validation::from_rows(rows);
        assert_eq!(v.within_5, 0.0);
        let v = v.with_drift(&[(1.0, 1.08), (2.0, 2.16), (4.0, 4.32), (1.0, 0.5), (1.0, 3.0)]);
        let d = v.drift.clone().unwrap();
        assert!((d.drift - 0.08).abs() < 1e-12 && d.probes == 5, "{d:?}");
        assert_eq!((d.within_5_at_calibration_speed, d.within_10_at_calibration_speed), (0.75, 0.75));
        // Three rows exact at calibration speed, the fourth off by 1.08 / 1.30 − 1.
        let expected = ((1.08f64 / 1.30 - 1.0).powi(2) / 4.0).sqrt();
        assert!((d.rmspe_at_calibration_speed - expected).abs() < 1e-12, "{d:?}");
        assert_eq!(v.within_5, 0.0, "the validation's own result is untouched");
        assert!(Validation::from_rows(vec![row(1.0, 1.0)]).with_drift(&[]).drift.is_none());
    }
}
