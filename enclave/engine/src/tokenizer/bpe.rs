//! Byte-level BPE (GGUF `tokenizer.ggml.model = "gpt2"`), as llama.cpp's `llm_tokenizer_bpe`.
//!
//! Text is split by the pre-tokenizer regexes for `tokenizer.ggml.pre`, each piece is mapped
//! to GPT-2's printable byte alphabet, and adjacent symbols are merged lowest merge rank
//! first (leftmost on ties) until no ranked pair remains.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::sync::OnceLock;

use tokenizers::utils::SysRegex;

use super::symbols::{merge, split_chars, Symbol};
use super::vocab::{TokenKind, Vocab};
use super::TokenizerError;

/// GPT-2's byte alphabet: byte `b` is written as the character `byte_chars()[b]`.
///
/// Printable Latin-1 bytes stand for themselves; the rest are shifted to U+0100 onwards so
/// that every byte is a visible, non-space character.
pub(crate) fn byte_chars() -> &'static [char; 256] {
    static TABLE: OnceLock<[char; 256]> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut table = ['\0'; 256];
        let mut shifted = 0u32;
        for (b, slot) in table.iter_mut().enumerate() {
            let printable = matches!(b, 0x21..=0x7E | 0xA1..=0xAC | 0xAE..=0xFF);
            let cp = if printable {
                b as u32
            } else {
                shifted += 1;
                255 + shifted
            };
            // Every value is below U+0144, so always a valid char.
            *slot = char::from_u32(cp).unwrap_or('\u{FFFD}');
        }
        table
    })
}

/// The inverse of [`byte_chars`].
pub(crate) fn char_byte(c: char) -> Option<u8> {
    static TABLE: OnceLock<HashMap<char, u8>> = OnceLock::new();
    TABLE
        .get_or_init(|| {
            byte_chars()
                .iter()
                .enumerate()
                .map(|(b, &c)| (c, b as u8))
                .collect()
        })
        .get(&c)
        .copied()
}

/// A token's output bytes in a byte-level vocabulary (llama.cpp's `token_to_piece`).
pub(crate) fn piece(text: &str, kind: TokenKind) -> Vec<u8> {
    match kind {
        TokenKind::Control | TokenKind::Unknown | TokenKind::UserDefined => {
            text.as_bytes().to_vec()
        }
        TokenKind::Normal => {
            let mut out = Vec::with_capacity(text.len());
            for c in text.chars() {
                match char_byte(c) {
                    Some(b) => out.push(b),
                    // Not in the byte alphabet: llama.cpp prints a marker; the character
                    // itself is the more useful output.
                    None => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
                }
            }
            out
        }
        TokenKind::Unused | TokenKind::Byte | TokenKind::Undefined => Vec::new(),
    }
}

