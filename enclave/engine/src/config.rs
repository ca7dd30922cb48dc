//! The shape of a llama-family model, read from GGUF metadata or a Hugging Face
//! `config.json`.

use std::collections::HashMap;

use candle_core::quantized::gguf_file::Value;
use serde::Deserialize;

use crate::error::LoadError;

/// How rotary position embeddings pair up the dimensions of a head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RopeStyle {
    /// Pairs (2i, 2i+1): llama.cpp's "norm" style, used by GGUF llama/mistral files,
    /// whose converter permuted Q and K for it.
    Interleaved,
    /// Pairs (i, i + d/2): GPT-NeoX style, used by Hugging Face checkpoints and by GGUF
    /// qwen2 files.
    Neox,
}

/// Architecture families the engine runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Architecture {
    /// Llama 2/3, Mistral, SmolLM, TinyLlama.
    Llama,
    /// Qwen2 / Qwen2.5 (q/k/v biases, NeoX RoPE).
    Qwen2,
}

impl Architecture {
    /// The GGUF `general.architecture` name.
    pub fn gguf_name(self) -> &'static str {
        match self {
            Architecture::Llama => "llama",
            Architecture::Qwen2 => "qwen2",
        }
    }
}

/// Hyper-parameters of a decoder.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelConfig {
    /// Family.
    pub arch: Architecture,
    /// Number of transformer blocks.
    pub n_layer: usize,
    /// Hidden size.
    pub d_model: usize,
    /// Query heads.
    pub n_head: usize,
    /// Key/value heads (grouped-query attention when fewer than `n_head`).
    pub n_kv_head: usize,
    /// Size of one head.
    pub head_dim: usize,
    /// Feed-forward inner size.
    pub d_ff: usize,
    /// RMSNorm epsilon.
    pub rms_eps: f64,
    /// RoPE base frequency.
    pub rope_theta: f32,
    /// RoPE pairing.
    pub rope_style: RopeStyle,
    /// Vocabulary size (rows of the embedding).
    pub vocab_size: usize,
    /// Longest context the model was trained for.
    pub context_length: usize,
}

impl ModelConfig {
    /// Bytes of f32 KV cache one token takes across all layers.
    pub fn kv_bytes_per_token(&self) -> usize {
        self.n_layer * 2 * self.n_kv_head * self.head_dim * std::mem::size_of::<f32>()
    }

