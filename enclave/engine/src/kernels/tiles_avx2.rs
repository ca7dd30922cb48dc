//! AVX2 products over tiled weights ([`super::tiles`]), for CPUs without AVX-512 VNNI
//! (AMD Zen 2/3, Intel before Ice Lake, and the many cloud hosts built on them).
//!
//! The layout is the VNNI tier's: each 32-bit lane of a 64-byte group holds four
//! consecutive values of one of sixteen rows. A 256-bit register holds half a group
//! (eight rows), so a tile block is worked through in two halves, and AVX2 has no
//! `vpdpbusd`: `maddubs` forms the 16-bit sums of pairs of unsigned-weight ×
//! signed-activation products, and `madd` against ones adds the pairs of pairs into the
//! 32-bit lane of each row. Per tile block, half and activation row that is eight
//! broadcasts and eight `maddubs` (plus adds, one `madd`, one conversion and one
//! multiply-add), for eight rows at once, with no sign fix-up and no horizontal sum. The
//! weight half is unpacked once and reused for up to [`GROUP`] activation rows.
//!
//! Results equal [`super::tiles::dot_tiles`] bit for bit: every block's integer sum is
//! exact (the bounds are at [`blocks`]), and the float steps are the reference's, in its
//! order: `acc = fma(d_w * d_a, isum, acc)`, then for Q4_1 `acc = fma(m_w, s_a, acc)`.

use std::arch::x86_64::*;

use super::act::Q8Block;
use super::out::OutRows;
use super::tiles::{
    assert_kernel_shape, prefetch_ahead, tile_block_bytes, values_at, GROUP_BYTES, Q5_HIGH_AT,
    SCALES, TILE,
};
use super::QuantType;

/// Activation rows multiplied per pass over a tile. Each needs two accumulators (one per
/// half tile) beside the eight registers of unpacked weights, out of sixteen.
const GROUP: usize = 4;

/// Rows in half a tile: the 32-bit lanes of a 256-bit register.
const HALF: usize = TILE / 2;

/// True when this CPU can run the kernels below (AVX2, FMA and F16C).
pub(crate) fn available() -> bool {
    super::avx2::available()
}

/// `out[row, r] = w_row · acts[r]`, as [`super::tiles::dot_tiles`].
///
/// Panics if the CPU lacks the features, `ty` is not tiled, `tiles` is not whole tiles of
/// `nb` blocks, `out` holds more rows than the tiles or an activation row is shorter than
/// `nb` blocks: those checks are what make the unchecked loads inside sound.
pub(crate) fn dot_tiles(
    ty: QuantType,
    tiles: &[u8],
    acts: &[&[Q8Block]],
    nb: usize,
    out: &mut OutRows,
) {
    assert!(
        available(),
        "AVX2 tile kernels called on a CPU without AVX2/FMA/F16C"
    );
    assert_kernel_shape(ty, tiles, acts, nb, out);
    // SAFETY: the features were detected above, and the lengths checked above bound every
    // load (`nb` tile blocks of each tile, `nb` blocks of each activation row).
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
        let tile_bytes = nb * tile_block_bytes(ty);
        for (t, tile) in tiles.chunks_exact(tile_bytes).enumerate() {
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
                match take {
                    4 => res = group::<4>(ty, tile.as_ptr(), a, nb),
                    3 => res[..3].copy_from_slice(&group::<3>(ty, tile.as_ptr(), a, nb)),
                    2 => res[..2].copy_from_slice(&group::<2>(ty, tile.as_ptr(), a, nb)),
                    _ => res[..1].copy_from_slice(&group::<1>(ty, tile.as_ptr(), a, nb)),
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
/// `nb` blocks of `ty`, and every row of `acts` must hold at least `nb` blocks.
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
            QuantType::Q4_1 => blocks::<R, Q4_1>(tile, a, nb),
            QuantType::Q8_0 => blocks::<R, Q8_0>(tile, a, nb),
            QuantType::Q5_0 => blocks::<R, Q5_0>(tile, a, nb),
            _ => blocks::<R, Q4_0>(tile, a, nb),
        }
    }
}

/// The eight f16 values at `p`, widened (exact).
///
/// # Safety
/// Called only from [`tiles_impl`] (its CPU features); `p` must point to 16 readable
/// bytes.
#[inline(always)]
unsafe fn f16x8(p: *const u8) -> __m256 {
    // SAFETY: the caller upholds this function's `# Safety` contract (its doc above).
    unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i)) }
}