// llama.cpp's regexes (`llm_tokenizer_bpe`), applied in order: each splits the pieces the
// previous ones left, keeping both the matches and the text between them.
const GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)";
const LLAMA3: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN2: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const DEFAULT: &[&str] = &[r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"\p{N}+", "[0-9][0-9][0-9]"];
const DEEPSEEK_LLM: &[&str] = &[
    r"[\r\n]",
    "\\s?[A-Za-z\u{B5}\u{C0}-\u{D6}\u{D8}-\u{F6}\u{F8}-\u{1BA}\u{1BC}-\u{1BF}\u{1C4}-\u{293}\u{295}-\u{2AF}\u{370}-\u{373}\u{376}\u{377}\u{37B}-\u{37D}\u{37F}\u{386}\u{388}-\u{38A}\u{38C}\u{38E}-\u{3A1}\u{3A3}-\u{3F5}\u{3F7}-\u{481}\u{48A}-\u{52F}\u{531}-\u{556}\u{10A0}-\u{10C5}\u{13A0}-\u{13F5}\u{13F8}-\u{13FD}\u{1C90}-\u{1CBA}\u{1CBD}-\u{1CBF}\u{1D00}-\u{1D2B}\u{1D6B}-\u{1D77}\u{1D79}-\u{1D9A}\u{1E00}-\u{1F15}\u{1F18}-\u{1F1D}\u{1F20}-\u{1F45}\u{1F48}-\u{1F4D}\u{1F50}-\u{1F57}\u{1F59}\u{1F5B}\u{1F5D}\u{1F5F}-\u{1F7D}\u{1F80}-\u{1FB4}\u{1FB6}-\u{1FBC}\u{1FBE}\u{1FC2}-\u{1FC4}\u{1FC6}-\u{1FCC}\u{1FD0}-\u{1FD3}\u{1FD6}-\u{1FDB}\u{1FE0}-\u{1FEC}\u{1FF2}-\u{1FF4}\u{1FF6}-\u{1FFC}\u{2102}\u{2107}\u{210A}-\u{2113}\u{2115}\u{2119}-\u{211D}\u{2124}\u{2126}\u{2128}\u{212A}-\u{212D}\u{212F}-\u{2134}\u{2139}\u{213C}-\u{213F}\u{2145}-\u{2149}\u{214E}\u{2183}\u{2184}\u{2C00}-\u{2C7B}\u{2C7E}-\u{2CE4}\u{2CEB}-\u{2CEE}\u{2CF2}\u{2CF3}\u{A640}-\u{A66D}\u{A680}-\u{A69B}\u{A722}-\u{A76F}\u{A771}-\u{A787}\u{A78B}-\u{A78E}\u{AB70}-\u{ABBF}\u{FB00}-\u{FB06}\u{FB13}-\u{FB17}\u{FF21}-\u{FF3A}\u{FF41}-\u{FF5A}\u{10400}-\u{1044F}\u{104B0}-\u{104D3}\u{104D8}-\u{104FB}\u{10C80}-\u{10CB2}\u{10CC0}-\u{10CF2}\u{118A0}-\u{118DF}\u{1E900}-\u{1E943}]+",
    r"\s?[!-/:-~！-／：-～‘-‟　-。]+",
    r"\s+$",
    r"[一-龥ࠀ-一가-퟿]+",
    r"\p{N}+",
];
const DEEPSEEK_CODER: &[&str] = &[
    r"[\r\n]",
    r"\s?\p{L}+",
    r"\s?\p{P}+",
    r"[一-龥ࠀ-一가-퟿]+",
    r"\p{N}",
];
const DEEPSEEK_V3: &[&str] = &[
    r"\p{N}{1,3}",
    r"[一-龥぀-ゟ゠-ヿ]+",
    r##"[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"##,
];
const FALCON: &[&str] = &[r"[\p{P}\$\+<=>\^~\|`]+", GPT2, "[0-9][0-9][0-9]"];
const BLOOM: &[&str] = &[r" ?[^(\s|.,!?…。，、।۔،)]+"];
const VIKING: &[&str] = &[r" ?[^(\s|.,!?…。，、।۔،)]+", r"\p{N}"];
const SMOLLM: &[&str] = &[r"\p{N}", GPT2];

/// llama.cpp's pre-tokenizer for a `tokenizer.ggml.pre` value: its regexes, whether whole
/// words found in the vocabulary skip merging (`ignore_merges`), and whether BOS is added by
/// default.
struct PreSpec {
    regexes: &'static [&'static str],
    ignore_merges: bool,
    add_bos: bool,
}

fn pre_spec(pre: &str) -> Option<PreSpec> {
    let spec = |regexes, ignore_merges, add_bos| PreSpec {
        regexes,
        ignore_merges,
        add_bos,
    };
    Some(match pre {
        "default" => spec(DEFAULT, false, false),
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" => spec(&[LLAMA3], true, true),
        "dbrx" | "smaug-bpe" | "chatglm-bpe" => spec(&[LLAMA3], false, false),
        "deepseek-llm" => spec(DEEPSEEK_LLM, false, false),
        "deepseek-coder" => spec(DEEPSEEK_CODER, false, false),
        "deepseek-v3" => spec(DEEPSEEK_V3, false, false),
        "falcon" => spec(FALCON, false, false),
        "gpt-2" | "phi-2" | "jina-es" | "jina-de" | "gigachat" | "jina-v1-en" | "jina-v2-es"
        | "jina-v2-de" | "jina-v2-code" | "roberta-bpe" | "mpt" | "olmo" | "jais" => {
            spec(&[GPT2], false, false)
        }
        "starcoder" | "refact" | "command-r" | "smollm" | "codeshell" | "exaone" | "minerva-7b" => {
            spec(SMOLLM, false, false)
        }
        "qwen2" | "stablelm2" | "megrez" => spec(&[QWEN2], false, false),
        "poro-chat" | "bloom" | "gpt3-finnish" => spec(BLOOM, false, false),
        "viking" => spec(VIKING, false, false),
        _ => return None,
    })
}

