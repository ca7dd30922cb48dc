//! A byte-at-a-time recogniser of JSON object text (RFC 8259), with the cost of closing it.
//!
//! The state is `Copy` and a few bytes, so the vocabulary walk can copy it at every branch
//! of the token trie instead of undoing steps. It accepts exactly the prefixes of texts
//! that are one JSON object with at most [`MAX_DEPTH`] levels of nesting, bounded runs of
//! whitespace ([`MAX_WHITESPACE`]) and no `\u` escapes of surrogates (so that strict
//! parsers, which refuse lone surrogates, accept every text it accepts).

/// Deepest nesting of objects and arrays (the stack is one bit per level).
pub const MAX_DEPTH: u8 = 64;

/// Longest run of whitespace bytes between two tokens of JSON. Models left free to write
/// whitespace sometimes write nothing else; pretty-printed JSON needs far fewer.
pub const MAX_WHITESPACE: u8 = 32;

/// Where in a number the text is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Num {
    /// `-`
    Minus,
    /// A leading `0` (no more integer digits may follow).
    Zero,
    /// Integer digits after a non-zero first digit.
    Int,
    /// `.` with no fraction digit yet.
    Dot,
    /// Fraction digits.
    Frac,
    /// `e` or `E`.
    E,
    /// The exponent's sign.
    ESign,
    /// Exponent digits.
    Exp,
}

impl Num {
    /// Whether the number may end here.
    fn complete(self) -> bool {
        matches!(self, Num::Zero | Num::Int | Num::Frac | Num::Exp)
    }
}

/// What is pending inside a string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pending {
    /// Nothing: the next byte is any character, `\` or the closing quote.
    None,
    /// After `\`.
    Escape,
    /// After `\u` and some hex digits: how many remain, and whether the first was `d`/`D`
    /// (then the second must be 0-7, keeping clear of the surrogates D800-DFFF).
    Hex { left: u8, after_d: bool },
    /// Inside a multi-byte UTF-8 character: continuation bytes left and the range the
    /// next one must fall in (narrower after E0, ED, F0, F4: no overlong forms, no
    /// surrogates, nothing above U+10FFFF).
    Utf8 { left: u8, lo: u8, hi: u8 },
}

/// The lexical position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lex {
    /// Before the top-level `{`.
    Start,
    /// After `{`: a key or `}`.
    ObjectFirst,
    /// After `,` in an object: a key.
    ObjectKey,
    /// After a key: `:`.
    Colon,
    /// A value is expected; `first` after `[`, where `]` may come instead.
    Value { first: bool },
    /// After a value: `,` or the current container's closer.
    After,
    /// Inside a string (an object key when `key`).
    Str { key: bool, pending: Pending },
    /// Inside a number.
    Number(Num),
    /// Inside `true`, `false` or `null`: which, and how many bytes were read.
    Literal { word: u8, read: u8 },
    /// The top-level object has closed: nothing more may follow.
    Done,
}

const WORDS: [&[u8]; 3] = [b"true", b"false", b"null"];

/// A valid prefix of one JSON object's text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JsonState {
    /// One bit per open container, bit `i` set when level `i` is an object.
    stack: u64,
    /// Open containers.
    depth: u8,
    /// Whitespace bytes since the last other byte.
    whitespace: u8,
    lex: Lex,
}

impl Default for JsonState {
    fn default() -> Self {
        Self::new()
    }
}

impl JsonState {
    /// Nothing read yet.
    pub const fn new() -> Self {
        Self {
            stack: 0,
            depth: 0,
            whitespace: 0,
            lex: Lex::Start,
        }
    }

    /// Whether the top-level object has closed.
    pub fn is_done(&self) -> bool {
        self.lex == Lex::Done
    }

    /// Whether the text is inside a string with nothing pending (no escape, no partial
    /// character): the state most tokens leave unchanged.
    pub fn in_plain_string(&self) -> bool {
        matches!(
            self.lex,
            Lex::Str {
                pending: Pending::None,
                ..
            }
        )
    }

    /// Whether `bytes` leave every string state with nothing pending exactly as it was:
    /// whole characters and escapes, no closing quote. Such a token is allowed inside any
    /// string, whatever the key, the depth or the budget.
    pub fn keeps_plain_string(bytes: &[u8]) -> bool {
        // Inside a string the transitions ignore the key, the depth and the stack.
        const IN_STRING: JsonState = JsonState {
            stack: 1,
            depth: 1,
            whitespace: 0,
            lex: Lex::Str {
                key: true,
                pending: Pending::None,
            },
        };
        !bytes.contains(&b'"') && IN_STRING.feed_all(bytes) == Some(IN_STRING)
    }

