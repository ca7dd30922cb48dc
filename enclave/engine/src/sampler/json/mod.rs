//! Constrained decoding for `response_format: {"type": "json_object"}`.
//!
//! At every step the tokens whose bytes cannot continue a JSON object are masked out of
//! the logits before the draw, so whatever the sampler picks keeps the answer a valid
//! prefix of one JSON object; the answer ends when that object closes. The recogniser
//! ([`JsonState`]) is hand-written because it must be a small `Copy` state fed one byte
//! at a time and able to say how far the text is from complete; the grammar crates on
//! crates.io work on whole strings or on a tokenizer of their own.
//!
//! Budget: a token is only allowed when what it leaves can still be completed within the
//! tokens left (`max_tokens` or the context), counting one token per byte of the shortest
//! completion. Every vocabulary this engine loads has a single-byte token for each of
//! those bytes (byte-level BPE has all 256; SentencePiece has byte fallback), which
//! [`JsonVocab::new`] checks. So the answer is a whole JSON object whenever it ends by
//! itself or by length; only a stop string can cut it short.

#[cfg(test)]
mod differential;
mod state;
mod trie;

pub use state::{JsonState, MAX_DEPTH, MAX_WHITESPACE};

use crate::tokenizer::Tokenizer;
use trie::Trie;

/// The vocabulary prepared for JSON masking: every printable token by its bytes. Built once
/// per model (it takes a few tens of milliseconds for a 50 000-token vocabulary).
#[derive(Debug)]
pub struct JsonVocab {
    /// Every printable token.
    all: Trie,
    /// The tokens that leave a string as it was ([`JsonState::keeps_plain_string`]):
    /// inside a string they are all allowed without a walk. Most of a vocabulary.
    plain: Vec<u32>,
    /// The others, walked inside a string.
    rest: Trie,
}

/// Why a vocabulary cannot be used for JSON masking.
#[derive(Clone, Copy, Debug, thiserror::Error, PartialEq, Eq)]
#[error("the vocabulary has no single-byte token for byte 0x{0:02X}, which completing a JSON object may need")]
pub struct JsonVocabError(pub u8);

impl JsonVocab {
    /// Prepares `tokenizer`'s vocabulary. Control tokens (which print nothing, EOS among
    /// them) are never allowed: the answer ends when the object closes.
    pub fn new(tokenizer: &Tokenizer) -> Result<Self, JsonVocabError> {
        let mut single = [false; 256];
        let entries: Vec<(Vec<u8>, u32)> = (0..tokenizer.vocab_size() as u32)
            .filter(|&id| !tokenizer.is_special(id))
            .filter_map(|id| Some((tokenizer.token_bytes(id)?, id)))
            .inspect(|(bytes, _)| {
                if let [b] = bytes[..] {
                    single[usize::from(b)] = true;
                }
            })
            .collect();
        if let Some(b) = JsonState::closing_alphabet().find(|&b| !single[usize::from(b)]) {
            return Err(JsonVocabError(b));
        }
        let rest = entries
            .iter()
            .filter(|(bytes, _)| !JsonState::keeps_plain_string(bytes))
            .cloned()
            .collect();
        Ok(Self {
            plain: entries
                .iter()
                .filter(|(bytes, _)| JsonState::keeps_plain_string(bytes))
                .map(|(_, id)| *id)
                .collect(),
            rest: Trie::new(rest),
            all: Trie::new(entries),
        })
    }
}

/// One answer's progress through a JSON object.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JsonConstraint {
    state: JsonState,
}

impl JsonConstraint {
    /// An answer not begun.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the object has closed (the answer is complete).
    pub fn is_done(&self) -> bool {
        self.state.is_done()
    }

    /// Puts into `out` (cleared first) every token that may come next when `left` tokens
    /// remain, this one included: its bytes continue the object, and what they leave can
    /// be completed in `left - 1` more.
    pub fn allowed(&self, vocab: &JsonVocab, left: usize, out: &mut Vec<u32>) {
        out.clear();
        let after = left.saturating_sub(1);
        let trie = if self.state.in_plain_string() {
            // Inside a string most tokens leave the state (and so its cost) as it was:
            // they are taken whole, and only the others walked.
            if self.state.close_cost() <= after {
                out.extend_from_slice(&vocab.plain);
            }
            &vocab.rest
        } else {
            &vocab.all
        };
        trie.walk(self.state, JsonState::feed, |s, id| {
            if s.close_cost() <= after {
                out.push(id);
            }
        });
    }

