//! The feed-forward gate, `silu(gate) * up`, in one pass.
//!
//! candle runs `silu` and the product as two element-wise operations, each handed to its
//! own thread pool; for a decode step's few thousand values the hand-off and the spinning
//! while the other pool's threads wake cost more than the arithmetic, and they compete
//! with the kernel threads. One pass on the calling thread does the same arithmetic
//! (candle's formula, so the values are identical) without either; a batch's worth is
//! split over the kernel threads.

use candle_core::{DType, Storage, Tensor};
use rayon::prelude::*;

/// `silu(gate) * up` element-wise, for tensors of one shape.
pub(crate) fn swiglu(gate: &Tensor, up: &Tensor) -> candle_core::Result<Tensor> {
    let cpu_f32 = |t: &Tensor| t.device().is_cpu() && t.dtype() == DType::F32;
    if !(cpu_f32(gate) && cpu_f32(up)) || gate.shape() != up.shape() {
        return candle_nn::ops::silu(gate)? * up;
    }
    let (gate, up) = (gate.contiguous()?, up.contiguous()?);
    let out = {
        let (gs, gl) = gate.storage_and_layout();
        let (us, ul) = up.storage_and_layout();
        let (Storage::Cpu(g), Storage::Cpu(u)) = (&*gs, &*us) else {
            return Err(candle_core::Error::Msg("swiglu: not CPU storage".into()));
        };
        let at = |l: &candle_core::Layout| {
            l.contiguous_offsets()
                .ok_or_else(|| candle_core::Error::Msg("swiglu: not contiguous".into()))
        };
        let ((g0, g1), (u0, u1)) = (at(gl)?, at(ul)?);
        let (g, u) = (&g.as_slice::<f32>()?[g0..g1], &u.as_slice::<f32>()?[u0..u1]);
        let mut out = vec![0f32; g.len()];
        let fill = |(o, (g, u)): (&mut [f32], (&[f32], &[f32]))| {
            for ((o, &g), &u) in o.iter_mut().zip(g).zip(u) {
                *o = silu(g) * u;
            }
        };
        // A batch's worth (an exp per value) is worth splitting over the kernel threads,
        // which are awake during a model step; a single token's is not.
        const PIECE: usize = 2048;
        if g.len() >= 2 * PIECE {
            let pieces = out
                .par_chunks_mut(PIECE)
                .zip(g.par_chunks(PIECE).zip(u.par_chunks(PIECE)));
            pieces.for_each(fill);
        } else {
            fill((&mut out, (g, u)));
        }
        out
    };
    Tensor::from_vec(out, gate.shape(), gate.device())
}

/// candle's `silu` for f32.
#[inline(always)]
fn silu(v: f32) -> f32 {
    v / (1.0 + (-v).exp())
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;

    #[test]
    fn equals_candles_two_operations_bit_for_bit() {
        let n = 3 * 1536; // above the size that is split over threads
        let g: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin() * 9.0).collect();
        let u: Vec<f32> = (0..n).map(|i| (i as f32 * 0.11).cos() * 3.0).collect();
        let g = Tensor::from_vec(g, (3, 1536), &Device::Cpu).unwrap();
        let u = Tensor::from_vec(u, (3, 1536), &Device::Cpu).unwrap();
        let want = (candle_nn::ops::silu(&g).unwrap() * &u).unwrap();
        let got = swiglu(&g, &u).unwrap();
        let (want, got): (Vec<f32>, Vec<f32>) = (
            want.flatten_all().unwrap().to_vec1().unwrap(),
            got.flatten_all().unwrap().to_vec1().unwrap(),
        );
        assert!(want
            .iter()
            .zip(&got)
            .all(|(a, b)| a.to_bits() == b.to_bits()));
        // A transposed (non-contiguous) input is copied first, not misread.
        let gt = g.t().unwrap();
        let ut = u.t().unwrap();
        let want = (candle_nn::ops::silu(&gt).unwrap() * &ut).unwrap();
        let got = swiglu(&gt, &ut).unwrap();
        assert_eq!(
            want.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            got.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        );
    }
}
