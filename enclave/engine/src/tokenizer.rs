//! Tokenizers: `tokenizer.json`, or rebuilt from GGUF `tokenizer.ggml.*` metadata.
//!
//! The yardstick is llama.cpp (`llama-vocab.cpp`): a GGUF model must tokenize here exactly as
//! it does there, because the model was converted, quantised and evaluated with that
//! tokenizer. So the GGUF path re-implements llama.cpp's algorithms instead of handing the
//! vocabulary to the `tokenizers` crate:
//!
//! * `tokenizer.ggml.model = "gpt2"`: byte-level BPE over the merge ranks, after llama.cpp's
//!   pre-tokenizer regexes for `tokenizer.ggml.pre` (module `bpe`).
//! * `tokenizer.ggml.model = "llama"`: SentencePiece BPE over token scores with `<0xNN>` byte
//!   fallback (module `spm`); the `tokenizers` crate merges by rank, not score, so cannot express
//!   it.
//!
//! Special tokens are split out of the input before either runs (module `vocab`).

mod bpe;
mod gguf;
mod hf;
mod spm;
mod symbols;
mod vocab;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file;

use self::vocab::{Fragment, Vocab};

/// What went wrong building or running a [`Tokenizer`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenizerError {
    /// A required GGUF metadata key is absent.
    #[error("GGUF metadata key `{0}` is missing")]
    MissingKey(&'static str),
    /// A GGUF metadata key holds a value of the wrong type.
    #[error("GGUF metadata key `{key}` has the wrong type: expected {expected}")]
    WrongType {
        /// The key.
        key: &'static str,
        /// The type the tokenizer needs.
        expected: &'static str,
    },
    /// A per-token array does not have one entry per token.
    #[error(
        "GGUF metadata key `{key}` has {found} entries but `tokenizer.ggml.tokens` has {expected}"
    )]
    LengthMismatch {
        /// The per-token array.
        key: &'static str,
        /// Its length.
        found: usize,
        /// The number of tokens.
        expected: usize,
    },
    /// A GGUF metadata value is present and well-typed but unusable.
    #[error("GGUF metadata key `{key}`: {reason}")]
    InvalidValue {
        /// The key.
        key: &'static str,
        /// Why the value cannot be used.
        reason: String,
    },
    /// `tokenizer.ggml.model` names a tokenizer this crate does not implement.
    #[error("unsupported tokenizer model `{0}` (tokenizer.ggml.model): only `gpt2` and `llama` are implemented")]
    UnsupportedModel(String),
    /// `tokenizer.ggml.pre` names a pre-tokenizer this crate does not implement.
    ///
    /// llama.cpp refuses unknown pre-tokenizers too: guessing splits text differently from
    /// training and silently degrades the model.
    #[error("unsupported pre-tokenizer `{0}` (tokenizer.ggml.pre)")]
    UnsupportedPreTokenizer(String),
    /// A pre-tokenizer regex failed to compile (a bug in this crate's table).
    #[error("pre-tokenizer regex `{pattern}` does not compile: {reason}")]
    Regex {
        /// The pattern.
        pattern: String,
        /// The regex engine's complaint.
        reason: String,
    },
    /// The vocabulary has no tokens.
    #[error("the vocabulary is empty")]
    EmptyVocab,
    /// A `tokenizer.json` could not be read or parsed.
    #[error("cannot load tokenizer `{path}`: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why it failed.
        reason: String,
    },
    /// The `tokenizers` crate failed to encode text.
    #[error("tokenizer.json encoding failed: {0}")]
    Encode(String),
    /// `add_bos` was requested but the vocabulary has no BOS token.
    #[error("a BOS token was requested but the vocabulary defines none")]
    NoBos,
    /// SentencePiece byte fallback needs a token for this byte and the vocabulary has none.
    #[error("no token for byte 0x{0:02X}: the vocabulary lacks byte-fallback tokens")]
    MissingByteToken(u8),
}

