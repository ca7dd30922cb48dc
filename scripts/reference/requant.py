#!/usr/bin/env python3
"""Makes the Q8_0, Q4_0 and Q4_K_M variants of the default model that `silk bench engine`
and the engine tests compare on, with llama.cpp's own quantiser (llama-cpp-python).

Usage: requant.py [MODEL.gguf] [OUT_DIR]
  defaults: models/SmolLM2-135M-Instruct.Q4_1.gguf, models/
Writes OUT_DIR/SmolLM2-135M-Instruct.{Q8_0,Q4_0,Q4_K_M}.gguf.

The source is already Q4_1, so these are requantisations (llama.cpp's
--allow-requantize): they exercise the kernels on real shapes, not model quality. Note
that SmolLM2's width (576) is not a multiple of 256, so llama.cpp stores most tensors of
the "Q4_K_M" file as Q5_0, with some Q4_K, Q6_K and Q8_0.
Needs: pip install llama-cpp-python
"""
import ctypes
import os
import sys

import llama_cpp

TYPES = {
    "Q8_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0,
    "Q4_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0,
    "Q4_K_M": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M,
}


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else "models/SmolLM2-135M-Instruct.Q4_1.gguf"
    out_dir = sys.argv[2] if len(sys.argv) > 2 else "models"
    stem = os.path.basename(src).split(".Q")[0]
    for name, ftype in TYPES.items():
        dst = os.path.join(out_dir, f"{stem}.{name}.gguf")
        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype = ftype
        params.allow_requantize = True
        rc = llama_cpp.llama_model_quantize(src.encode(), dst.encode(), ctypes.byref(params))
        if rc != 0:
            sys.exit(f"quantising to {name} failed ({rc})")
        print(dst)


if __name__ == "__main__":
    main()
