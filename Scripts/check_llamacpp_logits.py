#!/usr/bin/env python3
"""Our logits against llama.cpp's own, on the real SmolLM2-135M-Instruct, per quantisation type.

Run BY HAND (never in CI; it needs llama-cpp-python, which builds llama.cpp from source), from the repository root,
after `swift build -c release --product persona`:

    /work/V/bin/python Scripts/check_llamacpp_logits.py --persona .build/release/persona

Pinned environment it was run with (checked at start; pass --any-version to override):
    llama-cpp-python 0.3.36 / gguf 0.19.0 / numpy 2.4.6

Why this shape. On the whole Q4_1 file our logits and llama.cpp's differ by ~0.1 RMS in either of our precisions.
The cases below separate the two things that can cause that:
  * f32: the Q4_1 file dequantised by gguf-py into an all-F32 GGUF. llama.cpp computes it in f32 with no
    activation rounding, which is what our exact precision computes on the Q4_1 file itself: both rows compare
    `persona trace` (exact) on the Q4_1 file with llama.cpp on the F32 copy.
  * one layer of type T: the F32 copy with block 3's matrices replaced by llama.cpp's own quantisation to T
    (llama_model_quantize of the F32 copy, --pure; the legacy types and Q8_0 replace all seven matrices, the K and
    IQ4_XS types only ffn_down, the one SmolLM2 matrix whose rows (1536) are a multiple of 256). llama.cpp rounds
    that layer's activations (q8_0 / q8_1 / q8_K) and our native precision must do the same: `persona trace
    --precision native` on the same file, the prompt at once (T > 1: our prompt tiles) and its first token alone
    (T = 1: our decode kernels).
  * the whole Q4_1 file in native precision: every layer rounds its activations; a rounding that lands on the
    other side of a half (from a last-bit difference in an f32 sum, norm or exp) changes the next layer's input by
    one quantum, and through 30 layers that grows; the same happens between our own prompt and decode kernels.
"llama.cpp vs itself": its logits for the prompt at once against the same prompt fed one token at a time (the
largest difference over positions), the spread llama.cpp's own two paths show on the same file.
For each case: max |difference| and RMS of the difference over every position's logits (no shift removed), and the
first position whose logits differ by more than 1e-4 (a rounding flip at position p shows from p on: the changed
keys and values reach every later position through attention).
"""
import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "Scripts"))
# the same pins and llama.cpp quantizer call as the convert fixtures
from make_convert_fixtures import quantize, versions  # noqa: E402
SMOL = REPO.parent / "shared" / "models" / "smollm2-135m-instruct" / "SmolLM2-135M-Instruct.Q4_1.gguf"
PROMPT = "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
LAYER = 3
# (type, llama_ftype suffix, which matrices of block LAYER take it)
ALL7 = ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"]
CASES = [("Q4_0", "Q4_0", ALL7), ("Q4_1", "Q4_1", ALL7), ("Q5_0", "Q5_0", ALL7), ("Q5_1", "Q5_1", ALL7),
         ("Q8_0", "Q8_0", ALL7), ("IQ4_NL", "IQ4_NL", ALL7),
         ("Q2_K", "Q2_K", ["ffn_down"]), ("Q3_K", "Q3_K_S", ["ffn_down"]), ("Q4_K", "Q4_K_S", ["ffn_down"]),
         ("Q5_K", "Q5_K_S", ["ffn_down"]), ("Q6_K", "Q6_K", ["ffn_down"]), ("IQ4_XS", "IQ4_XS", ["ffn_down"]),
         ("F16", "F16", ALL7)]   # ggml rounds the activations of f16 weights to f16; native must, exact must not


