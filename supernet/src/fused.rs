//! GELU, LayerNorm and the attention softmax as single ops with their own forward and backward
//! kernels on the flex backend.
//!
//! burn 0.22's flex backend runs elementwise work on one thread while the other cores wait, GELU
//! and its gradient element by element with libm's scalar `erff`, and LayerNorm and softmax as
//! chains of primitive ops (mean, variance, subtract, divide, scale, shift; max, exp, sum,
//! divide), each a pass over memory with its own node in the autodiff graph: training the SST-2
//! teacher spent about a quarter of its wall time in GELU alone (BENCHMARKS.md, "Training
//! throughput against PyTorch"). Here each op's forward and backward are one vectorisable pass
//! (GELU on [`arch::math`]) split across rayon's threads, registered with burn's autodiff as one
//! op (burn's backend-extension route: tensors are downcast to their `Autodiff<Flex>` primitives).
//! f32 tensors on flex, with or without autodiff (its default strategy, no checkpointing), take
//! these kernels; any other tensor (wgpu, other dtypes) takes burn's own ops.

use arch::math;
use burn::backend::TensorMetadata;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Flex};
use burn::tensor::{DType, Tensor, TensorData};
use rayon::prelude::*;

/// Elements per parallel task: large enough that a task outweighs its scheduling.
const CHUNK: usize = 1 << 14;

/// BERT's exact GELU, `x · Φ(x)`, differentiable; the same function as
/// `burn::tensor::activation::gelu` to within a few ulp.
pub fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if let Ok(t) = x.clone().try_into_primitive::<Autodiff<Flex>>()
        && t.primitive().dtype() == DType::F32
    {
        return Tensor::from_primitive::<Autodiff<Flex>>(gelu_tracked(t));
    }
    if let Ok(t) = x.clone().try_into_primitive::<Flex>()
        && t.dtype() == DType::F32
    {
        return Tensor::from_primitive::<Flex>(map(&t, None));
    }
    burn::tensor::activation::gelu(x)
}

/// GELU on an autodiff tensor: the forward now, the backward registered with the graph.
fn gelu_tracked(x: FloatTensor<Autodiff<Flex>>) -> FloatTensor<Autodiff<Flex>> {
    #[derive(Debug)]
    struct Gelu;

    impl Backward<Flex, 1> for Gelu {
        /// The input, which the gradient is a function of.
        type State = FlexTensor;

        fn backward(self, ops: Ops<FlexTensor, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
            let input = ops.state;
            unary::<Flex, _>(ops.parents, ops.node, grads, |grad| map(&input, Some(&grad)));
        }
    }

    let input = x.primitive().clone();
    match Gelu.prepare::<NoCheckpointing>([x.node()]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => {
            let y = map(&input, None);
            prep.finish(input, y)
        }
        OpsKind::UnTracked(prep) => prep.finish(map(&input, None)),
    }
}

/// `gelu(x)` when `grad` is `None`; `grad · gelu'(x)` otherwise (same shape as `x`).
fn map(x: &FlexTensor, grad: Option<&FlexTensor>) -> FlexTensor {
    let x = contiguous(x);
    let xs = f32s(&x);
    let mut out = vec![0.0f32; xs.len()];
    match grad {
        None => out.par_chunks_mut(CHUNK).zip(xs.par_chunks(CHUNK)).for_each(|(o, x)| forward(o, x)),
        Some(g) => {
            let g = contiguous(g);
            let gs = f32s(&g);
            out.par_chunks_mut(CHUNK)
                .zip(xs.par_chunks(CHUNK))
                .zip(gs.par_chunks(CHUNK))
                .for_each(|((o, x), g)| backward(o, x, g));
        }
    }
    FlexTensor::from_data(TensorData::new(out, x.shape()))
}

/// `x` itself when its elements are in order from offset 0, otherwise a contiguous copy.
fn contiguous(x: &FlexTensor) -> std::borrow::Cow<'_, FlexTensor> {
    if x.as_slice::<f32>().is_some() {
        std::borrow::Cow::Borrowed(x)
    } else {
        std::borrow::Cow::Owned(x.to_contiguous())
    }
}

