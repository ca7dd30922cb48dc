//! The SentencePiece tokenizer against llama.cpp on a generated vocabulary of ~2600 pieces
//! with many tied scores and held-out characters (byte fallback). The vocabulary and
//! llama.cpp's ids come from `scripts/reference/spm_llama_cpp.py`; no model file is needed.

use std::collections::HashMap;

use candle_core::quantized::gguf_file::Value;
use silk_engine::tokenizer::Tokenizer;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/spm_tokens.json"
);

#[derive(serde::Deserialize)]
struct Fixture {
    vocab: Vocab,
    cases: Vec<Case>,
}

#[derive(serde::Deserialize)]
struct Vocab {
    tokens: Vec<String>,
    scores: Vec<f32>,
    types: Vec<i32>,
}

#[derive(serde::Deserialize)]
struct Case {
    text: String,
    parse_special: bool,
    ids: Vec<u32>,
}

#[test]
fn spm_matches_llama_cpp() {
    let fixture: Fixture =
        serde_json::from_str(&std::fs::read_to_string(FIXTURE).unwrap()).unwrap();
    let mut meta = HashMap::new();
    meta.insert(
        "tokenizer.ggml.model".to_owned(),
        Value::String("llama".into()),
    );
    meta.insert(
        "tokenizer.ggml.tokens".to_owned(),
        Value::Array(
            fixture
                .vocab
                .tokens
                .into_iter()
                .map(Value::String)
                .collect(),
        ),
    );
    meta.insert(
        "tokenizer.ggml.scores".to_owned(),
        Value::Array(fixture.vocab.scores.into_iter().map(Value::F32).collect()),
    );
    meta.insert(
        "tokenizer.ggml.token_type".to_owned(),
        Value::Array(fixture.vocab.types.into_iter().map(Value::I32).collect()),
    );
    meta.insert("tokenizer.ggml.bos_token_id".to_owned(), Value::U32(1));
    meta.insert("tokenizer.ggml.eos_token_id".to_owned(), Value::U32(2));
    let tok = Tokenizer::from_gguf(&meta).unwrap();
    assert!(tok.add_bos_default());

    let mut failures = Vec::new();
    for case in &fixture.cases {
        let ids = tok.encode(&case.text, false, case.parse_special).unwrap();
        if ids != case.ids {
            failures.push(format!(
                "{:?} (parse_special={}):\n  ours      {:?}\n  llama.cpp {:?}",
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
