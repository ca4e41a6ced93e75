//! [`DeviceProfile`]: everything canao knows about one device's latency, as a versioned RON file.
//!
//! A profile records the device (CPU model, cores, SIMD, threads used, OS, free-form notes for
//! phones and accelerators), when and with which canao it was made, the search space it was
//! calibrated on, every raw kernel sample, the fitted model of each kernel kind with its feature
//! schema, a fixed per-program overhead, the GEMM schedules auto-tuned on the device, and the
//! fusion rules that hold there. Loading a profile of another format version is an error.

use std::collections::BTreeMap;
use std::path::Path;

use arch::SearchSpace;
use compiler::KernelKey;
use compiler::kernels::gemm::GemmPlan;
use compiler::tune::GemmShape;
use serde::{Deserialize, Serialize};

use crate::models::KindModel;
use crate::{Error, Result};

/// The profile format this canao reads and writes.
pub const FORMAT_VERSION: u32 = 1;

/// What the profile was measured on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Device {
    /// A short name, e.g. `dev-epyc-2c` or `pixel-7`.
    pub name: String,
    /// `cpu`, `gpu`, `npu`, … (free-form).
    pub kind: String,
    pub cpu_model: String,
    pub cores: usize,
    pub simd: String,
    /// Worker threads the programs ran with.
    pub threads: usize,
    pub os: String,
    /// Anything else worth knowing (clock governor, thermal state, SoC, driver version, …).
    #[serde(default)]
    pub notes: BTreeMap<String, String>,
}

impl Device {
    /// This machine, running programs with `threads` threads.
    pub fn this_machine(name: &str, threads: usize) -> Device {
        Device {
            name: name.into(),
            kind: "cpu".into(),
            cpu_model: compiler::tune::cpu_signature(),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            simd: if compiler::kernels::simd::has_avx2_fma() { "avx2+fma".into() } else { "baseline".into() },
            threads,
            os: format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
            notes: BTreeMap::new(),
        }
    }
}

/// One measured kernel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KernelSample {
    pub key: KernelKey,
    pub median_ms: f64,
    /// Spread of the repetitions (10th and 90th percentiles).
    pub p10_ms: f64,
    pub p90_ms: f64,
    pub runs: usize,
}

/// One calibration arch measured end to end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProgramSample {
    /// The arch in RON (exact, unlike the compact form).
    pub arch: String,
    pub measured_ms: f64,
}

/// Whether one fusion pass pays off on the device (nn-Meter's pairwise test): the kernels it
/// fuses, timed apart, against the fused kernels it makes, in programs compiled with and without
/// it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FusionRule {
    pub pass: String,
    pub enabled: bool,
    /// Median over the probe archs of `time of the kernels without the pass / time of the fused
    /// kernels that replace them`.
    pub speedup: f64,
    /// What was compared on the first probe arch: the fused kernels against the kernels they
    /// replace, by kind (empty in profiles made before it was recorded).
    #[serde(default)]
    pub compared: String,
}

/// The program-level factor of small programs: a program whose GEMM weights take `W` MiB runs
/// with the factor `scale + factor · max(0, 1 − W / footprint_mib)` on the sum of its kernels.
/// On a CPU whose last-level cache holds a small program's weights from one run to the next, its
/// GEMMs stop waiting for memory; `factor` is then negative. Fitted, with `footprint_mib` chosen
/// from a grid, on the calibration archs' end-to-end latencies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheTerm {
    pub footprint_mib: f64,
    pub factor: f64,
}

impl CacheTerm {
    /// The term added to `scale` for a program of `weights_mib`.
    pub fn at(&self, weights_mib: f64) -> f64 {
        self.factor * (1.0 - weights_mib / self.footprint_mib).max(0.0)
    }
}

