//! The accuracy side of canao on burn (0.22: tensors without a backend type parameter, the
//! device chosen at run time). For now: [`Bert`], a plain eager BERT forward of any [`arch::Arch`]
//! over named Hugging Face tensors, slicing each shared tensor to the arch's widths inside the
//! forward (the supernet's way to run a subnet: no hidden "active subnet" state). The supernet's
//! training, data and export come with issue 3.
//!
//! This crate must not know the latency models or the compiler's internals.

mod bert;

pub use bert::{Bert, Error};
