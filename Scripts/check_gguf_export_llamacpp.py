#!/usr/bin/env python3
"""Our folder -> GGUF export against llama.cpp's own converter and llama.cpp itself, on the architecture fixtures.

Run BY HAND (never in CI), from the repository root, after `swift build -c release --product persona`:

    pip download --no-binary :all: --no-deps llama-cpp-python==0.3.36 && tar xzf llama_cpp_python-0.3.36.tar.gz
    /work/V/bin/python Scripts/check_gguf_export_llamacpp.py --llama-cpp llama_cpp_python-0.3.36/vendor/llama.cpp

Pinned environment it was run with (checked at start; pass --any-version to override):
    llama-cpp-python 0.3.36 (its vendored llama.cpp: convert_hf_to_gguf.py and gguf-py) / transformers 5.25.0 /
    torch 2.15.0

For each fixture folder (Tests/PersonaModelsTests/Fixtures/<arch>, bf16 weights; Gemma-2 and Gemma-3 with
query_pre_attn_scalar set to head_dim, the one value a GGUF can carry; Phi-3 without its sliding window, which
llama.cpp does not apply; the LongRoPE ones (phi3_longrope, phi4_mini with partial rotary) with an original context
of 256 of 1024, so that llama.cpp, which picks the long factors when its context exceeds the original one, takes
the short factors as transformers does on 16 tokens):
  1. `persona convert <folder> --to gguf` (ours) and `convert_hf_to_gguf.py <folder> --outtype bf16` (llama.cpp's;
     the fixtures' tiny tokenizers are not in its pre-tokenizer table and Gemma's converter wants a
     SentencePiece model, so the vocabulary step is replaced by its plain GPT-2 BPE one: tokenizer metadata is not
     compared here, GGUFTokenizerExportTests and check_gguf_tokenizer_llamacpp.py cover it);
  2. every tensor of the two files: name, type, shape and bytes; every `<arch>.*` key the two both write;
  3. llama.cpp (f32 K/V cache) runs our file on the fixture's input ids, against transformers' f32 logits.

Result (2026-12-07, AMD EPYC Zen 4): every fixture writes the same tensors as llama.cpp's converter; llama.cpp on our
file is within RMS 0.008-0.022 of transformers (its bf16 rounding), e.g. phi3_longrope 0.013, phi4_mini 0.022, olmo2 0.010, qwen2_yarn
0.016 (same rope.scaling keys as its converter), olmo3 0.009 (same sliding-window keys),
granite 0.003 (same multiplier keys), glm4 0.012, cohere
0.004, cohere2 0.003, ernie4_5 0.013, exaone4 (without its window,
as llama.cpp reads a window only in a 64-layer file) 0.010, gpt2 0.010 (its converter writes feed_forward_length
4 x n_embd whatever n_inner says: 256 where ours writes the real 128; so does phi2's), gpt_neox 0.007, phi 0.007, stablelm 0.012, olmo 0.012, starcoder2
(without its window, which llama.cpp does not read) 0.009, nemotron 0.009, arcee 0.010,
ministral3 0.014 (same yarn and temperature keys as its converter), seed_oss (without its attention-output bias, which llama.cpp's seed_oss lacks, as Seed-OSS-36B does) 0.016.
Mixtures of experts (qwen3_moe, mixtral, olmoe, qwen2_moe, granitemoe, gpt_oss) are not exported: our engine runs llama.cpp's own file of them
instead, within 5e-6 of transformers (qwen2_moe 6.2e-6; llama.cpp itself: RMS 0.009-0.010).
"""
import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "Tests" / "PersonaModelsTests" / "Fixtures"
ARCHS = ["llama", "llama2", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3", "smollm3", "phi3", "phi3_longrope",
         "phi4_mini", "olmo2", "qwen2_yarn", "olmo3", "granite", "qwen3_moe", "mixtral", "olmoe", "glm4", "cohere", "cohere2",
         "ernie4_5", "exaone4", "gpt2", "gpt_neox", "phi", "stablelm", "olmo", "starcoder2", "nemotron", "qwen2_moe", "granitemoe", "arcee", "seed_oss", "ministral3", "gpt_oss"]
# mixtures of experts are read, not written: llama.cpp's converter makes the file, and our engine runs it
READ_ONLY = {"qwen3_moe", "mixtral", "olmoe", "qwen2_moe", "granitemoe", "gpt_oss"}
PINNED = {"llama_cpp_python": "0.3.36", "transformers": "5.25.0", "torch": "2.15.0"}

