#!/usr/bin/env python3
"""Regenerates enclave/engine/tests/fixtures/smollm2_tokens.json with llama.cpp's tokenizer.

The engine's GGUF tokenizer must match llama.cpp's token for token; this records llama.cpp's
answers (through llama-cpp-python, built from source) for a varied set of texts.

    CMAKE_ARGS="-DGGML_NATIVE=OFF" pip install llama-cpp-python
    python3 scripts/reference/tokenize_llama_cpp.py [path/to/SmolLM2-135M-Instruct.Q4_1.gguf]

The model path defaults to models/SmolLM2-135M-Instruct.Q4_1.gguf, then $SILK_DEFAULT_MODEL.
"""
import json
import os
import sys
from pathlib import Path

import llama_cpp
from llama_cpp import Llama

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "enclave/engine/tests/fixtures/smollm2_tokens.json"

TEXTS = [
    "",
    " ",
    "a",
    "Hello world",
    "Hello, world! How are you today?",
    " leading space",
    "trailing space ",
    "  multiple   spaces  between   words  ",
    "\t tabs\tand\t\ttabs",
    "line1\nline2\n\nline3\r\nline4\n",
    "\n\n\n",
    "12345 and 3.14159, 1,000,000 items",
    "phone: +1 (555) 010-9999, year 2024",
    "I'm you're we've they'll she'd it's DON'T I'M",
    "café naïve résumé façade",
    "Ünïcödé ÀÉÎÕÜ ß ø",
    "日本語のテキストです。",
    "中文测试：你好，世界！",
    "한국어 텍스트",
    "Привет, мир! Как дела?",
    "مرحبا بالعالم",
    "emoji 🎉🚀 and 👨\u200d👩\u200d👧\u200d👦 family 👍🏽",
    "math: α+β=γ ∑∫√∞ ≤ ≥ ≠",
    "fn main() {\n    println!(\"Hello, {}!\", name);\n}\n",
    "def f(x):\n\treturn x**2  # square\n",
    "<div class=\"a\">&amp; &lt;tag&gt;</div>",
    "a\u200bb e\u0301 a\u00a0b",
    "$$$ ### @@@ ... --- ___ *** !!!",
    "The quick brown fox jumps over the lazy dog. " * 3,
    "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
    "<|endoftext|>",
    "text<|im_end|>more <repo_name>x",
    # edge cases of the regex split: digits in words and other scripts' digits, whitespace
    # kinds and runs, contractions, combining marks, control and format characters
    "abc123def x1y22z333",
    "١٢٣ ½ ² １２３ Ⅷ",
    "  \n  x\r\n\r\n\ty\t\t\n   ",
    "a\u00a0\u00a0b \u3000c\u2003d",
    "'S 'T 'Re don't've y'all 'll",
    "n\u0303 \u0915\u093f \u0939\u093f\u0928\u094d\u0926\u0940 \u0e20\u0e32\u0e29\u0e32\u0e44\u0e17\u0e22",
    "\x00\x01\x7f \ufeffBOM \u200d\u200c",
    "... !!! ??? \u2026 \u2014 \u201cquoted\u201d \u00abguillemets\u00bb",
    "\U0001F1EB\U0001F1F7 \U0001D400\U0001D401 \U00020000",
    "<|im_start|><|im_start|>  <|im_end|>\n\n<|endoftext|>x",
    "https://example.com/path?q=1&r=two#frag user@example.org",
    "    indented\n        more\n\tand tab",
]


def model_path():
    if len(sys.argv) > 1:
        return sys.argv[1]
    default = ROOT / "models/SmolLM2-135M-Instruct.Q4_1.gguf"
    if default.exists():
        return str(default)
    env = os.environ.get("SILK_DEFAULT_MODEL")
    if env:
        return env
    sys.exit("no model: pass a path, place it in models/, or set SILK_DEFAULT_MODEL")


def main():
    llm = Llama(model_path=model_path(), vocab_only=True, verbose=False)
    cases = []
    for text in TEXTS:
        for special in (True, False):
            ids = llm.tokenize(text.encode("utf-8"), add_bos=False, special=special)
            decoded = llm.detokenize(ids, special=True).decode("utf-8", errors="replace")
            cases.append({"text": text, "parse_special": special, "ids": ids, "decoded": decoded})
    doc = {
        "model": "SmolLM2-135M-Instruct.Q4_1.gguf",
        "generator": "scripts/reference/tokenize_llama_cpp.py",
        "llama_cpp_python": llama_cpp.__version__,
        "bos": llm.token_bos(),
        "eos": llm.token_eos(),
        "cases": cases,
    }
    # One case per line: readable diffs when llama.cpp's answers change.
    head = json.dumps({k: v for k, v in doc.items() if k != "cases"}, ensure_ascii=False)[:-1]
    lines = ",\n".join("  " + json.dumps(c, ensure_ascii=False) for c in cases)
    OUT.write_text(f'{head}, "cases": [\n{lines}\n]}}\n')
    print(f"wrote {len(cases)} cases to {OUT}")


if __name__ == "__main__":
    main()
