//! Causal attention over a sequence's cached keys and values, on the CPU.
//!
//! candle runs it as two batched matrix products, a mask and a softmax: a dozen small
//! operations per layer per sequence, each with its own allocation and thread hand-off,
//! and its matrix product asks the OS for the CPU count (reading `/proc/cpuinfo`) every
//! call. For one new token against a few hundred cached ones that overhead is most of the
//! cost, so the decoder does it here in plain loops instead.

use candle_core::{Storage, Tensor};
use rayon::prelude::*;

fn err(e: impl std::fmt::Display) -> candle_core::Error {
    candle_core::Error::Msg(e.to_string())
}

/// Runs `f` on the f32 storage of a CPU tensor of rank 3, with its first element's offset
/// and its strides, requiring the last dimension to be contiguous.
fn with_rank3<R>(
    t: &Tensor,
    f: impl FnOnce(&[f32], [usize; 2]) -> candle_core::Result<R>,
) -> candle_core::Result<R> {
    let (storage, layout) = t.storage_and_layout();
    let Storage::Cpu(cpu) = &*storage else {
        return Err(err("CPU attention on a non-CPU tensor"));
    };
    let st = layout.stride();
    if st.len() != 3 || st[2] != 1 {
        return Err(err(format!("attention input with strides {st:?}")));
    }
    f(
        &cpu.as_slice::<f32>()?[layout.start_offset()..],
        [st[0], st[1]],
    )
}

/// Attention for `n` new queries at positions `pos..pos + n`.
///
/// `q` is `[n_head, n, hd]`, `k` and `v` are `[n_kv, total, hd]` (views of the cache,
/// `total = pos + n`); query head `h` reads key/value head `h / (n_head / n_kv)`. Query
/// `i` sees keys `0..=pos + i`. Returns `[n, n_head * hd]`.
pub(crate) fn attend(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    pos: usize,
) -> candle_core::Result<Tensor> {
    let (n_head, n, hd) = q.dims3()?;
    let (n_kv, total, _) = k.dims3()?;
    if n_kv == 0 || n_head % n_kv != 0 || total != pos + n || v.dims3()? != k.dims3()? {
        return Err(err("attention shapes do not fit"));
    }
    let group = n_head / n_kv;
    let scale = 1.0 / (hd as f32).sqrt();
    let q = q.contiguous()?;
    let mut out = vec![0f32; n * n_head * hd];
    with_rank3(&q, |qs, _| {
        with_rank3(k, |ks, [k_head, k_pos]| {
            with_rank3(v, |vs, [v_head, v_pos]| {
                // One piece of work per (query, head): the output's `hd`-wide slices in
                // row-major order. Even one decode token has `n_head` of them, enough to
                // keep every thread busy once the cache is long.
                let piece = |(idx, oh): (usize, &mut [f32])| {
                    let (i, h) = (idx / n_head, idx % n_head);
                    let g = h / group;
                    let qh = &qs[(h * n + i) * hd..(h * n + i + 1) * hd];
                    let mut scores: Vec<f32> = (0..=pos + i)
                        .map(|j| {
                            let at = g * k_head + j * k_pos;
                            dot(qh, &ks[at..at + hd]) * scale
                        })
                        .collect();
                    softmax(&mut scores);
                    oh.fill(0.0);
                    for (j, &p) in scores.iter().enumerate() {
                        let at = g * v_head + j * v_pos;
                        for (x, &y) in oh.iter_mut().zip(&vs[at..at + hd]) {
                            *x += p * y;
                        }
                    }
                };
                // Below this many multiply-adds a thread hand-off costs more than it saves.
                if n * n_head * total * hd >= 1 << 15 {
                    out.par_chunks_mut(hd).enumerate().for_each(piece);
                } else {
                    out.chunks_mut(hd).enumerate().for_each(piece);
                }
                Ok(())
            })
        })
    })?;
    Tensor::from_vec(out, (n, n_head * hd), q.device())
}

/// Dot product in eight independent lanes, which the compiler turns into SIMD.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ac
        .remainder()
        .iter()
        .zip(bc.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ac.zip(bc) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// In-place softmax (shifted by the maximum, like candle's).
fn softmax(s: &mut [f32]) {
    let max = s.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
    let mut sum = 0f32;
    for x in s.iter_mut() {
        *x = (*x - max).exp();
        sum += *x;
    }
    let inv = 1.0 / sum;
    for x in s.iter_mut() {
        *x *= inv;
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};

    #[test]
    fn matches_candle_masked_attention() {
        let dev = Device::Cpu;
        let (h, kv, hd, pos, n) = (6, 2, 16, 5, 4);
        let total = pos + n;
        let r = |s: &[usize], seed: f64| {
            let len: usize = s.iter().product();
            let v: Vec<f32> = (0..len)
                .map(|i| ((i as f64 * 0.37 + seed).sin()) as f32)
                .collect();
            Tensor::from_vec(v, s, &dev).unwrap()
        };
        let q = r(&[h, n, hd], 0.1);
        // Cache views wider than the valid part, as the decoder's are.
        let kc = r(&[kv, total + 3, hd], 0.2);
        let vc = r(&[kv, total + 3, hd], 0.3);
        let (k, v) = (
            kc.narrow(1, 0, total).unwrap(),
            vc.narrow(1, 0, total).unwrap(),
        );
        let got = super::attend(&q, &k, &v, pos)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        // Reference: per head, candle ops with an explicit mask.
        let group = h / kv;
        for hh in 0..h {
            let qh = q.get(hh).unwrap();
            let kh = k.get(hh / group).unwrap().contiguous().unwrap();
            let vh = v.get(hh / group).unwrap().contiguous().unwrap();
            let mut att = (qh.matmul(&kh.t().unwrap()).unwrap() * (1.0 / (hd as f64).sqrt()))
                .unwrap()
                .to_vec2::<f32>()
                .unwrap();
            for (i, row) in att.iter_mut().enumerate() {
                for x in row.iter_mut().skip(pos + i + 1) {
                    *x = f32::NEG_INFINITY;
                }
            }
            let att = Tensor::new(att, &dev).unwrap();
            let p = candle_nn::ops::softmax_last_dim(&att).unwrap();
            let want = p.matmul(&vh).unwrap().to_vec2::<f32>().unwrap();
            for i in 0..n {
                for d in 0..hd {
                    let g = got[i][hh * hd + d];
                    assert!(
                        (g - want[i][d]).abs() < 1e-5,
                        "head {hh} q {i} d {d}: {g} vs {}",
                        want[i][d]
                    );
                }
            }
        }
    }
}
