//! The recogniser against serde_json on random texts: what it accepts whole parses as an
//! object, and every object serde_json parses (within the recogniser's stated limits) it
//! accepts. The texts are random JSON values in random layouts, and those texts with a
//! byte changed, inserted or removed.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

use super::state::{JsonState, MAX_DEPTH, MAX_WHITESPACE};

fn ws(rng: &mut ChaCha20Rng, out: &mut Vec<u8>) {
    for _ in 0..rng.gen_range(0..3) {
        out.push(b" \t\n\r"[rng.gen_range(0..4)]);
    }
}

fn string(rng: &mut ChaCha20Rng, out: &mut Vec<u8>) {
    out.push(b'"');
    for _ in 0..rng.gen_range(0..6) {
        let piece: &[u8] = match rng.gen_range(0..10) {
            0 => br"\n",
            1 => br#"\""#,
            2 => br"\u00e9",
            3 => br"\ud83d\ude00",
            4 => "é日\u{1F600}".as_bytes(),
            _ => b"ab c",
        };
        out.extend_from_slice(piece);
    }
    out.push(b'"');
}

fn value(rng: &mut ChaCha20Rng, depth: usize, out: &mut Vec<u8>) {
    let kind = if depth > 5 {
        rng.gen_range(2..9)
    } else {
        rng.gen_range(0..9)
    };
    match kind {
        0 => object(rng, depth + 1, out),
        1 => {
            out.push(b'[');
            for i in 0..rng.gen_range(0..4) {
                if i > 0 {
                    out.push(b',');
                }
                ws(rng, out);
                value(rng, depth + 1, out);
                ws(rng, out);
            }
            out.push(b']');
        }
        2 | 3 => string(rng, out),
        4 => out.extend_from_slice(
            [&b"0"[..], b"-12", b"3.25", b"1e5", b"-0.5E-3", b"10"][rng.gen_range(0..6)],
        ),
        5 => out.extend_from_slice(b"true"),
        6 => out.extend_from_slice(b"false"),
        _ => out.extend_from_slice(b"null"),
    }
}

fn object(rng: &mut ChaCha20Rng, depth: usize, out: &mut Vec<u8>) {
    out.push(b'{');
    for i in 0..rng.gen_range(0..4) {
        if i > 0 {
            out.push(b',');
        }
        ws(rng, out);
        string(rng, out);
        ws(rng, out);
        out.push(b':');
        ws(rng, out);
        value(rng, depth, out);
        ws(rng, out);
    }
    out.push(b'}');
}

/// Whether `text` stays within what the recogniser refuses on purpose: surrogate escapes,
/// deeper nesting, longer whitespace runs.
fn within_limits(text: &[u8]) -> bool {
    let lower = String::from_utf8_lossy(text).to_ascii_lowercase();
    if lower.contains("\\ud8")
        || lower.contains("\\ud9")
        || lower.contains("\\uda")
        || lower.contains("\\udb")
        || lower.contains("\\udc")
        || lower.contains("\\udd")
        || lower.contains("\\ude")
        || lower.contains("\\udf")
    {
        return false;
    }
    let (mut depth, mut max_depth, mut run, mut max_run) = (0i32, 0, 0, 0);
    for &b in text {
        match b {
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth -= 1,
            _ => {}
        }
        max_depth = max_depth.max(depth);
        run = if b" \t\n\r".contains(&b) { run + 1 } else { 0 };
        max_run = max_run.max(run);
    }
    // The answer ends when the object closes: nothing, not even whitespace, follows.
    let trailing = text.last().is_some_and(|b| b" \t\n\r".contains(b));
    max_depth <= i32::from(MAX_DEPTH) && max_run <= i32::from(MAX_WHITESPACE) && !trailing
}

#[test]
fn the_recogniser_agrees_with_serde_json() {
    let mut rng = ChaCha20Rng::seed_from_u64(20);
    let (mut whole, mut refused_by_both) = (0, 0);
    for _ in 0..20_000 {
        let mut text = Vec::new();
        object(&mut rng, 1, &mut text);
        match rng.gen_range(0..3) {
            0 => {}
            1 if !text.is_empty() => {
                let at = rng.gen_range(0..text.len());
                let bytes = b"{}[]\",:\\ 0e-.tnx\x01\xff\xe9";
                text[at] = bytes[rng.gen_range(0..bytes.len())];
            }
            _ => {
                let at = rng.gen_range(0..=text.len());
                if rng.gen_bool(0.5) && at < text.len() {
                    text.remove(at);
                } else {
                    let bytes = b"{}[]\",: 0-e";
                    text.insert(at, bytes[rng.gen_range(0..bytes.len())]);
                }
            }
        }
        let ours = JsonState::new().feed_all(&text).filter(JsonState::is_done);
        let theirs = serde_json::from_slice::<serde_json::Value>(&text)
            .ok()
            .filter(serde_json::Value::is_object);
        let shown = String::from_utf8_lossy(&text);
        if ours.is_some() {
            assert!(
                theirs.is_some(),
                "accepted, but serde_json refuses: {shown}"
            );
            whole += 1;
        } else if theirs.is_some() {
            assert!(
                !within_limits(&text),
                "serde_json accepts, but refused: {shown}"
            );
        } else {
            refused_by_both += 1;
        }
    }
    assert!(
        whole > 5_000 && refused_by_both > 1_000,
        "{whole} {refused_by_both}"
    );
}
