//! Tiny random llama models written as GGUF from a fixed seed, so engine tests need no
//! download. Same seed, same bytes.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use candle_core::quantized::{gguf_file::Value, GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Shape of the tiny model.
pub struct Tiny {
    pub vocab: usize,
    pub d: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub ff: usize,
    pub ctx: usize,
}

pub const TINY: Tiny = Tiny {
    vocab: 320,
    d: 64,
    layers: 2,
    heads: 4,
    kv_heads: 2,
    ff: 128,
    ctx: 512,
};

fn random(rng: &mut ChaCha8Rng, dims: &[usize], scale: f32) -> Tensor {
    let n: usize = dims.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.gen_range(-scale..scale)).collect();
    Tensor::from_vec(v, dims, &Device::Cpu).expect("tensor")
}

/// Writes a tiny llama GGUF with weights of `dtype` (norms stay F32) to a fresh file
/// under the target directory and returns its path. Extra metadata (e.g. a tokenizer)
/// can be added with `extra`.
pub fn tiny_gguf(name: &str, seed: u64, dtype: GgmlDType, extra: &[(&str, Value)]) -> PathBuf {
    let t = &TINY;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut tensors: Vec<(String, QTensor)> = Vec::new();
    let mut push =
        |rng: &mut ChaCha8Rng, name: String, dims: &[usize], ty: GgmlDType, scale: f32| {
            let x = random(rng, dims, scale);
            let q = QTensor::quantize(&x, ty).expect("quantize");
            tensors.push((name, q));
        };
    let hd = t.d / t.heads;
    push(
        &mut rng,
        "token_embd.weight".into(),
        &[t.vocab, t.d],
        dtype,
        1.0,
    );
    push(
        &mut rng,
        "output_norm.weight".into(),
        &[t.d],
        GgmlDType::F32,
        1.0,
    );
    for i in 0..t.layers {
        let s = 0.3;
        push(
            &mut rng,
            format!("blk.{i}.attn_norm.weight"),
            &[t.d],
            GgmlDType::F32,
            1.0,
        );
        push(
            &mut rng,
            format!("blk.{i}.ffn_norm.weight"),
            &[t.d],
            GgmlDType::F32,
            1.0,
        );
        push(
            &mut rng,
            format!("blk.{i}.attn_q.weight"),
            &[t.heads * hd, t.d],
            dtype,
            s,
        );
        push(
            &mut rng,
            format!("blk.{i}.attn_k.weight"),
            &[t.kv_heads * hd, t.d],
            dtype,
            s,
        );
        push(
            &mut rng,
            format!("blk.{i}.attn_v.weight"),
            &[t.kv_heads * hd, t.d],
            dtype,
            s,
        );
        push(
            &mut rng,
            format!("blk.{i}.attn_output.weight"),
            &[t.d, t.heads * hd],
            dtype,
            s,
        );
        push(
            &mut rng,
            format!("blk.{i}.ffn_gate.weight"),
            &[t.ff, t.d],
            dtype,
            s,
        );
        push(
            &mut rng,
            format!("blk.{i}.ffn_up.weight"),
            &[t.ff, t.d],
            dtype,
            s,
        );
        push(
            &mut rng,
            format!("blk.{i}.ffn_down.weight"),
            &[t.d, t.ff],
            dtype,
            s,
        );
    }
    let mut md: Vec<(String, Value)> = vec![
        ("general.architecture".into(), Value::String("llama".into())),
        ("llama.block_count".into(), Value::U32(t.layers as u32)),
        ("llama.embedding_length".into(), Value::U32(t.d as u32)),
        ("llama.feed_forward_length".into(), Value::U32(t.ff as u32)),
        (
            "llama.attention.head_count".into(),
            Value::U32(t.heads as u32),
        ),
        (
            "llama.attention.head_count_kv".into(),
            Value::U32(t.kv_heads as u32),
        ),
        (
            "llama.attention.layer_norm_rms_epsilon".into(),
            Value::F32(1e-5),
        ),
        ("llama.context_length".into(), Value::U32(t.ctx as u32)),
        ("llama.rope.freq_base".into(), Value::F32(10_000.0)),
        ("llama.vocab_size".into(), Value::U32(t.vocab as u32)),
    ];
    for (k, v) in extra {
        md.push(((*k).to_owned(), v.clone()));
    }
    let path = out_dir().join(format!("{name}-{seed}-{dtype:?}.gguf"));
    let mut f = std::fs::File::create(&path).expect("create");
    let md_refs: Vec<(&str, &Value)> = md.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let t_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    candle_core::quantized::gguf_file::write(&mut f, &md_refs, &t_refs).expect("write gguf");
    path
}

/// A scratch directory for generated files, unique per test process.
pub fn out_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("engine-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    dir
}