    /// The state after `bytes`, or `None` when they cannot continue a JSON object.
    pub fn feed_all(mut self, bytes: &[u8]) -> Option<Self> {
        for &b in bytes {
            self = self.feed(b)?;
        }
        Some(self)
    }

    /// The state after byte `b`, or `None` when it cannot continue a JSON object.
    pub fn feed(mut self, b: u8) -> Option<Self> {
        let ws = matches!(b, b' ' | b'\t' | b'\n' | b'\r');
        let structural = !matches!(self.lex, Lex::Str { .. } | Lex::Literal { .. });
        if let Lex::Number(n) = self.lex {
            if let Some(next) = number(n, b) {
                self.lex = Lex::Number(next);
                return Some(self);
            }
            if !n.complete() {
                return None;
            }
            // Any other byte ends the number and is read as what follows a value.
            self.lex = Lex::After;
        }
        if structural && ws {
            if self.whitespace >= MAX_WHITESPACE || self.lex == Lex::Done {
                return None;
            }
            self.whitespace += 1;
            return Some(self);
        }
        self.whitespace = 0;
        self.lex = match self.lex {
            Lex::Done => return None,
            Lex::Start => match b {
                b'{' => return self.open(true),
                _ => return None,
            },
            Lex::ObjectFirst => match b {
                b'"' => Lex::Str {
                    key: true,
                    pending: Pending::None,
                },
                b'}' => return self.close(true),
                _ => return None,
            },
            Lex::ObjectKey => match b {
                b'"' => Lex::Str {
                    key: true,
                    pending: Pending::None,
                },
                _ => return None,
            },
            Lex::Colon => match b {
                b':' => Lex::Value { first: false },
                _ => return None,
            },
            Lex::Value { first } => match b {
                b'{' => return self.open(true),
                b'[' => return self.open(false),
                b']' if first => return self.close(false),
                b'"' => Lex::Str {
                    key: false,
                    pending: Pending::None,
                },
                b'-' => Lex::Number(Num::Minus),
                b'0' => Lex::Number(Num::Zero),
                b'1'..=b'9' => Lex::Number(Num::Int),
                b't' => Lex::Literal { word: 0, read: 1 },
                b'f' => Lex::Literal { word: 1, read: 1 },
                b'n' => Lex::Literal { word: 2, read: 1 },
                _ => return None,
            },
            Lex::After => match b {
                b',' if self.in_object() => Lex::ObjectKey,
                b',' => Lex::Value { first: false },
                b'}' if self.in_object() => return self.close(true),
                b']' if !self.in_object() => return self.close(false),
                _ => return None,
            },
            Lex::Str { key, pending } => match string(pending, b)? {
                Some(pending) => Lex::Str { key, pending },
                None if key => Lex::Colon,
                None => Lex::After,
            },
            Lex::Literal { word, read } => {
                let text = WORDS[usize::from(word)];
                if text.get(usize::from(read)) != Some(&b) {
                    return None;
                }
                if usize::from(read) + 1 == text.len() {
                    Lex::After
                } else {
                    Lex::Literal {
                        word,
                        read: read + 1,
                    }
                }
            }
            Lex::Number(_) => unreachable!("numbers were handled above"),
        };
        Some(self)
    }

    /// Bytes that complete the text from here by the shortest route: the rest of the
    /// current string, number or literal, a placeholder where a key or value is owed
    /// (`"":0`), then one closer per open container. Each byte of that route lowers the
    /// cost by exactly one, so a state whose cost fits a budget can always be completed
    /// within it, one single-byte token at a time.
    pub fn close_cost(&self) -> usize {
        let d = usize::from(self.depth);
        let own = match self.lex {
            Lex::Done => return 0,
            Lex::Start => return 2,
            Lex::ObjectFirst | Lex::After | Lex::Value { first: true } => 0,
            // `"":0`
            Lex::ObjectKey => 4,
            // `:0`
            Lex::Colon => 2,
            // `0`
            Lex::Value { first: false } => 1,
            Lex::Str { key, pending } => {
                let pending = match pending {
                    Pending::None => 0,
                    Pending::Escape => 1,
                    Pending::Hex { left, .. } | Pending::Utf8 { left, .. } => usize::from(left),
                };
                // The closing quote, then `:0` after a key.
                pending + 1 + if key { 2 } else { 0 }
            }
            Lex::Number(n) => usize::from(!n.complete()),
            Lex::Literal { word, read } => WORDS[usize::from(word)].len() - usize::from(read),
        };
        own + d
    }

    /// The most one byte can raise [`JsonState::close_cost`] (`,` in an object owes a key,
    /// a colon and a value: `"":0`).
    pub const MAX_COST_PER_BYTE: usize = 4;

