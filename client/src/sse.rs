//! Server-sent events as OpenAI streams them: `data: <json>` events ended by a blank
//! line, and `data: [DONE]` at the end.

use zeroize::Zeroizing;

/// Splits a byte stream into SSE `data` payloads, across arbitrary chunk boundaries.
#[derive(Default)]
pub struct SseParser {
    buf: Zeroizing<Vec<u8>>,
}

/// One event's payload.
#[derive(Debug, PartialEq, Eq)]
pub enum SseEvent {
    /// A JSON payload.
    Data(Zeroizing<String>),
    /// `[DONE]`.
    Done,
}

impl SseParser {
    /// Feeds bytes; returns the events they completed.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Some(end) = find_event_end(&self.buf) {
            let (len, sep) = end;
            let event = Zeroizing::new(self.buf[..len].to_vec());
            self.buf.drain(..len + sep);
            let mut data = Zeroizing::new(String::new());
            for line in String::from_utf8_lossy(&event).lines() {
                if let Some(rest) = line.strip_prefix("data:") {
                    if !data.is_empty() {
                        data.push('\n');
                    }
                    data.push_str(rest.strip_prefix(' ').unwrap_or(rest));
                }
            }
            if data.is_empty() {
                continue;
            }
            if data.as_str() == "[DONE]" {
                out.push(SseEvent::Done);
            } else {
                out.push(SseEvent::Data(data));
            }
        }
        out
    }
}

fn find_event_end(buf: &[u8]) -> Option<(usize, usize)> {
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|p| (p, 2));
    let crlf = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| (p, 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_chunks_and_done() {
        let mut p = SseParser::default();
        assert!(p.push(b"data: {\"a\"").is_empty());
        let ev = p.push(b":1}\n\ndata: [DONE]\n\n");
        assert_eq!(ev.len(), 2);
        assert_eq!(ev[0], SseEvent::Data(Zeroizing::new("{\"a\":1}".into())));
        assert_eq!(ev[1], SseEvent::Done);
        assert_eq!(p.push(b": comment\r\n\r\n"), vec![]);
    }
}
