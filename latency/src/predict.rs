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

/// The weights a program's GEMMs read on every run, in MiB (4-byte floats).
pub fn weights_mib<'k>(keys: impl IntoIterator<Item = &'k KernelKey>) -> f64 {
    let elements: usize = keys
        .into_iter()
        .map(|key| match key {
            KernelKey::Gemm { n, k, .. } => n * k,
            _ => 0,
        })
        .sum();
    elements as f64 * 4.0 / (1024.0 * 1024.0)
}

/// A prediction with its breakdown.
#[derive(Debug, Clone, Serialize)]
pub struct Prediction {
    pub total_ms: f64,
    /// The program's fixed part: the profile's overhead plus its per-kernel term times the
    /// number of kernels.
    pub overhead_ms: f64,
    /// The factor applied to the sum of the kernels (the profile's `scale`, with its cache term
    /// for small programs): `total_ms = overhead_ms + scale · Σ kernels`.
    pub scale: f64,
    /// Every kernel of the program, in execution order, with its predicted milliseconds.
    pub kernels: Vec<(KernelKey, f64)>,
    /// Some kernel's features lie outside what its kind was calibrated on.
    pub extrapolated: bool,
    /// The arch lies outside the profile's calibrated space (`None` without a space).
    pub outside_space: Option<String>,
}

/// A program's kernels as the program-level terms see them.
pub(crate) struct KernelSum {
    pub sum_ms: f64,
    pub weights_mib: f64,
    pub kernels: usize,
}

/// Predicts latencies from a profile.
///
/// Every kernel is predicted by its kind's fitted model, also where calibration measured its
/// exact shape: a single measurement carries the noise of the moment it was taken (on a shared
/// machine, a slow spell lands on every kernel of the program being timed), which a model fitted
/// over all shapes of the kind averages out. On this machine the models alone predicted
/// end-to-end latency as well as measured shapes looked up at 1 thread, and better at 2 threads
/// (BENCHMARKS.md, issue 4); [`Predictor::with_measured_shapes`] keeps the lookup for that
/// comparison.
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
        Predictor { profile, options, measured: HashMap::new() }
    }

    /// A predictor that takes a kernel's latency from the profile's samples where calibration
    /// measured its exact shape, and from the models elsewhere (to compare with the models).
    pub fn with_measured_shapes(profile: &'a DeviceProfile) -> Predictor<'a> {
        let measured = profile.samples.iter().map(|s| (s.key.clone(), s.median_ms)).collect();
        Predictor { measured, ..Predictor::new(profile) }
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
        let scale = self.profile.program_scale(weights_mib(kernels.iter().map(|(key, _)| key)));
        let overhead_ms = self.profile.program_fixed_ms(kernels.len());
        let total_ms = overhead_ms + scale * kernels.iter().map(|(_, ms)| ms).sum::<f64>();
        let outside_space = self.profile.space.as_ref().and_then(|s| s.contains(arch).err().map(|e| e.to_string()));
        Ok(Prediction { total_ms, overhead_ms, scale, kernels, extrapolated, outside_space })
    }

    /// End-to-end milliseconds only (the search's path).
    pub fn predict_ms(&self, arch: &Arch) -> Result<f64> {
        let p = self.kernel_sum(arch)?;
        Ok(self.profile.program_fixed_ms(p.kernels) + self.profile.program_scale(p.weights_mib) * p.sum_ms)
    }

    /// The sum of the kernel latencies of `arch`'s program (before the program-level terms),
    /// with its GEMM weights and number of kernels: what those terms are fitted on.
    pub(crate) fn kernel_sum(&self, arch: &Arch) -> Result<KernelSum> {
        let keys = self.kernels(arch)?;
        let mut sum_ms = 0.0;
        for key in &keys {
            sum_ms += self.kernel_ms(key, arch)?.0;
        }
        Ok(KernelSum { sum_ms, weights_mib: weights_mib(&keys), kernels: keys.len() })
    }

    /// [`Predictor::predict_ms`] for many archs, in parallel, results in input order.
    pub fn predict_many(&self, archs: &[Arch]) -> Vec<Result<f64>> {
        archs.par_iter().map(|a| self.predict_ms(a)).collect()
    }
}
