//! Weights repacked at load time into tiles of sixteen rows, and the portable reference
//! of the products over them.
//!
//! The row-at-a-time kernels ([`super::avx2`]) spend most of their instructions on work
//! around the one integer dot product each (block, row, activation) needs: sign fixes,
//! a scale broadcast, a float multiply-add and a horizontal sum at the end. Interleaving
//! sixteen rows so that each 32-bit lane of a 512-bit vector holds four consecutive values
//! of a different row turns that around: a broadcast group of four activations multiplies
//! all sixteen rows at once, the row scales are one vector, and the lanes end up holding
//! the rows' results with no horizontal sum. llama.cpp repacks its Q4_0 weights for the
//! same reason (its `q4_0_8x8` layout); this layout is silk's own, shaped for
//! `vpdpbusd`, whose first operand is unsigned: weight values are stored without their
//! offset (Q4_0's 8, Q5_0's 16; Q8_0's values with 128 added) and the offset times the
//! activation block's sum is put back as the integer accumulator's starting value, so
//! every block's integer dot product is the exact value llama.cpp forms.
//!
//! Layout, per tile of rows `16t..16t+16` (the last tile padded with zero rows), `nb`
//! tile blocks one after another; tile block `b` holds block `b` of each of the rows
//! (`S` = 32 bytes of f16 scales, one per row; a group `G` = 64 bytes, four per row):
//!
//! | type | bytes | contents |
//! | --- | --- | --- |
//! | Q4_0 | 288 | `S`; 4 groups `P_p`, `P_p[4i + c]` = byte `4p + c` of row `i`'s nibbles |
//! | Q4_1 | 320 | `S`; 16 f16 minimums; the same 4 groups of nibbles |
//! | Q8_0 | 544 | `S`; 8 groups `G_k`, `G_k[4i + c]` = value `4k + c` of row `i`, plus 128 |
//! | Q5_0 | 352 | as Q4_0 for the low four bits; then a group `H`, bit `k` of `H[4i + c]` = the fifth bit of value `4k + c` of row `i` |
//!
//! GGML's Q4 nibble byte `j` holds value `j` (low) and `j + 16` (high), so the low nibbles
//! of `P_p` are the values `4p..4p+4` and the high ones `16 + 4p..16 + 4p + 4`: the four
//! vectors unpack into the eight groups of four in order, with no shuffles. Q5_0's fifth
//! bits are regrouped so that group `k`'s are bit `k` of each byte of `H`: one shift and
//! one mask put them in place.
//!
//! Arithmetic, identical in [`dot_tiles`] and the SIMD kernels: per block the exact integer
//! `isum = Σ q·y` (signed weight values), then `acc = fma(d_w * d_a, isum, acc)`, and for
//! Q4_1 `acc = fma(m_w, s_a, acc)`.

use super::act::Q8Block;
use super::f16::f16_to_f32;
use super::out::OutRows;
use super::QuantType;

/// Rows per tile: one 32-bit lane each of a 512-bit register.
pub(crate) const TILE: usize = 16;

/// Bytes of a tile block's scales (one f16 per row), and of one group of four values of
/// every row.
pub(crate) const SCALES: usize = 2 * TILE;
pub(crate) const GROUP_BYTES: usize = 4 * TILE;

/// Whether weights of `ty` can be tiled.
pub(crate) const fn tiled(ty: QuantType) -> bool {
    matches!(
        ty,
        QuantType::Q4_0 | QuantType::Q4_1 | QuantType::Q8_0 | QuantType::Q5_0
    )
}

/// Bytes of one tile block (every row's block `b`), or 0 for a type that is not tiled.
pub(crate) const fn tile_block_bytes(ty: QuantType) -> usize {
    match ty {
        QuantType::Q4_0 => SCALES + 4 * GROUP_BYTES,
        QuantType::Q4_1 => 2 * SCALES + 4 * GROUP_BYTES,
        QuantType::Q8_0 => SCALES + 8 * GROUP_BYTES,
        QuantType::Q5_0 => SCALES + 5 * GROUP_BYTES,
        _ => 0,
    }
}

/// Where a tile block's packed values start (after the scales, and Q4_1's minimums).
pub(crate) const fn values_at(ty: QuantType) -> usize {
    match ty {
        QuantType::Q4_1 => 2 * SCALES,
        _ => SCALES,
    }
}

/// Where a Q5_0 tile block's fifth bits start.
pub(crate) const Q5_HIGH_AT: usize = SCALES + 4 * GROUP_BYTES;

