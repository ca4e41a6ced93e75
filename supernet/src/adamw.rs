//! AdamW with gradient clipping as one pass over each parameter on the flex backend.
//!
//! burn's AdamW updates a parameter with a dozen tensor ops (two moments, their bias corrections,
//! a square root, a division, the decay, the step) and its norm clipping with four more, each a
//! pass over memory on one thread: in SST-2 teacher training that was 15 % of the wall time once
//! GELU and LayerNorm were fused (the crate's `fused` module). Here the clipping norm is one
//! parallel reduction and the update one parallel pass that reads the parameter and its gradient,
//! updates both moments in place and writes the new parameter. The arithmetic is burn's, in its
//! order; the state is burn's `AdamWState`, so optimizer checkpoints are interchangeable with
//! burn's AdamW. Parameters on any other backend (wgpu), or not in f32, take burn's AdamW and
//! clipping.

use burn::backend::flex::FlexTensor;
use burn::backend::{Flex, TensorMetadata};
use burn::grad_clipping::{GradientClipping, GradientClippingConfig};
use burn::optim::{AdamW, AdamWConfig, AdamWState, AdaptiveMomentumState, ModuleOptimizer, Optimizer};
use burn::tensor::{DType, Device, Tensor, TensorData};
use std::mem::MaybeUninit;

use rayon::prelude::*;

use crate::fused::f32s;

/// Elements per parallel task.
const CHUNK: usize = 1 << 15;

/// AdamW (decoupled weight decay, bias-corrected moments, `ε` added after the square root, as
/// burn's and PyTorch's) with per-parameter gradient norm clipping.
#[derive(Clone)]
pub struct FusedAdamW {
    beta_1: f32,
    beta_2: f32,
    epsilon: f32,
    weight_decay: f32,
    /// Clip each parameter's gradient to this L2 norm (burn's `GradientClipping::Norm`).
    clip_norm: Option<f32>,
    /// burn's AdamW and clipping with the same settings, for tensors not on flex in f32.
    fallback: (AdamW, Option<GradientClipping>),
}

impl FusedAdamW {
    /// Betas 0.9 and 0.999 (BERT's, burn's and PyTorch's defaults) with this `epsilon`,
    /// `weight_decay` and clipping norm (`None`: no clipping).
    pub fn new(epsilon: f32, weight_decay: f32, clip_norm: Option<f32>) -> FusedAdamW {
        let (beta_1, beta_2) = (0.9, 0.999);
        let config = AdamWConfig::new()
            .with_beta_1(beta_1)
            .with_beta_2(beta_2)
            .with_epsilon(epsilon)
            .with_weight_decay(weight_decay);
        let clipping = clip_norm.map(|c| GradientClippingConfig::Norm(c).init());
        FusedAdamW { beta_1, beta_2, epsilon, weight_decay, clip_norm, fallback: (config.build(), clipping) }
    }

    /// The optimizer of a module's parameters.
    pub fn init(self) -> ModuleOptimizer {
        ModuleOptimizer::from(self)
    }
}

impl Optimizer for FusedAdamW {
    type State<const D: usize> = AdamWState<D>;

