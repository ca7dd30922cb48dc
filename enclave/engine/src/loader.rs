//! Reading weights from a GGUF file or a safetensors model directory.

use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use candle_core::quantized::{gguf_file, QMatMul, QTensor};
use candle_core::{DType, Device, Tensor};

use crate::config::{Architecture, ModelConfig};
use crate::error::LoadError;
use crate::kernels::Linear;
use crate::model::{Layer, Model, Weights};

/// Where a model came from, and what else the file carries.
pub struct Loaded {
    /// The model.
    pub model: Model,
    /// GGUF metadata (empty for safetensors), for the tokenizer and chat template.
    pub gguf_metadata: HashMap<String, gguf_file::Value>,
    /// The directory of a safetensors model (for tokenizer.json and tokenizer_config.json).
    pub directory: Option<PathBuf>,
}

/// Loads a GGUF file, or a directory holding `config.json` and `*.safetensors`.
pub fn load(path: &Path, device: &Device) -> Result<Loaded, LoadError> {
    if path.is_dir() {
        if path.join("config.json").is_file() {
            return load_safetensors_dir(path, device);
        }
        let ggufs = files_with_extension(path, "gguf")?;
        return match ggufs.as_slice() {
            [one] => load_gguf(one, device),
            [] => Err(LoadError::NotAModel {
                path: path.to_owned(),
                why: "holds neither config.json (safetensors) nor a .gguf file".into(),
            }),
            _ => Err(LoadError::NotAModel {
                path: path.to_owned(),
                why: "holds several .gguf files: name one".into(),
            }),
        };
    }
    load_gguf(path, device)
}

/// The files in `dir` ending in `.ext`, sorted (so shards load in a fixed order).
fn files_with_extension(dir: &Path, ext: &str) -> Result<Vec<PathBuf>, LoadError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|source| LoadError::Io {
            path: dir.to_owned(),
            source,
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    files.sort();
    Ok(files)
}

