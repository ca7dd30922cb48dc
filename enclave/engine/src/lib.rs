//! silk's inference engine: llama-family decoder models on candle.
//!
//! Messages in, a stream of text deltas out. The engine loads GGUF (quantised or not) and
//! safetensors checkpoints with their tokenizer and chat template, samples with the usual
//! OpenAI-style controls, and serves many requests at once from one model through a
//! continuous-batching scheduler. It knows nothing of networks or keys: the enclave wraps
//! it in the sealed session.
// The workspace denies unsafe code; the engine's kernels use SIMD intrinsics (AVX2,
// AVX-512 VNNI) through raw pointers into quantised blocks, checked at each call site.
#![allow(unsafe_code)]

pub mod config;
pub mod device;
pub mod error;
pub mod kernels;
pub mod loader;
pub mod model;
pub mod sampler;
pub mod scheduler;
pub mod template;
pub mod text;
pub mod tokenizer;

pub use config::{Architecture, ModelConfig, RopeStyle};
pub use device::{DeviceError, DeviceSpec};
pub use error::{LoadError, RunError};
pub use loader::{load, Loaded};
pub use model::{KvCache, Model, SeqStep};
pub use sampler::{Sampler, SamplingParams};
pub use scheduler::{
    Engine, EngineConfig, EngineStats, Event, FinishReason, GenerateRequest, Generation,
    ModelBundle, Prompt, SubmitError, Usage,
};
pub use template::ChatMessage;

use std::path::Path;

use candle_core::Device;

/// Loads a model with its tokenizer and chat template, ready for [`Engine::start`].
///
/// `path` is a GGUF file or a model directory. The tokenizer is `tokenizer.json` beside
/// the model when there is one, else it is rebuilt from the GGUF metadata. The chat
/// template comes from `tokenizer_config.json`, else from the GGUF metadata, else it is
/// [`template::ChatTemplate::fallback`] (plain ChatML).
pub fn open(path: &Path, device: &Device) -> Result<scheduler::ModelBundle, LoadError> {
    let loaded = load(path, device)?;
    let dir = loaded.directory.clone();
    let tok_json = dir
        .as_ref()
        .map(|d| d.join("tokenizer.json"))
        .filter(|p| p.is_file());
    let config_json = dir
        .as_ref()
        .map(|d| d.join("tokenizer_config.json"))
        .filter(|p| p.is_file());
    let is_gguf = !loaded.gguf_metadata.is_empty();
    let tokenizer = match (&tok_json, is_gguf) {
        // A GGUF carries its own vocabulary; a stray tokenizer.json beside it is not used.
        (_, true) => tokenizer::Tokenizer::from_gguf(&loaded.gguf_metadata),
        (Some(p), false) => tokenizer::Tokenizer::from_file(p),
        (None, false) => {
            return Err(LoadError::Tokenizer(format!(
                "no tokenizer.json beside the model in {}",
                dir.as_deref().unwrap_or(path).display()
            )))
        }
    }
    .map_err(|e| LoadError::Tokenizer(e.to_string()))?;
    let config_text = match &config_json {
        Some(p) => Some(std::fs::read_to_string(p).map_err(|source| LoadError::Io {
            path: p.clone(),
            source,
        })?),
        None => None,
    };
    let tokenizer = match (&config_text, is_gguf) {
        (Some(text), false) => apply_tokenizer_config(tokenizer, text, dir.as_deref())?,
        _ => tokenizer,
    };
    let from_config = if is_gguf {
        None
    } else {
        config_text
            .as_deref()
            .and_then(template::template_from_tokenizer_config)
    };
    let template = match from_config.or_else(|| template::template_from_gguf(&loaded.gguf_metadata))
    {
        Some(t) => t.map_err(|e| LoadError::Template(e.to_string()))?,
        None => template::ChatTemplate::fallback(),
    };
    Ok(scheduler::ModelBundle {
        model: loaded.model,
        tokenizer,
        template,
    })
}