    fn step<const D: usize>(
        &self,
        lr: f64,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<AdamWState<D>>,
    ) -> (Tensor<D>, Option<AdamWState<D>>) {
        let shape = tensor.shape();
        let flex = |t: &Tensor<D>| t.clone().try_into_primitive::<Flex>().ok().filter(|p| p.dtype() == DType::F32);
        let moments = match &state {
            None => Some(None),
            Some(s) if s.momentum.max_moment_2.is_none() => {
                match (flex(&s.momentum.moment_1), flex(&s.momentum.moment_2)) {
                    (Some(m), Some(v)) => Some(Some((m, v, s.momentum.time))),
                    _ => None,
                }
            }
            Some(_) => None,
        };
        let (Some(p), Some(g), Some(moments)) = (flex(&tensor), flex(&grad), moments) else {
            // Not f32 on flex (or AMSGrad state): burn's clipping and AdamW.
            let (adamw, clipping) = &self.fallback;
            let grad = match clipping {
                Some(c) => c.clip_gradient(grad),
                None => grad,
            };
            return adamw.step(lr, tensor, grad, state);
        };
        // The state handed over by the optimizer is dropped here, so that the moments' buffers are
        // this step's alone and are updated in place (else `owned` copies them).
        drop(state);
        let (p, g) = (contiguous(p), contiguous(g));
        let (ps, gs) = (f32s(&p), f32s(&g));
        let n = ps.len();
        let (mut m, mut v, time) = match moments {
            Some((m, v, time)) => (owned(m), owned(v), time + 1),
            None => (zeros(&p), zeros(&p), 1),
        };
        let clip = match self.clip_norm {
            Some(threshold) => {
                // Chunk sums added in order: the same norm whatever the threads did (a resumed run
                // repeats the uninterrupted one bit for bit).
                let sums: Vec<f64> = gs.par_chunks(CHUNK).map(sum_squares).collect();
                let norm = sums.iter().sum::<f64>().sqrt() as f32;
                (threshold / (norm + f32::MIN_POSITIVE)).min(1.0)
            }
            None => 1.0,
        };
        let t = time as i32;
        let step = Step {
            beta_1: self.beta_1,
            beta_2: self.beta_2,
            epsilon: self.epsilon,
            clip,
            correction_1: 1.0 - self.beta_1.powi(t),
            correction_2: 1.0 - self.beta_2.powi(t),
            decay: 1.0 - lr * self.weight_decay as f64,
            lr: lr as f32,
        };
        let mut p_new = Vec::with_capacity(n);
        p_new.spare_capacity_mut()[..n]
            .par_chunks_mut(CHUNK)
            .zip(m.storage_mut::<f32>()[..n].par_chunks_mut(CHUNK))
            .zip(v.storage_mut::<f32>()[..n].par_chunks_mut(CHUNK))
            .enumerate()
            .for_each(|(i, ((po, mo), vo))| {
                let r = i * CHUNK..(i * CHUNK + po.len());
                update(po, mo, vo, &ps[r.clone()], &gs[r], step);
            });
        // SAFETY: `update` wrote every element of every chunk (it panics on a chunk it cannot fill,
        // before this line), and the chunks cover `..n`.
        unsafe { p_new.set_len(n) };
        let wrap = |t: FlexTensor| Tensor::<D>::from_primitive::<Flex>(t);
        let p_new = FlexTensor::from_data(TensorData::new(p_new, shape));
        let momentum = AdaptiveMomentumState::new(time, wrap(m), wrap(v));
        (wrap(p_new), Some(AdamWState::new(momentum)))
    }

    fn to_device<const D: usize>(state: AdamWState<D>, device: &Device) -> AdamWState<D> {
        AdamW::to_device(state, device)
    }
}

/// The scalars of one parameter's update.
#[derive(Clone, Copy)]
struct Step {
    beta_1: f32,
    beta_2: f32,
    epsilon: f32,
    /// The gradient's clipping factor (1: not clipped).
    clip: f32,
    /// `1 − β₁ᵗ` and `1 − β₂ᵗ`.
    correction_1: f32,
    correction_2: f32,
    /// `1 − lr · weight decay`, in f64 as burn computes it.
    decay: f64,
    lr: f32,
}

/// `t` itself when its elements are in order from offset 0, otherwise a contiguous copy.
fn contiguous(t: FlexTensor) -> FlexTensor {
    if t.as_slice::<f32>().is_some() { t } else { t.to_contiguous() }
}

/// A contiguous tensor whose storage this step may write: `t` itself when nothing else holds its
/// buffer and the buffer is exactly its elements, otherwise a copy.
fn owned(t: FlexTensor) -> FlexTensor {
    let t = contiguous(t);
    let exact = f32s(&t).len() == t.storage::<f32>().len();
    if t.is_unique() && exact { t } else { FlexTensor::from_data(TensorData::new(f32s(&t).to_vec(), t.shape())) }
}

/// Zeros of the shape of `like` (the moments before the first step).
fn zeros(like: &FlexTensor) -> FlexTensor {
    FlexTensor::zeros(like.shape(), DType::F32)
}

arch::multiversion! {
    /// Σ x² in f64 (the clipping norm of a large parameter without the drift of an f32 sum), as
    /// sixteen interleaved partial sums added at the end: one running sum is a chain of dependent
    /// additions that does not vectorise (it cost more than the AdamW update itself). The order
    /// is fixed, so the result is too.
    fn sum_squares(xs: &[f32]) -> f64 {
        const LANES: usize = 16;
        let mut lanes = [0.0f64; LANES];
        let blocks = xs.chunks_exact(LANES);
        let rest = blocks.remainder();
        for block in blocks {
            for (s, &x) in lanes.iter_mut().zip(block) {
                *s += f64::from(x) * f64::from(x);
            }
        }
        rest.iter().fold(lanes.iter().sum::<f64>(), |s, &x| s + f64::from(x) * f64::from(x))
    }
}