    /// Reads the configuration from GGUF metadata (`<arch>.*` keys).
    pub fn from_gguf(md: &HashMap<String, Value>) -> Result<Self, LoadError> {
        let arch_name = md_str(md, "general.architecture")?;
        let arch = match arch_name.as_str() {
            // Mistral, SmolLM and TinyLlama GGUFs all declare "llama".
            "llama" | "mistral" => Architecture::Llama,
            "qwen2" => Architecture::Qwen2,
            other => {
                return Err(LoadError::UnsupportedArchitecture {
                    name: other.to_owned(),
                })
            }
        };
        let key = |k: &str| format!("{arch_name}.{k}");
        let n_head = md_usize(md, &key("attention.head_count"))?;
        let d_model = md_usize(md, &key("embedding_length"))?;
        let n_kv_head = match md.get(&key("attention.head_count_kv")) {
            Some(_) => md_usize(md, &key("attention.head_count_kv"))?,
            None => n_head,
        };
        let head_dim = match md.get(&key("attention.key_length")) {
            Some(_) => md_usize(md, &key("attention.key_length"))?,
            None => d_model / n_head.max(1),
        };
        let rope_theta = match md.get(&key("rope.freq_base")) {
            Some(v) => v
                .to_f32()
                .map_err(|_| LoadError::metadata(&key("rope.freq_base"), "not a float"))?,
            None => 10_000.0,
        };
        let rms_eps = md
            .get(&key("attention.layer_norm_rms_epsilon"))
            .ok_or_else(|| {
                LoadError::metadata(&key("attention.layer_norm_rms_epsilon"), "missing")
            })?
            .to_f32()
            .map_err(|_| {
                LoadError::metadata(&key("attention.layer_norm_rms_epsilon"), "not a float")
            })? as f64;
        let vocab_size = match md.get(&key("vocab_size")) {
            Some(_) => md_usize(md, &key("vocab_size"))?,
            None => md
                .get("tokenizer.ggml.tokens")
                .and_then(|v| v.to_vec().ok())
                .map(Vec::len)
                .ok_or_else(|| {
                    LoadError::metadata(&key("vocab_size"), "missing, and no tokenizer.ggml.tokens")
                })?,
        };
        let cfg = ModelConfig {
            arch,
            n_layer: md_usize(md, &key("block_count"))?,
            d_model,
            n_head,
            n_kv_head,
            head_dim,
            d_ff: md_usize(md, &key("feed_forward_length"))?,
            rms_eps,
            rope_theta,
            rope_style: match arch {
                Architecture::Llama => RopeStyle::Interleaved,
                Architecture::Qwen2 => RopeStyle::Neox,
            },
            vocab_size,
            context_length: md_usize(md, &key("context_length")).unwrap_or(4096),
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads a Hugging Face `config.json`.
    pub fn from_hf_json(text: &str) -> Result<Self, LoadError> {
        let hf: HfConfig = serde_json::from_str(text)
            .map_err(|e| LoadError::Config(format!("config.json: {e}")))?;
        let arch = match hf.model_type.as_deref() {
            Some("llama") | Some("mistral") | None => Architecture::Llama,
            Some("qwen2") => Architecture::Qwen2,
            Some(other) => {
                return Err(LoadError::UnsupportedArchitecture {
                    name: other.to_owned(),
                })
            }
        };
        // Newer transformers releases move rope_theta under rope_parameters.
        let rope_theta = hf
            .rope_theta
            .or(hf.rope_parameters.as_ref().and_then(|p| p.rope_theta))
            .unwrap_or(10_000.0);
        let n_kv_head = hf.num_key_value_heads.unwrap_or(hf.num_attention_heads);
        let cfg = ModelConfig {
            arch,
            n_layer: hf.num_hidden_layers,
            d_model: hf.hidden_size,
            n_head: hf.num_attention_heads,
            n_kv_head,
            head_dim: hf
                .head_dim
                .unwrap_or(hf.hidden_size / hf.num_attention_heads.max(1)),
            d_ff: hf.intermediate_size,
            rms_eps: hf.rms_norm_eps.unwrap_or(1e-6),
            rope_theta,
            // Hugging Face checkpoints keep Q/K unpermuted: rotate_half pairs.
            rope_style: RopeStyle::Neox,
            vocab_size: hf.vocab_size,
            context_length: hf.max_position_embeddings.unwrap_or(4096),
        };
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), LoadError> {
        let bad = |why: String| Err(LoadError::Config(why));
        if self.n_layer == 0 || self.d_model == 0 || self.n_head == 0 || self.vocab_size == 0 {
            return bad(format!("degenerate shape: {self:?}"));
        }
        if self.n_kv_head == 0 || !self.n_head.is_multiple_of(self.n_kv_head) {
            return bad(format!(
                "{} query heads cannot be grouped over {} key/value heads",
                self.n_head, self.n_kv_head
            ));
        }
        if !self.head_dim.is_multiple_of(2) {
            return bad(format!(
                "head size {} is odd; RoPE needs pairs",
                self.head_dim
            ));
        }
        Ok(())
    }
}

#[derive(Deserialize)]
struct HfRopeParameters {
    rope_theta: Option<f32>,
}

#[derive(Deserialize)]
struct HfConfig {
    model_type: Option<String>,
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_key_value_heads: Option<usize>,
    head_dim: Option<usize>,
    rms_norm_eps: Option<f64>,
    rope_theta: Option<f32>,
    rope_parameters: Option<HfRopeParameters>,
    vocab_size: usize,
    max_position_embeddings: Option<usize>,
}

fn md_str(md: &HashMap<String, Value>, key: &str) -> Result<String, LoadError> {
    md.get(key)
        .ok_or_else(|| LoadError::metadata(key, "missing"))?
        .to_string()
        .cloned()
        .map_err(|_| LoadError::metadata(key, "not a string"))
}

fn md_usize(md: &HashMap<String, Value>, key: &str) -> Result<usize, LoadError> {
    let v = md
        .get(key)
        .ok_or_else(|| LoadError::metadata(key, "missing"))?;
    let n = match v {
        Value::U8(x) => u64::from(*x),
        Value::U16(x) => u64::from(*x),
        Value::U32(x) => u64::from(*x),
        Value::U64(x) => *x,
        Value::I32(x) if *x >= 0 => *x as u64,
        Value::I64(x) if *x >= 0 => *x as u64,
        _ => return Err(LoadError::metadata(key, "not a non-negative integer")),
    };
    usize::try_from(n).map_err(|_| LoadError::metadata(key, "too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn llama_md() -> HashMap<String, Value> {
        let mut md = HashMap::new();
        md.insert("general.architecture".into(), Value::String("llama".into()));
        md.insert("llama.block_count".into(), Value::U32(2));
        md.insert("llama.embedding_length".into(), Value::U32(64));
        md.insert("llama.feed_forward_length".into(), Value::U32(128));
        md.insert("llama.attention.head_count".into(), Value::U32(4));
        md.insert("llama.attention.head_count_kv".into(), Value::U32(2));
        md.insert(
            "llama.attention.layer_norm_rms_epsilon".into(),
            Value::F32(1e-5),
        );
        md.insert("llama.vocab_size".into(), Value::U32(100));
        md
    }

    #[test]
    fn reads_gguf_llama() {
        let cfg = ModelConfig::from_gguf(&llama_md()).unwrap();
        assert_eq!(
            (cfg.n_layer, cfg.d_model, cfg.head_dim, cfg.n_kv_head),
            (2, 64, 16, 2)
        );
        assert_eq!(cfg.rope_style, RopeStyle::Interleaved);
        assert_eq!(cfg.rope_theta, 10_000.0);
    }

    #[test]
    fn missing_key_is_named() {
        let mut md = llama_md();
        md.remove("llama.block_count");
        let e = ModelConfig::from_gguf(&md).unwrap_err().to_string();
        assert!(e.contains("llama.block_count"), "{e}");
    }

    #[test]
    fn unsupported_architecture_is_named() {
        let mut md = llama_md();
        md.insert("general.architecture".into(), Value::String("mamba".into()));
        let e = ModelConfig::from_gguf(&md).unwrap_err().to_string();
        assert!(e.contains("mamba"), "{e}");
    }

    #[test]
    fn hf_rope_theta_in_either_place() {
        let base = r#"{"model_type":"qwen2","hidden_size":64,"intermediate_size":128,
            "num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,
            "vocab_size":100,"rms_norm_eps":1e-6"#;
        let top = ModelConfig::from_hf_json(&format!("{base},\"rope_theta\":1000000.0}}")).unwrap();
        let nested = ModelConfig::from_hf_json(&format!(
            "{base},\"rope_parameters\":{{\"rope_theta\":1000000.0}}}}"
        ))
        .unwrap();
        assert_eq!(top.rope_theta, 1e6);
        assert_eq!(nested.rope_theta, 1e6);
        assert_eq!(top.arch, Architecture::Qwen2);
        assert_eq!(top.rope_style, RopeStyle::Neox);
    }

    #[test]
    fn bad_grouping_is_rejected() {
        let mut md = llama_md();
        md.insert("llama.attention.head_count_kv".into(), Value::U32(3));
        assert!(ModelConfig::from_gguf(&md).is_err());
    }
}
