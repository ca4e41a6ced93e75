use thiserror::Error;

/// Errors of the `arch` crate.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// A field of an [`crate::Arch`] holds an impossible value.
    #[error("invalid arch: `{field}` {reason}")]
    InvalidField { field: String, reason: String },
    /// An arch string is neither the compact form nor RON.
    #[error("cannot parse arch `{input}`: {reason}")]
    Parse { input: String, reason: String },
    /// A field of a [`crate::SearchSpace`] holds an impossible value (an empty, unsorted or zero
    /// choice list, or a base field that no arch could have).
    #[error("invalid search space: `{field}` {reason}")]
    InvalidSpace { field: String, reason: String },
    /// An arch lies outside a search space; the message names the field, its value and the
    /// allowed choices.
    #[error("arch is outside the search space: {0}")]
    OutsideSpace(String),
}

/// Result alias of the `arch` crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