/// A byte-level BPE model.
pub(crate) struct Bpe {
    pre: String,
    regexes: Vec<SysRegex>,
    ignore_merges: bool,
    ranks: HashMap<(String, String), u32>,
}

impl Bpe {
    /// Builds the model for pre-tokenizer `pre` with merges `"left right"` in rank order.
    /// Returns it with llama.cpp's default for `add_bos` under this pre-tokenizer.
    pub(crate) fn new(pre: &str, merges: &[String]) -> Result<(Self, bool), TokenizerError> {
        let spec =
            pre_spec(pre).ok_or_else(|| TokenizerError::UnsupportedPreTokenizer(pre.to_owned()))?;
        let regexes = spec
            .regexes
            .iter()
            .map(|p| {
                SysRegex::new(p).map_err(|e| TokenizerError::Regex {
                    pattern: (*p).to_owned(),
                    reason: e.to_string(),
                })
            })
            .collect::<Result<_, _>>()?;
        let mut ranks = HashMap::with_capacity(merges.len());
        for (rank, merge) in merges.iter().enumerate() {
            // llama.cpp splits at the first space after the first byte, so a merge whose left
            // side is itself a space still parses; a line without one yields ("", "").
            let split = merge
                .as_bytes()
                .get(1..)
                .and_then(|rest| rest.iter().position(|&b| b == b' '));
            // The space is ASCII, so both slice bounds fall on char boundaries.
            let (left, right) = match split {
                Some(at) => (&merge[..at + 1], &merge[at + 2..]),
                None => ("", ""),
            };
            ranks
                .entry((left.to_owned(), right.to_owned()))
                .or_insert(rank as u32);
        }
        let bpe = Self {
            pre: pre.to_owned(),
            regexes,
            ignore_merges: spec.ignore_merges,
            ranks,
        };
        Ok((bpe, spec.add_bos))
    }

    pub(crate) fn describe(&self) -> String {
        format!("bpe ({}, {} merges)", self.pre, self.ranks.len())
    }

    /// Encodes a fragment that contains no special tokens.
    pub(crate) fn encode(&self, text: &str, vocab: &Vocab, out: &mut Vec<u32>) {
        let alphabet = byte_chars();
        let mut word = String::new();
        for piece in self.split(text) {
            word.clear();
            word.extend(piece.bytes().map(|b| alphabet[b as usize]));
            self.encode_word(&word, vocab, out);
        }
    }

