//! AVX2 products over tiled K-quant weights ([`super::tiles_k`]).
//!
//! As [`super::tiles_avx2`]: a 256-bit register holds half a group (eight rows, one per
//! 32-bit lane), a tile block is worked through in two halves, and each unpacked group of
//! weights is multiplied into up to [`GROUP`] activation rows with a broadcast and a
//! `maddubs`. A 256-value block is too big to keep unpacked in registers, so the work goes
//! sub-block by sub-block (32 values; Q6_K: two scale groups of 16): the sub-block's
//! 16-bit sums are multiplied by the eight rows' scales with one `madd`, and the block's
//! 32-bit sums are converted once. Q4_K's minimums are folded in as llama.cpp does, as
//! the integer `Σ_j m_j · Σ y` (one `madd` per two sub-blocks and eight rows).
//!
//! Results equal the row kernels' ([`super::scalar::dot_q4_k`], [`super::scalar::dot_q6_k`],
//! and so [`super::tiles_k::dot_tiles`]) bit for bit: each block's integer sums are the
//! same exact integers (the bounds are at [`q4_k`] and [`q6_k`]), and the float steps are
//! theirs, in their order: `acc = fma(d_a * d_w, isum, acc)` per block (and for Q4_K
//! `acc_m = fma(d_a * dmin_w, isum_m, acc_m)`, the result `acc - acc_m`).

use std::arch::x86_64::*;

use super::act::Q8Block;
use super::out::OutRows;
use super::tiles::{GROUP_BYTES, TILE};
use super::tiles_k::{
    assert_kernel_shape, tile_block_bytes, tile_bytes, Q4K_BYTES, Q4K_D, Q4K_DMIN, Q4K_MIN, Q4K_QS,
    Q4K_SC, Q6K_BYTES, Q6K_D, Q6K_QH, Q6K_QL, Q6K_SC, SUB,
};
use super::QuantType;

/// Activation rows multiplied per pass over a tile (as [`super::tiles_avx2`]).
const GROUP: usize = 4;

/// Rows in half a tile: the 32-bit lanes of a 256-bit register.
const HALF: usize = TILE / 2;

/// `out[row, r] = w_row · acts[r]`, as [`super::tiles_k::dot_tiles`].
///
/// Panics if the CPU lacks AVX2/FMA/F16C, `ty` is not a K-quant, `tiles` is not whole
/// tiles of `nb` activation blocks, `out` holds more rows than the tiles or an activation
/// row is shorter than `nb` blocks: those checks are what make the unchecked loads sound.
pub(crate) fn dot_tiles(
    ty: QuantType,
    tiles: &[u8],
    acts: &[&[Q8Block]],
    nb: usize,
    out: &mut OutRows,
) {
    assert!(
        super::tiles_avx2::available(),
        "AVX2 tile kernels called on a CPU without AVX2/FMA/F16C"
    );
    assert_kernel_shape(ty, tiles, acts, nb, out);
    // SAFETY: the features were detected above, and the lengths checked above bound every
    // load (`nb / 8` tile blocks of each tile, `nb` blocks of each activation row).
    unsafe { tiles_impl(ty, tiles, acts, nb, out) }
}

/// # Safety
/// As [`dot_tiles`] after its checks.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn tiles_impl(
    ty: QuantType,
    tiles: &[u8],
    acts: &[&[Q8Block]],
    nb: usize,
    out: &mut OutRows,
) {
    // SAFETY: the caller upholds this function's `# Safety` contract (its doc above).
    unsafe {
        let (m, rows) = (acts.len(), out.rows());
        for (t, tile) in tiles.chunks_exact(tile_bytes(ty, nb)).enumerate() {
            let first = t * TILE;
            if first >= rows {
                break;
            }
            let valid = (rows - first).min(TILE);
            let mut r = 0;
            while r < m {
                let take = (m - r).min(GROUP);
                let a = &acts[r..r + take];
                let mut res = [[_mm256_setzero_ps(); 2]; GROUP];
                let p = tile.as_ptr();
                match take {
                    4 => res = group::<4>(ty, p, a, nb),
                    3 => res[..3].copy_from_slice(&group::<3>(ty, p, a, nb)),
                    2 => res[..2].copy_from_slice(&group::<2>(ty, p, a, nb)),
                    _ => res[..1].copy_from_slice(&group::<1>(ty, p, a, nb)),
                }
                for (j, [lo, hi]) in res[..take].iter().enumerate() {
                    let mut lanes = [0f32; TILE];
                    _mm256_storeu_ps(lanes.as_mut_ptr(), *lo);
                    _mm256_storeu_ps(lanes.as_mut_ptr().add(HALF), *hi);
                    out.set_run(first, r + j, &lanes[..valid]);
                }
                r += take;
            }
        }
    }
}

