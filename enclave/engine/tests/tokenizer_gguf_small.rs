//! The GGUF tokenizer on tiny hand-built vocabularies whose expected ids follow by hand from
//! llama.cpp's algorithms (BPE: lowest merge rank first; SPM: highest score first, leftmost
//! on ties).

use std::collections::HashMap;

use candle_core::quantized::gguf_file::Value;
use silk_engine::tokenizer::{Tokenizer, TokenizerError};

type Meta = HashMap<String, Value>;

fn strings(items: &[&str]) -> Value {
    Value::Array(
        items
            .iter()
            .map(|s| Value::String((*s).to_owned()))
            .collect(),
    )
}

fn set(meta: &mut Meta, key: &str, value: Value) {
    meta.insert(key.to_owned(), value);
}

// ---- byte-level BPE ----

/// Id of the single-byte token for `b`: ids 1..=256 hold the byte alphabet in byte order.
fn byte_id(b: u8) -> u32 {
    1 + b as u32
}

const HELLO: u32 = 260;
const WORLD: u32 = 265;
const IM_START: u32 = 266;
const IM_END: u32 = 267;
const TOOL: u32 = 268;

fn gpt2_meta(pre: Option<&str>) -> Meta {
    let alphabet = gpt2_alphabet();
    let mut tokens: Vec<String> = vec!["<|endoftext|>".into()];
    tokens.extend(alphabet.iter().map(|c| c.to_string()));
    for t in [
        "he",
        "ll",
        "hell",
        "hello",
        "Ġw",
        "or",
        "Ġwor",
        "ld",
        "Ġworld",
        "<|im_start|>",
        "<|im_end|>",
        "<tool>",
    ] {
        tokens.push(t.into());
    }
    let mut types = vec![3i32];
    types.extend(std::iter::repeat_n(1, 256 + 9));
    types.extend([3, 3, 4]);
    let mut meta = Meta::new();
    set(
        &mut meta,
        "tokenizer.ggml.model",
        Value::String("gpt2".into()),
    );
    if let Some(pre) = pre {
        set(&mut meta, "tokenizer.ggml.pre", Value::String(pre.into()));
    }
    let refs: Vec<&str> = tokens.iter().map(String::as_str).collect();
    set(&mut meta, "tokenizer.ggml.tokens", strings(&refs));
    set(
        &mut meta,
        "tokenizer.ggml.token_type",
        Value::Array(types.into_iter().map(Value::I32).collect()),
    );
    set(
        &mut meta,
        "tokenizer.ggml.merges",
        strings(&[
            "h e", "l l", "he ll", "hell o", "Ġ w", "o r", "Ġw or", "l d", "Ġwor ld",
        ]),
    );
    set(
        &mut meta,
        "tokenizer.ggml.bos_token_id",
        Value::U32(IM_START),
    );
    set(&mut meta, "tokenizer.ggml.eos_token_id", Value::U32(IM_END));
    set(
        &mut meta,
        "tokenizer.ggml.add_bos_token",
        Value::Bool(false),
    );
    meta
}

/// GPT-2's byte alphabet, written out independently of the crate's table.
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

#[test]
fn bpe_merges_by_rank() {
    let tok = Tokenizer::from_gguf(&gpt2_meta(Some("gpt-2"))).unwrap();
    assert_eq!(tok.vocab_size(), 269);
    assert_eq!(
        tok.encode("hello world", false, false).unwrap(),
        vec![HELLO, WORLD]
    );
    // "hel" stops at "he" + "l": "he l" is not a merge.
    assert_eq!(
        tok.encode("hel", false, false).unwrap(),
        vec![257, byte_id(b'l')]
    );
    assert_eq!(tok.decode(&[HELLO, WORLD], false), "hello world");
    assert_eq!(tok.token_bytes(261).unwrap(), b" w");
    assert_eq!(tok.token_bytes(byte_id(b'\n')).unwrap(), b"\n");
    assert_eq!(tok.token_bytes(9999), None);
    assert!(tok.warnings().is_empty(), "{:?}", tok.warnings());
}

