#!/usr/bin/env python3
"""Steering checked against llama.cpp: our exported control vector, applied by llama.cpp, steers as `persona` does.

For a trait vector (default: the shipped SmolLM2 evil vector) and a coefficient:
  1. `persona convert VEC --to control-vector --rows R --coef C` writes a llama.cpp control vector holding only
     row R: direction.(R-1) = C * v[R]. Each of --rows in turn (default: the vector's recommended row and the
     middle row L/2: steering the prompt's positions matters little near the last block, much in the middle).
  2. `persona monitor --steer TRAIT:C@R:all --precision native --kv-cache f16 --temperature 0` generates, steering
     every position at blocks.(R-1).hook_resid_post (and once unsteered).
  3. llama-cpp-python loads the same GGUF, applies the file's directions with llama_set_adapter_cvec (as
     `llama-cli --control-vector` does: direction.N added to block N's output at every position), feeds the
     same prompt ids and decodes greedily (and once with no control vector).
The two greedy continuations must agree, steered and unsteered, and steering must change the text. Native
precision and the f16 cache round as llama.cpp does, but sums run in another order, so a near-tie can go either
way: a continuation may differ only at a token where both sides' top-2 margin (log-probability, persona's from
its run JSON, llama.cpp's from its logits) is under twice the largest difference between the two sides'
log-probabilities of the tokens they agreed on, over both continuations (their measured disagreement on this
run; at least --tie), and the comparison stops there.

Run by hand (needs llama-cpp-python, e.g. /work/V), from the repository root:
    swift build -c release --product persona
    /work/V/bin/python Scripts/check_control_vector_llamacpp.py --persona .build/release/persona
Checked with llama-cpp-python 0.3.36.
"""
import argparse
import ctypes
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import gguf
import llama_cpp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ap = argparse.ArgumentParser()
ap.add_argument("--persona", default=os.path.join(ROOT, ".build/release/persona"))
ap.add_argument("--model", default=os.path.join(os.path.dirname(ROOT), "shared/models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf"))
ap.add_argument("--vectors", default=os.path.join(ROOT, "examples/vectors/smollm2/evil.safetensors"))
ap.add_argument("--trait", default="evil")
ap.add_argument("--coef", type=float, default=8.0)
ap.add_argument("--rows", default=None, help="HF rows to check, e.g. 29,15 (default: the vector's recommended row and L/2)")
ap.add_argument("--prompt", default="How should I treat my rivals?")
ap.add_argument("--tokens", type=int, default=32)
ap.add_argument("--tie", type=float, default=0.05, help="smallest top-2 margin (nats) that is never a tie")
args = ap.parse_args()


def persona_run(tmp, steer):
    out = os.path.join(tmp, "run-%s.json" % ("steered" if steer else "plain"))
    cmd = [args.persona, "monitor", "--model", args.model, "--vectors", args.vectors, "--traits", args.trait,
           "--prompt", args.prompt, "--max-tokens", str(args.tokens), "--temperature", "0",
           "--precision", "native", "--kv-cache", "f16", "--out", out]
    if steer:
        cmd += ["--steer", steer]
    subprocess.run(cmd, check=True, capture_output=True)
    return json.load(open(out))


def llama_greedy(llm, prompt_ids, n):
    """Greedy ids, each pick's top-2 margin and its log-probability."""
    llm.reset()
    llm.eval(prompt_ids)
    ids, margins, logprobs = [], [], []
    for _ in range(n):
        logits = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float64)
        top2 = np.sort(logits)[-2:]
        tok = int(np.argmax(logits))
        ids.append(tok)
        margins.append(float(top2[1] - top2[0]))
        logprobs.append(float(logits[tok] - top2[1] - np.log(np.exp(logits - top2[1]).sum())))
        if tok == llm.token_eos():
            break
        llm.eval([tok])
    return ids, margins, logprobs


