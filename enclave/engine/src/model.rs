//! The llama-family decoder, written for serving many sequences at once.
//!
//! candle's own llama models keep one KV cache inside the model, which serves one
//! conversation at a time. Here the caches live outside ([`KvCache`], one per sequence),
//! and one [`Model::forward`] call advances any mix of sequences — whole prompts being
//! prefilled and single tokens being decoded — through every weight matrix once. Only
//! attention, whose keys differ per sequence, runs per sequence.

use candle_core::{DType, Device, Tensor};

use crate::config::{ModelConfig, RopeStyle};
use crate::error::RunError;
use crate::kernels::{self, Linear};

/// One transformer block's weights.
pub(crate) struct Layer {
    pub attn_norm: Tensor,
    pub wq: Linear,
    pub wk: Linear,
    pub wv: Linear,
    pub wo: Linear,
    pub bq: Option<Tensor>,
    pub bk: Option<Tensor>,
    pub bv: Option<Tensor>,
    pub ffn_norm: Tensor,
    pub w_gate: Linear,
    pub w_up: Linear,
    pub w_down: Linear,
}

/// All weights of a model.
pub(crate) struct Weights {
    /// Token embeddings, dequantised: `[vocab, d_model]`.
    pub embed: Tensor,
    pub layers: Vec<Layer>,
    pub norm: Tensor,
    /// The output projection (the embedding matrix again when tied).
    pub output: Linear,
}

/// A loaded model, ready to run.
pub struct Model {
    cfg: ModelConfig,
    w: Weights,
    cos: Tensor,
    sin: Tensor,
    device: Device,
}

/// The keys and values one sequence has seen, for every layer.
///
/// Storage grows by doubling, so appending a token is amortised O(1) copies; its size in
/// bytes is what the scheduler's memory budget counts.
pub struct KvCache {
    layers: Vec<Option<(Tensor, Tensor)>>,
    len: usize,
    capacity: usize,
    /// Tokens to allocate room for at the first append (the scheduler's reservation).
    reserve: usize,
}

impl KvCache {
    /// Tokens held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no token has been processed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Tokens that fit before the storage must grow.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Appends `k`, `v` (`[n_kv, n, head_dim]`) for `layer` at position `self.len` and
    /// returns views of all keys and values so far (`[n_kv, len + n, head_dim]`).
    fn append(
        &mut self,
        layer: usize,
        k: &Tensor,
        v: &Tensor,
    ) -> candle_core::Result<(Tensor, Tensor)> {
        let n = k.dim(1)?;
        let needed = self.len + n;
        let slot = &mut self.layers[layer];
        let grow = match slot {
            None => true,
            Some((kc, _)) => kc.dim(1)? < needed,
        };
        if grow {
            // Layer 0 always appends first in a step and decides the new size for all.
            if layer == 0 {
                self.capacity = if self.capacity == 0 {
                    needed.max(self.reserve).max(16)
                } else {
                    needed.max(2 * self.capacity)
                };
            }
            let cap = self.capacity.max(needed);
            let (n_kv, _, hd) = k.dims3()?;
            let kc = Tensor::zeros((n_kv, cap, hd), DType::F32, k.device())?;
            let vc = Tensor::zeros((n_kv, cap, hd), DType::F32, k.device())?;
            if let Some((old_k, old_v)) = slot.as_ref() {
                if self.len > 0 {
                    kc.slice_set(&old_k.narrow(1, 0, self.len)?.contiguous()?, 1, 0)?;
                    vc.slice_set(&old_v.narrow(1, 0, self.len)?.contiguous()?, 1, 0)?;
                }
            }
            *slot = Some((kc, vc));
        }
        let Some((kc, vc)) = slot.as_ref() else {
            unreachable!("the slot was filled above")
        };
        kc.slice_set(&k.contiguous()?, 1, self.len)?;
        vc.slice_set(&v.contiguous()?, 1, self.len)?;
        Ok((kc.narrow(1, 0, needed)?, vc.narrow(1, 0, needed)?))
    }
}

/// One sequence's part of a [`Model::forward`] step.
pub struct SeqStep<'a> {
    /// New tokens: a whole prompt (prefill) or one sampled token (decode).
    pub tokens: &'a [u32],
    /// The sequence's cache; it grows by `tokens.len()`.
    pub cache: &'a mut KvCache,
}

