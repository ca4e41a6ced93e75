//! canao's own GEMM for weight products: the weights are packed once, at compile time, into
//! panels of 16 columns (`k × 16`, contiguous), and an AVX2 + FMA micro-kernel computes `6 × 16`
//! tiles of the output from six rows of the activations and one panel, after BLIS's Haswell sgemm.
//! Packing the constant operand once is what the `gemm` crate cannot do (it packs both operands
//! on every call), and what matters most for the small GEMMs of small BERTs.
//!
//! Loop order, per thread: panels of columns (outer; threads split the panels, or the rows), then
//! blocks of `kc` along `k` (the panel block, `kc × 16`, stays in L1 while every 6-row tile of the
//! activations streams past it), then 6-row tiles. The elementwise epilogue (bias, activation,
//! residual) runs on each tile after its last `k` block, while the tile is in L1.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// Columns per packed panel (two AVX registers).
pub const NR: usize = 16;
/// Rows per micro-tile.
pub const MR: usize = 6;

/// A `[n, k]` weight matrix (the Linear layout), packed into `k × NR` column panels with the last
/// panel zero-padded.
#[derive(Debug, Clone)]
pub struct PackedB {
    pub n: usize,
    pub k: usize,
    data: Vec<f32>,
}

impl PackedB {
    /// Packs `w` (`[n, k]`, row-major).
    pub fn pack(w: &[f32], n: usize, k: usize) -> PackedB {
        let mut packed = PackedB { n: 0, k: 0, data: Vec::new() };
        packed.repack(w, n, k, k, 1);
        packed
    }

    /// Packs, reusing this allocation, the `n × k` operand whose element `(j, kk)` (output column
    /// `j`, depth `kk`) is `src[j * n_stride + kk * k_stride]`: `(k, 1)` is the Linear layout,
    /// a row-major `[k, n]` matrix is `(1, n)`.
    pub fn repack(&mut self, src: &[f32], n: usize, k: usize, n_stride: usize, k_stride: usize) {
        let panels = n.div_ceil(NR);
        self.n = n;
        self.k = k;
        self.data.clear();
        self.data.resize(panels * k * NR, 0.0);
        for p in 0..panels {
            let panel = &mut self.data[p * k * NR..(p + 1) * k * NR];
            for j in 0..NR.min(n - p * NR) {
                let base = (p * NR + j) * n_stride;
                for kk in 0..k {
                    panel[kk * NR + j] = src[base + kk * k_stride];
                }
            }
        }
    }

    /// Number of column panels.
    pub fn panels(&self) -> usize {
        self.n.div_ceil(NR)
    }

    /// Rows `k0..k0+kc` of panel `p`.
    fn block(&self, p: usize, k0: usize) -> *const f32 {
        self.data[(p * self.k + k0) * NR..].as_ptr()
    }
}

/// Whether the packed kernel can run on this CPU.
pub fn available() -> bool {
    cfg!(target_arch = "x86_64") && super::simd::has_avx2_fma()
}

/// `c[rows×cols] (+)= a[rows×kc] · b[kc×NR]` for one tile. `a` has row stride `lda`; `b` is a
/// packed panel block; `c` has row stride `ldc`. Rows past `rows` read the last valid row and are
/// not stored; columns past `cols` are not stored.
///
/// # Safety
/// The CPU has AVX2 and FMA; `a` is valid for `rows` rows of `kc` elements, `b` for `kc × NR`,
/// `c` for `rows` rows of `cols` elements.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn tile(
    kc: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    rows: usize,
    cols: usize,
    accumulate: bool,
) {
    // SAFETY: the caller guarantees the extents; row pointers past `rows` are clamped.
    unsafe {
        let row = |r: usize| a.add(r.min(rows - 1) * lda);
        let (a0, a1, a2, a3, a4, a5) = (row(0), row(1), row(2), row(3), row(4), row(5));
        let mut acc = [_mm256_setzero_ps(); 12];
        for kk in 0..kc {
            let b0 = _mm256_loadu_ps(b.add(kk * NR));
            let b1 = _mm256_loadu_ps(b.add(kk * NR + 8));
            let x = _mm256_broadcast_ss(&*a0.add(kk));
            acc[0] = _mm256_fmadd_ps(x, b0, acc[0]);
            acc[1] = _mm256_fmadd_ps(x, b1, acc[1]);
            let x = _mm256_broadcast_ss(&*a1.add(kk));
            acc[2] = _mm256_fmadd_ps(x, b0, acc[2]);
            acc[3] = _mm256_fmadd_ps(x, b1, acc[3]);
            let x = _mm256_broadcast_ss(&*a2.add(kk));
            acc[4] = _mm256_fmadd_ps(x, b0, acc[4]);
            acc[5] = _mm256_fmadd_ps(x, b1, acc[5]);
            let x = _mm256_broadcast_ss(&*a3.add(kk));
            acc[6] = _mm256_fmadd_ps(x, b0, acc[6]);
            acc[7] = _mm256_fmadd_ps(x, b1, acc[7]);
            let x = _mm256_broadcast_ss(&*a4.add(kk));
            acc[8] = _mm256_fmadd_ps(x, b0, acc[8]);
            acc[9] = _mm256_fmadd_ps(x, b1, acc[9]);
            let x = _mm256_broadcast_ss(&*a5.add(kk));
            acc[10] = _mm256_fmadd_ps(x, b0, acc[10]);
            acc[11] = _mm256_fmadd_ps(x, b1, acc[11]);
        }
        for r in 0..rows {
            let dst = c.add(r * ldc);
            if cols == NR {
                let (mut lo, mut hi) = (acc[2 * r], acc[2 * r + 1]);
                if accumulate {
                    lo = _mm256_add_ps(lo, _mm256_loadu_ps(dst));
                    hi = _mm256_add_ps(hi, _mm256_loadu_ps(dst.add(8)));
                }
                _mm256_storeu_ps(dst, lo);
                _mm256_storeu_ps(dst.add(8), hi);
            } else {
                let mut tmp = [0.0f32; NR];
                _mm256_storeu_ps(tmp.as_mut_ptr(), acc[2 * r]);
                _mm256_storeu_ps(tmp.as_mut_ptr().add(8), acc[2 * r + 1]);
                for (j, v) in tmp.iter().enumerate().take(cols) {
                    *dst.add(j) = if accumulate { *dst.add(j) + v } else { *v };
                }
            }
        }
    }
}

