#!/usr/bin/env python3
"""Reference fixtures for Tests/PersonaFormatsTests, produced by independent readers/writers
(the `gguf`, `safetensors` and `torch` Python packages). Run by hand, not in CI:

    /work/V/bin/python Scripts/make_format_fixtures.py

Last run with: Python 3, gguf 0.19.0, safetensors 0.8.0 (package version printed below), torch 2.13.0+cpu, numpy.
Reads /work/shared (or $PERSONA_SHARED) and writes small files under Tests/PersonaFormatsTests/Fixtures.
"""
import json
import os
import struct
import sys
from pathlib import Path

import gguf
import numpy as np
import safetensors
import torch
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("PERSONA_SHARED", ROOT.parent / "shared"))
OUT = ROOT / "Tests" / "PersonaFormatsTests" / "Fixtures"


def field_value(f):
    """Decode a GGUFReader field into plain JSON values."""
    t = f.types[0]
    if t == gguf.GGUFValueType.ARRAY:
        et = f.types[-1]
        if et == gguf.GGUFValueType.STRING:
            return [bytes(f.parts[i]).decode("utf-8", errors="replace") for i in f.data]
        return [f.parts[i].tolist()[0] for i in f.data]
    if t == gguf.GGUFValueType.STRING:
        return bytes(f.parts[f.data[0]]).decode("utf-8", errors="replace")
    return f.parts[f.data[0]].tolist()[0]


