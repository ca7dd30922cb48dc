//! The tokenizer rebuilt from SmolLM2-135M-Instruct's GGUF against llama.cpp's own answers.
//!
//! `tests/fixtures/smollm2_tokens.json` holds llama.cpp's token ids for a varied text set;
//! `scripts/reference/tokenize_llama_cpp.py` regenerates it. The model is looked for in the
//! repository's `models/` folder, then at `$SILK_DEFAULT_MODEL`; without it these tests print
//! a note and pass.

mod common;

use std::fs::File;

use candle_core::quantized::gguf_file::Content;
use silk_engine::tokenizer::Tokenizer;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/smollm2_tokens.json"
);

fn load() -> Option<Tokenizer> {
    let path = common::default_model("smollm2 tokenizer")?;
    let mut file = File::open(&path).expect("open model");
    let content = Content::read(&mut file).expect("read GGUF header");
    Some(Tokenizer::from_gguf(&content.metadata).expect("tokenizer from GGUF"))
}

#[test]
fn smollm2_metadata() {
    let Some(tok) = load() else { return };
    assert_eq!(tok.vocab_size(), 49152);
    assert_eq!(tok.bos_id(), Some(1));
    assert_eq!(tok.eos_ids()[0], 2, "EOS comes first");
    assert!(
        tok.eos_ids().contains(&0),
        "<|endoftext|> ends generation too"
    );
    assert!(!tok.add_bos_default());
    assert!(tok.warnings().is_empty(), "{:?}", tok.warnings());
    assert_eq!(tok.token_to_id("<|im_start|>"), Some(1));
    assert_eq!(tok.id_to_token(2), Some("<|im_end|>"));
    assert!(tok.is_special(1) && tok.is_special(2));
    assert!(!tok.is_special(tok.token_to_id("Ġthe").unwrap()));
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
    decoded: String,
}

#[test]
fn smollm2_matches_llama_cpp() {
    let Some(tok) = load() else { return };
    let fixture: Fixture =
        serde_json::from_str(&std::fs::read_to_string(FIXTURE).expect("read fixture"))
            .expect("parse fixture");
    assert!(fixture.cases.len() >= 40);
    let mut failures = Vec::new();
    for case in &fixture.cases {
        let ids = tok
            .encode(&case.text, false, case.parse_special)
            .expect("encode");
        if ids != case.ids {
            failures.push(format!(
                "{:?} (parse_special={}):\n  ours      {:?}\n  llama.cpp {:?}",
                case.text, case.parse_special, ids, case.ids
            ));
        }
        let decoded = tok.decode(&case.ids, false);
        if decoded != case.decoded {
            failures.push(format!(
                "decode {:?}: ours {:?}, llama.cpp {:?}",
                case.ids, decoded, case.decoded
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

#[test]
fn smollm2_round_trips_plain_text() {
    let Some(tok) = load() else { return };
    for text in [
        "Hello, world!",
        "  spaced\n\n\tout  ",
        "naïve 日本語 🎉 1234",
        "<|im_start|> as text",
    ] {
        let ids = tok.encode(text, false, false).unwrap();
        assert_eq!(tok.decode(&ids, false), text);
        assert!(
            ids.iter().all(|&id| !tok.is_special(id)),
            "{text:?} -> {ids:?}"
        );
    }
}

#[test]
fn smollm2_chat_prompt_with_specials() {
    let Some(tok) = load() else { return };
    let ids = tok
        .encode("<|im_start|>user\nHi<|im_end|>\n", false, true)
        .unwrap();
    assert_eq!(ids.first(), Some(&1));
    assert!(ids.contains(&2));
    assert_eq!(tok.decode(&ids, true), "user\nHi\n");
}

/// The JSON mask over SmolLM2's 49 152 tokens equals a token-by-token check from several
/// points of an object, and costs little next to a decode step (times printed).
#[test]
fn json_mask_over_the_smollm2_vocabulary() {
    use silk_engine::sampler::json::{JsonConstraint, JsonState, JsonVocab};
    let Some(tok) = load() else { return };
    let t = std::time::Instant::now();
    let vocab = JsonVocab::new(&tok).expect("SmolLM2 has every byte as a token");
    eprintln!("JsonVocab::new: {:?}", t.elapsed());
    let mut allowed = Vec::new();
    for (prefix, left) in [
        (&b""[..], 100),
        (b"{", 100),
        (b"{\n  \"name\": \"Fro", 100),
        (b"{\"a\": [1, 2.5e", 100),
        (b"{\"a\": [tr", 4),
        (b"{\"a\": {\"b\": \"\xe6\x97", 6),
    ] {
        let mut c = JsonConstraint::new();
        c.advance(prefix).unwrap();
        let t = std::time::Instant::now();
        c.allowed(&vocab, left, &mut allowed);
        let took = t.elapsed();
        let start = JsonState::new().feed_all(prefix).unwrap();
        let mut expected: Vec<u32> = (0..tok.vocab_size() as u32)
            .filter(|&id| !tok.is_special(id))
            .filter(|&id| {
                let bytes = tok.token_bytes(id).unwrap();
                !bytes.is_empty()
                    && start
                        .feed_all(&bytes)
                        .is_some_and(|s| s.close_cost() < left)
            })
            .collect();
        allowed.sort_unstable();
        expected.sort_unstable();
        assert_eq!(allowed, expected, "{}", String::from_utf8_lossy(prefix));
        assert!(!allowed.is_empty());
        eprintln!(
            "mask after {:?} ({left} left): {} tokens allowed in {took:?}",
            String::from_utf8_lossy(prefix),
            allowed.len()
        );
    }
}
