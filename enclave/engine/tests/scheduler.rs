//! The continuous-batching engine on a tiny random model with a tiny tokenizer.

mod common;

use std::time::{Duration, Instant};

use candle_core::quantized::GgmlDType;
use candle_core::Device;
use silk_engine::sampler::logprobs::TokenLogprob;
use silk_engine::scheduler::{
    Engine, EngineConfig, Event, FinishReason, GenerateRequest, Generation, Prompt, ResponseFormat,
    SubmitError,
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
        logprobs: None,
        format: ResponseFormat::Text,
    }
}

/// Collects a generation: its text and how it ended.
fn collect(g: Generation) -> (String, FinishReason, usize) {
    let mut text = String::new();
    for ev in g {
        match ev {
            Event::Delta { text: d, .. } => text.push_str(&d),
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

/// Collects a generation with its logprobs, checking each delta's logprobs arrive with
/// (never before) their text.
fn collect_scored(g: Generation) -> (String, Vec<TokenLogprob>, FinishReason, usize) {
    let (mut text, mut scored) = (String::new(), Vec::new());
    for ev in g {
        match ev {
            Event::Delta { text: d, logprobs } => {
                text.push_str(&d);
                for lp in &logprobs {
                    assert!(
                        lp.text_offset <= text.chars().count(),
                        "logprob before its text"
                    );
                }
                scored.extend(logprobs);
            }
            Event::Done { reason, usage } => {
                return (text, scored, reason, usage.completion_tokens)
            }
            Event::Failed(e) => panic!("generation failed: {e}"),
        }
    }
    panic!("stream ended without Done")
}

#[test]
fn logprobs_are_the_models_and_cover_the_text() {
    let e = engine(EngineConfig::default());
    for (prompt, seed) in [
        ("hello there", None),
        ("the cat", Some(3)),
        ("a b c", Some(9)),
    ] {
        let mut r = request(prompt, 24, seed);
        r.logprobs = Some(3);
        let (text, scored, reason, n) = collect_scored(e.submit(r.clone()).unwrap());
        // The same request without logprobs gives the same answer.
        r.logprobs = None;
        assert_eq!(collect(e.submit(r).unwrap()).0, text);
        // One entry per token, but not the end-of-sequence token.
        let expected = if reason == FinishReason::Stop {
            n - 1
        } else {
            n
        };
        assert_eq!(scored.len(), expected, "{prompt}");
        // Control tokens print nothing (their entry still names them).
        let printed = |s: &&TokenLogprob| !e.tokenizer().is_special(s.token.id);
        let bytes: Vec<u8> = scored
            .iter()
            .filter(printed)
            .flat_map(|s| s.token.bytes.clone())
            .collect();
        assert_eq!(String::from_utf8_lossy(&bytes), text, "{prompt}");
        // A token's offset counts the characters before it (where the bytes before it
        // are whole characters; a split character counts once it is whole).
        let mut before = Vec::new();
        for s in &scored {
            if let Ok(prefix) = std::str::from_utf8(&before) {
                assert_eq!(s.text_offset, prefix.chars().count(), "{prompt}");
            }
            assert!(s.text_offset <= text.chars().count());
            if printed(&s) {
                before.extend_from_slice(&s.token.bytes);
            }
            assert_eq!(s.top.len(), 3);
            assert!(s.top.windows(2).all(|w| w[0].logprob >= w[1].logprob));
            assert!(s.token.logprob <= 0.0);
            if seed.is_none() {
                // Greedy takes the model's most likely token: the first alternative.
                assert_eq!(s.top[0].id, s.token.id);
                assert_eq!(s.top[0].logprob, s.token.logprob);
            }
        }
    }
}

#[test]
fn logprobs_stop_with_the_text_at_a_stop_string() {
    let e = engine(EngineConfig::default());
    let mut r = request("hello there", 40, None);
    r.logprobs = Some(0);
    let (full, _, _, _) = collect_scored(e.submit(r.clone()).unwrap());
    let chars: Vec<char> = full.chars().collect();
    assert!(chars.len() > 6, "the tiny model writes enough: {full:?}");
    let stop: String = chars[4..6].iter().collect();
    r.stop = vec![stop.clone()];
    let (cut, scored, reason, _) = collect_scored(e.submit(r).unwrap());
    assert_eq!(reason, FinishReason::Stop);
    assert_eq!(cut, full[..full.find(&stop).unwrap()]);
    let shown: usize = cut.chars().count();
    assert!(scored
        .iter()
        .all(|s| s.text_offset <= shown && s.top.is_empty()));
    let bytes: Vec<u8> = scored
        .iter()
        .filter(|s| !e.tokenizer().is_special(s.token.id))
        .flat_map(|s| s.token.bytes.clone())
        .collect();
    let reported = String::from_utf8_lossy(&bytes);
    assert!(reported.starts_with(&cut), "{reported:?} {cut:?}");
    assert!(
        reported.len() < full.len(),
        "tokens after the cut are not reported"
    );
}

#[test]
fn json_object_answers_parse_as_objects() {
    let e = engine(EngineConfig::default());
    let mut lengths = Vec::new();
    for (i, prompt) in ["give me json", "a person", "the weather", "{", "x"]
        .iter()
        .enumerate()
    {
        for max_tokens in [2, 5, 17, 60] {
            let mut r = request(prompt, max_tokens, Some(i as u64 * 31 + max_tokens as u64));
            r.format = ResponseFormat::JsonObject;
            let (text, reason, n) = collect(e.submit(r).unwrap());
            let v: serde_json::Value = serde_json::from_str(&text)
                .unwrap_or_else(|err| panic!("{err}: {text:?} ({max_tokens} tokens)"));
            assert!(v.is_object(), "{text}");
            // Closed by the model, or on the last token the limit allowed.
            match reason {
                FinishReason::Stop => assert!(n < max_tokens, "{text}"),
                FinishReason::Length => assert_eq!(n, max_tokens, "{text}"),
                FinishReason::Cancelled => panic!("cancelled"),
            }
            lengths.push(n);
        }
    }
    assert!(
        lengths.iter().any(|&n| n > 5),
        "some answers are more than `{{}}`: {lengths:?}"
    );
    // Too small for `{}`: refused, naming the parameter.
    let mut r = request("x", 1, None);
    r.format = ResponseFormat::JsonObject;
    match e.submit(r) {
        Err(SubmitError::Params(p)) => assert_eq!(p.name, "max_tokens"),
        other => panic!("{:?}", other.map(|_| ())),
    }
}

#[test]
fn logit_bias_bans_and_is_checked_against_the_vocabulary() {
    let e = engine(EngineConfig::default());
    let mut r = request("hello there", 1, None);
    r.logprobs = Some(1);
    let (_, scored, _, _) = collect_scored(e.submit(r.clone()).unwrap());
    let first = scored[0].token.id;
    r.params.logit_bias.insert(first, -100.0);
    let (_, banned, _, _) = collect_scored(e.submit(r.clone()).unwrap());
    assert_ne!(banned[0].token.id, first);
    // The logprob reported is still the model's, bias or not.
    assert_eq!(banned[0].top[0].id, first);
    r.params.logit_bias.insert(common::TINY.vocab as u32, 1.0);
    match e.submit(r) {
        Err(SubmitError::Params(p)) => assert_eq!(p.name, "logit_bias"),
        other => panic!("{:?}", other.map(|_| ())),
    }
}