    /// Advances past a token's bytes. Fails when they do not continue the object (a token
    /// that [`JsonConstraint::allowed`] did not offer).
    pub fn advance(&mut self, bytes: &[u8]) -> Result<(), NotJson> {
        self.state = self.state.feed_all(bytes).ok_or(NotJson)?;
        Ok(())
    }

    /// Fewest tokens that complete an object from here.
    pub fn close_cost(&self) -> usize {
        self.state.close_cost()
    }
}

/// A token's bytes do not continue the JSON object.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the token does not continue the JSON object")]
pub struct NotJson;

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// A vocabulary of all single bytes and some longer JSON-ish pieces.
    fn vocab() -> (Vec<Vec<u8>>, JsonVocab) {
        let mut tokens: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
        for t in [
            "{\"",
            "\":",
            "\": \"",
            "\",",
            "\"}",
            "}}",
            "]}",
            "[{",
            "true",
            "null",
            ", \"",
            "12",
            "0.",
            "e-",
            "\\u",
            "\\n",
            "{}",
            "[]",
            "\n  ",
            "\u{e9}",
            "\u{1F600}",
        ] {
            tokens.push(t.as_bytes().to_vec());
        }
        let trie = Trie::new(
            tokens
                .iter()
                .enumerate()
                .map(|(i, t)| (t.clone(), i as u32))
                .collect(),
        );
        let entries: Vec<(Vec<u8>, u32)> = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        let plain = entries
            .iter()
            .filter(|(t, _)| JsonState::keeps_plain_string(t))
            .map(|(_, id)| *id)
            .collect();
        let rest = entries
            .iter()
            .filter(|(t, _)| !JsonState::keeps_plain_string(t))
            .cloned()
            .collect();
        let vocab = JsonVocab {
            all: trie,
            plain,
            rest: Trie::new(rest),
        };
        (tokens, vocab)
    }

    /// Random draws among the allowed tokens always give a whole JSON object, for every
    /// budget, and stop exactly when it closes.
    #[test]
    fn random_draws_under_the_mask_give_whole_objects_within_the_budget() {
        let (tokens, vocab) = vocab();
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
        let mut allowed = Vec::new();
        for round in 0..300 {
            let budget = 2 + round % 40;
            let mut c = JsonConstraint::new();
            let mut text = Vec::new();
            let mut used = 0;
            while !c.is_done() {
                assert!(
                    used < budget,
                    "over budget: {}",
                    String::from_utf8_lossy(&text)
                );
                c.allowed(&vocab, budget - used, &mut allowed);
                assert!(
                    !allowed.is_empty(),
                    "stuck at {}",
                    String::from_utf8_lossy(&text)
                );
                let id = allowed[rng.gen_range(0..allowed.len())];
                let bytes = &tokens[id as usize];
                c.advance(bytes).unwrap();
                text.extend_from_slice(bytes);
                used += 1;
            }
            let v: serde_json::Value = serde_json::from_slice(&text)
                .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&text)));
            assert!(v.is_object());
        }
    }

    #[test]
    fn the_mask_agrees_with_the_recogniser_token_by_token() {
        let (tokens, vocab) = vocab();
        let mut c = JsonConstraint::new();
        c.advance(b"{\"a\": [1, ").unwrap();
        let mut allowed = Vec::new();
        c.allowed(&vocab, 1000, &mut allowed);
        for (id, t) in tokens.iter().enumerate() {
            let ok = JsonState::new()
                .feed_all(b"{\"a\": [1, ")
                .unwrap()
                .feed_all(t)
                .is_some();
            assert_eq!(
                allowed.contains(&(id as u32)),
                ok,
                "{:?}",
                String::from_utf8_lossy(t)
            );
        }
        // Two tokens left: only what closes in one more may come (`]`, then `}`).
        c.allowed(&vocab, 2, &mut allowed);
        assert!(
            allowed.is_empty(),
            "a value is owed and two closers: three tokens"
        );
        c.allowed(&vocab, 3, &mut allowed);
        let texts: Vec<_> = allowed
            .iter()
            .map(|&i| tokens[i as usize].clone())
            .collect();
        assert!(texts.contains(&b"0".to_vec()) && texts.contains(&b"12".to_vec()));
        assert!(
            !texts.contains(&b"\"".to_vec()),
            "a string needs two more bytes"
        );
        assert_eq!(c.advance(b"}"), Err(NotJson));
    }
}