arch::multiversion! {
    /// One AdamW step over a chunk: the moments `m` and `v` updated in place, the decayed
    /// parameter minus the step written to `p_out`, every element of it.
    fn update(p_out: &mut [MaybeUninit<f32>], m: &mut [f32], v: &mut [f32], p: &[f32], g: &[f32], s: Step) {
        let (f1, f2) = (1.0 - s.beta_1, 1.0 - s.beta_2);
        let decay = s.decay as f32;
        let n = p_out.len();
        let (m, v, p, g) = (&mut m[..n], &mut v[..n], &p[..n], &g[..n]);
        for i in 0..n {
            let g = g[i] * s.clip;
            m[i] = m[i] * s.beta_1 + g * f1;
            v[i] = v[i] * s.beta_2 + g * g * f2;
            let delta = (m[i] / s.correction_1) / ((v[i] / s.correction_2).sqrt() + s.epsilon);
            p_out[i].write(p[i] * decay - delta * s.lr);
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::module::Module;
    use burn::nn::{Linear, LinearConfig};
    use burn::optim::GradientsParams;
    use burn::tensor::{Distribution, Tolerance};

    use super::*;

    /// The lane sums add every element, the remainder after the last full block included.
    #[test]
    fn sum_squares_adds_every_element() {
        for n in [0, 1, 15, 16, 17, 1003] {
            let xs: Vec<f32> = (0..n).map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0).collect();
            let naive: f64 = xs.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
            let lanes = sum_squares(&xs);
            assert!((lanes - naive).abs() <= 1e-12 * naive.max(1.0), "{n} elements: {lanes} vs {naive}");
        }
    }

    /// Three steps of the fused optimizer and of burn's AdamW with norm clipping give the same
    /// weights, and a fused optimizer restored from burn's checkpoint takes the same next step.
    #[test]
    fn matches_burns_adamw_and_resumes_from_its_state() {
        let device = Device::flex().autodiff();
        let model: Linear = LinearConfig::new(40, 300).init(&device);
        assert!(
            model.weight.val().inner().try_into_primitive::<Flex>().is_ok(),
            "the fused path must be the one tested"
        );
        let input = Tensor::<2>::random([8, 40], Distribution::Normal(0.0, 1.0), &device);
        let grads = |m: &Linear, scale: f32| {
            GradientsParams::from_grads(m.forward(input.clone()).mul_scalar(scale).backward(), m)
        };
        let burns = || {
            AdamWConfig::new()
                .with_epsilon(1e-8)
                .with_weight_decay(0.01)
                .with_grad_clipping(Some(GradientClippingConfig::Norm(1.0)))
                .init()
        };
        let fused = || FusedAdamW::new(1e-8, 0.01, Some(1.0)).init();
        let (mut a, mut b) = (burns(), fused());
        let (mut ma, mut mb) = (model.clone(), model);
        // Large and small gradients: clipped, then not.
        for (step, scale) in [10.0f32, 0.001, 0.5].into_iter().enumerate() {
            let lr = 1e-2 / (step + 1) as f64;
            ma = a.step(lr, ma.clone(), grads(&ma, scale));
            mb = b.step(lr, mb.clone(), grads(&mb, scale));
            let tol = Tolerance::absolute(1e-6);
            mb.weight.val().into_data().assert_approx_eq::<f32>(&ma.weight.val().into_data(), tol);
            let (ba, bb) = (ma.bias.clone().map(|b| b.val()), mb.bias.clone().map(|b| b.val()));
            bb.expect("bias").into_data().assert_approx_eq::<f32>(&ba.expect("bias").into_data(), tol);
        }
        let mut restored = fused().from_bytes(a.into_bytes().expect("burn's state")).expect("burn's state loads");
        let next_a = burns().from_bytes(b.into_bytes().expect("fused state")).expect("fused state loads").step(
            1e-3,
            ma.clone(),
            grads(&ma, 1.0),
        );
        let next_b = restored.step(1e-3, ma.clone(), grads(&ma, 1.0));
        next_b
            .weight
            .val()
            .into_data()
            .assert_approx_eq::<f32>(&next_a.weight.val().into_data(), Tolerance::absolute(1e-6));
        assert!(
            next_b.valid().weight.val().into_data() != ma.valid().weight.val().into_data(),
            "the step moved the weights"
        );
    }
}
