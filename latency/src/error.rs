use std::path::PathBuf;

use thiserror::Error;

/// Errors of the latency crate.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// A profile file could not be read or written.
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// A profile file is not valid RON of the profile format.
    #[error("{path}: not a canao device profile: {reason}")]
    Format { path: PathBuf, reason: String },
    /// A profile of another format version.
    #[error("{path}: profile format version {found}, this canao reads version {expected}; recalibrate or re-import")]
    Version { path: PathBuf, found: u32, expected: u32 },
    /// A program uses a kernel kind the profile has no model for.
    #[error(
        "profile `{profile}` has no model for kernel kind `{kind}` (needed by {arch}); calibrate a space that contains it"
    )]
    MissingKind { profile: String, kind: String, arch: String },
    /// An imported measurement file is malformed.
    #[error("{path}:{line}: {reason}")]
    Import { path: PathBuf, line: usize, reason: String },
    /// Compiling or running a program failed.
    #[error(transparent)]
    Compiler(#[from] compiler::Error),
    /// An arch or a space is invalid.
    #[error(transparent)]
    Arch(#[from] arch::Error),
    /// Validation measures on this machine, and the profile describes another device.
    #[error(
        "profile `{profile}` describes {described}, this machine is {here}: validate it on the device it describes"
    )]
    OtherDevice { profile: String, described: String, here: String },
    /// Calibration produced nothing to fit.
    #[error("calibration failed: {0}")]
    Calibration(String),
}

/// Result alias of the latency crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
