#!/usr/bin/env python3
"""Reference ids for real GGUF vocabularies in ../shared on texts whose regex splits fall inside a grapheme cluster.

A pre-tokenizer regex splits at Unicode scalars: between "\\r" and "\\n" (GPT-2's `\\s+(?!\\S)` leaves the "\\n" to
the next piece when a letter follows), and between a letter and its combining mark (Thai, Arabic, Hebrew vowel
signs are \\p{M}, not \\p{L}). Swift keeps such a pair in one Character; these cases check that the split still
falls where Hugging Face `tokenizers` puts it. The tokenizer fixtures trained in make_tokenizer_fixtures.py are
too small to show it: their merges never join across those splits, the real vocabularies below do.

Reference: transformers' own GGUF tokenizer conversion (`convert_gguf_tokenizer`, what
`AutoTokenizer.from_pretrained(dir, gguf_file=...)` runs; called directly because its metadata reader needs
torch), encoded with `add_special_tokens=False`. If llama-cpp-python is installed its ids are compared too and
any difference is printed (none expected).

Vocabularies: llama.cpp's ggml-vocab-{qwen2,gpt-2,llama-bpe}.gguf and SmolLM2-135M-Instruct. transformers maps
SmolLM2's pre-tokenizer name ("smollm") to plain GPT-2 splitting without llama.cpp's one-digit split, so texts
with digits are left out for it.

Run by hand, from the repository root:   /work/V/bin/python Scripts/make_gguf_script_fixtures.py
Pinned: transformers 5.25.0, tokenizers 0.23.3, gguf 0.19.0 (checked below).
Writes Tests/PersonaTokenizersTests/Fixtures/gguf_scripts/golden.json.
"""
import importlib.metadata
import json
import os
import sys
import unicodedata

import gguf
import tokenizers
import transformers
from transformers.integrations.gguf.gguf_tokenizer_mapping import GGUF_TOKENIZER_MAPPING, convert_gguf_tokenizer

PINNED = {"transformers": "5.25.0", "tokenizers": "0.23.3", "gguf": "0.19.0"}
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(ROOT), "shared")
OUT = os.path.join(ROOT, "Tests", "PersonaTokenizersTests", "Fixtures", "gguf_scripts", "golden.json")

VOCABS = {
    "qwen2": "reference/llama.cpp-vocab/ggml-vocab-qwen2.gguf",
    "gpt-2": "reference/llama.cpp-vocab/ggml-vocab-gpt-2.gguf",
    "llama-bpe": "reference/llama.cpp-vocab/ggml-vocab-llama-bpe.gguf",
    "smollm2": "models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf",
}

TEXTS = [
    "a\r\nb",
    "x\r\ny\r\nz",
    " \r\n\r\nword",
    "line one\r\nline two\r\n",
    "Windows text:\r\n\tindented\r\n  two spaces\r\nend",
    "\n\r\n\rb",
    "a\r",
    "สวัสดีครับ ยินดีที่ได้รู้จัก",
    "ก่อน ที่ ผู้",
    "مَرْحَبًا بِالْعَالَمِ",
    "שָׁלוֹם עוֹלָם",
    "नमस्ते दुनिया, आप कैसे हैं?",
    "தமிழ் மொழி ஆ ஸ்ரீ க்ஷ",
    "বাংলা ভাষা",
    "Tie\u0302\u0301ng Vie\u0323\u0302t",
    "e\u0301e\u0301e\u0301 cafe\u0301 \u0301x",
    unicodedata.normalize("NFD", "한국어 텍스트"),
    "q\u0300\u0301\u0302\u0303w z\u0327\u0301 x\u20dd",
    "👨\u200d👩\u200d👧 family 👍🏽 ok 🇺🇸🇬🇧",
    "1\u20e32\u20e3 #\ufe0f\u20e3 and 3.14",
]


def check_versions():
    have = {name: importlib.metadata.version(name) for name in PINNED}
    if have != PINNED and "--any-version" not in sys.argv:
        sys.exit(f"pinned {PINNED}, have {have} (pass --any-version to override)")


def field_value(reader, field):
    """A GGUF field as Python: strings decoded, arrays as lists."""
    parts = [reader.fields[field.name].parts[i] for i in field.data]
    if field.types and field.types[0] == gguf.GGUFValueType.ARRAY:
        if field.types[-1] == gguf.GGUFValueType.STRING:
            return [bytes(p).decode("utf-8") for p in parts]
        return [p.tolist()[0] for p in parts]
    if field.types[0] == gguf.GGUFValueType.STRING:
        return bytes(parts[0]).decode("utf-8")
    return parts[0].tolist()[0]


def hf_tokenizer(path):
    """What transformers' get_gguf_tokenizer + convert_gguf_tokenizer build from this file."""
    reader = gguf.GGUFReader(path)
    meta = {name: field_value(reader, f) for name, f in reader.fields.items() if name.startswith(("tokenizer.", "general.architecture"))}
    tok = {name: meta[f"tokenizer.{key}"] for key, name in GGUF_TOKENIZER_MAPPING["tokenizer"].items() if f"tokenizer.{key}" in meta}
    backend, _ = convert_gguf_tokenizer(meta["general.architecture"], tok)
    return backend


def llama_cpp_ids(path, texts):
    try:
        from llama_cpp import Llama
    except ImportError:
        return None
    llm = Llama(path, vocab_only=True, verbose=False)
    return [llm.tokenize(t.encode("utf-8"), add_bos=False, special=False) for t in texts]


def main():
    check_versions()
    out = {"generator": f"transformers {transformers.__version__} convert_gguf_tokenizer, tokenizers {tokenizers.__version__}",
           "vocabularies": []}
    for name, rel in VOCABS.items():
        path = os.path.join(SHARED, rel)
        tok = hf_tokenizer(path)
        texts = [t for t in TEXTS if name != "smollm2" or not any(c.isdigit() for c in t)]
        cases = [{"text": t, "ids": tok.encode(t, add_special_tokens=False).ids} for t in texts]
        peer = llama_cpp_ids(path, texts)
        if peer is not None:
            for c, ids in zip(cases, peer):
                if c["ids"] != ids:
                    print(f"{name}: llama.cpp differs on {c['text']!r}: {ids} vs {c['ids']}")
        out["vocabularies"].append({"name": name, "gguf": rel, "cases": cases})
        print(f"{name}: {len(cases)} cases")
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=0)
        f.write("\n")


if __name__ == "__main__":
    main()
