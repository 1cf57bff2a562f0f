#!/usr/bin/env python3
"""llama.cpp's own logits for the F16 fixture (QuantizedModelTests.testNativeF16MatchesLlamaCpp).

Run BY HAND (never in CI; it needs llama-cpp-python, which builds llama.cpp from source), from the repository root:

    /work/V/bin/python Scripts/make_llamacpp_f16_logits.py

Pinned environment it was run with (checked at start; pass --any-version to override):
    llama-cpp-python 0.3.36 / gguf 0.19.0 / numpy 2.4.6 (llama.cpp built for the machine it runs on; this was an
    x86 AVX-512 one, whose f16 matrix products round the activations to f16 with F16C and multiply in f32)

Tests/PersonaModelsTests/Fixtures/llama2-f16.gguf (2-D weights F16; Scripts/make_model_fixtures.py) runs the first 8
of its reference's input_ids, with an f32 K/V cache and 2 threads (Scripts/check_llamacpp_logits.py's
llama_logits):
  logits_batch    [8, vocab]  all 8 ids in one batch (its matrix-matrix path),
  logits_step     [8, vocab]  one id at a time (its matrix-vector path),
  logits_f32_copy [8, vocab]  batch, on a copy of the file with every tensor dequantised to F32 by gguf-py: the same
                              weights computed in f32 (no activation rounding; what our exact precision computes),
written as float32 to Fixtures/llama2-f16.llamacpp.safetensors.
"""
import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "Scripts"))
from check_llamacpp_logits import llama_logits, write_f32  # noqa: E402
from make_convert_fixtures import versions  # noqa: E402  (the llama-cpp-python / gguf / numpy pins)

FIXTURES = REPO / "Tests" / "PersonaModelsTests" / "Fixtures"
MODEL = FIXTURES / "llama2-f16.gguf"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--any-version", action="store_true")
    a = ap.parse_args()
    found = versions(a.any_version)
    from safetensors.numpy import save_file
    ids = json.loads((FIXTURES / "llama2-f16.reference.json").read_text())["input_ids"][:8]
    batch = llama_logits(MODEL, ids)
    step = llama_logits(MODEL, ids, one_by_one=True)
    with tempfile.TemporaryDirectory() as tmp:
        f32 = Path(tmp) / "f32.gguf"
        write_f32(f32, MODEL)
        f32_copy = llama_logits(f32, ids)
    out = FIXTURES / "llama2-f16.llamacpp.safetensors"
    save_file({"logits_batch": batch.astype(np.float32), "logits_step": step.astype(np.float32),
               "logits_f32_copy": f32_copy.astype(np.float32)}, str(out),
              metadata={"generator": f"Scripts/make_llamacpp_f16_logits.py, llama-cpp-python {found['llama_cpp_python']}"})
    print(f"ids {ids}: batch vs step max |diff| {np.abs(batch - step).max():.3g}, "
          f"batch vs f32 copy {np.abs(batch - f32_copy).max():.3g}")


if __name__ == "__main__":
    main()
