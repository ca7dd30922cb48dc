//! Quantised matrix products on the CPU, computed the way llama.cpp computes them.
//!
//! candle's CPU `QMatMul` dequantises nothing but runs scalar dot products for Q4_1 and
//! splits work poorly across threads; this module is the fast path the decoder uses for
//! GGML-quantised weights. For `y[m, n] = x[m, k] · W[n, k]ᵀ` it
//!
//! 1. quantises each activation row once into 8-bit blocks (Q8_1 for Q4_1 weights, Q8_0
//!    for Q4_0, Q5_0 and Q8_0, Q8_K for Q4_K and Q6_K), with llama.cpp's rounding, so
//!    logits stay close to its;
//! 2. splits the weight rows into chunks over the worker threads ([`install`]);
//! 3. multiplies each weight block into all `m` activation rows while it is in registers,
//!    with integer dot products (AVX2 when the CPU has it, else portable code that gives
//!    the same bits), so a batch of sequences reads the weights once.
//!
//! On CPUs with AVX2, Q4_0, Q4_1, Q5_0 and Q8_0 weights are repacked when loaded into
//! tiles of sixteen interleaved rows ([`tiles`]), whose kernels need a small fraction of
//! the row kernels' instructions per product: 512-bit `vpdpbusd` ones ([`vnni`]) where the
//! CPU has AVX-512 VNNI, 256-bit `maddubs` ones ([`tiles_avx2`]) elsewhere. Under the
//! AVX2 tile backend the K-quants (Q4_K, Q6_K) are tiled too ([`tiles_k`],
//! [`tiles_k_avx2`]), with results equal to their row kernels' bit for bit; the VNNI
//! backend keeps them in rows.

mod act;
pub(crate) mod attention;
#[cfg(target_arch = "x86_64")]
mod avx2;
mod f16;
mod linear;
mod out;
mod scalar;
mod swiglu;
mod threads;
mod tiles;
#[cfg(target_arch = "x86_64")]
mod tiles_avx2;
mod tiles_k;
#[cfg(target_arch = "x86_64")]
mod tiles_k_avx2;
#[cfg(target_arch = "x86_64")]
mod vnni;

use candle_core::quantized::{GgmlDType, QTensor};
use rayon::prelude::*;

use act::{ActFormat, Q8Block, QK, QK_K};
pub(crate) use linear::Linear;
use out::OutRows;
pub(crate) use swiglu::swiglu;
pub use threads::{install, install_busy, thread_count, THREADS_ENV};

/// The GGML block formats multiplied natively.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuantType {
    /// 32 weights: an f16 scale and 4-bit values offset by 8.
    Q4_0,
    /// 32 weights: an f16 scale, an f16 minimum and 4-bit values.
    Q4_1,
    /// 32 weights: an f16 scale and 8-bit values.
    Q8_0,
    /// 32 weights: an f16 scale and 5-bit values offset by 16 (high bits packed apart).
    Q5_0,
    /// 256 weights: f16 super-scale and super-minimum, eight 6-bit scales and minimums,
    /// 4-bit values.
    Q4K,
    /// 256 weights: 6-bit values offset by 32, sixteen 8-bit scales, an f16 super-scale.
    Q6K,
}

impl QuantType {
    /// The native format for a GGML type, or `None` when candle must do the product.
    pub fn from_ggml(dtype: GgmlDType) -> Option<Self> {
        match dtype {
            GgmlDType::Q4_0 => Some(Self::Q4_0),
            GgmlDType::Q4_1 => Some(Self::Q4_1),
            GgmlDType::Q8_0 => Some(Self::Q8_0),
            GgmlDType::Q5_0 => Some(Self::Q5_0),
            GgmlDType::Q4K => Some(Self::Q4K),
            GgmlDType::Q6K => Some(Self::Q6K),
            _ => None,
        }
    }

    /// Weights per block.
    pub const fn block_elems(self) -> usize {
        match self {
            Self::Q4K | Self::Q6K => QK_K,
            _ => QK,
        }
    }