arch::multiversion! {
    fn forward(out: &mut [f32], x: &[f32]) {
        for (o, &x) in out.iter_mut().zip(x) {
            *o = math::gelu(x);
        }
    }
}

arch::multiversion! {
    /// `d/dx [x Φ(x)] = Φ(x) + x φ(x)`, times the incoming gradient.
    fn backward(out: &mut [f32], x: &[f32], grad: &[f32]) {
        const FRAC_1_SQRT_2PI: f32 = 0.398_942_3;
        for ((o, &x), &g) in out.iter_mut().zip(x).zip(grad) {
            let cdf = 0.5 * (1.0 + math::erf(x * std::f32::consts::FRAC_1_SQRT_2));
            let pdf = FRAC_1_SQRT_2PI * math::exp(-0.5 * x * x);
            *o = g * (cdf + x * pdf);
        }
    }
}

/// LayerNorm over the last dim of `x` (`[rows, width]`): `(x − mean) / √(var + eps) · gamma +
/// beta`, with the biased variance, differentiable in all three inputs.
pub fn layer_norm(x: Tensor<2>, gamma: Tensor<1>, beta: Tensor<1>, eps: f64) -> Tensor<2> {
    type Ad = Autodiff<Flex>;
    let width = x.dims()[1];
    if gamma.dims()[0] != width || beta.dims()[0] != width {
        return composed_layer_norm(x, gamma, beta, eps); // burn reports the mismatch
    }
    let on_flex = [
        x.clone().try_into_primitive::<Ad>(),
        gamma.clone().try_into_primitive::<Ad>(),
        beta.clone().try_into_primitive::<Ad>(),
    ];
    if let [Ok(xp), Ok(gp), Ok(bp)] = on_flex
        && [&xp, &gp, &bp].iter().all(|t| t.primitive().dtype() == DType::F32)
    {
        return Tensor::from_primitive::<Ad>(layer_norm_tracked(xp, gp, bp, eps as f32));
    }
    let on_flex = [
        x.clone().try_into_primitive::<Flex>(),
        gamma.clone().try_into_primitive::<Flex>(),
        beta.clone().try_into_primitive::<Flex>(),
    ];
    if let [Ok(xp), Ok(gp), Ok(bp)] = on_flex
        && [&xp, &gp, &bp].iter().all(|t| t.dtype() == DType::F32)
    {
        return Tensor::from_primitive::<Flex>(norm_forward(&xp, &gp, &bp, eps as f32));
    }
    composed_layer_norm(x, gamma, beta, eps)
}

/// LayerNorm as burn's primitive ops, for tensors the kernels here do not take.
fn composed_layer_norm(x: Tensor<2>, gamma: Tensor<1>, beta: Tensor<1>, eps: f64) -> Tensor<2> {
    let (var, mean) = x.clone().var_mean_bias(1);
    (x - mean) / (var + eps).sqrt() * gamma.unsqueeze::<2>() + beta.unsqueeze::<2>()
}

/// LayerNorm on autodiff tensors: the forward now, the backward registered with the graph.
fn layer_norm_tracked(
    x: FloatTensor<Autodiff<Flex>>,
    gamma: FloatTensor<Autodiff<Flex>>,
    beta: FloatTensor<Autodiff<Flex>>,
    eps: f32,
) -> FloatTensor<Autodiff<Flex>> {
    #[derive(Debug)]
    struct Norm;

    impl Backward<Flex, 3> for Norm {
        /// The input, gamma and eps: the statistics are recomputed, one cheap pass.
        type State = (FlexTensor, FlexTensor, f32);

        fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
            let (x, gamma, eps) = ops.state;
            let dy = grads.consume::<Flex>(&ops.node);
            let [px, pg, pb] = ops.parents;
            let (dx, dgamma, dbeta) = norm_backward(&x, &gamma, &dy, eps);
            for (parent, grad) in [(px, dx), (pg, dgamma), (pb, dbeta)] {
                if let Some(node) = parent {
                    grads.register::<Flex>(node.id, grad);
                }
            }
        }
    }

    let (xp, gp) = (x.primitive().clone(), gamma.primitive().clone());
    let y = norm_forward(&xp, &gp, beta.primitive(), eps);
    match Norm.prepare::<NoCheckpointing>([x.node(), gamma.node(), beta.node()]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => prep.finish((xp, gp, eps), y),
        OpsKind::UnTracked(prep) => prep.finish(y),
    }
}