# convert_hf_to_gguf.py with the vocabulary step replaced (see above), run as a child process
CONVERT = """
import sys
sys.path.insert(0, sys.argv[1] + "/gguf-py"); sys.path.insert(0, sys.argv[1])
import conversion.base as base, conversion.gemma as gemma, conversion.phi as phi, conversion.glm as glm, conversion.ernie as ernie
import conversion.nemotron as nemotron
for mod in (base, gemma, phi, glm, ernie, nemotron):
    for cls in vars(mod).values():
        if isinstance(cls, type) and "get_vocab_base_pre" in vars(cls):
            cls.get_vocab_base_pre = lambda self, tok: "gpt-2"
        if isinstance(cls, type) and cls.__name__ in ("GemmaModel", "Gemma2Model", "Gemma3Model", "Phi3MiniModel", "Glm4Model",
                                                      "Ernie4_5Model", "NemotronModel"):
            cls.set_vocab = lambda self: self._set_vocab_gpt2()
# with transformers 5 its hparams (AutoConfig's) hold Pythia's rotary_pct only inside rope_parameters
import conversion.gptneox as gptneox
neox_params = gptneox.GPTNeoXModel.set_gguf_parameters
def set_neox_params(self):
    self.hparams.setdefault("rotary_pct", self.hparams["rope_parameters"]["partial_rotary_factor"])
    neox_params(self)
gptneox.GPTNeoXModel.set_gguf_parameters = set_neox_params
import convert_hf_to_gguf
sys.argv = ["convert_hf_to_gguf.py"] + sys.argv[2:]
convert_hf_to_gguf.main()
"""


def versions(allow_any):
    from importlib.metadata import version
    import torch
    import transformers
    found = {"llama_cpp_python": version("llama-cpp-python"), "transformers": transformers.__version__,
             "torch": torch.__version__.split("+")[0]}
    bad = {k: (found[k], v) for k, v in PINNED.items() if found[k] != v}
    if bad and not allow_any:
        sys.exit(f"version mismatch (found, pinned): {bad}; rerun with --any-version")