impl Model {
    pub(crate) fn new(cfg: ModelConfig, w: Weights, device: Device) -> Result<Self, RunError> {
        let half = cfg.head_dim / 2;
        let inv: Vec<f32> = (0..half)
            .map(|i| 1.0 / cfg.rope_theta.powf(2.0 * i as f32 / cfg.head_dim as f32))
            .collect();
        let inv = Tensor::from_vec(inv, (1, half), &device)?;
        let pos = Tensor::arange(0u32, cfg.context_length as u32, &device)?
            .to_dtype(DType::F32)?
            .reshape((cfg.context_length, 1))?;
        let freqs = pos.broadcast_mul(&inv)?;
        Ok(Self {
            cos: freqs.cos()?,
            sin: freqs.sin()?,
            cfg,
            w,
            device,
        })
    }

    /// The model's hyper-parameters.
    pub fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// A new, empty cache for one sequence.
    pub fn new_cache(&self) -> KvCache {
        self.new_cache_with_capacity(0)
    }

    /// A new cache that allocates room for `tokens` at once, so a sequence that stays
    /// within it never reallocates (and its memory is exactly what was reserved).
    pub fn new_cache_with_capacity(&self, tokens: usize) -> KvCache {
        KvCache {
            layers: (0..self.cfg.n_layer).map(|_| None).collect(),
            len: 0,
            capacity: 0,
            reserve: tokens,
        }
    }

