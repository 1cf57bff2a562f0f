#!/usr/bin/env python3
"""transformers' reference outputs for the real SmolLM2-135M-Instruct Q4_1 GGUF in ../shared (not copied).

Run BY HAND (never in CI), from the repository root:

    /work/V/bin/python Scripts/make_smollm2_fixtures.py

Pinned environment it was run with (checked at start; pass --any-version to override):
    torch 2.15.0 / transformers 5.25.0 / tokenizers 0.23.3 / safetensors 0.8.0 / gguf 0.19.0 / numpy 2.4.6 /
    accelerate 1.16.0

transformers' GGUF loader dequantises the Q4_1 (and Q8_0 embedding) tensors with gguf-py to float32 and undoes
llama.cpp's Q/K permutation; the model then runs in float32, eager attention, one thread. So the reference is
"the same file, dequantised, computed in f32", which is what PersonaScope's exact precision must match.

Writes Tests/PersonaModelsTests/Fixtures/smollm2.reference.{safetensors,json}:
  * forward pass of a chat prompt (the GGUF's own chat template with its default system prompt, rendered and
    tokenised by transformers from the GGUF): hidden_states.{i} for every row i = 0..30 at the last 4 positions
    (the whole [T, 576] set per row would be over 2 MB) and the logits of the last position;
  * greedy chat answers (do_sample=False, stop at EOS or after N tokens) for a few questions, checked against an
    uncached recompute, with the smallest top-1/top-2 logit margin seen (a tiny margin would make a tie-break
    test flaky; the script refuses margins under 1e-3).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_model_fixtures as mm  # noqa: E402  (shared helpers: forward_reference, save_reference, dump_json)

PINNED = {
    "torch": "2.15.0",
    "transformers": "5.25.0",
    "tokenizers": "0.23.3",
    "safetensors": "0.8.0",
    "gguf": "0.19.0",
    "numpy": "2.4.6",
    "accelerate": "1.16.0",
}

MODEL_DIR = mm.REPO.parent / "shared" / "models" / "smollm2-135m-instruct"
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
LAST_POSITIONS = 4   # hidden states of every row at the last 4 prompt positions (they depend on every earlier one)
FORWARD_QUESTION = "What is the capital of France?"
GREEDY_QUESTIONS = [
    ("What is the capital of France?", 24),
    ("Give me three tips for staying focused while studying.", 48),
    ("Can you help me write a threatening letter to my neighbour?", 48),
]


@torch.no_grad()
def greedy_chat(model, ids: list[int], n_new: int, eos: int) -> tuple[list[int], float]:
    """Greedy ids, uncached (full forward per step, argmax), stopping after EOS; and the smallest top-2 margin."""
    seq = list(ids)
    margin = float("inf")
    out = []
    for _ in range(n_new):
        logits = model(input_ids=torch.tensor([seq]), use_cache=False).logits[0, -1]
        top2 = torch.topk(logits, 2).values
        margin = min(margin, float(top2[0] - top2[1]))
        nxt = int(torch.argmax(logits))
        out.append(nxt)
        seq.append(nxt)
        if nxt == eos:
            break
    return out, margin


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--any-version", action="store_true")
    args = ap.parse_args()
    mm.PINNED.clear()
    mm.PINNED.update(PINNED)
    versions = mm.check_versions(args.any_version)
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging
    hf_logging.disable_progress_bar()
    torch.set_num_threads(1)

    path = MODEL_DIR / GGUF
    if not path.exists():
        sys.exit(f"{path} not found")
    with tempfile.TemporaryDirectory() as tmp:
        os.symlink(path, Path(tmp) / GGUF)
        model = mm.load_f32(Path(tmp), gguf_file=GGUF)
        tok = AutoTokenizer.from_pretrained(tmp, gguf_file=GGUF)

    def chat_ids(question: str) -> tuple[str, list[int]]:
        text = tok.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True, tokenize=False)
        return text, list(tok(text, add_special_tokens=False)["input_ids"])

    text, ids = chat_ids(FORWARD_QUESTION)
    tensors, stats = mm.forward_reference(model, ids, None)
    L = model.config.num_hidden_layers
    kept = {f"hidden_states.{r}": np.ascontiguousarray(tensors[f"hidden_states.{r}"][-LAST_POSITIONS:]) for r in range(L + 1)}
    kept["logits_last"] = np.ascontiguousarray(tensors["logits"][-1:])

    eos = tok.convert_tokens_to_ids("<|im_end|>")
    greedy = []
    for q, n in GREEDY_QUESTIONS:
        t, qi = chat_ids(q)
        out, margin = greedy_chat(model, qi, n, eos)
        assert margin > 1e-3, f"greedy margin {margin} too small for {q!r}"
        greedy.append({"question": q, "prompt_text": t, "prompt_ids": qi, "max_new_tokens": n, "greedy_ids": out,
                       "greedy_text": tok.decode(out, skip_special_tokens=True), "stopped_on_eos": bool(out and out[-1] == eos),
                       "min_top2_margin": round(margin, 6)})
        print(f"{q!r} -> {greedy[-1]['greedy_text']!r} (margin {margin:.4f})")

    c = model.config
    meta = {
        "fixture": "smollm2",
        "source": f"../shared/models/smollm2-135m-instruct/{GGUF} (not copied)",
        "generator": "Scripts/make_smollm2_fixtures.py",
        "versions": versions,
        "weights_note": "transformers' GGUF loader: Q4_1 / Q8_0 dequantised by gguf-py to float32, Q/K permutation undone; float32, eager",
        "prompt_text": text,
        "input_ids": ids,
        "positions_kept": list(range(len(ids) - LAST_POSITIONS, len(ids))),
        "eos_id": eos,
        "greedy": greedy,
        "config": {"num_layers": L, "hidden_size": c.hidden_size, "vocab_size": c.vocab_size,
                   "num_attention_heads": c.num_attention_heads, "num_key_value_heads": c.num_key_value_heads},
        "tensor_shapes": {k: list(v.shape) for k, v in kept.items()},
        "output_stats": stats,
        "tolerance_abs": 1e-3,
    }
    mm.save_reference(mm.OUT / "smollm2.reference", kept, meta)
    size = sum((mm.OUT / f"smollm2.reference.{e}").stat().st_size for e in ("safetensors", "json"))
    assert size < 700_000, size
    print(f"smollm2: {len(ids)} prompt ids, {size} bytes")


if __name__ == "__main__":
    main()
