//! The scalar math of the kernels ([`arch::math`], shared with the supernet's training ops) and
//! its AVX2 forms, for the GEMM micro-kernel's epilogue.

#[cfg(target_arch = "x86_64")]
use arch::math::{ERF_CLAMP, ERF_P, ERF_Q, EXP_LN2_HI, EXP_LN2_LO, EXP_MAGIC, EXP_MAX, EXP_MIN, EXP_P};
pub use arch::math::{erf, exp, gelu, tanh};

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
