//! The vocabulary: token texts, their kinds, their output bytes, and the special-token split
//! that runs before any tokenizer model.

use std::collections::HashMap;

/// A token's type, as GGUF's `tokenizer.ggml.token_type` numbers them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TokenKind {
    Normal,
    Unknown,
    Control,
    UserDefined,
    Unused,
    Byte,
    Undefined,
}

impl TokenKind {
    /// Maps GGUF's `tokenizer.ggml.token_type` value (llama.cpp's `llama_token_type`).
    pub(crate) fn from_gguf(value: i64) -> Self {
        match value {
            1 => Self::Normal,
            2 => Self::Unknown,
            3 => Self::Control,
            4 => Self::UserDefined,
            5 => Self::Unused,
            6 => Self::Byte,
            _ => Self::Undefined,
        }
    }

    /// Control and unknown tokens are not printed and only parsed from text on request.
    pub(crate) fn is_special(self) -> bool {
        matches!(self, Self::Control | Self::Unknown)
    }

    /// Tokens the input is searched for before the model runs (llama.cpp's
    /// `cache_special_tokens`).
    fn is_matched_in_text(self) -> bool {
        matches!(self, Self::Control | Self::Unknown | Self::UserDefined)
    }
}

/// A piece of input: text for the model, or a special token already recognised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fragment<'a> {
    Text(&'a str),
    Token(u32),
}

pub(crate) struct Vocab {
    texts: Vec<String>,
    kinds: Vec<TokenKind>,
    ids: HashMap<String, u32>,
    /// Tokens searched for in the input, longest text first so that e.g. `<|im_start|>`
    /// wins over a shorter token that is its prefix.
    matched: Vec<u32>,
    /// Output bytes per token, computed once (llama.cpp's `cache_token_to_piece`).
    pieces: Vec<Vec<u8>>,
}

impl Vocab {
    /// Builds the vocabulary; `piece` computes a token's output bytes from its text and kind.
    ///
    /// Duplicate texts map to the last id, as llama.cpp's `token_to_id[word] = i` does.
    pub(crate) fn new(
        texts: Vec<String>,
        kinds: Vec<TokenKind>,
        piece: impl Fn(&str, TokenKind) -> Vec<u8>,
    ) -> Self {
        debug_assert_eq!(texts.len(), kinds.len());
        let mut ids = HashMap::with_capacity(texts.len());
        for (id, text) in texts.iter().enumerate() {
            ids.insert(text.clone(), id as u32);
        }
        let mut matched: Vec<u32> = (0..texts.len() as u32)
            .filter(|&id| kinds[id as usize].is_matched_in_text() && !texts[id as usize].is_empty())
            .collect();
        // Stable, so equal lengths keep id order: the result does not depend on sort internals.
        matched.sort_by_key(|&id| std::cmp::Reverse(texts[id as usize].len()));
        let pieces = texts
            .iter()
            .zip(&kinds)
            .map(|(t, &k)| piece(t, k))
            .collect();
        Self {
            texts,
            kinds,
            ids,
            matched,
            pieces,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.texts.len()
    }

    pub(crate) fn id(&self, text: &str) -> Option<u32> {
        self.ids.get(text).copied()
    }

    pub(crate) fn text(&self, id: u32) -> Option<&str> {
        self.texts.get(id as usize).map(String::as_str)
    }

    pub(crate) fn kind(&self, id: u32) -> Option<TokenKind> {
        self.kinds.get(id as usize).copied()
    }

    pub(crate) fn piece(&self, id: u32) -> Option<&[u8]> {
        self.pieces.get(id as usize).map(Vec::as_slice)
    }

    pub(crate) fn is_special(&self, id: u32) -> bool {
        self.kind(id).is_some_and(TokenKind::is_special)
    }

    /// Splits `text` around special tokens, as llama.cpp's `tokenizer_st_partition`: each
    /// token in turn (longest first) is searched for, left to right, in the text fragments
    /// that remain. Control and unknown tokens only count when `parse_special` is set;
    /// user-defined tokens always do.
    pub(crate) fn partition<'a>(&self, text: &'a str, parse_special: bool) -> Vec<Fragment<'a>> {
        let mut fragments = Vec::new();
        if !text.is_empty() {
            fragments.push(Fragment::Text(text));
        }
        for &id in &self.matched {
            let kind = self.kinds[id as usize];
            if !parse_special && kind.is_special() {
                continue;
            }
            let needle = self.texts[id as usize].as_str();
            // Cheap pre-check: most special tokens do not occur in most prompts.
            if !fragments
                .iter()
                .any(|f| matches!(f, Fragment::Text(t) if t.contains(needle)))
            {
                continue;
            }
            let mut next = Vec::with_capacity(fragments.len() + 2);
            for fragment in fragments {
                let Fragment::Text(mut rest) = fragment else {
                    next.push(fragment);
                    continue;
                };
                while let Some(at) = rest.find(needle) {
                    if at > 0 {
                        next.push(Fragment::Text(&rest[..at]));
                    }
                    next.push(Fragment::Token(id));
                    rest = &rest[at + needle.len()..];
                }
                if !rest.is_empty() {
                    next.push(Fragment::Text(rest));
                }
            }
            fragments = next;
        }
        fragments
    }

    /// Marks `id` as a control token (llama.cpp does so for end-of-generation tokens the
    /// converter left as normal). Its piece stays its text.
    pub(crate) fn force_control(&mut self, id: u32) -> bool {
        match self.kinds.get_mut(id as usize) {
            Some(kind) if *kind != TokenKind::Control => {
                *kind = TokenKind::Control;
                self.pieces[id as usize] = self.texts[id as usize].as_bytes().to_vec();
                if !self.matched.contains(&id) {
                    self.matched.push(id);
                    let texts = &self.texts;
                    self.matched
                        .sort_by_key(|&m| std::cmp::Reverse(texts[m as usize].len()));
                }
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab(tokens: &[(&str, TokenKind)]) -> Vocab {
        Vocab::new(
            tokens.iter().map(|(t, _)| t.to_string()).collect(),
            tokens.iter().map(|&(_, k)| k).collect(),
            |t, _| t.as_bytes().to_vec(),
        )
    }

    #[test]
    fn partition_prefers_longest_and_respects_parse_special() {
        use TokenKind::*;
        let v = vocab(&[
            ("a", Normal),
            ("<s>", Control),
            ("<s>x", Control),
            ("<u>", UserDefined),
        ]);
        assert_eq!(
            v.partition("a<s>x<s><u>b", true),
            vec![
                Fragment::Text("a"),
                Fragment::Token(2),
                Fragment::Token(1),
                Fragment::Token(3),
                Fragment::Text("b")
            ]
        );
        assert_eq!(
            v.partition("a<s><u>", false),
            vec![Fragment::Text("a<s>"), Fragment::Token(3)]
        );
        assert!(v.partition("", true).is_empty());
    }
}
