//! The K-quants (Q4_K, Q6_K) repacked at load time into tiles of sixteen rows, and the
//! portable reference of the products over them.
//!
//! The idea is [`super::tiles`]': each 32-bit lane of a 64-byte group holds four
//! consecutive bytes of one of sixteen rows, so a broadcast group of four activations
//! multiplies sixteen rows at once and the lanes end up holding the rows' results. What
//! differs is the block: 256 values with a scale per 32 (Q4_K, plus a minimum) or per 16
//! (Q6_K). The scales are unpacked at load (Q4_K's 6-bit ones into bytes) and laid out
//! per half tile, so that the AVX2 kernel ([`super::tiles_k_avx2`]) reads each sub-block's
//! eight row scales with one load.
//!
//! The value bytes are GGML's own, only interleaved: group `q` of a tile block holds
//! bytes `4q..4q + 4` of each row's nibble (and, for Q6_K, high-bit) array, row `i` at
//! `4i`. So Q4_K's sub-blocks `2c` and `2c + 1` are the low and high nibbles of groups
//! `8c..8c + 8`, and Q6_K's sub-block `4n + s` takes the low (`s < 2`) or high nibbles of
//! groups `16n + 8(s % 2)..+8` and bits `2s..2s + 2` of high-bit groups `8n..8n + 8`.
//!
//! Layout of one tile block (every row's block `b`, the last tile padded with zero rows;
//! `[h][..][i]` is row `8h + i`):
//!
//! | type | bytes | contents |
//! | --- | --- | --- |
//! | Q4_K | 2368 | 16 f16 `d`; 16 f16 `dmin`; scales `[h][j][i]` (u8, sub-block `j`); minimums `[h][p][i][2]` (u8, sub-blocks `2p`, `2p + 1`); 32 nibble groups |
//! | Q6_K | 3360 | 16 f16 `d`; scales `[h][g][i]` (i8, 16 values each); 32 nibble groups; 16 high-bit groups |
//!
//! Arithmetic: exactly the row kernels' ([`super::scalar::dot_q4_k`],
//! [`super::scalar::dot_q6_k`]): per block the exact integer sums, then the same float
//! operations in the same order, so tiled and row results are equal bit for bit. The
//! reference here makes sure of it by rebuilding each row's GGML blocks from the tile
//! and calling those very functions.

use super::act::Q8Block;
use super::out::OutRows;
use super::scalar::{dot_q4_k, dot_q6_k, q4k_scale_min};
use super::tiles::{GROUP_BYTES, TILE};
use super::QuantType;

/// Rows in half a tile: the AVX2 kernel's unit, and the stride of the scale tables.
const HALF: usize = TILE / 2;

/// Q4_K tile block: where the `d`s, `dmin`s, scales, minimums and nibbles start, and its
/// size.
pub(crate) const Q4K_D: usize = 0;
pub(crate) const Q4K_DMIN: usize = 2 * TILE;
pub(crate) const Q4K_SC: usize = 4 * TILE;
pub(crate) const Q4K_MIN: usize = Q4K_SC + 8 * TILE;
pub(crate) const Q4K_QS: usize = Q4K_MIN + 8 * TILE;
pub(crate) const Q4K_BYTES: usize = Q4K_QS + 32 * GROUP_BYTES;

/// Q6_K tile block: where the `d`s, scales, nibbles and high bits start, and its size.
pub(crate) const Q6K_D: usize = 0;
pub(crate) const Q6K_SC: usize = 2 * TILE;
pub(crate) const Q6K_QL: usize = Q6K_SC + 16 * TILE;
pub(crate) const Q6K_QH: usize = Q6K_QL + 32 * GROUP_BYTES;
pub(crate) const Q6K_BYTES: usize = Q6K_QH + 16 * GROUP_BYTES;

/// Activation blocks (of 32 values) per K-quant block.
pub(crate) const SUB: usize = 8;

/// Whether `ty` is a K-quant with a tiled layout here.
pub(crate) const fn tiled(ty: QuantType) -> bool {
    matches!(ty, QuantType::Q4K | QuantType::Q6K)
}

/// Bytes of one tile block (every row's 256-value block `b`), or 0 for other types.
pub(crate) const fn tile_block_bytes(ty: QuantType) -> usize {
    match ty {
        QuantType::Q4K => Q4K_BYTES,
        QuantType::Q6K => Q6K_BYTES,
        _ => 0,
    }
}

