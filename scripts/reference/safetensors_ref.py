#!/usr/bin/env python3
"""Tiny Hugging Face checkpoints and float64 numpy logits for tests/reference_safetensors.rs.

Writes two model directories under enclave/engine/tests/fixtures/, each with config.json,
model.safetensors and expected_logits.json:

* hf_tiny_llama: LlamaForCausalLM layout, F32 weights, untied lm_head, 4 query heads over
  2 KV heads, `rope_theta` at the top level of config.json.
* hf_tiny_qwen2: Qwen2ForCausalLM layout, BF16 weights, q/k/v biases, embeddings tied to
  the output (no lm_head.weight), 4 query heads over 1 KV head, `rope_theta` under
  `rope_parameters` (newer transformers releases).

Weights are random (numpy seed 20240603). The logits come from an independent float64
numpy implementation of the Hugging Face forward pass written here from the transformers
modelling code: RMSNorm (x * rsqrt(mean(x^2) + eps) * w), rotate_half RoPE with
inv_freq = theta^(-2i/d), repeat_kv grouped-query attention, causal softmax, SiLU-gated
MLP. BF16 weights are rounded to BF16 first and the reference uses the rounded values.
expected_logits.json holds, for each prompt, the logits at every position.

Regenerate (from the repository root):

    pip install -r scripts/reference/requirements.txt
    python3 scripts/reference/safetensors_ref.py

Generated with: Python 3.11.7, numpy 2.4.6, safetensors 0.8.0.
"""
import json
import struct
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

ROOT = Path(__file__).resolve().parents[2]
FIX = ROOT / "enclave/engine/tests/fixtures"
SEED = 20240603

PROMPTS = [
    [1, 2, 3, 4, 5, 6, 7, 8],
    [200],
    [(i * 29 + 3) % 256 for i in range(16)],
]

MODELS = {
    "hf_tiny_llama": {
        "config": {
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "rms_norm_eps": 1e-5,
            "rope_theta": 10000.0,
            "vocab_size": 256,
            "max_position_embeddings": 128,
            "tie_word_embeddings": False,
            "hidden_act": "silu",
            "torch_dtype": "float32",
        },
        "dtype": "F32",
        "bias": False,
        "tied": False,
    },
    "hf_tiny_qwen2": {
        "config": {
            "architectures": ["Qwen2ForCausalLM"],
            "model_type": "qwen2",
            "hidden_size": 64,
            "intermediate_size": 96,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 1,
            "rms_norm_eps": 1e-6,
            "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0},
            "vocab_size": 256,
            "max_position_embeddings": 128,
            "tie_word_embeddings": True,
            "hidden_act": "silu",
            "use_sliding_window": False,
            "torch_dtype": "bfloat16",
        },
        "dtype": "BF16",
        "bias": True,
        "tied": True,
    },
}


def to_bf16_bits(x):
    """Round-to-nearest-even f32 -> bf16, as uint16 bit patterns."""
    b = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    b = (b + 0x7FFF + ((b >> 16) & 1)) >> 16
    return b.astype(np.uint16)


def bf16_bits_to_f64(bits):
    return (bits.astype(np.uint32) << 16).view(np.float32).astype(np.float64)


