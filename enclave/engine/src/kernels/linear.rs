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
            return QWeight::from_qtensor(&q).map(Self::Quant).map_err(err);
        }
        QMatMul::from_qtensor(q).map(Self::Dense)
    }

    /// `x[m, k] · Wᵀ`, `[m, n]`.
    pub(crate) fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let [y] = Self::forward_many([self], x)?;
        Ok(y)
    }

    /// Several matrices applied to one input; when all are native this is one parallel
    /// pass that quantises `x` once.
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
        if ws.len() < N || !x.device().is_cpu() {
            return Ok(std_array(ls.map(|l| match l {
                Self::Quant(_) => Err(err("a native weight needs a CPU input")),
                Self::Dense(d) => d.forward(x),
            }))?);
        }
        let (m, k) = x.dims2()?;
        let x = x.to_dtype(DType::F32)?.contiguous()?;
        let mut outs: Vec<Vec<f32>> = ws.iter().map(|w| vec![0f32; m * w.rows()]).collect();
        {
            // Borrow the input where it lies: copying it out costs as much as the
            // product itself for one token.
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
            matmul_many(&ws, xs, m, &mut views, Backend::best()).map_err(err)?;
        }
        let mut it = outs
            .into_iter()
            .zip(&ws)
            .map(|(o, w)| Tensor::from_vec(o, (m, w.rows()), x.device()));
        std_array(std::array::from_fn(|_| {
            it.next().unwrap_or_else(|| Err(err("missing output")))
        }))
    }
}

/// `[Result<T>; N]` to `Result<[T; N]>`.
fn std_array<T, const N: usize>(rs: [candle_core::Result<T>; N]) -> candle_core::Result<[T; N]> {
    let v: Vec<T> = rs.into_iter().collect::<candle_core::Result<_>>()?;
    v.try_into().map_err(|_| err("length"))
}
