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
pub mod loader;
pub mod model;
pub mod sampler;
pub mod template;
pub mod text;
pub mod tokenizer;

pub use config::{Architecture, ModelConfig, RopeStyle};
pub use error::{LoadError, RunError};
pub use loader::{load, Loaded};
pub use model::{KvCache, Model, SeqStep};
pub use sampler::{SamplingParams, Sampler};