/// Bytes of one tile of rows `nb` activation blocks (`nb / 8` K-quant blocks) long.
pub(crate) const fn tile_bytes(ty: QuantType, nb: usize) -> usize {
    nb / SUB * tile_block_bytes(ty)
}

/// Copies 4-byte units of one row's GGML array `src` into the groups at `dst` (row `i`).
fn interleave(dst: &mut [u8], src: &[u8], i: usize) {
    for (q, unit) in src.chunks_exact(4).enumerate() {
        dst[GROUP_BYTES * q + 4 * i..][..4].copy_from_slice(unit);
    }
}

/// The inverse of [`interleave`].
fn deinterleave(src: &[u8], dst: &mut [u8], i: usize) {
    for (q, unit) in dst.chunks_exact_mut(4).enumerate() {
        unit.copy_from_slice(&src[GROUP_BYTES * q + 4 * i..][..4]);
    }
}

/// Where row `row`'s scale byte `k` (of `per_half` per row) lies in a `[h][k][i]` table.
const fn table_at(row: usize, k: usize, per_half: usize) -> usize {
    (row / HALF * per_half + k) * HALF + row % HALF
}

/// Repacks `rows` rows of `nb` activation blocks' worth of `ty` (a K-quant; `nb / 8`
/// GGML blocks per row, row after row, as GGUF stores them) into tiles.
pub(crate) fn repack(ty: QuantType, rows: usize, nb: usize, data: &[u8]) -> Vec<u8> {
    assert!(
        tiled(ty) && nb.is_multiple_of(SUB),
        "{ty:?} has no K tiled layout"
    );
    let (blocks, bb, tbb) = (nb / SUB, ty.block_bytes(), tile_block_bytes(ty));
    assert_eq!(data.len(), rows * blocks * bb);
    let mut out = vec![0u8; rows.div_ceil(TILE) * blocks * tbb];
    for (t, tile) in out.chunks_exact_mut(blocks * tbb).enumerate() {
        for (b, dst) in tile.chunks_exact_mut(tbb).enumerate() {
            // Padding rows keep zero scales and values: they add nothing.
            for i in 0..TILE.min(rows - t * TILE) {
                let src = &data[((t * TILE + i) * blocks + b) * bb..][..bb];
                if ty == QuantType::Q4K {
                    dst[Q4K_D + 2 * i..][..2].copy_from_slice(&src[0..2]);
                    dst[Q4K_DMIN + 2 * i..][..2].copy_from_slice(&src[2..4]);
                    for j in 0..8 {
                        let (sc, m) = q4k_scale_min(j, &src[4..16]);
                        dst[Q4K_SC + table_at(i, j, 8)] = sc as u8;
                        dst[Q4K_MIN + 2 * table_at(i, j / 2, 4) + j % 2] = m as u8;
                    }
                    interleave(&mut dst[Q4K_QS..], &src[16..144], i);
                } else {
                    dst[Q6K_D + 2 * i..][..2].copy_from_slice(&src[208..210]);
                    for g in 0..16 {
                        dst[Q6K_SC + table_at(i, g, 16)] = src[192 + g];
                    }
                    interleave(&mut dst[Q6K_QL..], &src[..128], i);
                    interleave(&mut dst[Q6K_QH..], &src[128..192], i);
                }
            }
        }
    }
    out
}

/// Row `i`'s GGML block, rebuilt from tile block `tb` (the inverse of [`repack`]; Q4_K's
/// twelve scale bytes are repacked from the unpacked values, which determine all 96 bits).
pub(crate) fn row_block(ty: QuantType, tb: &[u8], i: usize) -> Vec<u8> {
    let mut blk = vec![0u8; ty.block_bytes()];
    if ty == QuantType::Q4K {
        blk[0..2].copy_from_slice(&tb[Q4K_D + 2 * i..][..2]);
        blk[2..4].copy_from_slice(&tb[Q4K_DMIN + 2 * i..][..2]);
        let s = &mut blk[4..16];
        for j in 0..8 {
            let sc = tb[Q4K_SC + table_at(i, j, 8)];
            let m = tb[Q4K_MIN + 2 * table_at(i, j / 2, 4) + j % 2];
            // llama.cpp's `get_scale_min_k4`, run backwards.
            if j < 4 {
                s[j] |= sc & 63;
                s[j + 4] |= m & 63;
            } else {
                s[j + 4] |= (sc & 0x0f) | (m & 0x0f) << 4;
                s[j - 4] |= (sc >> 4) << 6;
                s[j] |= (m >> 4) << 6;
            }
        }
        deinterleave(&tb[Q4K_QS..], &mut blk[16..144], i);
    } else {
        blk[208..210].copy_from_slice(&tb[Q6K_D + 2 * i..][..2]);
        for g in 0..16 {
            blk[192 + g] = tb[Q6K_SC + table_at(i, g, 16)];
        }
        deinterleave(&tb[Q6K_QL..], &mut blk[..128], i);
        deinterleave(&tb[Q6K_QH..], &mut blk[128..192], i);
    }
    blk
}

