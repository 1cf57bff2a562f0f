#!/usr/bin/env python3
"""llama.cpp's own logits for the quantised fixtures (QuantizedModelTests' native-precision check).

Run BY HAND (never in CI; it needs llama-cpp-python, which builds llama.cpp from source), from the repository root,
after Scripts/make_quant_fixtures.py:

    /work/V/bin/python Scripts/make_llamacpp_quant_logits.py

Pinned environment it was run with (checked at start; pass --any-version to override):
    llama-cpp-python 0.3.36 / gguf 0.19.0 / numpy 2.4.6 (llama.cpp built for the machine it runs on: its CPU backend
    rounds the activations with that machine's SIMD code; this was an x86 AVX-512 one)

For every Tests/PersonaModelsTests/Fixtures/quant/<type>.gguf (llama.cpp's own quantisation), llama.cpp runs the
fixtures' 8 token ids twice, with an f32 K/V cache and 2 threads (Scripts/check_llamacpp_logits.py's llama_logits;
the same values with 1 thread, and a rerun gives the same bytes):
  logits_batch [8, vocab]  all 8 ids in one batch (its matrix-matrix path),
  logits_step  [8, vocab]  one id at a time (its matrix-vector path),
written as float32 (what llama.cpp returns) to quant/<type>.llamacpp.safetensors.
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "Scripts"))
from check_llamacpp_logits import llama_logits  # noqa: E402
from make_convert_fixtures import versions  # noqa: E402  (the llama-cpp-python / gguf / numpy pins)

QUANT = REPO / "Tests" / "PersonaModelsTests" / "Fixtures" / "quant"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--any-version", action="store_true")
    a = ap.parse_args()
    found = versions(a.any_version)
    from safetensors.numpy import save_file
    meta = json.loads((QUANT / "references.json").read_text())
    ids = meta["input_ids"]
    for name in sorted(meta["files"]):
        path = QUANT / name
        batch = llama_logits(path, ids)
        step = llama_logits(path, ids, one_by_one=True)
        out = QUANT / name.replace(".gguf", ".llamacpp.safetensors")
        save_file({"logits_batch": batch.astype(np.float32), "logits_step": step.astype(np.float32)}, str(out),
                  # one key: safetensors writes several in a varying order, and a rerun should give the same bytes
                  metadata={"generator": f"Scripts/make_llamacpp_quant_logits.py, llama-cpp-python {found['llama_cpp_python']}"})
        print(f"{name}: batch vs step max |diff| {np.abs(batch - step).max():.3g}")


if __name__ == "__main__":
    main()
