//! Latency profiles of devices: how long the kernels canao's compiler generates take on a device,
//! and from that, how long any architecture takes end to end.
//!
//! Following nn-Meter (Zhang et al., MobiSys 2021), the latency of a model is the sum of the
//! latencies of its kernels *after fusion*, each kernel kind with its own model fitted on
//! measurements taken on the device ([`calibrate`]) or imported from a team's own harness
//! ([`import`]). A [`DeviceProfile`] stores the samples, the models, the tuned GEMM schedules and
//! the fusion rules of the device; a [`Predictor`] answers thousands of queries a second;
//! [`validate`] checks it against measured end-to-end latency.
//!
//! This crate must not know about burn or the search.

pub mod calibrate;
mod error;
pub mod features;
pub mod import;
pub mod models;
mod predict;
pub mod profile;
pub mod validate;

pub use error::{Error, Result};
pub use predict::{Prediction, Predictor};
pub use profile::{CacheTerm, Device, DeviceProfile, FusionRule, KernelSample, ProgramSample};