    /// Applies the pre-tokenizer regexes in turn; each splits every piece left by the
    /// previous one into its matches and the gaps between them.
    fn split<'a>(&self, text: &'a str) -> Vec<&'a str> {
        let mut pieces = vec![text];
        for regex in &self.regexes {
            let mut next = Vec::with_capacity(pieces.len() * 2);
            for piece in pieces {
                let mut pos = 0;
                // find_iter stops early if the backtracking limit is hit; the rest of the
                // piece then stays whole rather than being lost.
                for (start, end) in regex.find_iter(piece) {
                    if start > pos {
                        next.push(&piece[pos..start]);
                    }
                    if end > start {
                        next.push(&piece[start..end]);
                    }
                    pos = end;
                }
                if pos < piece.len() {
                    next.push(&piece[pos..]);
                }
            }
            pieces = next;
        }
        pieces
    }

    /// llama.cpp's merge loop over one pre-tokenized, byte-mapped word.
    fn encode_word(&self, word: &str, vocab: &Vocab, out: &mut Vec<u32>) {
        if word.is_empty() {
            return;
        }
        if self.ignore_merges {
            if let Some(id) = vocab.id(word) {
                out.push(id);
                return;
            }
        }
        let mut symbols = split_chars(word);
        let mut queue = BinaryHeap::new();
        for i in 1..symbols.len() {
            self.push_bigram(word, &symbols, i - 1, i, &mut queue);
        }
        while let Some(bigram) = queue.pop() {
            let (left, right) = (symbols[bigram.left], symbols[bigram.right]);
            // Skip pairs made stale by an earlier merge on either side.
            if left.len == 0 || right.len == 0 {
                continue;
            }
            let joined = &word[left.start..left.start + left.len + right.len];
            if right.start != left.start + left.len || joined != bigram.text {
                continue;
            }
            let (prev, next) = merge(&mut symbols, bigram.left, bigram.right);
            if let Some(p) = prev {
                self.push_bigram(word, &symbols, p, bigram.left, &mut queue);
            }
            if let Some(n) = next {
                self.push_bigram(word, &symbols, bigram.left, n, &mut queue);
            }
        }
        for symbol in symbols.iter().filter(|s| s.len > 0) {
            let text = &word[symbol.start..symbol.start + symbol.len];
            match vocab.id(text) {
                Some(id) => out.push(id),
                // As llama.cpp: fall back to single-byte tokens, which only exist for ASCII
                // characters of the byte alphabet; anything else is dropped.
                None => out.extend(
                    text.bytes()
                        .filter_map(|b| std::str::from_utf8(&[b]).ok().and_then(|s| vocab.id(s))),
                ),
            }
        }
    }

    fn push_bigram(
        &self,
        word: &str,
        symbols: &[Symbol],
        left: usize,
        right: usize,
        queue: &mut BinaryHeap<Bigram>,
    ) {
        let (l, r) = (symbols[left], symbols[right]);
        let key = (
            word[l.start..l.start + l.len].to_owned(),
            word[r.start..r.start + r.len].to_owned(),
        );
        if let Some(&rank) = self.ranks.get(&key) {
            let text = word[l.start..r.start + r.len].to_owned();
            queue.push(Bigram {
                rank,
                left,
                right,
                text,
            });
        }
    }
}

/// A candidate merge; the heap pops the lowest rank, then the leftmost.
#[derive(Debug, PartialEq, Eq)]
struct Bigram {
    rank: u32,
    left: usize,
    right: usize,
    text: String,
}

impl Ord for Bigram {
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .rank
            .cmp(&self.rank)
            .then_with(|| other.left.cmp(&self.left))
    }
}

impl PartialOrd for Bigram {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_alphabet_round_trips() {
        let chars = byte_chars();
        assert_eq!(chars[b' ' as usize], 'Ġ');
        assert_eq!(chars[b'\n' as usize], 'Ċ');
        assert_eq!(chars[b'a' as usize], 'a');
        for b in 0..=255u8 {
            assert_eq!(char_byte(chars[b as usize]), Some(b));
        }
    }

    #[test]
    fn every_pre_tokenizer_compiles() {
        for pre in [
            "default",
            "llama3",
            "dbrx",
            "deepseek-llm",
            "deepseek-coder",
            "deepseek-v3",
            "falcon",
            "gpt-2",
            "smollm",
            "qwen2",
            "bloom",
            "viking",
        ] {
            if let Err(e) = Bpe::new(pre, &[]) {
                panic!("{pre}: {e}")
            }
        }
        assert!(matches!(
            Bpe::new("tekken", &[]),
            Err(TokenizerError::UnsupportedPreTokenizer(_))
        ));
    }

    #[test]
    fn smollm_splits_digits_individually() {
        let (bpe, _) = Bpe::new("smollm", &[]).unwrap();
        assert_eq!(
            bpe.split("ab 123  cd's"),
            vec!["ab", " ", "1", "2", "3", " ", " cd", "'s"]
        );
    }

    #[test]
    fn llama3_groups_digits_by_three() {
        let (bpe, _) = Bpe::new("llama3", &[]).unwrap();
        assert_eq!(
            bpe.split("12345 x\n\n y"),
            vec!["123", "45", " x", "\n\n", " y"]
        );
    }
}