#[test]
fn bpe_bytes_round_trip_for_unicode() {
    let tok = Tokenizer::from_gguf(&gpt2_meta(Some("gpt-2"))).unwrap();
    let text = "é 日本 🎉\n\t";
    let ids = tok.encode(text, false, false).unwrap();
    assert!(ids.iter().all(|&id| (1..=256).contains(&id)));
    assert_eq!(tok.decode(&ids, false), text);
    // A lone continuation byte decodes lossily.
    assert_eq!(tok.decode(&ids[..1], false), "\u{FFFD}");
}

#[test]
fn bpe_smollm_splits_digits() {
    let tok = Tokenizer::from_gguf(&gpt2_meta(Some("smollm"))).unwrap();
    assert_eq!(
        tok.encode("hello 42", false, false).unwrap(),
        vec![HELLO, byte_id(b' '), byte_id(b'4'), byte_id(b'2')]
    );
}

#[test]
fn bpe_special_tokens() {
    let tok = Tokenizer::from_gguf(&gpt2_meta(Some("gpt-2"))).unwrap();
    assert_eq!(
        tok.encode("<|im_start|>hello<tool>", false, true).unwrap(),
        vec![IM_START, HELLO, TOOL]
    );
    // Without parse_special control tokens are text; user-defined ones still match.
    let plain = tok.encode("<|im_start|>hello<tool>", false, false).unwrap();
    let expected: Vec<u32> = b"<|im_start|>"
        .iter()
        .map(|&b| byte_id(b))
        .chain([HELLO, TOOL])
        .collect();
    assert_eq!(plain, expected);
    assert!(tok.is_special(IM_START));
    assert!(!tok.is_special(TOOL));
    assert!(!tok.is_special(HELLO));
    assert_eq!(
        tok.decode(&[IM_START, HELLO, IM_END], false),
        "<|im_start|>hello<|im_end|>"
    );
    assert_eq!(tok.decode(&[IM_START, HELLO, IM_END], true), "hello");
    assert_eq!(tok.token_to_id("<|im_end|>"), Some(IM_END));
    assert_eq!(tok.id_to_token(WORLD), Some("Ġworld"));
}

#[test]
fn bpe_bos_eos_and_defaults() {
    let tok = Tokenizer::from_gguf(&gpt2_meta(Some("gpt-2"))).unwrap();
    assert_eq!(tok.bos_id(), Some(IM_START));
    // EOS first, then the end-of-generation tokens recognised by text.
    assert_eq!(tok.eos_ids(), &[IM_END, 0]);
    assert!(!tok.add_bos_default());
    assert_eq!(
        tok.encode("hello", true, false).unwrap(),
        vec![IM_START, HELLO]
    );

    let mut meta = gpt2_meta(Some("llama-bpe"));
    meta.remove("tokenizer.ggml.add_bos_token");
    let tok = Tokenizer::from_gguf(&meta).unwrap();
    assert!(
        tok.add_bos_default(),
        "llama3-style BPE adds BOS by default"
    );

    let mut meta = gpt2_meta(Some("gpt-2"));
    meta.remove("tokenizer.ggml.bos_token_id");
    let tok = Tokenizer::from_gguf(&meta).unwrap();
    assert_eq!(tok.bos_id(), None);
    assert!(matches!(
        tok.encode("x", true, false),
        Err(TokenizerError::NoBos)
    ));
}

#[test]
fn bpe_missing_pre_warns_and_uses_default() {
    let tok = Tokenizer::from_gguf(&gpt2_meta(None)).unwrap();
    assert_eq!(tok.warnings().len(), 1);
    assert!(tok.warnings()[0].contains("tokenizer.ggml.pre"));
    assert_eq!(
        tok.encode("hello world", false, false).unwrap(),
        vec![HELLO, WORLD]
    );
}

