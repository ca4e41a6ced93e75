use std::path::PathBuf;

use thiserror::Error;

/// Errors of the compiler and its runtime.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// The architecture is invalid.
    #[error(transparent)]
    Arch(#[from] arch::Error),
    /// A tensor the architecture needs is not among the weights.
    #[error(
        "weights from {source_name} have no tensor `{name}` (also tried `bert.{name}`); expected shape {expected:?}"
    )]
    MissingTensor { name: String, expected: Vec<usize>, source_name: String },
    /// A tensor has another shape than the architecture implies.
    #[error("tensor `{name}` from {source_name} has shape {found:?}, expected {expected:?}")]
    ShapeMismatch { name: String, expected: Vec<usize>, found: Vec<usize>, source_name: String },
    /// A tensor is stored in an element type the runtime cannot read.
    #[error("tensor `{name}` in {path} is {dtype}; only F32, F16 and BF16 are supported")]
    Dtype { name: String, dtype: String, path: PathBuf },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// A safetensors file is malformed.
    #[error("{path}: not a valid safetensors file: {reason}")]
    Safetensors { path: PathBuf, reason: String },
    /// A Hugging Face `config.json` is malformed or describes something that is not BERT.
    #[error("{path}: {reason}")]
    Config { path: PathBuf, reason: String },
    /// Inputs given to a program do not fit it.
    #[error("bad program input: {0}")]
    Input(String),
    /// Compile options are inconsistent.
    #[error("bad compile options: {0}")]
    Options(String),
}

/// Result alias of the compiler.
pub type Result<T, E = Error> = std::result::Result<T, E>;
