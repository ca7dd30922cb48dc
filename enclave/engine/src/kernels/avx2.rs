//! AVX2 dot products for x86-64, chosen at run time when the CPU has AVX2 and FMA.
//!
//! A kernel takes one weight row and up to four activation rows: the weight block is
//! loaded and unpacked once and multiplied into every activation row, which is what
//! makes a batch (or a prompt) cheaper per token than one sequence alone. The arithmetic
//! matches [`super::scalar`] exactly (see there).

use std::arch::x86_64::*;

use super::act::Q8Block;
use super::out::OutRows;
use super::scalar::q4k_scale_min;
use super::QuantType;

/// True when this CPU can run the kernels below.
pub(crate) fn available() -> bool {
    is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("fma")
        && is_x86_feature_detected!("f16c")
}

/// True when this CPU also has AVX-512 VNNI on 256-bit registers (Ice Lake, Zen 4 and
/// later): one `vpdpbusd` then does what `maddubs` + `madd` do, with the same exact
/// integer result, so the VNNI kernels give bit-identical output.
pub(crate) fn vnni_available() -> bool {
    available() && is_x86_feature_detected!("avx512vnni") && is_x86_feature_detected!("avx512vl")
}

/// For each of the weight rows in `w` (`nb` blocks each, as many as `out` has) and each
/// activation row `r`: `out[row, r] = w_row · acts[r]`.
///
/// Panics if `w` is not that many rows or an activation row is shorter than `nb` blocks:
/// those checks are what make the unchecked loads inside sound.
pub(crate) fn dot_rows(
    ty: QuantType,
    w: &[u8],
    acts: &[&[Q8Block]],
    nb: usize,
    out: &mut OutRows,
    vnni: bool,
) {
    let row_bytes = ty.row_bytes(nb);
    let m = acts.len();
    assert!(
        available(),
        "AVX2 kernels called on a CPU without AVX2/FMA/F16C"
    );
    assert!(
        !vnni || vnni_available(),
        "VNNI kernels called on a CPU without AVX512-VNNI/VL"
    );
    assert!(row_bytes > 0 && w.len() == out.rows() * row_bytes && out.m() == m);
    assert!(acts.iter().all(|a| a.len() >= nb));
    // SAFETY: the features were detected above, and the lengths checked above bound every
    // load the kernels make (`nb` blocks of each weight row and activation row).
    unsafe {
        if vnni {
            rows_vnni(ty, w, acts, nb, out)
        } else {
            rows(ty, w, acts, nb, out)
        }
    }
}

/// # Safety
/// The CPU must support AVX2, FMA and F16C; `w` must hold whole rows of `nb` blocks of
/// `ty`, every row of `acts` at least `nb` blocks, and `out` one value per pair.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn rows(ty: QuantType, w: &[u8], acts: &[&[Q8Block]], nb: usize, out: &mut OutRows) {
    // SAFETY: the caller upholds this function's `# Safety` contract (its doc above).
    unsafe { rows_with::<false>(ty, w, acts, nb, out) }
}

/// As [`rows`], with AVX-512 VNNI.
///
/// # Safety
/// As [`rows`], and the CPU must support AVX512-VNNI and AVX512-VL.
#[target_feature(enable = "avx2,fma,f16c,avx512vnni,avx512vl")]
unsafe fn rows_vnni(ty: QuantType, w: &[u8], acts: &[&[Q8Block]], nb: usize, out: &mut OutRows) {
    // SAFETY: the caller upholds this function's `# Safety` contract (its doc above).
    unsafe { rows_with::<true>(ty, w, acts, nb, out) }
}

