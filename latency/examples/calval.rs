//! Calibrate and validate in one process: `cargo run --release -p latency --example calval -- THREADS`.
#![allow(clippy::unwrap_used)] // a tool: a failure should stop it loudly
use arch::SearchSpace;
use latency::calibrate::{CalibrationOptions, calibrate};
use latency::validate::{held_out_archs, validate};

fn main() {
    let threads: usize = std::env::args().nth(1).map_or(1, |a| a.parse().unwrap());
    let options = CalibrationOptions { threads, fusion_rules: false, ..Default::default() };
    let profile = calibrate(&SearchSpace::default(), &options, &mut |_| {}).unwrap();
    println!("scale {:.3} overhead {:.3}", profile.scale, profile.overhead_ms);
    for round in 0..2 {
        let archs = held_out_archs(&profile, 30, 1).unwrap();
        let v = validate(&profile, &archs, &mut |_| {}).unwrap();
        let mut errs: Vec<f64> = v.rows.iter().map(|r| r.relative_error()).collect();
        errs.sort_by(f64::total_cmp);
        println!(
            "round {round}: rmspe {:.3} within10 {:.2} within5 {:.2} median err {:.3}",
            v.rmspe, v.within_10, v.within_5, errs[15]
        );
    }
}
