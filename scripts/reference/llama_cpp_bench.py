#!/usr/bin/env python3
"""llama.cpp's side of `silk bench engine`: prefill and decode tok/s for one sequence.

Runs the same measurement silk runs (a prompt of PROMPT tokens, then DECODE single-token
steps) through llama-cpp-python, with the given thread count and an f32 KV cache, and
prints one JSON object: {"prefill_tok_s": ..., "decode_tok_s": ...}.

Usage: llama_cpp_bench.py MODEL.gguf --threads N [--prompt 64] [--decode 32] [--reps 3]
Needs: pip install llama-cpp-python (builds llama.cpp from source; see docs/engine.md).
"""
import argparse
import json
import time

from llama_cpp import Llama


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--prompt", type=int, default=64)
    ap.add_argument("--decode", type=int, default=32)
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    llm = Llama(
        model_path=a.model,
        n_ctx=max(512, a.prompt + a.decode + 8),
        n_batch=max(512, a.prompt),
        n_threads=a.threads,
        n_threads_batch=a.threads,
        type_k=0,  # GGML_TYPE_F32: the same KV precision as silk
        type_v=0,
        verbose=False,
    )
    prompt = [100 + i for i in range(a.prompt)]
    best_prefill = best_decode = 0.0
    for _ in range(a.reps):
        llm.reset()
        t0 = time.perf_counter()
        llm.eval(prompt)
        best_prefill = max(best_prefill, a.prompt / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        for _ in range(a.decode):
            llm.eval([42])
        best_decode = max(best_decode, a.decode / (time.perf_counter() - t0))
    print(json.dumps({"prefill_tok_s": best_prefill, "decode_tok_s": best_decode}))


if __name__ == "__main__":
    main()
