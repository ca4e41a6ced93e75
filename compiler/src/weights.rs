//! Named parameter tensors in the Hugging Face BERT layout, read from safetensors or drawn at
//! random, looked up by name with or without the `bert.` prefix.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use arch::Arch;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::{Error, Result};

/// A dense row-major f32 tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Arc<Vec<f32>>,
}

impl Tensor {
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Tensor {
        debug_assert_eq!(shape.iter().product::<usize>(), data.len());
        Tensor { shape, data: Arc::new(data) }
    }
}

/// A set of named tensors, and where they came from (for error messages).
#[derive(Debug, Clone, Default)]
pub struct Weights {
    tensors: BTreeMap<String, Tensor>,
    source: String,
}

impl Weights {
    /// An empty set; `source` says where the tensors come from in error messages.
    pub fn new(source: impl Into<String>) -> Weights {
        Weights { tensors: BTreeMap::new(), source: source.into() }
    }

    pub fn insert(&mut self, name: impl Into<String>, tensor: Tensor) {
        self.tensors.insert(name.into(), tensor);
    }

    /// Tensor names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    /// Where these weights came from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The raw tensor stored under `name` or `bert.name`.
    pub fn find(&self, name: &str) -> Option<&Tensor> {
        self.tensors.get(name).or_else(|| self.tensors.get(&format!("bert.{name}")))
    }

    /// The tensor `name` (or `bert.name`), checked against `expected`.
    pub fn get(&self, name: &str, expected: &[usize]) -> Result<&Tensor> {
        let tensor = self.find(name).ok_or_else(|| Error::MissingTensor {
            name: name.into(),
            expected: expected.to_vec(),
            source_name: self.source.clone(),
        })?;
        if tensor.shape != expected {
            return Err(Error::ShapeMismatch {
                name: name.into(),
                expected: expected.to_vec(),
                found: tensor.shape.clone(),
                source_name: self.source.clone(),
            });
        }
        Ok(tensor)
    }

    /// Reads every tensor of a safetensors file (F32, F16 and BF16 are converted to f32).
    pub fn load_safetensors(path: &Path) -> Result<Weights> {
        let bytes = std::fs::read(path).map_err(|source| Error::Io { path: path.into(), source })?;
        let file = safetensors::SafeTensors::deserialize(&bytes)
            .map_err(|e| Error::Safetensors { path: path.into(), reason: e.to_string() })?;
        let mut weights = Weights::new(path.display().to_string());
        for (name, view) in file.tensors() {
            let data = view.data();
            let values: Vec<f32> = match view.dtype() {
                safetensors::Dtype::F32 => {
                    data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
                }
                safetensors::Dtype::BF16 => data
                    .chunks_exact(2)
                    .map(|b| f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16))
                    .collect(),
                safetensors::Dtype::F16 => {
                    data.chunks_exact(2).map(|b| f16_to_f32(u16::from_le_bytes([b[0], b[1]]))).collect()
                }
                other => {
                    // Integer buffers such as `position_ids` are not parameters; skip them.
                    if name.ends_with("position_ids") {
                        continue;
                    }
                    return Err(Error::Dtype { name, dtype: format!("{other:?}"), path: path.into() });
                }
            };
            weights.insert(name, Tensor::new(view.shape().to_vec(), values));
        }
        Ok(weights)
    }

    /// Seeded random weights for every tensor `arch` needs: matrices and embeddings uniform with
    /// standard deviation 0.05 (tables 0.5), LayerNorm scales around 1, so that activations keep
    /// BERT-like magnitudes and numeric tests stay sensitive.
    pub fn random(arch: &Arch, seed: u64) -> Weights {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut weights = Weights::new(format!("random weights (seed {seed})"));
        for (name, shape) in crate::lower::weight_specs(arch) {
            let n: usize = shape.iter().product();
            let (center, half_width) = if name.contains("LayerNorm.weight") {
                (1.0, 0.2)
            } else if name.contains("embeddings") {
                (0.0, 0.5 * 3f32.sqrt())
            } else {
                (0.0, 0.05 * 3f32.sqrt())
            };
            let data = (0..n).map(|_| center + rng.random_range(-half_width..=half_width)).collect();
            weights.insert(name, Tensor::new(shape, data));
        }
        weights
    }
}

/// IEEE half to single precision.
fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let frac = (h & 0x3ff) as u32;
    let bits = match (exp, frac) {
        (0, 0) => sign,
        (0, f) => {
            // Subnormal: renormalise.
            let shift = f.leading_zeros() - 21;
            sign | ((127 - 15 - shift + 1) << 23) | ((f << shift) & 0x3ff) << 13
        }
        (0x1f, f) => sign | 0x7f80_0000 | (f << 13),
        (e, f) => sign | ((e + 127 - 15) << 23) | (f << 13),
    };
    f32::from_bits(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_precision_conversion() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
    }

    #[test]
    fn missing_and_misshapen_tensors_are_named() {
        let arch = Arch::uniform(1, 8, 1, 16);
        let mut w = Weights::random(&arch, 1);
        assert!(w.get("encoder.layer.0.intermediate.dense.weight", &[16, 8]).is_ok());
        let err = w.get("encoder.layer.0.intermediate.dense.weight", &[8, 16]).unwrap_err().to_string();
        assert!(err.contains("[16, 8]") && err.contains("[8, 16]"), "{err}");
        w.tensors.clear();
        let err = w.get("pooler.dense.weight", &[8, 8]).unwrap_err().to_string();
        assert!(err.contains("pooler.dense.weight"), "{err}");
    }
}