/// The body of [`rows`] and [`rows_vnni`], inlined into each so that it is compiled with
/// that function's features.
///
/// # Safety
/// As [`rows`] (and [`rows_vnni`] when `V`), into whose features it is inlined.
#[inline(always)]
unsafe fn rows_with<const V: bool>(
    ty: QuantType,
    w: &[u8],
    acts: &[&[Q8Block]],
    nb: usize,
    out: &mut OutRows,
) {
    // SAFETY: the caller upholds this function's `# Safety` contract (its doc above).
    unsafe {
        let row_bytes = ty.row_bytes(nb);
        let m = acts.len();
        for (i, wr) in w.chunks_exact(row_bytes).enumerate() {
            let mut r = 0;
            while r < m {
                let take = (m - r).min(4);
                let a = &acts[r..r + take];
                let mut res = [0f32; 4];
                match take {
                    4 => res = group::<4, V>(ty, wr.as_ptr(), a, nb),
                    3 => res[..3].copy_from_slice(&group::<3, V>(ty, wr.as_ptr(), a, nb)),
                    2 => res[..2].copy_from_slice(&group::<2, V>(ty, wr.as_ptr(), a, nb)),
                    _ => res[..1].copy_from_slice(&group::<1, V>(ty, wr.as_ptr(), a, nb)),
                }
                for (j, &v) in res[..take].iter().enumerate() {
                    out.set(i, r + j, v);
                }
                r += take;
            }
        }
    }
}

/// One weight row against `R` activation rows.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C: call it only from a function compiled with
/// those features (it is inlined into [`rows`] and [`rows_vnni`]) and, when `V`, AVX512-VNNI and AVX512-VL; `w` must point to a weight row of `nb` blocks of `ty`, and every
/// row of `acts` must hold at least `nb` blocks.
#[inline(always)]
unsafe fn group<const R: usize, const V: bool>(
    ty: QuantType,
    w: *const u8,
    acts: &[&[Q8Block]],
    nb: usize,
) -> [f32; R] {
    // SAFETY: the caller upholds this function's `# Safety` contract (its doc above).
    unsafe {
        let a: [*const Q8Block; R] = std::array::from_fn(|r| acts[r].as_ptr());
        match ty {
            QuantType::Q4_0 => q4_0::<R, V>(w, a, nb),
            QuantType::Q4_1 => q4_1::<R, V>(w, a, nb),
            QuantType::Q8_0 => q8_0::<R, V>(w, a, nb),
            QuantType::Q5_0 => q5_0::<R, V>(w, a, nb),
            QuantType::Q4K => q4_k::<R>(w, a, nb),
            QuantType::Q6K => q6_k::<R>(w, a, nb),
        }
    }
}

/// The f16 at `p` and the one after it, widened (F16C: exact, like the scalar code).
///
/// # Safety
/// The CPU must support F16C (see [`rows`]); `p` must point to 4 readable bytes.
#[inline(always)]
unsafe fn f16_pair(p: *const u8) -> (f32, f32) {
    // SAFETY: the caller upholds this function's `# Safety` contract (its doc above).
    unsafe {
        let v = _mm_cvtph_ps(_mm_cvtsi32_si128((p as *const i32).read_unaligned()));
        (_mm_cvtss_f32(v), _mm_cvtss_f32(_mm_movehdup_ps(v)))
    }
}

/// The f16 at `p`, widened.
///
/// # Safety
/// The CPU must support F16C (see [`rows`]); `p` must point to 2 readable bytes.
#[inline(always)]
unsafe fn f16_half(p: *const u8) -> f32 {
    // SAFETY: the caller upholds this function's `# Safety` contract (its doc above).
    unsafe {
        let h = (p as *const u16).read_unaligned();
        _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(h as i32)))
    }
}

/// Horizontal sum in the order [`super::scalar::hsum8`] mirrors.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C: call it only from a function compiled with
/// those features (it is inlined into [`rows`] and [`rows_vnni`]).
#[inline(always)]
unsafe fn hsum(v: __m256) -> f32 {
    // SAFETY: the caller upholds this function's `# Safety` contract (its doc above).
    unsafe {
        let r = _mm_add_ps(_mm256_extractf128_ps(v, 1), _mm256_castps256_ps128(v));
        let r = _mm_add_ps(r, _mm_movehl_ps(r, r));
        let r = _mm_add_ss(r, _mm_movehdup_ps(r));
        _mm_cvtss_f32(r)
    }
}