/// A device's latency profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceProfile {
    pub format_version: u32,
    pub device: Device,
    /// When it was made (UTC, RFC 3339).
    pub created: String,
    pub canao_version: String,
    /// How the samples were obtained: `calibrate` or `import`.
    pub source: String,
    /// The space whose kernels were sampled; predictions outside it are flagged.
    pub space: Option<SearchSpace>,
    /// Sequences per program run during calibration.
    pub batch: usize,
    pub samples: Vec<KernelSample>,
    /// Measured end-to-end latencies of the calibration archs (what the program-level terms are
    /// fitted on; kept so that models can be refitted without measuring again).
    #[serde(default)]
    pub programs: Vec<ProgramSample>,
    /// Kernel kind (as [`KernelKey::kind`] spells it) → model.
    pub models: BTreeMap<String, KindModel>,
    /// End-to-end latency is predicted as `scale · Σ kernel latencies + overhead_ms` (with
    /// [`Self::cache`]'s term added to `scale` for small programs): the fixed
    /// cost of a program beyond its kernels (dispatch, thread wake-ups), and the factor between
    /// a whole program's median and the sum of its kernels' medians (interference between
    /// kernels, and the tail a median of sums keeps but a sum of medians drops). Both are fitted
    /// on the calibration archs' measured end-to-end latencies.
    pub overhead_ms: f64,
    /// What a program adds per kernel beyond the kernels' latencies: each kernel's latency is
    /// the fastest of its rounds, taken kernel by kernel, and a sum of minima falls short of
    /// the program's own fastest run by a little for every kernel it sums. Zero where
    /// calibration found no such effect, and in profiles made before it was fitted; where it is
    /// set, `overhead_ms` may be negative (a line fitted over programs of six kernels and more:
    /// the fixed part `overhead_ms + per_kernel_ms · kernels` of every calibration program is
    /// ≥ 0).
    #[serde(default)]
    pub per_kernel_ms: f64,
    #[serde(default = "one")]
    pub scale: f64,
    /// How much faster programs run whose weights stay in the caches between runs, which the
    /// kernels (timed inside programs of every size) do not see: `None` where calibration found
    /// no such effect, and in profiles made before it was fitted.
    #[serde(default)]
    pub cache: Option<CacheTerm>,
    pub gemm_plans: Vec<(GemmShape, GemmPlan)>,
    pub fusion_rules: Vec<FusionRule>,
}

impl DeviceProfile {
    /// The factor on the sum of kernel latencies of a program whose GEMM weights take
    /// `weights_mib`.
    pub fn program_scale(&self, weights_mib: f64) -> f64 {
        self.scale + self.cache.as_ref().map_or(0.0, |c| c.at(weights_mib))
    }

    /// The fixed part of a program of `kernels` kernels: `overhead_ms + per_kernel_ms · kernels`.
    pub fn program_fixed_ms(&self, kernels: usize) -> f64 {
        self.overhead_ms + self.per_kernel_ms * kernels as f64
    }

    /// An empty profile of `device`, stamped now.
    pub fn new(device: Device, source: &str, space: Option<SearchSpace>, batch: usize) -> DeviceProfile {
        DeviceProfile {
            format_version: FORMAT_VERSION,
            device,
            created: now_utc(),
            canao_version: env!("CARGO_PKG_VERSION").into(),
            source: source.into(),
            space,
            batch,
            samples: Vec::new(),
            programs: Vec::new(),
            models: BTreeMap::new(),
            overhead_ms: 0.0,
            per_kernel_ms: 0.0,
            scale: 1.0,
            cache: None,
            gemm_plans: Vec::new(),
            fusion_rules: Vec::new(),
        }
    }