/// Applies `tokenizer_config.json` (and `generation_config.json` when present) to a
/// `tokenizer.json` tokenizer: its BOS and EOS tokens and whether to add BOS.
fn apply_tokenizer_config(
    mut tok: tokenizer::Tokenizer,
    text: &str,
    dir: Option<&Path>,
) -> Result<tokenizer::Tokenizer, LoadError> {
    let cfg: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| LoadError::Tokenizer(format!("tokenizer_config.json: {e}")))?;
    // Tokens are written either as a string or as an AddedToken object.
    let token = |key: &str| -> Option<String> {
        match &cfg[key] {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Object(o) => o.get("content")?.as_str().map(str::to_owned),
            _ => None,
        }
    };
    let id_of = |key: &str, tok: &tokenizer::Tokenizer| -> Result<Option<u32>, LoadError> {
        match token(key) {
            None => Ok(None),
            Some(t) => tok.token_to_id(&t).map(Some).ok_or_else(|| {
                LoadError::Tokenizer(format!(
                    "tokenizer_config.json {key} `{t}` is not in the vocabulary"
                ))
            }),
        }
    };
    if let Some(bos) = id_of("bos_token", &tok)? {
        tok = tok.with_bos(Some(bos));
    }
    let mut eos: Vec<u32> = id_of("eos_token", &tok)?.into_iter().collect();
    // generation_config.json may list several end tokens (e.g. Llama 3's eot and eom).
    if let Some(gen) = dir
        .map(|d| d.join("generation_config.json"))
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
    {
        let ids: Vec<u32> = match &gen["eos_token_id"] {
            serde_json::Value::Number(n) => n.as_u64().into_iter().map(|v| v as u32).collect(),
            serde_json::Value::Array(a) => a
                .iter()
                .filter_map(|v| v.as_u64())
                .map(|v| v as u32)
                .collect(),
            _ => Vec::new(),
        };
        for id in ids {
            if !eos.contains(&id) {
                eos.push(id);
            }
        }
    }
    if !eos.is_empty() {
        tok = tok.with_eos_ids(eos);
    }
    if let Some(add) = cfg["add_bos_token"].as_bool() {
        tok = tok.with_add_bos_default(add);
    }
    Ok(tok)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use candle_core::quantized::gguf_file::Value;

    use super::*;

    fn tiny() -> tokenizer::Tokenizer {
        let tokens = ["a", "b", "<s>", "</s>", "<eot>"];
        let mut md = HashMap::new();
        md.insert("tokenizer.ggml.model".into(), Value::String("gpt2".into()));
        md.insert("tokenizer.ggml.pre".into(), Value::String("gpt-2".into()));
        md.insert(
            "tokenizer.ggml.tokens".into(),
            Value::Array(tokens.iter().map(|t| Value::String((*t).into())).collect()),
        );
        md.insert(
            "tokenizer.ggml.token_type".into(),
            Value::Array([1, 1, 3, 3, 3].into_iter().map(Value::I32).collect()),
        );
        md.insert("tokenizer.ggml.merges".into(), Value::Array(vec![]));
        tokenizer::Tokenizer::from_gguf(&md).expect("tiny tokenizer")
    }

    #[test]
    fn tokenizer_config_sets_bos_eos_and_add_bos() {
        let dir = std::env::temp_dir().join(format!("silk-tokcfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("generation_config.json"),
            r#"{"eos_token_id": [3, 4]}"#,
        )
        .unwrap();
        let cfg =
            r#"{"bos_token": {"content": "<s>"}, "eos_token": "</s>", "add_bos_token": true}"#;
        let tok = apply_tokenizer_config(tiny(), cfg, Some(&dir)).unwrap();
        assert_eq!(tok.bos_id(), Some(2));
        assert_eq!(tok.eos_ids(), &[3, 4]);
        assert!(tok.add_bos_default());
        let bad = r#"{"eos_token": "<missing>"}"#;
        let e = apply_tokenizer_config(tiny(), bad, None).err().unwrap();
        assert!(e.to_string().contains("<missing>"), "{e}");
    }
}