/// # Safety
/// Called only from [`tiles_impl`] (its CPU features); `tile` must point to a tile of
/// `nb / 8` blocks of `ty`, and every row of `acts` must hold at least `nb` blocks.
#[inline(always)]
unsafe fn group<const R: usize>(
    ty: QuantType,
    tile: *const u8,
    acts: &[&[Q8Block]],
    nb: usize,
) -> [[__m256; 2]; R] {
    // SAFETY: the caller upholds this function's `# Safety` contract (its doc above).
    unsafe {
        let a: [*const Q8Block; R] = std::array::from_fn(|r| acts[r].as_ptr());
        match ty {
            QuantType::Q6K => q6_k::<R>(tile, a, nb / SUB),
            _ => q4_k::<R>(tile, a, nb / SUB),
        }
    }
}

/// The eight f16 values at `p`, widened (exact).
///
/// # Safety
/// Called only from [`tiles_impl`] (its CPU features); `p` must point to 16 readable bytes.
#[inline(always)]
unsafe fn f16x8(p: *const u8) -> __m256 {
    // SAFETY: the caller upholds this function's `# Safety` contract (its doc above).
    unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i)) }
}

/// 32 bytes at `p`.
///
/// # Safety
/// Called only from [`tiles_impl`] (its CPU features); `p` must point to 32 readable bytes.
#[inline(always)]
unsafe fn load(p: *const u8) -> __m256i {
    // SAFETY: the caller upholds this function's `# Safety` contract (its doc above).
    unsafe { _mm256_loadu_si256(p as *const __m256i) }
}

/// Activation values `4k..4k + 4` at `y`, in every 32-bit lane.
///
/// # Safety
/// Called only from [`tiles_impl`] (its CPU features); `y` must point to `4k + 4`
/// readable bytes.
#[inline(always)]
unsafe fn bcast(y: *const i32, k: usize) -> __m256i {
    // SAFETY: the caller upholds this function's `# Safety` contract (its doc above).
    unsafe { _mm256_set1_epi32(y.add(k).read_unaligned()) }
}

/// The eight row scales at `p` (u8 when `SIGNED` is false, else i8), each in both 16-bit
/// halves of its row's lane: the second operand of a `madd` that scales a lane's two
/// 16-bit partial sums.
///
/// # Safety
/// Called only from [`tiles_impl`] (its CPU features); `p` must point to 8 readable bytes.
#[inline(always)]
unsafe fn scale_pairs<const SIGNED: bool>(p: *const u8) -> __m256i {
    // SAFETY: the caller upholds this function's `# Safety` contract (its doc above).
    unsafe {
        let b = _mm_loadl_epi64(p as *const __m128i);
        let s = if SIGNED {
            _mm256_cvtepi8_epi32(b)
        } else {
            _mm256_cvtepu8_epi32(b)
        };
        let lo = _mm256_and_si256(s, _mm256_set1_epi32(0xffff));
        _mm256_or_si256(lo, _mm256_slli_epi32(s, 16))
    }
}

/// Asks for the tile block after the one at `tb` (`bb` bytes): the next one the loop
/// reads, about as far ahead in bytes as [`super::tiles::prefetch_ahead`] looks.
///
/// # Safety
/// Any `tb` is allowed: the address is only a prefetch hint, never dereferenced.
#[inline(always)]
unsafe fn prefetch_next(tb: *const u8, bb: usize) {
    let mut line = 0;
    while line < bb {
        // SAFETY: a prefetch is a hint and never faults, whatever the address.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(tb.wrapping_add(bb + line) as *const i8) };
        line += 64;
    }
}

