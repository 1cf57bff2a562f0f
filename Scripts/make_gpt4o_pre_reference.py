#!/usr/bin/env python3
"""Writes Tests/PersonaTokenizersTests/Fixtures/gguf_gpt4o/expected.json: HF `tokenizers`' ids for llama.cpp's tokenizer
test texts (../shared/reference/llama.cpp-vocab/ggml-vocab-qwen2.gguf.inp) under the o200k / gpt-4o pre-tokenizer
(GGUF `tokenizer.ggml.pre` "gpt-4o": gpt-oss, Llama-4), with the qwen2 test vocabulary's BPE (the only large byte-level
vocabulary there): a Split on the tokenizer.json regex of those models, then ByteLevel without its own regex, as their
tokenizer.json files chain them. Only ids are written (the texts stay in ../shared).

Run by hand (not in CI):  /work/LM/bin/python Scripts/make_gpt4o_pre_reference.py --llama-cpp <llama.cpp source tree>
Pinned: tokenizers 0.23.x, gguf-py of llama-cpp-python 0.3.36.
"""
import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "reference" / "llama.cpp-vocab"
# the pre-tokenizer regex of gpt-oss's and Llama-4's tokenizer.json (o200k)
GPT4O = (r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
         r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
         r"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+")


# texts of our own where o200k's splits differ from qwen2's: case changes inside words, contractions in capitals,
# accented capitals, digit runs, a slash before line breaks
EXTRA = ["HelloWorld thisIsCamelCase XMLHttpRequest", "DON'T I'M You'RE we'Ve", "ÉCOLE école Straße ÜBER",
         "12345678 and 3.14159", "path/to/file/\n\nnext", "iPhone eBay macOS McDonald's"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--llama-cpp", required=True)
    a = ap.parse_args()
    sys.path.insert(0, str(Path(a.llama_cpp) / "gguf-py"))
    import gguf
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers
    r = gguf.GGUFReader(str(SHARED / "ggml-vocab-qwen2.gguf"))
    def strings(key):
        f = r.fields[key]
        return [bytes(f.parts[i]).decode("utf-8") for i in f.data]
    tokens, merges = strings("tokenizer.ggml.tokens"), strings("tokenizer.ggml.merges")
    vocab = {t: i for i, t in reversed(list(enumerate(tokens)))}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[tuple(m.split(" ", 1)) for m in merges], ignore_merges=False))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(GPT4O), behavior="isolated"),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    texts = (SHARED / "ggml-vocab-qwen2.gguf.inp").read_text(encoding="utf-8").split("\n__ggml_vocab_test__\n")
    if texts and texts[-1] == "":
        texts.pop()
    texts += EXTRA
    ids = [tok.encode(t, add_special_tokens=False).ids for t in texts]
    out = REPO / "Tests" / "PersonaTokenizersTests" / "Fixtures" / "gguf_gpt4o" / "expected.json"
    out.write_text(json.dumps({"generator": "Scripts/make_gpt4o_pre_reference.py",
                               "texts": "ggml-vocab-qwen2.gguf.inp (../shared), then `extra`", "extra": EXTRA,
                               "regex": GPT4O, "ids": ids}, indent=1) + "\n")
    print(f"wrote {out}: {len(ids)} cases")


if __name__ == "__main__":
    main()
