#!/usr/bin/env python3
"""GGUF files in the importance-matrix lattice types quantised by llama.cpp's own quantizer (LatticeModelTests).

Run BY HAND (never in CI), from the repository root:

    /work/V/bin/python Scripts/make_lattice_fixtures.py

Pinned: llama-cpp-python 0.3.36, gguf 0.19.0, numpy 2.4.6.

llama.cpp refuses IQ1_S / IQ1_M / IQ2_XXS / IQ2_XS / IQ2_S / IQ3_XXS tensors without an importance matrix, which its
Python binding cannot pass, so the real files here hold IQ3_S (with the other types llama.cpp mixes in); the other
layouts are checked block by block against gguf-py (LatticeTypeTests). What is recorded per
file (Fixtures/quant/lattice.json): each tensor's stored type and the SHA-256 of its values dequantised by gguf-py
to little-endian float32, so the test can check every tensor of a real file bit for bit without committing the
float32 copy. The model is make_quant_fixtures.py's one-block Llama (hidden 256, stories260K's vocabulary).
"""
import hashlib
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_quant_fixtures import OUT, write_source  # noqa: E402

# (file type, pure): pure = every matrix in the type, as `llama-quantize --pure`. This llama.cpp also refuses IQ3_XXS
# without an importance matrix, so the real files are IQ3_S (pure, and as llama.cpp mixes it) and the IQ3_M mix.
KINDS = [("IQ3_S", True), ("IQ3_S", False), ("IQ3_M", False)]


def quantize(src, dst, kind, pure):
    import llama_cpp
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, "LLAMA_FTYPE_MOSTLY_" + kind)
    params.nthread = 2
    params.pure = pure
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), params)
    assert rc == 0, f"llama_model_quantize {kind} failed ({rc})"


def main():
    import gguf
    from gguf import quants
    from importlib.metadata import version
    meta = {"generator": "Scripts/make_lattice_fixtures.py",
            "versions": {"llama_cpp_python": version("llama-cpp-python"), "gguf": version("gguf"), "numpy": np.__version__},
            "files": {}}
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "f32.gguf"
        write_source(src)
        for kind, pure in KINDS:
            name = kind.lower() + ("_pure" if pure else "") + ".gguf"
            dst = OUT / name
            quantize(src, dst, kind, pure)
            r = gguf.GGUFReader(str(dst))
            tensors = {}
            for t in r.tensors:
                values = quants.dequantize(t.data, t.tensor_type).astype("<f4")
                tensors[t.name] = {"type": t.tensor_type.name, "shape": [int(x) for x in reversed(t.shape)],
                                   "sha256": hashlib.sha256(values.tobytes()).hexdigest()}
            meta["files"][name] = {"ftype": kind, "pure": pure, "bytes": dst.stat().st_size, "tensors": tensors}
            print(name, sorted({v["type"] for v in tensors.values()}), dst.stat().st_size)
    (OUT / "lattice.json").write_text(json.dumps(meta, indent=1) + "\n")


if __name__ == "__main__":
    main()
