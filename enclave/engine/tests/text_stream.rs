//! Streaming detokenisation over a tiny byte-level vocabulary where each byte is its own
//! token, plus a few multi-character tokens, so splits can be placed anywhere.

use std::collections::HashMap;

use candle_core::quantized::gguf_file::Value;
use silk_engine::text::{StreamStep, TextStream};
use silk_engine::tokenizer::Tokenizer;

const WORDS: &[&str] = &[
    "ab", "ST", "O", "P", "TO", "OR", "yS", "abSTOPcd", "STOP", "Hello", "Ġworld",
];
const CONTROL: &str = "<|im_end|>";

fn gpt2_alphabet() -> Vec<char> {
    let mut shifted = 0;
    (0u32..256)
        .map(|b| {
            if (0x21..=0x7E).contains(&b)
                || (0xA1..=0xAC).contains(&b)
                || (0xAE..=0xFF).contains(&b)
            {
                char::from_u32(b).unwrap()
            } else {
                shifted += 1;
                char::from_u32(255 + shifted).unwrap()
            }
        })
        .collect()
}

fn tokenizer() -> Tokenizer {
    let mut tokens: Vec<String> = gpt2_alphabet().iter().map(|c| c.to_string()).collect();
    tokens.extend(WORDS.iter().map(|w| (*w).to_owned()));
    tokens.push(CONTROL.to_owned());
    let mut types = vec![Value::I32(1); tokens.len()];
    *types.last_mut().unwrap() = Value::I32(3);
    let mut meta = HashMap::new();
    meta.insert(
        "tokenizer.ggml.model".to_owned(),
        Value::String("gpt2".into()),
    );
    meta.insert(
        "tokenizer.ggml.pre".to_owned(),
        Value::String("gpt-2".into()),
    );
    meta.insert(
        "tokenizer.ggml.tokens".to_owned(),
        Value::Array(tokens.into_iter().map(Value::String).collect()),
    );
    meta.insert("tokenizer.ggml.token_type".to_owned(), Value::Array(types));
    meta.insert("tokenizer.ggml.merges".to_owned(), Value::Array(vec![]));
    Tokenizer::from_gguf(&meta).unwrap()
}

fn word(tok: &Tokenizer, w: &str) -> u32 {
    tok.token_to_id(w).unwrap()
}

/// One token per byte of `s`.
fn bytes(tok: &Tokenizer, s: &str) -> Vec<u32> {
    tok.encode(s, false, false).unwrap()
}

fn text(step: StreamStep) -> String {
    match step {
        StreamStep::Text(t) => t,
        other => panic!("expected text, got {other:?}"),
    }
}