def sample(arr):
    """A few values spread through a tensor (flat, row-major) as float64, for exact comparison."""
    flat = np.asarray(arr, dtype=np.float32).reshape(-1)
    idx = sorted({0, 1, len(flat) // 3, len(flat) // 2, len(flat) - 1})
    return {"indices": idx, "values": [float(flat[i]) for i in idx], "sum": float(flat.astype(np.float64).sum())}


def gguf_fixture():
    path = SHARED / "models" / "stories260K" / "stories260K.gguf"
    r = gguf.GGUFReader(str(path))
    meta = {}
    for k, f in r.fields.items():
        if k.startswith("GGUF."):
            continue
        v = field_value(f)
        if isinstance(v, list):
            meta[k] = {"type": int(f.types[-1]), "array": True, "count": len(v), "head": v[:5], "tail": v[-3:]}
        else:
            if isinstance(v, float):
                v = float(np.float32(v))
            meta[k] = {"type": int(f.types[0]), "value": v}
    tensors = []
    for t in r.tensors:
        data = np.asarray(t.data)
        tensors.append({
            "name": t.name,
            "ggml_type": int(t.tensor_type),
            "shape": list(data.shape),  # numpy order: outermost first
            "n_bytes": int(t.n_bytes),
            "file_offset": int(t.data_offset),
            "sample": sample(data),
        })
    return {
        "file": "models/stories260K/stories260K.gguf",
        "version": int(r.fields["GGUF.version"].parts[-1][0]),
        "metadata": meta,
        "tensors": tensors,
    }


def vocab_fixture():
    out = {}
    for p in sorted((SHARED / "reference" / "llama.cpp-vocab").glob("*.gguf")):
        r = gguf.GGUFReader(str(p))
        d = {"kv_count": len([k for k in r.fields if not k.startswith("GGUF.")]), "tensor_count": len(r.tensors)}
        for k in ["general.architecture", "tokenizer.ggml.model", "tokenizer.ggml.pre",
                  "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id"]:
            if k in r.fields:
                d[k] = field_value(r.fields[k])
        for k in ["tokenizer.ggml.tokens", "tokenizer.ggml.merges", "tokenizer.ggml.scores", "tokenizer.ggml.token_type"]:
            if k in r.fields:
                v = field_value(r.fields[k])
                d[k] = {"count": len(v), "head": v[:3], "tail": v[-2:], "mid_index": len(v) // 2, "mid": v[len(v) // 2]}
        out[p.name] = d
    return out


def safetensors_fixtures():
    torch.manual_seed(1234)
    tensors = {
        "a.f32": torch.randn(3, 5, dtype=torch.float32),
        "b.f16": torch.randn(4, 2, dtype=torch.float32).to(torch.float16),
        "c.bf16": torch.randn(2, 3, 2, dtype=torch.float32).to(torch.bfloat16),
        "d.scalar": torch.tensor(2.5, dtype=torch.float32),
        "e.empty": torch.zeros(0, 4, dtype=torch.float32),
        "f.vec": torch.arange(7, dtype=torch.float32) - 3.0,
    }
    meta = {"format": "pt", "note": "PersonaFormats fixture"}
    save_file(tensors, str(OUT / "small.safetensors"), metadata=meta)
    expected = {"metadata": meta, "tensors": {}}
    for k, t in tensors.items():
        raw = t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        expected["tensors"][k] = {
            "dtype": {torch.float32: "f32", torch.float16: "f16", torch.bfloat16: "bf16"}[t.dtype],
            "shape": list(t.shape),
            "hex": raw.hex(),
            "values": [float(x) for x in t.float().reshape(-1).tolist()],
        }
    # A sharded folder as transformers writes it: two shards + index.json.
    sd = OUT / "sharded"
    sd.mkdir(exist_ok=True)
    shard1 = {"model.embed.weight": torch.arange(6, dtype=torch.float32).reshape(2, 3),
              "model.layers.0.w": torch.ones(2, 2, dtype=torch.float16)}
    shard2 = {"model.layers.1.w": torch.full((3,), -1.5, dtype=torch.bfloat16)}
    save_file(shard1, str(sd / "model-00001-of-00002.safetensors"), metadata={"format": "pt"})
    save_file(shard2, str(sd / "model-00002-of-00002.safetensors"), metadata={"format": "pt"})
    wm = {k: "model-00001-of-00002.safetensors" for k in shard1}
    wm.update({k: "model-00002-of-00002.safetensors" for k in shard2})
    (sd / "model.safetensors.index.json").write_text(json.dumps({"metadata": {"total_size": 0}, "weight_map": wm}, indent=2))
    expected["sharded"] = {k: [float(x) for x in v.float().reshape(-1).tolist()] for k, v in {**shard1, **shard2}.items()}
    return expected


def torch_fixtures():
    """torch.save archives (zip, stored entries) and a few files our reader must refuse."""
    import pickle
    import zipfile
    td = OUT / "torch"
    td.mkdir(exist_ok=True)
    torch.manual_seed(99)
    base = torch.randn(3, 4)
    files = {
        # persona_vectors saves one [layers + 1, hidden] tensor per trait.
        "vector.pt": torch.randn(6, 8),
        "dict.pt": {"a": torch.randn(2, 3).half(), "b": torch.randn(5).bfloat16(), "row": base[1], "scalar": torch.tensor(-0.75)},
        "layers.pt": {0: torch.arange(4, dtype=torch.float32), 7: torch.ones(2, 2)},
    }
    expected = {}
    for name, obj in files.items():
        torch.save(obj, str(td / name))
        items = obj.items() if isinstance(obj, dict) else [("", obj)]
        expected[name] = {
            str(k): {
                "dtype": {torch.float32: "f32", torch.float16: "f16", torch.bfloat16: "bf16"}[v.dtype],
                "shape": list(v.shape),
                "hex": v.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes().hex(),
            }
            for k, v in items
        }
    # Must be refused: non-contiguous view, legacy format, deflated zip, a pickle that would run code.
    torch.save(base.t(), str(td / "bad_noncontiguous.pt"))
    torch.save(base, str(td / "bad_legacy.pt"), _use_new_zipfile_serialization=False)
    with zipfile.ZipFile(td / "vector.pt") as z, zipfile.ZipFile(td / "bad_deflated.pt", "w", zipfile.ZIP_DEFLATED) as out:
        for info in z.infolist():
            out.writestr(info.filename, z.read(info.filename))

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo should-never-run",))

    with zipfile.ZipFile(td / "bad_evil.pt", "w", zipfile.ZIP_STORED) as out:
        out.writestr("bad_evil/data.pkl", pickle.dumps(Evil(), protocol=2))
        out.writestr("bad_evil/byteorder", "little")
    return expected


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    fx = {
        "versions": {"gguf": "0.19.0", "safetensors": safetensors.__version__, "torch": torch.__version__},
        "stories260K": gguf_fixture(),
        "vocab": vocab_fixture(),
        "safetensors": safetensors_fixtures(),
        "torch": torch_fixtures(),
    }
    (OUT / "formats_expected.json").write_text(json.dumps(fx, indent=1, ensure_ascii=False) + "\n")
    print("wrote", OUT)


if __name__ == "__main__":
    main()
