//! The decoder's weight matrices: native kernels for the block formats they cover,
//! candle for everything else (float weights, other quantisations, GPUs).

use candle_core::quantized::{QMatMul, QTensor};
use candle_core::{DType, Device, Module, Storage, Tensor};

use super::{matmul_many, Backend, QWeight, QuantType};

/// A weight matrix `[n, k]` applied as `x[m, k] · Wᵀ`.
pub(crate) enum Linear {
    /// GGML blocks multiplied by [`super`]'s kernels (CPU only).
    Quant(QWeight),
    /// candle's product.
    Dense(QMatMul),
}

fn err(e: impl std::fmt::Display) -> candle_core::Error {
    candle_core::Error::Msg(e.to_string())
}

impl Linear {
    /// Native kernels when `q` is a format they cover and the model runs on the CPU.
    pub(crate) fn from_qtensor(q: QTensor, device: &Device) -> candle_core::Result<Self> {
        if device.is_cpu() && QuantType::from_ggml(q.dtype()).is_some() {
            return QWeight::from_qtensor(&q)
                .map(|w| Self::Quant(w.prepared_for(Backend::best())))
                .map_err(err);
        }
        QMatMul::from_qtensor(q).map(Self::Dense)
    }

    /// `x[m, k] · Wᵀ`, `[m, n]`.
    pub(crate) fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let [y] = Self::forward_many([self], x)?;
        Ok(y)
    }

    /// Several matrices applied to one input; the native ones run as one parallel pass
    /// that quantises `x` once, the others through candle.
    pub(crate) fn forward_many<const N: usize>(
        ls: [&Self; N],
        x: &Tensor,
    ) -> candle_core::Result<[Tensor; N]> {
        let ws: Vec<&QWeight> = ls
            .iter()
            .filter_map(|l| match l {
                Self::Quant(w) => Some(w),
                Self::Dense(_) => None,
            })
            .collect();
        let mut native = native_many(&ws, x)?.into_iter();
        let ys: Vec<Tensor> = ls
            .iter()
            .map(|l| match l {
                Self::Quant(_) => native.next().ok_or_else(|| err("missing output")),
                Self::Dense(d) => d.forward(x),
            })
            .collect::<candle_core::Result<_>>()?;
        ys.try_into().map_err(|_| err("output count"))
    }
}

/// `x[m, k] · wᵀ` for each of `ws`, in one pass of the kernels.
fn native_many(ws: &[&QWeight], x: &Tensor) -> candle_core::Result<Vec<Tensor>> {
    if ws.is_empty() {
        return Ok(Vec::new());
    }
    let (m, k) = x.dims2()?;
    let x = x.to_dtype(DType::F32)?.contiguous()?;
    let mut outs: Vec<Vec<f32>> = ws.iter().map(|w| vec![0f32; m * w.rows()]).collect();
    {
        // Borrow the input where it lies: copying it out costs as much as the product
        // itself for one token.
        let (storage, layout) = x.storage_and_layout();
        let Storage::Cpu(cpu) = &*storage else {
            return Err(err("a native weight needs a CPU input"));
        };
        let (start, end) = layout
            .contiguous_offsets()
            .ok_or_else(|| err("input not contiguous"))?;
        let xs = &cpu.as_slice::<f32>()?[start..end];
        debug_assert_eq!(xs.len(), m * k);
        let mut views: Vec<&mut [f32]> = outs.iter_mut().map(|o| o.as_mut_slice()).collect();
        matmul_many(ws, xs, m, &mut views, Backend::best()).map_err(err)?;
    }
    outs.into_iter()
        .zip(ws)
        .map(|(o, w)| Tensor::from_vec(o, (m, w.rows()), x.device()))
        .collect()
}
