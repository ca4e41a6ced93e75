//! Scalar math written so that LLVM vectorises it: branch-free polynomial `exp`, `erf` and the
//! functions built on them. Every function is `#[inline(always)]` so that it is compiled into the
//! AVX2 + FMA instances of the kernels that call it (see [`crate::kernels::simd`]).

/// `exp(x)` after Cephes' `expf`: range reduction by `ln 2`, a degree-6 polynomial, and the
/// exponent built from bits. Relative error about 2 ulp over the clamped range. Rounding and the
/// float-to-integer step use the `1.5·2²³` magic constant instead of `floor` and `as i32`, so the
/// function is pure arithmetic and bit operations that vectorise.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let x = x.clamp(EXP_MIN, EXP_MAX);
    let t = x * std::f32::consts::LOG2_E + EXP_MAGIC;
    let n = t - EXP_MAGIC;
    let r = x - n * EXP_LN2_HI + n * EXP_LN2_LO;
    let mut y = EXP_P[0];
    for c in &EXP_P[1..] {
        y = y * r + c;
    }
    y = y * r * r + r + 1.0;
    let n_int = (t.to_bits() as i32).wrapping_sub(EXP_MAGIC.to_bits() as i32);
    y * f32::from_bits(((n_int + 127) as u32) << 23)
}

// The constants of `exp`, shared with its AVX2 form.
const EXP_MIN: f32 = -87.3;
const EXP_MAX: f32 = 88.3;
/// 1.5 · 2^23: adding it rounds to an integer in the mantissa.
const EXP_MAGIC: f32 = 12_582_912.0;
/// `ln 2` in two parts (`HI - LO`), so that `x - n·ln 2` loses no bits.
const EXP_LN2_HI: f32 = 0.693_359_4;
const EXP_LN2_LO: f32 = 2.121_944_4e-4;
/// Cephes' polynomial for `(exp(r) - 1 - r) / r²`, highest degree first.
const EXP_P: [f32; 6] = [1.987_569_1e-4, 1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 1.666_666_5e-1, 5.000_000_1e-1];

/// `erf(x)` as a rational function of `x` on `[-4, 4]` (odd degree-13 numerator over even
/// degree-8 denominator; Eigen's `generic_fast_erf_float`): no `exp`, one division, a few ulp.
/// Outside `[-4, 4]`, `erf` is ±1 in single precision.
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let x = x.clamp(-ERF_CLAMP, ERF_CLAMP);
    let x2 = x * x;
    let mut p = ERF_P[0];
    for c in &ERF_P[1..] {
        p = x2 * p + c;
    }
    let mut q = ERF_Q[0];
    for c in &ERF_Q[1..] {
        q = x2 * q + c;
    }
    x * p / q
}

// The constants of `erf`, shared with its AVX2 form: numerator and denominator polynomials in
// `x²`, highest degree first.
const ERF_CLAMP: f32 = 4.0;
const ERF_P: [f32; 7] = [
    -2.726_142_3e-10,
    2.770_681_4e-8,
    -2.101_024e-6,
    -5.692_506_4e-5,
    -7.349_906_3e-4,
    -2.954_600_2e-3,
    -1.609_603_3e-2,
];
const ERF_Q: [f32; 5] = [-1.456_607_2e-5, -2.133_740_6e-4, -1.682_827e-3, -7.373_329_4e-3, -1.426_474e-2];

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

/// The same functions on eight lanes of an AVX2 register, with fused multiply-adds (one rounding
/// where the scalar forms round twice: the results differ from theirs by an ulp or so). For the
/// GEMM micro-kernel's epilogue, which finishes each tile in registers before storing it.
#[cfg(target_arch = "x86_64")]
pub mod avx2 {
    use std::arch::x86_64::*;

    use super::*;

    /// `x` clamped to `[lo, hi]` lane by lane, NaN kept (as `f32::clamp` does): `vmaxps` and
    /// `vminps` return their second operand when either is NaN, so `x` goes second.
    #[inline(always)]
    unsafe fn clamp(x: __m256, lo: f32, hi: f32) -> __m256 {
        // SAFETY: AVX (caller's contract); register arithmetic.
        unsafe { _mm256_min_ps(_mm256_set1_ps(hi), _mm256_max_ps(_mm256_set1_ps(lo), x)) }
    }

