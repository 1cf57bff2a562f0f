#!/usr/bin/env python3
"""GGUF files quantised by llama.cpp's own quantizer, and transformers' outputs for each (PersonaModelsTests).

Run BY HAND (never in CI), from the repository root:

    /work/V/bin/python Scripts/make_quant_fixtures.py

Pinned environment it was run with (checked at start; pass --any-version to override):
    llama-cpp-python 0.3.36 (llama.cpp's quantizer, llama_model_quantize) / gguf 0.19.0 / torch 2.15.0 /
    transformers 5.25.0 / numpy 2.4.6

What it does:
  1. writes a small random Llama in F32 (1 block, hidden 256 so that every K- and IQ-type applies, 4 heads /
     2 KV heads, feed-forward 256, tied embeddings, stories260K's 512-token vocabulary and tokenizer metadata);
  2. quantises it with llama.cpp to Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K_M, Q4_K_M, Q5_K_M, Q6_K, IQ4_NL and
     IQ4_XS (llama.cpp picks per-tensor types as it does for real files: the *_K_M mixes use other types for some
     tensors), written to Tests/PersonaModelsTests/Fixtures/quant/<type>.gguf;
  3. for each file, transformers' GGUF loader (gguf-py dequantises every tensor to float32, Q/K permutation undone)
     runs 8 fixed token ids in float32, eager, one thread: hidden_states.{0,1} and logits go to
     quant/<type>.reference.safetensors, the tensor types found in the file to quant/references.json.
"""
import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "Tests" / "PersonaModelsTests" / "Fixtures" / "quant"
STORIES = REPO.parent / "shared" / "models" / "stories260K" / "stories260K.gguf"
PINNED = {"llama_cpp_python": "0.3.36", "gguf": "0.19.0", "torch": "2.15.0", "transformers": "5.25.0", "numpy": "2.4.6"}
TYPES = ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K_M", "Q4_K_M", "Q5_K_M", "Q6_K", "IQ4_NL", "IQ4_XS"]
IDS = [1, 403, 407, 261, 378, 17, 200, 511]
HIDDEN, FFN, HEADS, KV_HEADS = 256, 256, 4, 2


def versions(allow_any):
    from importlib.metadata import version
    import torch
    import transformers
    found = {"llama_cpp_python": version("llama-cpp-python"), "gguf": version("gguf"), "torch": torch.__version__.split("+")[0],
             "transformers": transformers.__version__, "numpy": np.__version__}
    bad = {k: (found[k], v) for k, v in PINNED.items() if found[k] != v}
    if bad and not allow_any:
        sys.exit(f"version mismatch (found, pinned): {bad}; rerun with --any-version")
    return found