/// The algorithm that turns a text fragment (free of special tokens) into ids.
enum Model {
    Bpe(bpe::Bpe),
    Spm(spm::Spm),
    Hf(Box<hf::Hf>),
}

/// A tokenizer: text to token ids and back.
///
/// Built from GGUF metadata ([`Tokenizer::from_gguf`]) or a Hugging Face `tokenizer.json`
/// ([`Tokenizer::from_file`]). Immutable once built, so one instance serves every request.
pub struct Tokenizer {
    vocab: Vocab,
    model: Model,
    bos: Option<u32>,
    eos: Vec<u32>,
    add_bos: bool,
    warnings: Vec<String>,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let model = match &self.model {
            Model::Bpe(b) => b.describe(),
            Model::Spm(_) => "spm".to_owned(),
            Model::Hf(_) => "tokenizer.json".to_owned(),
        };
        f.debug_struct("Tokenizer")
            .field("model", &model)
            .field("vocab_size", &self.vocab.len())
            .field("bos", &self.bos)
            .field("eos", &self.eos)
            .field("add_bos", &self.add_bos)
            .finish_non_exhaustive()
    }
}

impl Tokenizer {
    /// Rebuilds the tokenizer that llama.cpp would use from a GGUF file's metadata
    /// (`tokenizer.ggml.*`).
    ///
    /// A missing `tokenizer.ggml.pre` falls back to llama.cpp's "default" regexes and records
    /// a warning (see [`Tokenizer::warnings`]); an unknown one is an error, as in llama.cpp.
    pub fn from_gguf(metadata: &HashMap<String, gguf_file::Value>) -> Result<Self, TokenizerError> {
        gguf::build(metadata)
    }

    /// Loads a Hugging Face `tokenizer.json`.
    ///
    /// `tokenizer_config.json` (BOS/EOS names, `add_bos_token`) is the caller's business:
    /// apply it with [`Tokenizer::with_bos`], [`Tokenizer::with_eos_ids`] and
    /// [`Tokenizer::with_add_bos_default`]. Until then BOS is unset and the EOS set holds the
    /// end-of-generation tokens llama.cpp recognises by name (`<|im_end|>`, `<|eot_id|>`, ...).
    pub fn from_file(path: &Path) -> Result<Self, TokenizerError> {
        hf::load(path)
    }

    /// Overrides the BOS token (e.g. from `tokenizer_config.json`). An id outside the
    /// vocabulary leaves no BOS.
    pub fn with_bos(mut self, bos: Option<u32>) -> Self {
        self.bos = bos.filter(|&id| (id as usize) < self.vocab.len());
        self
    }

    /// Overrides the end-of-generation token set (e.g. from `tokenizer_config.json` and
    /// `generation_config.json`). Ids outside the vocabulary are dropped.
    pub fn with_eos_ids(mut self, eos: Vec<u32>) -> Self {
        let mut kept = Vec::with_capacity(eos.len());
        for id in eos {
            if (id as usize) < self.vocab.len() && !kept.contains(&id) {
                kept.push(id);
            }
        }
        self.eos = kept;
        self
    }

    /// Overrides whether callers should prepend BOS by default.
    pub fn with_add_bos_default(mut self, add_bos: bool) -> Self {
        self.add_bos = add_bos;
        self
    }

