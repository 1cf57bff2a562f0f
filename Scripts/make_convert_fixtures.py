#!/usr/bin/env python3
"""What llama.cpp's quantizer writes, for `persona convert --quantize` to equal (PersonaFormatsTests, PersonaCLITests).

Run BY HAND (never in CI), from the repository root:

    /work/V/bin/python Scripts/make_convert_fixtures.py

Pinned environment it was run with (checked at start; --any-version overrides): llama-cpp-python 0.3.36
(llama_model_quantize), gguf 0.19.0, numpy 2.4.6.

What it writes to Tests/PersonaFormatsTests/Fixtures/quantize/:
  source_f16.gguf      a small random Llama in F16 (1 block, hidden 256, feed-forward 288 so that ffn_down's rows
                       are not whole 256-blocks, tied embeddings, stories260K's tokenizer metadata);
  llama_quantize.json  for every file type we quantise (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K_S, Q3_K_M, Q3_K_L,
                       Q4_K_S, Q4_K_M, Q5_K_S, Q5_K_M, Q6_K, IQ4_NL, IQ4_XS; and F32, F16, BF16), default mix and
                       --pure: llama.cpp's output file's metadata keys and, per tensor in file order, its name, type
                       and the SHA-256 of its bytes, and the whole file's SHA-256.
                       `gqa4`: the same for the source with head_count 8 instead of 4 (n_gqa() 4; patched in place,
                       see gqa4_source) for the file types whose attn_v type depends on it.
                       Also, for the real SmolLM2-135M-Instruct Q4_1 file in ../shared, requantised by llama.cpp
                       (allow_requantize) to each type: the output file's SHA-256 (`smollm2_requantized`).
The quantised files themselves are not kept (the hashes say everything the test needs).
"""
import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "Tests" / "PersonaFormatsTests" / "Fixtures" / "quantize"
SMOLLM2 = REPO.parent / "shared" / "models" / "smollm2-135m-instruct" / "SmolLM2-135M-Instruct.Q4_1.gguf"
PINNED = {"llama_cpp_python": "0.3.36", "gguf": "0.19.0", "numpy": "2.4.6"}
TYPES = ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K_S", "Q3_K_M", "Q3_K_L", "Q4_K_S", "Q4_K_M", "Q5_K_S",
         "Q5_K_M", "Q6_K", "IQ4_NL", "IQ4_XS", "F32", "F16", "BF16"]
GQA4_TYPES = ["Q2_K", "Q3_K_M", "IQ4_NL", "IQ4_XS"]   # the file types whose attn_v rule depends on n_gqa() >= 4
FFN = 288   # hidden 256, 4 heads, 2 KV heads: make_quant_fixtures.py's shape


def versions(allow_any):
    from importlib.metadata import version
    found = {"llama_cpp_python": version("llama-cpp-python"), "gguf": version("gguf"), "numpy": np.__version__}
    bad = {k: (found[k], v) for k, v in PINNED.items() if found[k] != v}
    if bad and not allow_any:
        sys.exit(f"version mismatch (found, pinned): {bad}; rerun with --any-version")
    return found


def write_source(path):
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from make_quant_fixtures import write_source as write_one_block
    write_one_block(path, ffn=FFN, dtype=np.float16, seed=20261205, marked_rows=True)


def gqa4_source(src, dst):
    """source_f16.gguf with llama.attention.head_count 8 (KV heads 2: n_gqa() 4) and rope.dimension_count 32 (the
    loader checks it against the head size), the uint32 values patched in place; the tensors are unchanged (the
    quantizer reads only these counts). GGUFQuantizerTests patches the same bytes."""
    raw = src.read_bytes()
    for key, was, now in [(b"llama.attention.head_count", 4, 8), (b"llama.rope.dimension_count", 64, 32)]:
        old = len(key).to_bytes(8, "little") + key + (4).to_bytes(4, "little") + was.to_bytes(4, "little")
        assert raw.count(old) == 1
        raw = raw.replace(old, old[:-4] + now.to_bytes(4, "little"))
    dst.write_bytes(raw)


def quantize(src, dst, kind, pure, requantize=False):
    import llama_cpp
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, "LLAMA_FTYPE_ALL_F32" if kind == "F32" else "LLAMA_FTYPE_MOSTLY_" + kind)
    params.nthread = 2
    params.pure = pure
    params.allow_requantize = requantize
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), params)
    assert rc == 0, f"llama_model_quantize {kind} failed ({rc})"


def describe(path):
    import gguf
    r = gguf.GGUFReader(str(path))
    raw = path.read_bytes()
    tensors = []
    for t in r.tensors:
        data = raw[t.data_offset:t.data_offset + t.n_bytes]
        tensors.append({"name": t.name, "type": t.tensor_type.name, "sha256": hashlib.sha256(data).hexdigest()})
    return {"keys": [k for k in r.fields.keys() if not k.startswith("GGUF.")], "tensors": tensors,
            "file_sha256": hashlib.sha256(raw).hexdigest(), "bytes": len(raw)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--any-version", action="store_true")
    a = ap.parse_args()
    found = versions(a.any_version)
    OUT.mkdir(parents=True, exist_ok=True)
    src = OUT / "source_f16.gguf"
    write_source(src)
    meta = {"generator": "Scripts/make_convert_fixtures.py", "versions": found, "source": src.name, "outputs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in TYPES:
            for pure in (False, True):
                dst = Path(tmp) / f"{kind}-{pure}.gguf"
                quantize(src, dst, kind, pure)
                d = describe(dst)
                meta["outputs"][kind + ("-pure" if pure else "")] = d
                print(kind, "pure" if pure else "mix", sorted({t["type"] for t in d["tensors"]}), d["bytes"])
        meta["gqa4"] = {}
        gqa4 = Path(tmp) / "gqa4.gguf"
        gqa4_source(src, gqa4)
        for kind in GQA4_TYPES:
            dst = Path(tmp) / f"gqa4-{kind}.gguf"
            quantize(gqa4, dst, kind, False)
            meta["gqa4"][kind] = describe(dst)
            print("gqa4", kind, [(t["name"], t["type"]) for t in meta["gqa4"][kind]["tensors"] if "attn_v" in t["name"]])
        meta["smollm2_requantized"] = {}
        for kind in TYPES:
            dst = Path(tmp) / f"smollm2-{kind}.gguf"
            quantize(SMOLLM2, dst, kind, False, requantize=True)
            meta["smollm2_requantized"][kind] = hashlib.sha256(dst.read_bytes()).hexdigest()
    (OUT / "llama_quantize.json").write_text(json.dumps(meta, indent=1) + "\n")
    print("source", src.stat().st_size, "bytes")


if __name__ == "__main__":
    main()