    /// Bytes per block, as stored in a GGUF file.
    pub const fn block_bytes(self) -> usize {
        match self {
            Self::Q4_0 => 18,
            Self::Q4_1 => 20,
            Self::Q8_0 => 34,
            Self::Q5_0 => 22,
            Self::Q4K => 144,
            Self::Q6K => 210,
        }
    }

    /// Bytes in a weight row as long as `nb` 32-value activation blocks.
    const fn row_bytes(self, nb: usize) -> usize {
        nb * QK / self.block_elems() * self.block_bytes()
    }

    fn act_format(self) -> ActFormat {
        match self {
            Self::Q4_1 => ActFormat::Q8_1,
            Self::Q4_0 | Self::Q8_0 | Self::Q5_0 => ActFormat::Q8_0,
            Self::Q4K | Self::Q6K => ActFormat::Q8K,
        }
    }
}

/// Which implementation of the dot products runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Portable Rust; the reference.
    Scalar,
    /// x86-64 AVX2 + FMA.
    Avx2,
    /// AVX2 kernels with AVX-512 VNNI dot products (same results as [`Backend::Avx2`]).
    Avx2Vnni,
    /// [`Backend::Avx2Vnni`], and weights of the types [`QWeight::prepared_for`] tiles
    /// repacked into sixteen-row tiles with AVX-512 kernels of their own. Tiled results
    /// differ from the row kernels' in float rounding only (each block's integer sum is
    /// converted whole rather than in eight lanes); the portable code reproduces them
    /// exactly.
    VnniTiles,
    /// [`Backend::Avx2`], and the weights [`QWeight::prepared_for`] tiles in the layout of
    /// [`Backend::VnniTiles`], with AVX2 kernels of their own (for CPUs with AVX2 and FMA
    /// but not AVX-512 VNNI; the same results as [`Backend::VnniTiles`], bit for bit).
    /// Q4_K and Q6_K are tiled too, with results equal to [`Backend::Avx2`]'s bit for bit.
    Avx2Tiles,
}

impl Backend {
    /// The fastest backend this CPU supports, unless `SILK_KERNELS` (`scalar`, `avx2`,
    /// `avx2-vnni`, `vnni-tiles`, `avx2-tiles`) names another one it supports (for
    /// comparing them in benchmarks).
    pub fn best() -> Self {
        static CHOSEN: std::sync::OnceLock<Backend> = std::sync::OnceLock::new();
        *CHOSEN.get_or_init(|| {
            let forced = match std::env::var("SILK_KERNELS").as_deref() {
                Ok("scalar") => Some(Self::Scalar),
                Ok("avx2") => Some(Self::Avx2),
                Ok("avx2-vnni") => Some(Self::Avx2Vnni),
                Ok("vnni-tiles") => Some(Self::VnniTiles),
                Ok("avx2-tiles") => Some(Self::Avx2Tiles),
                _ => None,
            };
            forced
                .filter(|b| b.is_available())
                .unwrap_or_else(Self::fastest)
        })
    }

    fn fastest() -> Self {
        if Self::VnniTiles.is_available() {
            Self::VnniTiles
        } else if Self::Avx2Tiles.is_available() {
            Self::Avx2Tiles
        } else {
            Self::Scalar
        }
    }

    /// Whether the backend has kernels of its own for tiled weights (and so wants them).
    pub fn tiles(self) -> bool {
        matches!(self, Self::VnniTiles | Self::Avx2Tiles)
    }

    /// Whether this CPU can run the backend.
    pub fn is_available(self) -> bool {
        match self {
            Self::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Self::Avx2 => avx2::available(),
            #[cfg(target_arch = "x86_64")]
            Self::Avx2Vnni => avx2::vnni_available(),
            #[cfg(target_arch = "x86_64")]
            Self::VnniTiles => vnni::available(),
            #[cfg(target_arch = "x86_64")]
            Self::Avx2Tiles => tiles_avx2::available(),
            #[cfg(not(target_arch = "x86_64"))]
            Self::Avx2 | Self::Avx2Vnni | Self::VnniTiles | Self::Avx2Tiles => false,
        }
    }

