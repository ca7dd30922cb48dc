//! Safetensors checkpoints against an independent float64 numpy forward pass.
//!
//! `tests/fixtures/hf_tiny_{llama,qwen2}/` are tiny random Hugging Face checkpoints (Llama:
//! F32, untied head, `rope_theta` at the top level; Qwen2: BF16, q/k/v biases, tied head,
//! `rope_theta` under `rope_parameters`) with the logits a float64 numpy implementation of
//! transformers' forward pass gives at every prompt position
//! (`scripts/reference/safetensors_ref.py` regenerates them). silk computes in f32.

mod common;

use candle_core::Device;
use silk_engine::{load, SeqStep};

/// Max |silk - numpy| on a logit (logits reach about 10); observed maxima are printed.
const TOLERANCE: f32 = 1e-4;

fn check(dir: &str) -> f32 {
    let path = common::fixture(dir);
    let m = load(&path, &Device::Cpu)
        .unwrap_or_else(|e| panic!("load {dir}: {e}"))
        .model;
    let fx = common::json_fixture(&format!("{dir}/expected_logits.json"));
    let mut worst = 0f32;
    for (ci, case) in fx["cases"].as_array().expect("cases").iter().enumerate() {
        let prompt = common::u32s(&case["prompt"]);
        let want: Vec<Vec<f32>> = case["logits"]
            .as_array()
            .expect("rows")
            .iter()
            .map(common::f32s)
            .collect();
        let mut compare = |pos: usize, got: &candle_core::Tensor| {
            let got = got.to_vec2::<f32>().expect("2d").remove(0);
            let d = common::max_abs_diff(&got, &want[pos]);
            worst = worst.max(d);
            assert!(
                d <= TOLERANCE,
                "{dir} case {ci} position {pos}: max |silk - numpy| = {d}"
            );
        };
        // The whole prompt at once.
        let mut cache = m.new_cache();
        let got = m
            .forward(&mut [SeqStep {
                tokens: &prompt,
                cache: &mut cache,
            }])
            .expect("prefill");
        compare(prompt.len() - 1, &got);
        // Half the prompt, then one token at a time through the cache.
        let split = prompt.len().div_ceil(2);
        let mut cache = m.new_cache();
        let got = m
            .forward(&mut [SeqStep {
                tokens: &prompt[..split],
                cache: &mut cache,
            }])
            .expect("prefill half");
        compare(split - 1, &got);
        for pos in split..prompt.len() {
            let got = m
                .forward(&mut [SeqStep {
                    tokens: &prompt[pos..=pos],
                    cache: &mut cache,
                }])
                .expect("decode");
            compare(pos, &got);
        }
    }
    eprintln!("{dir}: max |silk - numpy float64| = {worst:e} (tolerance {TOLERANCE:e})");
    worst
}

#[test]
fn llama_f32_untied_matches_numpy() {
    check("hf_tiny_llama");
}

#[test]
fn qwen2_bf16_biases_tied_matches_numpy() {
    check("hf_tiny_qwen2");
}
