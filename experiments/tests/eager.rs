//! The supernet's burn forward (`supernet::Supernet`) against the compiler's independent reference, on
//! exact-size weights and on the leading slices of a larger model's weights (the supernet's way
//! of running a subnet).

#![allow(clippy::unwrap_used)] // a test: a failure should stop it loudly

use arch::{Arch, TaskHead};
use burn::tensor::Device;
use compiler::{Batch, Tensor, Weights, reference, weight_specs};
use supernet::{Mode, Supernet};

fn to_burn(max: &Arch, weights: &Weights, device: &Device) -> Supernet {
    let tensors = weights.names().map(|n| {
        let t = weights.find(n).unwrap();
        (n.to_string(), t.shape.clone(), t.data.to_vec())
    });
    Supernet::from_tensors(max, 1e-12, tensors.collect::<Vec<_>>(), device).unwrap()
}

fn check(arch: &Arch, weights: &Weights, net: &Supernet) {
    let input = Batch::synthetic(arch, &[arch.seq_len, arch.seq_len / 2 + 1], 5);
    let want = reference::forward(arch, weights, &input, 1e-12).unwrap();
    let batch = supernet::Batch::unlabelled(input.ids.clone(), input.types.clone(), input.mask.clone(), arch.seq_len);
    let got: Vec<f32> = net.forward(&batch, arch, Mode::default()).unwrap().logits.into_data().try_into_vec().unwrap();
    let err = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(err <= 1e-4, "{arch}: burn eager differs from the reference by {err}");
}

#[test]
fn eager_forward_matches_the_reference() {
    let device = Device::flex();
    for (text, task) in [
        ("L2-H64-A4-F128-D16-S9", TaskHead::Embedding),
        ("L1-H32-A2-F64-D16-S5", TaskHead::Classification { labels: 3 }),
    ] {
        let mut arch = Arch::parse(text).unwrap();
        arch.task = task;
        let weights = Weights::random(&arch, 11);
        check(&arch, &weights, &to_burn(&arch, &weights, &device));
    }
}

#[test]
fn a_subnet_runs_on_the_leading_slices_of_shared_weights() {
    let device = Device::flex();
    let mut big = Arch::parse("L3-H96-A6-F192-D16-S12").unwrap();
    big.task = TaskHead::Classification { labels: 2 };
    let shared = Weights::random(&big, 3);
    let net = to_burn(&big, &shared, &device);
    let mut small = Arch::parse("L2-H64-A[2,5]-F[64,160]-D16-S12").unwrap();
    small.task = TaskHead::Classification { labels: 2 };
    // The subnet's own weights: the leading block of every shared tensor.
    let mut sliced = Weights::new("slices of the shared weights");
    for (name, shape) in weight_specs(&small) {
        let full = shared.find(&name).unwrap();
        let cols = full.shape.get(1).copied().unwrap_or(1);
        let data: Vec<f32> = if shape.len() == 2 {
            (0..shape[0]).flat_map(|r| full.data[r * cols..r * cols + shape[1]].to_vec()).collect()
        } else {
            full.data[..shape[0]].to_vec()
        };
        sliced.insert(name, Tensor::new(shape, data));
    }
    check(&small, &sliced, &net);
}
