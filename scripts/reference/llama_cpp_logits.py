#!/usr/bin/env python3
"""llama.cpp's logits for silk-engine's reference tests (tests/reference_llama_cpp.rs).

Writes, under enclave/engine/tests/fixtures/:

* tiny_llama_{f32,q8_0,q4_0,q4_1}.gguf: tiny random llama models (d=64, 2 layers, 4 query
  heads over 2 KV heads, ff=128, vocab 512 with a small gpt2 byte-level BPE vocabulary so
  llama.cpp loads them), written with gguf's GGUFWriter from numpy seed 20240601. F32 and
  Q4_0 have a separate output.weight; Q8_0 and Q4_1 tie it to the token embedding.
* llama_cpp_logits_tiny.json: for each tiny model and 4 fixed token-id prompts, llama.cpp's
  full last-position logits and a 24-token greedy continuation (with the top-1/top-2 margin
  at each step, so the test can tell near ties from disagreements).
* llama_cpp_logits_smollm2.json: the same for SmolLM2-135M-Instruct Q4_1 (49152 tokens),
  keeping only the top-64 (id, logit) pairs, the logits of 32 fixed ids, and summary
  statistics of the last position (to keep the fixture small).

llama.cpp runs with one thread, an F32 KV cache and flash attention off; logits are read
from `Llama.scores` after `Llama.eval`. Greedy decoding is argmax over those logits.

Regenerate (from the repository root, with the default model fetched to models/):

    pip install -r scripts/reference/requirements.txt
    python3 scripts/reference/llama_cpp_logits.py

Generated with: Python 3.11.7, llama-cpp-python 0.3.36 (built from source, CPU),
gguf 0.17.1, numpy 2.4.6.
"""
import json
import sys
from pathlib import Path

import gguf
import llama_cpp
import numpy as np
from gguf import GGMLQuantizationType as Q
from llama_cpp import Llama

ROOT = Path(__file__).resolve().parents[2]
FIX = ROOT / "enclave/engine/tests/fixtures"
SMOLLM2 = ROOT / "models/SmolLM2-135M-Instruct.Q4_1.gguf"

SEED = 20240601
VOCAB, D, LAYERS, HEADS, KV_HEADS, FF, CTX = 512, 64, 2, 4, 2, 128, 256
GREEDY = 24

TINY_PROMPTS = [
    [1, 17, 42, 99, 3],
    [7],
    [300, 301, 302, 303, 304, 305, 306, 307, 308, 309, 310, 311],
    [(i * 37 + 11) % VOCAB for i in range(40)],
]

# (name, weight type, tied output)
TINY_MODELS = [
    ("f32", Q.F32, False),
    ("q8_0", Q.Q8_0, True),
    ("q4_0", Q.Q4_0, False),
    ("q4_1", Q.Q4_1, True),
]

SMOL_TEXTS = [
    "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n",
    "The quick brown fox jumps over the lazy dog.",
    "def fibonacci(n):\n    if n < 2:\n        return n\n",
]
SMOL_RAW_PROMPT = [(i * 1009 + 17) % 49152 for i in range(20)]
SMOL_PROBE_IDS = [(i * 1531 + 5) % 49152 for i in range(32)]