    /// The bytes of the shortest completion that [`JsonState::close_cost`] counts (used to
    /// check the vocabulary has a single-byte token for each).
    pub fn closing_alphabet() -> impl Iterator<Item = u8> {
        b"\"}]:0truefalsn"
            .iter()
            .copied()
            .chain(0x80..=0xBF)
            .chain([b'{'])
    }

    fn in_object(&self) -> bool {
        self.depth > 0 && self.stack >> (self.depth - 1) & 1 == 1
    }

    fn open(mut self, object: bool) -> Option<Self> {
        if self.depth >= MAX_DEPTH {
            return None;
        }
        if object {
            self.stack |= 1 << self.depth;
        } else {
            self.stack &= !(1 << self.depth);
        }
        self.depth += 1;
        self.lex = if object {
            Lex::ObjectFirst
        } else {
            Lex::Value { first: true }
        };
        Some(self)
    }

    fn close(mut self, object: bool) -> Option<Self> {
        if self.depth == 0 || self.in_object() != object {
            return None;
        }
        self.depth -= 1;
        self.lex = if self.depth == 0 {
            Lex::Done
        } else {
            Lex::After
        };
        Some(self)
    }
}

/// The number state after `b`, or `None` when `b` does not continue the number.
fn number(n: Num, b: u8) -> Option<Num> {
    let digit = b.is_ascii_digit();
    Some(match (n, b) {
        (Num::Minus, b'0') => Num::Zero,
        (Num::Minus, _) if digit => Num::Int,
        (Num::Int, _) if digit => Num::Int,
        (Num::Zero | Num::Int, b'.') => Num::Dot,
        (Num::Dot | Num::Frac, _) if digit => Num::Frac,
        (Num::Zero | Num::Int | Num::Frac, b'e' | b'E') => Num::E,
        (Num::E, b'+' | b'-') => Num::ESign,
        (Num::E | Num::ESign | Num::Exp, _) if digit => Num::Exp,
        _ => return None,
    })
}

/// Inside a string: `Some(Some(p))` continues with `p` pending, `Some(None)` is the closing
/// quote, `None` refuses `b`.
fn string(pending: Pending, b: u8) -> Option<Option<Pending>> {
    let next = match pending {
        Pending::Utf8 { left, lo, hi } => {
            if !(lo..=hi).contains(&b) {
                return None;
            }
            if left == 1 {
                Pending::None
            } else {
                Pending::Utf8 {
                    left: left - 1,
                    lo: 0x80,
                    hi: 0xBF,
                }
            }
        }
        Pending::Escape => match b {
            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Pending::None,
            b'u' => Pending::Hex {
                left: 4,
                after_d: false,
            },
            _ => return None,
        },
        Pending::Hex { left, after_d } => {
            if !b.is_ascii_hexdigit() || (after_d && !(b'0'..=b'7').contains(&b)) {
                return None;
            }
            match left {
                1 => Pending::None,
                _ => Pending::Hex {
                    left: left - 1,
                    after_d: left == 4 && matches!(b, b'd' | b'D'),
                },
            }
        }
        Pending::None => match b {
            b'"' => return Some(None),
            b'\\' => Pending::Escape,
            0x00..=0x1F => return None,
            0x20..=0x7F => Pending::None,
            0xC2..=0xDF => utf8(1, 0x80, 0xBF),
            0xE0 => utf8(2, 0xA0, 0xBF),
            0xE1..=0xEC | 0xEE..=0xEF => utf8(2, 0x80, 0xBF),
            0xED => utf8(2, 0x80, 0x9F),
            0xF0 => utf8(3, 0x90, 0xBF),
            0xF1..=0xF3 => utf8(3, 0x80, 0xBF),
            0xF4 => utf8(3, 0x80, 0x8F),
            _ => return None,
        },
    };
    Some(Some(next))
}

