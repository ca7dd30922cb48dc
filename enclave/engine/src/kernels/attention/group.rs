//! One attention piece: the query heads that share a key/value head, over that head's
//! keys and values. AVX2 + FMA where the CPU has them (chosen at run time), portable code
//! otherwise; the two differ only in float summation order.

use std::cell::RefCell;

use super::softmax;

/// `len` rows of `width` values, `stride` apart, from the start of `data`: a head's keys
/// or values in the cache, or a group of query heads, without a vector of slices.
#[derive(Clone, Copy)]
pub(crate) struct Rows<'a> {
    data: &'a [f32],
    stride: usize,
    len: usize,
    width: usize,
}

impl<'a> Rows<'a> {
    /// The rows, if they all lie inside `data` (and there is at least one).
    pub(crate) fn new(data: &'a [f32], stride: usize, len: usize, width: usize) -> Option<Self> {
        let end = (len.checked_sub(1)?)
            .checked_mul(stride)?
            .checked_add(width)?;
        (end <= data.len()).then_some(Self {
            data,
            stride,
            len,
            width,
        })
    }

    fn row(&self, j: usize) -> &'a [f32] {
        &self.data[j * self.stride..][..self.width]
    }

    fn iter(&self) -> impl Iterator<Item = &'a [f32]> + '_ {
        (0..self.len).map(|j| self.row(j))
    }
}

