//! Calibrates a tiny space for real on this machine and checks the predictor against measured
//! end-to-end latency on held-out archs, and against predictors that ignore shape.

#![allow(clippy::unwrap_used)] // a test: a failure should stop it loudly

use arch::SearchSpace;
use latency::calibrate::{CalibrationOptions, calibrate};
use latency::validate::{held_out_archs, validate};

fn tiny_space() -> SearchSpace {
    ron::from_str(include_str!("../spaces/tiny.ron")).unwrap()
}

#[test]
fn tiny_calibration_predicts_held_out_archs() {
    let options = CalibrationOptions { archs: 16, fusion_rules: false, ..Default::default() };
    let start = std::time::Instant::now();
    let profile = calibrate(&tiny_space(), &options, &mut |_| {}).unwrap();
    eprintln!("calibrated in {:.1} s", start.elapsed().as_secs_f64());
    assert!(profile.models.contains_key("attention") && profile.models.contains_key("gemm[bias+gelu]"));

    let archs = held_out_archs(&profile, 12, 7).unwrap();
    let v = validate(&profile, &archs, &mut |_| {}).unwrap();
    assert_eq!(v.rows.len(), archs.len(), "the drift probes are not held-out rows");
    let drift = v.drift.clone().expect("calibration programs measured again");
    assert!(drift.probes >= 1 && drift.drift.is_finite() && drift.drift > -0.9, "{drift:?}");

    // Shape-blind baselines fitted on the same measurements: a constant (the mean measured
    // latency) and latency proportional to FLOPs (least squares on relative error).
    let measured: Vec<f64> = v.rows.iter().map(|r| r.measured_ms).collect();
    let flops: Vec<f64> = archs.iter().map(|a| a.flops(1) as f64).collect();
    let mean = measured.iter().sum::<f64>() / measured.len() as f64;
    let ratio: f64 = {
        let (num, den) =
            flops.iter().zip(&measured).fold((0.0, 0.0), |(n, d), (f, m)| (n + f / m, d + (f / m).powi(2)));
        num / den
    };
    let rmspe = |pred: &dyn Fn(usize) -> f64| {
        (measured.iter().enumerate().map(|(i, m)| ((pred(i) - m) / m).powi(2)).sum::<f64>() / measured.len() as f64)
            .sqrt()
    };
    let constant = rmspe(&|_| mean);
    let flops_only = rmspe(&|i| flops[i] * ratio);
    eprintln!(
        "held-out RMSPE: profile {:.1}%, constant {:.1}%, FLOPs alone {:.1}%; Spearman {:.3}",
        v.rmspe * 100.0,
        constant * 100.0,
        flops_only * 100.0,
        v.spearman
    );
    assert!(v.rmspe < 0.25, "profile RMSPE {:.3}", v.rmspe);
    assert!(v.rmspe < 0.5 * constant, "profile {:.3} vs constant {constant:.3}", v.rmspe);
    assert!(v.rmspe < 0.8 * flops_only, "profile {:.3} vs FLOPs alone {flops_only:.3}", v.rmspe);
    assert!(v.spearman > 0.8, "Spearman {:.3}", v.spearman);
}