/// `c[m×n]` (row stride `n`) = `a[m×k] · bᵀ` for rows `r0..r1` and panels `p0..p1`, calling
/// `finish(row0, rows, col0, cols)` on every finished tile (the elementwise epilogue).
///
/// # Safety
/// [`available`] is true; `a` holds `m×k`, `c` holds `m×n`; concurrent callers pass disjoint
/// row or panel ranges.
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemm_packed(
    a: &[f32],
    b: &PackedB,
    c: *mut f32,
    m: usize,
    rows: std::ops::Range<usize>,
    panels: std::ops::Range<usize>,
    kc: usize,
    finish: &dyn Fn(usize, usize, usize, usize),
) {
    // SAFETY: forwarded; a dense `a` has row stride k and a dense `c` row stride n.
    unsafe { gemm_packed_strided(a, b.k, b, c, b.n, m, rows, panels, kc, finish) }
}

/// [`gemm_packed`] with explicit row strides: `a` row `r` starts at `a[r * lda]`, `c` row `r` at
/// `c + r * ldc`.
///
/// # Safety
/// As [`gemm_packed`], with `a` holding `(m - 1)·lda + k` elements and `c` valid for `m` rows
/// of `n` at stride `ldc`.
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemm_packed_strided(
    a: &[f32],
    lda: usize,
    b: &PackedB,
    c: *mut f32,
    ldc: usize,
    m: usize,
    rows: std::ops::Range<usize>,
    panels: std::ops::Range<usize>,
    kc: usize,
    finish: &dyn Fn(usize, usize, usize, usize),
) {
    let (n, k) = (b.n, b.k);
    assert!(m == 0 || a.len() >= (m - 1) * lda + k, "packed gemm: lhs too short");
    assert!(rows.end <= m && panels.end <= b.panels(), "packed gemm: ranges");
    let kc = kc.max(1);
    #[cfg(target_arch = "x86_64")]
    for p in panels {
        let (col0, cols) = (p * NR, NR.min(n - p * NR));
        let mut k0 = 0;
        while k0 < k {
            let len = kc.min(k - k0);
            let last = k0 + len == k;
            let bp = b.block(p, k0);
            let mut r0 = rows.start;
            while r0 < rows.end {
                let r = MR.min(rows.end - r0);
                // SAFETY: rows r0..r0+r of `a` from column k0 hold `len` elements each; the
                // panel block holds len×NR; the tile of `c` lies inside m×n (caller's contract).
                unsafe {
                    tile(len, a.as_ptr().add(r0 * lda + k0), lda, bp, c.add(r0 * ldc + col0), ldc, r, cols, k0 > 0)
                };
                if last {
                    finish(r0, r, col0, cols);
                }
                r0 += r;
            }
            k0 += len;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (a, lda, c, ldc, m, rows, panels, kc, finish, n, k);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_gemm_matches_a_plain_product_on_ragged_shapes() {
        if !available() {
            return;
        }
        for (m, n, k, kc) in [(1, 1, 1, 256), (7, 17, 5, 2), (13, 40, 33, 16), (6, 16, 300, 128), (31, 100, 257, 64)] {
            let a: Vec<f32> = (0..m * k).map(|i| ((i * 37) % 11) as f32 - 5.0).collect();
            let w: Vec<f32> = (0..n * k).map(|i| ((i * 53) % 7) as f32 - 3.0).collect();
            let packed = PackedB::pack(&w, n, k);
            let mut c = vec![f32::NAN; m * n];
            let tiles = std::cell::Cell::new(0);
            unsafe {
                gemm_packed(&a, &packed, c.as_mut_ptr(), m, 0..m, 0..packed.panels(), kc, &|_, _, _, _| {
                    tiles.set(tiles.get() + 1)
                })
            };
            for i in 0..m {
                for j in 0..n {
                    let want: f32 = (0..k).map(|t| a[i * k + t] * w[j * k + t]).sum();
                    assert_eq!(c[i * n + j], want, "({m},{n},{k}) at ({i},{j})");
                }
            }
            assert_eq!(tiles.get(), m.div_ceil(MR) * n.div_ceil(NR));
        }
    }
}
