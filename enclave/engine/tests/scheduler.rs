//! The continuous-batching engine on a tiny random model with a tiny tokenizer.

mod common;

use std::time::{Duration, Instant};

use candle_core::quantized::GgmlDType;
use candle_core::Device;
use silk_engine::scheduler::{
    Engine, EngineConfig, Event, FinishReason, GenerateRequest, Generation, Prompt, SubmitError,
};
use silk_engine::template::ChatMessage;
use silk_engine::{open, SamplingParams};

fn engine(config: EngineConfig) -> Engine {
    let path = common::tiny_gguf("sched", 21, GgmlDType::Q8_0, &common::tiny_tokenizer_md());
    let bundle = open(&path, &Device::Cpu).expect("open tiny model");
    Engine::start(bundle, config)
}

fn request(text: &str, max_tokens: usize, seed: Option<u64>) -> GenerateRequest {
    GenerateRequest {
        prompt: Prompt::Chat(vec![ChatMessage {
            role: "user".into(),
            content: text.into(),
        }]),
        params: match seed {
            None => SamplingParams::greedy(),
            Some(s) => SamplingParams {
                seed: Some(s),
                temperature: 0.9,
                ..SamplingParams::default()
            },
        },
        max_tokens: Some(max_tokens),
        stop: vec![],
    }
}

/// Collects a generation: its text and how it ended.
fn collect(g: Generation) -> (String, FinishReason, usize) {
    let mut text = String::new();
    for ev in g {
        match ev {
            Event::Delta(d) => text.push_str(&d),
            Event::Done { reason, usage } => return (text, reason, usage.completion_tokens),
            Event::Failed(e) => panic!("generation failed: {e}"),
        }
    }
    panic!("stream ended without Done")
}

fn wait_idle(e: &Engine) {
    let t0 = Instant::now();
    while e.stats().running > 0 || e.stats().waiting > 0 || e.stats().reserved_kv_bytes > 0 {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "engine never idled: {:?}",
            e.stats()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn max_tokens_and_usage() {
    let e = engine(EngineConfig::default());
    let (_, reason, n) = collect(e.submit(request("hello there", 12, None)).unwrap());
    assert!(n <= 12);
    assert!(reason == FinishReason::Length || reason == FinishReason::Stop);
    if reason == FinishReason::Length {
        assert_eq!(n, 12);
    }
}

#[test]
fn same_seed_same_output() {
    let e = engine(EngineConfig::default());
    let a = collect(e.submit(request("the cat", 16, Some(7))).unwrap());
    let b = collect(e.submit(request("the cat", 16, Some(7))).unwrap());
    assert_eq!(a, b);
}

#[test]
fn batching_does_not_change_answers() {
    let e = engine(EngineConfig::default());
    let prompts = [
        "one",
        "two words",
        "three little words",
        "a b c d e f",
        "x",
        "in the end",
    ];
    let alone: Vec<_> = prompts
        .iter()
        .map(|p| collect(e.submit(request(p, 10, None)).unwrap()))
        .collect();
    // All at once: they share decode steps (and some prefill while others decode).
    let gens: Vec<Generation> = prompts
        .iter()
        .map(|p| e.submit(request(p, 10, None)).unwrap())
        .collect();
    let together: Vec<_> = gens.into_iter().map(collect).collect();
    assert_eq!(alone, together);
    wait_idle(&e);
}

#[test]
fn dropping_the_stream_cancels_and_frees_the_cache() {
    let e = engine(EngineConfig::default());
    let mut g = e.submit(request("keep going", 400, None)).unwrap();
    // Wait until it is running, then walk away.
    let first = g.next();
    assert!(first.is_some());
    drop(g);
    wait_idle(&e);
    assert_eq!(e.stats().reserved_kv_bytes, 0);
    // The engine still serves.
    let (_, reason, _) = collect(e.submit(request("again", 4, None)).unwrap());
    assert!(matches!(reason, FinishReason::Length | FinishReason::Stop));
}

#[test]
fn full_queue_says_busy_and_loses_nothing() {
    let e = engine(EngineConfig {
        max_batch: 1,
        queue_capacity: 2,
        ..EngineConfig::default()
    });
    let mut accepted = Vec::new();
    let mut busy = 0;
    for i in 0..12 {
        match e.submit(request(&format!("prompt {i}"), 20, None)) {
            Ok(g) => accepted.push(g),
            Err(SubmitError::Busy { .. }) => busy += 1,
            Err(other) => panic!("unexpected error {other}"),
        }
    }
    assert!(
        busy > 0,
        "a queue of 2 behind a batch of 1 must refuse some of 12"
    );
    for g in accepted {
        let (_, reason, _) = collect(g);
        assert!(matches!(reason, FinishReason::Length | FinishReason::Stop));
    }
}

#[test]
fn kv_budget_queues_instead_of_overcommitting() {
    // Budget for about one sequence: the others wait their turn (FIFO) and all finish.
    let per_token = 2 * 2 * 2 * 16 * 4; // layers * (k, v) * kv_heads * head_dim * f32
    let e = engine(EngineConfig {
        kv_budget_bytes: per_token * 60,
        ..EngineConfig::default()
    });
    let gens: Vec<_> = (0..4)
        .map(|i| e.submit(request(&format!("q{i}"), 30, None)).unwrap())
        .collect();
    for g in gens {
        collect(g);
    }
    // A request that can never fit is refused up front.
    let err = e
        .submit(request("too long", 500, None))
        .err()
        .expect("must not fit");
    assert!(matches!(err, SubmitError::TooLarge(_)), "{err}");
}

#[test]
fn bad_requests_are_refused_with_a_reason() {
    let e = engine(EngineConfig::default());
    let mut r = request("hi", 5, None);
    r.params.top_p = 2.0;
    let err = e.submit(r).err().expect("bad top_p");
    assert!(err.to_string().contains("top_p"), "{err}");
    let long = "word ".repeat(common::TINY.ctx);
    let err = e.submit(request(&long, 5, None)).err().expect("too long");
    assert!(matches!(err, SubmitError::TooLarge(_)), "{err}");
}
