//! Causal attention over a sequence's cached keys and values, on the CPU.
//!
//! candle runs it as two batched matrix products, a mask and a softmax: a dozen small
//! operations per layer per sequence, each with its own allocation and thread hand-off,
//! and its matrix product asks the OS for the CPU count (reading `/proc/cpuinfo`) every
//! call. For one new token against a few hundred cached ones that overhead is most of the
//! cost, so the decoder does it here in plain loops instead.

use std::ops::Deref;

use candle_core::{Storage, Tensor};
use rayon::prelude::*;

mod group;

use group::Rows;

fn err(e: impl std::fmt::Display) -> candle_core::Error {
    candle_core::Error::Msg(e.to_string())
}

/// A rank-3 CPU f32 tensor's storage, held for reading (`G`: candle's read guard).
struct View3<G> {
    guard: G,
    offset: usize,
    /// Strides of the first two dimensions (the last must be 1).
    strides: [usize; 2],
}

/// Reads `t`, which must be a rank-3 f32 CPU tensor whose last dimension is contiguous.
fn view3(t: &Tensor) -> candle_core::Result<View3<impl Deref<Target = Storage> + '_>> {
    let (guard, layout) = t.storage_and_layout();
    let st = layout.stride();
    if !matches!(&*guard, Storage::Cpu(_)) {
        return Err(err("CPU attention on a non-CPU tensor"));
    }
    if st.len() != 3 || st[2] != 1 {
        return Err(err(format!("attention input with strides {st:?}")));
    }
    let (offset, strides) = (layout.start_offset(), [st[0], st[1]]);
    Ok(View3 {
        guard,
        offset,
        strides,
    })
}

impl<G: Deref<Target = Storage>> View3<G> {
    fn data(&self) -> candle_core::Result<&[f32]> {
        let Storage::Cpu(cpu) = &*self.guard else {
            return Err(err("CPU attention on a non-CPU tensor"));
        };
        Ok(&cpu.as_slice::<f32>()?[self.offset..])
    }
}

/// One sequence's attention inputs for [`attend_many`].
pub(crate) struct SeqAttention<'a> {
    /// The new queries, `[n_head, n, hd]`.
    pub q: &'a Tensor,
    /// All keys so far, `[n_kv, pos + n, hd]` (a view of the cache).
    pub k: &'a Tensor,
    /// All values so far, like `k`.
    pub v: &'a Tensor,
    /// Position of the first new query.
    pub pos: usize,
}

/// Attention for `n` new queries at positions `pos..pos + n`.
///
/// `q` is `[n_head, n, hd]`, `k` and `v` are `[n_kv, total, hd]` (views of the cache,
/// `total = pos + n`); query head `h` reads key/value head `h / (n_head / n_kv)`. Query
/// `i` sees keys `0..=pos + i`. Returns `[n, n_head * hd]`.
#[cfg(test)]
pub(crate) fn attend(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    pos: usize,
) -> candle_core::Result<Tensor> {
    attend_many(&[SeqAttention { q, k, v, pos }])
}

