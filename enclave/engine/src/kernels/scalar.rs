//! Portable dot products: the reference the SIMD kernels must reproduce bit for bit.
//!
//! Each function mirrors the AVX2 kernel's arithmetic exactly — the same eight float
//! lanes (lane `i` holds the integer sum of elements `4i..4i+4` of each block), fused
//! multiply-adds, and the same horizontal-sum order — so the two paths agree exactly and
//! a machine without AVX2 computes the same logits.

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