    /// `out[row, r] = w_row · acts[r]` for the rows of `w` in `out`'s band (which starts at
    /// a multiple of [`tiles::TILE`]).
    fn product(self, w: &QWeight, acts: &[&[Q8Block]], nb: usize, out: &mut OutRows) {
        let (row0, rows) = (out.row0(), out.rows());
        match w.layout {
            Layout::Rows => {
                let row_bytes = w.ty.row_bytes(nb);
                let at = row0 * row_bytes;
                self.dot_rows(w.ty, &w.data[at..at + rows * row_bytes], acts, nb, out);
            }
            Layout::Tiles if tiles_k::tiled(w.ty) => {
                let tile_bytes = tiles_k::tile_bytes(w.ty, nb);
                let at = row0 / tiles::TILE * tile_bytes;
                let data = &w.data[at..at + rows.div_ceil(tiles::TILE) * tile_bytes];
                match self {
                    // Any SIMD backend runs the AVX2 kernel (a VNNI CPU has AVX2 too).
                    #[cfg(target_arch = "x86_64")]
                    Self::Avx2 | Self::Avx2Vnni | Self::VnniTiles | Self::Avx2Tiles => {
                        tiles_k_avx2::dot_tiles(w.ty, data, acts, nb, out)
                    }
                    _ => tiles_k::dot_tiles(w.ty, data, acts, nb, out),
                }
            }
            Layout::Tiles => {
                let tile_bytes = nb * tiles::tile_block_bytes(w.ty);
                let at = row0 / tiles::TILE * tile_bytes;
                let data = &w.data[at..at + rows.div_ceil(tiles::TILE) * tile_bytes];
                match self {
                    #[cfg(target_arch = "x86_64")]
                    Self::VnniTiles => vnni::dot_tiles(w.ty, data, acts, nb, out),
                    #[cfg(target_arch = "x86_64")]
                    Self::Avx2Tiles => tiles_avx2::dot_tiles(w.ty, data, acts, nb, out),
                    _ => tiles::dot_tiles(w.ty, data, acts, nb, out),
                }
            }
        }
    }

    /// `out[row, r] = w_row · acts[r]` for the whole weight rows of `nb` blocks in `w`.
    fn dot_rows(self, ty: QuantType, w: &[u8], acts: &[&[Q8Block]], nb: usize, out: &mut OutRows) {
        match self {
            #[cfg(target_arch = "x86_64")]
            Self::Avx2 | Self::Avx2Tiles => avx2::dot_rows(ty, w, acts, nb, out, false),
            #[cfg(target_arch = "x86_64")]
            Self::Avx2Vnni | Self::VnniTiles => avx2::dot_rows(ty, w, acts, nb, out, true),
            _ => {
                let dot = match ty {
                    QuantType::Q4_0 => scalar::dot_q4_0,
                    QuantType::Q4_1 => scalar::dot_q4_1,
                    QuantType::Q8_0 => scalar::dot_q8_0,
                    QuantType::Q5_0 => scalar::dot_q5_0,
                    QuantType::Q4K => scalar::dot_q4_k,
                    QuantType::Q6K => scalar::dot_q6_k,
                };
                for (i, wr) in w.chunks_exact(ty.row_bytes(nb)).enumerate() {
                    for (r, a) in acts.iter().enumerate() {
                        out.set(i, r, dot(wr, &a[..nb]));
                    }
                }
            }
        }
    }
}

/// Why a product could not run.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// The GGML type has no native kernel.
    #[error("no native kernel for {0:?}")]
    Unsupported(GgmlDType),
    /// Sizes that do not fit together.
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// The backend cannot run on this CPU.
    #[error("the {0:?} kernels are not available on this CPU")]
    Unavailable(Backend),
    /// candle could not hand over the weight bytes.
    #[error("reading the weights: {0}")]
    Candle(#[from] candle_core::Error),
}

/// How a [`QWeight`] holds its blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Layout {
    /// GGML's: row after row.
    Rows,
    /// Sixteen rows interleaved ([`tiles`]).
    Tiles,
}

