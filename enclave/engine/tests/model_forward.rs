//! The decoder on tiny random models: batching and caching must not change the numbers.

mod common;

use candle_core::quantized::GgmlDType;
use candle_core::{Device, Tensor};
use silk_engine::{load, LoadError, SeqStep};

fn rows(t: &Tensor) -> Vec<Vec<f32>> {
    t.to_vec2::<f32>().expect("2d logits")
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

const PROMPTS: [&[u32]; 3] = [
    &[1, 17, 42, 99, 3],
    &[5, 6],
    &[200, 201, 202, 203, 204, 205, 206, 7],
];

#[test]
fn incremental_decode_equals_full_prefill() {
    for dtype in [
        GgmlDType::F32,
        GgmlDType::Q8_0,
        GgmlDType::Q4_0,
        GgmlDType::Q4_1,
    ] {
        let path = common::tiny_gguf("inc", 7, dtype, &[]);
        let m = load(&path, &Device::Cpu).expect("load").model;
        let prompt = PROMPTS[2];
        let mut full = m.new_cache();
        let want = rows(
            &m.forward(&mut [SeqStep {
                tokens: prompt,
                cache: &mut full,
            }])
            .unwrap(),
        );
        let mut inc = m.new_cache();
        m.forward(&mut [SeqStep {
            tokens: &prompt[..3],
            cache: &mut inc,
        }])
        .unwrap();
        let mut got = Vec::new();
        for t in &prompt[3..] {
            got = rows(
                &m.forward(&mut [SeqStep {
                    tokens: std::slice::from_ref(t),
                    cache: &mut inc,
                }])
                .unwrap(),
            );
        }
        assert_eq!(inc.len(), prompt.len());
        let d = max_diff(&want[0], &got[0]);
        assert!(
            d < 1e-3,
            "{dtype:?}: incremental differs from prefill by {d}"
        );
    }
}

#[test]
fn batched_step_equals_separate_steps() {
    let path = common::tiny_gguf("batch", 11, GgmlDType::Q8_0, &[]);
    let m = load(&path, &Device::Cpu).expect("load").model;
    // Separately: prefill each prompt, then one decode token each.
    let mut alone = Vec::new();
    for p in PROMPTS {
        let mut c = m.new_cache();
        m.forward(&mut [SeqStep {
            tokens: p,
            cache: &mut c,
        }])
        .unwrap();
        let l = rows(
            &m.forward(&mut [SeqStep {
                tokens: &[9],
                cache: &mut c,
            }])
            .unwrap(),
        );
        alone.push(l[0].clone());
    }
    // Together: one step prefills two prompts while the third is already decoding.
    let mut caches: Vec<_> = PROMPTS.iter().map(|_| m.new_cache()).collect();
    {
        let [c0, c1, c2] = caches.as_mut_slice() else {
            unreachable!()
        };
        m.forward(&mut [SeqStep {
            tokens: PROMPTS[2],
            cache: c2,
        }])
        .unwrap();
        m.forward(&mut [
            SeqStep {
                tokens: PROMPTS[0],
                cache: c0,
            },
            SeqStep {
                tokens: PROMPTS[1],
                cache: c1,
            },
            SeqStep {
                tokens: &[9],
                cache: c2,
            },
        ])
        .unwrap();
        let together = rows(
            &m.forward(&mut [
                SeqStep {
                    tokens: &[9],
                    cache: c0,
                },
                SeqStep {
                    tokens: &[9],
                    cache: c1,
                },
            ])
            .unwrap(),
        );
        assert!(max_diff(&together[0], &alone[0]) < 1e-3);
        assert!(max_diff(&together[1], &alone[1]) < 1e-3);
    }
}

#[test]
fn context_overflow_is_an_error_not_a_panic() {
    let path = common::tiny_gguf("ctx", 3, GgmlDType::F32, &[]);
    let m = load(&path, &Device::Cpu).expect("load").model;
    let long = vec![1u32; common::TINY.ctx + 1];
    let mut c = m.new_cache();
    let e = m
        .forward(&mut [SeqStep {
            tokens: &long,
            cache: &mut c,
        }])
        .unwrap_err();
    assert!(e.to_string().contains("context length"), "{e}");
}

#[test]
fn truncated_and_foreign_files_are_clear_errors() {
    let path = common::tiny_gguf("trunc", 5, GgmlDType::Q8_0, &[]);
    let bytes = std::fs::read(&path).unwrap();
    let cut = common::out_dir().join("cut.gguf");
    std::fs::write(&cut, &bytes[..bytes.len() - 1000]).unwrap();
    let e = load(&cut, &Device::Cpu)
        .err()
        .expect("truncated file must fail");
    assert!(
        matches!(e, LoadError::Tensor { .. } | LoadError::Gguf { .. }),
        "{e}"
    );
    let junk = common::out_dir().join("junk.gguf");
    std::fs::write(&junk, b"not a gguf at all").unwrap();
    let e = load(&junk, &Device::Cpu).err().expect("junk must fail");
    assert!(matches!(e, LoadError::Gguf { .. }), "{e}");
    let e = load(&common::out_dir().join("absent.gguf"), &Device::Cpu)
        .err()
        .expect("absent");
    assert!(matches!(e, LoadError::Io { .. }), "{e}");
}