def write_source(path, ffn=FFN, dtype=np.float32, seed=20261204, marked_rows=False):
    """The one-block model (F32 by default), with stories260K's tokenizer so llama.cpp's loader accepts it.
    Scripts/make_convert_fixtures.py writes its F16 source with this too (marked_rows: an all-zero block and a block
    of evenly spaced values at the start of every matrix)."""
    import gguf
    src = gguf.GGUFReader(str(STORIES))
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_context_length(256)
    w.add_embedding_length(HIDDEN)
    w.add_block_count(1)
    w.add_feed_forward_length(ffn)
    w.add_head_count(HEADS)
    w.add_head_count_kv(KV_HEADS)
    w.add_rope_dimension_count(HIDDEN // HEADS)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(0 if dtype == np.float32 else 1)
    copy = {"tokenizer.ggml.model": w.add_tokenizer_model, "tokenizer.ggml.tokens": w.add_token_list,
            "tokenizer.ggml.scores": w.add_token_scores, "tokenizer.ggml.token_type": w.add_token_types,
            "tokenizer.ggml.bos_token_id": w.add_bos_token_id, "tokenizer.ggml.eos_token_id": w.add_eos_token_id}
    for name, field in src.fields.items():   # in the source file's order
        if name in copy:
            copy[name](field.contents())
    vocab = len(src.fields["tokenizer.ggml.tokens"].contents())
    rng = np.random.default_rng(seed)
    kv = KV_HEADS * (HIDDEN // HEADS)

    def mat(rows, cols, scale=0.08):
        m = rng.standard_normal((rows, cols)) * scale
        if marked_rows:
            m[0, :32] = 0                       # an all-zero block
            m[1, :32] = np.linspace(-1, 1, 32)  # ties and exact levels
        return m.astype(dtype)

    def norm(n):
        return (1 + 0.1 * rng.standard_normal(n)).astype(np.float32)

    w.add_tensor("token_embd.weight", mat(vocab, HIDDEN, 0.5))
    w.add_tensor("blk.0.attn_norm.weight", norm(HIDDEN))
    w.add_tensor("blk.0.attn_q.weight", mat(HIDDEN, HIDDEN))
    w.add_tensor("blk.0.attn_k.weight", mat(kv, HIDDEN))
    w.add_tensor("blk.0.attn_v.weight", mat(kv, HIDDEN))
    w.add_tensor("blk.0.attn_output.weight", mat(HIDDEN, HIDDEN))
    w.add_tensor("blk.0.ffn_norm.weight", norm(HIDDEN))
    w.add_tensor("blk.0.ffn_gate.weight", mat(ffn, HIDDEN))
    w.add_tensor("blk.0.ffn_up.weight", mat(ffn, HIDDEN))
    w.add_tensor("blk.0.ffn_down.weight", mat(HIDDEN, ffn))
    w.add_tensor("output_norm.weight", norm(HIDDEN))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def quantize(src, dst, kind):
    import llama_cpp
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, "LLAMA_FTYPE_MOSTLY_" + kind)
    params.nthread = 2
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), params)
    assert rc == 0, f"llama_model_quantize {kind} failed ({rc})"


def reference(folder, name):
    import torch
    from transformers import AutoModelForCausalLM
    m = AutoModelForCausalLM.from_pretrained(str(folder), gguf_file=name, dtype=torch.float32, attn_implementation="eager")
    m.eval()
    with torch.no_grad():
        out = m(input_ids=torch.tensor([IDS]), output_hidden_states=True, use_cache=False)
    t = {f"hidden_states.{i}": h[0].float().contiguous().numpy() for i, h in enumerate(out.hidden_states)}
    t["logits"] = out.logits[0].float().contiguous().numpy()
    return t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--any-version", action="store_true")
    a = ap.parse_args()
    found = versions(a.any_version)
    import gguf
    import torch
    from safetensors.numpy import save_file
    from transformers.utils import logging as hf_logging
    hf_logging.disable_progress_bar()
    torch.set_num_threads(1)
    OUT.mkdir(parents=True, exist_ok=True)
    meta = {"generator": "Scripts/make_quant_fixtures.py", "versions": found, "input_ids": IDS, "files": {},
            "note": "quantised by llama.cpp (llama_model_quantize); references: transformers' GGUF loader (gguf-py dequantisation), float32"}
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "source-f32.gguf"
        write_source(src)
        for kind in TYPES:
            name = kind.lower() + ".gguf"
            dst = OUT / name
            quantize(src, dst, kind)
            types = sorted({t.tensor_type.name for t in gguf.GGUFReader(str(dst)).tensors})
            link = Path(tmp) / kind
            link.mkdir()
            os.symlink(dst, link / name)
            save_file(reference(link, name), str(OUT / (kind.lower() + ".reference.safetensors")),
                      metadata={"generator": "Scripts/make_quant_fixtures.py"})
            meta["files"][name] = {"ftype": kind, "tensor_types": types, "bytes": dst.stat().st_size}
            print(f"{kind}: {types}, {dst.stat().st_size} bytes")
    (OUT / "references.json").write_text(json.dumps(meta, indent=1) + "\n")
    total = sum(p.stat().st_size for p in OUT.iterdir())
    print(f"total {total} bytes")


if __name__ == "__main__":
    main()