/// A quantised weight matrix `[rows, cols]`: GGML's blocks, row after row, or repacked
/// into tiles for the backend that runs it ([`QWeight::prepared_for`]).
#[derive(Clone)]
pub struct QWeight {
    ty: QuantType,
    rows: usize,
    cols: usize,
    layout: Layout,
    data: Vec<u8>,
}

impl std::fmt::Debug for QWeight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "QWeight({:?}, {}x{}, {:?})",
            self.ty, self.rows, self.cols, self.layout
        )
    }
}

impl QWeight {
    /// Wraps raw GGML blocks; `data` must hold exactly `rows * cols / block_elems` blocks.
    pub fn new(
        ty: QuantType,
        rows: usize,
        cols: usize,
        data: Vec<u8>,
    ) -> Result<Self, KernelError> {
        if !cols.is_multiple_of(ty.block_elems()) {
            return Err(KernelError::Shape(format!(
                "{cols} columns is not a multiple of the {}-weight block",
                ty.block_elems()
            )));
        }
        let want = rows * (cols / ty.block_elems()) * ty.block_bytes();
        if data.len() != want {
            return Err(KernelError::Shape(format!(
                "{ty:?} {rows}x{cols} needs {want} bytes, got {}",
                data.len()
            )));
        }
        Ok(Self {
            ty,
            rows,
            cols,
            layout: Layout::Rows,
            data,
        })
    }

    /// The layout `backend` runs fastest: tiles for Q4_0, Q4_1, Q5_0 and Q8_0 under
    /// [`Backend::VnniTiles`] and [`Backend::Avx2Tiles`], and for Q4_K and Q6_K under
    /// [`Backend::Avx2Tiles`] (the VNNI backend has no K-quant tile kernel, and its row
    /// kernels use VNNI); GGML's rows otherwise. Any backend can multiply either layout
    /// (tiles under the portable backend slowly, through the reference).
    pub fn prepared_for(self, backend: Backend) -> Self {
        // Both tile backends run the K-quant tiles with the AVX2 kernel (a VNNI CPU has AVX2
        // too), which gives the row kernels' bits: tiling only saves work.
        let k_tiles = tiles_k::tiled(self.ty) && backend.tiles();
        if backend.tiles() && (tiles::tiled(self.ty) || k_tiles) {
            self.into_tiles()
        } else {
            self
        }
    }

    /// Repacked into tiles, when its type has a tiled layout.
    fn into_tiles(self) -> Self {
        let k = tiles_k::tiled(self.ty);
        if self.layout == Layout::Tiles || !(tiles::tiled(self.ty) || k) {
            return self;
        }
        let nb = self.cols / QK;
        let repack = if k { tiles_k::repack } else { tiles::repack };
        Self {
            data: repack(self.ty, self.rows, nb, &self.data),
            layout: Layout::Tiles,
            ..self
        }
    }

    /// Copies a 2-D candle `QTensor`'s blocks (`[rows, cols]`, as GGUF stores weights).
    pub fn from_qtensor(t: &QTensor) -> Result<Self, KernelError> {
        let ty = QuantType::from_ggml(t.dtype()).ok_or(KernelError::Unsupported(t.dtype()))?;
        let (rows, cols) = t
            .shape()
            .dims2()
            .map_err(|_| KernelError::Shape(format!("{:?} is not 2-D", t.shape())))?;
        Self::new(ty, rows, cols, t.data()?.into_owned())
    }

    /// The block format.
    pub fn quant_type(&self) -> QuantType {
        self.ty
    }

    /// Output features (`n`).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Input features (`k`).
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// `out[m, rows] = x[m, cols] · selfᵀ` on the best backend.
    pub fn matmul(&self, x: &[f32], m: usize, out: &mut [f32]) -> Result<(), KernelError> {
        matmul_many(&[self], x, m, &mut [out], Backend::best())
    }

    /// As [`QWeight::matmul`], on a chosen backend (to compare them).
    pub fn matmul_with(
        &self,
        x: &[f32],
        m: usize,
        out: &mut [f32],
        backend: Backend,
    ) -> Result<(), KernelError> {
        matmul_many(&[self], x, m, &mut [out], backend)
    }
}