/// 16 bytes of nibbles to 32 bytes in `[0, 15]`: low nibbles first, then high.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C: call it only from a function compiled with
/// those features (it is inlined into [`rows`] and [`rows_vnni`]); `p` must point to 16 readable bytes.
#[inline(always)]
unsafe fn nibbles(p: *const u8) -> __m256i {
    // SAFETY: the caller upholds this function's `# Safety` contract (its doc above).
    unsafe {
        let raw = _mm_loadu_si128(p as *const __m128i);
        let both = _mm256_set_m128i(_mm_srli_epi16(raw, 4), raw);
        _mm256_and_si256(both, _mm256_set1_epi8(0x0f))
    }
}

/// Lane `i` = sum of `x[j] * y[j]` for `j in 4i..4i+4`, `x` unsigned bytes, as floats.
/// With `V`, one VNNI instruction; otherwise `maddubs` then `madd`. The two agree exactly
/// because `maddubs`'s 16-bit pair sums cannot saturate here: `x <= 128` and `|y| <= 127`
/// (activations are quantised to that range), so a pair is at most 32512 in size.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C: call it only from a function compiled with
/// those features (it is inlined into [`rows`] and [`rows_vnni`]) and, when `V`, AVX512-VNNI and AVX512-VL.
#[inline(always)]
unsafe fn dot_u8_i8<const V: bool>(x: __m256i, y: __m256i) -> __m256 {
    // SAFETY: the caller upholds this function's `# Safety` contract (its doc above).
    unsafe {
        if V {
            _mm256_cvtepi32_ps(_mm256_dpbusd_epi32(_mm256_setzero_si256(), x, y))
        } else {
            let pairs = _mm256_maddubs_epi16(x, y);
            _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, _mm256_set1_epi16(1)))
        }
    }
}

/// As [`dot_u8_i8`] for signed `x`: moves `x`'s sign onto `y` so the unsigned side is `|x|`.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C: call it only from a function compiled with
/// those features (it is inlined into [`rows`] and [`rows_vnni`]) and, when `V`, AVX512-VNNI and AVX512-VL.
#[inline(always)]
unsafe fn dot_i8_i8<const V: bool>(x: __m256i, y: __m256i) -> __m256 {
    // SAFETY: the caller upholds this function's `# Safety` contract (its doc above).
    unsafe { dot_u8_i8::<V>(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x)) }
}

/// # Safety
/// The CPU must support AVX2, FMA and F16C: call it only from a function compiled with
/// those features (it is inlined into [`rows`] and [`rows_vnni`]); `a` must point to a readable activation block.
#[inline(always)]
unsafe fn load_qs(a: *const Q8Block) -> __m256i {
    // SAFETY: the caller upholds this function's `# Safety` contract (its doc above).
    unsafe { _mm256_loadu_si256((*a).qs.as_ptr() as *const __m256i) }
}

/// # Safety
/// The CPU must support AVX2, FMA and F16C: call it only from a function compiled with
/// those features (it is inlined into [`rows`] and [`rows_vnni`]) and, when `V`, AVX512-VNNI and AVX512-VL; `w` must point to `nb` readable Q4_0 blocks and each `a[r]` to `nb` readable
/// activation blocks.
#[inline(always)]
unsafe fn q4_0<const R: usize, const V: bool>(
    w: *const u8,
    a: [*const Q8Block; R],
    nb: usize,
) -> [f32; R] {
    // SAFETY: the caller upholds this function's `# Safety` contract (its doc above).
    unsafe {
        let mut acc = [_mm256_setzero_ps(); R];
        let eight = _mm256_set1_epi8(8);
        for b in 0..nb {
            let wb = w.add(b * 18);
            let d = f16_half(wb);
            let qx = _mm256_sub_epi8(nibbles(wb.add(2)), eight);
            for r in 0..R {
                let ab = a[r].add(b);
                let xy = dot_i8_i8::<V>(qx, load_qs(ab));
                acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(d * (*ab).d), xy, acc[r]);
            }
        }
        std::array::from_fn(|r| hsum(acc[r]))
    }
}

