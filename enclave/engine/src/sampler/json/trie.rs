//! The vocabulary as a byte trie, so that tokens sharing a prefix share its walk.
//!
//! Masking asks, for every token, whether its bytes continue the text so far. Walking the
//! trie depth-first answers it for all tokens at once, reads each shared prefix once, and
//! abandons a whole subtree at the first byte the recogniser refuses.

/// One trie node: the byte that leads to it, its children (contiguous) and the tokens
/// whose bytes end here (contiguous in [`Trie::tokens`]).
#[derive(Clone, Copy, Debug)]
struct Node {
    byte: u8,
    children: (u32, u32),
    tokens: (u32, u32),
}

/// Token ids by their bytes.
#[derive(Debug)]
pub struct Trie {
    /// Node 0 is the root (the empty prefix).
    nodes: Vec<Node>,
    tokens: Vec<u32>,
}

impl Trie {
    /// A trie of `(bytes, id)` pairs; empty byte strings are left out.
    pub fn new(mut entries: Vec<(Vec<u8>, u32)>) -> Self {
        entries.retain(|(b, _)| !b.is_empty());
        entries.sort_unstable();
        let mut trie = Trie {
            nodes: vec![Node {
                byte: 0,
                children: (0, 0),
                tokens: (0, 0),
            }],
            tokens: Vec::with_capacity(entries.len()),
        };
        // Each node's entries are a contiguous run of the sorted list sharing its prefix;
        // the stack holds (node, run, depth) still to expand. Iterative, because a
        // user-defined token may be long.
        let mut stack = vec![(0usize, 0usize, entries.len(), 0usize)];
        while let Some((node, mut lo, hi, depth)) = stack.pop() {
            let start = trie.tokens.len() as u32;
            while lo < hi && entries[lo].0.len() == depth {
                trie.tokens.push(entries[lo].1);
                lo += 1;
            }
            trie.nodes[node].tokens = (start, trie.tokens.len() as u32);
            let first_child = trie.nodes.len();
            let mut runs = Vec::new();
            while lo < hi {
                let byte = entries[lo].0[depth];
                let mut end = lo;
                while end < hi && entries[end].0[depth] == byte {
                    end += 1;
                }
                trie.nodes.push(Node {
                    byte,
                    children: (0, 0),
                    tokens: (0, 0),
                });
                runs.push((trie.nodes.len() - 1, lo, end, depth + 1));
                lo = end;
            }
            trie.nodes[node].children = (first_child as u32, trie.nodes.len() as u32);
            stack.extend(runs);
        }
        trie
    }

    /// Nodes in the trie (the root included).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Walks every token from `start`: `step(state, byte)` gives the state after a byte or
    /// `None` to abandon that branch, and `accept(state, id)` is called for each token
    /// whose every byte was taken, with the state after its last byte.
    pub fn walk<S: Copy>(
        &self,
        start: S,
        mut step: impl FnMut(S, u8) -> Option<S>,
        mut accept: impl FnMut(S, u32),
    ) {
        let mut stack = Vec::with_capacity(256);
        let root = self.nodes[0];
        stack.extend((root.children.0..root.children.1).map(|c| (c, start)));
        while let Some((index, state)) = stack.pop() {
            let node = self.nodes[index as usize];
            let Some(state) = step(state, node.byte) else {
                continue;
            };
            for &id in &self.tokens[node.tokens.0 as usize..node.tokens.1 as usize] {
                accept(state, id);
            }
            stack.extend((node.children.0..node.children.1).map(|c| (c, state)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_walk_finds_exactly_the_tokens_a_filter_allows() {
        let words: Vec<&[u8]> = vec![b"a", b"ab", b"abc", b"b", b"ba", b"", b"abd", b"c"];
        let trie = Trie::new(
            words
                .iter()
                .enumerate()
                .map(|(i, w)| (w.to_vec(), i as u32))
                .collect(),
        );
        assert_eq!(trie.len(), 8, "root, a, ab, abc, abd, b, ba, c");
        // Bytes up to `b` only: the state counts the bytes read.
        let mut found = Vec::new();
        trie.walk(
            0usize,
            |n, b| (b <= b'b').then_some(n + 1),
            |n, id| found.push((id, n)),
        );
        found.sort_unstable();
        assert_eq!(found, vec![(0, 1), (1, 2), (3, 1), (4, 2)]);
    }
}
