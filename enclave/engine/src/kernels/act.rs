//! Quantising activations, one row at a time, the way llama.cpp's x86 build does.
//!
//! Every weight format is multiplied against activations turned into 8-bit blocks first,
//! so the inner loops are integer dot products. The rounding here follows llama.cpp's
//! AVX2 `quantize_row_q8_0`/`quantize_row_q8_1` (scale `max/127`, multiplier `127/max`,
//! round half to even, scales stored as f16) so that logits stay bit-close to its.

use super::f16::round_f16;

/// Elements in a Q8_0/Q8_1 block.
pub(crate) const QK: usize = 32;

/// 1.5 * 2^23: adding it leaves no fraction bits (see [`quantize_row`]).
const ROUND_MAGIC: f32 = 12_582_912.0;

/// One quantised block of 32 activations.
///
/// Unlike GGML's `block_q8_1` the scales are kept as f32 — already rounded through f16,
/// so the numbers are the same — to spare the inner loops a conversion.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C, align(8))]
pub(crate) struct Q8Block {
    /// Scale: element `i` is `d * qs[i]`.
    pub d: f32,
    /// `d * sum(qs)` (Q8_1 only; zero for Q8_0), used by the formats with an offset.
    pub s: f32,
    /// The quantised values, in `[-127, 127]`.
    pub qs: [i8; QK],
    /// `sum(qs)`, exact (every format): the tiled kernels fold weight offsets into it.
    pub isum: i32,
}

/// Which activation format a weight format multiplies against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ActFormat {
    /// Scale only (for Q4_0 and Q8_0 weights).
    Q8_0,
    /// Scale and block sum (for Q4_1 weights, whose offset multiplies the sum).
    Q8_1,
    /// llama.cpp's Q8_K (for the K-quants): one f32 scale per 256 values, shared by the
    /// eight 32-value blocks it is stored as here, and `s` the integer sum of each block's
    /// values (what `bsums` hold, two at a time).
    Q8K,
}

/// Values in a Q8_K super-block.
pub(crate) const QK_K: usize = 256;

/// Quantises `x` (a multiple of 32 long) into `out` (`x.len() / 32` blocks).
pub(crate) fn quantize_row(x: &[f32], out: &mut [Q8Block], fmt: ActFormat) {
    debug_assert_eq!(x.len(), out.len() * QK);
    if fmt == ActFormat::Q8K {
        return quantize_row_q8k(x, out);
    }
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 was just detected; the lengths are checked inside.
        return unsafe { avx2::quantize_row(x, out, fmt) };
    }
    for (xs, b) in x.chunks_exact(QK).zip(out.iter_mut()) {
        scalar_block(xs, b, fmt);
    }
}

