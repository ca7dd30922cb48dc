//! The default model answers simple questions sensibly through the whole engine: GGUF
//! tokenizer, the model's chat template, continuous batching and greedy sampling.
//!
//! A smoke test, not a quality claim: each answer only has to mention one obvious word.
//! Without the model (models/ or `$SILK_DEFAULT_MODEL`) it prints a note and passes.
//!
//! The conversations carry a short system message of their own. Without one, SmolLM2's
//! template adds its default ("You are a helpful AI assistant named SmolLM, trained by
//! Hugging Face"), and with that the 135M Q4_1 model answers the France question with
//! "L'Étoile, la Marseillaise, ..." under greedy decoding, in llama.cpp exactly as in
//! silk: a limit of the model, not of the engine.

mod common;

use candle_core::Device;
use silk_engine::scheduler::{Engine, EngineConfig, Event, GenerateRequest, Prompt};
use silk_engine::template::ChatMessage;
use silk_engine::{open, SamplingParams};

fn ask(question: &str) -> GenerateRequest {
    GenerateRequest {
        prompt: Prompt::Chat(vec![
            ChatMessage {
                role: "system".into(),
                content: "Answer the question.".into(),
            },
            ChatMessage {
                role: "user".into(),
                content: question.into(),
            },
        ]),
        params: SamplingParams::greedy(),
        max_tokens: Some(48),
        stop: vec![],
        logprobs: None,
        format: Default::default(),
    }
}

#[test]
fn smollm2_answers_simple_questions() {
    let Some(path) = common::default_model("smollm2_answers_simple_questions") else {
        return;
    };
    let bundle = open(&path, &Device::Cpu).expect("open SmolLM2");
    let engine = Engine::start(bundle, EngineConfig::default());
    let cases = [
        ("What is the capital of France?", "paris"),
        ("What is 2+2?", "4"),
        ("What color is the sky on a clear day?", "blue"),
    ];
    // Submitted together, so they also share decode steps.
    let generations: Vec<_> = cases
        .iter()
        .map(|(q, _)| engine.submit(ask(q)).expect("submit"))
        .collect();
    for ((question, must), g) in cases.iter().zip(generations) {
        let mut answer = String::new();
        let mut done = false;
        for ev in g {
            match ev {
                Event::Delta { text: d, .. } => answer.push_str(&d),
                Event::Done { .. } => done = true,
                Event::Failed(e) => panic!("{question}: generation failed: {e}"),
            }
        }
        assert!(done, "{question}: stream ended without Done");
        eprintln!("{question} -> {answer:?}");
        assert!(
            answer.to_lowercase().contains(must),
            "{question}: answer {answer:?} does not mention {must:?}"
        );
    }
}