def write_gguf(dst, reader, tensor, extra=None):
    """A GGUF with reader's metadata (file type 0, all F32) and, per tensor of reader, tensor(t) = (array, raw_dtype
    or None for F32); extra(writer), when given, adds metadata after reader's."""
    import gguf
    arch = bytes(reader.fields["general.architecture"].parts[-1]).decode("utf-8")   # llama for SmolLM2
    w = gguf.GGUFWriter(str(dst), arch)
    for key, f in reader.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture":
            continue
        t = f.types[0]
        if t == gguf.GGUFValueType.ARRAY:
            sub = f.types[1]
            if sub == gguf.GGUFValueType.STRING:
                val = [bytes(f.parts[i]).decode("utf-8", "surrogateescape") for i in f.data]
            else:
                val = [f.parts[i].tolist()[0] for i in f.data]
            w.add_key_value(key, val, t, sub_type=sub)
        elif t == gguf.GGUFValueType.STRING:
            w.add_key_value(key, bytes(f.parts[f.data[0]]).decode("utf-8"), t)
        else:
            w.add_key_value(key, 0 if key == "general.file_type" else f.parts[f.data[0]].tolist()[0], t)
    if extra:
        extra(w)
    for t in reader.tensors:
        array, raw = tensor(t)
        w.add_tensor(t.name, array, raw_dtype=raw)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def write_f32(dst, src=SMOL):
    """src (SMOL unless given) with every tensor dequantised by gguf-py."""
    import gguf
    write_gguf(dst, gguf.GGUFReader(str(src)), lambda t: (
        gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32).reshape([int(x) for x in reversed(t.shape)]), None))


def write_mixed(dst, f32_reader, quant_reader, take):
    """The F32 copy's tensors, except those named in `take`, which come raw from quant_reader."""
    q = {t.name: t for t in quant_reader.tensors}
    write_gguf(dst, f32_reader, lambda t: (np.asarray(q[t.name].data), q[t.name].tensor_type) if t.name in take
               else (np.asarray(t.data), None))


def llama_logits(path, ids, one_by_one=False, kv_type=0):
    import llama_cpp
    # f32 K/V cache (type 0) unless asked: llama.cpp's default f16 cache (type 1) is compared in its own rows
    batch = 1 if one_by_one else 128
    llm = llama_cpp.Llama(str(path), n_ctx=128, n_batch=batch, n_ubatch=batch, logits_all=True, verbose=False,
                          type_k=kv_type, type_v=kv_type, n_threads=2)
    if one_by_one:
        for t in ids:
            llm.eval([t])
    else:
        llm.eval(ids)
    out = np.array(llm.scores[: len(ids)], dtype=np.float64)
    del llm
    return out


def ours(persona, path, ids, precision, tmp, kv_cache="f32"):
    from safetensors.numpy import load_file
    out = Path(tmp) / "trace.safetensors"
    subprocess.run([persona, "trace", "--model", str(path), "--ids", ",".join(map(str, ids)), "--out", str(out),
                    "--precision", precision, "--kv-cache", kv_cache], check=True, stdout=subprocess.DEVNULL)
    return load_file(str(out))["logits"].astype(np.float64)


NOISE = 1e-4   # reporting only: the F32 copy agrees to ~2e-5 (f32 sums in another order), a flipped rounding is >= ~1e-3