    /// Runs `steps` through the model and returns the logits after each sequence's last
    /// new token, `[steps.len(), vocab]` (f32). Every cache grows by its step's tokens.
    pub fn forward(&self, steps: &mut [SeqStep<'_>]) -> Result<Tensor, RunError> {
        // On the kernel threads, so each matrix product splits without a hand-off.
        kernels::install_busy(|| self.forward_on_pool(steps))
    }

    fn forward_on_pool(&self, steps: &mut [SeqStep<'_>]) -> Result<Tensor, RunError> {
        let cfg = &self.cfg;
        let ids: Vec<u32> = steps
            .iter()
            .flat_map(|s| s.tokens.iter().copied())
            .collect();
        if ids.is_empty() {
            return Err(RunError(candle_core::Error::Msg(
                "forward with no tokens".into(),
            )));
        }
        for s in steps.iter() {
            if s.cache.len + s.tokens.len() > cfg.context_length {
                return Err(RunError(candle_core::Error::Msg(format!(
                    "sequence of {} tokens exceeds the context length {}",
                    s.cache.len + s.tokens.len(),
                    cfg.context_length
                ))));
            }
        }
        let total = ids.len();
        let ids = Tensor::from_vec(ids, total, &self.device)?;
        let mut x = self.w.embed.index_select(&ids, 0)?;
        let eps = cfg.rms_eps as f32;
        for (li, layer) in self.w.layers.iter().enumerate() {
            let h = candle_nn::ops::rms_norm(&x, &layer.attn_norm, eps)?;
            let [q, k, v] = Linear::forward_many([&layer.wq, &layer.wk, &layer.wv], &h)?;
            let q = add_bias(q, layer.bq.as_ref())?;
            let k = add_bias(k, layer.bk.as_ref())?;
            let v = add_bias(v, layer.bv.as_ref())?;
            let mut inputs = Vec::with_capacity(steps.len());
            let mut offset = 0;
            for s in steps.iter_mut() {
                let n = s.tokens.len();
                let pos = s.cache.len;
                let (q, k, v) = self.rope_and_cache(
                    li,
                    &q.narrow(0, offset, n)?,
                    &k.narrow(0, offset, n)?,
                    &v.narrow(0, offset, n)?,
                    s.cache,
                )?;
                inputs.push((q, k, v, pos));
                offset += n;
            }
            let attn = self.attend(&inputs)?;
            x = (x + layer.wo.forward(&attn)?)?;
            let h = candle_nn::ops::rms_norm(&x, &layer.ffn_norm, eps)?;
            let [gate, up] = Linear::forward_many([&layer.w_gate, &layer.w_up], &h)?;
            x = (x + layer.w_down.forward(&kernels::swiglu(&gate, &up)?)?)?;
        }
        let mut last = Vec::with_capacity(steps.len());
        let mut offset = 0u32;
        for s in steps.iter_mut() {
            offset += s.tokens.len() as u32;
            last.push(offset - 1);
            s.cache.len += s.tokens.len();
        }
        let last = Tensor::from_vec(last, steps.len(), &self.device)?;
        let x = x.index_select(&last, 0)?;
        let x = candle_nn::ops::rms_norm(&x, &self.w.norm, eps)?;
        Ok(self.w.output.forward(&x)?.to_dtype(DType::F32)?)
    }

    /// One sequence's `n` new positions made ready for attention: `q` (`[n, n_head * hd]`)
    /// rotated into `[n_head, n, hd]`, `k` and `v` (`[n, n_kv * hd]`) rotated and appended
    /// to the cache, whose views of all keys and values so far are returned with it.
    fn rope_and_cache(
        &self,
        layer: usize,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        cache: &mut KvCache,
    ) -> candle_core::Result<(Tensor, Tensor, Tensor)> {
        let cfg = &self.cfg;
        let (n, hd) = (q.dim(0)?, cfg.head_dim);
        let (h, kv) = (cfg.n_head, cfg.n_kv_head);
        let pos = cache.len;
        let q = self.rope(&q.reshape((n, h, hd))?.transpose(0, 1)?, pos)?;
        let k = self.rope(&k.reshape((n, kv, hd))?.transpose(0, 1)?, pos)?;
        let v = v.reshape((n, kv, hd))?.transpose(0, 1)?;
        let (k_all, v_all) = cache.append(layer, &k, &v)?;
        Ok((q, k_all, v_all))
    }

    /// Attention for each sequence of a step, from [`Self::rope_and_cache`]'s tensors and
    /// the sequence's first new position; returns `[Σ n, n_head * hd]`.
    fn attend(&self, seqs: &[(Tensor, Tensor, Tensor, usize)]) -> candle_core::Result<Tensor> {
        if self.device.is_cpu() {
            let views: Vec<_> = seqs
                .iter()
                .map(|(q, k, v, pos)| kernels::attention::SeqAttention { q, k, v, pos: *pos })
                .collect();
            return kernels::attention::attend_many(&views);
        }
        let outs = seqs
            .iter()
            .map(|(q, k, v, pos)| self.attend_candle(q, k, v, *pos))
            .collect::<candle_core::Result<Vec<_>>>()?;
        Tensor::cat(&outs, 0)
    }

    /// Attention for one sequence with candle's operations (for GPUs): `q` is
    /// `[n_head, n, hd]`, `k_all` and `v_all` `[n_kv, pos + n, hd]`.
    fn attend_candle(
        &self,
        q: &Tensor,
        k_all: &Tensor,
        v_all: &Tensor,
        pos: usize,
    ) -> candle_core::Result<Tensor> {
        let cfg = &self.cfg;
        let (n, hd) = (q.dim(1)?, cfg.head_dim);
        let (h, kv) = (cfg.n_head, cfg.n_kv_head);
        let group = h / kv;
        let total = k_all.dim(1)?;
        // Grouped-query attention without copying keys: the `group` query heads that share
        // a key/value head become extra rows of one matrix product.
        let q = q.reshape((kv, group * n, hd))?;
        let scale = 1.0 / (hd as f64).sqrt();
        let mut att = (q.matmul(&k_all.t()?)? * scale)?;
        if n > 1 {
            att = att.broadcast_add(&causal_mask(group, n, pos, total, q.device())?)?;
        }
        let att = candle_nn::ops::softmax_last_dim(&att)?;
        let o = att.matmul(&v_all.contiguous()?)?; // [kv, group * n, hd]
        o.reshape((h, n, hd))?.transpose(0, 1)?.reshape((n, h * hd))
    }

    /// Rotates `x` (`[heads, n, hd]`) for positions `pos..pos + n`.
    fn rope(&self, x: &Tensor, pos: usize) -> candle_core::Result<Tensor> {
        let n = x.dim(1)?;
        let cos = self.cos.narrow(0, pos, n)?;
        let sin = self.sin.narrow(0, pos, n)?;
        let x4 = x.contiguous()?.unsqueeze(0)?;
        let y = match self.cfg.rope_style {
            RopeStyle::Interleaved => candle_nn::rotary_emb::rope_i(&x4, &cos, &sin)?,
            RopeStyle::Neox => candle_nn::rotary_emb::rope(&x4, &cos, &sin)?,
        };
        y.squeeze(0)
    }
}

fn add_bias(x: Tensor, bias: Option<&Tensor>) -> candle_core::Result<Tensor> {
    match bias {
        Some(b) => x.broadcast_add(b),
        None => Ok(x),
    }
}

/// Additive mask for `n` new queries at positions `pos..pos + n` (repeated for `group`
/// heads) over `total` keys: query `r` may see keys up to `pos + r`.
fn causal_mask(
    group: usize,
    n: usize,
    pos: usize,
    total: usize,
    device: &Device,
) -> candle_core::Result<Tensor> {
    let mut m = vec![0f32; group * n * total];
    for g in 0..group {
        for r in 0..n {
            let row = &mut m[(g * n + r) * total..(g * n + r + 1) * total];
            for cell in row.iter_mut().skip(pos + r + 1) {
                *cell = f32::NEG_INFINITY;
            }
        }
    }
    Tensor::from_vec(m, (group * n, total), device)
}