/// One block of [`quantize_row`] (Q8_0 or Q8_1), the portable way.
fn scalar_block(xs: &[f32], b: &mut Q8Block, fmt: ActFormat) {
    let amax = xs.iter().fold(0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    // llama.cpp multiplies by 127/max rather than by 1/d; the two differ in the last
    // bit often enough to change a rounding, so do the same.
    let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
    let mut sum = 0i32;
    for (q, &v) in b.qs.iter_mut().zip(xs) {
        // Round half to even by adding and removing 1.5 * 2^23: the sum has no bits
        // below the units, so the FPU's default rounding does the work (the same as
        // `round_ties_even`, which compiles to a libm call without SSE4.1). Exact for
        // |v * id| <= 127.5, which holds since |v| <= amax.
        let r = ((v * id + ROUND_MAGIC) - ROUND_MAGIC) as i32;
        *q = r as i8;
        sum += r;
    }
    b.set_scales(d, sum, fmt);
}

impl Q8Block {
    /// Stores a Q8_0/Q8_1 block's scale `d` (rounded through f16) and its values' sum
    /// `sum`, and for Q8_1 `d * sum` (rounded the same way).
    fn set_scales(&mut self, d: f32, sum: i32, fmt: ActFormat) {
        self.d = round_f16(d);
        self.isum = sum;
        self.s = match fmt {
            ActFormat::Q8_1 => round_f16(d * sum as f32),
            ActFormat::Q8_0 | ActFormat::Q8K => 0.0,
        };
    }
}

/// The same arithmetic on eight values at a time: the same products, sums and maximum,
/// so the same bits; a decode step quantises tens of thousands of values serially.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{ActFormat, Q8Block, QK, ROUND_MAGIC};

    /// # Safety
    /// The CPU must have AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn quantize_row(x: &[f32], out: &mut [Q8Block], fmt: ActFormat) {
        // SAFETY: the caller upholds this function's `# Safety` contract (its doc above).
        unsafe {
            assert_eq!(x.len(), out.len() * QK);
            let (sign, magic) = (_mm256_set1_ps(-0.0), _mm256_set1_ps(ROUND_MAGIC));
            for (xs, b) in x.chunks_exact(QK).zip(out.iter_mut()) {
                let p = xs.as_ptr();
                // (No closures: they would not get this function's target features.)
                let v = [
                    _mm256_loadu_ps(p),
                    _mm256_loadu_ps(p.add(8)),
                    _mm256_loadu_ps(p.add(16)),
                    _mm256_loadu_ps(p.add(24)),
                ];
                // `f32::max` ignores a NaN argument; `max_ps` returns its second operand when
                // either is NaN, so the running maximum goes second.
                let mut m = _mm256_setzero_ps();
                for vi in v {
                    m = _mm256_max_ps(_mm256_andnot_ps(sign, vi), m);
                }
                let h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
                let h = _mm_max_ps(h, _mm_movehl_ps(h, h));
                let amax = _mm_cvtss_f32(_mm_max_ss(h, _mm_movehdup_ps(h)));
                let d = amax / 127.0;
                let id = _mm256_set1_ps(if amax != 0.0 { 127.0 / amax } else { 0.0 });
                let mut q = [_mm256_setzero_si256(); 4];
                let mut sums = _mm256_setzero_si256();
                // Finite values round into [-127, 127] already; the clamp is for a NaN (or a
                // block so small that `127 / max` overflows), which converts to i32::MIN:
                // it keeps every value within the range the SIMD products rely on (-128
                // would break their sign trick) and the sum equal to the stored values'.
                let (lo, hi) = (_mm256_set1_epi32(-127), _mm256_set1_epi32(127));
                for (qi, vi) in q.iter_mut().zip(v) {
                    let r = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(vi, id), magic), magic);
                    *qi = _mm256_max_epi32(_mm256_min_epi32(_mm256_cvttps_epi32(r), hi), lo);
                    sums = _mm256_add_epi32(sums, *qi);
                }
                // Packing works within 128-bit halves: put the groups of four back in order.
                let bytes = _mm256_packs_epi16(
                    _mm256_packs_epi32(q[0], q[1]),
                    _mm256_packs_epi32(q[2], q[3]),
                );
                let bytes =
                    _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
                _mm256_storeu_si256(b.qs.as_mut_ptr() as *mut __m256i, bytes);
                let s = _mm_add_epi32(
                    _mm256_castsi256_si128(sums),
                    _mm256_extracti128_si256(sums, 1),
                );
                let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01_00_11_10));
                let sum = _mm_cvtsi128_si32(_mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01)));
                b.set_scales(d, sum, fmt);
            }
        }
    }
}