/// Loads a GGUF file.
pub fn load_gguf(path: &Path, device: &Device) -> Result<Loaded, LoadError> {
    let io = |source| LoadError::Io {
        path: path.to_owned(),
        source,
    };
    let mut reader = BufReader::new(File::open(path).map_err(io)?);
    let content = gguf_file::Content::read(&mut reader).map_err(|e| LoadError::Gguf {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    let cfg = ModelConfig::from_gguf(&content.metadata)?;
    let mut get = |name: &str| -> Result<QTensor, LoadError> {
        if !content.tensor_infos.contains_key(name) {
            return Err(LoadError::MissingTensor { name: name.into() });
        }
        content
            .tensor(&mut reader, name, device)
            .map_err(|e| LoadError::Tensor {
                name: name.into(),
                reason: e.to_string(),
            })
    };
    let (d, hd) = (cfg.d_model, cfg.head_dim);
    let (q_out, kv_out) = (cfg.n_head * hd, cfg.n_kv_head * hd);
    let embed_q = expect_shape(
        get("token_embd.weight")?,
        "token_embd.weight",
        &[cfg.vocab_size, d],
    )?;
    let embed = embed_q
        .dequantize(device)
        .map_err(tensor_err("token_embd.weight"))?;
    let output = if content.tensor_infos.contains_key("output.weight") {
        expect_shape(get("output.weight")?, "output.weight", &[cfg.vocab_size, d])?
    } else {
        // Tied embeddings: llama.cpp multiplies by the (quantised) embedding matrix.
        embed_q
    };
    let norm = dense(
        get("output_norm.weight")?,
        "output_norm.weight",
        &[d],
        device,
    )?;
    let mut layers = Vec::with_capacity(cfg.n_layer);
    for i in 0..cfg.n_layer {
        let name = |t: &str| format!("blk.{i}.{t}");
        let mut mat = |t: &str, shape: &[usize]| -> Result<Linear, LoadError> {
            let n = name(t);
            let q = expect_shape(get(&n)?, &n, shape)?;
            Linear::from_qtensor(q, device).map_err(tensor_err(&n))
        };
        let wq = mat("attn_q.weight", &[q_out, d])?;
        let wk = mat("attn_k.weight", &[kv_out, d])?;
        let wv = mat("attn_v.weight", &[kv_out, d])?;
        let wo = mat("attn_output.weight", &[d, q_out])?;
        let w_gate = mat("ffn_gate.weight", &[cfg.d_ff, d])?;
        let w_up = mat("ffn_up.weight", &[cfg.d_ff, d])?;
        let w_down = mat("ffn_down.weight", &[d, cfg.d_ff])?;
        let mut bias = |t: &str, len: usize| -> Result<Option<Tensor>, LoadError> {
            let n = name(t);
            if cfg.arch != Architecture::Qwen2 && !content.tensor_infos.contains_key(&n) {
                return Ok(None);
            }
            dense(get(&n)?, &n, &[len], device).map(Some)
        };
        let (bq, bk, bv) = (
            bias("attn_q.bias", q_out)?,
            bias("attn_k.bias", kv_out)?,
            bias("attn_v.bias", kv_out)?,
        );
        layers.push(Layer {
            attn_norm: dense(
                get(&name("attn_norm.weight"))?,
                &name("attn_norm.weight"),
                &[d],
                device,
            )?,
            ffn_norm: dense(
                get(&name("ffn_norm.weight"))?,
                &name("ffn_norm.weight"),
                &[d],
                device,
            )?,
            wq,
            wk,
            wv,
            wo,
            bq,
            bk,
            bv,
            w_gate,
            w_up,
            w_down,
        });
    }
    let output = Linear::from_qtensor(output, device).map_err(tensor_err("output.weight"))?;
    let weights = Weights {
        embed,
        layers,
        norm,
        output,
    };
    let model =
        Model::new(cfg, weights, device.clone()).map_err(|e| LoadError::Config(e.to_string()))?;
    Ok(Loaded {
        model,
        gguf_metadata: content.metadata,
        directory: path.parent().map(Path::to_owned),
    })
}

fn tensor_err(name: &str) -> impl Fn(candle_core::Error) -> LoadError + '_ {
    move |e| LoadError::Tensor {
        name: name.to_owned(),
        reason: e.to_string(),
    }
}

fn expect_shape(q: QTensor, name: &str, expected: &[usize]) -> Result<QTensor, LoadError> {
    if q.shape().dims() != expected {
        return Err(LoadError::Shape {
            name: name.to_owned(),
            expected: expected.to_vec(),
            found: q.shape().dims().to_vec(),
        });
    }
    Ok(q)
}

fn dense(q: QTensor, name: &str, expected: &[usize], device: &Device) -> Result<Tensor, LoadError> {
    expect_shape(q, name, expected)?
        .dequantize(device)
        .map_err(tensor_err(name))
}

/// Loads `config.json` and every `*.safetensors` file of a Hugging Face model directory.
pub fn load_safetensors_dir(dir: &Path, device: &Device) -> Result<Loaded, LoadError> {
    let cfg_path = dir.join("config.json");
    let text = std::fs::read_to_string(&cfg_path).map_err(|source| LoadError::Io {
        path: cfg_path.clone(),
        source,
    })?;
    let cfg = ModelConfig::from_hf_json(&text)?;
    let files = files_with_extension(dir, "safetensors")?;
    if files.is_empty() {
        return Err(LoadError::NotAModel {
            path: dir.to_owned(),
            why: "config.json but no .safetensors file".into(),
        });
    }
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    for f in &files {
        let loaded = candle_core::safetensors::load(f, device).map_err(|e| LoadError::Gguf {
            path: f.clone(),
            reason: format!("not a valid safetensors file: {e}"),
        })?;
        tensors.extend(loaded);
    }
    let tied = !tensors.contains_key("lm_head.weight");
    let mut take = |name: &str, shape: &[usize]| -> Result<Tensor, LoadError> {
        let t = tensors
            .remove(name)
            .ok_or_else(|| LoadError::MissingTensor { name: name.into() })?;
        if t.dims() != shape {
            return Err(LoadError::Shape {
                name: name.into(),
                expected: shape.to_vec(),
                found: t.dims().to_vec(),
            });
        }
        t.to_dtype(DType::F32).map_err(tensor_err(name))
    };
    let (d, hd) = (cfg.d_model, cfg.head_dim);
    let (q_out, kv_out) = (cfg.n_head * hd, cfg.n_kv_head * hd);
    let embed = take("model.embed_tokens.weight", &[cfg.vocab_size, d])?;
    let norm = take("model.norm.weight", &[d])?;
    let mut layers = Vec::with_capacity(cfg.n_layer);
    for i in 0..cfg.n_layer {
        let p = format!("model.layers.{i}");
        let mut mat = |t: &str, shape: &[usize]| {
            take(&format!("{p}.{t}"), shape).map(|t| Linear::Dense(QMatMul::Tensor(t)))
        };
        let wq = mat("self_attn.q_proj.weight", &[q_out, d])?;
        let wk = mat("self_attn.k_proj.weight", &[kv_out, d])?;
        let wv = mat("self_attn.v_proj.weight", &[kv_out, d])?;
        let wo = mat("self_attn.o_proj.weight", &[d, q_out])?;
        let w_gate = mat("mlp.gate_proj.weight", &[cfg.d_ff, d])?;
        let w_up = mat("mlp.up_proj.weight", &[cfg.d_ff, d])?;
        let w_down = mat("mlp.down_proj.weight", &[d, cfg.d_ff])?;
        let attn_norm = take(&format!("{p}.input_layernorm.weight"), &[d])?;
        let ffn_norm = take(&format!("{p}.post_attention_layernorm.weight"), &[d])?;
        let (bq, bk, bv) = if cfg.arch == Architecture::Qwen2 {
            (
                Some(take(&format!("{p}.self_attn.q_proj.bias"), &[q_out])?),
                Some(take(&format!("{p}.self_attn.k_proj.bias"), &[kv_out])?),
                Some(take(&format!("{p}.self_attn.v_proj.bias"), &[kv_out])?),
            )
        } else {
            (None, None, None)
        };
        layers.push(Layer {
            attn_norm,
            wq,
            wk,
            wv,
            wo,
            bq,
            bk,
            bv,
            ffn_norm,
            w_gate,
            w_up,
            w_down,
        });
    }
    let output = match tied {
        false => take("lm_head.weight", &[cfg.vocab_size, d])?,
        true => embed.clone(),
    };
    let weights = Weights {
        embed,
        layers,
        norm,
        output: Linear::Dense(QMatMul::Tensor(output)),
    };
    let model =
        Model::new(cfg, weights, device.clone()).map_err(|e| LoadError::Config(e.to_string()))?;
    Ok(Loaded {
        model,
        gguf_metadata: HashMap::new(),
        directory: Some(dir.to_owned()),
    })
}