thread_local! {
    /// Each thread's attention scores, kept between pieces (a decode step has hundreds).
    static SCORES: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Attention of the query heads `q` over `keys` and `values` (rows of one width, the same
/// number of keys as values) into `out` (`q.len * width`, head after head).
pub(crate) fn head_group(q: Rows, keys: Rows, values: Rows, scale: f32, out: &mut [f32]) {
    let hd = q.width;
    assert!(keys.len == values.len && keys.width == hd && values.width == hd);
    assert_eq!(out.len(), q.len * hd);
    SCORES.with_borrow_mut(|scores| {
        scores.clear();
        scores.resize(keys.len, 0.0);
        #[cfg(target_arch = "x86_64")]
        if avx2::usable(hd) {
            // SAFETY: `usable` checked the CPU's features and the width; `Rows` checked
            // that every row lies in its slice.
            return unsafe { avx2::head_group(q, keys, values, scale, scores, out) };
        }
        portable(q, keys, values, scale, scores, out)
    })
}

fn portable(q: Rows, keys: Rows, values: Rows, scale: f32, s: &mut [f32], out: &mut [f32]) {
    for (qh, o) in q.iter().zip(out.chunks_mut(q.width)) {
        for (sj, k) in s.iter_mut().zip(keys.iter()) {
            *sj = qh.iter().zip(k).map(|(a, b)| a * b).sum::<f32>() * scale;
        }
        softmax(s);
        o.fill(0.0);
        for (p, v) in s.iter().zip(values.iter()) {
            for (x, y) in o.iter_mut().zip(v) {
                *x += p * y;
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{softmax, Rows};

    /// Whether [`head_group`] can run: AVX2 and FMA, and rows of whole vectors.
    pub(super) fn usable(width: usize) -> bool {
        width > 0
            && width.is_multiple_of(8)
            && is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
    }

    /// # Safety
    /// [`usable`] must have returned true for the rows' width; `s` must hold one score per
    /// key and `out` `q.len * width` values.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn head_group(
        q: Rows,
        keys: Rows,
        values: Rows,
        scale: f32,
        s: &mut [f32],
        out: &mut [f32],
    ) {
        // SAFETY: the caller upholds this function's `# Safety` contract (its doc above).
        unsafe {
            let hd = q.width;
            for h in 0..q.len {
                scores_into(q.row(h), keys, scale, s);
                softmax(s);
                let o = &mut out[h * hd..(h + 1) * hd];
                match hd {
                    64 => weighted_sum::<8>(s, values, o),
                    128 => weighted_sum::<16>(s, values, o),
                    _ => weighted_sum_any(s, values, o),
                }
            }
        }
    }

    /// `s[j] = scale * q · keys[j]`, four keys at a time so that one horizontal reduction
    /// serves four dot products.
    ///
    /// # Safety
    /// Called only from [`head_group`] (AVX2 and FMA); `q.len()` must be a multiple of 8
    /// and at most the keys' width, and `s` must hold at least `keys.len` values.
    #[inline(always)]
    unsafe fn scores_into(q: &[f32], keys: Rows, scale: f32, s: &mut [f32]) {
        // SAFETY: the caller upholds this function's `# Safety` contract (its doc above).
        unsafe {
            let (hd, qp, kp) = (q.len(), q.as_ptr(), keys.data.as_ptr());
            let key = |j: usize| kp.add(j * keys.stride);
            let mut j = 0;
            while j + 4 <= keys.len {
                let k = [key(j), key(j + 1), key(j + 2), key(j + 3)];
                let mut a = [_mm256_setzero_ps(); 4];
                for c in (0..hd).step_by(8) {
                    let qv = _mm256_loadu_ps(qp.add(c));
                    a[0] = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k[0].add(c)), a[0]);
                    a[1] = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k[1].add(c)), a[1]);
                    a[2] = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k[2].add(c)), a[2]);
                    a[3] = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k[3].add(c)), a[3]);
                }
                // Lanes of a[t] summed: two rounds of pairwise adds give each 128-bit half
                // the four partial sums, and the halves are then added.
                let r = _mm256_hadd_ps(_mm256_hadd_ps(a[0], a[1]), _mm256_hadd_ps(a[2], a[3]));
                let r = _mm_add_ps(_mm256_castps256_ps128(r), _mm256_extractf128_ps(r, 1));
                _mm_storeu_ps(s.as_mut_ptr().add(j), _mm_mul_ps(r, _mm_set1_ps(scale)));
                j += 4;
            }
            while j < keys.len {
                let kj = key(j);
                let mut a = _mm256_setzero_ps();
                for c in (0..hd).step_by(8) {
                    a = _mm256_fmadd_ps(_mm256_loadu_ps(qp.add(c)), _mm256_loadu_ps(kj.add(c)), a);
                }
                let r = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
                let r = _mm_hadd_ps(r, r);
                s[j] = _mm_cvtss_f32(_mm_hadd_ps(r, r)) * scale;
                j += 1;
            }
        }
    }

    /// `o = Σ_j p[j] * values[j]` with `o` (`8 * V` values) held in registers.
    ///
    /// # Safety
    /// Called only from [`head_group`] (AVX2 and FMA); `p` must hold at most `values.len`
    /// weights, each value row at least `8 * V` values, and `o` at least `8 * V`.
    #[inline(always)]
    unsafe fn weighted_sum<const V: usize>(p: &[f32], values: Rows, o: &mut [f32]) {
        // SAFETY: the caller upholds this function's `# Safety` contract (its doc above).
        unsafe {
            let mut acc = [_mm256_setzero_ps(); V];
            let vp = values.data.as_ptr();
            for (j, &pj) in p.iter().enumerate() {
                let (w, v) = (_mm256_set1_ps(pj), vp.add(j * values.stride));
                for (c, a) in acc.iter_mut().enumerate() {
                    *a = _mm256_fmadd_ps(w, _mm256_loadu_ps(v.add(8 * c)), *a);
                }
            }
            for (c, a) in acc.iter().enumerate() {
                _mm256_storeu_ps(o.as_mut_ptr().add(8 * c), *a);
            }
        }
    }

    /// [`weighted_sum`] for other widths (a multiple of 8), accumulating in `o`.
    ///
    /// # Safety
    /// Called only from [`head_group`] (AVX2 and FMA); `o.len()` must be a multiple of 8
    /// and at most the values' width, and `p` must hold at most `values.len` weights.
    #[inline(always)]
    unsafe fn weighted_sum_any(p: &[f32], values: Rows, o: &mut [f32]) {
        // SAFETY: the caller upholds this function's `# Safety` contract (its doc above).
        unsafe {
            o.fill(0.0);
            let vp = values.data.as_ptr();
            for (j, &pj) in p.iter().enumerate() {
                let (w, v) = (_mm256_set1_ps(pj), vp.add(j * values.stride));
                for c in (0..o.len()).step_by(8) {
                    let at = o.as_mut_ptr().add(c);
                    let x = _mm256_fmadd_ps(w, _mm256_loadu_ps(v.add(c)), _mm256_loadu_ps(at));
                    _mm256_storeu_ps(at, x);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SIMD path against the portable one, for the head sizes it specialises and one
    /// it does not, with key counts that are and are not multiples of four, and rows with
    /// gaps between them (a cache wider than its head).
    #[test]
    fn simd_matches_portable() {
        for (hd, len, stride) in [(64, 9, 64), (128, 4, 130), (24, 7, 24), (64, 1, 80)] {
            let gen = |n: usize, seed: f32| -> Vec<f32> {
                (0..n).map(|i| (i as f32 * 0.61 + seed).sin()).collect()
            };
            let (qs, ks, vs) = (
                gen(3 * hd, 0.3),
                gen(len * stride, 1.1),
                gen(len * stride, 2.7),
            );
            let q = Rows::new(&qs, hd, 3, hd).unwrap();
            let k = Rows::new(&ks, stride, len, hd).unwrap();
            let v = Rows::new(&vs, stride, len, hd).unwrap();
            let (mut a, mut b) = (vec![0f32; 3 * hd], vec![0f32; 3 * hd]);
            head_group(q, k, v, 0.125, &mut a);
            portable(q, k, v, 0.125, &mut vec![0.0; len], &mut b);
            for (x, y) in a.iter().zip(&b) {
                assert!((x - y).abs() < 1e-5, "hd {hd} len {len}: {x} vs {y}");
            }
        }
    }

    #[test]
    fn rows_outside_their_slice_are_refused() {
        let data = [0f32; 100];
        assert!(Rows::new(&data, 30, 4, 10).is_some()); // last row ends at 100
        assert!(Rows::new(&data, 30, 4, 11).is_none());
        assert!(Rows::new(&data, 30, 0, 10).is_none());
        assert!(Rows::new(&data, usize::MAX, 3, 1).is_none());
    }
}
