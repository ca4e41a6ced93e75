//! Uniform model soups (Wortsman et al. 2022, "Model soups: averaging weights of multiple
//! fine-tuned models improves accuracy without increasing inference time"): the element-wise
//! mean of the weights of several models fine-tuned from the same pretrained checkpoint. Models
//! fine-tuned from one starting point with different learning rates, epochs or seeds tend to lie
//! in one basin of the loss, where their mean sits lower than most of them; it is one model, as
//! fast as each ingredient. *Uniform*: every ingredient weighs the same and none is chosen by its
//! score, so the soup's dev score is not tuned on dev.
//!
//! Ingredients are Hugging Face folders as `canao train` and `canao export` write them
//! (`config.json`, `model.safetensors`, `tokenizer.json`), all of one architecture.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};

use crate::export::{Named, safetensors_bytes, write_model_dir};
use crate::model::ModelError;

/// What [`soup`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct Soup {
    pub models: usize,
    pub tensors: usize,
    pub parameters: usize,
    /// Each ingredient's L2 distance to the soup, in the order given: how far apart the models
    /// are (a soup of models from different basins would be far from all of them).
    pub distances: Vec<f64>,
}

/// Writes the uniform soup of `models` (at least two folders of one architecture, tokenizer and
/// tensor names) to `out` (replaced as a whole; nothing is left half-written on an error).
pub fn soup(models: &[PathBuf], out: &Path) -> Result<Soup, ModelError> {
    let _span = tracing::info_span!("soup", models = models.len(), out = %out.display()).entered();
    let [first, rest @ ..] = models else {
        return Err(ModelError::Input("a soup needs at least two models".into()));
    };
    if rest.is_empty() {
        return Err(ModelError::Input(format!("a soup needs at least two models, got only {}", first.display())));
    }
    if let Ok(target) = out.canonicalize()
        && models.iter().any(|dir| dir.canonicalize().is_ok_and(|dir| dir == target))
    {
        return Err(ModelError::Load {
            path: out.to_path_buf(),
            message: "is one of the models: write the soup to another folder".into(),
        });
    }
    let read = |path: PathBuf| std::fs::read(&path).map_err(|e| ModelError::Load { path, message: e.to_string() });
    let config = read(first.join("config.json"))?;
    let tokenizer = read(first.join("tokenizer.json"))?;
    for dir in rest {
        // The same architecture and vocabulary, byte for byte (both are written by canao).
        for (file, expected) in [("config.json", &config), ("tokenizer.json", &tokenizer)] {
            if &read(dir.join(file))? != expected {
                return Err(ModelError::Load {
                    path: dir.join(file),
                    message: format!(
                        "differs from {}: the models of a soup share one architecture and tokenizer",
                        first.join(file).display()
                    ),
                });
            }
        }
    }
    let files = models.iter().map(|dir| read(dir.join("model.safetensors"))).collect::<Result<Vec<_>, _>>()?;
    let parsed = files
        .iter()
        .zip(models)
        .map(|(bytes, dir)| {
            SafeTensors::deserialize(bytes)
                .map_err(|e| ModelError::Load { path: dir.join("model.safetensors"), message: e.to_string() })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let (tensors, distances) = mean_tensors(&parsed, models)?;
    let summary = Soup {
        models: models.len(),
        tensors: tensors.len(),
        parameters: tensors.iter().map(|(_, _, v)| v.len()).sum(),
        distances,
    };
    let config = String::from_utf8_lossy(&config);
    write_model_dir(out, &safetensors_bytes(&tensors)?, &config, &first.join("tokenizer.json"))?;
    Ok(summary)
}

/// The element-wise mean of every tensor, by name, and each model's L2 distance to it; each model
/// must hold the same names, shapes and dtype (f32) as the first.
fn mean_tensors(models: &[SafeTensors<'_>], dirs: &[PathBuf]) -> Result<(Vec<Named>, Vec<f64>), ModelError> {
    let file = |i: usize| dirs[i].join("model.safetensors");
    let bad = |i: usize, message: String| ModelError::Load { path: file(i), message };
    let shapes: BTreeMap<String, Vec<usize>> =
        models[0].tensors().into_iter().map(|(n, v)| (n, v.shape().to_vec())).collect();
    for (i, model) in models.iter().enumerate() {
        for (name, view) in model.tensors() {
            if view.dtype() != Dtype::F32 {
                return Err(bad(i, format!("tensor `{name}` is {:?}; a soup averages f32 tensors", view.dtype())));
            }
            match shapes.get(&name) {
                None => return Err(bad(i, format!("tensor `{name}` is not in {}", file(0).display()))),
                Some(shape) if shape != view.shape() => {
                    return Err(bad(
                        i,
                        format!("tensor `{name}` has shape {:?}, {} has {shape:?}", view.shape(), file(0).display()),
                    ));
                }
                Some(_) => {}
            }
        }
        if let Some(missing) = shapes.keys().find(|name| model.tensor(name).is_err()) {
            return Err(bad(i, format!("tensor `{missing}` of {} is missing", file(0).display())));
        }
    }
    let scale = 1.0 / models.len() as f64;
    let mut squares = vec![0.0f64; models.len()];
    let mut tensors = Vec::with_capacity(shapes.len());
    for (name, shape) in shapes {
        // Each model's values decoded once, for the mean and then for its distance to it.
        let values = (0..models.len())
            .map(|i| f32_values(&models[i], &name).ok_or_else(|| bad(i, format!("tensor `{name}` unreadable"))))
            .collect::<Result<Vec<_>, _>>()?;
        let mut sum = vec![0.0f64; shape.iter().product()];
        for v in &values {
            sum.iter_mut().zip(v).for_each(|(s, &v)| *s += f64::from(v));
        }
        let mean: Vec<f32> = sum.into_iter().map(|s| (s * scale) as f32).collect();
        for (sq, v) in squares.iter_mut().zip(&values) {
            *sq += v.iter().zip(&mean).map(|(&v, &m)| f64::from(v - m).powi(2)).sum::<f64>();
        }
        tensors.push((name, shape, mean));
    }
    Ok((tensors, squares.into_iter().map(f64::sqrt).collect()))
}

/// The values of an f32 tensor (little-endian bytes, as safetensors stores them).
fn f32_values(model: &SafeTensors<'_>, name: &str) -> Option<Vec<f32>> {
    let view = model.tensor(name).ok()?;
    let bytes = view.data();
    Some(bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a test: a failure should stop it loudly
mod tests {
    use super::*;

    /// A model folder with the given tensors, a fixed config and tokenizer.
    fn model(dir: &Path, tensors: &[Named]) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("model.safetensors"), safetensors_bytes(tensors).unwrap()).unwrap();
        std::fs::write(dir.join("config.json"), "{\"hidden_size\": 2}").unwrap();
        std::fs::write(dir.join("tokenizer.json"), "{}").unwrap();
    }

    fn named(name: &str, shape: &[usize], values: &[f32]) -> Named {
        (name.to_string(), shape.to_vec(), values.to_vec())
    }

    #[test]
    fn the_soup_is_the_mean_of_every_tensor() {
        let tmp = tempfile::tempdir().unwrap();
        let dirs: Vec<PathBuf> = (0..3).map(|i| tmp.path().join(format!("m{i}"))).collect();
        for (i, dir) in dirs.iter().enumerate() {
            let x = i as f32;
            model(dir, &[named("a", &[2, 2], &[x, 2.0 * x, 1.0, -x]), named("b", &[3], &[x * x, 0.5, 3.0])]);
        }
        let out = tmp.path().join("soup");
        let made = soup(&dirs, &out).unwrap();
        assert_eq!((made.models, made.tensors, made.parameters), (3, 2, 7));
        let bytes = std::fs::read(out.join("model.safetensors")).unwrap();
        let read = SafeTensors::deserialize(&bytes).unwrap();
        assert_eq!(f32_values(&read, "a").unwrap(), vec![1.0, 2.0, 1.0, -1.0]);
        assert_eq!(f32_values(&read, "b").unwrap(), vec![5.0 / 3.0, 0.5, 3.0]);
        assert_eq!(read.tensor("a").unwrap().shape(), &[2, 2]);
        assert_eq!(std::fs::read(out.join("config.json")).unwrap(), b"{\"hidden_size\": 2}");
        assert!(out.join("tokenizer.json").is_file());
        // Distances to the mean (1, 2, 1, -1 | 5/3, 0.5, 3): only `b`'s first entry and `a`'s
        // three moving ones differ.
        let expected = [(6.0f64 + 25.0 / 9.0).sqrt(), 2.0 / 3.0, (6.0f64 + 49.0 / 9.0).sqrt()];
        for (got, want) in made.distances.iter().zip(expected) {
            assert!((got - want).abs() < 1e-6, "{:?} vs {expected:?}", made.distances);
        }
    }

    #[test]
    fn mismatched_models_are_refused_naming_the_file_and_tensor() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().join("base");
        model(&base, &[named("a", &[2], &[1.0, 2.0]), named("b", &[1], &[0.0])]);
        let case = |name: &str, tensors: &[Named]| {
            let dir = tmp.path().join(name);
            model(&dir, tensors);
            let out = tmp.path().join(format!("soup-{name}"));
            let err = soup(&[base.clone(), dir.clone()], &out).unwrap_err().to_string();
            assert!(!out.exists(), "{name}: nothing is written on an error");
            assert!(err.contains(&dir.join("model.safetensors").display().to_string()), "{err}");
            err
        };
        assert!(
            case("shape", &[named("a", &[1, 2], &[1.0, 2.0]), named("b", &[1], &[0.0])])
                .contains("`a` has shape [1, 2]")
        );
        assert!(case("missing", &[named("a", &[2], &[1.0, 2.0])]).contains("`b`"));
        assert!(
            case("extra", &[named("a", &[2], &[1.0, 2.0]), named("b", &[1], &[0.0]), named("c", &[1], &[0.0])])
                .contains("`c`")
        );

        let other = tmp.path().join("other-config");
        model(&other, &[named("a", &[2], &[1.0, 2.0]), named("b", &[1], &[0.0])]);
        std::fs::write(other.join("config.json"), "{\"hidden_size\": 3}").unwrap();
        let err = soup(&[base.clone(), other.clone()], &tmp.path().join("s")).unwrap_err().to_string();
        assert!(err.contains("config.json") && err.contains("differs"), "{err}");

        let err = soup(&[base.clone(), other.clone()], &base).unwrap_err().to_string();
        assert!(err.contains("one of the models") && base.join("model.safetensors").is_file(), "{err}");

        let err = soup(std::slice::from_ref(&base), &tmp.path().join("s")).unwrap_err().to_string();
        assert!(err.contains("at least two"), "{err}");
        let err = soup(&[base.clone(), tmp.path().join("nowhere")], &tmp.path().join("s")).unwrap_err().to_string();
        assert!(err.contains("nowhere"), "{err}");
    }
}
