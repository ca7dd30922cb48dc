//! The engine on an NVIDIA GPU (`--features cuda`): logits against llama.cpp's references
//! and the CPU engine, greedy answers, batches of 8 and 32, cancellation, and running out
//! of GPU memory.
//!
//! Every test opens `cuda:0` first. Where it does not open (a build without the `cuda`
//! feature, no driver, no GPU, or the toolkit's link stub in place of the driver) the test
//! prints `skipped <test>: <reason>` and passes, unless `SILK_REQUIRE_GPU=1`
//! (scripts/gpu-check.sh sets it): then it fails, so a GPU run cannot pass by skipping.
//!
//! On the GPU the quantised products are candle's CUDA kernels, not silk's CPU kernels:
//! they quantise activations (or dequantise weights) their own way and sum in another
//! order, so the tolerances here are wider than the CPU's in reference_llama_cpp.rs. Each
//! test prints the largest difference it saw; the bounds were set before any GPU run and
//! are to be tightened to just above what a GPU shows.

mod common;

use candle_core::quantized::GgmlDType;
use candle_core::{DType, Device, Tensor};
use common::{argmax, step};
use serde_json::Value;
use silk_engine::scheduler::{
    Engine, EngineConfig, Event, FinishReason, GenerateRequest, Generation, Prompt, ResponseFormat,
};
use silk_engine::template::ChatMessage;
use silk_engine::{load, open, DeviceSpec, KvCache, Model, SamplingParams, SeqStep};

/// `cuda:0`, or `None` after printing why this test is skipped.
fn gpu(test: &str) -> Option<Device> {
    match DeviceSpec::Cuda(0).open() {
        Ok(d) => Some(d),
        Err(e) if std::env::var("SILK_REQUIRE_GPU").as_deref() == Ok("1") => {
            panic!("{test}: SILK_REQUIRE_GPU=1 but no GPU opened: {e}")
        }
        Err(e) => {
            eprintln!("skipped {test}: {e}");
            None
        }
    }
}

/// Max |GPU - reference| on a logit, by weight type (the tiny models' logits reach about
/// 16, SmolLM2's about 37).
fn tolerance(ty: &str) -> f32 {
    match ty {
        // Float weights: cuBLAS's summation order only (no TF32: candle leaves it off).
        "f32" => 1e-3,
        // candle's CUDA quantised products round activations differently from llama.cpp
        // (0.3 was seen from candle's CPU path on these models before silk's kernels).
        "q8_0" | "q4_0" | "q4_1" => 0.5,
        // The CPU engine is within 0.8 of llama.cpp on SmolLM2.
        "smollm2" => 1.0,
        other => panic!("no tolerance for {other}"),
    }
}

/// Teacher-forced greedy check against llama.cpp's 24 tokens (as the CPU test does): the
/// GPU's argmax must be llama.cpp's token at each step, except at near ties.
fn check_greedy(m: &Model, cache: &mut KvCache, mut last: Vec<f32>, case: &Value, tol: f32) {
    let want = common::u32s(&case["greedy"]);
    let margins = common::f32s(&case["greedy_margin"]);
    for (i, (&tok, &margin)) in want.iter().zip(&margins).enumerate() {
        let got = argmax(&last);
        if got != tok {
            let gap = last[got as usize] - last[tok as usize];
            assert!(
                margin <= tol && gap <= 2.0 * tol,
                "greedy step {i}: GPU picks {got}, llama.cpp {tok} (margin {margin}, gap {gap})"
            );
        }
        last = step(m, cache, &[tok]);
    }
}

#[test]
fn tiny_models_on_cuda_match_llama_cpp_and_the_cpu() {
    let Some(dev) = gpu("tiny_models_on_cuda_match_llama_cpp_and_the_cpu") else {
        return;
    };
    let fx = common::json_fixture("llama_cpp_logits_tiny.json");
    for model in fx["models"].as_array().expect("models") {
        let ty = model["type"].as_str().expect("type");
        let file = model["file"].as_str().expect("file");
        let tol = tolerance(ty);
        let g = load(&common::fixture(file), &dev)
            .expect("load on GPU")
            .model;
        let c = load(&common::fixture(file), &Device::Cpu)
            .expect("load on CPU")
            .model;
        let (mut vs_llama, mut vs_cpu) = (0f32, 0f32);
        for (ci, case) in model["cases"].as_array().expect("cases").iter().enumerate() {
            let prompt = common::u32s(&case["prompt"]);
            let mut gc = g.new_cache();
            let got = step(&g, &mut gc, &prompt);
            let cpu = step(&c, &mut c.new_cache(), &prompt);
            let d = common::max_abs_diff(&got, &common::f32s(&case["logits"]));
            let e = common::max_abs_diff(&got, &cpu);
            (vs_llama, vs_cpu) = (vs_llama.max(d), vs_cpu.max(e));
            assert!(
                d <= tol,
                "{file} case {ci}: |GPU - llama.cpp| = {d} > {tol}"
            );
            assert!(e <= tol, "{file} case {ci}: |GPU - CPU| = {e} > {tol}");
            check_greedy(&g, &mut gc, got, case, tol);
        }
        eprintln!("{file} on cuda:0: max |GPU - llama.cpp| = {vs_llama:e}, |GPU - CPU| = {vs_cpu:e} (tolerance {tol:e})");
    }
}

