//! The doubly linked list of symbols that both llama.cpp merge loops (BPE by rank,
//! SentencePiece by score) work on: one symbol per character at first, merged in place.

/// A span of the input text, linked to its neighbours; a merged-away symbol has `len` 0.
#[derive(Clone, Copy, Debug)]
pub(super) struct Symbol {
    pub(super) start: usize,
    pub(super) len: usize,
    pub(super) prev: Option<usize>,
    pub(super) next: Option<usize>,
}

/// One symbol per character of `text`, linked in order.
pub(super) fn split_chars(text: &str) -> Vec<Symbol> {
    let mut symbols: Vec<Symbol> = Vec::with_capacity(text.len());
    for (i, (start, c)) in text.char_indices().enumerate() {
        symbols.push(Symbol {
            start,
            len: c.len_utf8(),
            prev: i.checked_sub(1),
            next: None,
        });
        if i > 0 {
            symbols[i - 1].next = Some(i);
        }
    }
    symbols
}

/// Merges `symbols[right]` into its left neighbour `symbols[left]` and returns the merged
/// symbol's neighbours, whose pairs with it are the new merge candidates.
pub(super) fn merge(
    symbols: &mut [Symbol],
    left: usize,
    right: usize,
) -> (Option<usize>, Option<usize>) {
    let r = symbols[right];
    symbols[left].len += r.len;
    symbols[left].next = r.next;
    symbols[right].len = 0;
    if let Some(n) = r.next {
        symbols[n].prev = Some(left);
    }
    (symbols[left].prev, symbols[left].next)
}