def diff(a, b):
    d = a - b
    per_pos = np.abs(d).max(axis=1)
    over = np.nonzero(per_pos > NOISE)[0]
    return float(per_pos.max()), float(np.sqrt((d * d).mean())), (int(over[0]) if len(over) else None)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--persona", default=str(REPO / ".build" / "release" / "persona"))
    ap.add_argument("--any-version", action="store_true")
    ap.add_argument("--json", help="also write the table as JSON here")
    args = ap.parse_args()
    versions(args.any_version)
    import gguf
    import llama_cpp

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        llm = llama_cpp.Llama(str(SMOL), n_ctx=128, verbose=False, vocab_only=True)
        ids = llm.tokenize(PROMPT.encode(), add_bos=False, special=True)
        del llm
        print(f"prompt: {len(ids)} tokens {ids}", file=sys.stderr)
        rows = []

        def row(case, precision, a, b, note="", self_diff=None):
            mx, rms, first = diff(a, b)
            rows.append({"case": case, "ours": precision, "max_abs": mx, "rms": rms, "first_position_over_1e-4": first,
                         "llama_cpp_batch_vs_token_by_token": self_diff, "note": note})
            where = "-" if first is None else str(first)
            own = "" if self_diff is None else f"{self_diff:.1e}"
            print(f"| {case} | {precision} | {mx:.1e} | {rms:.1e} | {where} | {own} | {note} |", flush=True)

        print("| case | ours | max abs diff | RMS diff | first position > 1e-4 | llama.cpp vs itself | note |\n"
              "|---|---|---|---|---|---|---|")
        f32 = tmp / "f32.gguf"
        write_f32(f32)
        lf32 = llama_logits(f32, ids)
        row("Q4_1 file (llama.cpp: its F32 copy)", "exact", ours(args.persona, SMOL, ids, "exact", tmp), lf32,
            "every position, prompt at once")
        row("F32 copy (both)", "exact", ours(args.persona, f32, ids, "exact", tmp), lf32, "")
        # llama.cpp's default f16 K/V cache against ours (--kv-cache f16) and against our f32 cache
        lf16 = llama_logits(f32, ids, kv_type=1)
        row("F32 copy, llama.cpp f16 K/V cache", "exact, f16 cache", ours(args.persona, f32, ids, "exact", tmp, "f16"),
            lf16, "")
        row("F32 copy, llama.cpp f16 K/V cache", "exact, f32 cache", ours(args.persona, f32, ids, "exact", tmp), lf16, "")
        row("F32 copy, llama.cpp f16 vs its f32 K/V cache", "-", lf16, lf32, "llama.cpp against itself")
        lq = llama_logits(SMOL, ids)
        own = diff(lq, llama_logits(SMOL, ids, one_by_one=True))[0]
        row("Q4_1 file, all 30 layers", "native", ours(args.persona, SMOL, ids, "native", tmp), lq,
            "rounding flips compound over the layers", own)
        row("Q4_1 file, all 30 layers", "exact", ours(args.persona, SMOL, ids, "exact", tmp), lq,
            "llama.cpp's activation rounding, not ours")
        whole = ours(args.persona, SMOL, ids, "native", tmp)
        row("Q4_1 file, ours against ours", "native", ours(args.persona, SMOL, ids[:1], "native", tmp), whole[:1],
            "position 0: first token alone (decode kernels) vs in the prompt (prompt tiles)")
        # an F16 copy (2-D tensors rounded to f16 by numpy, nearest even; norms F32): ggml multiplies f16 weights with
        # the activations rounded to f16, which our native precision does and exact does not
        f16 = tmp / "f16.gguf"
        write_gguf(f16, gguf.GGUFReader(str(f32)), lambda t: (
            (np.asarray(t.data).astype(np.float16) if len(t.shape) == 2 else np.asarray(t.data)), None))
        l16 = llama_logits(f16, ids)
        own = diff(l16, llama_logits(f16, ids, one_by_one=True))[0]
        for precision in ("native", "exact"):
            row("F16 copy", precision, ours(args.persona, f16, ids, precision, tmp), l16, "prompt at once", own)
            row("F16 copy", precision, ours(args.persona, f16, ids[:1], precision, tmp), l16[:1], "first token alone (T = 1)")
        f16.unlink()
        f32r = gguf.GGUFReader(str(f32))
        for name, ftype, mats in CASES:
            qf = tmp / f"pure-{name}.gguf"
            quantize(f32, qf, ftype, pure=True)
            qr = gguf.GGUFReader(str(qf))
            take = {f"blk.{LAYER}.{m}.weight" for m in mats}
            got = {t.name: t.tensor_type.name for t in qr.tensors if t.name in take}
            assert all(v == name for v in got.values()), f"{name}: llama.cpp wrote {got}"
            mixed = tmp / f"mixed-{name}.gguf"
            write_mixed(mixed, f32r, qr, take)
            ref = llama_logits(mixed, ids)
            own = diff(ref, llama_logits(mixed, ids, one_by_one=True))[0]
            what = "all 7 matrices" if len(mats) == 7 else "ffn_down"
            row(f"block {LAYER} {what} in {name}", "native", ours(args.persona, mixed, ids, "native", tmp), ref,
                f"prompt at once ({len(ids)} tokens)", own)
            row(f"block {LAYER} {what} in {name}", "native", ours(args.persona, mixed, ids[:1], "native", tmp), ref[:1],
                "first token alone (T = 1)")
            if name == "F16":
                row(f"block {LAYER} {what} in {name}", "exact", ours(args.persona, mixed, ids, "exact", tmp), ref,
                    "prompt at once: f32 activations, not llama.cpp's")
            mixed.unlink()
            qf.unlink()
        if args.json:
            Path(args.json).write_text(json.dumps({"prompt_ids": ids, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