/// Rows per parallel task of the LayerNorm kernels.
fn rows_per_task(rows: usize) -> usize {
    rows.div_ceil(4 * rayon::current_num_threads()).max(1)
}

fn norm_forward(x: &FlexTensor, gamma: &FlexTensor, beta: &FlexTensor, eps: f32) -> FlexTensor {
    let (x, gamma, beta) = (contiguous(x), contiguous(gamma), contiguous(beta));
    let (xs, g, b) = (f32s(&x), f32s(&gamma), f32s(&beta));
    let width = g.len();
    let mut out = vec![0.0f32; xs.len()];
    let task = rows_per_task(xs.len() / width) * width;
    out.par_chunks_mut(task).zip(xs.par_chunks(task)).for_each(|(o, x)| norm_rows(o, x, g, b, eps));
    FlexTensor::from_data(TensorData::new(out, x.shape()))
}

/// The gradients of LayerNorm's input, gamma and beta for the output gradient `dy`.
fn norm_backward(
    x: &FlexTensor,
    gamma: &FlexTensor,
    dy: &FlexTensor,
    eps: f32,
) -> (FlexTensor, FlexTensor, FlexTensor) {
    let (x, gamma, dy) = (contiguous(x), contiguous(gamma), contiguous(dy));
    let (xs, g, dys) = (f32s(&x), f32s(&gamma), f32s(&dy));
    let width = g.len();
    let mut dx = vec![0.0f32; xs.len()];
    let task = rows_per_task(xs.len() / width) * width;
    // Each task sums its rows' shares of dgamma and dbeta; the partial sums are added after.
    let partials: Vec<Vec<f32>> = dx
        .par_chunks_mut(task)
        .zip(xs.par_chunks(task))
        .zip(dys.par_chunks(task))
        .map(|((dx, x), dy)| {
            let mut sums = vec![0.0f32; 2 * width];
            norm_grad_rows(dx, &mut sums, x, dy, g, eps);
            sums
        })
        .collect();
    let mut sums = vec![0.0f32; 2 * width];
    for p in &partials {
        sums.iter_mut().zip(p).for_each(|(s, v)| *s += v);
    }
    let dbeta = sums.split_off(width);
    let shape = |n: usize| burn::tensor::Shape::new([n]);
    (
        FlexTensor::from_data(TensorData::new(dx, x.shape())),
        FlexTensor::from_data(TensorData::new(sums, shape(width))),
        FlexTensor::from_data(TensorData::new(dbeta, shape(width))),
    )
}

/// The elements of a contiguous f32 tensor.
pub(crate) fn f32s(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>().unwrap_or_else(|| unreachable!("contiguous f32"))
}

/// Mean and `1 / √(var + eps)` of one row (two passes: the variance without cancellation).
#[inline(always)]
fn row_stats(x: &[f32], eps: f32) -> (f32, f32) {
    let n = x.len() as f32;
    let mean = x.iter().sum::<f32>() / n;
    let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
    (mean, 1.0 / (var + eps).sqrt())
}

arch::multiversion! {
    fn norm_rows(out: &mut [f32], x: &[f32], gamma: &[f32], beta: &[f32], eps: f32) {
        let w = gamma.len();
        for (o, x) in out.chunks_exact_mut(w).zip(x.chunks_exact(w)) {
            let (mean, rstd) = row_stats(x, eps);
            for (((o, &x), &g), &b) in o.iter_mut().zip(x).zip(gamma).zip(beta) {
                *o = (x - mean) * rstd * g + b;
            }
        }
    }
}