/// GPT-2's reversible byte-to-character map, for building byte-level BPE vocabularies.
fn byte_chars() -> Vec<char> {
    let mut bs: Vec<u32> = (u32::from('!')..=u32::from('~'))
        .chain(u32::from('¡')..=u32::from('¬'))
        .chain(u32::from('®')..=u32::from('ÿ'))
        .collect();
    let mut cs = bs.clone();
    let mut n = 0;
    for b in 0..256u32 {
        if !bs.contains(&b) {
            bs.push(b);
            cs.push(256 + n);
            n += 1;
        }
    }
    let mut out = vec![' '; 256];
    for (b, c) in bs.iter().zip(cs) {
        out[*b as usize] = char::from_u32(c).expect("char");
    }
    out
}

/// Special tokens of the tiny vocabulary.
pub const EOS: u32 = 256;
/// `<|im_start|>`.
pub const IM_START: u32 = 257;
/// `<|im_end|>`.
pub const IM_END: u32 = 258;

/// GGUF metadata for a tiny byte-level BPE tokenizer (gpt2 model, `TINY.vocab` tokens):
/// the 256 byte tokens, three control tokens, then merged pairs.
pub fn tiny_tokenizer_md() -> Vec<(&'static str, Value)> {
    let bc = byte_chars();
    let mut tokens: Vec<String> = bc.iter().map(|c| c.to_string()).collect();
    let mut types = vec![1i32; 256];
    for s in ["<|endoftext|>", "<|im_start|>", "<|im_end|>"] {
        tokens.push(s.into());
        types.push(3);
    }
    let sp = bc[b' ' as usize];
    let pairs: Vec<(String, String)> = [
        ("h", "e"),
        ("l", "l"),
        ("o", "r"),
        ("i", "n"),
        ("t", "h"),
        ("e", "r"),
        ("a", "n"),
        ("r", "e"),
        ("o", "n"),
        ("a", "t"),
        ("e", "n"),
        ("i", "s"),
    ]
    .iter()
    .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
    .chain([
        (sp.to_string(), "t".to_owned()),
        (sp.to_string(), "a".to_owned()),
    ])
    .collect();
    let mut merges = Vec::new();
    for (a, b) in pairs {
        merges.push(Value::String(format!("{a} {b}")));
        tokens.push(format!("{a}{b}"));
        types.push(1);
    }
    while tokens.len() < TINY.vocab {
        tokens.push(format!("<unused{}>", tokens.len()));
        types.push(5);
    }
    let template = "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";
    vec![
        ("tokenizer.ggml.model", Value::String("gpt2".into())),
        ("tokenizer.ggml.pre", Value::String("gpt-2".into())),
        (
            "tokenizer.ggml.tokens",
            Value::Array(tokens.into_iter().map(Value::String).collect()),
        ),
        (
            "tokenizer.ggml.token_type",
            Value::Array(types.into_iter().map(Value::I32).collect()),
        ),
        ("tokenizer.ggml.merges", Value::Array(merges)),
        ("tokenizer.ggml.eos_token_id", Value::U32(EOS)),
        ("tokenizer.ggml.bos_token_id", Value::U32(EOS)),
        ("tokenizer.ggml.add_bos_token", Value::Bool(false)),
        ("tokenizer.chat_template", Value::String(template.into())),
    ]
}

/// The default model (SmolLM2-135M-Instruct Q4_1) in the repository's `models/` folder,
/// else at `$SILK_DEFAULT_MODEL`; `None` (after printing a skip note naming `test`) when
/// it is in neither place.
pub fn default_model(test: &str) -> Option<PathBuf> {
    let bundled = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../models/SmolLM2-135M-Instruct.Q4_1.gguf"
    ));
    let found = if bundled.exists() {
        Some(bundled.to_owned())
    } else {
        std::env::var_os("SILK_DEFAULT_MODEL")
            .map(PathBuf::from)
            .filter(|p| p.exists())
    };
    if found.is_none() {
        eprintln!("note: SmolLM2 GGUF not found (models/ or $SILK_DEFAULT_MODEL); skipping {test}");
    }
    found
}

/// A file under `tests/fixtures/`.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures")).join(name)
}

/// A JSON fixture under `tests/fixtures/`, parsed.
pub fn json_fixture(name: &str) -> serde_json::Value {
    let path = fixture(name);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}

/// Largest absolute elementwise difference.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// A JSON array of numbers as f32.
pub fn f32s(v: &serde_json::Value) -> Vec<f32> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number") as f32)
        .collect()
}

/// A JSON array of integers as u32.
pub fn u32s(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| u32::try_from(x.as_u64().expect("integer")).expect("u32"))
        .collect()
}

/// One forward step of one sequence: the logits of its last position.
pub fn step(m: &silk_engine::Model, cache: &mut silk_engine::KvCache, tokens: &[u32]) -> Vec<f32> {
    let logits = m
        .forward(&mut [silk_engine::SeqStep { tokens, cache }])
        .expect("forward");
    logits.to_vec2::<f32>().expect("2d").remove(0)
}

/// The index of the largest logit (the first, on ties).
pub fn argmax(v: &[f32]) -> u32 {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best as u32
}
