//! The accuracy side of canao on burn (0.22: tensors without a backend type parameter, the
//! device chosen at run time): the data sets and their tokenization, the weight-sharing
//! [`Supernet`] whose forward runs any [`arch::Arch`] by slicing shared parameters, the teacher's
//! fine-tuning and the supernet's training (sandwich rule, knowledge distillation), evaluation of
//! an arch with inherited weights, export of a subnet as a standalone checkpoint, and uniform
//! soups (weight averages) of fine-tuned models.
//!
//! This crate must not know the latency models or the compiler's internals.

pub mod adamw;
pub mod average;
pub mod data;
pub mod eval;
pub mod export;
mod fused;
mod model;
pub mod reorder;
pub mod soup;
pub mod teacher;
pub mod tokens;
pub mod train;

pub use data::{DataError, Example, Label, Split, Task};
pub use model::{Mode, ModelError, Output, Supernet};
pub use tokens::{Batch, Encoded, Encoder, TokenError};
pub use train::{Sandwich, TrainConfig, TrainError, Trainer};