fn utf8(left: u8, lo: u8, hi: u8) -> Pending {
    Pending::Utf8 { left, lo, hi }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepts(text: &[u8]) -> Option<JsonState> {
        JsonState::new().feed_all(text)
    }

    #[test]
    fn whole_objects_are_accepted_and_done() {
        for text in [
            &br#"{}"#[..],
            br#" {"a": 1}"#,
            br#"{"a":[1,-0.5e+3,true,false,null,"x\"\\\/\b\f\n\r\t\u00e9"],"b":{"c":[]}}"#,
            "{\"é\": \"日本\u{1F600}\"}".as_bytes(),
            b"{\n  \"k\": [ ]\n}",
        ] {
            let s = accepts(text).unwrap_or_else(|| panic!("{}", String::from_utf8_lossy(text)));
            assert!(s.is_done(), "{}", String::from_utf8_lossy(text));
            assert_eq!(s.close_cost(), 0);
            let v: serde_json::Value = serde_json::from_slice(text).unwrap();
            assert!(v.is_object());
        }
    }

    #[test]
    fn what_cannot_continue_an_object_is_refused() {
        for text in [
            &b"[]"[..],
            b"1",
            b"\"a\"",
            b"{a",
            b"{\"a\" 1",
            b"{\"a\":01",
            b"{\"a\":1.}",
            b"{\"a\":-}",
            b"{\"a\":1,}",
            b"{\"a\":[1,]",
            b"{\"a\":tru}",
            b"{\"a\":\"\x01\"}",
            b"{\"a\":\"\\x\"}",
            b"{\"a\":\"\\ud800\"}",
            b"{\"a\":\"\xC0\x80\"}",
            b"{\"a\":\"\xED\xA0\x80\"}",
            b"{\"a\":\"\xF4\x90\x80\x80\"}",
            b"{\"a\":1]",
            b"{} ",
            b"{}{}",
        ] {
            assert!(accepts(text).is_none(), "{}", String::from_utf8_lossy(text));
        }
    }

    #[test]
    fn nesting_and_whitespace_are_bounded() {
        let deep = [b'['; MAX_DEPTH as usize - 1];
        let s = accepts(b"{\"a\":").unwrap().feed_all(&deep).unwrap();
        assert!(s.feed(b'[').is_none());
        let ws = vec![b' '; MAX_WHITESPACE as usize];
        let s = accepts(b"{").unwrap().feed_all(&ws).unwrap();
        assert!(s.feed(b'\n').is_none());
        assert!(s.feed(b'}').is_some());
    }

    #[test]
    fn plain_string_tokens_are_recognised() {
        for ok in [&b"abc"[..], br" \n\u00e9", "日本".as_bytes(), br"\\"] {
            assert!(
                JsonState::keeps_plain_string(ok),
                "{}",
                String::from_utf8_lossy(ok)
            );
        }
        for no in [
            &br#"a\""#[..],
            br"\",
            b"\xe6\x97",
            b"\n",
            br"\u12",
            br#"":0,""#,
        ] {
            assert!(
                !JsonState::keeps_plain_string(no),
                "{}",
                String::from_utf8_lossy(no)
            );
        }
        let s = accepts(br#"{"a": ["x"#).unwrap();
        assert!(s.in_plain_string());
        assert_eq!(s.feed_all(br"yz \t"), Some(s));
        assert!(!s.feed(b'\\').unwrap().in_plain_string());
    }

    /// No byte raises the close cost by more than `MAX_COST_PER_BYTE`, from any state met
    /// along these texts.
    #[test]
    fn one_byte_raises_the_cost_by_at_most_the_bound() {
        let texts: &[&[u8]] = &[
            br#"{"ab": [1, {"c": "x\u12"}, -2.5e-3, tru, fals, [], {"k": null}], "e": "\"#,
            "{\"k\": \"日\u{1F600}\"}".as_bytes(),
        ];
        for text in texts {
            for end in 0..=text.len() {
                let Some(s) = accepts(&text[..end]) else {
                    continue;
                };
                for b in 0..=255u8 {
                    if let Some(n) = s.feed(b) {
                        assert!(
                            n.close_cost() <= s.close_cost() + JsonState::MAX_COST_PER_BYTE,
                            "{:?} + {b:#x}",
                            String::from_utf8_lossy(&text[..end])
                        );
                    }
                }
            }
        }
    }

    /// Following the shortest route byte by byte lowers the cost by one each time and ends
    /// in a whole object, from every prefix of these texts.
    #[test]
    fn the_close_cost_is_exact_along_its_route() {
        let texts: &[&[u8]] = &[
            br#"{"ab": [1, {"c": "x\u12"}, -2.5e-3, tru"#,
            "{\"k\": \"日\u{1F600}\", \"n\": nul".as_bytes(),
            br#"{"a":[[],{}],"b":"\""#,
        ];
        for text in texts {
            for end in 0..=text.len() {
                let Some(mut s) = accepts(&text[..end]) else {
                    continue;
                };
                let mut out = text[..end].to_vec();
                while !s.is_done() {
                    let cost = s.close_cost();
                    let next = JsonState::closing_alphabet().find_map(|b| {
                        s.feed(b)
                            .filter(|n| n.close_cost() + 1 == cost)
                            .map(|n| (b, n))
                    });
                    let (b, n) = next.unwrap_or_else(|| {
                        panic!("no route from {:?}", String::from_utf8_lossy(&out))
                    });
                    out.push(b);
                    s = n;
                }
                let v: serde_json::Value = serde_json::from_slice(&out)
                    .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out)));
                assert!(v.is_object());
            }
        }
    }
}