    /// Encodes `text`.
    ///
    /// `add_bos` prepends the BOS token (an error if the vocabulary has none); pass
    /// [`Tokenizer::add_bos_default`] for the model's own choice. `parse_special` makes
    /// control tokens written in the text (e.g. `<|im_start|>`) encode as themselves, as
    /// llama.cpp's `parse_special`; without it they are encoded as plain text. User-defined
    /// tokens are always matched, as in llama.cpp and Hugging Face.
    pub fn encode(
        &self,
        text: &str,
        add_bos: bool,
        parse_special: bool,
    ) -> Result<Vec<u32>, TokenizerError> {
        let mut out = Vec::with_capacity(text.len() / 3 + 2);
        if add_bos {
            out.push(self.bos.ok_or(TokenizerError::NoBos)?);
        }
        let fragments = self.vocab.partition(text, parse_special);
        match &self.model {
            Model::Bpe(bpe) => {
                for fragment in fragments {
                    match fragment {
                        Fragment::Text(t) => bpe.encode(t, &self.vocab, &mut out),
                        Fragment::Token(id) => out.push(id),
                    }
                }
            }
            Model::Spm(spm) => {
                // llama.cpp prefixes a space to the first text fragment and to every text
                // fragment that follows a special token.
                let mut prev_special = true;
                for fragment in fragments {
                    match fragment {
                        Fragment::Text(t) => {
                            spm.encode(t, prev_special, &self.vocab, &mut out)?;
                            prev_special = false;
                        }
                        Fragment::Token(id) => {
                            out.push(id);
                            prev_special = true;
                        }
                    }
                }
            }
            Model::Hf(hf) => {
                for fragment in fragments {
                    match fragment {
                        Fragment::Text(t) => hf.encode(t, &mut out)?,
                        Fragment::Token(id) => out.push(id),
                    }
                }
            }
        }
        Ok(out)
    }

    /// Decodes `ids` to text: the concatenation of [`Tokenizer::token_bytes`], read as UTF-8
    /// with invalid or incomplete sequences replaced by U+FFFD.
    ///
    /// With `skip_special`, control tokens (see [`Tokenizer::is_special`]) are left out.
    /// Unknown ids are skipped. Unlike llama.cpp's `detokenize`, no leading space is removed
    /// and no `clean_up_tokenization_spaces` pass runs: this is its `token_to_piece`
    /// concatenated, which is what a stream of deltas adds up to.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> String {
        let mut bytes = Vec::new();
        for &id in ids {
            if skip_special && self.is_special(id) {
                continue;
            }
            if let Some(piece) = self.vocab.piece(id) {
                bytes.extend_from_slice(piece);
            }
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// The raw bytes token `id` contributes to the output (llama.cpp's `token_to_piece` with
    /// `special = true`): byte-level BPE pieces are mapped back to bytes, SentencePiece `▁`
    /// becomes a space and `<0xNN>` the byte NN, control tokens give their own text.
    /// A piece may be an incomplete UTF-8 sequence. `None` for ids outside the vocabulary.
    pub fn token_bytes(&self, id: u32) -> Option<Vec<u8>> {
        self.vocab.piece(id).map(<[u8]>::to_vec)
    }

    /// Whether `id` is a control (or unknown-type) token, which is not printed.
    pub fn is_special(&self, id: u32) -> bool {
        self.vocab.is_special(id)
    }

    /// The BOS token, if the vocabulary has one.
    pub fn bos_id(&self) -> Option<u32> {
        self.bos
    }

    /// The tokens that end generation: EOS first, then EOT/EOM and the other
    /// end-of-generation tokens llama.cpp recognises.
    pub fn eos_ids(&self) -> &[u32] {
        &self.eos
    }

    /// Whether prompts should start with BOS: `tokenizer.ggml.add_bos_token`, or llama.cpp's
    /// default when absent (true for SentencePiece and llama3-style BPE, false otherwise).
    pub fn add_bos_default(&self) -> bool {
        self.add_bos
    }

    /// The number of tokens in the vocabulary.
    pub fn vocab_size(&self) -> usize {
        self.vocab.len()
    }

    /// The id of the token whose vocabulary text is `s` (e.g. `"<|im_end|>"`, `"Ġthe"`).
    pub fn token_to_id(&self, s: &str) -> Option<u32> {
        self.vocab.id(s)
    }

    /// The vocabulary text of token `id` (not its decoded bytes: see
    /// [`Tokenizer::token_bytes`]).
    pub fn id_to_token(&self, id: u32) -> Option<&str> {
        self.vocab.text(id)
    }

    /// Non-fatal problems found while loading, for the caller to log.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }
}

/// Token texts llama.cpp treats as end-of-generation wherever they appear in a vocabulary.
const EOG_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|eom_id|>",
    "<EOT>",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizer_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Tokenizer>();
    }
}
