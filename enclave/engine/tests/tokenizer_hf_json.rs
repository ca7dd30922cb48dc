//! `Tokenizer::from_file` (the `tokenizers` crate) cross-checked against the GGUF path:
//! SmolLM2's `tokenizer.json` is reconstructed from its GGUF (vocabulary, merges, digit +
//! byte-level pre-tokenizer, special tokens) and both must agree with llama.cpp's fixture.
//! Also a tiny hand-written `tokenizer.json` that runs without the model.

mod common;

use std::fs::File;
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::{Content, Value};
use serde_json::json;
use silk_engine::tokenizer::{Tokenizer, TokenizerError};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/smollm2_tokens.json"
);

fn write_temp(name: &str, doc: &serde_json::Value) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("silk-engine-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tokenizer.json");
    std::fs::write(&path, serde_json::to_vec(doc).unwrap()).unwrap();
    path
}

fn added(id: usize, content: &str, special: bool) -> serde_json::Value {
    json!({"id": id, "content": content, "single_word": false, "lstrip": false, "rstrip": false,
           "normalized": false, "special": special})
}

fn byte_level_json(
    vocab: serde_json::Map<String, serde_json::Value>,
    merges: Vec<String>,
    added_tokens: Vec<serde_json::Value>,
    digits: bool,
) -> serde_json::Value {
    let byte_level = json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true});
    let pre = if digits {
        json!({"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": true}, byte_level]})
    } else {
        byte_level.clone()
    };
    json!({
        "version": "1.0", "truncation": null, "padding": null,
        "added_tokens": added_tokens,
        "normalizer": null,
        "pre_tokenizer": pre,
        "post_processor": null,
        "decoder": byte_level,
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                  "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
                  "vocab": vocab, "merges": merges}
    })
}

#[test]
fn tiny_tokenizer_json() {
    let mut vocab = serde_json::Map::new();
    for (i, t) in [
        "h",
        "e",
        "l",
        "o",
        "Ġ",
        "w",
        "he",
        "ll",
        "hell",
        "hello",
        "<|im_end|>",
        "<tool>",
    ]
    .iter()
    .enumerate()
    {
        vocab.insert((*t).to_owned(), json!(i));
    }
    let merges = ["h e", "l l", "he ll", "hell o"].map(String::from).to_vec();
    let doc = byte_level_json(
        vocab,
        merges,
        vec![added(10, "<|im_end|>", true), added(11, "<tool>", false)],
        false,
    );
    let tok = Tokenizer::from_file(&write_temp("tiny", &doc)).unwrap();
    assert_eq!(tok.vocab_size(), 12);
    assert_eq!(tok.encode("hello", false, false).unwrap(), vec![9]);
    assert_eq!(
        tok.encode("hello<|im_end|><tool>", false, true).unwrap(),
        vec![9, 10, 11]
    );
    assert!(tok.is_special(10) && !tok.is_special(11));
    assert_eq!(tok.token_bytes(4).unwrap(), b" ");
    assert_eq!(tok.decode(&[9, 4, 10], false), "hello <|im_end|>");
    assert_eq!(tok.decode(&[9, 4, 10], true), "hello ");
    // Defaults until tokenizer_config.json is applied: EOG tokens by name, no BOS.
    assert_eq!(tok.eos_ids(), &[10]);
    assert_eq!(tok.bos_id(), None);
    assert!(matches!(
        tok.encode("x", true, false),
        Err(TokenizerError::NoBos)
    ));
    let tok = tok
        .with_bos(Some(11))
        .with_eos_ids(vec![10, 10, 99])
        .with_add_bos_default(true);
    assert_eq!(
        (tok.bos_id(), tok.eos_ids(), tok.add_bos_default()),
        (Some(11), &[10][..], true)
    );
    assert_eq!(tok.encode("hello", true, false).unwrap(), vec![11, 9]);
}

#[test]
fn missing_file_is_an_error() {
    let err = Tokenizer::from_file(Path::new("/nonexistent/tokenizer.json")).unwrap_err();
    assert!(matches!(err, TokenizerError::File { .. }), "{err}");
    assert!(err.to_string().contains("/nonexistent/tokenizer.json"));
}

#[derive(serde::Deserialize)]
struct Fixture {
    cases: Vec<Case>,
}

#[derive(serde::Deserialize)]
struct Case {
    text: String,
    parse_special: bool,
    ids: Vec<u32>,
}

#[test]
fn smollm2_tokenizer_json_agrees_with_llama_cpp() {
    let Some(path) = common::default_model("tokenizer.json") else {
        return;
    };
    let content = Content::read(&mut File::open(path).unwrap()).unwrap();
    let strings = |key: &str| -> Vec<String> {
        match &content.metadata[key] {
            Value::Array(items) => items
                .iter()
                .map(|v| v.to_string().unwrap().clone())
                .collect(),
            _ => panic!("{key} is not an array"),
        }
    };
    let tokens = strings("tokenizer.ggml.tokens");
    let Value::Array(types) = &content.metadata["tokenizer.ggml.token_type"] else {
        panic!()
    };
    let mut vocab = serde_json::Map::new();
    let mut added_tokens = Vec::new();
    for (id, (text, ty)) in tokens.iter().zip(types).enumerate() {
        vocab.insert(text.clone(), json!(id));
        if ty.to_i32().unwrap() == 3 {
            added_tokens.push(added(id, text, true));
        }
    }
    let doc = byte_level_json(vocab, strings("tokenizer.ggml.merges"), added_tokens, true);
    let tok = Tokenizer::from_file(&write_temp("smollm2", &doc)).unwrap();
    assert_eq!(tok.vocab_size(), 49152);

    let fixture: Fixture =
        serde_json::from_str(&std::fs::read_to_string(FIXTURE).unwrap()).unwrap();
    let mut failures = Vec::new();
    for case in &fixture.cases {
        let ids = tok.encode(&case.text, false, case.parse_special).unwrap();
        if ids != case.ids {
            failures.push(format!(
                "{:?} (parse_special={}): ours {:?}, llama.cpp {:?}",
                case.text, case.parse_special, ids, case.ids
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