/// A Q4_K tile's `blocks` blocks against `R` activation rows. Lane `i` of result
/// `[r][h]` is row `8h + i` against activation row `r`.
///
/// Why the integer sums are exact. Q8_K activations are in `[-127, 127]` (the quantiser,
/// [`super::act`], scales by `-127 / max` and clamps at 127), nibbles in `[0, 15]`: a
/// `maddubs` lane is at most `2·15·127 = 3810` in size, and a sub-block's eight add up to
/// at most 30480 < 32767 in 16 bits. The `madd` by the scale (≤ 63) and the sum over the
/// block's eight sub-blocks stay far inside i32 (`256·15·127·63` < 2³¹). The minimums'
/// term pairs two sub-blocks' sums of activations (each `|Σ y| ≤ 32·127 = 4064`, an i16)
/// with two minimums (≤ 63) in a `madd`. Both are the integers the row kernel forms.
///
/// # Safety
/// Called only from [`tiles_impl`] (its CPU features); `t` must point to `blocks` Q4_K
/// tile blocks, and each `a[r]` to `8 · blocks` readable activation blocks.
#[inline(always)]
unsafe fn q4_k<const R: usize>(
    t: *const u8,
    a: [*const Q8Block; R],
    blocks: usize,
) -> [[__m256; 2]; R] {
    // SAFETY: the caller upholds this function's `# Safety` contract (its doc above).
    unsafe {
        const { assert!(tile_block_bytes(QuantType::Q4K) == Q4K_BYTES) };
        let m4 = _mm256_set1_epi8(0x0f);
        let mut acc = [[_mm256_setzero_ps(); 2]; R];
        let mut acc_m = [[_mm256_setzero_ps(); 2]; R];
        for b in 0..blocks {
            let tb = t.add(b * Q4K_BYTES);
            prefetch_next(tb, Q4K_BYTES);
            #[allow(clippy::needless_range_loop)]
            for h in 0..2 {
                let mut isum = [_mm256_setzero_si256(); R];
                for j in 0..8 {
                    let sc = scale_pairs::<false>(tb.add(Q4K_SC + HALF * (8 * h + j)));
                    // Sub-block j: nibbles (low for even j) of groups 8(j / 2)..+8.
                    let mut wq = [_mm256_setzero_si256(); 8];
                    for (p, w) in wq.iter_mut().enumerate() {
                        let v = load(tb.add(Q4K_QS + GROUP_BYTES * (8 * (j / 2) + p) + 32 * h));
                        let v = if j % 2 == 0 {
                            v
                        } else {
                            _mm256_srli_epi16(v, 4)
                        };
                        *w = _mm256_and_si256(v, m4);
                    }
                    for r in 0..R {
                        let y = (*a[r].add(SUB * b + j)).qs.as_ptr() as *const i32;
                        // Two chains of 16-bit sums, so they overlap.
                        let mut s = [_mm256_setzero_si256(); 2];
                        for (p, w) in wq.iter().enumerate() {
                            let d = _mm256_maddubs_epi16(*w, bcast(y, p));
                            s[p % 2] = _mm256_add_epi16(s[p % 2], d);
                        }
                        let s = _mm256_madd_epi16(_mm256_add_epi16(s[0], s[1]), sc);
                        isum[r] = _mm256_add_epi32(isum[r], s);
                    }
                }
                let dw = f16x8(tb.add(Q4K_D + 2 * HALF * h));
                let dmw = f16x8(tb.add(Q4K_DMIN + 2 * HALF * h));
                let mins: [__m256i; 4] = std::array::from_fn(|p| {
                    let at = tb.add(Q4K_MIN + 2 * HALF * (4 * h + p));
                    _mm256_cvtepu8_epi16(_mm_loadu_si128(at as *const __m128i))
                });
                for r in 0..R {
                    let ab = a[r].add(SUB * b);
                    let mut im = _mm256_setzero_si256();
                    for (p, mn) in mins.iter().enumerate() {
                        // Two sub-blocks' sums of activations, one per 16-bit half.
                        let lo = (*ab.add(2 * p)).isum as u16 as u32;
                        let hi = (*ab.add(2 * p + 1)).isum as u16 as u32;
                        let ys = _mm256_set1_epi32((lo | hi << 16) as i32);
                        im = _mm256_add_epi32(im, _mm256_madd_epi16(*mn, ys));
                    }
                    let d8 = _mm256_set1_ps((*ab).d);
                    let (sd, sm) = (_mm256_mul_ps(d8, dw), _mm256_mul_ps(d8, dmw));
                    acc[r][h] = _mm256_fmadd_ps(sd, _mm256_cvtepi32_ps(isum[r]), acc[r][h]);
                    acc_m[r][h] = _mm256_fmadd_ps(sm, _mm256_cvtepi32_ps(im), acc_m[r][h]);
                }
            }
        }
        std::array::from_fn(|r| {
            [
                _mm256_sub_ps(acc[r][0], acc_m[r][0]),
                _mm256_sub_ps(acc[r][1], acc_m[r][1]),
            ]
        })
    }
}

