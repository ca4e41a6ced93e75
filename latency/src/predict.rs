//! End-to-end latency prediction: the program an arch compiles to on the device (with the
//! device's fusion rules), each kernel's latency from its kind's model, summed with the fixed
//! per-program overhead (nn-Meter's kernel-level prediction).

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
pub struct Predictor<'a> {
    profile: &'a DeviceProfile,
    options: CompileOptions,
}

impl<'a> Predictor<'a> {
    pub fn new(profile: &'a DeviceProfile) -> Predictor<'a> {
        let disabled = profile.disabled_passes();
        let passes = if disabled.is_empty() { PassSelection::All } else { PassSelection::Without(disabled) };
        let options =
            CompileOptions { batch: profile.batch, threads: profile.device.threads, passes, ..Default::default() };
        Predictor { profile, options }
    }

    /// The kernels `arch` compiles to on this device.
    pub fn kernels(&self, arch: &Arch) -> Result<Vec<KernelKey>> {
        Ok(kernel_keys(&fused_graph(arch, &self.options)?))
    }

    fn kernel_ms(&self, key: &KernelKey, arch: &Arch) -> Result<(f64, bool)> {
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
        let total_ms = self.profile.overhead_ms + kernels.iter().map(|(_, ms)| ms).sum::<f64>();
        let outside_space = self.profile.space.as_ref().and_then(|s| s.contains(arch).err().map(|e| e.to_string()));
        Ok(Prediction { total_ms, overhead_ms: self.profile.overhead_ms, kernels, extrapolated, outside_space })
    }

    /// End-to-end milliseconds only (the search's path).
    pub fn predict_ms(&self, arch: &Arch) -> Result<f64> {
        let mut total = self.profile.overhead_ms;
        for key in self.kernels(arch)? {
            total += self.kernel_ms(&key, arch)?.0;
        }
        Ok(total)
    }

    /// [`Predictor::predict_ms`] for many archs, in parallel, results in input order.
    pub fn predict_many(&self, archs: &[Arch]) -> Vec<Result<f64>> {
        archs.par_iter().map(|a| self.predict_ms(a)).collect()
    }
}