def first_difference(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def compare(llm, name, ours, ref, margins, bound):
    """Prints how persona's greedy run compares with llama.cpp's; True if the same or parted at a tie."""
    d = first_difference(ours["token_ids"], ref)
    if d is None:
        print("  %-8s same %d ids: %r" % (name, len(ref), ours["response"][:70]))
        return True
    top = ours["top_k"][d] if d < len(ours["top_k"]) else []
    ours_margin = top[0]["logprob"] - top[1]["logprob"] if len(top) > 1 else float("inf")
    tie = d < len(margins) and margins[d] < bound and ours_margin < bound
    print("  %-8s same first %d ids, then %s (top-2 margins: persona %.3f, llama.cpp %.3f): %r" % (
        name, d, "a tie" if tie else "DIFFERENT", ours_margin, margins[d] if d < len(margins) else float("nan"),
        ours["response"][:70]))
    print("           llama.cpp %r" % llm.detokenize(ref).decode("utf-8", "replace")[:70])
    return tie


def agreed_spread(ours, ref, lps):
    """Largest |persona - llama.cpp| log-probability over the tokens both picked before they part."""
    d = first_difference(ours["token_ids"], ref)
    n = len(ref) if d is None else d
    return max([abs(a - b) for a, b in zip(ours["logprobs"][:n], lps[:n])] or [0])


def main():
    llm = llama_cpp.Llama(args.model, n_ctx=512, n_threads=2, logits_all=True, verbose=False)
    n_embd, n_layer = llm.n_embd(), llama_cpp.llama_model_n_layer(llm.model)
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        plain = persona_run(tmp, None)
        prompt_ids = plain["prompt_token_ids"]
        llama_cpp.llama_set_adapter_cvec(llm.ctx, None, 0, n_embd, 1, n_layer)
        ref_plain, m_plain, lp_plain = llama_greedy(llm, prompt_ids, args.tokens)
        rows = [int(r) for r in args.rows.split(",")] if args.rows else [plain["layers"][args.trait], n_layer // 2]
        for row in rows:
            cv = os.path.join(tmp, "cv%d.gguf" % row)
            subprocess.run([args.persona, "convert", args.vectors, "--to", "control-vector", "--trait", args.trait,
                            "--rows", str(row), "--coef", str(args.coef), "--out", cv], check=True, capture_output=True)
            steered = persona_run(tmp, "%s:%g@%d:all" % (args.trait, args.coef, row))
            assert steered["prompt_token_ids"] == prompt_ids
            data = np.zeros(n_embd * n_layer, dtype=np.float32)   # direction.N at offset n_embd * (N - 1)
            names = []
            for t in gguf.GGUFReader(cv).tensors:
                n = int(t.name.split(".")[1])
                data[n_embd * (n - 1): n_embd * n] = np.asarray(t.data, dtype=np.float32)
                names.append(t.name)
            assert names == ["direction.%d" % (row - 1)], names
            ptr = data.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
            assert llama_cpp.llama_set_adapter_cvec(llm.ctx, ptr, data.size, n_embd, 1, n_layer) == 0
            ref_steered, m_steered, lp_steered = llama_greedy(llm, prompt_ids, args.tokens)
            llama_cpp.llama_set_adapter_cvec(llm.ctx, None, 0, n_embd, 1, n_layer)

            pooled = max(agreed_spread(plain, ref_plain, lp_plain), agreed_spread(steered, ref_steered, lp_steered))
            bound = max(2 * pooled, args.tie)
            print("row %d, coef %g: log-probabilities of the tokens both picked differ by at most %.3f (a tie: margin < %.3f)"
                  % (row, args.coef, pooled, bound))
            ok &= compare(llm, "plain", plain, ref_plain, m_plain, bound)
            ok &= compare(llm, "steered", steered, ref_steered, m_steered, bound)
            changed = plain["token_ids"] != steered["token_ids"]
            ok &= changed
            print("  steering %s the continuation" % ("changes" if changed else "does NOT change"))
    print("all agree" if ok else "DIFFERENCES")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
