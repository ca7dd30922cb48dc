//! One attention piece: the query heads that share a key/value head, over that head's
//! keys and values. AVX2 + FMA where the CPU has them (chosen at run time), portable code
//! otherwise; the two differ only in float summation order.

use super::softmax;

/// Attention of the query heads `q` (each `hd` long) over `keys` and `values` (the same
/// count, each `hd` long) into `out` (`q.len() * hd`, head after head).
pub(super) fn head_group(
    q: &[&[f32]],
    keys: &[&[f32]],
    values: &[&[f32]],
    scale: f32,
    out: &mut [f32],
) {
    assert!(keys.len() == values.len() && out.len() == q.len() * q.first().map_or(0, |h| h.len()));
    #[cfg(target_arch = "x86_64")]
    if avx2::usable(q, keys, values) {
        // SAFETY: `usable` checked the CPU's features and every slice's length.
        return unsafe { avx2::head_group(q, keys, values, scale, out) };
    }
    portable(q, keys, values, scale, out)
}

fn portable(q: &[&[f32]], keys: &[&[f32]], values: &[&[f32]], scale: f32, out: &mut [f32]) {
    let len = keys.len();
    let mut scores = vec![0f32; q.len() * len];
    for (h, qh) in q.iter().enumerate() {
        for (j, k) in keys.iter().enumerate() {
            scores[h * len + j] = qh.iter().zip(*k).map(|(a, b)| a * b).sum::<f32>() * scale;
        }
    }
    let hd = out.len() / q.len().max(1);
    for (h, o) in out.chunks_mut(hd.max(1)).enumerate() {
        let s = &mut scores[h * len..(h + 1) * len];
        softmax(s);
        o.fill(0.0);
        for (p, v) in s.iter().zip(values) {
            for (x, y) in o.iter_mut().zip(*v) {
                *x += p * y;
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::softmax;

    /// Whether [`head_group`] can run: AVX2 and FMA, and a head size of whole vectors that
    /// every query, key and value has.
    pub(super) fn usable(q: &[&[f32]], keys: &[&[f32]], values: &[&[f32]]) -> bool {
        let Some(hd) = q.first().map(|h| h.len()) else {
            return false;
        };
        is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && hd > 0
            && hd % 8 == 0
            && q.iter().chain(keys).chain(values).all(|s| s.len() == hd)
    }

    /// # Safety
    /// [`usable`] must have returned true, and `out` be `q.len() * hd` long.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn head_group(
        q: &[&[f32]],
        keys: &[&[f32]],
        values: &[&[f32]],
        scale: f32,
        out: &mut [f32],
    ) {
        let (len, hd) = (keys.len(), q[0].len());
        let mut scores = vec![0f32; q.len() * len];
        for (h, qh) in q.iter().enumerate() {
            let s = &mut scores[h * len..(h + 1) * len];
            scores_into(qh, keys, scale, s);
            softmax(s);
            let o = &mut out[h * hd..(h + 1) * hd];
            match hd {
                64 => weighted_sum::<8>(s, values, o),
                128 => weighted_sum::<16>(s, values, o),
                _ => weighted_sum_any(s, values, o),
            }
        }
    }

    /// `s[j] = scale * q · keys[j]`, four keys at a time so that one horizontal reduction
    /// serves four dot products.
    #[inline(always)]
    unsafe fn scores_into(q: &[f32], keys: &[&[f32]], scale: f32, s: &mut [f32]) {
        let hd = q.len();
        let qp = q.as_ptr();
        let mut j = 0;
        while j + 4 <= keys.len() {
            let k: [*const f32; 4] = [
                keys[j].as_ptr(),
                keys[j + 1].as_ptr(),
                keys[j + 2].as_ptr(),
                keys[j + 3].as_ptr(),
            ];
            let mut a = [_mm256_setzero_ps(); 4];
            for c in (0..hd).step_by(8) {
                let qv = _mm256_loadu_ps(qp.add(c));
                for t in 0..4 {
                    a[t] = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k[t].add(c)), a[t]);
                }
            }
            // Lanes of a[t] summed: two rounds of pairwise adds give each 128-bit half
            // the four partial sums, and the halves are then added.
            let r = _mm256_hadd_ps(_mm256_hadd_ps(a[0], a[1]), _mm256_hadd_ps(a[2], a[3]));
            let r = _mm_add_ps(_mm256_castps256_ps128(r), _mm256_extractf128_ps(r, 1));
            _mm_storeu_ps(s.as_mut_ptr().add(j), _mm_mul_ps(r, _mm_set1_ps(scale)));
            j += 4;
        }
        for (sj, k) in s[j..].iter_mut().zip(&keys[j..]) {
            let mut a = _mm256_setzero_ps();
            for c in (0..hd).step_by(8) {
                a = _mm256_fmadd_ps(
                    _mm256_loadu_ps(qp.add(c)),
                    _mm256_loadu_ps(k.as_ptr().add(c)),
                    a,
                );
            }
            let r = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
            let r = _mm_hadd_ps(r, r);
            *sj = _mm_cvtss_f32(_mm_hadd_ps(r, r)) * scale;
        }
    }

    /// `o = Σ_j p[j] * values[j]` with `o` (`8 * V` values) held in registers.
    #[inline(always)]
    unsafe fn weighted_sum<const V: usize>(p: &[f32], values: &[&[f32]], o: &mut [f32]) {
        let mut acc = [_mm256_setzero_ps(); V];
        for (&pj, v) in p.iter().zip(values) {
            let (w, vp) = (_mm256_set1_ps(pj), v.as_ptr());
            for (c, a) in acc.iter_mut().enumerate() {
                *a = _mm256_fmadd_ps(w, _mm256_loadu_ps(vp.add(8 * c)), *a);
            }
        }
        for (c, a) in acc.iter().enumerate() {
            _mm256_storeu_ps(o.as_mut_ptr().add(8 * c), *a);
        }
    }

    /// [`weighted_sum`] for other head sizes (a multiple of 8), accumulating in `o`.
    #[inline(always)]
    unsafe fn weighted_sum_any(p: &[f32], values: &[&[f32]], o: &mut [f32]) {
        o.fill(0.0);
        for (&pj, v) in p.iter().zip(values) {
            let w = _mm256_set1_ps(pj);
            for c in (0..o.len()).step_by(8) {
                let at = o.as_mut_ptr().add(c);
                let x = _mm256_fmadd_ps(w, _mm256_loadu_ps(v.as_ptr().add(c)), _mm256_loadu_ps(at));
                _mm256_storeu_ps(at, x);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SIMD path against the portable one, for the head sizes it specialises and one
    /// it does not, with key counts that are and are not multiples of four.
    #[test]
    fn simd_matches_portable() {
        for (hd, len) in [(64, 9), (128, 4), (24, 7), (64, 1)] {
            let gen = |n: usize, seed: f32| -> Vec<f32> {
                (0..n).map(|i| (i as f32 * 0.61 + seed).sin()).collect()
            };
            let qs = gen(3 * hd, 0.3);
            let ks = gen(len * hd, 1.1);
            let vs = gen(len * hd, 2.7);
            let q: Vec<&[f32]> = qs.chunks(hd).collect();
            let k: Vec<&[f32]> = ks.chunks(hd).collect();
            let v: Vec<&[f32]> = vs.chunks(hd).collect();
            let (mut a, mut b) = (vec![0f32; 3 * hd], vec![0f32; 3 * hd]);
            head_group(&q, &k, &v, 0.125, &mut a);
            portable(&q, &k, &v, 0.125, &mut b);
            for (x, y) in a.iter().zip(&b) {
                assert!((x - y).abs() < 1e-5, "hd {hd} len {len}: {x} vs {y}");
            }
        }
    }
}