/// # Safety
/// The CPU must support AVX2, FMA and F16C: call it only from a function compiled with
/// those features (it is inlined into [`rows`] and [`rows_vnni`]) and, when `V`, AVX512-VNNI and AVX512-VL; `w` must point to `nb` readable Q4_1 blocks and each `a[r]` to `nb` readable
/// activation blocks.
#[inline(always)]
unsafe fn q4_1<const R: usize, const V: bool>(
    w: *const u8,
    a: [*const Q8Block; R],
    nb: usize,
) -> [f32; R] {
    // SAFETY: the caller upholds this function's `# Safety` contract (its doc above).
    unsafe {
        let mut acc = [_mm256_setzero_ps(); R];
        let mut summs = [0f32; R];
        for b in 0..nb {
            let wb = w.add(b * 20);
            let (d, m) = f16_pair(wb);
            let qx = nibbles(wb.add(4));
            for r in 0..R {
                let ab = a[r].add(b);
                summs[r] += m * (*ab).s;
                let xy = dot_u8_i8::<V>(qx, load_qs(ab));
                acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(d * (*ab).d), xy, acc[r]);
            }
        }
        std::array::from_fn(|r| hsum(acc[r]) + summs[r])
    }
}

/// # Safety
/// The CPU must support AVX2, FMA and F16C: call it only from a function compiled with
/// those features (it is inlined into [`rows`] and [`rows_vnni`]) and, when `V`, AVX512-VNNI and AVX512-VL; `w` must point to `nb` readable Q8_0 blocks and each `a[r]` to `nb` readable
/// activation blocks.
#[inline(always)]
unsafe fn q8_0<const R: usize, const V: bool>(
    w: *const u8,
    a: [*const Q8Block; R],
    nb: usize,
) -> [f32; R] {
    // SAFETY: the caller upholds this function's `# Safety` contract (its doc above).
    unsafe {
        let mut acc = [_mm256_setzero_ps(); R];
        for b in 0..nb {
            let wb = w.add(b * 34);
            let d = f16_half(wb);
            let qx = _mm256_loadu_si256(wb.add(2) as *const __m256i);
            for r in 0..R {
                let ab = a[r].add(b);
                let xy = dot_i8_i8::<V>(qx, load_qs(ab));
                acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(d * (*ab).d), xy, acc[r]);
            }
        }
        std::array::from_fn(|r| hsum(acc[r]))
    }
}

/// 32 bytes, byte `j` all ones when bit `j` of the little-endian word at `p` is set.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C: call it only from a function compiled with
/// those features (it is inlined into [`rows`] and [`rows_vnni`]); `p` must point to 4 readable bytes.
#[inline(always)]
unsafe fn bytes_from_bits(p: *const u8) -> __m256i {
    // SAFETY: the caller upholds this function's `# Safety` contract (its doc above).
    unsafe {
        let word = (p as *const i32).read_unaligned();
        // Byte j of the result gets byte j / 8 of the word ...
        let spread = _mm256_shuffle_epi8(
            _mm256_set1_epi32(word),
            _mm256_set_epi64x(
                0x0303_0303_0303_0303,
                0x0202_0202_0202_0202,
                0x0101_0101_0101_0101,
                0,
            ),
        );
        // ... and every bit but bit j % 8 is set, so it is all ones exactly when that bit is.
        let others = _mm256_set1_epi64x(0x7fbf_dfef_f7fb_fdfe);
        _mm256_cmpeq_epi8(_mm256_or_si256(spread, others), _mm256_set1_epi8(-1))
    }
}