def save_bf16(tensors, path):
    """A safetensors file of BF16 tensors (numpy has no bfloat16, so by hand)."""
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        data = tensors[name].tobytes()
        header[name] = {"dtype": "BF16", "shape": list(tensors[name].shape),
                        "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    path.write_bytes(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def random_weights(rng, cfg, bias, tied):
    d, ff, v = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    h, kv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = d // h

    def u(*shape, s=1.0):
        return rng.uniform(-s, s, size=shape).astype(np.float32)

    w = {"model.embed_tokens.weight": u(v, d), "model.norm.weight": u(d, s=0.5) + 1.0}
    if not tied:
        w["lm_head.weight"] = u(v, d, s=0.5)
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        w[p + "input_layernorm.weight"] = u(d, s=0.5) + 1.0
        w[p + "post_attention_layernorm.weight"] = u(d, s=0.5) + 1.0
        w[p + "self_attn.q_proj.weight"] = u(h * hd, d, s=0.3)
        w[p + "self_attn.k_proj.weight"] = u(kv * hd, d, s=0.3)
        w[p + "self_attn.v_proj.weight"] = u(kv * hd, d, s=0.3)
        w[p + "self_attn.o_proj.weight"] = u(d, h * hd, s=0.3)
        if bias:
            w[p + "self_attn.q_proj.bias"] = u(h * hd, s=0.5)
            w[p + "self_attn.k_proj.bias"] = u(kv * hd, s=0.5)
            w[p + "self_attn.v_proj.bias"] = u(kv * hd, s=0.5)
        w[p + "mlp.gate_proj.weight"] = u(ff, d, s=0.3)
        w[p + "mlp.up_proj.weight"] = u(ff, d, s=0.3)
        w[p + "mlp.down_proj.weight"] = u(d, ff, s=0.3)
    return w


def rms_norm(x, w, eps):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w


def rotate_half(x):
    half = x.shape[-1] // 2
    return np.concatenate([-x[..., half:], x[..., :half]], axis=-1)


def forward(w, cfg, ids):
    """All-position logits, float64, as transformers' Llama/Qwen2 modelling code."""
    d, h, kv = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd, eps = d // h, cfg["rms_norm_eps"]
    theta = cfg.get("rope_theta") or cfg["rope_parameters"]["rope_theta"]
    n = len(ids)
    inv_freq = 1.0 / theta ** (np.arange(0, hd, 2, dtype=np.float64) / hd)
    freqs = np.outer(np.arange(n, dtype=np.float64), inv_freq)
    emb = np.concatenate([freqs, freqs], axis=-1)  # [n, hd]
    cos, sin = np.cos(emb)[:, None, :], np.sin(emb)[:, None, :]
    mask = np.triu(np.full((n, n), -np.inf), 1)
    x = w["model.embed_tokens.weight"][ids]
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."

        def lin(name, t):
            y = t @ w[p + name + ".weight"].T
            b = w.get(p + name + ".bias")
            return y if b is None else y + b

        t = rms_norm(x, w[p + "input_layernorm.weight"], eps)
        q = lin("self_attn.q_proj", t).reshape(n, h, hd)
        k = lin("self_attn.k_proj", t).reshape(n, kv, hd)
        v = lin("self_attn.v_proj", t).reshape(n, kv, hd)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        o = np.empty((n, h, hd))
        for head in range(h):
            j = head // (h // kv)  # repeat_kv
            s = q[:, head] @ k[:, j].T / np.sqrt(hd) + mask
            s = np.exp(s - s.max(-1, keepdims=True))
            o[:, head] = (s / s.sum(-1, keepdims=True)) @ v[:, j]
        x = x + o.reshape(n, h * hd) @ w[p + "self_attn.o_proj.weight"].T
        t = rms_norm(x, w[p + "post_attention_layernorm.weight"], eps)
        g = t @ w[p + "mlp.gate_proj.weight"].T
        u = t @ w[p + "mlp.up_proj.weight"].T
        x = x + (g / (1.0 + np.exp(-g)) * u) @ w[p + "mlp.down_proj.weight"].T
    x = rms_norm(x, w["model.norm.weight"], eps)
    head = w.get("lm_head.weight", w["model.embed_tokens.weight"])
    return x @ head.T


def main():
    rng = np.random.default_rng(SEED)
    for name, spec in MODELS.items():
        cfg = spec["config"]
        out = FIX / name
        out.mkdir(parents=True, exist_ok=True)
        w32 = random_weights(rng, cfg, spec["bias"], spec["tied"])
        if spec["dtype"] == "BF16":
            bits = {k: to_bf16_bits(v) for k, v in w32.items()}
            save_bf16(bits, out / "model.safetensors")
            w64 = {k: bf16_bits_to_f64(v) for k, v in bits.items()}
        else:
            save_file(w32, str(out / "model.safetensors"), metadata={"format": "pt"})
            w64 = {k: v.astype(np.float64) for k, v in w32.items()}
        (out / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
        cases = []
        for ids in PROMPTS:
            logits = forward(w64, cfg, ids)
            cases.append({"prompt": ids,
                          "logits": [[round(float(x), 7) for x in row] for row in logits]})
        meta = {"generator": "scripts/reference/safetensors_ref.py", "seed": SEED,
                "numpy": np.__version__, "dtype": spec["dtype"],
                "note": "logits[i] follow prompt[..=i]; float64 reference forward"}
        (out / "expected_logits.json").write_text(json.dumps({"meta": meta, "cases": cases}) + "\n")
        sizes = {p.name: p.stat().st_size for p in out.iterdir()}
        print(name, sizes)


if __name__ == "__main__":
    main()