/// A Q6_K tile's `blocks` blocks against `R` activation rows. Lane `i` of result `[r][h]`
/// is row `8h + i` against activation row `r`.
///
/// Why the integer sums are exact. The values `q = u - 32` are in `[-32, 31]`;
/// llama.cpp's sign trick multiplies `|q|` (≤ 32, unsigned) by `y` with `q`'s sign
/// (`|y| ≤ 127`, so negating it is exact): a `maddubs` lane is at most `2·32·127 = 8128`
/// in size, and the four of a scale group (16 values) add up to at most 32512 < 32767 in
/// 16 bits. The `madd` by the signed scale (`|s| ≤ 128`) and the block's sum stay inside
/// i32 (`256·32·127·128` < 2³¹): the integer the row kernel forms.
///
/// # Safety
/// Called only from [`tiles_impl`] (its CPU features); `t` must point to `blocks` Q6_K
/// tile blocks, and each `a[r]` to `8 · blocks` readable activation blocks.
#[inline(always)]
unsafe fn q6_k<const R: usize>(
    t: *const u8,
    a: [*const Q8Block; R],
    blocks: usize,
) -> [[__m256; 2]; R] {
    // SAFETY: the caller upholds this function's `# Safety` contract (its doc above).
    unsafe {
        const { assert!(tile_block_bytes(QuantType::Q6K) == Q6K_BYTES) };
        let (m4, m30, m32) = (
            _mm256_set1_epi8(0x0f),
            _mm256_set1_epi8(0x30),
            _mm256_set1_epi8(32),
        );
        let mut acc = [[_mm256_setzero_ps(); 2]; R];
        for b in 0..blocks {
            let tb = t.add(b * Q6K_BYTES);
            prefetch_next(tb, Q6K_BYTES);
            #[allow(clippy::needless_range_loop)]
            for h in 0..2 {
                let mut isum = [_mm256_setzero_si256(); R];
                for j in 0..8 {
                    let (n, s) = (j / 4, j % 4);
                    // Scale groups 2j (values 0..16: groups of four 0..4) and 2j + 1.
                    for half in 0..2 {
                        let g = 2 * j + half;
                        let sc = scale_pairs::<true>(tb.add(Q6K_SC + HALF * (16 * h + g)));
                        let mut wabs = [_mm256_setzero_si256(); 4];
                        let mut wq = [_mm256_setzero_si256(); 4];
                        for k in 0..4 {
                            let p = 4 * half + k;
                            let ql = GROUP_BYTES * (16 * n + 8 * (s % 2) + p) + 32 * h;
                            let v = load(tb.add(Q6K_QL + ql));
                            let lo = if s < 2 { v } else { _mm256_srli_epi16(v, 4) };
                            let lo = _mm256_and_si256(lo, m4);
                            // Bits 2s..2s + 2 of the high-bit byte, moved to bits 4..6 (a
                            // 16-bit shift; what it carries across bytes is masked off).
                            let hb = load(tb.add(Q6K_QH + GROUP_BYTES * (8 * n + p) + 32 * h));
                            let hb = match s {
                                0 => _mm256_slli_epi16(hb, 4),
                                1 => _mm256_slli_epi16(hb, 2),
                                2 => hb,
                                _ => _mm256_srli_epi16(hb, 2),
                            };
                            let u = _mm256_or_si256(lo, _mm256_and_si256(hb, m30));
                            wq[k] = _mm256_sub_epi8(u, m32);
                            wabs[k] = _mm256_abs_epi8(wq[k]);
                        }
                        for r in 0..R {
                            let y = (*a[r].add(SUB * b + j)).qs.as_ptr() as *const i32;
                            let mut s16 = _mm256_setzero_si256();
                            for k in 0..4 {
                                let ys = _mm256_sign_epi8(bcast(y, 4 * half + k), wq[k]);
                                s16 = _mm256_add_epi16(s16, _mm256_maddubs_epi16(wabs[k], ys));
                            }
                            isum[r] = _mm256_add_epi32(isum[r], _mm256_madd_epi16(s16, sc));
                        }
                    }
                }
                let dw = f16x8(tb.add(Q6K_D + 2 * HALF * h));
                for r in 0..R {
                    let d8 = _mm256_set1_ps((*a[r].add(SUB * b)).d);
                    let sd = _mm256_mul_ps(d8, dw);
                    acc[r][h] = _mm256_fmadd_ps(sd, _mm256_cvtepi32_ps(isum[r]), acc[r][h]);
                }
            }
        }
        acc
    }
}
