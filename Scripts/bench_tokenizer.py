#!/usr/bin/env python3
"""Encode throughput: persona's tokenizer vs Hugging Face `tokenizers` on the same text and tokenizer.

Usage: python Scripts/bench_tokenizer.py PERSONA_BINARY TOKENIZER_DIR_OR_GGUF TEXT_FILE
Needs the `tokenizers` package (PyPI). Both encode the file line by line without special tokens.
For a .gguf, HF's side needs a tokenizer.json next to it (pass the folder instead) -- the script skips HF otherwise.
"""
import json, os, subprocess, sys, time

def main():
    persona, model, text_file = sys.argv[1:4]
    lines = [l for l in open(text_file, encoding="utf-8").read().split("\n") if l]
    nbytes = sum(len(l.encode()) for l in lines)
    out = subprocess.run([persona, "tokenize", "--model", model, "--file", text_file, "--bench"],
                         check=True, capture_output=True, text=True).stdout
    ours = json.loads(out)
    row = {"persona_mb_s": ours["mb_per_s"], "persona_tokens": ours["tokens"]}
    tj = os.path.join(model, "tokenizer.json") if os.path.isdir(model) else None
    if tj and os.path.exists(tj):
        from tokenizers import Tokenizer
        tok = Tokenizer.from_file(tj)
        t0 = time.perf_counter()
        n = sum(len(tok.encode(l, add_special_tokens=False).ids) for l in lines)
        dt = time.perf_counter() - t0
        row.update({"hf_mb_s": nbytes / 1e6 / dt, "hf_tokens": n, "ratio_persona_over_hf": ours["mb_per_s"] / (nbytes / 1e6 / dt)})
    print(json.dumps(row, indent=1))

if __name__ == "__main__":
    main()