/// Repacks `rows` rows of `nb` GGML blocks of `ty` (row after row, as GGUF stores them)
/// into tiles. `ty` must be one [`tiled`] accepts and `data` exactly that many blocks.
pub(crate) fn repack(ty: QuantType, rows: usize, nb: usize, data: &[u8]) -> Vec<u8> {
    assert!(tiled(ty), "{ty:?} has no tiled layout");
    let (bb, tbb) = (ty.block_bytes(), tile_block_bytes(ty));
    assert_eq!(data.len(), rows * nb * bb);
    let tiles = rows.div_ceil(TILE);
    let mut out = vec![0u8; tiles * nb * tbb];
    for (t, tile) in out.chunks_exact_mut(nb * tbb).enumerate() {
        for (b, dst) in tile.chunks_exact_mut(tbb).enumerate() {
            for i in 0..TILE {
                let row = t * TILE + i;
                if row >= rows {
                    // Zero scales (and minimums): the padding rows add nothing.
                    if ty == QuantType::Q8_0 {
                        for k in 0..8 {
                            dst[SCALES + GROUP_BYTES * k + 4 * i..][..4].fill(0x80);
                        }
                    }
                    continue;
                }
                let src = &data[(row * nb + b) * bb..][..bb];
                dst[2 * i..2 * i + 2].copy_from_slice(&src[..2]);
                match ty {
                    QuantType::Q4_0 | QuantType::Q4_1 | QuantType::Q5_0 => {
                        let qs = match ty {
                            QuantType::Q4_1 => {
                                dst[SCALES + 2 * i..][..2].copy_from_slice(&src[2..4]);
                                &src[4..20]
                            }
                            QuantType::Q5_0 => {
                                let qh = u32::from_le_bytes([src[2], src[3], src[4], src[5]]);
                                for c in 0..4 {
                                    dst[Q5_HIGH_AT + 4 * i + c] = (0..8)
                                        .map(|k| (((qh >> (4 * k + c)) & 1) as u8) << k)
                                        .sum();
                                }
                                &src[6..22]
                            }
                            _ => &src[2..18],
                        };
                        let at = values_at(ty);
                        for p in 0..4 {
                            dst[at + GROUP_BYTES * p + 4 * i..][..4]
                                .copy_from_slice(&qs[4 * p..4 * p + 4]);
                        }
                    }
                    _ => {
                        for k in 0..8 {
                            for c in 0..4 {
                                dst[SCALES + GROUP_BYTES * k + 4 * i + c] =
                                    src[2 + 4 * k + c] ^ 0x80;
                            }
                        }
                    }
                }
            }
        }
    }
    out
}

/// Row `i`'s block in tile block `tb`: scale, minimum (Q4_1; else 0) and signed values.
fn row_block(ty: QuantType, tb: &[u8], i: usize) -> (f32, f32, [i32; 32]) {
    let f16 = |at: usize| f16_to_f32(u16::from_le_bytes([tb[at], tb[at + 1]]));
    let mut q = [0i32; 32];
    for (j, v) in q.iter_mut().enumerate() {
        let (k, c) = (j / 4, j % 4);
        *v = match ty {
            QuantType::Q8_0 => tb[SCALES + GROUP_BYTES * k + 4 * i + c] as i32 - 128,
            _ => {
                let byte = tb[values_at(ty) + GROUP_BYTES * (k % 4) + 4 * i + c];
                let nibble = if k < 4 { byte & 0x0f } else { byte >> 4 } as i32;
                match ty {
                    QuantType::Q4_0 => nibble - 8,
                    QuantType::Q5_0 => {
                        let fifth = ((tb[Q5_HIGH_AT + 4 * i + c] >> k) & 1) as i32;
                        (nibble | fifth << 4) - 16
                    }
                    _ => nibble,
                }
            }
        };
    }
    let min = if ty == QuantType::Q4_1 {
        f16(SCALES + 2 * i)
    } else {
        0.0
    };
    (f16(2 * i), min, q)
}

/// The shape checks that make a SIMD tile kernel's unchecked loads sound ([`super::vnni`],
/// [`super::tiles_avx2`]): `ty` is tiled, `tiles` is whole tiles of `nb` blocks, `out`
/// holds one column per activation row and no more rows than the tiles, and every
/// activation row has at least `nb` blocks. Panics otherwise.
#[cfg(target_arch = "x86_64")]
pub(crate) fn assert_kernel_shape(
    ty: QuantType,
    tiles: &[u8],
    acts: &[&[Q8Block]],
    nb: usize,
    out: &OutRows,
) {
    let tile_bytes = nb * tile_block_bytes(ty);
    assert!(tiled(ty) && tile_bytes > 0 && tiles.len().is_multiple_of(tile_bytes));
    assert!(out.m() == acts.len() && out.rows() <= tiles.len() / tile_bytes * TILE);
    assert!(acts.iter().all(|a| a.len() >= nb));
}

/// How many tile blocks ahead the SIMD kernels prefetch (see [`prefetch_ahead`]).
#[cfg(target_arch = "x86_64")]
const PREFETCH_BLOCKS: usize = 8;

