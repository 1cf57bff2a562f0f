#!/usr/bin/env python3
"""llama.cpp's logits for linear and YaRN RoPE scaling (RopeScalingTests).

Run BY HAND (never in CI; it needs llama-cpp-python, which builds llama.cpp from source), from the repository root:

    /work/V/bin/python Scripts/make_llamacpp_rope_scaling_logits.py

Pinned environment it was run with (checked at start; pass --any-version to override):
    llama-cpp-python 0.3.36 / gguf 0.19.0 / numpy 2.4.6

Tests/PersonaModelsTests/Fixtures/llama2-f32.gguf is copied with two more keys, llama.rope.scaling.type = "linear"
and llama.rope.scaling.factor = 4 (what convert_hf_to_gguf.py writes for a config's rope_scaling {"type": "linear",
"factor": 4}); llama.cpp runs the first 16 ids of llama2-f32.reference.json on the copy and on the file as it is,
in one batch with an f32 K/V cache and 2 threads (Scripts/check_llamacpp_logits.py's llama_logits):
  logits_linear4  [16, vocab]  the copy: every RoPE frequency scaled by 1/4 (llama.cpp's freq_scale),
  logits_plain    [16, vocab]  the original: no scaling (shows how far apart the two are),
  logits_yarn4    [16, vocab]  a copy with llama.rope.scaling.type = "yarn", factor 4, original_context_length 64
                               (what the converter writes for rope_scaling {"rope_type": "yarn", "factor": 4,
                               "original_max_position_embeddings": 64}; llama.cpp's betas 32 / 1),
written as float32 to Fixtures/llama2-f32.rope-linear.llamacpp.safetensors. The test writes the same copy itself
(the 400 KB GGUF is not committed twice).
"""
import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "Scripts"))
from check_llamacpp_logits import llama_logits, write_gguf  # noqa: E402
from make_convert_fixtures import versions  # noqa: E402  (the llama-cpp-python / gguf / numpy pins)

FIXTURES = REPO / "Tests" / "PersonaModelsTests" / "Fixtures"
MODEL = FIXTURES / "llama2-f32.gguf"
FACTOR = 4.0


def with_linear_scaling(src, dst, factor, yarn_original=None):
    """src's metadata and tensors, unchanged (an F32 file: file type 0 stays), plus llama.rope.scaling.{type,factor}
    (and original_context_length for yarn)."""
    import gguf

    def scaling(w):
        w.add_rope_scaling_type(gguf.RopeScalingType.YARN if yarn_original else gguf.RopeScalingType.LINEAR)
        w.add_rope_scaling_factor(factor)
        if yarn_original:
            w.add_rope_scaling_orig_ctx_len(yarn_original)
    write_gguf(dst, gguf.GGUFReader(str(src)), lambda t: (np.asarray(t.data), None), extra=scaling)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--any-version", action="store_true")
    a = ap.parse_args()
    found = versions(a.any_version)
    from safetensors.numpy import save_file
    ids = json.loads((FIXTURES / "llama2-f32.reference.json").read_text())["input_ids"][:16]
    with tempfile.TemporaryDirectory() as tmp:
        scaled = Path(tmp) / "linear.gguf"
        with_linear_scaling(MODEL, scaled, FACTOR)
        linear = llama_logits(scaled, ids)
        yarn_file = Path(tmp) / "yarn.gguf"
        with_linear_scaling(MODEL, yarn_file, FACTOR, yarn_original=64)
        yarn = llama_logits(yarn_file, ids)
    plain = llama_logits(MODEL, ids)
    out = FIXTURES / "llama2-f32.rope-linear.llamacpp.safetensors"
    save_file({"logits_linear4": linear.astype(np.float32), "logits_plain": plain.astype(np.float32),
               "logits_yarn4": yarn.astype(np.float32)}, str(out),
              metadata={"generator": f"Scripts/make_llamacpp_rope_scaling_logits.py, llama-cpp-python {found['llama_cpp_python']}",
                        "factor": str(FACTOR)})
    print(f"ids {ids}: linear x{FACTOR} vs plain max |diff| {np.abs(linear - plain).max():.3g}, "
          f"yarn vs plain {np.abs(yarn - plain).max():.3g}, yarn vs linear {np.abs(yarn - linear).max():.3g}")


if __name__ == "__main__":
    main()
