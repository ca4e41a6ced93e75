//! End-to-end latency prediction: the program an arch compiles to on the device (with the
//! device's fusion rules), each kernel's latency from its kind's model, summed, scaled and offset
//! by the program-level terms fitted at calibration (nn-Meter's kernel-level prediction).

use std::collections::HashMap;

use arch::Arch;
use compiler::{CompileOptions, KernelKey, PassSelection, fused_graph, kernel_keys};
use rayon::prelude::*;
use serde::Serialize;

use crate::features::features;
use crate::profile::DeviceProfile;
use crate::{Error, Result};

/// A prediction with its breakdown.
#[derive(Debug, Clone, Serialize)]
pub struct Prediction {
    pub total_ms: f64,
    pub overhead_ms: f64,
    /// Every kernel of the program, in execution order, with its predicted milliseconds.
    pub kernels: Vec<(KernelKey, f64)>,
    /// Some kernel's features lie outside what its kind was calibrated on.
    pub extrapolated: bool,
    /// The arch lies outside the profile's calibrated space (`None` without a space).
    pub outside_space: Option<String>,
}

/// Predicts latencies from a profile.
///
/// A kernel whose exact shape was measured on the device is predicted by its measurement (the
/// median of its samples); any other kernel by its kind's fitted model. A search space has
/// finitely many kernel shapes and calibration measures most of them, so inside the calibrated
/// space predictions rest on measurements; the models interpolate and extrapolate beyond it.
pub struct Predictor<'a> {
    profile: &'a DeviceProfile,
    options: CompileOptions,
    measured: HashMap<KernelKey, f64>,
}

impl<'a> Predictor<'a> {
    pub fn new(profile: &'a DeviceProfile) -> Predictor<'a> {
        let disabled = profile.disabled_passes();
        let passes = if disabled.is_empty() { PassSelection::All } else { PassSelection::Without(disabled) };
        let options =
            CompileOptions { batch: profile.batch, threads: profile.device.threads, passes, ..Default::default() };
        let measured = profile.samples.iter().map(|s| (s.key.clone(), s.median_ms)).collect();
        Predictor { profile, options, measured }
    }

    /// A predictor that ignores the measured shapes and uses the models alone (to evaluate them).
    pub fn models_only(profile: &'a DeviceProfile) -> Predictor<'a> {
        Predictor { measured: HashMap::new(), ..Predictor::new(profile) }
    }

    /// The kernels `arch` compiles to on this device.
    pub fn kernels(&self, arch: &Arch) -> Result<Vec<KernelKey>> {
        Ok(kernel_keys(&fused_graph(arch, &self.options)?))
    }

    fn kernel_ms(&self, key: &KernelKey, arch: &Arch) -> Result<(f64, bool)> {
        if let Some(&ms) = self.measured.get(key) {
            return Ok((ms, false));
        }
        let kind = key.kind();
        let model = self.profile.models.get(&kind).ok_or_else(|| Error::MissingKind {
            profile: self.profile.device.name.clone(),
            kind,
            arch: arch.to_string(),
        })?;
        let x = features(key);
        Ok((model.model.predict(&x), model.extrapolates(&x)))
    }

    /// End-to-end prediction with a per-kernel breakdown.
    pub fn predict(&self, arch: &Arch) -> Result<Prediction> {
        let mut kernels = Vec::new();
        let mut extrapolated = false;
        for key in self.kernels(arch)? {
            let (ms, outside) = self.kernel_ms(&key, arch)?;
            extrapolated |= outside;
            kernels.push((key, ms));
        }
        let total_ms = self.profile.overhead_ms + self.profile.scale * kernels.iter().map(|(_, ms)| ms).sum::<f64>();
        let outside_space = self.profile.space.as_ref().and_then(|s| s.contains(arch).err().map(|e| e.to_string()));
        Ok(Prediction { total_ms, overhead_ms: self.profile.overhead_ms, kernels, extrapolated, outside_space })
    }

    /// End-to-end milliseconds only (the search's path).
    pub fn predict_ms(&self, arch: &Arch) -> Result<f64> {
        let mut sum = 0.0;
        for key in self.kernels(arch)? {
            sum += self.kernel_ms(&key, arch)?.0;
        }
        Ok(self.profile.overhead_ms + self.profile.scale * sum)
    }

    /// [`Predictor::predict_ms`] for many archs, in parallel, results in input order.
    pub fn predict_many(&self, archs: &[Arch]) -> Vec<Result<f64>> {
        archs.par_iter().map(|a| self.predict_ms(a)).collect()
    }
}