arch::multiversion! {
    /// `dx = rstd · (g − mean(g) − x̂ · mean(g · x̂))` with `g = dy · gamma`, row by row; adds each
    /// row's `dy · x̂` to `sums[..w]` (dgamma) and `dy` to `sums[w..]` (dbeta).
    fn norm_grad_rows(dx: &mut [f32], sums: &mut [f32], x: &[f32], dy: &[f32], gamma: &[f32], eps: f32) {
        let w = gamma.len();
        let (dgamma, dbeta) = sums.split_at_mut(w);
        for ((dx, x), dy) in dx.chunks_exact_mut(w).zip(x.chunks_exact(w)).zip(dy.chunks_exact(w)) {
            let (mean, rstd) = row_stats(x, eps);
            let (mut g_sum, mut gx_sum) = (0.0f32, 0.0f32);
            for i in 0..w {
                let xhat = (x[i] - mean) * rstd;
                let g = dy[i] * gamma[i];
                g_sum += g;
                gx_sum += g * xhat;
                dgamma[i] += dy[i] * xhat;
                dbeta[i] += dy[i];
            }
            let (g_mean, gx_mean) = (g_sum / w as f32, gx_sum / w as f32);
            for i in 0..w {
                let xhat = (x[i] - mean) * rstd;
                dx[i] = rstd * (dy[i] * gamma[i] - g_mean - xhat * gx_mean);
            }
        }
    }
}

/// Attention probabilities: `softmax(scores · scale + key_bias)` over the last dim of `scores`
/// (`[rows, heads, queries, keys]`), where `key_bias` (`rows × keys`, a constant: the padding
/// mask's additive bias) is the same for every head and query of a row. One op in place of a
/// scale, a broadcast add and burn's four-op softmax, differentiable in `scores`.
pub fn attention_probs(scores: Tensor<4>, scale: f32, key_bias: &[f32]) -> Tensor<4> {
    let [rows, _, _, keys] = scores.dims();
    assert_eq!(key_bias.len(), rows * keys, "one bias per row and key");
    let bias = || key_bias.to_vec();
    if let Ok(t) = scores.clone().try_into_primitive::<Autodiff<Flex>>()
        && t.primitive().dtype() == DType::F32
    {
        return Tensor::from_primitive::<Autodiff<Flex>>(softmax_tracked(t, scale, bias()));
    }
    if let Ok(t) = scores.clone().try_into_primitive::<Flex>()
        && t.dtype() == DType::F32
    {
        return Tensor::from_primitive::<Flex>(softmax_forward(&t, scale, &bias()));
    }
    let bias = Tensor::<1>::from_data(TensorData::new(bias(), [rows * keys]), &scores.device());
    burn::tensor::activation::softmax(scores.mul_scalar(scale) + bias.reshape([rows, 1, 1, keys]), 3)
}

/// The attention softmax on an autodiff tensor: the forward now, the backward registered.
fn softmax_tracked(x: FloatTensor<Autodiff<Flex>>, scale: f32, bias: Vec<f32>) -> FloatTensor<Autodiff<Flex>> {
    #[derive(Debug)]
    struct Softmax;

    impl Backward<Flex, 1> for Softmax {
        /// The probabilities (the gradient is a function of them alone) and the scale.
        type State = (FlexTensor, f32);

        fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
            let (probs, scale) = ops.state;
            unary::<Flex, _>(ops.parents, ops.node, grads, |grad| softmax_backward(&probs, &grad, scale));
        }
    }

    let y = softmax_forward(x.primitive(), scale, &bias);
    match Softmax.prepare::<NoCheckpointing>([x.node()]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => prep.finish((y.clone(), scale), y),
        OpsKind::UnTracked(prep) => prep.finish(y),
    }
}

/// Rows (of `keys` entries) per parallel task of the softmax kernels, whole (row, head) blocks.
fn softmax_task(shape: &[usize]) -> usize {
    let block = shape[2] * shape[3];
    let blocks = shape[0] * shape[1];
    blocks.div_ceil(4 * rayon::current_num_threads()).max(1) * block
}

fn softmax_forward(x: &FlexTensor, scale: f32, bias: &[f32]) -> FlexTensor {
    let x = contiguous(x);
    let shape = x.shape().to_vec();
    let (heads, keys) = (shape[1], shape[3]);
    let block = shape[2] * keys;
    let xs = f32s(&x);
    let mut out = vec![0.0f32; xs.len()];
    let task = softmax_task(&shape);
    out.par_chunks_mut(task).zip(xs.par_chunks(task)).enumerate().for_each(|(t, (o, x))| {
        let first_block = t * task / block;
        for (b, (o, x)) in o.chunks_mut(block).zip(x.chunks(block)).enumerate() {
            let row = (first_block + b) / heads;
            softmax_rows(o, x, &bias[row * keys..(row + 1) * keys], scale);
        }
    });
    FlexTensor::from_data(TensorData::new(out, x.shape()))
}

