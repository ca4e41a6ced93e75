//! Scalar math written so that LLVM vectorises it: branch-free polynomial `exp`, `erf` and the
//! functions built on them. Every function is `#[inline(always)]` so that it is compiled into the
//! AVX2 + FMA instances of the kernels that call it (see [`crate::kernels::simd`]).

/// `exp(x)` after Cephes' `expf`: range reduction by `ln 2`, a degree-6 polynomial, and the
/// exponent built from bits. Relative error about 2 ulp over the clamped range. Rounding and the
/// float-to-integer step use the `1.5·2²³` magic constant instead of `floor` and `as i32`, so the
/// function is pure arithmetic and bit operations that vectorise.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5 · 2^23: adding it rounds to an integer in the mantissa.
    let x = x.clamp(-87.3, 88.3);
    let t = x * std::f32::consts::LOG2_E + MAGIC;
    let n = t - MAGIC;
    let r = x - n * 0.693_359_4 + n * 2.121_944_4e-4;
    let mut y = 1.987_569_1e-4_f32;
    y = y * r + 1.398_199_9e-3;
    y = y * r + 8.333_452e-3;
    y = y * r + 4.166_579_6e-2;
    y = y * r + 1.666_666_5e-1;
    y = y * r + 5.000_000_1e-1;
    y = y * r * r + r + 1.0;
    let n_int = (t.to_bits() as i32).wrapping_sub(0x4B40_0000);
    y * f32::from_bits(((n_int + 127) as u32) << 23)
}

/// `erf(x)` as a rational function of `x` on `[-4, 4]` (odd degree-13 numerator over even
/// degree-8 denominator; Eigen's `generic_fast_erf_float`): no `exp`, one division, a few ulp.
/// Outside `[-4, 4]`, `erf` is ±1 in single precision.
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = x2 * -2.726_142_3e-10 + 2.770_681_4e-8;
    p = x2 * p - 2.101_024e-6;
    p = x2 * p - 5.692_506_4e-5;
    p = x2 * p - 7.349_906_3e-4;
    p = x2 * p - 2.954_600_2e-3;
    p = x2 * p - 1.609_603_3e-2;
    let mut q = x2 * -1.456_607_2e-5 - 2.133_740_6e-4;
    q = x2 * q - 1.682_827e-3;
    q = x2 * q - 7.373_329_4e-3;
    q = x2 * q - 1.426_474e-2;
    x * p / q
}

/// BERT's exact GELU, `x · Φ(x) = x/2 · (1 + erf(x/√2))`.
#[inline(always)]
pub fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// `tanh(x) = 1 - 2 / (exp(2x) + 1)`, exact at the saturated ends.
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    1.0 - 2.0 / (exp(2.0 * x) + 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_std_to_a_few_ulp() {
        let mut worst = 0.0f32;
        let mut x = -80.0f32;
        while x < 80.0 {
            let rel = ((exp(x) - x.exp()) / x.exp()).abs();
            worst = worst.max(rel);
            x += 0.0137;
        }
        assert!(worst < 5e-7, "worst relative error {worst}");
        // Masked scores (f32::MIN) land on the clamp: negligible next to any real probability.
        assert!(exp(f32::MIN) < 1.3e-38);
    }

    #[test]
    fn erf_and_gelu_match_a_double_precision_series() {
        let erf64 = crate::reference::erf64;
        let mut worst = 0.0f64;
        let mut x = -6.0f64;
        while x < 6.0 {
            worst = worst.max((erf(x as f32) as f64 - erf64(x as f32 as f64)).abs());
            let g = 0.5 * x * (1.0 + erf64(x / std::f64::consts::SQRT_2));
            assert!((gelu(x as f32) as f64 - g).abs() < 2e-6, "gelu({x})");
            assert!((tanh(x as f32) as f64 - x.tanh()).abs() < 3e-7, "tanh({x})");
            x += 0.001;
        }
        eprintln!("erf worst abs error {worst:e}");
        assert!(worst < 5e-7, "erf worst abs error {worst:e}");
    }
}