def read(path, gguf):
    r = gguf.GGUFReader(str(path))
    tensors = {t.name: (t.tensor_type.name, tuple(int(v) for v in t.shape), np.asarray(t.data).tobytes()) for t in r.tensors}
    arch = r.fields["general.architecture"].contents()
    keys = {k: f.contents() for k, f in r.fields.items() if k.startswith(arch + ".")}
    return arch, tensors, keys


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--llama-cpp", required=True, help="a llama.cpp source tree (convert_hf_to_gguf.py, gguf-py)")
    ap.add_argument("--persona", default=str(REPO / ".build" / "release" / "persona"))
    ap.add_argument("--any-version", action="store_true")
    ap.add_argument("--only", nargs="*", help="fixture names to check (default: all)")
    a = ap.parse_args()
    versions(a.any_version)
    lcpp = Path(a.llama_cpp).resolve()
    sys.path.insert(0, str(lcpp / "gguf-py"))
    import gguf
    import torch
    from transformers import AutoModelForCausalLM
    sys.path.insert(0, str(REPO / "Scripts"))
    from check_llamacpp_logits import llama_logits
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        for arch in ARCHS:
            if a.only and arch not in a.only:
                continue
            # not named after the architecture: llama.cpp treats a model named "phi3..." as having Phi-3's special
            # tokens, which the fixtures' tiny vocabulary lacks
            folder = Path(tmp) / f"fixture-{ARCHS.index(arch)}"
            shutil.copytree(FIXTURES / arch, folder, ignore=shutil.ignore_patterns("reference*"))
            if arch in ("gemma2", "gemma3", "phi3", "starcoder2"):
                cfg = json.loads((folder / "config.json").read_text())
                if arch in ("phi3", "starcoder2"):
                    cfg["sliding_window"] = None   # llama.cpp runs these without it; transformers must too, to compare
                else:
                    cfg["query_pre_attn_scalar"] = cfg["head_dim"]
                (folder / "config.json").write_text(json.dumps(cfg))
            if arch == "exaone4":
                # llama.cpp reads a window only in a 64-layer exaone4 file: the fixture runs without one (as the 1.2B)
                cfg = json.loads((folder / "config.json").read_text())
                cfg["sliding_window"] = None
                cfg["layer_types"] = ["full_attention"] * cfg["num_hidden_layers"]   # as EXAONE-4.0-1.2B's config
                (folder / "config.json").write_text(json.dumps(cfg))
            if arch == "cohere2":
                # its converter reads rotary_pct, which Command-R7B's config has and transformers 5 does not write
                cfg = json.loads((folder / "config.json").read_text())
                cfg["rotary_pct"] = 1.0
                (folder / "config.json").write_text(json.dumps(cfg))
            if arch == "gpt_oss":
                # llama.cpp runs gpt-oss with its own constants (swiglu limit 7) and whole-dimension yarn ramp ends: the
                # fixture (limit 1, truncate false) with those, so that transformers computes what llama.cpp does
                cfg = json.loads((folder / "config.json").read_text())
                cfg["swiglu_limit"] = 7.0
                cfg["rope_parameters"]["truncate"] = True
                (folder / "config.json").write_text(json.dumps(cfg))
            if arch == "seed_oss":
                # llama.cpp's seed_oss has no attention-output bias (Seed-OSS-36B has none): the fixture without it
                cfg = json.loads((folder / "config.json").read_text())
                cfg["attention_out_bias"] = False
                (folder / "config.json").write_text(json.dumps(cfg))
                from safetensors.torch import load_file, save_file
                w = load_file(str(folder / "model.safetensors"))
                save_file({k: v for k, v in w.items() if not k.endswith("o_proj.bias")}, str(folder / "model.safetensors"),
                          metadata={"format": "pt"})
            if arch == "gpt2":
                # its converter reads n_ctx, which openai-community/gpt2's config has (= n_positions) and transformers 5
                # does not write
                cfg = json.loads((folder / "config.json").read_text())
                cfg["n_ctx"] = cfg["n_positions"]
                (folder / "config.json").write_text(json.dumps(cfg))
            if arch in ("phi3_longrope", "phi4_mini"):
                # llama.cpp takes the long factors when its context (at least 256) exceeds the original one, transformers
                # when the sequence does: an original context of 256 of 1024 makes both take the short factors
                cfg = json.loads((folder / "config.json").read_text())
                cfg["original_max_position_embeddings"] = cfg["rope_scaling"]["original_max_position_embeddings"] = 256
                cfg["max_position_embeddings"] = 1024
                (folder / "config.json").write_text(json.dumps(cfg))
            ours, theirs = Path(tmp) / f"{arch}-ours.gguf", Path(tmp) / f"{arch}-llamacpp.gguf"
            subprocess.run([sys.executable, "-c", CONVERT, str(lcpp), str(folder), "--outtype", "bf16", "--outfile", str(theirs)],
                           check=True, capture_output=True)
            if arch in READ_ONLY:
                from check_llamacpp_logits import ours as persona_logits
                ids = json.loads((FIXTURES / arch / "reference.json").read_text())["input_ids"]
                model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32, attn_implementation="eager")
                with torch.no_grad():
                    want = model(torch.tensor([ids])).logits[0].numpy().astype(np.float64)
                mine = persona_logits(a.persona, theirs, ids, "exact", tmp)
                theirs_run = llama_logits(theirs, ids)
                print(f"{arch}: llama.cpp's own file; our engine on it vs transformers (f32): max {np.abs(mine - want).max():.3g}; "
                      f"llama.cpp on it vs transformers: max {np.abs(theirs_run - want).max():.3g}, "
                      f"RMS {np.sqrt(((theirs_run - want) ** 2).mean()):.3g}")
                failures += np.abs(mine - want).max() > 1e-3
                continue
            subprocess.run([a.persona, "convert", str(folder), "--to", "gguf", "--out", str(ours)], check=True, capture_output=True)
            oa, ot, ok = read(ours, gguf)
            la, lt, lk = read(theirs, gguf)
            notes = []
            if oa != la:
                notes.append(f"architecture {oa} vs {la}")
            for n in sorted(set(ot) | set(lt)):
                if n not in ot or n not in lt:
                    notes.append(f"{n}: only in {'ours' if n in ot else 'llama.cpp'}")
                elif ot[n][:2] != lt[n][:2]:
                    notes.append(f"{n}: {ot[n][:2]} vs {lt[n][:2]}")
                elif ot[n][2] != lt[n][2]:
                    d = ""
                    if ot[n][0] == "F32":
                        x, y = np.frombuffer(ot[n][2], np.float32), np.frombuffer(lt[n][2], np.float32)
                        d = f" (max relative {np.max(np.abs(x - y) / np.maximum(np.abs(y), 1e-30)):.2g})"
                    notes.append(f"{n}: bytes differ{d}")
            for k in sorted(set(ok) & set(lk)):
                if ok[k] != lk[k]:
                    notes.append(f"{k}: {ok[k]} vs {lk[k]}")
            extra = sorted(set(ok) - set(lk))
            ids = json.loads((FIXTURES / arch / "reference.json").read_text())["input_ids"]
            model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32, attn_implementation="eager")
            with torch.no_grad():
                want = model(torch.tensor([ids])).logits[0].numpy().astype(np.float64)
            got = llama_logits(ours, ids)
            diff = got - want
            print(f"{arch}: {len(ot)} tensors, {'same as llama.cpp' if not notes else '; '.join(notes)}"
                  f"{'; keys only ours writes: ' + ', '.join(extra) if extra else ''}; llama.cpp on our file vs "
                  f"transformers (f32): max {np.abs(diff).max():.3g}, RMS {np.sqrt((diff ** 2).mean()):.3g}")
            failures += any("rope_freqs" not in s for s in notes)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