#[test]
fn bad_metadata_names_the_key() {
    let err = Tokenizer::from_gguf(&gpt2_meta(Some("no-such-pre"))).unwrap_err();
    assert!(
        matches!(&err, TokenizerError::UnsupportedPreTokenizer(p) if p == "no-such-pre"),
        "{err}"
    );

    let mut meta = gpt2_meta(Some("gpt-2"));
    meta.remove("tokenizer.ggml.merges");
    let err = Tokenizer::from_gguf(&meta).unwrap_err();
    assert!(err.to_string().contains("tokenizer.ggml.merges"), "{err}");

    let mut meta = gpt2_meta(Some("gpt-2"));
    meta.remove("tokenizer.ggml.model");
    assert!(matches!(
        Tokenizer::from_gguf(&meta),
        Err(TokenizerError::MissingKey("tokenizer.ggml.model"))
    ));

    let mut meta = gpt2_meta(Some("gpt-2"));
    set(
        &mut meta,
        "tokenizer.ggml.model",
        Value::String("bert".into()),
    );
    assert!(
        matches!(Tokenizer::from_gguf(&meta), Err(TokenizerError::UnsupportedModel(m)) if m == "bert")
    );

    let mut meta = gpt2_meta(Some("gpt-2"));
    set(
        &mut meta,
        "tokenizer.ggml.token_type",
        Value::Array(vec![Value::I32(1)]),
    );
    let err = Tokenizer::from_gguf(&meta).unwrap_err();
    assert!(
        matches!(
            err,
            TokenizerError::LengthMismatch {
                key: "tokenizer.ggml.token_type",
                found: 1,
                expected: 269
            }
        ),
        "{err}"
    );

    let mut meta = gpt2_meta(Some("gpt-2"));
    set(
        &mut meta,
        "tokenizer.ggml.tokens",
        Value::String("oops".into()),
    );
    assert!(matches!(
        Tokenizer::from_gguf(&meta),
        Err(TokenizerError::WrongType {
            key: "tokenizer.ggml.tokens",
            ..
        })
    ));

    let mut meta = gpt2_meta(Some("gpt-2"));
    set(
        &mut meta,
        "tokenizer.ggml.eos_token_id",
        Value::String("2".into()),
    );
    assert!(matches!(
        Tokenizer::from_gguf(&meta),
        Err(TokenizerError::WrongType {
            key: "tokenizer.ggml.eos_token_id",
            ..
        })
    ));
}

// ---- SentencePiece ----

const SPACE: u32 = 259;
const H: u32 = 260;
const E: u32 = 261;
const O: u32 = 263;
const LL: u32 = 268;
const S_HELLO: u32 = 271;
const S_WORLD: u32 = 277;
const A: u32 = 278;
const AA: u32 = 279;

fn spm_byte(b: u8) -> u32 {
    3 + b as u32
}

