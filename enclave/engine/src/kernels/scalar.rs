//! Portable dot products: the reference the SIMD kernels must reproduce bit for bit.
//!
//! Each function mirrors the AVX2 kernel's arithmetic exactly — the same eight float
//! lanes (lane `i` holds the integer sum of elements `4i..4i+4` of each block), fused
//! multiply-adds, and the same horizontal-sum order — so the two paths agree exactly and
//! a machine without AVX2 computes the same logits.
//!
//! The K-quants (256-value blocks) are simpler still: both paths form each block's exact
//! integer sums, then apply the same scalar float operations per block.

use super::act::Q8Block;
use super::f16::f16_to_f32;

/// Reads the little-endian f16 at `b[at..at + 2]` as f32.
#[inline(always)]
pub(crate) fn f16_at(b: &[u8], at: usize) -> f32 {
    f16_to_f32(u16::from_le_bytes([b[at], b[at + 1]]))
}

/// Sums eight lanes in the order `_mm256` code does: halves, then pairs, then the last two.
#[inline(always)]
pub(crate) fn hsum8(a: [f32; 8]) -> f32 {
    let r = [a[4] + a[0], a[5] + a[1], a[6] + a[2], a[7] + a[3]];
    (r[0] + r[2]) + (r[1] + r[3])
}

/// Adds `scale * lane_sums(q, y)` into `acc`, where lane `i` sums `q[j] * y[j]` over
/// `j in 4i..4i+4` — what `maddubs` then `madd(ones)` produce.
#[inline(always)]
fn fma_lanes(acc: &mut [f32; 8], scale: f32, q: &[i32; 32], y: &[i8; 32]) {
    for (lane, a) in acc.iter_mut().enumerate() {
        let s: i32 = (4 * lane..4 * lane + 4).map(|j| q[j] * y[j] as i32).sum();
        *a = scale.mul_add(s as f32, *a);
    }
}

/// Unpacks a Q4 block's 16 bytes: elements 0..16 are the low nibbles, 16..32 the high.
#[inline(always)]
fn nibbles(qs: &[u8], offset: i32) -> [i32; 32] {
    let mut q = [0i32; 32];
    for j in 0..16 {
        q[j] = (qs[j] & 0x0f) as i32 - offset;
        q[j + 16] = (qs[j] >> 4) as i32 - offset;
    }
    q
}

/// Q4_0 weights (18-byte blocks: f16 scale, 16 bytes of nibbles offset by 8) · Q8_0.
pub(crate) fn dot_q4_0(w: &[u8], a: &[Q8Block]) -> f32 {
    let mut acc = [0f32; 8];
    for (wb, ab) in w.chunks_exact(18).zip(a) {
        let q = nibbles(&wb[2..18], 8);
        fma_lanes(&mut acc, f16_at(wb, 0) * ab.d, &q, &ab.qs);
    }
    hsum8(acc)
}

/// Q4_1 weights (20-byte blocks: f16 scale, f16 minimum, 16 bytes of nibbles) · Q8_1.
///
/// `w_i = d * q_i + m`, so the block's dot is `d * d8 * sum(q_i * y_i) + m * s8` where
/// `s8 = d8 * sum(y_i)` was stored with the activations.
pub(crate) fn dot_q4_1(w: &[u8], a: &[Q8Block]) -> f32 {
    let mut acc = [0f32; 8];
    let mut summs = 0f32;
    for (wb, ab) in w.chunks_exact(20).zip(a) {
        summs += f16_at(wb, 2) * ab.s;
        let q = nibbles(&wb[4..20], 0);
        fma_lanes(&mut acc, f16_at(wb, 0) * ab.d, &q, &ab.qs);
    }
    hsum8(acc) + summs
}

/// Q8_0 weights (34-byte blocks: f16 scale, 32 signed bytes) · Q8_0.
pub(crate) fn dot_q8_0(w: &[u8], a: &[Q8Block]) -> f32 {
    let mut acc = [0f32; 8];
    for (wb, ab) in w.chunks_exact(34).zip(a) {
        let mut q = [0i32; 32];
        for (qi, &b) in q.iter_mut().zip(&wb[2..34]) {
            *qi = b as i8 as i32;
        }
        fma_lanes(&mut acc, f16_at(wb, 0) * ab.d, &q, &ab.qs);
    }
    hsum8(acc)
}

/// Unpacks a Q5_0 block's 20 value bytes (4 bytes of high bits, 16 of nibbles) into
/// signed values in `[-16, 15]`: element `j` takes bit `j` of the high-bit word.
#[inline(always)]
fn q5_values(qh: &[u8], qs: &[u8]) -> [i32; 32] {
    let hi = u32::from_le_bytes([qh[0], qh[1], qh[2], qh[3]]);
    let mut q = nibbles(qs, 0);
    for (j, v) in q.iter_mut().enumerate() {
        *v |= (((hi >> j) & 1) << 4) as i32;
        *v -= 16;
    }
    q
}

