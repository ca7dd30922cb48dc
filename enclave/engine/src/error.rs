//! Errors of loading and running a model.

use std::path::PathBuf;

/// Why a model could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The path names neither a GGUF file nor a model directory with what it needs.
    #[error("{}: {why}", path.display())]
    NotAModel {
        /// The path given.
        path: PathBuf,
        /// What is missing.
        why: String,
    },
    /// The GGUF container is malformed or truncated.
    #[error("{}: not a valid GGUF file: {reason}", path.display())]
    Gguf {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        reason: String,
    },
    /// A metadata key is missing or has the wrong type.
    #[error("model metadata `{key}`: {why}")]
    Metadata {
        /// The key.
        key: String,
        /// What is wrong.
        why: String,
    },
    /// The architecture is not one the engine runs.
    #[error("unsupported architecture `{name}` (supported: llama, mistral, qwen2)")]
    UnsupportedArchitecture {
        /// The name the model declares.
        name: String,
    },
    /// The configuration is inconsistent.
    #[error("model configuration: {0}")]
    Config(String),
    /// A tensor is missing.
    #[error("tensor `{name}` is missing")]
    MissingTensor {
        /// Its name.
        name: String,
    },
    /// A tensor has the wrong shape.
    #[error("tensor `{name}` has shape {found:?}, expected {expected:?}")]
    Shape {
        /// Its name.
        name: String,
        /// The expected dims.
        expected: Vec<usize>,
        /// The dims in the file.
        found: Vec<usize>,
    },
    /// A tensor could not be read or converted.
    #[error("tensor `{name}`: {reason}")]
    Tensor {
        /// Its name.
        name: String,
        /// Why.
        reason: String,
    },
    /// The tokenizer could not be built.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// The chat template could not be compiled.
    #[error("chat template: {0}")]
    Template(String),
}

impl LoadError {
    pub(crate) fn metadata(key: &str, why: &str) -> Self {
        LoadError::Metadata {
            key: key.to_owned(),
            why: why.to_owned(),
        }
    }
}

/// A failure while running the model (a bug or resource problem, never bad user input).
#[derive(Debug, thiserror::Error)]
#[error("model execution failed: {0}")]
pub struct RunError(#[from] pub candle_core::Error);