fn spm_meta() -> Meta {
    let mut tokens: Vec<String> = vec!["<unk>".into(), "<s>".into(), "</s>".into()];
    let mut types = vec![2i32, 3, 3];
    let mut scores = vec![0f32; 3];
    for b in 0..=255u8 {
        tokens.push(format!("<0x{b:02X}>"));
        types.push(6);
        scores.push(0.0);
    }
    let pieces: &[(&str, f32)] = &[
        ("▁", -1.0),      // 259
        ("h", -10.0),     // 260
        ("e", -10.0),     // 261
        ("l", -10.0),     // 262
        ("o", -10.0),     // 263
        ("w", -10.0),     // 264
        ("r", -10.0),     // 265
        ("d", -10.0),     // 266
        ("▁h", -3.0),     // 267
        ("ll", -1.0),     // 268
        ("▁he", -2.0),    // 269
        ("▁hell", -1.5),  // 270
        ("▁hello", -0.5), // 271
        ("▁w", -3.0),     // 272
        ("or", -2.0),     // 273
        ("▁wor", -1.0),   // 274
        ("ld", -2.5),     // 275
        ("orl", -9.0),    // 276: never reachable, "or" + "l" is formed only after "ld" took the l
        ("▁world", -0.1), // 277
        ("a", -10.0),     // 278
        ("aa", -1.0),     // 279
    ];
    for (t, s) in pieces {
        tokens.push((*t).into());
        types.push(1);
        scores.push(*s);
    }
    let mut meta = Meta::new();
    set(
        &mut meta,
        "tokenizer.ggml.model",
        Value::String("llama".into()),
    );
    let refs: Vec<&str> = tokens.iter().map(String::as_str).collect();
    set(&mut meta, "tokenizer.ggml.tokens", strings(&refs));
    set(
        &mut meta,
        "tokenizer.ggml.token_type",
        Value::Array(types.into_iter().map(Value::I32).collect()),
    );
    set(
        &mut meta,
        "tokenizer.ggml.scores",
        Value::Array(scores.into_iter().map(Value::F32).collect()),
    );
    meta
}

#[test]
fn spm_merges_by_score_with_space_prefix() {
    let tok = Tokenizer::from_gguf(&spm_meta()).unwrap();
    assert_eq!(
        tok.encode("hello world", false, false).unwrap(),
        vec![S_HELLO, S_WORLD]
    );
    assert_eq!(tok.decode(&[S_HELLO, S_WORLD], false), " hello world");
    // Equal scores: the leftmost pair merges first.
    assert_eq!(tok.encode("aaa", false, false).unwrap(), vec![SPACE, AA, A]);
    // llama.cpp's SPM defaults: BOS 1, EOS 2, add BOS.
    assert_eq!(tok.bos_id(), Some(1));
    assert_eq!(tok.eos_ids(), &[2]);
    assert!(tok.add_bos_default());
    assert_eq!(tok.encode("hello", true, false).unwrap(), vec![1, S_HELLO]);
}

#[test]
fn spm_byte_fallback() {
    let tok = Tokenizer::from_gguf(&spm_meta()).unwrap();
    let ids = tok.encode("é", false, false).unwrap();
    assert_eq!(ids, vec![SPACE, spm_byte(0xC3), spm_byte(0xA9)]);
    assert_eq!(tok.decode(&ids, false), " é");
    assert_eq!(tok.token_bytes(spm_byte(0xC3)).unwrap(), vec![0xC3]);
    assert_eq!(tok.decode(&ids[..2], false), " \u{FFFD}");
}

#[test]
fn spm_special_tokens_and_prefix_after_them() {
    let tok = Tokenizer::from_gguf(&spm_meta()).unwrap();
    // llama.cpp adds the space prefix to text that follows a special token.
    assert_eq!(
        tok.encode("<s>hello</s>", false, true).unwrap(),
        vec![1, S_HELLO, 2]
    );
    assert!(tok.is_special(1) && tok.is_special(0));
    assert_eq!(tok.decode(&[1, S_HELLO, 2], true), " hello");
}

#[test]
fn spm_without_space_prefix() {
    let mut meta = spm_meta();
    set(
        &mut meta,
        "tokenizer.ggml.add_space_prefix",
        Value::Bool(false),
    );
    let tok = Tokenizer::from_gguf(&meta).unwrap();
    assert_eq!(
        tok.encode("hello", false, false).unwrap(),
        vec![H, E, LL, O]
    );
}

#[test]
fn spm_scores_length_must_match() {
    let mut meta = spm_meta();
    set(
        &mut meta,
        "tokenizer.ggml.scores",
        Value::Array(vec![Value::F32(0.0)]),
    );
    let err = Tokenizer::from_gguf(&meta).unwrap_err();
    assert!(err.to_string().contains("tokenizer.ggml.scores"), "{err}");
}