    /// Reads a profile; another format version, or a malformed file, is an error naming it.
    pub fn load(path: &Path) -> Result<DeviceProfile> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io { path: path.into(), source })?;
        #[derive(Deserialize)]
        struct Version {
            format_version: u32,
        }
        let options = ron::Options::default();
        // Read the version first, so that an old file says so instead of failing on a field.
        let version: Version = options
            .from_str::<ron::Value>(&text)
            .map_err(|e| Error::Format { path: path.into(), reason: e.to_string() })?
            .into_rust()
            .map_err(|e| Error::Format { path: path.into(), reason: format!("no format_version: {e}") })?;
        if version.format_version != FORMAT_VERSION {
            return Err(Error::Version { path: path.into(), found: version.format_version, expected: FORMAT_VERSION });
        }
        let profile: DeviceProfile =
            ron::from_str(&text).map_err(|e| Error::Format { path: path.into(), reason: e.to_string() })?;
        let bad = |reason: String| Err(Error::Format { path: path.into(), reason });
        if !(profile.scale.is_finite() && profile.scale >= 0.0 && profile.overhead_ms.is_finite()) {
            return bad(format!(
                "scale ({}) must be ≥ 0 and overhead_ms ({}) finite",
                profile.scale, profile.overhead_ms
            ));
        }
        if !(profile.per_kernel_ms.is_finite() && profile.per_kernel_ms >= 0.0) {
            return bad(format!("per_kernel_ms ({}) must be ≥ 0", profile.per_kernel_ms));
        }
        if let Some(c) = &profile.cache
            && !(c.footprint_mib.is_finite() && c.footprint_mib > 0.0 && c.factor.is_finite())
        {
            return bad(format!(
                "cache: footprint_mib ({}) must be > 0 and factor ({}) finite",
                c.footprint_mib, c.factor
            ));
        }
        // A model reads its features by position: one fitted on other features would predict
        // nonsense without a word.
        for sample in &profile.samples {
            let kind = sample.key.kind();
            let expected = crate::features::feature_names(&sample.key);
            if let Some(model) = profile.models.get(&kind)
                && !model.features.iter().map(String::as_str).eq(expected)
            {
                return bad(format!(
                    "models.{kind} reads the features {:?}, but this canao computes {expected:?} for that kind: \
                     calibrate again",
                    model.features
                ));
            }
        }
        Ok(profile)
    }

    /// Writes the profile atomically (temporary file, then rename).
    pub fn save(&self, path: &Path) -> Result<()> {
        let config = ron::ser::PrettyConfig::default().depth_limit(4);
        let text = ron::ser::to_string_pretty(self, config)
            .map_err(|e| Error::Format { path: path.into(), reason: e.to_string() })?;
        let io = |source| Error::Io { path: path.into(), source };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let tmp = path.with_extension("ron.tmp");
        std::fs::write(&tmp, text).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }

    /// Passes that do not pay off on this device (the compiler skips them for it).
    pub fn disabled_passes(&self) -> Vec<String> {
        self.fusion_rules.iter().filter(|r| !r.enabled).map(|r| r.pass.clone()).collect()
    }
}

fn one() -> f64 {
    1.0
}

/// The current UTC time as RFC 3339, without a date library.
pub fn now_utc() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_other_versions() {
        let dir = tempfile::Builder::new().prefix("canao-profile-").tempdir().unwrap();
        let path = dir.path().join("p.ron");
        let mut profile =
            DeviceProfile::new(Device::this_machine("test", 1), "calibrate", Some(SearchSpace::default()), 1);
        profile.samples.push(KernelSample {
            key: KernelKey::Attention { batch: 1, seq: 8, heads: 2, head_dim: 4 },
            median_ms: 0.01,
            p10_ms: 0.009,
            p90_ms: 0.012,
            runs: 9,
        });
        profile.save(&path).unwrap();
        assert_eq!(DeviceProfile::load(&path).unwrap(), profile);
        let text = std::fs::read_to_string(&path).unwrap().replace("format_version: 1", "format_version: 99");
        std::fs::write(&path, text).unwrap();
        let err = DeviceProfile::load(&path).unwrap_err().to_string();
        assert!(err.contains("version 99") && err.contains("p.ron"), "{err}");
        std::fs::write(&path, "not ron at all").unwrap();
        assert!(DeviceProfile::load(&path).is_err());
        profile.cache = Some(CacheTerm { footprint_mib: 0.0, factor: -0.1 });
        profile.save(&path).unwrap();
        let err = DeviceProfile::load(&path).unwrap_err().to_string();
        assert!(err.contains("p.ron") && err.contains("footprint_mib"), "{err}");
        profile.cache = None;
        profile.per_kernel_ms = -0.01;
        profile.save(&path).unwrap();
        let err = DeviceProfile::load(&path).unwrap_err().to_string();
        assert!(err.contains("p.ron") && err.contains("per_kernel_ms"), "{err}");
        // The committed profile, with its attention model's features in another order.
        let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles/dev-epyc-2t.ron");
        let mut profile = DeviceProfile::load(&committed).unwrap();
        profile.models.get_mut("attention").unwrap().features.swap(1, 2);
        profile.save(&path).unwrap();
        let err = DeviceProfile::load(&path).unwrap_err().to_string();
        assert!(err.contains("p.ron") && err.contains("models.attention") && err.contains("calibrate again"), "{err}");
    }

    #[test]
    fn dates_are_rfc3339() {
        let d = now_utc();
        assert_eq!(d.len(), 20);
        assert!(d.starts_with("20") && d.ends_with('Z'));
    }
}