fn stops(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn char_split_across_tokens_is_held_until_complete() {
    let tok = tokenizer();
    let ids = bytes(&tok, "é");
    assert_eq!(ids.len(), 2);
    let mut s = TextStream::new(vec![]);
    assert_eq!(text(s.push(&tok, ids[0])), "");
    assert_eq!(text(s.push(&tok, ids[1])), "é");
    assert_eq!(s.finish(), "");
}

#[test]
fn emoji_over_four_tokens() {
    let tok = tokenizer();
    let ids = bytes(&tok, "a🎉b");
    assert_eq!(ids.len(), 6);
    let mut s = TextStream::new(vec![]);
    let deltas: Vec<String> = ids.iter().map(|&id| text(s.push(&tok, id))).collect();
    assert_eq!(deltas, ["a", "", "", "", "🎉", "b"]);
}

#[test]
fn stop_string_split_over_three_tokens() {
    let tok = tokenizer();
    let mut s = TextStream::new(stops(&["STOP"]));
    assert_eq!(text(s.push(&tok, bytes(&tok, "x")[0])), "x");
    assert_eq!(text(s.push(&tok, word(&tok, "yS"))), "y");
    assert_eq!(text(s.push(&tok, word(&tok, "TO"))), "");
    assert_eq!(
        s.push(&tok, word(&tok, "P")),
        StreamStep::Stop {
            text: String::new()
        }
    );
    assert!(s.is_stopped());
    assert_eq!(
        s.push(&tok, word(&tok, "ab")),
        StreamStep::Stop {
            text: String::new()
        }
    );
    assert_eq!(s.finish(), "");
}

#[test]
fn stop_inside_one_token_keeps_text_before_it() {
    let tok = tokenizer();
    let mut s = TextStream::new(stops(&["STOP"]));
    assert_eq!(
        s.push(&tok, word(&tok, "abSTOPcd")),
        StreamStep::Stop { text: "ab".into() }
    );
}

#[test]
fn near_miss_prefix_is_released_later() {
    let tok = tokenizer();
    let mut s = TextStream::new(stops(&["STOP"]));
    assert_eq!(text(s.push(&tok, word(&tok, "ST"))), "");
    assert_eq!(text(s.push(&tok, word(&tok, "OR"))), "STOR");
    assert_eq!(text(s.push(&tok, word(&tok, "ST"))), "");
    assert_eq!(s.finish(), "ST", "a held prefix is flushed at the end");
}

#[test]
fn stop_at_the_very_beginning() {
    let tok = tokenizer();
    let mut s = TextStream::new(stops(&["STOP"]));
    assert_eq!(
        s.push(&tok, word(&tok, "STOP")),
        StreamStep::Stop {
            text: String::new()
        }
    );
}

#[test]
fn several_stop_strings_earliest_wins() {
    let tok = tokenizer();
    let mut s = TextStream::new(stops(&["\n\n", "User:"]));
    let mut out = String::new();
    let mut stopped = None;
    for id in bytes(&tok, "Hi\nUser: more\n\n") {
        match s.push(&tok, id) {
            StreamStep::Text(t) => out.push_str(&t),
            StreamStep::Stop { text } => {
                out.push_str(&text);
                stopped = Some(out.clone());
                break;
            }
        }
    }
    assert_eq!(stopped.as_deref(), Some("Hi\n"));

    // Overlapping stop strings completed by the same token: the one starting first wins.
    let mut s = TextStream::new(stops(&["bcd", "abcd"]));
    let ids = bytes(&tok, "xabcd");
    let steps: Vec<StreamStep> = ids.iter().map(|&id| s.push(&tok, id)).collect();
    assert_eq!(
        steps.last(),
        Some(&StreamStep::Stop {
            text: String::new()
        })
    );
    assert_eq!(text(steps[0].clone()), "x");
}

#[test]
fn stop_string_with_multibyte_chars() {
    let tok = tokenizer();
    let mut s = TextStream::new(stops(&["é!"]));
    let mut out = String::new();
    for id in bytes(&tok, "café au lait") {
        out.push_str(&text(s.push(&tok, id)));
    }
    out.push_str(&s.finish());
    assert_eq!(out, "café au lait");

    let mut s = TextStream::new(stops(&["é!"]));
    let ids = bytes(&tok, "caé!x");
    let steps: Vec<StreamStep> = ids.iter().map(|&id| s.push(&tok, id)).collect();
    assert_eq!(
        steps[..4].iter().cloned().map(text).collect::<String>(),
        "ca"
    );
    assert_eq!(
        steps[4],
        StreamStep::Stop {
            text: String::new()
        }
    );
}

#[test]
fn finish_with_dangling_partial_char() {
    let tok = tokenizer();
    let ids = bytes(&tok, "a€");
    let mut s = TextStream::new(vec![]);
    assert_eq!(text(s.push(&tok, ids[0])), "a");
    assert_eq!(text(s.push(&tok, ids[1])), "");
    assert_eq!(text(s.push(&tok, ids[2])), "");
    assert_eq!(s.finish(), "\u{FFFD}");
    assert_eq!(s.finish(), "", "finish is idempotent");
}

#[test]
fn invalid_bytes_become_replacement_chars_immediately() {
    let tok = tokenizer();
    // A lone continuation byte can never become valid.
    let lone = bytes(&tok, "é")[1];
    let mut s = TextStream::new(vec![]);
    assert_eq!(text(s.push(&tok, lone)), "\u{FFFD}");
    assert_eq!(text(s.push(&tok, word(&tok, "ab"))), "ab");
}

#[test]
fn special_tokens_are_not_printed() {
    let tok = tokenizer();
    let end = word(&tok, CONTROL);
    assert!(tok.is_special(end));
    let mut s = TextStream::new(stops(&["<|im"]));
    assert_eq!(text(s.push(&tok, word(&tok, "Hello"))), "Hello");
    assert_eq!(text(s.push(&tok, end)), "");
    assert_eq!(text(s.push(&tok, word(&tok, "Ġworld"))), " world");
    assert_eq!(text(s.push(&tok, 999_999)), "", "unknown ids are ignored");
}

#[test]
fn deltas_add_up_to_the_decoded_text() {
    let tok = tokenizer();
    for sample in ["plain ascii", "naïve 日本 🎉👍🏽 x", "ST OP STO P", "\n\n\t"] {
        let ids = bytes(&tok, sample);
        let mut s = TextStream::new(stops(&["STOP", "🎉🎉"]));
        let mut out = String::new();
        for &id in &ids {
            out.push_str(&text(s.push(&tok, id)));
        }
        out.push_str(&s.finish());
        assert_eq!(out, tok.decode(&ids, true));
        assert_eq!(out, sample);
    }
}
