//! Streaming detokenisation: UTF-8-safe text deltas and stop strings.
//!
//! Generated tokens arrive one at a time and the client wants text as soon as it is final.
//! Two things make a token's bytes not yet final:
//!
//! * a character may be split across tokens (byte-level BPE and `<0xNN>` byte fallback emit
//!   single bytes of multi-byte characters), so an incomplete UTF-8 tail is held back;
//! * the text may be the start of a stop string that the next tokens complete, so the longest
//!   tail that is a prefix of some stop string is held back until it either completes one
//!   (generation stops; the stop string is never emitted) or cannot anymore.

use crate::tokenizer::Tokenizer;

/// What one token adds to the stream.
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub enum StreamStep {
    /// Text that is now final (may be empty while bytes or a stop-string prefix are held).
    Text(String),
    /// A stop string was completed: `text` is the final text before it. The stop string
    /// itself is never emitted, and the stream is finished.
    Stop {
        /// Text between the previous delta and the stop string.
        text: String,
    },
}

/// Turns a stream of token ids into text deltas, holding back incomplete characters and
/// possible stop-string prefixes.
#[derive(Clone, Debug)]
pub struct TextStream {
    stop: Vec<String>,
    /// An incomplete UTF-8 sequence at the end of the bytes seen so far (at most 3 bytes).
    partial: Vec<u8>,
    /// Decoded text not yet emitted because it may begin a stop string.
    held: String,
    stopped: bool,
    /// Characters decoded so far (emitted, held, or cut at a stop string).
    decoded: usize,
    /// Characters emitted so far.
    emitted: usize,
}

impl TextStream {
    /// A stream that stops at the first occurrence of any of `stop`. Empty stop strings are
    /// ignored (they would match before any text).
    pub fn new(stop: Vec<String>) -> Self {
        let stop = stop.into_iter().filter(|s| !s.is_empty()).collect();
        Self {
            stop,
            partial: Vec::new(),
            held: String::new(),
            stopped: false,
            decoded: 0,
            emitted: 0,
        }
    }

    /// Characters of text the tokens pushed so far have decoded to (an incomplete UTF-8
    /// tail not counted yet). A token's text lies between this count before and after it.
    pub fn decoded_chars(&self) -> usize {
        self.decoded
    }

    /// Characters of text returned so far, by [`TextStream::push`] and
    /// [`TextStream::finish`]; after a stop string, where the answer was cut.
    pub fn emitted_chars(&self) -> usize {
        self.emitted
    }

    /// Whether a stop string has been found; further tokens are then ignored.
    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    /// Adds token `id`. Control tokens (see [`Tokenizer::is_special`]) print nothing;
    /// unknown ids are ignored. After a [`StreamStep::Stop`], every push returns an empty
    /// `Stop` again.
    pub fn push(&mut self, tok: &Tokenizer, id: u32) -> StreamStep {
        if self.stopped {
            return StreamStep::Stop {
                text: String::new(),
            };
        }
        if tok.is_special(id) {
            return StreamStep::Text(String::new());
        }
        if let Some(bytes) = tok.token_bytes(id) {
            self.partial.extend_from_slice(&bytes);
            let before = self.held.len();
            decode_complete(&mut self.partial, &mut self.held);
            self.decoded += self.held[before..].chars().count();
        }
        if let Some(text) = self.take_before_stop() {
            return StreamStep::Stop { text };
        }
        let keep = self.stop_prefix_len();
        let emit = self.held.len() - keep;
        let text = self.held[..emit].to_owned();
        self.held.drain(..emit);
        self.emitted += text.chars().count();
        StreamStep::Text(text)
    }

    /// Ends the stream: returns everything still held back. An incomplete character at the
    /// very end becomes U+FFFD. If the flushed text completes a stop string, only the text
    /// before it is returned. Returns an empty string after a stop.
    pub fn finish(&mut self) -> String {
        if self.stopped {
            return String::new();
        }
        if !self.partial.is_empty() {
            let tail = String::from_utf8_lossy(&self.partial);
            self.decoded += tail.chars().count();
            self.held.push_str(&tail);
            self.partial.clear();
        }
        if let Some(text) = self.take_before_stop() {
            return text;
        }
        self.stopped = true;
        self.emitted += self.held.chars().count();
        std::mem::take(&mut self.held)
    }

    /// If a stop string occurs in the held text, finishes the stream and returns the text
    /// before the earliest one.
    ///
    /// Only held text needs searching: everything emitted earlier had no suffix that could
    /// start a stop string.
    fn take_before_stop(&mut self) -> Option<String> {
        let at = self
            .stop
            .iter()
            .filter_map(|s| self.held.find(s.as_str()))
            .min()?;
        self.held.truncate(at);
        self.stopped = true;
        self.emitted += self.held.chars().count();
        Some(std::mem::take(&mut self.held))
    }

    /// Length of the longest tail of the held text that is a proper prefix of a stop string.
    fn stop_prefix_len(&self) -> usize {
        self.held
            .char_indices()
            .map(|(i, _)| i)
            .find(|&i| {
                let tail = &self.held[i..];
                self.stop
                    .iter()
                    .any(|s| s.len() > tail.len() && s.starts_with(tail))
            })
            .map_or(0, |i| self.held.len() - i)
    }
}

/// Moves the complete UTF-8 prefix of `bytes` into `out`, leaving only an incomplete
/// trailing sequence in `bytes`. Invalid bytes (not merely incomplete) become U+FFFD at once,
/// since no later byte can make them valid.
fn decode_complete(bytes: &mut Vec<u8>, out: &mut String) {
    let mut rest: &[u8] = bytes;
    loop {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                out.push_str(s);
                rest = &[];
                break;
            }
            Err(e) => {
                let (valid, after) = rest.split_at(e.valid_up_to());
                // The prefix was just checked; this cannot fail.
                out.push_str(std::str::from_utf8(valid).unwrap_or_default());
                match e.error_len() {
                    Some(n) => {
                        out.push('\u{FFFD}');
                        rest = &after[n..];
                    }
                    None => {
                        rest = after;
                        break;
                    }
                }
            }
        }
    }
    let keep = rest.len();
    let start = bytes.len() - keep;
    bytes.drain(..start);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_complete_keeps_incomplete_tail() {
        let mut bytes = "a€".as_bytes().to_vec();
        bytes.pop();
        let mut out = String::new();
        decode_complete(&mut bytes, &mut out);
        assert_eq!(out, "a");
        assert_eq!(bytes, vec![0xE2, 0x82]);
        bytes.push(0xAC);
        decode_complete(&mut bytes, &mut out);
        assert_eq!(out, "a€");
        assert!(bytes.is_empty());
    }

    #[test]
    fn decode_complete_replaces_invalid_bytes() {
        let mut bytes = vec![b'x', 0xFF, b'y', 0xC3];
        let mut out = String::new();
        decode_complete(&mut bytes, &mut out);
        assert_eq!(out, "x\u{FFFD}y");
        assert_eq!(bytes, vec![0xC3]);
    }
}
