#!/usr/bin/env python3
"""llama.cpp's logits for a Gemma-3 GGUF (Gemma3Tests).

Run BY HAND (never in CI; it needs llama-cpp-python, which builds llama.cpp from source), from the repository root:

    /work/V/bin/python Scripts/make_llamacpp_gemma3_logits.py

Pinned environment it was run with (checked at start; pass --any-version to override):
    llama-cpp-python 0.3.36 / gguf 0.19.0 / numpy 2.4.6

Tests/PersonaModelsTests/Fixtures/gemma3 (6 layers, the 6th full attention; sliding window 6; RoPE base 1e6 with
linear factor 8 on the full-attention layer, 1e4 on the sliding ones) is written here as an all-F32 GGUF of
architecture gemma3, the way llama.cpp's convert_hf_to_gguf.py lays it out (own code, gguf-py's writer): llama.cpp's
tensor names, every norm weight stored as 1 + w, no Q/K permutation (Gemma's RoPE is NEOX style in llama.cpp),
gemma3.attention.sliding_window, rope.freq_base, rope.scaling.{type,factor} and vocab_size, no tokenizer. GGUF has no
query_pre_attn_scalar: llama.cpp assumes head_dim (16) for this size, so the folder the test compares is the
fixture with query_pre_attn_scalar 16. llama.cpp runs the fixture's 16 input ids in one batch (f32 K/V cache,
2 threads): `logits` [16, vocab] in Fixtures/gemma3.llamacpp.safetensors. The pattern of sliding layers and the
sliding layers' RoPE base are llama.cpp's own, from no key: that is what the test checks we read the same way.
"""
import argparse
import json
import struct
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "Scripts"))
from check_llamacpp_logits import llama_logits  # noqa: E402
from make_convert_fixtures import versions  # noqa: E402  (the llama-cpp-python / gguf / numpy pins)

FIXTURES = REPO / "Tests" / "PersonaModelsTests" / "Fixtures"
FOLDER = FIXTURES / "gemma3"


def read_bf16_safetensors(path):
    """name -> float32 array (the fixture's weights are bf16, which numpy cannot read directly)."""
    raw = path.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        assert t["dtype"] == "BF16", (name, t["dtype"])
        a, b = t["data_offsets"]
        bits = np.frombuffer(raw[8 + n + a:8 + n + b], dtype=np.uint16).astype(np.uint32) << 16
        out[name] = bits.view(np.float32).reshape(t["shape"])
    return out


def gguf_name(hf):
    if hf == "model.embed_tokens.weight":
        return "token_embd.weight"
    if hf == "model.norm.weight":
        return "output_norm.weight"
    parts = hf.split(".")
    assert parts[:2] == ["model", "layers"], hf
    layer, rest = parts[2], ".".join(parts[3:])
    return f"blk.{layer}." + {
        "input_layernorm.weight": "attn_norm.weight", "self_attn.q_proj.weight": "attn_q.weight",
        "self_attn.k_proj.weight": "attn_k.weight", "self_attn.v_proj.weight": "attn_v.weight",
        "self_attn.o_proj.weight": "attn_output.weight", "self_attn.q_norm.weight": "attn_q_norm.weight",
        "self_attn.k_norm.weight": "attn_k_norm.weight", "post_attention_layernorm.weight": "post_attention_norm.weight",
        "pre_feedforward_layernorm.weight": "ffn_norm.weight", "post_feedforward_layernorm.weight": "post_ffw_norm.weight",
        "mlp.gate_proj.weight": "ffn_gate.weight", "mlp.up_proj.weight": "ffn_up.weight", "mlp.down_proj.weight": "ffn_down.weight",
    }[rest]


def write_gemma3_gguf(dst, cfg, weights):
    import gguf
    w = gguf.GGUFWriter(str(dst), "gemma3")
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(cfg["num_attention_heads"])
    w.add_head_count_kv(cfg["num_key_value_heads"])
    w.add_key_length(cfg["head_dim"])
    w.add_value_length(cfg["head_dim"])
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_rope_freq_base(cfg["rope_theta"])
    w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
    w.add_rope_scaling_factor(cfg["rope_scaling"]["factor"])
    w.add_sliding_window(cfg["sliding_window"])
    w.add_file_type(0)
    w.add_vocab_size(cfg["vocab_size"])   # no tokenizer: llama.cpp takes the vocabulary size from here
    w.add_tokenizer_model("none")
    for name in sorted(weights):
        a = weights[name]
        if name.endswith("norm.weight"):
            a = a + 1.0   # convert_hf_to_gguf.py's Gemma3Model stores (1 + w)
        w.add_tensor(gguf_name(name), np.ascontiguousarray(a, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--any-version", action="store_true")
    a = ap.parse_args()
    found = versions(a.any_version)
    from safetensors.numpy import save_file
    cfg = json.loads((FOLDER / "config.json").read_text())
    assert cfg["model_type"] == "gemma3_text" and cfg["sliding_window_pattern"] == 6 and cfg["rope_local_base_freq"] == 10000
    assert cfg["rope_scaling"] == {"factor": 8.0, "rope_type": "linear"}, cfg["rope_scaling"]
    ids = json.loads((FOLDER / "reference.json").read_text())["input_ids"]
    weights = read_bf16_safetensors(FOLDER / "model.safetensors")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "gemma3.gguf"
        write_gemma3_gguf(path, cfg, weights)
        logits = llama_logits(path, ids)
    out = FIXTURES / "gemma3.llamacpp.safetensors"
    save_file({"logits": logits.astype(np.float32)}, str(out),
              metadata={"generator": f"Scripts/make_llamacpp_gemma3_logits.py, llama-cpp-python {found['llama_cpp_python']}",
                        "input_ids": ",".join(map(str, ids))})
    print(f"{len(ids)} ids, logits std {logits.std():.3f}, written to {out.relative_to(REPO)}")


if __name__ == "__main__":
    main()
