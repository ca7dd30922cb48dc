//! AVX-512 VNNI products over tiled weights ([`super::tiles`]), on 512-bit registers.
//!
//! Per tile block and activation row: eight `vpdpbusd`, each multiplying one broadcast
//! group of four activation bytes into all sixteen rows, then one scale product, one
//! conversion and one multiply-add for the sixteen rows together. The weight values are
//! unpacked once per tile block and reused for up to [`GROUP`] activation rows, which the
//! 32 vector registers keep resident. (Zen 4 runs 512-bit operations as two 256-bit
//! halves: no faster there than 256-bit code, and no slower.) Results equal
//! [`super::tiles::dot_tiles`] bit for bit (the integer sums are exact, the float
//! operations the same).

use std::arch::x86_64::*;

use super::act::Q8Block;
use super::out::OutRows;
use super::tiles::{
    assert_kernel_shape, prefetch_ahead, tile_block_bytes, values_at, GROUP_BYTES, Q5_HIGH_AT,
    SCALES, TILE,
};
use super::QuantType;

/// Activation rows multiplied per pass over a tile.
const GROUP: usize = 8;

/// True when this CPU can run the kernels below (AVX-512 F, BW and VNNI, with FMA and
/// F16C: Ice Lake, Zen 4 and later).
pub(crate) fn available() -> bool {
    super::avx2::vnni_available()
        && is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
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
        "VNNI kernels called on a CPU without AVX512-F/BW/VNNI"
    );
    assert_kernel_shape(ty, tiles, acts, nb, out);
    // SAFETY: the features were detected above, and the lengths checked above bound every
    // load (`nb` tile blocks of each tile, `nb` blocks of each activation row).
    unsafe { tiles_impl(ty, tiles, acts, nb, out) }
}

/// # Safety
/// As [`dot_tiles`] after its checks.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vnni,avx512vl")]
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
                let mut res = [_mm512_setzero_ps(); GROUP];
                match take {
                    8 => res = group::<8>(ty, tile.as_ptr(), a, nb),
                    7 => res[..7].copy_from_slice(&group::<7>(ty, tile.as_ptr(), a, nb)),
                    6 => res[..6].copy_from_slice(&group::<6>(ty, tile.as_ptr(), a, nb)),
                    5 => res[..5].copy_from_slice(&group::<5>(ty, tile.as_ptr(), a, nb)),
                    4 => res[..4].copy_from_slice(&group::<4>(ty, tile.as_ptr(), a, nb)),
                    3 => res[..3].copy_from_slice(&group::<3>(ty, tile.as_ptr(), a, nb)),
                    2 => res[..2].copy_from_slice(&group::<2>(ty, tile.as_ptr(), a, nb)),
                    _ => res[..1].copy_from_slice(&group::<1>(ty, tile.as_ptr(), a, nb)),
                }
                for (j, v) in res[..take].iter().enumerate() {
                    let mut lanes = [0f32; TILE];
                    _mm512_storeu_ps(lanes.as_mut_ptr(), *v);
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
) -> [__m512; R] {
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

/// The sixteen rows' exact integer dot products with one activation block: `init` plus
/// `Σ_k wq[k] · broadcast(y[4k..4k+4])`, in two chains so that they overlap.
///
/// # Safety
/// Called only from [`tiles_impl`] (its CPU features); `ab` must point to a readable
/// activation block.
#[inline(always)]
unsafe fn block_dot(wq: &[__m512i; 8], ab: *const Q8Block, init: __m512i) -> __m512i {
    // SAFETY: the caller upholds this function's `# Safety` contract (its doc above).
    unsafe {
        // No closures here: they would not get the caller's target features.
        let y = (*ab).qs.as_ptr() as *const i32;
        let (mut s0, mut s1) = (init, _mm512_setzero_si512());
        for k in (0..8).step_by(2) {
            let (y0, y1) = (y.add(k).read_unaligned(), y.add(k + 1).read_unaligned());
            s0 = _mm512_dpbusd_epi32(s0, wq[k], _mm512_set1_epi32(y0));
            s1 = _mm512_dpbusd_epi32(s1, wq[k + 1], _mm512_set1_epi32(y1));
        }
        _mm512_add_epi32(s0, s1)
    }
}

/// The sixteen rows' f16 values at `p`, widened (exact).
///
/// # Safety
/// Called only from [`tiles_impl`] (its CPU features); `p` must point to 32
/// readable bytes.
#[inline(always)]
unsafe fn f16x16(p: *const u8) -> __m512 {
    // SAFETY: the caller upholds this function's `# Safety` contract (its doc above).
    unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(p as *const __m256i)) }
}

