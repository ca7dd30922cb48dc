//! AVX2 dot products for x86-64, chosen at run time when the CPU has AVX2 and FMA.
//!
//! A kernel takes one weight row and up to four activation rows: the weight block is
//! loaded and unpacked once and multiplied into every activation row, which is what
//! makes a batch (or a prompt) cheaper per token than one sequence alone. The arithmetic
//! matches [`super::scalar`] exactly (see there).

use std::arch::x86_64::*;

use super::act::Q8Block;
use super::QuantType;

/// True when this CPU can run the kernels below.
pub(crate) fn available() -> bool {
    is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("fma")
        && is_x86_feature_detected!("f16c")
}

/// For each of the weight rows in `w` (`nb` blocks each) and each activation row `r`:
/// `out[row * acts.len() + r] = w_row · acts[r]`.
///
/// Panics if `w` is not a whole number of rows or an activation row is shorter than `nb`
/// blocks: those checks are what make the unchecked loads inside sound.
pub(crate) fn dot_rows(ty: QuantType, w: &[u8], acts: &[&[Q8Block]], nb: usize, out: &mut [f32]) {
    let row_bytes = nb * ty.block_bytes();
    let m = acts.len();
    assert!(
        available(),
        "AVX2 kernels called on a CPU without AVX2/FMA/F16C"
    );
    assert!(row_bytes > 0 && w.len() % row_bytes == 0);
    assert_eq!(out.len(), w.len() / row_bytes * m);
    assert!(acts.iter().all(|a| a.len() >= nb));
    // SAFETY: the features were detected above, and the lengths checked above bound every
    // load the kernels make (`nb` blocks of each weight row and activation row).
    unsafe { rows(ty, w, acts, nb, out) }
}

/// # Safety
/// The CPU must support AVX2, FMA and F16C; `w` must hold whole rows of `nb` blocks of
/// `ty`, every row of `acts` at least `nb` blocks, and `out` one value per pair.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn rows(ty: QuantType, w: &[u8], acts: &[&[Q8Block]], nb: usize, out: &mut [f32]) {
    let row_bytes = nb * ty.block_bytes();
    let m = acts.len();
    for (wr, o) in w.chunks_exact(row_bytes).zip(out.chunks_exact_mut(m)) {
        let mut r = 0;
        while r < m {
            let take = (m - r).min(4);
            let (a, o) = (&acts[r..r + take], &mut o[r..r + take]);
            match take {
                4 => group::<4>(ty, wr.as_ptr(), a, nb, o),
                3 => group::<3>(ty, wr.as_ptr(), a, nb, o),
                2 => group::<2>(ty, wr.as_ptr(), a, nb, o),
                _ => group::<1>(ty, wr.as_ptr(), a, nb, o),
            }
            r += take;
        }
    }
}

/// One weight row against `R` activation rows.
#[inline(always)]
unsafe fn group<const R: usize>(
    ty: QuantType,
    w: *const u8,
    acts: &[&[Q8Block]],
    nb: usize,
    out: &mut [f32],
) {
    let a: [*const Q8Block; R] = std::array::from_fn(|r| acts[r].as_ptr());
    let res = match ty {
        QuantType::Q4_0 => q4_0::<R>(w, a, nb),
        QuantType::Q4_1 => q4_1::<R>(w, a, nb),
        QuantType::Q8_0 => q8_0::<R>(w, a, nb),
    };
    out[..R].copy_from_slice(&res);
}

/// The f16 at `p` and the one after it, widened (F16C: exact, like the scalar code).
#[inline(always)]
unsafe fn f16_pair(p: *const u8) -> (f32, f32) {
    let v = _mm_cvtph_ps(_mm_cvtsi32_si128((p as *const i32).read_unaligned()));
    (_mm_cvtss_f32(v), _mm_cvtss_f32(_mm_movehdup_ps(v)))
}

