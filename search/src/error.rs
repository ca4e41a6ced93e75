use std::path::PathBuf;

use thiserror::Error;

/// Errors of the `search` crate.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// A search or evaluator setting holds an impossible value; names the field and what was
    /// expected.
    #[error("invalid config: `{field}` {reason}")]
    InvalidConfig { field: String, reason: String },
    /// The search space is invalid (see [`arch::SearchSpace::validate`]).
    #[error(transparent)]
    Space(#[from] arch::Error),
    /// An evaluator failed for one arch; `source` is the evaluator's own error.
    #[error("evaluating {arch} failed: {source}")]
    Evaluation { arch: String, source: Box<Error> },
    /// An evaluator returned something the search cannot compare: the wrong number of
    /// objectives, a non-finite value, or a negative or non-finite violation.
    #[error("evaluator returned an invalid evaluation: {0}")]
    InvalidEvaluation(String),
    /// An evaluator defined outside this crate failed; wraps its error.
    #[error(transparent)]
    Evaluator(Box<dyn std::error::Error + Send + Sync>),
    /// Points handed to a metric do not fit together (dimensions, finiteness).
    #[error("invalid metric input: {0}")]
    Metric(String),
    /// Reading or writing a checkpoint failed.
    #[error("checkpoint {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// A checkpoint is not valid RON of the expected shape.
    #[error("checkpoint {path} cannot be read: {reason}")]
    Checkpoint { path: PathBuf, reason: String },
    /// A checkpoint was written by another search (config, space, objectives or format
    /// differ); resuming it would not continue the requested search.
    #[error("checkpoint {path} belongs to another search: its {what} differs from the requested one")]
    CheckpointMismatch { path: PathBuf, what: &'static str },
}

impl Error {
    /// Wraps the error of an evaluator defined in another crate.
    pub fn evaluator(error: impl std::error::Error + Send + Sync + 'static) -> Error {
        Error::Evaluator(Box::new(error))
    }

    /// An [`Error::InvalidConfig`] for `field`.
    pub(crate) fn config(field: impl Into<String>, reason: impl Into<String>) -> Error {
        Error::InvalidConfig { field: field.into(), reason: reason.into() }
    }
}

/// Result alias of the `search` crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
