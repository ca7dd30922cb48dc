//! silk's inference engine: llama-family decoder models on candle.
//!
//! Messages in, a stream of text deltas out. The engine loads GGUF (quantised or not) and
//! safetensors checkpoints with their tokenizer and chat template, samples with the usual
//! OpenAI-style controls, and serves many requests at once from one model through a
//! continuous-batching scheduler. It knows nothing of networks or keys: the enclave wraps
//! it in the sealed session.
#![warn(missing_docs)]

pub mod config;
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
pub use error::{LoadError, RunError};
pub use loader::{load, Loaded};
pub use model::{KvCache, Model, SeqStep};
pub use sampler::{Sampler, SamplingParams};
pub use scheduler::{Engine, EngineConfig, GenerateRequest, Prompt};

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