def byte_chars():
    """GPT-2's reversible byte-to-character map."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    bs += list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    out = [""] * 256
    for b, c in zip(bs, cs):
        out[b] = chr(c)
    return out


def tiny_vocab():
    bc = byte_chars()
    tokens = list(bc)
    types = [1] * 256
    for s in ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]:
        tokens.append(s)
        types.append(3)
    sp = bc[ord(" ")]
    pairs = [("h", "e"), ("l", "l"), ("o", "r"), ("i", "n"), ("t", "h"), ("e", "r"),
             ("a", "n"), ("r", "e"), ("o", "n"), ("a", "t"), ("e", "n"), ("i", "s"),
             (sp, "t"), (sp, "a")]
    merges = []
    for a, b in pairs:
        merges.append(f"{a} {b}")
        tokens.append(a + b)
        types.append(1)
    while len(tokens) < VOCAB:
        tokens.append(f"<unused{len(tokens)}>")
        types.append(5)
    return tokens, types, merges


def write_tiny(path, qtype, tied, seed):
    rng = np.random.default_rng(seed)
    hd = D // HEADS

    def mat(rows, cols, scale):
        return rng.uniform(-scale, scale, size=(rows, cols)).astype(np.float32)

    def norm():
        return rng.uniform(0.5, 1.5, size=(D,)).astype(np.float32)

    tensors = [("token_embd.weight", mat(VOCAB, D, 1.0), qtype)]
    tensors.append(("output_norm.weight", norm(), Q.F32))
    if not tied:
        tensors.append(("output.weight", mat(VOCAB, D, 0.5), qtype))
    s = 0.3
    for i in range(LAYERS):
        tensors += [
            (f"blk.{i}.attn_norm.weight", norm(), Q.F32),
            (f"blk.{i}.ffn_norm.weight", norm(), Q.F32),
            (f"blk.{i}.attn_q.weight", mat(HEADS * hd, D, s), qtype),
            (f"blk.{i}.attn_k.weight", mat(KV_HEADS * hd, D, s), qtype),
            (f"blk.{i}.attn_v.weight", mat(KV_HEADS * hd, D, s), qtype),
            (f"blk.{i}.attn_output.weight", mat(D, HEADS * hd, s), qtype),
            (f"blk.{i}.ffn_gate.weight", mat(FF, D, s), qtype),
            (f"blk.{i}.ffn_up.weight", mat(FF, D, s), qtype),
            (f"blk.{i}.ffn_down.weight", mat(D, FF, s), qtype),
        ]
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("silk tiny random llama")
    w.add_block_count(LAYERS)
    w.add_context_length(CTX)
    w.add_embedding_length(D)
    w.add_feed_forward_length(FF)
    w.add_head_count(HEADS)
    w.add_head_count_kv(KV_HEADS)
    w.add_rope_dimension_count(hd)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(10000.0)
    w.add_vocab_size(VOCAB)
    tokens, types, merges = tiny_vocab()
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt-2")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(256)
    w.add_eos_token_id(256)
    w.add_add_bos_token(False)
    for name, x, t in tensors:
        if t == Q.F32:
            w.add_tensor(name, x)
        else:
            w.add_tensor(name, gguf.quants.quantize(x, t), raw_dtype=t)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def open_llama(path):
    return Llama(
        model_path=str(path),
        n_ctx=512,
        n_batch=512,
        n_threads=1,
        n_threads_batch=1,
        logits_all=True,
        flash_attn=False,
        type_k=0,  # GGML_TYPE_F32
        type_v=0,
        verbose=False,
    )


def last_logits(llm, tokens):
    llm.reset()
    llm.eval(tokens)
    return np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32)


def greedy(llm, tokens):
    """24 argmax steps after the prompt; returns (ids, top1-top2 margins)."""
    logits = last_logits(llm, tokens)
    ids, margins = [], []
    for _ in range(GREEDY):
        order = np.argsort(-logits, kind="stable")
        t = int(order[0])
        ids.append(t)
        margins.append(f(logits[order[0]] - logits[order[1]]))
        llm.eval([t])
        logits = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32)
    return ids, margins


def f(x):
    return round(float(x), 6)


def tiny():
    out = {"models": []}
    for name, qtype, tied in TINY_MODELS:
        path = FIX / f"tiny_llama_{name}.gguf"
        write_tiny(path, qtype, tied, SEED)
        llm = open_llama(path)
        cases = []
        for p in TINY_PROMPTS:
            logits = last_logits(llm, p)
            ids, margins = greedy(llm, p)
            cases.append({
                "prompt": p,
                "logits": [f(x) for x in logits],
                "greedy": ids,
                "greedy_margin": margins,
            })
        del llm
        out["models"].append({"file": path.name, "type": name, "tied": tied, "cases": cases})
        print(f"{path.name}: {path.stat().st_size} bytes", file=sys.stderr)
    return out


def smollm2():
    llm = open_llama(SMOLLM2)
    prompts = [llm.tokenize(t.encode(), add_bos=False, special=True) for t in SMOL_TEXTS]
    prompts.append(SMOL_RAW_PROMPT)
    cases = []
    for text, p in zip(SMOL_TEXTS + [None], prompts):
        logits = last_logits(llm, p).astype(np.float64)
        order = np.argsort(-logits, kind="stable")[:64]
        m = logits.max()
        ids, margins = greedy(llm, p)
        cases.append({
            "text": text,
            "prompt": [int(t) for t in p],
            "top64": [[int(i), f(logits[i])] for i in order],
            "probe": [[i, f(logits[i])] for i in SMOL_PROBE_IDS],
            "stats": {
                "max": f(m),
                "mean": f(logits.mean()),
                "std": f(logits.std()),
                "logsumexp": f(m + np.log(np.exp(logits - m).sum())),
            },
            "greedy": ids,
            "greedy_margin": margins,
            "greedy_text": llm.detokenize(ids).decode("utf-8", "replace"),
        })
    return {"model": SMOLLM2.name, "cases": cases}


def main():
    meta = {
        "generator": "scripts/reference/llama_cpp_logits.py",
        "llama_cpp_python": llama_cpp.__version__,
        "gguf": "0.17.1",
        "numpy": np.__version__,
        "settings": "n_threads=1, type_k=type_v=F32, flash_attn=False, logits_all=True",
    }
    t = tiny()
    t["meta"] = meta
    (FIX / "llama_cpp_logits_tiny.json").write_text(json.dumps(t) + "\n")
    if SMOLLM2.exists():
        s = smollm2()
        s["meta"] = meta
        (FIX / "llama_cpp_logits_smollm2.json").write_text(json.dumps(s, indent=1) + "\n")
    else:
        print(f"{SMOLLM2} not found: SmolLM2 fixture not regenerated", file=sys.stderr)


if __name__ == "__main__":
    main()
