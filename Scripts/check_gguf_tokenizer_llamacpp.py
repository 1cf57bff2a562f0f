#!/usr/bin/env python3
"""llama.cpp reads the tokenizer `persona convert --to gguf` embeds from a model folder as HF tokenizers does.

For each test model folder (their tokenizers use the GPT-2 pre-tokenizer), and for the llama test model with each
byte-level tokenizer fixture put in its place (Llama-3, Qwen2, GPT-2 pre-tokenizers; SentencePiece-style Llama-2,
Gemma, Metaspace; embedding rows padded to the tokenizer's size): converts the folder with the binary, loads the GGUF in llama-cpp-python (vocab only) and tokenizes every golden text of the tokenizer
fixtures (those NFC leaves as they are: llama.cpp has no normaliser) with special tokens parsed, with and without the BOS the folder adds, against the
folder's tokenizer.json in HF `tokenizers`; then decodes back. Prints the counts; exit status 1 on any difference.

Run by hand (needs llama-cpp-python and tokenizers, e.g. /work/V):
    swift build --product persona
    /work/V/bin/python Scripts/check_gguf_tokenizer_llamacpp.py --persona .build/debug/persona
Checked with llama-cpp-python 0.3.36, tokenizers 0.22.
"""
import argparse, glob, json, os, subprocess, sys, tempfile, unicodedata

from llama_cpp import Llama
from tokenizers import Tokenizer

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ap = argparse.ArgumentParser()
ap.add_argument("--persona", default=os.path.join(root, ".build/debug/persona"))
args = ap.parse_args()

texts = []
for g in sorted(glob.glob(os.path.join(root, "Tests/PersonaTokenizersTests/Fixtures/*/golden.json"))):
    texts += [c["text"] for c in json.load(open(g))["cases"]]
texts = [t for t in dict.fromkeys(texts) if unicodedata.normalize("NFC", t) == t]
texts += ["<|im_start|>user\nhi<|im_end|>\n", "<|begin_of_text|>x<|eot_id|>", "<s>[INST] hi [/INST]</s>"]

def swapped(tmp, name):
    """The llama test model with tokenizer fixture `name`, its vocabulary rows padded with zeros."""
    import shutil, torch
    from safetensors.torch import load_file, save_file
    src, tok = os.path.join(root, "Tests/PersonaModelsTests/Fixtures/llama"), os.path.join(root, "Tests/PersonaTokenizersTests/Fixtures", name)
    folder = os.path.join(tmp, "llama-" + name)
    os.makedirs(folder)
    n = Tokenizer.from_file(os.path.join(tok, "tokenizer.json")).get_vocab_size(with_added_tokens=True)
    w = load_file(os.path.join(src, "model.safetensors"))
    for k in ["lm_head.weight", "model.embed_tokens.weight"]:
        w[k] = torch.cat([w[k], torch.zeros(n - w[k].shape[0], w[k].shape[1], dtype=w[k].dtype)])
    save_file(w, os.path.join(folder, "model.safetensors"), metadata={"format": "pt"})
    cfg = json.load(open(os.path.join(src, "config.json"))); cfg["vocab_size"] = n
    json.dump(cfg, open(os.path.join(folder, "config.json"), "w"))
    for f in ["tokenizer.json", "tokenizer_config.json"]:
        shutil.copy(os.path.join(tok, f), folder)
    return folder

bad = 0
with tempfile.TemporaryDirectory() as tmp:
    folders = [os.path.join(root, "Tests/PersonaModelsTests/Fixtures", a) for a in ["llama", "llama2", "qwen2", "mistral"]]
    folders += [swapped(tmp, n) for n in ["bpe_llama3", "bpe_qwen2", "bpe_gpt2", "spm_llama2", "spm_gemma", "spm_metaspace"]]
    for folder in folders:
        arch = os.path.basename(folder)
        out = os.path.join(tmp, arch + ".gguf")
        r = subprocess.run([args.persona, "convert", folder, "--to", "gguf", "--quantize", "Q8_0", "--out", out],
                           capture_output=True, text=True)
        metaspace = arch.endswith("spm_metaspace")   # the one caveat convert warns about (docs/quantization.md)
        if r.returncode != 0 or ("warning" in r.stderr) != metaspace:
            print(arch, "convert failed:", r.stderr); bad += 1; continue
        llm = Llama(model_path=out, vocab_only=True, verbose=False)
        tk = Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
        n = 0
        prefix = llm.metadata.get("tokenizer.ggml.model") == "llama" and llm.metadata.get("tokenizer.ggml.add_space_prefix") == "true"
        specials = [t.content for t in tk.get_added_tokens_decoder().values()]
        for t in texts:
            if metaspace and (t[:1].isspace() or any(x in t for x in specials)):
                continue
            a = llm.tokenize(t.encode(), add_bos=False, special=True)
            b = tk.encode(t, add_special_tokens=False).ids
            d = llm.detokenize(a, special=True).decode("utf-8", "replace")
            if prefix and d.startswith(" "):   # llama-cpp-python joins the pieces, keeping the ▁ prefix llama_detokenize strips
                d = d[1:]
            if a != b:
                bad += 1; print(arch, "DIFF", repr(t), a[:16], b[:16])
            elif d != tk.decode(b, skip_special_tokens=False) and not metaspace:   # (HF's Metaspace decoder drops spaces before some pieces)
                bad += 1; print(arch, "DECODE DIFF", repr(t), repr(d), repr(tk.decode(b, skip_special_tokens=False)))
            # with the tokenizer's own special tokens (BOS where the folder adds one)
            a, b = llm.tokenize(t.encode(), add_bos=True, special=True), tk.encode(t, add_special_tokens=True).ids
            if a != b:
                bad += 1; print(arch, "DIFF (add special)", repr(t), a[:16], b[:16])
            n += 1
        print(f"{arch}: {n} texts, pre={llm.metadata.get('tokenizer.ggml.pre')}, "
              f"bos={llm.token_bos()} eos={llm.token_eos()}, template={'tokenizer.chat_template' in llm.metadata}")
print("differences:", bad)
sys.exit(1 if bad else 0)
