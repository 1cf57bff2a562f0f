#!/usr/bin/env python3
"""Writes the MXFP4 fixture of Tests/PersonaModelsTests/Fixtures/quant: the `gpt_oss` fixture as llama.cpp makes a gpt-oss
GGUF of MXFP4 experts, and llama.cpp's own logits for the same weights widened to f32.

Run BY HAND (never in CI), from the repository root, with the llama.cpp source tree of llama-cpp-python 0.3.36:

    /work/LM/bin/python Scripts/make_mxfp4_fixture.py --llama-cpp llama_cpp_python-0.3.36/vendor/llama.cpp

Pinned: llama-cpp-python 0.3.36 (its converter, quantizer and runtime), transformers 5.25.0, torch 2.15.0, numpy 2.4.

  1. the gpt_oss fixture folder with llama.cpp's constants (swiglu_limit 7, yarn ramp ends rounded: truncate true),
     converted by llama.cpp's convert_hf_to_gguf.py to an f32 GGUF;
  2. quantised by llama.cpp's quantizer (llama_model_quantize, MXFP4_MOE: experts MXFP4, the other matrices Q8_0)
     into quant/gpt_oss_mxfp4.gguf (committed);
  3. that file dequantised by gguf-py into an all-F32 GGUF (temporary), which llama.cpp runs on the fixture's input
     ids (f32 K/V cache): quant/gpt_oss_mxfp4.reference.safetensors `logits`, an independent implementation's answer
     for these weights in f32, which our engine must give from the MXFP4 file in exact precision.
"""
import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "Tests" / "PersonaModelsTests" / "Fixtures"
OUT = FIXTURES / "quant"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--llama-cpp", required=True)
    a = ap.parse_args()
    lcpp = Path(a.llama_cpp).resolve()
    sys.path.insert(0, str(lcpp / "gguf-py"))
    sys.path.insert(0, str(REPO / "Scripts"))
    import ctypes
    import llama_cpp
    from safetensors.numpy import save_file
    from check_gguf_export_llamacpp import CONVERT
    from check_llamacpp_logits import llama_logits, write_f32
    ids = json.loads((FIXTURES / "gpt_oss" / "reference.json").read_text())["input_ids"]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "fixture"
        shutil.copytree(FIXTURES / "gpt_oss", folder, ignore=shutil.ignore_patterns("reference*"))
        cfg = json.loads((folder / "config.json").read_text())
        cfg["swiglu_limit"] = 7.0
        cfg["rope_parameters"]["truncate"] = True
        (folder / "config.json").write_text(json.dumps(cfg))
        f32 = Path(tmp) / "f32.gguf"
        subprocess.run([sys.executable, "-c", CONVERT, str(lcpp), str(folder), "--outtype", "f32", "--outfile", str(f32)],
                       check=True, capture_output=True)
        dst = OUT / "gpt_oss_mxfp4.gguf"
        p = llama_cpp.llama_model_quantize_default_params()
        p.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_MXFP4_MOE
        p.nthread = 1
        assert llama_cpp.llama_model_quantize(str(f32).encode(), str(dst).encode(), ctypes.byref(p)) == 0
        widened = Path(tmp) / "widened.gguf"
        write_f32(widened, dst)
        logits = llama_logits(widened, ids).astype(np.float32)
    save_file({"logits": np.ascontiguousarray(logits)}, str(OUT / "gpt_oss_mxfp4.reference.safetensors"),
              metadata={"generator": "Scripts/make_mxfp4_fixture.py", "input_ids": json.dumps(ids),
                        "what": "llama.cpp 0.3.36 (f32 K/V) on gpt_oss_mxfp4.gguf widened to f32 by gguf-py"})
    print(f"wrote {dst} ({dst.stat().st_size} bytes) and its reference logits {logits.shape}")


if __name__ == "__main__":
    main()