#[test]
fn smollm2_on_cuda_matches_llama_cpp() {
    let Some(dev) = gpu("smollm2_on_cuda_matches_llama_cpp") else {
        return;
    };
    let Some(path) = common::default_model("smollm2_on_cuda_matches_llama_cpp") else {
        return;
    };
    let fx = common::json_fixture("llama_cpp_logits_smollm2.json");
    let m = load(&path, &dev).expect("load SmolLM2 on GPU").model;
    let tol = tolerance("smollm2");
    let mut worst = 0f32;
    for (ci, case) in fx["cases"].as_array().expect("cases").iter().enumerate() {
        let prompt = common::u32s(&case["prompt"]);
        let mut cache = m.new_cache();
        let got = step(&m, &mut cache, &prompt);
        for key in ["top64", "probe"] {
            for p in case[key].as_array().expect("pairs") {
                let id = p[0].as_u64().expect("id") as usize;
                let want = p[1].as_f64().expect("logit") as f32;
                let d = (got[id] - want).abs();
                worst = worst.max(d);
                assert!(
                    d <= tol,
                    "case {ci}: token {id}: GPU {} vs llama.cpp {want}",
                    got[id]
                );
            }
        }
        check_greedy(&m, &mut cache, got, case, tol);
    }
    eprintln!("SmolLM2 on cuda:0: max |GPU - llama.cpp| = {worst:e} (tolerance {tol:e})");
}

/// `n` different prompts, prefilled one by one; then one decode step of all `n` together
/// must give each sequence the logits it gets decoding alone.
fn batch_equals_alone(m: &Model, n: usize, tol: f32) -> f32 {
    let vocab = m.config().vocab_size as u32;
    let prompts: Vec<Vec<u32>> = (0..n)
        .map(|i| {
            (0..3 + i % 5)
                .map(|j| (7 + 13 * i + 5 * j) as u32 % vocab)
                .collect()
        })
        .collect();
    let next = [9u32];
    let mut alone = Vec::new();
    let mut caches = Vec::new();
    for p in &prompts {
        let (mut solo, mut c) = (m.new_cache(), m.new_cache());
        step(m, &mut solo, p);
        alone.push(step(m, &mut solo, &next));
        step(m, &mut c, p);
        caches.push(c);
    }
    let mut steps: Vec<SeqStep> = caches
        .iter_mut()
        .map(|cache| SeqStep {
            tokens: &next,
            cache,
        })
        .collect();
    let together = m
        .forward(&mut steps)
        .expect("batched step")
        .to_vec2::<f32>()
        .expect("2d");
    let mut worst = 0f32;
    for (i, (t, a)) in together.iter().zip(&alone).enumerate() {
        let d = common::max_abs_diff(t, a);
        worst = worst.max(d);
        assert!(
            d <= tol,
            "sequence {i} of {n}: batched differs from alone by {d} > {tol}"
        );
    }
    worst
}

#[test]
fn batches_of_8_and_32_equal_single_sequences() {
    let Some(dev) = gpu("batches_of_8_and_32_equal_single_sequences") else {
        return;
    };
    for dtype in [GgmlDType::F32, GgmlDType::Q4_1] {
        let path = common::tiny_gguf("gpu-batch", 31, dtype, &[]);
        let m = load(&path, &dev).expect("load").model;
        let tol = tolerance(if dtype == GgmlDType::F32 {
            "f32"
        } else {
            "q4_1"
        });
        for n in [8, 32] {
            let d = batch_equals_alone(&m, n, tol);
            eprintln!("{dtype:?}, {n} sequences on cuda:0: max |batched - alone| = {d:e}");
        }
    }
}

fn request(text: &str, max_tokens: usize) -> GenerateRequest {
    GenerateRequest {
        prompt: Prompt::Chat(vec![ChatMessage {
            role: "user".into(),
            content: text.into(),
        }]),
        params: SamplingParams::greedy(),
        max_tokens: Some(max_tokens),
        stop: vec![],
        logprobs: None,
        format: ResponseFormat::Text,
    }
}