/// 32 bytes at `p`.
///
/// # Safety
/// Called only from [`tiles_impl`] (its CPU features); `p` must point to 32 readable
/// bytes.
#[inline(always)]
unsafe fn load(p: *const u8) -> __m256i {
    // SAFETY: the caller upholds this function's `# Safety` contract (its doc above).
    unsafe { _mm256_loadu_si256(p as *const __m256i) }
}

/// Activation values `4k..4k + 4` at `y`, in every 32-bit lane. (A function, not a
/// closure: a closure would not get the caller's target features.)
///
/// # Safety
/// Called only from [`tiles_impl`] (its CPU features); `y` must point to `4k + 4`
/// readable bytes.
#[inline(always)]
unsafe fn bcast(y: *const i32, k: usize) -> __m256i {
    // SAFETY: the caller upholds this function's `# Safety` contract (its doc above).
    unsafe { _mm256_set1_epi32(y.add(k).read_unaligned()) }
}

/// The formats [`blocks`] serves (a const parameter, so each gets its own loop).
const Q4_0: u8 = 0;
const Q4_1: u8 = 1;
const Q5_0: u8 = 2;
const Q8_0: u8 = 3;

/// A tile's `nb` blocks against `R` activation rows: Q4_0 (values offset by 8), Q4_1 (a
/// minimum per row and block), Q5_0 (a fifth bit, values offset by 16) or Q8_0 (stored as
/// `value + 128`). Lane `i` of result `[r][h]` is row `8h + i` against activation row `r`.
///
/// Why the integer sums are exact. Activations are in `[-127, 127]`: the quantiser
/// ([`super::act`]) scales a block by `127 / max|x|` and rounds, so a finite value never
/// reaches -128, and its AVX2 path clamps what a NaN converts to into that range too. A
/// `maddubs` lane is `u₀y₀ + u₁y₁`:
/// - Q4_0, Q4_1: `u ≤ 15`, so `|lane| ≤ 2·15·127 = 3810`, and the eight groups' lanes add up
///   to at most 30480 < 32767: all eight are summed in 16 bits, then one `madd`.
/// - Q5_0: `u ≤ 31`, `|lane| ≤ 7874`; four groups add up to at most 31496: two sums of
///   four, two `madd`s.
/// - Q8_0: the stored `value + 128` would saturate `maddubs`, so the signed value is
///   recovered (`^ 0x80`) and llama.cpp's sign trick multiplies `|q|` (≤ 128) by `y` with
///   `q`'s sign (`|y| ≤ 127`, so negating it is exact): `|lane| ≤ 2·128·127 = 32512`, one
///   `madd` per group.
///
/// # Safety
/// Called only from [`tiles_impl`] (its CPU features); `t` must point to a tile of
/// `nb` blocks of the format `KIND`, and each `a[r]` to `nb` readable activation blocks.
#[inline(always)]
unsafe fn blocks<const R: usize, const KIND: u8>(
    t: *const u8,
    a: [*const Q8Block; R],
    nb: usize,
) -> [[__m256; 2]; R] {
    // SAFETY: the caller upholds this function's `# Safety` contract (its doc above).
    unsafe {
        const { assert!(KIND <= Q8_0) };
        let ty = [
            QuantType::Q4_0,
            QuantType::Q4_1,
            QuantType::Q5_0,
            QuantType::Q8_0,
        ][KIND as usize];
        let (bb, at) = (tile_block_bytes(ty), values_at(ty));
        let (m4, bit4) = (_mm256_set1_epi8(0x0f), _mm256_set1_epi8(0x10));
        let (flip, ones) = (_mm256_set1_epi8(-128), _mm256_set1_epi16(1));
        let mut acc = [[_mm256_setzero_ps(); 2]; R];
        for b in 0..nb {
            let tb = t.add(b * bb);
            prefetch_ahead(tb, bb);
            // `h` picks the bytes, the scales and the accumulators alike: a range reads best.
            #[allow(clippy::needless_range_loop)]
            for h in 0..2 {
                // Half `h` of every group: bytes `32h..32h + 32`, rows `8h..8h + 8`.
                let off = 32 * h;
                let dw = f16x8(tb.add(2 * HALF * h));
                let mut wq = [_mm256_setzero_si256(); 8];
                let mut wabs = [_mm256_setzero_si256(); 8];
                if KIND == Q8_0 {
                    for k in 0..8 {
                        let v = load(tb.add(at + GROUP_BYTES * k + off));
                        wq[k] = _mm256_xor_si256(v, flip);
                        wabs[k] = _mm256_abs_epi8(wq[k]);
                    }
                } else {
                    for p in 0..4 {
                        let v = load(tb.add(at + GROUP_BYTES * p + off));
                        wq[p] = _mm256_and_si256(v, m4);
                        wq[p + 4] = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
                    }
                }
                if KIND == Q5_0 {
                    // Group k's fifth bits are bit k of each byte of `hb`: move it to bit 4
                    // (a 16-bit shift, but the bits it carries across bytes are masked off).
                    let hb = load(tb.add(Q5_HIGH_AT + off));
                    let fifth = [
                        _mm256_slli_epi16(hb, 4),
                        _mm256_slli_epi16(hb, 3),
                        _mm256_slli_epi16(hb, 2),
                        _mm256_slli_epi16(hb, 1),
                        hb,
                        _mm256_srli_epi16(hb, 1),
                        _mm256_srli_epi16(hb, 2),
                        _mm256_srli_epi16(hb, 3),
                    ];
                    for k in 0..8 {
                        wq[k] = _mm256_or_si256(wq[k], _mm256_and_si256(fifth[k], bit4));
                    }
                }
                for r in 0..R {
                    let ab = a[r].add(b);
                    let y = (*ab).qs.as_ptr() as *const i32;
                    let s = match KIND {
                        Q8_0 => {
                            let (mut s0, mut s1) = (_mm256_setzero_si256(), _mm256_setzero_si256());
                            for k in (0..8).step_by(2) {
                                let p0 = _mm256_maddubs_epi16(
                                    wabs[k],
                                    _mm256_sign_epi8(bcast(y, k), wq[k]),
                                );
                                let p1 = _mm256_maddubs_epi16(
                                    wabs[k + 1],
                                    _mm256_sign_epi8(bcast(y, k + 1), wq[k + 1]),
                                );
                                s0 = _mm256_add_epi32(s0, _mm256_madd_epi16(p0, ones));
                                s1 = _mm256_add_epi32(s1, _mm256_madd_epi16(p1, ones));
                            }
                            _mm256_add_epi32(s0, s1)
                        }
                        Q5_0 => {
                            // Groups 0..4 and 4..8 in 16 bits each (the bound above).
                            let mut p = [_mm256_setzero_si256(); 2];
                            for k in 0..8 {
                                let d = _mm256_maddubs_epi16(wq[k], bcast(y, k));
                                p[k / 4] = _mm256_add_epi16(p[k / 4], d);
                            }
                            _mm256_add_epi32(
                                _mm256_madd_epi16(p[0], ones),
                                _mm256_madd_epi16(p[1], ones),
                            )
                        }
                        _ => {
                            // All eight groups in 16 bits (two chains, so they overlap).
                            let mut p = [_mm256_setzero_si256(); 2];
                            for k in 0..8 {
                                let d = _mm256_maddubs_epi16(wq[k], bcast(y, k));
                                p[k % 2] = _mm256_add_epi16(p[k % 2], d);
                            }
                            _mm256_madd_epi16(_mm256_add_epi16(p[0], p[1]), ones)
                        }
                    };
                    // Σ (u - 8)·y = Σ u·y - 8·Σ y exactly (16 for Q5_0; Q8_0's values are
                    // already signed, Q4_1's have no offset).
                    let s = match KIND {
                        Q5_0 => _mm256_add_epi32(s, _mm256_set1_epi32(-16 * (*ab).isum)),
                        Q4_0 => _mm256_add_epi32(s, _mm256_set1_epi32(-8 * (*ab).isum)),
                        _ => s,
                    };
                    let scale = _mm256_mul_ps(dw, _mm256_set1_ps((*ab).d));
                    acc[r][h] = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(s), acc[r][h]);
                    if KIND == Q4_1 {
                        let min = f16x8(tb.add(SCALES + 2 * HALF * h));
                        acc[r][h] = _mm256_fmadd_ps(min, _mm256_set1_ps((*ab).s), acc[r][h]);
                    }
                }
            }
        }
        acc
    }
}