/// Several products of one input in a single parallel pass: `outs[i][m, ws[i].rows] =
/// x[m, k] · ws[i]ᵀ` (for instance the query, key and value projections).
///
/// The activations are quantised once per format, and all the weights' rows form one
/// pool of work, so the threads stay busy even when each matrix alone is small.
pub fn matmul_many(
    ws: &[&QWeight],
    x: &[f32],
    m: usize,
    outs: &mut [&mut [f32]],
    backend: Backend,
) -> Result<(), KernelError> {
    let Some(k) = ws.first().map(|w| w.cols) else {
        return Ok(());
    };
    if !backend.is_available() {
        return Err(KernelError::Unavailable(backend));
    }
    if ws.iter().any(|w| w.cols != k) || x.len() != m * k || outs.len() != ws.len() {
        return Err(KernelError::Shape(format!(
            "input of {} values for m={m} against weights of {k} columns",
            x.len()
        )));
    }
    if let Some((w, o)) = ws
        .iter()
        .zip(outs.iter())
        .find(|(w, o)| o.len() != m * w.rows)
    {
        return Err(KernelError::Shape(format!(
            "output of {} values for {m}x{}",
            o.len(),
            w.rows
        )));
    }
    if m == 0 {
        return Ok(());
    }
    install(|| run(ws, x, m, outs, backend));
    Ok(())
}

/// The rows of `nb` blocks of a quantised activation matrix (none when not needed).
fn act_rows(q: &Option<Vec<Q8Block>>, nb: usize) -> Vec<&[Q8Block]> {
    q.as_deref()
        .map_or_else(Vec::new, |q| q.chunks(nb).collect())
}

/// [`matmul_many`] after its checks, on the pool.
fn run(ws: &[&QWeight], x: &[f32], m: usize, outs: &mut [&mut [f32]], backend: Backend) {
    let k = ws[0].cols;
    let nb = k / QK;
    let quantise = |fmt: ActFormat| -> Option<Vec<Q8Block>> {
        if !ws.iter().any(|w| w.ty.act_format() == fmt) {
            return None;
        }
        let mut q = vec![Q8Block::default(); m * nb];
        // Rows are independent; a prompt's worth is worth splitting.
        q.par_chunks_mut(nb)
            .zip(x.par_chunks(k))
            .with_min_len(8)
            .for_each(|(qr, xr)| act::quantize_row(xr, qr, fmt));
        Some(q)
    };
    let (q8_0, q8_1, q8_k) = (
        quantise(ActFormat::Q8_0),
        quantise(ActFormat::Q8_1),
        quantise(ActFormat::Q8K),
    );
    let (rows_0, rows_1, rows_k) = (
        act_rows(&q8_0, nb),
        act_rows(&q8_1, nb),
        act_rows(&q8_k, nb),
    );

    let total_rows: usize = ws.iter().map(|w| w.rows).sum();
    // Several chunks per thread so a thread slowed by something else is caught up by
    // the others; a floor so tiny chunks do not cost more to hand out than to compute;
    // whole tiles, for the tiled weights.
    let chunk = total_rows
        .div_ceil(thread_count() * 8)
        .max(16)
        .next_multiple_of(tiles::TILE);
    let items: Vec<(usize, OutRows)> = outs
        .iter_mut()
        .zip(ws)
        .enumerate()
        .flat_map(|(i, (o, w))| {
            OutRows::split(o, m, w.rows, chunk)
                .into_iter()
                .map(move |band| (i, band))
        })
        .collect();
    items.into_par_iter().for_each(|(i, mut band)| {
        let w = ws[i];
        let acts = match w.ty.act_format() {
            ActFormat::Q8_0 => &rows_0,
            ActFormat::Q8_1 => &rows_1,
            ActFormat::Q8K => &rows_k,
        };
        backend.product(w, acts, nb, &mut band);
    });
}

#[cfg(test)]
mod tests;
