//! Hugging Face `tokenizer.json`, through the `tokenizers` crate.
//!
//! Special tokens are split out by [`Vocab::partition`] as for GGUF, so `parse_special` means
//! the same on both paths; the `tokenizers` crate then only sees plain text fragments.

use std::path::Path;

use tokenizers::decoders::DecoderWrapper;

use super::vocab::{TokenKind, Vocab};
use super::{bpe, spm, Model, Tokenizer, TokenizerError, EOG_TEXTS};

pub(super) struct Hf {
    inner: tokenizers::Tokenizer,
}

impl Hf {
    pub(super) fn encode(&self, text: &str, out: &mut Vec<u32>) -> Result<(), TokenizerError> {
        let encoding = self
            .inner
            .encode(text, false)
            .map_err(|e| TokenizerError::Encode(e.to_string()))?;
        out.extend_from_slice(encoding.get_ids());
        Ok(())
    }
}

/// How the tokenizer's decoder turns token texts into bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Decoding {
    /// GPT-2 byte alphabet.
    ByteLevel,
    /// SentencePiece: `▁` is a space, `<0xNN>` a byte.
    SentencePiece,
    /// Texts are output as they are.
    Plain,
}

fn decoding(decoder: Option<&DecoderWrapper>) -> Decoding {
    fn visit(d: &DecoderWrapper, found: &mut Decoding) {
        match d {
            DecoderWrapper::ByteLevel(_) => *found = Decoding::ByteLevel,
            DecoderWrapper::Metaspace(_)
            | DecoderWrapper::ByteFallback(_)
            | DecoderWrapper::Replace(_)
                if *found == Decoding::Plain =>
            {
                *found = Decoding::SentencePiece
            }
            DecoderWrapper::Sequence(seq) => {
                seq.get_decoders().iter().for_each(|d| visit(d, found))
            }
            _ => {}
        }
    }
    let mut found = Decoding::Plain;
    if let Some(d) = decoder {
        visit(d, &mut found);
    }
    found
}

pub(super) fn load(path: &Path) -> Result<Tokenizer, TokenizerError> {
    let file_error = |reason: String| TokenizerError::File {
        path: path.to_owned(),
        reason,
    };
    let mut inner =
        tokenizers::Tokenizer::from_file(path).map_err(|e| file_error(e.to_string()))?;
    // Special tokens are matched by `Vocab::partition` only when the caller asks; the crate
    // must never match them itself.
    inner.set_encode_special_tokens(true);

    let vocab_map = inner.get_vocab(true);
    let n = vocab_map
        .values()
        .copied()
        .max()
        .map_or(0, |m| m as usize + 1);
    if n == 0 {
        return Err(TokenizerError::EmptyVocab);
    }
    let mut texts: Vec<String> = (0..n).map(|i| format!("[UNUSED_{i}]")).collect();
    let mut kinds = vec![TokenKind::Unused; n];
    for (text, id) in vocab_map {
        texts[id as usize] = text;
        kinds[id as usize] = TokenKind::Normal;
    }
    for (id, added) in inner.get_added_tokens_decoder() {
        if let Some(kind) = kinds.get_mut(id as usize) {
            *kind = if added.special {
                TokenKind::Control
            } else {
                TokenKind::UserDefined
            };
        }
    }
    let decoding = decoding(inner.get_decoder());
    if decoding == Decoding::SentencePiece {
        for (text, kind) in texts.iter().zip(kinds.iter_mut()) {
            if *kind == TokenKind::Normal
                && text.len() == 6
                && text.starts_with("<0x")
                && text.ends_with('>')
            {
                *kind = TokenKind::Byte;
            }
        }
    }
    let piece: fn(&str, TokenKind) -> Vec<u8> = match decoding {
        Decoding::ByteLevel => bpe::piece,
        Decoding::SentencePiece => spm::piece,
        Decoding::Plain => plain_piece,
    };
    let vocab = Vocab::new(texts, kinds, piece);
    let eos = EOG_TEXTS.iter().filter_map(|t| vocab.id(t)).collect();
    Ok(Tokenizer {
        vocab,
        model: Model::Hf(Box::new(Hf { inner })),
        bos: None,
        eos,
        add_bos: false,
        warnings: Vec::new(),
    })
}

fn plain_piece(text: &str, kind: TokenKind) -> Vec<u8> {
    match kind {
        TokenKind::Unused | TokenKind::Undefined => Vec::new(),
        _ => text.as_bytes().to_vec(),
    }
}
