//! canao's own GEMM for weight products: the weights are packed once, at compile time, into
//! panels of 16 columns (`k × 16`, contiguous), and an AVX2 + FMA micro-kernel computes `6 × 16`
//! tiles of the output from six rows of the activations and one panel, after BLIS's Haswell sgemm.
//! Packing the constant operand once is what the `gemm` crate cannot do (it packs both operands
//! on every call), and what matters most for the small GEMMs of small BERTs.
//!
//! Loop order, per thread: panels of columns (outer; threads split the panels, or the rows), then
//! blocks of `kc` along `k` (the panel block, `kc × 16`, stays in L1 while every 6-row tile of the
//! activations streams past it), then 6-row tiles. The elementwise epilogue (bias, activation,
//! residual) is applied to each tile in registers after its last `k` block, before the tile is
//! stored: the output is written once, finished.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use crate::ir::Activation;

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

/// The elementwise epilogue of a packed GEMM, `c = activation(a·bᵀ + bias) + residual`, applied
/// to each tile in registers after its last `k` block.
#[derive(Clone, Copy, Default)]
pub struct TileOps<'a> {
    /// One value per output column (`n` of them).
    pub bias: Option<&'a [f32]>,
    pub activation: Option<Activation>,
    /// Added after the activation: `[m, n]` with the output's row numbering, row stride `n`.
    pub residual: Option<&'a [f32]>,
}

impl TileOps<'_> {
    /// Whether there is nothing to apply.
    pub fn is_empty(&self) -> bool {
        self.bias.is_none() && self.activation.is_none() && self.residual.is_none()
    }
}

/// [`TileOps`] resolved for one tile: the bias in registers and the residual's first row.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
struct TileFinish {
    bias: Option<(__m256, __m256)>,
    activation: Option<Activation>,
    /// Row 0 of the tile's residual and the residual's row stride.
    residual: Option<(*const f32, usize)>,
}

#[cfg(target_arch = "x86_64")]
impl TileFinish {
    /// The finish of the tile at `(row0, col0)`, `cols` wide, of an output `n` columns wide.
    ///
    /// # Safety
    /// The CPU has AVX2; `ops.bias` holds at least `col0 + cols` values and `ops.residual` the
    /// tile's rows at stride `n`.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn new(ops: &TileOps, n: usize, row0: usize, col0: usize, cols: usize) -> TileFinish {
        // SAFETY: `padded` reads `cols` values from `col0` of the bias (caller's contract).
        let bias = ops.bias.map(|b| unsafe { padded(b[col0..].as_ptr(), cols) });
        let residual = ops.residual.map(|r| (r[row0 * n + col0..].as_ptr(), n));
        TileFinish { bias, activation: ops.activation, residual }
    }

    /// Applies the finish to row `r` of the tile, held in `(lo, hi)`.
    ///
    /// # Safety
    /// The CPU has AVX2 and FMA; `r` is a row of the tile this finish was made for and `cols`
    /// its width.
    #[inline(always)]
    unsafe fn row(&self, r: usize, cols: usize, lo: __m256, hi: __m256) -> (__m256, __m256) {
        use super::math::avx2;
        // SAFETY: AVX2 + FMA, and the residual row holds `cols` values (caller's contract).
        unsafe {
            let (mut lo, mut hi) = (lo, hi);
            if let Some((b0, b1)) = self.bias {
                lo = _mm256_add_ps(lo, b0);
                hi = _mm256_add_ps(hi, b1);
            }
            match self.activation {
                Some(Activation::Gelu) => (lo, hi) = (avx2::gelu(lo), avx2::gelu(hi)),
                Some(Activation::Tanh) => (lo, hi) = (avx2::tanh(lo), avx2::tanh(hi)),
                None => {}
            }
            if let Some((res, ld)) = self.residual {
                let (r0, r1) = padded(res.add(r * ld), cols);
                lo = _mm256_add_ps(lo, r0);
                hi = _mm256_add_ps(hi, r1);
            }
            (lo, hi)
        }
    }
}

/// `cols ≤ NR` floats from `src` in two registers, zero past `cols`.
///
/// # Safety
/// The CPU has AVX2; `src` is valid for `cols` reads.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn padded(src: *const f32, cols: usize) -> (__m256, __m256) {
    // SAFETY: a full panel reads NR values; a partial one goes through a zeroed copy.
    unsafe {
        if cols == NR {
            return (_mm256_loadu_ps(src), _mm256_loadu_ps(src.add(8)));
        }
        let mut tmp = [0.0f32; NR];
        std::ptr::copy_nonoverlapping(src, tmp.as_mut_ptr(), cols);
        (_mm256_loadu_ps(tmp.as_ptr()), _mm256_loadu_ps(tmp.as_ptr().add(8)))
    }
}

/// Whether the packed kernel can run on this CPU.
pub fn available() -> bool {
    cfg!(target_arch = "x86_64") && super::simd::has_avx2_fma()
}