/// The shape checks that make the SIMD kernel's unchecked loads sound: `ty` is a tiled
/// K-quant, `nb` whole K blocks, `tiles` whole tiles of them, `out` one column per
/// activation row and no more rows than the tiles, every activation row at least `nb`
/// blocks. Panics otherwise.
#[cfg(target_arch = "x86_64")]
pub(crate) fn assert_kernel_shape(
    ty: QuantType,
    tiles: &[u8],
    acts: &[&[Q8Block]],
    nb: usize,
    out: &OutRows,
) {
    let tb = tile_bytes(ty, nb);
    assert!(tiled(ty) && nb.is_multiple_of(SUB) && tb > 0 && tiles.len().is_multiple_of(tb));
    assert!(out.m() == acts.len() && out.rows() <= tiles.len() / tb * TILE);
    assert!(acts.iter().all(|a| a.len() >= nb));
}

/// `out[row, r] = w_row · acts[r]` for the rows of the tiles in `tiles` (`nb` activation
/// blocks long; as many rows as `out` has). Each row is rebuilt and handed to the row
/// kernel's portable reference, so the result is the row path's, bit for bit; slow.
pub(crate) fn dot_tiles(
    ty: QuantType,
    tiles: &[u8],
    acts: &[&[Q8Block]],
    nb: usize,
    out: &mut OutRows,
) {
    let tb = tile_bytes(ty, nb);
    assert!(tiled(ty) && tb > 0 && out.m() == acts.len());
    assert!(out.rows() <= tiles.len() / tb * TILE);
    let dot = if ty == QuantType::Q4K {
        dot_q4_k
    } else {
        dot_q6_k
    };
    for row in 0..out.rows() {
        let tile = &tiles[row / TILE * tb..][..tb];
        let w: Vec<u8> = tile
            .chunks_exact(tile_block_bytes(ty))
            .flat_map(|blk| row_block(ty, blk, row % TILE))
            .collect();
        for (r, a) in acts.iter().enumerate() {
            out.set(row, r, dot(&w, &a[..nb]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every byte of every row's blocks comes back from its tile unchanged (random bytes,
    /// so every bit of Q4_K's packed scales is exercised), padding rows read back as zero
    /// blocks, and the unpacked scales are the ones llama.cpp reads.
    #[test]
    fn repacking_keeps_every_block_whole() {
        for ty in [QuantType::Q4K, QuantType::Q6K] {
            for rows in [1, TILE, TILE + 5] {
                let (blocks, bb) = (3, ty.block_bytes());
                let data: Vec<u8> = (0..rows * blocks * bb)
                    .map(|i| ((i * 131 + 7) % 251) as u8 ^ (i >> 8) as u8)
                    .collect();
                let tiles = repack(ty, rows, SUB * blocks, &data);
                let tbb = tile_block_bytes(ty);
                assert_eq!(tiles.len(), rows.div_ceil(TILE) * blocks * tbb);
                for row in 0..rows.next_multiple_of(TILE) {
                    for b in 0..blocks {
                        let tb = &tiles[(row / TILE * blocks + b) * tbb..][..tbb];
                        let got = row_block(ty, tb, row % TILE);
                        if row >= rows {
                            assert!(got.iter().all(|&v| v == 0), "{ty:?} padding {row}");
                            continue;
                        }
                        let src = &data[(row * blocks + b) * bb..][..bb];
                        assert_eq!(got, src, "{ty:?} rows={rows} row {row} block {b}");
                        if ty == QuantType::Q4K {
                            for j in 0..8 {
                                let (sc, m) = q4k_scale_min(j, &src[4..16]);
                                let i = row % TILE;
                                assert_eq!(tb[Q4K_SC + table_at(i, j, 8)] as i32, sc);
                                let at = Q4K_MIN + 2 * table_at(i, j / 2, 4) + j % 2;
                                assert_eq!(tb[at] as i32, m);
                            }
                        }
                    }
                }
            }
        }
    }
}
