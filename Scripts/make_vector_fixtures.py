#!/usr/bin/env python3
"""Reference fixtures for Tests/PersonaCoreTests (VectorFilesTests), written by independent tools:
torch.save (persona_vectors .pt files), the `gguf` package used the way llama.cpp's cvector-generator
and repeng write control vectors, and the `safetensors` package for our own vector format.
Run by hand, not in CI:

    /work/V/bin/python Scripts/make_vector_fixtures.py

Last run with: Python 3, torch 2.13.0+cpu, gguf 0.19.0, safetensors 0.8.0, numpy 2.4.6.
Writes small files under Tests/PersonaCoreTests/Fixtures/vectors plus expected.json, which holds
every tensor's values as the writing library sees them (bf16/f16 already widened to float32 by torch/numpy).
"""
import json
from pathlib import Path

import gguf
import numpy as np
import safetensors
import torch
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "Tests" / "PersonaCoreTests" / "Fixtures" / "vectors"


def f32_list(t):
    """Rows of a tensor as exact float32 values (JSON doubles hold float32 exactly)."""
    return [[float(x) for x in row] for row in t.float().tolist()]


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    expected = {}

    # 1. persona_vectors layout: torch.save of one [L+1, hidden] float32 tensor, named
    #    {trait}_{method}_diff.pt. L = 3 blocks, hidden 8; value = row + col/8 - 0.5 (exact in f32).
    L, H = 3, 8
    t = torch.tensor([[r + c / 8.0 - 0.5 for c in range(H)] for r in range(L + 1)], dtype=torch.float32)
    torch.save(t, OUT / "evil_response_avg_diff.pt")
    expected["evil_response_avg_diff.pt"] = {"trait": "evil", "method": "response_avg", "rows": f32_list(t)}

    # 2. The same layout in bfloat16 (random values, so the bf16 rounding is exercised).
    g = torch.Generator().manual_seed(1234)
    tb = torch.randn(L + 1, H, generator=g).to(torch.bfloat16)
    torch.save(tb, OUT / "humorous_prompt_last_diff.pt")
    expected["humorous_prompt_last_diff.pt"] = {"trait": "humorous", "method": "prompt_last", "rows": f32_list(tb)}

    # 3. llama.cpp cvector-generator style: a model with n_layers = 5 blocks gets n_layers - 1 = 4
    #    tensors direction.1 .. direction.4 and controlvector.layer_count = 4 (int32), model_hint string.
    n_layers, n_embd = 5, 8
    rng = np.random.default_rng(42)
    w = gguf.GGUFWriter(str(OUT / "cvgen_happy.gguf"), "controlvector")
    w.add_string("controlvector.model_hint", "llama")
    w.add_int32("controlvector.layer_count", n_layers - 1)
    dirs = {}
    for il in range(1, n_layers):
        d = rng.standard_normal(n_embd).astype(np.float32)
        dirs[il] = d
        w.add_tensor(f"direction.{il}", d)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    expected["cvgen_happy.gguf"] = {
        "n_layers": n_layers, "model_hint": "llama",
        "directions": {str(k): [float(x) for x in v] for k, v in dirs.items()},
    }

    # 4. repeng style: directions for a subset of layers, layer_count = len(directions) (uint32),
    #    which is not the model depth; one direction stored as f16 (llama.cpp needs F32; we widen).
    w = gguf.GGUFWriter(str(OUT / "repeng_calm.gguf"), "controlvector")
    w.add_string("controlvector.model_hint", "mistral")
    w.add_uint32("controlvector.layer_count", 2)
    d2 = rng.standard_normal(n_embd).astype(np.float32)
    d3 = rng.standard_normal(n_embd).astype(np.float16)
    w.add_tensor("direction.2", d2)
    w.add_tensor("direction.3", d3)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    expected["repeng_calm.gguf"] = {
        "model_hint": "mistral",
        "directions": {"2": [float(x) for x in d2], "3": [float(x) for x in d3.astype(np.float32)]},
    }

    # 5. Not a control vector: a GGUF whose architecture is a model.
    w = gguf.GGUFWriter(str(OUT / "not_a_vector.gguf"), "llama")
    w.add_block_count(2)
    w.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    # 6. Our format written by the python safetensors package from the spec in docs/vector-format.md:
    #    one F32 and one BF16 vector (loader widens BF16), per-vector JSON metadata.
    a = torch.tensor([[(r * 3 + c) / 4.0 for c in range(H)] for r in range(L + 1)], dtype=torch.float32)
    b = torch.randn(L + 1, H, generator=g).to(torch.bfloat16)
    meta = {
        "format": "personascope.vectors/1",
        "convention": "HF hidden-state rows; row l = blocks.{l-1}.hook_resid_post",
        "optimistic.response_avg": json.dumps({
            "model": "tiny/test", "trait": "optimistic", "method": "response_avg",
            "samples_pos": 12, "samples_neg": 10, "norms": [float(x) for x in a.norm(dim=1)],
            "recommended_row": 2, "recommended_hook": "blocks.1.hook_resid_post",
            "positive_meaning": "more optimistic", "source": "python fixture"}),
        "sycophantic.prompt_avg": json.dumps({"trait": "sycophantic", "method": "prompt_avg"}),
    }
    save_file({"optimistic.response_avg": a, "sycophantic.prompt_avg": b}, str(OUT / "python_written.safetensors"),
              metadata=meta)
    expected["python_written.safetensors"] = {
        "optimistic.response_avg": f32_list(a), "sycophantic.prompt_avg": f32_list(b)}

    # 7. A torch file holding something other than a tensor.
    torch.save({"layers": [1, 2, 3]}, OUT / "not_a_tensor.pt")

    (OUT / "expected.json").write_text(json.dumps(expected, indent=1, sort_keys=True) + "\n")
    print("torch", torch.__version__, "gguf", getattr(gguf, "__version__", "0.19.0"),
          "safetensors", safetensors.__version__, "numpy", np.__version__)
    for p in sorted(OUT.iterdir()):
        print(p.name, p.stat().st_size)


if __name__ == "__main__":
    main()