/// The f16 at `p`, widened.
#[inline(always)]
unsafe fn f16_half(p: *const u8) -> f32 {
    let h = (p as *const u16).read_unaligned();
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(h as i32)))
}

/// Horizontal sum in the order [`super::scalar::hsum8`] mirrors.
#[inline(always)]
unsafe fn hsum(v: __m256) -> f32 {
    let r = _mm_add_ps(_mm256_extractf128_ps(v, 1), _mm256_castps256_ps128(v));
    let r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    let r = _mm_add_ss(r, _mm_movehdup_ps(r));
    _mm_cvtss_f32(r)
}

/// 16 bytes of nibbles to 32 bytes in `[0, 15]`: low nibbles first, then high.
#[inline(always)]
unsafe fn nibbles(p: *const u8) -> __m256i {
    let raw = _mm_loadu_si128(p as *const __m128i);
    let both = _mm256_set_m128i(_mm_srli_epi16(raw, 4), raw);
    _mm256_and_si256(both, _mm256_set1_epi8(0x0f))
}

/// Lane `i` = sum of `x[j] * y[j]` for `j in 4i..4i+4`, `x` unsigned bytes, as floats.
#[inline(always)]
unsafe fn dot_u8_i8(x: __m256i, y: __m256i) -> __m256 {
    let pairs = _mm256_maddubs_epi16(x, y);
    _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, _mm256_set1_epi16(1)))
}

/// As [`dot_u8_i8`] for signed `x`: moves `x`'s sign onto `y` so `maddubs` sees `|x|`.
#[inline(always)]
unsafe fn dot_i8_i8(x: __m256i, y: __m256i) -> __m256 {
    dot_u8_i8(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x))
}

#[inline(always)]
unsafe fn load_qs(a: *const Q8Block) -> __m256i {
    _mm256_loadu_si256((*a).qs.as_ptr() as *const __m256i)
}

#[inline(always)]
unsafe fn q4_0<const R: usize>(w: *const u8, a: [*const Q8Block; R], nb: usize) -> [f32; R] {
    let mut acc = [_mm256_setzero_ps(); R];
    let eight = _mm256_set1_epi8(8);
    for b in 0..nb {
        let wb = w.add(b * 18);
        let d = f16_half(wb);
        let qx = _mm256_sub_epi8(nibbles(wb.add(2)), eight);
        for r in 0..R {
            let ab = a[r].add(b);
            let xy = dot_i8_i8(qx, load_qs(ab));
            acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(d * (*ab).d), xy, acc[r]);
        }
    }
    std::array::from_fn(|r| hsum(acc[r]))
}

#[inline(always)]
unsafe fn q4_1<const R: usize>(w: *const u8, a: [*const Q8Block; R], nb: usize) -> [f32; R] {
    let mut acc = [_mm256_setzero_ps(); R];
    let mut summs = [0f32; R];
    for b in 0..nb {
        let wb = w.add(b * 20);
        let (d, m) = f16_pair(wb);
        let qx = nibbles(wb.add(4));
        for r in 0..R {
            let ab = a[r].add(b);
            summs[r] += m * (*ab).s;
            let xy = dot_u8_i8(qx, load_qs(ab));
            acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(d * (*ab).d), xy, acc[r]);
        }
    }
    std::array::from_fn(|r| hsum(acc[r]) + summs[r])
}

#[inline(always)]
unsafe fn q8_0<const R: usize>(w: *const u8, a: [*const Q8Block; R], nb: usize) -> [f32; R] {
    let mut acc = [_mm256_setzero_ps(); R];
    for b in 0..nb {
        let wb = w.add(b * 34);
        let d = f16_half(wb);
        let qx = _mm256_loadu_si256(wb.add(2) as *const __m256i);
        for r in 0..R {
            let ab = a[r].add(b);
            let xy = dot_i8_i8(qx, load_qs(ab));
            acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(d * (*ab).d), xy, acc[r]);
        }
    }
    std::array::from_fn(|r| hsum(acc[r]))
}
