//! Building a [`Tokenizer`] from GGUF `tokenizer.ggml.*` metadata, as llama.cpp's
//! `llama_vocab::impl::load`.

use std::collections::HashMap;

use candle_core::quantized::gguf_file::Value;

use super::vocab::{TokenKind, Vocab};
use super::{bpe, spm, Model, Tokenizer, TokenizerError, EOG_TEXTS};

type Metadata = HashMap<String, Value>;

const MODEL: &str = "tokenizer.ggml.model";
const PRE: &str = "tokenizer.ggml.pre";
const TOKENS: &str = "tokenizer.ggml.tokens";
const SCORES: &str = "tokenizer.ggml.scores";
const TOKEN_TYPE: &str = "tokenizer.ggml.token_type";
const MERGES: &str = "tokenizer.ggml.merges";
const BOS: &str = "tokenizer.ggml.bos_token_id";
const EOS: &str = "tokenizer.ggml.eos_token_id";
const EOT: &str = "tokenizer.ggml.eot_token_id";
const EOM: &str = "tokenizer.ggml.eom_token_id";
const FIM_PAD: &str = "tokenizer.ggml.fim_pad_token_id";
const FIM_REP: &str = "tokenizer.ggml.fim_rep_token_id";
const FIM_SEP: &str = "tokenizer.ggml.fim_sep_token_id";
const ADD_BOS: &str = "tokenizer.ggml.add_bos_token";
const ADD_SPACE_PREFIX: &str = "tokenizer.ggml.add_space_prefix";

/// Token texts llama.cpp also treats as end-of-generation when no FIM key names them
/// (FIM pad/repo/file-separator tokens end a fill-in-the-middle completion).
const FIM_EOG_TEXTS: &[&str] = &[
    "<|fim_pad|>",
    "<fim-pad>",
    "<PAD>",
    "<|fim_repo|>",
    "<|repo_name|>",
    "<fim-repo>",
    "<REPO>",
    "<|file_sep|>",
];

pub(super) fn build(meta: &Metadata) -> Result<Tokenizer, TokenizerError> {
    let mut warnings = Vec::new();
    let model_name = string(meta, MODEL)?.ok_or(TokenizerError::MissingKey(MODEL))?;
    let is_spm = match model_name {
        "llama" => true,
        "gpt2" => false,
        other => return Err(TokenizerError::UnsupportedModel(other.to_owned())),
    };

    let mut texts = strings(meta, TOKENS)?.ok_or(TokenizerError::MissingKey(TOKENS))?;
    if texts.is_empty() {
        return Err(TokenizerError::EmptyVocab);
    }
    let n = texts.len();
    for (i, text) in texts.iter_mut().enumerate() {
        if text.is_empty() {
            // As llama.cpp: an empty token could never be matched or printed sensibly.
            warnings.push(format!("empty token at index {i}"));
            *text = format!("[EMPTY_{i}]");
        }
    }
    let kinds = match array(meta, TOKEN_TYPE)? {
        Some(values) => {
            check_len(TOKEN_TYPE, values.len(), n)?;
            values
                .iter()
                .map(|v| {
                    integer(v)
                        .map(TokenKind::from_gguf)
                        .ok_or(TokenizerError::WrongType {
                            key: TOKEN_TYPE,
                            expected: "array of integers",
                        })
                })
                .collect::<Result<Vec<_>, _>>()?
        }
        None => vec![TokenKind::Normal; n],
    };

    let Setup {
        model,
        piece,
        mut bos,
        mut eos,
        mut add_bos,
    } = if is_spm {
        spm_setup(meta, n)?
    } else {
        bpe_setup(meta, &mut warnings)?
    };

    let in_range = |key: &'static str, id: u32, warnings: &mut Vec<String>| {
        if (id as usize) < n {
            Some(id)
        } else {
            warnings.push(format!(
                "`{key}` = {id} is outside the vocabulary of {n} tokens; ignored"
            ));
            None
        }
    };
    if let Some(id) = token_id(meta, BOS)? {
        bos = in_range(BOS, id, &mut warnings).or(bos);
    }
    if let Some(id) = token_id(meta, EOS)? {
        eos = in_range(EOS, id, &mut warnings).or(eos);
    }
    if let Some(flag) = boolean(meta, ADD_BOS)? {
        add_bos = flag;
    }
    if bos.is_some_and(|id| id as usize >= n) {
        bos = None;
    }
    if eos.is_some_and(|id| id as usize >= n) {
        eos = None;
    }

    let mut vocab = Vocab::new(texts, kinds, piece);

    // End of generation: EOS, EOT, EOM and the FIM terminators from metadata, plus the tokens
    // llama.cpp recognises by text. llama.cpp forces those to control type so they are
    // neither printed nor matched in text without `parse_special`.
    let mut eog: Vec<u32> = eos.into_iter().collect();
    for key in [EOT, EOM, FIM_PAD, FIM_REP, FIM_SEP] {
        if let Some(id) = token_id(meta, key)?.and_then(|id| in_range(key, id, &mut warnings)) {
            eog.push(id);
        }
    }
    for text in EOG_TEXTS.iter().chain(FIM_EOG_TEXTS) {
        if let Some(id) = vocab.id(text) {
            eog.push(id);
        }
    }
    let mut seen = Vec::with_capacity(eog.len());
    for id in eog {
        if !seen.contains(&id) {
            seen.push(id);
            if vocab.force_control(id) {
                warnings.push(format!(
                    "end-of-generation token {id} '{}' was not control-type; treating it as control",
                    vocab.text(id).unwrap_or_default()
                ));
            }
        }
    }
    if add_bos && bos.is_none() {
        warnings.push(format!(
            "`{ADD_BOS}` asks for a BOS token but the vocabulary has none; not adding one"
        ));
        add_bos = false;
    }

    Ok(Tokenizer {
        vocab,
        model,
        bos,
        eos: seen,
        add_bos,
        warnings,
    })
}