/// llama.cpp's `quantize_row_q8_K` (the reference, which its x86 build uses): the scale is
/// `-127 / max` where `max` is the first value of largest magnitude, rounding to nearest
/// even, and the stored scale is the reciprocal of that multiplier, in f32.
fn quantize_row_q8k(x: &[f32], out: &mut [Q8Block]) {
    debug_assert_eq!(x.len() % QK_K, 0);
    for (xs, bs) in x.chunks_exact(QK_K).zip(out.chunks_exact_mut(QK_K / QK)) {
        let (mut amax, mut max) = (0f32, 0f32);
        for &v in xs {
            if v.abs() > amax {
                amax = v.abs();
                max = v;
            }
        }
        if amax == 0.0 {
            bs.fill(Q8Block::default());
            continue;
        }
        let iscale = -127.0 / max;
        let d = 1.0 / iscale;
        for (xb, b) in xs.chunks_exact(QK).zip(bs.iter_mut()) {
            let mut sum = 0i32;
            for (q, &v) in b.qs.iter_mut().zip(xb) {
                // The same magic-number rounding as above (llama.cpp's `nearest_int`).
                let r = (((iscale * v + ROUND_MAGIC) - ROUND_MAGIC) as i32).min(127);
                *q = r as i8;
                sum += r;
            }
            b.d = d;
            b.s = sum as f32;
            b.isum = sum;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The AVX2 path against the scalar loop, on values with ties, zeros and extremes.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn simd_quantises_like_the_scalar_loop() {
        if !is_x86_feature_detected!("avx2") {
            return;
        }
        let mut x: Vec<f32> = (0..32 * 40)
            .map(|i| ((i as f32) * 0.731).sin() * (1 + i % 7) as f32)
            .collect();
        x[..32].fill(0.0);
        x[40] = -1e30;
        x[64..96]
            .iter_mut()
            .enumerate()
            .for_each(|(i, v)| *v = i as f32 - 15.5);
        for fmt in [ActFormat::Q8_0, ActFormat::Q8_1] {
            let mut simd = vec![Q8Block::default(); 40];
            // SAFETY: AVX2 was detected above.
            unsafe { avx2::quantize_row(&x, &mut simd, fmt) };
            let mut scalar = vec![Q8Block::default(); 40];
            for (xs, b) in x.chunks(QK).zip(scalar.chunks_mut(1)) {
                scalar_block(xs, &mut b[0], fmt);
            }
            for (a, b) in simd.iter().zip(&scalar) {
                assert_eq!((a.qs, a.isum), (b.qs, b.isum));
                assert_eq!(
                    (a.d.to_bits(), a.s.to_bits()),
                    (b.d.to_bits(), b.s.to_bits())
                );
            }
        }
    }

    /// A NaN, and a block so small that `127 / max` overflows, stay within [-127, 127] on
    /// the AVX2 path, with the sum of what is stored: the SIMD products rely on both.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn simd_values_stay_in_range_for_non_finite_rows() {
        if !is_x86_feature_detected!("avx2") {
            return;
        }
        let mut x = vec![1.0f32; 64];
        x[5] = f32::NAN;
        x[32..].fill(1e-38);
        x[33] = -1e-38;
        for fmt in [ActFormat::Q8_0, ActFormat::Q8_1] {
            let mut b = vec![Q8Block::default(); 2];
            // SAFETY: AVX2 was detected above.
            unsafe { avx2::quantize_row(&x, &mut b, fmt) };
            for b in &b {
                assert!(b.qs.iter().all(|&q| q >= -127), "{:?}", b.qs);
                assert_eq!(b.isum, b.qs.iter().map(|&q| q as i32).sum::<i32>());
            }
        }
    }

    #[test]
    fn zero_row_quantises_to_zero() {
        let mut b = [Q8Block::default(); 1];
        quantize_row(&[0.0; 32], &mut b, ActFormat::Q8_1);
        assert_eq!(b[0].d, 0.0);
        assert_eq!(b[0].s, 0.0);
        assert!(b[0].qs.iter().all(|&q| q == 0));
    }

    #[test]
    fn extremes_map_to_127_and_ties_go_to_even() {
        let mut x = [0f32; 32];
        x[0] = 127.0;
        x[1] = -127.0;
        x[2] = 2.5; // exactly halfway: llama.cpp's _mm256_round_ps gives 2
        x[3] = 3.5; // gives 4
        let mut b = [Q8Block::default(); 1];
        quantize_row(&x, &mut b, ActFormat::Q8_1);
        assert_eq!(&b[0].qs[..4], &[127, -127, 2, 4]);
        assert_eq!(b[0].d, 1.0);
        assert_eq!(b[0].s, 6.0);
        assert_eq!(b[0].isum, 6);
    }

    #[test]
    fn q8k_scales_by_the_signed_maximum() {
        let mut x = [0f32; QK_K];
        x[3] = 0.5;
        x[100] = -2.0; // the largest magnitude: the multiplier is -127 / -2
        x[200] = 1.0;
        let mut b = [Q8Block::default(); QK_K / QK];
        quantize_row(&x, &mut b, ActFormat::Q8K);
        let iscale = -127.0f32 / -2.0;
        assert!(b.iter().all(|b| b.d == 1.0 / iscale));
        assert_eq!(b[0].qs[3], 32); // 31.75
        assert_eq!(b[3].qs[4], -127);
        assert_eq!(b[6].qs[8], 64); // 63.5: ties go to even
        assert_eq!(
            b.iter().map(|b| b.s).collect::<Vec<_>>(),
            [32.0, 0.0, 0.0, -127.0, 0.0, 0.0, 64.0, 0.0]
        );
    }
}