fn collect(g: Generation) -> (String, FinishReason) {
    let mut text = String::new();
    for ev in g {
        match ev {
            Event::Delta { text: d, .. } => text.push_str(&d),
            Event::Done { reason, .. } => return (text, reason),
            Event::Failed(e) => panic!("generation failed: {e}"),
        }
    }
    panic!("stream ended without Done")
}

fn tiny_engine(dev: &Device) -> Engine {
    let path = common::tiny_gguf(
        "gpu-sched",
        21,
        GgmlDType::F32,
        &common::tiny_tokenizer_md(),
    );
    Engine::start(open(&path, dev).expect("open"), EngineConfig::default())
}

fn wait_idle(e: &Engine) {
    let t0 = std::time::Instant::now();
    while e.stats().running > 0 || e.stats().waiting > 0 || e.stats().reserved_kv_bytes > 0 {
        assert!(
            t0.elapsed().as_secs() < 60,
            "engine never idled: {:?}",
            e.stats()
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

#[test]
fn greedy_answers_equal_on_cpu_and_cuda_alone_and_in_batches_of_32() {
    let Some(dev) = gpu("greedy_answers_equal_on_cpu_and_cuda_alone_and_in_batches_of_32") else {
        return;
    };
    let prompts: Vec<String> = (0..32)
        .map(|i| format!("prompt {i}: the {}", "word ".repeat(i % 7)))
        .collect();
    let cpu = tiny_engine(&Device::Cpu);
    let want: Vec<_> = prompts
        .iter()
        .map(|p| collect(cpu.submit(request(p, 12)).expect("submit")))
        .collect();
    let e = tiny_engine(&dev);
    let alone: Vec<_> = prompts
        .iter()
        .map(|p| collect(e.submit(request(p, 12)).expect("submit")))
        .collect();
    assert_eq!(
        alone, want,
        "greedy answers on cuda:0 differ from the CPU's"
    );
    for n in [8, 32] {
        let gens: Vec<Generation> = prompts[..n]
            .iter()
            .map(|p| e.submit(request(p, 12)).expect("submit"))
            .collect();
        let together: Vec<_> = gens.into_iter().map(collect).collect();
        assert_eq!(
            together,
            want[..n],
            "{n} at once on cuda:0 differ from one at a time"
        );
    }
    wait_idle(&e);
    if let Some(path) = common::default_model("greedy_answers_equal_on_cpu_and_cuda") {
        let ask = |dev: &Device| {
            let e = Engine::start(
                open(&path, dev).expect("open SmolLM2"),
                EngineConfig::default(),
            );
            collect(
                e.submit(request("What is the capital of France?", 24))
                    .expect("submit"),
            )
        };
        let (g, c) = (ask(&dev), ask(&Device::Cpu));
        eprintln!("SmolLM2 greedy on cuda:0: {:?}", g.0);
        assert_eq!(
            g, c,
            "SmolLM2's greedy answer on cuda:0 differs from the CPU's"
        );
    }
}

#[test]
fn dropping_the_stream_cancels_and_frees_the_gpu_cache() {
    let Some(dev) = gpu("dropping_the_stream_cancels_and_frees_the_gpu_cache") else {
        return;
    };
    let e = tiny_engine(&dev);
    let mut g = e.submit(request("keep going", 400)).expect("submit");
    assert!(g.next().is_some());
    drop(g);
    wait_idle(&e);
    assert_eq!(e.stats().reserved_kv_bytes, 0);
    let (_, reason) = collect(e.submit(request("again", 4)).expect("submit"));
    assert!(matches!(reason, FinishReason::Length | FinishReason::Stop));
}

/// Takes GPU memory in blocks of 1 GiB, then 64 MiB, then 1 MiB until none is left.
fn fill(dev: &Device) -> Vec<Tensor> {
    let mut held = Vec::new();
    for block in [1usize << 30, 64 << 20, 1 << 20] {
        while held.len() < 4096 {
            match Tensor::zeros(block / 4, DType::F32, dev) {
                Ok(t) => held.push(t),
                Err(_) => break,
            }
        }
    }
    held
}

#[test]
fn a_model_larger_than_the_free_gpu_memory_is_a_clear_error() {
    let Some(dev) = gpu("a_model_larger_than_the_free_gpu_memory_is_a_clear_error") else {
        return;
    };
    let path = common::default_model("a_model_larger_than_the_free_gpu_memory")
        .unwrap_or_else(|| common::tiny_gguf("gpu-oom", 5, GgmlDType::F32, &[]));
    let held = fill(&dev);
    let err = load(&path, &dev).err().map(|e| e.to_string());
    drop(held);
    let err = err.expect("a model must not load into a full GPU");
    eprintln!("full GPU: {err}");
    assert!(err.to_lowercase().contains("out of memory"), "{err}");
    // The GPU is usable again once the memory is back.
    load(&path, &dev).expect("load after freeing");
}
