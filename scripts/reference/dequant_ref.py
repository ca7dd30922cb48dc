#!/usr/bin/env python3
"""Dequantisation reference for silk-engine's tests/reference_dequant.rs.

For every GGML type the engine serves, writes deterministic random raw blocks (numpy seed
20240602; every f16 scale field overwritten with a finite value, one block's scales set
to zero and one negative) and the floats `gguf.quants.dequantize` (the reference numpy
implementation shipped with llama.cpp's gguf-py) makes of them, to
enclave/engine/tests/fixtures/dequant_ref.json. Floats are written with Python's
shortest round-trip repr of the f32 value, so they parse back to the exact f32.

Regenerate (from the repository root):

    pip install -r scripts/reference/requirements.txt
    python3 scripts/reference/dequant_ref.py

Generated with: Python 3.11.7, gguf 0.17.1, numpy 2.4.6.
"""
import json
from pathlib import Path

import gguf
import numpy as np
from gguf import GGMLQuantizationType as Q

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "enclave/engine/tests/fixtures/dequant_ref.json"
SEED = 20240602

# type -> (block elements, block bytes, byte offsets of f16 fields within a block)
LAYOUT = {
    Q.F16: (1, 2, [0]),
    Q.BF16: (1, 2, []),
    Q.Q8_0: (32, 34, [0]),
    Q.Q4_0: (32, 18, [0]),
    Q.Q4_1: (32, 20, [0, 2]),
    Q.Q5_0: (32, 22, [0]),
    Q.Q5_1: (32, 24, [0, 2]),
    Q.Q2_K: (256, 84, [80, 82]),
    Q.Q3_K: (256, 110, [108]),
    Q.Q4_K: (256, 144, [0, 2]),
    Q.Q5_K: (256, 176, [0, 2]),
    Q.Q6_K: (256, 210, [208]),
}


def raw_blocks(rng, qtype, rows, cols):
    elems, size, f16_at = LAYOUT[qtype]
    n_blocks = rows * cols // elems
    if qtype == Q.F16:
        v = (rng.standard_normal(rows * cols) * 2.0).astype(np.float16)
        v[:4] = [0.0, -0.0, 65504.0, 6e-8]  # zero, negative zero, largest, subnormal
        return v.view(np.uint8).reshape(rows, -1)
    if qtype == Q.BF16:
        v = (rng.standard_normal(rows * cols) * 3.0).astype(np.float32)
        v[:3] = [0.0, -0.0, 3.0e38]
        return (v.view(np.uint32) >> 16).astype(np.uint16).view(np.uint8).reshape(rows, -1)
    raw = rng.integers(0, 256, size=(n_blocks, size), dtype=np.uint8)
    for b in range(n_blocks):
        for j, off in enumerate(f16_at):
            if b == 0:
                val = 0.0  # a block whose scales are zero dequantises to zeros (or -0)
            elif b == 1:
                val = -0.03125 * (j + 1)  # negative scales are legal
            else:
                val = float(rng.uniform(-0.1, 0.1))
            raw[b, off:off + 2] = np.frombuffer(np.float16(val).tobytes(), dtype=np.uint8)
    return raw.reshape(rows, -1)


def main():
    rng = np.random.default_rng(SEED)
    cases = []
    for qtype, (elems, _, _) in LAYOUT.items():
        rows, cols = (2, 512) if elems == 256 else (2, 64)
        raw = raw_blocks(rng, qtype, rows, cols)
        out = gguf.quants.dequantize(raw, qtype).astype(np.float32)
        assert out.shape == (rows, cols), (qtype.name, out.shape)
        assert np.isfinite(out).all(), qtype.name
        cases.append({
            "type": qtype.name,
            "dims": [rows, cols],
            "raw_hex": raw.tobytes().hex(),
            "expected": [float(x) for x in out.reshape(-1)],
        })
    meta = {
        "generator": "scripts/reference/dequant_ref.py",
        "gguf": "0.17.1",
        "numpy": np.__version__,
        "seed": SEED,
    }
    OUT.write_text(json.dumps({"meta": meta, "cases": cases}) + "\n")
    print(f"{OUT}: {OUT.stat().st_size} bytes")


if __name__ == "__main__":
    main()
