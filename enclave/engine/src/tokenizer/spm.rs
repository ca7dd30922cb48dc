//! SentencePiece BPE (GGUF `tokenizer.ggml.model = "llama"`), as llama.cpp's
//! `llm_tokenizer_spm`.
//!
//! Implemented by hand because it merges by token *score* (highest first), where the
//! `tokenizers` crate's BPE merges by rank from a merges list that SPM GGUFs do not carry;
//! deriving ranks from scores breaks ties differently and would not match llama.cpp.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use super::symbols::{merge, split_chars, Symbol};
use super::vocab::{TokenKind, Vocab};
use super::TokenizerError;

/// SentencePiece's visible space.
const SPACE: char = '\u{2581}';

/// A token's output bytes in a SentencePiece vocabulary (llama.cpp's `token_to_piece`).
pub(crate) fn piece(text: &str, kind: TokenKind) -> Vec<u8> {
    match kind {
        TokenKind::Control | TokenKind::Unknown | TokenKind::UserDefined => {
            text.as_bytes().to_vec()
        }
        TokenKind::Normal => text.replace(SPACE, " ").into_bytes(),
        TokenKind::Byte => byte_token_value(text).map(|b| vec![b]).unwrap_or_default(),
        TokenKind::Unused | TokenKind::Undefined => Vec::new(),
    }
}

/// The byte a `<0xNN>` token stands for.
fn byte_token_value(text: &str) -> Option<u8> {
    let hex = text.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}

/// A SentencePiece BPE model: per-token scores and the space-prefix rule.
pub(crate) struct Spm {
    scores: Vec<f32>,
    add_space_prefix: bool,
}

impl Spm {
    pub(crate) fn new(scores: Vec<f32>, add_space_prefix: bool) -> Self {
        Self {
            scores,
            add_space_prefix,
        }
    }

    /// Encodes a fragment that contains no special tokens. `after_special` is true for the
    /// first fragment and after a special token, where llama.cpp adds the space prefix.
    pub(crate) fn encode(
        &self,
        text: &str,
        after_special: bool,
        vocab: &Vocab,
        out: &mut Vec<u32>,
    ) -> Result<(), TokenizerError> {
        let mut escaped = String::with_capacity(text.len() + 3);
        if self.add_space_prefix && after_special {
            escaped.push(SPACE);
        }
        escaped.extend(text.chars().map(|c| if c == ' ' { SPACE } else { c }));
        self.encode_escaped(&escaped, vocab, out)
    }

    fn encode_escaped(
        &self,
        text: &str,
        vocab: &Vocab,
        out: &mut Vec<u32>,
    ) -> Result<(), TokenizerError> {
        let mut symbols = split_chars(text);
        let mut queue = BinaryHeap::new();
        for i in 1..symbols.len() {
            self.push_bigram(text, &symbols, i - 1, i, vocab, &mut queue);
        }
        while let Some(bigram) = queue.pop() {
            let (left, right) = (symbols[bigram.left], symbols[bigram.right]);
            // Skip pairs made stale by an earlier merge on either side.
            if left.len == 0 || right.len == 0 || left.len + right.len != bigram.size {
                continue;
            }
            let (prev, next) = merge(&mut symbols, bigram.left, bigram.right);
            if let Some(p) = prev {
                self.push_bigram(text, &symbols, p, bigram.left, vocab, &mut queue);
            }
            if let Some(n) = next {
                self.push_bigram(text, &symbols, bigram.left, n, vocab, &mut queue);
            }
        }
        // llama.cpp's `resegment` also consults a reverse-merge map, but only for symbols that
        // are not tokens; merged symbols always are (a pair is queued only if its text is a
        // token), and single characters never appear in that map, so the lookup reduces to
        // "token, else bytes".
        let mut i = if symbols.is_empty() { None } else { Some(0) };
        while let Some(at) = i {
            let symbol = symbols[at];
            let piece = &text[symbol.start..symbol.start + symbol.len];
            match vocab.id(piece) {
                Some(id) => out.push(id),
                None => {
                    for b in piece.bytes() {
                        out.push(byte_token(b, vocab)?);
                    }
                }
            }
            i = symbol.next;
        }
        Ok(())
    }

    fn push_bigram(
        &self,
        text: &str,
        symbols: &[Symbol],
        left: usize,
        right: usize,
        vocab: &Vocab,
        queue: &mut BinaryHeap<Bigram>,
    ) {
        let (l, r) = (symbols[left], symbols[right]);
        let joined = &text[l.start..r.start + r.len];
        let Some(id) = vocab.id(joined) else { return };
        let Some(&score) = self.scores.get(id as usize) else {
            return;
        };
        queue.push(Bigram {
            score,
            left,
            right,
            size: joined.len(),
        });
    }
}

/// llama.cpp's `byte_to_token`: the `<0xNN>` token, else a token that is the byte itself.
fn byte_token(b: u8, vocab: &Vocab) -> Result<u32, TokenizerError> {
    let hex = format!("<0x{b:02X}>");
    if let Some(id) = vocab.id(&hex) {
        return Ok(id);
    }
    std::str::from_utf8(&[b])
        .ok()
        .and_then(|s| vocab.id(s))
        .ok_or(TokenizerError::MissingByteToken(b))
}

/// A candidate merge; the heap pops the highest score, then the leftmost.
#[derive(Debug)]
struct Bigram {
    score: f32,
    left: usize,
    right: usize,
    size: usize,
}

impl Ord for Bigram {
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then_with(|| other.left.cmp(&self.left))
    }
}

impl PartialOrd for Bigram {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Bigram {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Bigram {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_tokens_parse() {
        assert_eq!(byte_token_value("<0x0A>"), Some(b'\n'));
        assert_eq!(byte_token_value("<0xff>"), Some(0xFF));
        assert_eq!(byte_token_value("<0x0>"), None);
        assert_eq!(piece("▁Hello▁world", TokenKind::Normal), b" Hello world");
        assert_eq!(piece("<0xE2>", TokenKind::Byte), vec![0xE2]);
    }
}