/// [`attend`] for several sequences at once: one parallel pass over every (sequence,
/// query, key/value head), so a batch of decode steps costs one hand-off to the threads
/// per layer rather than one per sequence. Returns the sequences' outputs one after
/// another, `[Σ n, n_head * hd]`.
pub(crate) fn attend_many(seqs: &[SeqAttention<'_>]) -> candle_core::Result<Tensor> {
    let Some(first) = seqs.first() else {
        return Err(err("attention over no sequences"));
    };
    let (n_head, _, hd) = first.q.dims3()?;
    let n_kv = first.k.dim(0)?;
    if n_kv == 0 || n_head % n_kv != 0 {
        return Err(err("attention heads do not fit"));
    }
    let group = n_head / n_kv;
    let (mut qs, mut ns) = (
        Vec::with_capacity(seqs.len()),
        Vec::with_capacity(seqs.len()),
    );
    let mut rows = Vec::new(); // (sequence, query) per output row
    for (si, s) in seqs.iter().enumerate() {
        let (h, n, d) = s.q.dims3()?;
        let (kv, total, _) = s.k.dims3()?;
        if (h, d, kv) != (n_head, hd, n_kv) || total != s.pos + n || s.v.dims3()? != s.k.dims3()? {
            return Err(err("attention shapes do not fit"));
        }
        qs.push(s.q.contiguous()?);
        ns.push(n);
        rows.extend((0..n).map(|i| (si, i)));
    }
    let qv = qs
        .iter()
        .map(view3)
        .collect::<candle_core::Result<Vec<_>>>()?;
    let kv = seqs
        .iter()
        .map(|s| view3(s.k))
        .collect::<candle_core::Result<Vec<_>>>()?;
    let vv = seqs
        .iter()
        .map(|s| view3(s.v))
        .collect::<candle_core::Result<Vec<_>>>()?;
    let (qd, kd, vd) = (
        qv.iter()
            .map(View3::data)
            .collect::<candle_core::Result<Vec<_>>>()?,
        kv.iter()
            .map(View3::data)
            .collect::<candle_core::Result<Vec<_>>>()?,
        vv.iter()
            .map(View3::data)
            .collect::<candle_core::Result<Vec<_>>>()?,
    );
    // Each piece's views, made (and checked to lie inside their storage) before the pass.
    // One piece per (output row, key/value head): the `group` query heads that share the
    // head's keys are computed together, so each key and value is read once for them.
    let mut pieces = Vec::with_capacity(rows.len() * n_kv);
    for &(si, i) in &rows {
        let (s, n) = (&seqs[si], ns[si]);
        let ([k_head, k_pos], [v_head, v_pos]) = (kv[si].strides, vv[si].strides);
        let len = s.pos + i + 1;
        for g in 0..n_kv {
            // Query head h's row i is at (h * n + i) * hd: the group's heads are n * hd apart.
            let q = qd[si]
                .get((g * group * n + i) * hd..)
                .and_then(|d| Rows::new(d, n * hd, group, hd));
            let k = kd[si]
                .get(g * k_head..)
                .and_then(|d| Rows::new(d, k_pos, len, hd));
            let v = vd[si]
                .get(g * v_head..)
                .and_then(|d| Rows::new(d, v_pos, len, hd));
            match (q, k, v) {
                (Some(q), Some(k), Some(v)) => pieces.push((q, k, v)),
                _ => return Err(err("attention views outside their storage")),
            }
        }
    }
    let scale = 1.0 / (hd as f32).sqrt();
    let mut out = vec![0f32; rows.len() * n_head * hd];
    let piece =
        |((q, k, v), o): (&(Rows, Rows, Rows), &mut [f32])| group::head_group(*q, *k, *v, scale, o);
    let work = seqs
        .iter()
        .zip(&ns)
        .map(|(s, n)| n * (s.pos + n))
        .sum::<usize>()
        * n_head
        * hd;
    // Below this many multiply-adds a thread hand-off costs more than it saves.
    if work >= 1 << 15 {
        pieces
            .par_iter()
            .zip(out.par_chunks_mut(group * hd))
            .for_each(piece);
    } else {
        pieces
            .iter()
            .zip(out.chunks_mut(group * hd))
            .for_each(piece);
    }
    Tensor::from_vec(out, (rows.len(), n_head * hd), first.q.device())
}

/// In-place softmax (shifted by the maximum, like candle's).
pub(super) fn softmax(s: &mut [f32]) {
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

    #[test]
    fn many_sequences_equal_one_at_a_time() {
        let dev = Device::Cpu;
        let r = |s: &[usize], seed: f64| {
            let len: usize = s.iter().product();
            let v: Vec<f32> = (0..len)
                .map(|i| ((i as f64 * 0.29 + seed).cos()) as f32)
                .collect();
            Tensor::from_vec(v, s, &dev).unwrap()
        };
        // (pos, n): a prompt, two decode steps at different depths.
        let shapes = [(0, 5), (7, 1), (2, 1)];
        let inputs: Vec<_> = shapes
            .iter()
            .enumerate()
            .map(|(i, &(pos, n))| {
                let f = i as f64;
                (
                    r(&[6, n, 8], f),
                    r(&[2, pos + n, 8], f + 0.5),
                    r(&[2, pos + n, 8], f + 0.7),
                    pos,
                )
            })
            .collect();
        let views: Vec<_> = inputs
            .iter()
            .map(|(q, k, v, pos)| super::SeqAttention { q, k, v, pos: *pos })
            .collect();
        let together = super::attend_many(&views).unwrap();
        let alone: Vec<Tensor> = inputs
            .iter()
            .map(|(q, k, v, pos)| super::attend(q, k, v, *pos).unwrap())
            .collect();
        let alone = Tensor::cat(&alone, 0).unwrap();
        assert_eq!(
            together.to_vec2::<f32>().unwrap(),
            alone.to_vec2::<f32>().unwrap()
        );
        let err = super::attend_many(&[super::SeqAttention {
            q: &inputs[0].0,
            k: &inputs[1].1,
            v: &inputs[1].2,
            pos: 7,
        }]);
        assert!(err.is_err(), "a cache of the wrong length is refused");
    }
}