/// The model-specific part of a GGUF tokenizer, with llama.cpp's defaults for it.
struct Setup {
    model: Model,
    piece: fn(&str, TokenKind) -> Vec<u8>,
    bos: Option<u32>,
    eos: Option<u32>,
    add_bos: bool,
}

fn spm_setup(meta: &Metadata, n: usize) -> Result<Setup, TokenizerError> {
    let scores = match array(meta, SCORES)? {
        Some(values) => {
            check_len(SCORES, values.len(), n)?;
            values
                .iter()
                .map(|v| {
                    float(v).ok_or(TokenizerError::WrongType {
                        key: SCORES,
                        expected: "array of floats",
                    })
                })
                .collect::<Result<Vec<_>, _>>()?
        }
        None => vec![0.0; n],
    };
    let add_space_prefix = boolean(meta, ADD_SPACE_PREFIX)?.unwrap_or(true);
    // llama.cpp's defaults for SentencePiece vocabularies: BOS 1, EOS 2, add BOS.
    Ok(Setup {
        model: Model::Spm(spm::Spm::new(scores, add_space_prefix)),
        piece: spm::piece,
        bos: Some(1),
        eos: Some(2),
        add_bos: true,
    })
}

fn bpe_setup(meta: &Metadata, warnings: &mut Vec<String>) -> Result<Setup, TokenizerError> {
    let merges = strings(meta, MERGES)?.ok_or(TokenizerError::MissingKey(MERGES))?;
    let pre = match string(meta, PRE)? {
        Some(pre) => pre,
        None => {
            warnings.push(format!(
                "`{PRE}` is missing: using llama.cpp's 'default' pre-tokenizer; generation quality may be degraded"
            ));
            "default"
        }
    };
    let (bpe, add_bos) = bpe::Bpe::new(pre, &merges)?;
    // llama.cpp defaults BPE BOS/EOS to id 11, a GPT-2-era placeholder that names an
    // ordinary token in most vocabularies; no BOS and no EOS is the safer default.
    Ok(Setup {
        model: Model::Bpe(bpe),
        piece: bpe::piece,
        bos: None,
        eos: None,
        add_bos,
    })
}

fn check_len(key: &'static str, found: usize, expected: usize) -> Result<(), TokenizerError> {
    if found == expected {
        Ok(())
    } else {
        Err(TokenizerError::LengthMismatch {
            key,
            found,
            expected,
        })
    }
}

fn string<'a>(meta: &'a Metadata, key: &'static str) -> Result<Option<&'a str>, TokenizerError> {
    match meta.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(TokenizerError::WrongType {
            key,
            expected: "string",
        }),
    }
}

fn array<'a>(meta: &'a Metadata, key: &'static str) -> Result<Option<&'a [Value]>, TokenizerError> {
    match meta.get(key) {
        None => Ok(None),
        Some(Value::Array(values)) => Ok(Some(values)),
        Some(_) => Err(TokenizerError::WrongType {
            key,
            expected: "array",
        }),
    }
}

fn strings(meta: &Metadata, key: &'static str) -> Result<Option<Vec<String>>, TokenizerError> {
    let Some(values) = array(meta, key)? else {
        return Ok(None);
    };
    values
        .iter()
        .map(|v| match v {
            Value::String(s) => Ok(s.clone()),
            _ => Err(TokenizerError::WrongType {
                key,
                expected: "array of strings",
            }),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

fn boolean(meta: &Metadata, key: &'static str) -> Result<Option<bool>, TokenizerError> {
    match meta.get(key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(TokenizerError::WrongType {
            key,
            expected: "bool",
        }),
    }
}

fn token_id(meta: &Metadata, key: &'static str) -> Result<Option<u32>, TokenizerError> {
    let Some(value) = meta.get(key) else {
        return Ok(None);
    };
    let n = integer(value).ok_or(TokenizerError::WrongType {
        key,
        expected: "integer",
    })?;
    u32::try_from(n)
        .map(Some)
        .map_err(|_| TokenizerError::InvalidValue {
            key,
            reason: format!("{n} is not a token id"),
        })
}

fn integer(value: &Value) -> Option<i64> {
    Some(match *value {
        Value::U8(v) => v.into(),
        Value::I8(v) => v.into(),
        Value::U16(v) => v.into(),
        Value::I16(v) => v.into(),
        Value::U32(v) => v.into(),
        Value::I32(v) => v.into(),
        Value::U64(v) => i64::try_from(v).ok()?,
        Value::I64(v) => v,
        _ => return None,
    })
}

fn float(value: &Value) -> Option<f32> {
    match *value {
        Value::F32(v) => Some(v),
        // Scores are f32 in every converter; a f64 array is still usable.
        Value::F64(v) => Some(v as f32),
        _ => None,
    }
}
