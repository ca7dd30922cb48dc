//! candle's dequantisation against gguf-py's reference numpy implementation.
//!
//! `tests/fixtures/dequant_ref.json` holds random raw blocks of every GGML type the
//! engine serves and the floats `gguf.quants.dequantize` makes of them
//! (`scripts/reference/dequant_ref.py` regenerates it). candle must give the same floats:
//! bit for bit, or (where the two compute a product in a different order) within f32
//! rounding, i.e. 2 units in the last place.

mod common;

use candle_core::quantized::{ggml_file::qtensor_from_ggml, GgmlDType};
use candle_core::Device;

fn dtype(name: &str) -> GgmlDType {
    match name {
        "F16" => GgmlDType::F16,
        "BF16" => GgmlDType::BF16,
        "Q8_0" => GgmlDType::Q8_0,
        "Q4_0" => GgmlDType::Q4_0,
        "Q4_1" => GgmlDType::Q4_1,
        "Q5_0" => GgmlDType::Q5_0,
        "Q5_1" => GgmlDType::Q5_1,
        "Q2_K" => GgmlDType::Q2K,
        "Q3_K" => GgmlDType::Q3K,
        "Q4_K" => GgmlDType::Q4K,
        "Q5_K" => GgmlDType::Q5K,
        "Q6_K" => GgmlDType::Q6K,
        other => panic!("unknown type {other}"),
    }
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// Distance in units in the last place (0 for equal values, including 0 and -0).
fn ulps(a: f32, b: f32) -> u32 {
    if a == b {
        return 0;
    }
    let key = |x: f32| {
        let i = x.to_bits() as i32;
        if i < 0 {
            i64::from(i32::MIN) - i64::from(i)
        } else {
            i64::from(i)
        }
    };
    u32::try_from((key(a) - key(b)).unsigned_abs()).unwrap_or(u32::MAX)
}

#[test]
fn every_served_type_dequantises_like_gguf_py() {
    let fx = common::json_fixture("dequant_ref.json");
    let mut seen = Vec::new();
    for case in fx["cases"].as_array().expect("cases") {
        let name = case["type"].as_str().expect("type");
        let dims: Vec<usize> = common::u32s(&case["dims"])
            .into_iter()
            .map(|d| d as usize)
            .collect();
        let raw = unhex(case["raw_hex"].as_str().expect("hex"));
        let want = common::f32s(&case["expected"]);
        let q = qtensor_from_ggml(dtype(name), &raw, dims.clone(), &Device::Cpu)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let got = q
            .dequantize(&Device::Cpu)
            .expect("dequantize")
            .flatten_all()
            .expect("flatten")
            .to_vec1::<f32>()
            .expect("f32");
        assert_eq!(got.len(), want.len(), "{name}: element count");
        let mut inexact = 0;
        let mut worst = 0;
        for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
            let u = ulps(g, w);
            assert!(
                u <= 2,
                "{name} {dims:?}: element {i} (block {}): candle {g} vs gguf-py {w} ({u} ulps)",
                i / dtype(name).block_size()
            );
            inexact += usize::from(u > 0);
            worst = worst.max(u);
        }
        eprintln!(
            "{name}: {} values, {inexact} not bit-identical (worst {worst} ulps)",
            got.len()
        );
        seen.push(name.to_owned());
    }
    for must in ["F16", "Q8_0", "Q4_0", "Q4_1", "Q4_K", "Q5_K", "Q6_K"] {
        assert!(seen.iter().any(|s| s == must), "fixture lacks {must}");
    }
}
