//! Function multiversioning (from [`arch::math`]): a kernel body is written once as plain Rust and
//! compiled twice, for the baseline target and with AVX2 + FMA enabled; the AVX2 instance is
//! chosen at run time when the CPU has it. Plain loops over `chunks_exact(8)` with lane arrays
//! vectorise well in both.

pub use arch::math::has_avx2_fma;
pub(crate) use arch::multiversion;

/// Sum of a slice with eight independent lanes (vectorisable; the order differs from a serial
/// sum by rounding only).
#[inline(always)]
pub fn sum(xs: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let chunks = xs.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for l in 0..8 {
            lanes[l] += c[l];
        }
    }
    let mut total = lanes.iter().sum::<f32>();
    for &x in rest {
        total += x;
    }
    total
}

/// Maximum of a non-empty slice, eight lanes at a time.
#[inline(always)]
pub fn max(xs: &[f32]) -> f32 {
    let mut lanes = [f32::MIN; 8];
    let chunks = xs.chunks_exact(8);
    let rest = chunks.remainder();
    // `if a > b` compiles to one vmaxps; `f32::max` adds NaN handling the scores never need.
    for c in chunks {
        for l in 0..8 {
            lanes[l] = if c[l] > lanes[l] { c[l] } else { lanes[l] };
        }
    }
    let mut m = lanes.iter().copied().fold(f32::MIN, |a, b| if b > a { b } else { a });
    for &x in rest {
        m = if x > m { x } else { m };
    }
    m
}