/// Sum of the eight i32 lanes (exact: the callers' sums fit in an i32).
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C: call it only from a function compiled with
/// those features (it is inlined into [`rows`] and [`rows_vnni`]).
#[inline(always)]
unsafe fn hsum_i32(v: __m256i) -> i32 {
    // SAFETY: the caller upholds this function's `# Safety` contract (its doc above).
    unsafe {
        let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01_00_11_10));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01));
        _mm_cvtsi128_si32(s)
    }
}

/// # Safety
/// The CPU must support AVX2, FMA and F16C: call it only from a function compiled with
/// those features (it is inlined into [`rows`] and [`rows_vnni`]) and, when `V`, AVX512-VNNI and AVX512-VL; `w` must point to `nb` readable Q5_0 blocks and each `a[r]` to `nb` readable
/// activation blocks.
#[inline(always)]
unsafe fn q5_0<const R: usize, const V: bool>(
    w: *const u8,
    a: [*const Q8Block; R],
    nb: usize,
) -> [f32; R] {
    // SAFETY: the caller upholds this function's `# Safety` contract (its doc above).
    unsafe {
        let mut acc = [_mm256_setzero_ps(); R];
        let high = _mm256_set1_epi8(0xf0u8 as i8);
        for b in 0..nb {
            let wb = w.add(b * 22);
            let d = f16_half(wb);
            // `q - 16` as a signed byte is the nibble with 0xf0 or'ed in when the fifth bit
            // is clear, and the nibble itself when it is set.
            let clear = _mm256_andnot_si256(bytes_from_bits(wb.add(2)), high);
            let qx = _mm256_or_si256(nibbles(wb.add(6)), clear);
            for r in 0..R {
                let ab = a[r].add(b);
                let xy = dot_i8_i8::<V>(qx, load_qs(ab));
                acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(d * (*ab).d), xy, acc[r]);
            }
        }
        std::array::from_fn(|r| hsum(acc[r]))
    }
}

/// `nb` counts 32-value activation blocks: eight per Q4_K block.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C: call it only from a function compiled with
/// those features (it is inlined into [`rows`] and [`rows_vnni`]); `w` must point to `nb / 8` readable Q4_K blocks and each `a[r]` to
/// `nb` readable activation blocks.
#[inline(always)]
unsafe fn q4_k<const R: usize>(w: *const u8, a: [*const Q8Block; R], nb: usize) -> [f32; R] {
    // SAFETY: the caller upholds this function's `# Safety` contract (its doc above).
    unsafe {
        let (mut acc, mut acc_m) = ([0f32; R], [0f32; R]);
        let m4 = _mm256_set1_epi8(0x0f);
        for b in 0..nb / 8 {
            let wb = w.add(b * 144);
            let (d, dmin) = f16_pair(wb);
            let scales = std::slice::from_raw_parts(wb.add(4), 12);
            let sm: [(i32, i32); 8] = std::array::from_fn(|j| q4k_scale_min(j, scales));
            let sc: [__m256i; 8] = std::array::from_fn(|j| _mm256_set1_epi16(sm[j].0 as i16));
            let mut q = [_mm256_setzero_si256(); 8];
            for c in 0..4 {
                let bits = _mm256_loadu_si256(wb.add(16 + 32 * c) as *const __m256i);
                q[2 * c] = _mm256_and_si256(bits, m4);
                q[2 * c + 1] = _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4);
            }
            for r in 0..R {
                let ab = a[r].add(8 * b);
                let mut sumi = _mm256_setzero_si256();
                let mut isum_m = 0i32;
                for j in 0..8 {
                    // |pair sums| <= 2 * 15 * 127: no saturation.
                    let p = _mm256_maddubs_epi16(q[j], load_qs(ab.add(j)));
                    sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, sc[j]));
                    isum_m += sm[j].1 * (*ab.add(j)).s as i32;
                }
                let d8 = (*ab).d;
                acc[r] = (d8 * d).mul_add(hsum_i32(sumi) as f32, acc[r]);
                acc_m[r] = (d8 * dmin).mul_add(isum_m as f32, acc_m[r]);
            }
        }
        std::array::from_fn(|r| acc[r] - acc_m[r])
    }
}