    /// `exp` on eight lanes.
    ///
    /// # Safety
    /// The CPU has AVX2 and FMA.
    #[inline(always)]
    pub unsafe fn exp(x: __m256) -> __m256 {
        // SAFETY: AVX2 + FMA (caller's contract); pure register arithmetic.
        unsafe {
            let x = clamp(x, EXP_MIN, EXP_MAX);
            let magic = _mm256_set1_ps(EXP_MAGIC);
            let t = _mm256_fmadd_ps(x, _mm256_set1_ps(std::f32::consts::LOG2_E), magic);
            let n = _mm256_sub_ps(t, magic);
            let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(EXP_LN2_HI), x);
            let r = _mm256_fmadd_ps(n, _mm256_set1_ps(EXP_LN2_LO), r);
            let mut y = _mm256_set1_ps(EXP_P[0]);
            for &c in &EXP_P[1..] {
                y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(c));
            }
            let y = _mm256_fmadd_ps(y, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0)));
            let n_int = _mm256_sub_epi32(_mm256_castps_si256(t), _mm256_set1_epi32(EXP_MAGIC.to_bits() as i32));
            let scale = _mm256_slli_epi32::<23>(_mm256_add_epi32(n_int, _mm256_set1_epi32(127)));
            _mm256_mul_ps(y, _mm256_castsi256_ps(scale))
        }
    }

    /// `erf` on eight lanes.
    ///
    /// # Safety
    /// The CPU has AVX2 and FMA.
    #[inline(always)]
    pub unsafe fn erf(x: __m256) -> __m256 {
        // SAFETY: AVX2 + FMA (caller's contract); pure register arithmetic.
        unsafe {
            let x = clamp(x, -ERF_CLAMP, ERF_CLAMP);
            let x2 = _mm256_mul_ps(x, x);
            let mut p = _mm256_set1_ps(ERF_P[0]);
            for &c in &ERF_P[1..] {
                p = _mm256_fmadd_ps(x2, p, _mm256_set1_ps(c));
            }
            let mut q = _mm256_set1_ps(ERF_Q[0]);
            for &c in &ERF_Q[1..] {
                q = _mm256_fmadd_ps(x2, q, _mm256_set1_ps(c));
            }
            _mm256_div_ps(_mm256_mul_ps(x, p), q)
        }
    }

    /// Exact GELU on eight lanes.
    ///
    /// # Safety
    /// The CPU has AVX2 and FMA.
    #[inline(always)]
    pub unsafe fn gelu(x: __m256) -> __m256 {
        // SAFETY: AVX2 + FMA (caller's contract).
        unsafe {
            let e = erf(_mm256_mul_ps(x, _mm256_set1_ps(std::f32::consts::FRAC_1_SQRT_2)));
            let half_x = _mm256_mul_ps(x, _mm256_set1_ps(0.5));
            _mm256_fmadd_ps(half_x, e, half_x)
        }
    }

    /// `tanh` on eight lanes.
    ///
    /// # Safety
    /// The CPU has AVX2 and FMA.
    #[inline(always)]
    pub unsafe fn tanh(x: __m256) -> __m256 {
        // SAFETY: AVX2 + FMA (caller's contract).
        unsafe {
            let one = _mm256_set1_ps(1.0);
            let e = exp(_mm256_add_ps(x, x));
            _mm256_sub_ps(one, _mm256_div_ps(_mm256_set1_ps(2.0), _mm256_add_ps(e, one)))
        }
    }
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

    /// The AVX2 forms agree with the scalar ones to within the rounding that fused
    /// multiply-adds change, on every lane.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx2_forms_match_the_scalar_ones() {
        use std::arch::x86_64::*;
        if !crate::kernels::simd::has_avx2_fma() {
            return;
        }
        #[target_feature(enable = "avx2,fma")]
        fn lanes(f: unsafe fn(__m256) -> __m256, x: [f32; 8]) -> [f32; 8] {
            let mut out = [0.0f32; 8];
            // SAFETY: the CPU was checked for AVX2 and FMA; both arrays hold eight lanes.
            unsafe { _mm256_storeu_ps(out.as_mut_ptr(), f(_mm256_loadu_ps(x.as_ptr()))) };
            out
        }
        type Pair = (unsafe fn(__m256) -> __m256, fn(f32) -> f32, &'static str, f32);
        let pairs: [Pair; 4] = [
            (avx2::exp, exp, "exp", 1e-6),
            (avx2::erf, erf, "erf", 1e-6),
            (avx2::gelu, gelu, "gelu", 2e-6), // the scalar test's bound: 1 + erf cancels below -4
            (avx2::tanh, tanh, "tanh", 1e-6),
        ];
        for (vector, scalar, name, tol) in pairs {
            // SAFETY: AVX2 and FMA were checked above.
            let nan = unsafe { lanes(vector, [f32::NAN; 8]) };
            assert!(nan.iter().all(|v| v.is_nan()), "{name}(NaN) gave {nan:?}: a diverged model must not look finite");
            let mut x = -90.0f32;
            while x < 90.0 {
                let xs: [f32; 8] = std::array::from_fn(|l| x + l as f32 * 0.0011);
                // SAFETY: AVX2 and FMA were checked above.
                let got = unsafe { lanes(vector, xs) };
                for (g, &x) in got.iter().zip(&xs) {
                    let want = scalar(x);
                    let err = (g - want).abs() / want.abs().max(1.0);
                    assert!(err <= tol, "{name}({x}): {g} against {want}");
                }
                x += if x.abs() < 8.0 { 0.0093 } else { 0.77 };
            }
        }
    }
}