fn softmax_backward(probs: &FlexTensor, grad: &FlexTensor, scale: f32) -> FlexTensor {
    let (p, g) = (contiguous(probs), contiguous(grad));
    let shape = p.shape().to_vec();
    let (ps, gs) = (f32s(&p), f32s(&g));
    let mut out = vec![0.0f32; ps.len()];
    let task = softmax_task(&shape);
    out.par_chunks_mut(task)
        .zip(ps.par_chunks(task))
        .zip(gs.par_chunks(task))
        .for_each(|((o, p), g)| softmax_grad_rows(o, p, g, shape[3], scale));
    FlexTensor::from_data(TensorData::new(out, p.shape()))
}

arch::multiversion! {
    /// `softmax(x · scale + bias)` of each row of `keys = bias.len()` entries.
    fn softmax_rows(out: &mut [f32], x: &[f32], bias: &[f32], scale: f32) {
        for (o, x) in out.chunks_exact_mut(bias.len()).zip(x.chunks_exact(bias.len())) {
            let mut max = f32::MIN;
            for ((o, &x), &b) in o.iter_mut().zip(x).zip(bias) {
                *o = x * scale + b;
                max = if *o > max { *o } else { max };
            }
            let mut sum = 0.0f32;
            for o in o.iter_mut() {
                *o = math::exp(*o - max);
                sum += *o;
            }
            let inv = 1.0 / sum;
            o.iter_mut().for_each(|o| *o *= inv);
        }
    }
}