/// `c[rows×cols] (+)= a[rows×kc] · b[kc×NR]` for one tile, then `finish` when given (the tile's
/// last `k` block). `a` has row stride `lda`; `b` is a packed panel block; `c` has row stride
/// `ldc`. Rows past `rows` read the last valid row and are not stored; columns past `cols` are
/// not stored.
///
/// # Safety
/// The CPU has AVX2 and FMA; `a` is valid for `rows` rows of `kc` elements, `b` for `kc × NR`,
/// `c` for `rows` rows of `cols` elements; `finish` was made for this tile.
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
    finish: Option<&TileFinish>,
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
            let (mut lo, mut hi) = (acc[2 * r], acc[2 * r + 1]);
            if accumulate {
                let (c0, c1) = padded(dst, cols);
                lo = _mm256_add_ps(lo, c0);
                hi = _mm256_add_ps(hi, c1);
            }
            if let Some(f) = finish {
                (lo, hi) = f.row(r, cols, lo, hi);
            }
            if cols == NR {
                _mm256_storeu_ps(dst, lo);
                _mm256_storeu_ps(dst.add(8), hi);
            } else {
                let mut tmp = [0.0f32; NR];
                _mm256_storeu_ps(tmp.as_mut_ptr(), lo);
                _mm256_storeu_ps(tmp.as_mut_ptr().add(8), hi);
                std::ptr::copy_nonoverlapping(tmp.as_ptr(), dst, cols);
            }
        }
    }
}

/// `c[m×n]` (row stride `n`) = `ops(a[m×k] · bᵀ)` for rows `r0..r1` and panels `p0..p1`.
///
/// # Safety
/// [`available`] is true; `a` holds `m×k` and `c` `m×n`; concurrent callers pass disjoint row or
/// panel ranges.
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemm_packed(
    a: &[f32],
    b: &PackedB,
    c: *mut f32,
    m: usize,
    rows: std::ops::Range<usize>,
    panels: std::ops::Range<usize>,
    kc: usize,
    ops: &TileOps,
) {
    // SAFETY: forwarded; a dense `a` has row stride k and a dense `c` row stride n.
    unsafe { gemm_packed_strided(a, b.k, b, c, b.n, m, rows, panels, kc, ops) }
}

/// [`gemm_packed`] with explicit row strides: `a` row `r` starts at `a[r * lda]`, `c` row `r` at
/// `c + r * ldc`.
///
/// # Safety
/// As [`gemm_packed`], with `a` holding `(m - 1)·lda + k` elements and `c` valid for `m` rows
/// of `n` at stride `ldc` (the residual keeps row stride `n`).
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
    ops: &TileOps,
) {
    let (n, k) = (b.n, b.k);
    assert!(m == 0 || a.len() >= (m - 1) * lda + k, "packed gemm: lhs too short");
    assert!(rows.end <= m && panels.end <= b.panels(), "packed gemm: ranges");
    assert!(ops.bias.is_none_or(|b| b.len() >= n), "packed gemm: bias too short");
    assert!(ops.residual.is_none_or(|r| r.len() >= m * n), "packed gemm: residual too short");
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
                // SAFETY: bias and residual cover the tile (asserted above); AVX2 (caller's contract).
                let finish = (last && !ops.is_empty()).then(|| unsafe { TileFinish::new(ops, n, r0, col0, cols) });
                // SAFETY: rows r0..r0+r of `a` from column k0 hold `len` elements each; the
                // panel block holds len×NR; the tile of `c` lies inside m×n (caller's contract).
                unsafe {
                    let (a, c) = (a.as_ptr().add(r0 * lda + k0), c.add(r0 * ldc + col0));
                    tile(len, a, lda, bp, c, ldc, r, cols, k0 > 0, finish.as_ref())
                };
                r0 += r;
            }
            k0 += len;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (a, lda, c, ldc, m, rows, panels, kc, ops, n, k);
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
            unsafe { gemm_packed(&a, &packed, c.as_mut_ptr(), m, 0..m, 0..packed.panels(), kc, &TileOps::default()) };
            for i in 0..m {
                for j in 0..n {
                    let want: f32 = (0..k).map(|t| a[i * k + t] * w[j * k + t]).sum();
                    assert_eq!(c[i * n + j], want, "({m},{n},{k}) at ({i},{j})");
                }
            }
        }
    }

    /// The epilogue applied in registers equals the product followed by the scalar epilogue, on
    /// full and partial tiles, with `k` cut into blocks (the epilogue only after the last).
    #[test]
    fn register_epilogue_matches_the_scalar_one() {
        use crate::kernels::math;
        if !available() {
            return;
        }
        for (m, n, k, kc) in [(1, 3, 4, 256), (7, 17, 5, 2), (13, 40, 33, 16), (31, 100, 257, 64)] {
            let a: Vec<f32> = (0..m * k).map(|i| (((i * 37) % 11) as f32 - 5.0) * 0.05).collect();
            let w: Vec<f32> = (0..n * k).map(|i| (((i * 53) % 7) as f32 - 3.0) * 0.05).collect();
            let bias: Vec<f32> = (0..n).map(|j| (j % 5) as f32 * 0.1 - 0.2).collect();
            let residual: Vec<f32> = (0..m * n).map(|i| (i % 13) as f32 * 0.01).collect();
            let packed = PackedB::pack(&w, n, k);
            for activation in [None, Some(Activation::Gelu), Some(Activation::Tanh)] {
                let ops = TileOps { bias: Some(&bias), activation, residual: Some(&residual) };
                let mut c = vec![f32::NAN; m * n];
                unsafe { gemm_packed(&a, &packed, c.as_mut_ptr(), m, 0..m, 0..packed.panels(), kc, &ops) };
                for i in 0..m {
                    for j in 0..n {
                        let x = (0..k).map(|t| a[i * k + t] * w[j * k + t]).sum::<f32>() + bias[j];
                        let x = match activation {
                            Some(Activation::Gelu) => math::gelu(x),
                            Some(Activation::Tanh) => math::tanh(x),
                            None => x,
                        };
                        let want = x + residual[i * n + j];
                        let got = c[i * n + j];
                        assert!(
                            (got - want).abs() <= 1e-5 * want.abs().max(1.0),
                            "{activation:?} ({m},{n},{k}) at ({i},{j}): {got} against {want}"
                        );
                    }
                }
            }
        }
    }
}