/// Q5_0 weights (22-byte blocks: f16 scale, 32 high bits, 16 bytes of nibbles) · Q8_0.
pub(crate) fn dot_q5_0(w: &[u8], a: &[Q8Block]) -> f32 {
    let mut acc = [0f32; 8];
    for (wb, ab) in w.chunks_exact(22).zip(a) {
        let q = q5_values(&wb[2..6], &wb[6..22]);
        fma_lanes(&mut acc, f16_at(wb, 0) * ab.d, &q, &ab.qs);
    }
    hsum8(acc)
}

/// The 6-bit scale and minimum of sub-block `j` (of 8) from a Q4_K block's 12 packed bytes
/// (llama.cpp's `get_scale_min_k4`).
#[inline(always)]
pub(crate) fn q4k_scale_min(j: usize, s: &[u8]) -> (i32, i32) {
    if j < 4 {
        ((s[j] & 63) as i32, (s[j + 4] & 63) as i32)
    } else {
        (
            ((s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4)) as i32,
            ((s[j + 4] >> 4) | ((s[j] >> 6) << 4)) as i32,
        )
    }
}

/// Integer dot of 32 values with a Q8 block's.
#[inline(always)]
fn idot32(q: impl Iterator<Item = i32>, y: &[i8; 32]) -> i32 {
    q.zip(y).map(|(q, &y)| q * y as i32).sum()
}

/// Q4_K weights (144-byte blocks: f16 `d`, f16 `dmin`, 12 bytes of scales and minimums,
/// 128 bytes of nibbles) · Q8_K (eight [`Q8Block`]s per weight block).
///
/// Weight `i` of sub-block `j` is `d * sc_j * q_i - dmin * m_j`, so the block's dot is
/// `d8 * (d * Σ sc_j Σ q·y - dmin * Σ m_j Σ y)` with both sums exact integers; the SIMD
/// kernel computes the same integers, then the same float operations.
pub(crate) fn dot_q4_k(w: &[u8], a: &[Q8Block]) -> f32 {
    let (mut acc, mut acc_m) = (0f32, 0f32);
    for (wb, ab) in w.chunks_exact(144).zip(a.chunks_exact(8)) {
        let (d, dmin) = (f16_at(wb, 0), f16_at(wb, 2));
        let (scales, qs) = (&wb[4..16], &wb[16..144]);
        let (mut isum, mut isum_m) = (0i32, 0i32);
        for c in 0..4 {
            let bytes = &qs[32 * c..32 * c + 32];
            let (sl, ml) = q4k_scale_min(2 * c, scales);
            let (sh, mh) = q4k_scale_min(2 * c + 1, scales);
            let lo = idot32(bytes.iter().map(|&b| (b & 0x0f) as i32), &ab[2 * c].qs);
            let hi = idot32(bytes.iter().map(|&b| (b >> 4) as i32), &ab[2 * c + 1].qs);
            isum += sl * lo + sh * hi;
            isum_m += ml * ab[2 * c].s as i32 + mh * ab[2 * c + 1].s as i32;
        }
        let d8 = ab[0].d;
        acc = (d8 * d).mul_add(isum as f32, acc);
        acc_m = (d8 * dmin).mul_add(isum_m as f32, acc_m);
    }
    acc - acc_m
}

/// The 256 signed values (`[-32, 31]`) of a Q6_K block, in order.
#[inline(always)]
fn q6k_values(ql: &[u8], qh: &[u8]) -> [i32; 256] {
    let mut q = [0i32; 256];
    for n in 0..2 {
        let (ql, qh, q) = (&ql[64 * n..], &qh[32 * n..], &mut q[128 * n..]);
        for l in 0..32 {
            let h = qh[l] as i32;
            q[l] = ((ql[l] & 0x0f) as i32 | (h & 3) << 4) - 32;
            q[l + 32] = ((ql[l + 32] & 0x0f) as i32 | ((h >> 2) & 3) << 4) - 32;
            q[l + 64] = ((ql[l] >> 4) as i32 | ((h >> 4) & 3) << 4) - 32;
            q[l + 96] = ((ql[l + 32] >> 4) as i32 | ((h >> 6) & 3) << 4) - 32;
        }
    }
    q
}

/// Q6_K weights (210-byte blocks: 128 bytes of low nibbles, 64 of high bit pairs, 16
/// signed scales, one per 16 values, f16 `d`) · Q8_K: `d8 * d * Σ sc_g Σ q·y`.
pub(crate) fn dot_q6_k(w: &[u8], a: &[Q8Block]) -> f32 {
    let mut acc = 0f32;
    for (wb, ab) in w.chunks_exact(210).zip(a.chunks_exact(8)) {
        let q = q6k_values(&wb[..128], &wb[128..192]);
        let mut isum = 0i32;
        for g in 0..16 {
            let y = &ab[g / 2].qs[16 * (g % 2)..16 * (g % 2) + 16];
            let s: i32 = q[16 * g..16 * g + 16]
                .iter()
                .zip(y)
                .map(|(&q, &y)| q * y as i32)
                .sum();
            isum += wb[192 + g] as i8 as i32 * s;
        }
        acc = (ab[0].d * f16_at(wb, 208)).mul_add(isum as f32, acc);
    }
    acc
}