/// Asks for the tile block [`PREFETCH_BLOCKS`] after the one at `tb` (`bb` bytes each):
/// a decode step streams each weight once, and the loads of a block otherwise wait on
/// memory with nothing else to do. Prefetching past the end of the tiles is harmless (a
/// hint, never a fault). Needs only SSE, so it inlines into every SIMD tier's kernels.
///
/// # Safety
/// Any `tb` is allowed: the address is only a prefetch hint, never dereferenced.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) unsafe fn prefetch_ahead(tb: *const u8, bb: usize) {
    use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
    let ahead = tb.wrapping_add(PREFETCH_BLOCKS * bb);
    let mut line = 0;
    while line < bb {
        // SAFETY: a prefetch is a hint and never faults, whatever the address.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(line) as *const i8) };
        line += 64;
    }
}

/// `out[row, r] = w_row · acts[r]` for the rows of the tiles in `tiles` (`nb` blocks
/// each; as many rows as `out` has, which may end inside the last tile). The reference the
/// SIMD kernels reproduce bit for bit; slow.
pub(crate) fn dot_tiles(
    ty: QuantType,
    tiles: &[u8],
    acts: &[&[Q8Block]],
    nb: usize,
    out: &mut OutRows,
) {
    let tile_bytes = nb * tile_block_bytes(ty);
    assert!(tiled(ty) && out.m() == acts.len());
    assert!(out.rows() <= tiles.len() / tile_bytes * TILE);
    for row in 0..out.rows() {
        let tile = &tiles[row / TILE * tile_bytes..][..tile_bytes];
        for (r, a) in acts.iter().enumerate() {
            let mut acc = 0f32;
            for (tb, ab) in tile.chunks_exact(tile_block_bytes(ty)).zip(&a[..nb]) {
                let (d, min, q) = row_block(ty, tb, row % TILE);
                let isum: i32 = q.iter().zip(&ab.qs).map(|(&q, &y)| q * y as i32).sum();
                acc = (d * ab.d).mul_add(isum as f32, acc);
                if ty == QuantType::Q4_1 {
                    acc = min.mul_add(ab.s, acc);
                }
            }
            out.set(row, r, acc);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::scalar::f16_at;

    /// Every value, scale and minimum of every row reads back from its tile unchanged,
    /// including a last tile that is only partly filled.
    #[test]
    fn repacking_keeps_every_value_in_its_place() {
        for ty in [
            QuantType::Q4_0,
            QuantType::Q4_1,
            QuantType::Q8_0,
            QuantType::Q5_0,
        ] {
            let (rows, nb, bb) = (TILE + 5, 3, ty.block_bytes());
            let data: Vec<u8> = (0..rows * nb * bb).map(|i| (i * 37 % 251) as u8).collect();
            let tiles = repack(ty, rows, nb, &data);
            assert_eq!(tiles.len(), 2 * nb * tile_block_bytes(ty));
            for row in 0..2 * TILE {
                for b in 0..nb {
                    let tb = &tiles[(row / TILE * nb + b) * tile_block_bytes(ty)..];
                    let (d, min, q) = row_block(ty, tb, row % TILE);
                    if row >= rows {
                        assert_eq!((d, min), (0.0, 0.0), "{ty:?} padding row {row}");
                        continue;
                    }
                    let src = &data[(row * nb + b) * bb..][..bb];
                    assert_eq!(d.to_bits(), f16_at(src, 0).to_bits(), "{ty:?} scale");
                    let want: Vec<i32> = match ty {
                        QuantType::Q8_0 => src[2..34].iter().map(|&v| v as i8 as i32).collect(),
                        QuantType::Q5_0 => {
                            let qh = u32::from_le_bytes([src[2], src[3], src[4], src[5]]);
                            let lo = src[6..22].iter().map(|&v| (v & 0x0f) as i32);
                            let q = lo.chain(src[6..22].iter().map(|&v| (v >> 4) as i32));
                            let hi = |j: usize| (((qh >> j) & 1) << 4) as i32;
                            q.enumerate().map(|(j, v)| (v | hi(j)) - 16).collect()
                        }
                        _ => {
                            let (qs, off) = if ty == QuantType::Q4_1 {
                                assert_eq!(min.to_bits(), f16_at(src, 2).to_bits());
                                (&src[4..20], 0)
                            } else {
                                (&src[2..18], 8)
                            };
                            let lo = qs.iter().map(|&v| (v & 0x0f) as i32 - off);
                            lo.chain(qs.iter().map(|&v| (v >> 4) as i32 - off))
                                .collect()
                        }
                    };
                    assert_eq!(q.to_vec(), want, "{ty:?} row {row} block {b}");
                }
            }
        }
    }
}