/// The formats [`blocks`] serves (a const parameter, so each gets its own loop).
const Q4_0: u8 = 0;
const Q4_1: u8 = 1;
const Q5_0: u8 = 2;
const Q8_0: u8 = 3;

/// A tile's `nb` blocks against `R` activation rows: Q4_0 (values offset by 8), Q4_1 (a
/// minimum per row and block), Q5_0 (a fifth bit, values offset by 16) or Q8_0 (stored as
/// `value + 128`).
///
/// # Safety
/// Called only from [`tiles_impl`] (its CPU features); `t` must point to a tile of
/// `nb` blocks of the format `KIND`, and each `a[r]` to `nb` readable activation blocks.
#[inline(always)]
unsafe fn blocks<const R: usize, const KIND: u8>(
    t: *const u8,
    a: [*const Q8Block; R],
    nb: usize,
) -> [__m512; R] {
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
        let (m4, bit4) = (_mm512_set1_epi8(0x0f), _mm512_set1_epi8(0x10));
        let mut acc = [_mm512_setzero_ps(); R];
        for b in 0..nb {
            let tb = t.add(b * bb);
            prefetch_ahead(tb, bb);
            let dw = f16x16(tb);
            let mut wq = [_mm512_setzero_si512(); 8];
            if KIND == Q8_0 {
                for (k, w) in wq.iter_mut().enumerate() {
                    *w = _mm512_loadu_si512(tb.add(at + GROUP_BYTES * k) as *const __m512i);
                }
            } else {
                for p in 0..4 {
                    let v = _mm512_loadu_si512(tb.add(at + GROUP_BYTES * p) as *const __m512i);
                    wq[p] = _mm512_and_si512(v, m4);
                    wq[p + 4] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
                }
            }
            if KIND == Q5_0 {
                // Group k's fifth bits are bit k of each byte of `h`: move it to bit 4 (a
                // 16-bit shift, but the bits it carries across bytes are masked off).
                let h = _mm512_loadu_si512(tb.add(Q5_HIGH_AT) as *const __m512i);
                let fifth = [
                    _mm512_slli_epi16(h, 4),
                    _mm512_slli_epi16(h, 3),
                    _mm512_slli_epi16(h, 2),
                    _mm512_slli_epi16(h, 1),
                    h,
                    _mm512_srli_epi16(h, 1),
                    _mm512_srli_epi16(h, 2),
                    _mm512_srli_epi16(h, 3),
                ];
                for k in 0..8 {
                    wq[k] = _mm512_or_si512(wq[k], _mm512_and_si512(fifth[k], bit4));
                }
            }
            for r in 0..R {
                let ab = a[r].add(b);
                // Σ (q - 8)·y = Σ q·y - 8·Σ y exactly (16 for Q5_0, 128 for Q8_0).
                let init = match KIND {
                    Q4_1 => _mm512_setzero_si512(),
                    Q5_0 => _mm512_set1_epi32(-16 * (*ab).isum),
                    Q8_0 => _mm512_set1_epi32(-128 * (*ab).isum),
                    _ => _mm512_set1_epi32(-8 * (*ab).isum),
                };
                let s = block_dot(&wq, ab, init);
                let scale = _mm512_mul_ps(dw, _mm512_set1_ps((*ab).d));
                acc[r] = _mm512_fmadd_ps(scale, _mm512_cvtepi32_ps(s), acc[r]);
                if KIND == Q4_1 {
                    acc[r] =
                        _mm512_fmadd_ps(f16x16(tb.add(SCALES)), _mm512_set1_ps((*ab).s), acc[r]);
                }
            }
        }
        acc
    }
}