arch::multiversion! {
    /// `dx = scale · p ⊙ (dp − Σ dp ⊙ p)`, row by row.
    fn softmax_grad_rows(dx: &mut [f32], p: &[f32], dp: &[f32], keys: usize, scale: f32) {
        for ((dx, p), dp) in dx.chunks_exact_mut(keys).zip(p.chunks_exact(keys)).zip(dp.chunks_exact(keys)) {
            let dot: f32 = p.iter().zip(dp).map(|(p, d)| p * d).sum();
            for ((dx, &p), &d) in dx.iter_mut().zip(p).zip(dp) {
                *dx = scale * p * (d - dot);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, Distribution};

    use super::*;

    /// The fused op and burn's GELU agree on values and on gradients, for a non-contiguous input
    /// too (a transposed view).
    #[test]
    fn matches_burns_gelu_forward_and_backward() {
        let device = Device::flex().autodiff();
        let base = Tensor::<2>::random([67, 300], Distribution::Normal(0.0, 3.0), &device);
        assert!(base.clone().try_into_primitive::<Autodiff<Flex>>().is_ok(), "the fused path must be the one tested");
        for transposed in [false, true] {
            let x = if transposed { base.clone().transpose() } else { base.clone() };
            let upstream = Tensor::<2>::random(x.shape(), Distribution::Normal(0.0, 1.0), &device);
            let grad_of = |f: fn(Tensor<2>) -> Tensor<2>| {
                let x = x.clone().detach().require_grad();
                let y = f(x.clone());
                let grads = (y.clone() * upstream.clone()).sum().backward();
                (y.inner().into_data(), x.grad(&grads).map(|g| g.into_data()))
            };
            let (y_fused, g_fused) = grad_of(gelu);
            let (y_burn, g_burn) = grad_of(burn::tensor::activation::gelu);
            y_fused.assert_approx_eq::<f32>(&y_burn, burn::tensor::Tolerance::absolute(2e-6));
            let (g_fused, g_burn) = (g_fused.expect("fused grad"), g_burn.expect("burn grad"));
            g_fused.assert_approx_eq::<f32>(&g_burn, burn::tensor::Tolerance::absolute(2e-5));
        }
    }

    /// Without autodiff, the same values.
    #[test]
    fn inference_matches_burns_gelu() {
        let device = Device::flex();
        let x = Tensor::<3>::random([3, 5, 40], Distribution::Normal(0.0, 2.0), &device);
        assert!(x.clone().try_into_primitive::<Flex>().is_ok(), "the fused path must be the one tested");
        gelu(x.clone()).into_data().assert_approx_eq::<f32>(
            &burn::tensor::activation::gelu(x).into_data(),
            burn::tensor::Tolerance::absolute(2e-6),
        );
    }
    /// The fused LayerNorm and burn's composition agree on values and on the gradients of all
    /// three inputs (gamma and beta sliced from longer parameters, as the supernet slices them).
    #[test]
    fn layer_norm_matches_burns_composition() {
        let device = Device::flex().autodiff();
        let x = Tensor::<2>::random([37, 96], Distribution::Normal(0.5, 2.0), &device);
        assert!(x.clone().try_into_primitive::<Autodiff<Flex>>().is_ok(), "the fused path must be the one tested");
        let gamma = Tensor::<1>::random([128], Distribution::Normal(1.0, 0.3), &device);
        let beta = Tensor::<1>::random([128], Distribution::Normal(0.0, 0.3), &device);
        let upstream = Tensor::<2>::random([37, 96], Distribution::Normal(0.0, 1.0), &device);
        type Norm = fn(Tensor<2>, Tensor<1>, Tensor<1>, f64) -> Tensor<2>;
        let run = |f: Norm| {
            let (x, g, b) = (x.clone().require_grad(), gamma.clone().require_grad(), beta.clone().require_grad());
            let y = f(x.clone(), g.clone().narrow(0, 0, 96), b.clone().narrow(0, 0, 96), 1e-12);
            let grads = (y.clone() * upstream.clone()).sum().backward();
            let grad = |t: &Tensor<2>| t.grad(&grads).map(|g| g.into_data());
            let grad1 = |t: &Tensor<1>| t.grad(&grads).map(|g| g.into_data());
            (y.inner().into_data(), grad(&x), grad1(&g), grad1(&b))
        };
        let fused = run(layer_norm);
        let burn = run(composed_layer_norm);
        let tol = burn::tensor::Tolerance::absolute(3e-5);
        fused.0.assert_approx_eq::<f32>(&burn.0, tol);
        for (f, b, name) in [(fused.1, burn.1, "x"), (fused.2, burn.2, "gamma"), (fused.3, burn.3, "beta")] {
            let (f, b) = (
                f.unwrap_or_else(|| panic!("fused grad of {name}")),
                b.unwrap_or_else(|| panic!("burn grad of {name}")),
            );
            f.assert_approx_eq::<f32>(&b, tol);
        }
    }
    /// The fused attention softmax and burn's scale + mask + softmax agree on the probabilities
    /// and on the gradient of the scores, padded keys included.
    #[test]
    fn attention_probs_match_burns_softmax() {
        let device = Device::flex().autodiff();
        let (rows, heads, seq) = (3, 4, 9);
        let scores = Tensor::<4>::random([rows, heads, seq, seq], Distribution::Normal(0.0, 4.0), &device);
        assert!(scores.clone().try_into_primitive::<Autodiff<Flex>>().is_ok(), "the fused path must be the one tested");
        let upstream = Tensor::<4>::random([rows, heads, seq, seq], Distribution::Normal(0.0, 1.0), &device);
        // Row r keeps its first seq - 2r keys.
        let bias: Vec<f32> = (0..rows * seq).map(|i| if i % seq < seq - 2 * (i / seq) { 0.0 } else { -1e9 }).collect();
        let scale = 0.25;
        let run = |fused: bool| {
            let x = scores.clone().require_grad();
            let y = if fused {
                attention_probs(x.clone(), scale, &bias)
            } else {
                let b = Tensor::<1>::from_data(TensorData::new(bias.clone(), [rows * seq]), &device);
                burn::tensor::activation::softmax(x.clone().mul_scalar(scale) + b.reshape([rows, 1, 1, seq]), 3)
            };
            let grads = (y.clone() * upstream.clone()).sum().backward();
            (y.inner().into_data(), x.grad(&grads).map(|g| g.into_data()))
        };
        let (fused, burn) = (run(true), run(false));
        let tol = burn::tensor::Tolerance::absolute(2e-6);
        fused.0.assert_approx_eq::<f32>(&burn.0, tol);
        fused.1.expect("fused grad").assert_approx_eq::<f32>(&burn.1.expect("burn grad"), tol);
    }
}
