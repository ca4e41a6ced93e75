//! Scalar math written so that LLVM vectorises it: branch-free polynomial `exp`, `erf` and the
//! functions built on them. Every function is `#[inline(always)]` so that it is compiled into the
//! vector instances of the loops that call it ([`multiversion!`](crate::multiversion)).
//!
//! It lives here, below the crates that use it, because two of them do: the compiler's kernels and
//! the supernet's fused training ops compute the same GELU.

/// Whether the running CPU has AVX2 and FMA (std caches the CPUID query).
#[inline]
pub fn has_avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Function multiversioning: defines `fn name(args) [-> T]` whose body runs under
/// `#[target_feature(enable = "avx2,fma")]` when the CPU allows, and as baseline code otherwise.
/// Plain loops over `chunks_exact(8)` with lane arrays vectorise well in both.
#[macro_export]
macro_rules! multiversion {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident : $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn body($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                fn avx2($($arg: $ty),*) $(-> $ret)? {
                    body($($arg),*)
                }
                if $crate::math::has_avx2_fma() {
                    // SAFETY: the CPU was just checked for AVX2 and FMA.
                    return unsafe { avx2($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}

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
pub const EXP_MIN: f32 = -87.3;
pub const EXP_MAX: f32 = 88.3;
/// 1.5 · 2^23: adding it rounds to an integer in the mantissa.
pub const EXP_MAGIC: f32 = 12_582_912.0;
/// `ln 2` in two parts (`HI - LO`), so that `x - n·ln 2` loses no bits.
pub const EXP_LN2_HI: f32 = 0.693_359_4;
pub const EXP_LN2_LO: f32 = 2.121_944_4e-4;
/// Cephes' polynomial for `(exp(r) - 1 - r) / r²`, highest degree first.
pub const EXP_P: [f32; 6] =
    [1.987_569_1e-4, 1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 1.666_666_5e-1, 5.000_000_1e-1];

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
pub const ERF_CLAMP: f32 = 4.0;
pub const ERF_P: [f32; 7] = [
    -2.726_142_3e-10,
    2.770_681_4e-8,
    -2.101_024e-6,
    -5.692_506_4e-5,
    -7.349_906_3e-4,
    -2.954_600_2e-3,
    -1.609_603_3e-2,
];
pub const ERF_Q: [f32; 5] = [-1.456_607_2e-5, -2.133_740_6e-4, -1.682_827e-3, -7.373_329_4e-3, -1.426_474e-2];

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