/// `nb` counts 32-value activation blocks: eight per Q6_K block.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C: call it only from a function compiled with
/// those features (it is inlined into [`rows`] and [`rows_vnni`]); `w` must point to `nb / 8` readable Q6_K blocks and each `a[r]` to
/// `nb` readable activation blocks.
#[inline(always)]
unsafe fn q6_k<const R: usize>(w: *const u8, a: [*const Q8Block; R], nb: usize) -> [f32; R] {
    // SAFETY: the caller upholds this function's `# Safety` contract (its doc above).
    unsafe {
        let mut acc = [0f32; R];
        let (m4, m3, m32) = (
            _mm256_set1_epi8(0x0f),
            _mm256_set1_epi8(3),
            _mm256_set1_epi8(32),
        );
        for b in 0..nb / 8 {
            let wb = w.add(b * 210);
            let d = f16_half(wb.add(208));
            // Values 32v..32v+32 (unsigned, `q + 32`), as the scalar `q6k_values` orders them.
            let mut q = [_mm256_setzero_si256(); 8];
            for n in 0..2 {
                let l1 = _mm256_loadu_si256(wb.add(64 * n) as *const __m256i);
                let l2 = _mm256_loadu_si256(wb.add(64 * n + 32) as *const __m256i);
                let h = _mm256_loadu_si256(wb.add(128 + 32 * n) as *const __m256i);
                let hi = |s: i32| -> __m256i {
                    let bits = match s {
                        0 => h,
                        2 => _mm256_srli_epi16(h, 2),
                        4 => _mm256_srli_epi16(h, 4),
                        _ => _mm256_srli_epi16(h, 6),
                    };
                    _mm256_slli_epi16(_mm256_and_si256(bits, m3), 4)
                };
                q[4 * n] = _mm256_or_si256(_mm256_and_si256(l1, m4), hi(0));
                q[4 * n + 1] = _mm256_or_si256(_mm256_and_si256(l2, m4), hi(2));
                let l1h = _mm256_and_si256(_mm256_srli_epi16(l1, 4), m4);
                let l2h = _mm256_and_si256(_mm256_srli_epi16(l2, 4), m4);
                q[4 * n + 2] = _mm256_or_si256(l1h, hi(4));
                q[4 * n + 3] = _mm256_or_si256(l2h, hi(6));
            }
            // One scale per 16 values: the low half of vector v takes scale 2v, the high 2v+1.
            let sc: [__m256i; 8] = std::array::from_fn(|v| {
                let s = |g: usize| _mm_set1_epi16(*(wb.add(192 + g) as *const i8) as i16);
                _mm256_set_m128i(s(2 * v + 1), s(2 * v))
            });
            for r in 0..R {
                let ab = a[r].add(8 * b);
                let mut sumi = _mm256_setzero_si256();
                for v in 0..8 {
                    let y = load_qs(ab.add(v));
                    // (q + 32)·y - 32·y, pairwise: at most 2 * 63 * 127 + 2 * 32 * 127 in size.
                    let p = _mm256_sub_epi16(
                        _mm256_maddubs_epi16(q[v], y),
                        _mm256_maddubs_epi16(m32, y),
                    );
                    sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, sc[v]));
                }
                acc[r] = ((*ab).d * d).mul_add(hsum_i32(sumi) as f32, acc[r]);
            }
        }
        acc
    }
}
