#!/usr/bin/env python3
"""Regenerates enclave/engine/tests/fixtures/spm_tokens.json: a SentencePiece (GGUF
tokenizer.ggml.model = "llama") vocabulary and llama.cpp's token ids for a set of texts.

No real SPM model is needed: the vocabulary is derived deterministically from a fixed corpus
(every character but a few, kept out to exercise <0xNN> byte fallback, plus the 3000 most
frequent 2-6 character substrings, with scores that tie often to exercise tie-breaking),
written to a throwaway GGUF that llama.cpp loads with vocab_only.

    CMAKE_ARGS="-DGGML_NATIVE=OFF" pip install llama-cpp-python gguf
    python3 scripts/reference/spm_llama_cpp.py
"""
import collections
import json
import random
import tempfile
from pathlib import Path

import gguf
import llama_cpp
from llama_cpp import Llama

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "enclave/engine/tests/fixtures/spm_tokens.json"

CORPUS = """
The engine loads GGUF checkpoints with their tokenizer and chat template, samples with the
usual controls, and serves many requests at once from one model. Tokens are merged by score:
the highest scoring pair first, the leftmost among equals. Unknown characters fall back to
bytes. Numbers like 1234567890 and 3.14159 appear, as do names: Alice, Bob, Carol, Dave.
Quelques mots en français: déjà vu, très bien, naïve, où est la gare? Ein bisschen Deutsch:
Größe, Straße, schön. Un poco de español: mañana, niño, ¿qué tal? 日本語のテキストと中文。
""" * 3

HELD_OUT = {"é", "日", "ß"}

TEXTS = [
    "",
    " ",
    "Hello world",
    "The engine loads many requests at once.",
    "  leading and   inner   spaces  ",
    "déjà vu, très bien",
    "Größe Straße schön",
    "日本語のテキスト 中文",
    "emoji 🎉 unseen ☃ chars",
    "numbers 1234567890 3.14159",
    "line\nbreaks\n\nand\ttabs",
    "<s>special</s> tokens<s>",
    "the the the thethe",
    "aaaaaaa bbbbbb",
]


def build_vocab():
    random.seed(7)
    text = CORPUS.replace(" ", "\u2581")
    tokens = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % b for b in range(256)]
    types = [2, 3, 3] + [6] * 256
    scores = [0.0] * len(tokens)
    for c in sorted(set(text) - HELD_OUT):
        tokens.append(c)
        types.append(1)
        scores.append(-10.0)
    counts = collections.Counter()
    for n in range(2, 7):
        for i in range(len(text) - n):
            counts[text[i : i + n]] += 1
    seen = set(tokens)
    for piece, count in counts.most_common(3000):
        if piece in seen:
            continue
        seen.add(piece)
        tokens.append(piece)
        types.append(1)
        # Coarse scores so that many pairs tie.
        scores.append(round(-5.0 / count - 0.25 * len(piece) + random.choice([0.0, 0.0, -0.5]), 2))
    return tokens, scores, types


def main():
    tokens, scores, types = build_vocab()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "spm.gguf"
        w = gguf.GGUFWriter(str(path), "llama")
        # Minimal hyper-parameters so llama.cpp accepts the file; no tensors are needed.
        w.add_context_length(128)
        w.add_embedding_length(64)
        w.add_block_count(1)
        w.add_feed_forward_length(128)
        w.add_head_count(1)
        w.add_head_count_kv(1)
        w.add_layer_norm_rms_eps(1e-5)
        w.add_rope_dimension_count(64)
        w.add_tokenizer_model("llama")
        w.add_token_list(tokens)
        w.add_token_scores(scores)
        w.add_token_types(types)
        w.add_bos_token_id(1)
        w.add_eos_token_id(2)
        w.add_unk_token_id(0)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        llm = Llama(model_path=str(path), vocab_only=True, verbose=False)
        cases = []
        for text in TEXTS:
            for special in (True, False):
                ids = llm.tokenize(text.encode("utf-8"), add_bos=False, special=special)
                cases.append({"text": text, "parse_special": special, "ids": ids})
    head = json.dumps(
        {"generator": "scripts/reference/spm_llama_cpp.py", "llama_cpp_python": llama_cpp.__version__},
        ensure_ascii=False,
    )[:-1]
    vocab = json.dumps({"tokens": tokens, "scores": scores, "types": types}, ensure_ascii=False)
    lines = ",\n".join("  " + json.dumps(c, ensure_ascii=False) for c in cases)
    OUT.write_text(f'{head}, "vocab": {vocab},\n "cases": [\n{lines}\n]}}\n')
    print(f"wrote {len(tokens)} tokens and {len(cases)} cases to {OUT}")


if __name__ == "__main__":
    main()
