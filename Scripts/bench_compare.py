#!/usr/bin/env python3
"""Side-by-side speed of `persona bench` and llama.cpp (llama-cpp-python) on identical weights.

For each config x dtype: `persona bench --config C --dtype D --dump-gguf F --json` synthesises random weights of
the model's shape, writes them as GGUF and benchmarks the model loaded back from that file; then llama.cpp loads
the same GGUF (same bytes, same threads) in a separate process and is timed the same way: prefill of N random
token ids in one batch, then M single-token decode steps (greedy), best of R repeats. `--precision exact|native|both`
runs ours with f32 activations (the default), with llama.cpp-style rounded activations (int8 blocks / bf16 / f16),
or both (one table row each, against the same llama.cpp run; the second of ours loads the dumped GGUF). Optionally transformers
(--transformers) decodes the same shape in bf16 with random weights (not identical values; speed only).

Another llama.cpp build (e.g. one for CPUs without AVX-512) can stand in for llama-cpp-python: `--llama-bench PATH`
times the same GGUF with that build's `llama-bench` (prefill of N tokens in one batch, N-token decode, best of R
samples); `--simd LEVEL` runs ours at that SIMD level (PERSONA_SIMD: avx2, avx512, avx512vnni, ...). The AVX2 pair:
    git clone https://github.com/ggerganov/llama.cpp && cd llama.cpp && cmake -B b -DCMAKE_BUILD_TYPE=Release \
        -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF -DLLAMA_CURL=OFF \
        && cmake --build b --target llama-bench -j
    /work/V/bin/python Scripts/bench_compare.py --simd avx2 --llama-bench llama.cpp/b/bin/llama-bench ...
or, without a llama.cpp checkout, llama-cpp-python built for AVX2 in a venv of its own, running this script:
    python3 -m venv V2 && CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF" \
        V2/bin/pip install numpy gguf==0.19.0 llama-cpp-python==0.3.36
    V2/bin/python Scripts/bench_compare.py --simd avx2 ...

Run by hand, not in CI (needs a release build and llama-cpp-python):
    swift build -c release --product persona
    /work/V/bin/pip install llama-cpp-python        # builds llama.cpp for this CPU (-march=native)
    /work/V/bin/python Scripts/bench_compare.py --markdown docs/bench_table.md
Measured with llama-cpp-python 0.3.36 (llama.cpp vendored there), torch/transformers from /work/V.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def llama_worker(args):
    """Runs inside a child process: times llama.cpp on one GGUF and prints JSON."""
    import numpy as np
    import llama_cpp
    from llama_cpp import Llama
    t0 = time.time()
    llm = Llama(model_path=args.gguf, n_ctx=args.prompt_tokens + args.decode_tokens + 8, n_threads=args.threads,
                n_threads_batch=args.threads, n_batch=args.prompt_tokens, n_ubatch=args.prompt_tokens,
                verbose=False, use_mmap=True)
    load = time.time() - t0
    rng = np.random.default_rng(args.seed)
    vocab = llm.n_vocab()
    prompt = [int(t) for t in rng.integers(0, vocab, size=args.prompt_tokens)]
    best_prefill = best_decode = float("inf")

    def last_argmax():   # logits of the last evaluated token, straight from llama.cpp
        return int(np.argmax(np.ctypeslib.as_array(llama_cpp.llama_get_logits(llm.ctx), shape=(vocab,))))

    for _ in range(args.repeats):
        llm.reset()
        s = time.perf_counter()
        llm.eval(prompt)
        best_prefill = min(best_prefill, time.perf_counter() - s)
        tok = last_argmax()
        s = time.perf_counter()
        for _ in range(args.decode_tokens):
            llm.eval([tok])
            tok = last_argmax()
        best_decode = min(best_decode, time.perf_counter() - s)
    import resource
    print(json.dumps({"load_seconds": load, "prefill_tok_s": args.prompt_tokens / best_prefill,
                      "decode_tok_s": args.decode_tokens / best_decode,
                      "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))


def transformers_worker(args):
    """Child process: transformers + torch (CPU) decode speed for the config's shape, bf16 random weights."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM
    torch.set_num_threads(args.threads)
    cfg = AutoConfig.from_pretrained(os.path.dirname(args.config)) if os.path.isdir(args.config) else None
    if cfg is None:
        with open(args.config) as f:
            d = json.load(f)
        from transformers import CONFIG_MAPPING
        cfg = CONFIG_MAPPING[d["model_type"]](**{k: v for k, v in d.items() if k != "model_type"})
    torch.manual_seed(args.seed)
    model = AutoModelForCausalLM.from_config(cfg, torch_dtype=torch.bfloat16).eval()
    ids = torch.randint(0, cfg.vocab_size, (1, args.prompt_tokens))
    out = {}
    with torch.no_grad():
        for label, hidden in [("decode_tok_s", False), ("decode_hidden_tok_s", True)]:
            best = float("inf")
            for _ in range(args.repeats):
                r = model(ids, use_cache=True)
                past, tok = r.past_key_values, r.logits[:, -1].argmax(-1, keepdim=True)
                s = time.perf_counter()
                for _ in range(args.decode_tokens):
                    r = model(tok, past_key_values=past, use_cache=True, output_hidden_states=hidden)
                    past, tok = r.past_key_values, r.logits[:, -1].argmax(-1, keepdim=True)
                best = min(best, time.perf_counter() - s)
            out[label] = args.decode_tokens / best
    print(json.dumps(out))


SPEEDS = ("prefill_tok_s", "decode_tok_s", "decode_monitored_tok_s", "decode_steered_tok_s", "bandwidth_gb_s")


def best_of(a, b):
    """Merges two runs' results keeping the higher speeds (and the lower load time)."""
    if not a or "error" in a:
        return b
    if "error" in b:
        return a
    out = dict(b)
    for k in SPEEDS:
        if k in a and k in b:
            out[k] = max(a[k], b[k])
    if "load_seconds" in a:
        out["load_seconds"] = min(a["load_seconds"], b["load_seconds"])
    return out


def llama_bench(path, gguf, threads, prompt_tokens, decode_tokens, repeats, seed):
    """Times one GGUF with a llama.cpp `llama-bench` binary: best sample of the prefill and the decode test."""
    cmd = [path, "-m", gguf, "-t", str(threads), "-p", str(prompt_tokens), "-n", str(decode_tokens),
           "-r", str(repeats), "-o", "json"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        return {"error": (r.stderr.strip().splitlines() or ["llama-bench failed"])[-1]}
    out = {}
    for t in json.loads(r.stdout):
        key = "prefill_tok_s" if t["n_prompt"] and not t["n_gen"] else "decode_tok_s"
        out[key] = max(t.get("samples_ts") or [t["avg_ts"]])
    return out


def child(mode, **kw):
    cmd = [sys.executable, os.path.abspath(__file__), mode]
    for k, v in kw.items():
        cmd += ["--" + k.replace("_", "-"), str(v)]
    env = dict(os.environ, OMP_NUM_THREADS=str(kw.get("threads", 2)))
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        return {"error": (r.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(r.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", nargs="?", default="compare", choices=["compare", "llama-worker", "transformers-worker"])
    p.add_argument("--persona", default=os.path.join(ROOT, ".build", "release", "persona"))
    p.add_argument("--configs", nargs="+", default=[os.path.join(ROOT, "..", "shared", "configs", "qwen2.5-0.5b-instruct.json")])
    p.add_argument("--dtypes", nargs="+", default=["bf16", "f16", "q8_0", "f32"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--prompt-tokens", type=int, default=128)
    p.add_argument("--decode-tokens", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--rounds", type=int, default=1,
                   help="run each side this many times, alternating, and keep the best speeds (shared machines are noisy)")
    p.add_argument("--precision", choices=["exact", "native", "both"], default="exact",
                   help="matrix-product precision of ours: exact (f32 activations), native (rounded like llama.cpp), or both")
    p.add_argument("--transformers", action="store_true", help="also time transformers (bf16) per config")
    p.add_argument("--markdown", help="also write the table (markdown) to this file")
    p.add_argument("--kv-cache", choices=["f32", "f16"], default="f32",
                   help="our KV cache type (llama.cpp runs with its default, f16)")
    p.add_argument("--simd", help="PERSONA_SIMD level for ours (e.g. avx2 to compare with an AVX2 llama.cpp build)")
    p.add_argument("--llama-bench", help="time llama.cpp with this llama-bench binary instead of llama-cpp-python")
    p.add_argument("--gguf")
    p.add_argument("--config")
    args = p.parse_args()
    if args.mode == "llama-worker":
        return llama_worker(args)
    if args.mode == "transformers-worker":
        return transformers_worker(args)

    rows = []
    common = dict(threads=args.threads, prompt_tokens=args.prompt_tokens, decode_tokens=args.decode_tokens,
                  repeats=args.repeats, seed=args.seed)
    for config in args.configs:
        name = os.path.splitext(os.path.basename(config))[0]
        tf = child("transformers-worker", config=os.path.abspath(config), **common) if args.transformers else {}
        precisions = ["exact", "native"] if args.precision == "both" else [args.precision]
        for dtype in args.dtypes:
            ours, theirs, failed = {}, {}, False
            for _ in range(args.rounds):
                with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
                    gguf = os.path.join(tmp, f"{name}-{dtype}.gguf")
                    for i, prec in enumerate(precisions):
                        # the first run writes the GGUF; later ones load it (same bytes, no second write)
                        src = ["--config", config, "--dtype", dtype, "--dump-gguf", gguf] if i == 0 else ["--model", gguf]
                        cmd = [args.persona, "bench", *src, "--precision", prec, "--kv-cache", args.kv_cache, "--threads", str(args.threads),
                               "--prompt-tokens", str(args.prompt_tokens), "--decode-tokens", str(args.decode_tokens),
                               "--repeats", str(args.repeats), "--seed", str(args.seed), "--json"]
                        env = dict(os.environ, PERSONA_SIMD=args.simd) if args.simd else None
                        r = subprocess.run(cmd, capture_output=True, text=True, env=env)
                        if r.returncode != 0:
                            print(f"persona bench failed for {name} {dtype} {prec}: {r.stderr.strip()}", file=sys.stderr)
                            failed = True
                            break
                        ours[prec] = best_of(ours.get(prec), json.loads(r.stdout))
                    if failed:
                        break
                    run = llama_bench(args.llama_bench, gguf, **common) if args.llama_bench else child("llama-worker", gguf=gguf, **common)
                    theirs = best_of(theirs, run)
            for prec in precisions:
                o = ours.get(prec)
                if o is None:
                    continue
                if o.get("monitor_overhead") is not None:
                    # overheads from the best plain / monitored / steered speeds of all rounds
                    o["monitor_overhead"] = o["decode_tok_s"] / o["decode_monitored_tok_s"] - 1
                    o["steer_overhead"] = o["decode_tok_s"] / o["decode_steered_tok_s"] - 1
                    o["bandwidth_bound_tok_s"] = o["bandwidth_gb_s"] * 1e9 / (o["weight_bytes_per_token"] + o.get("kv_bytes_per_token", 0))
                    o["bandwidth_ratio"] = o["decode_tok_s"] / o["bandwidth_bound_tok_s"]
                rows.append((name, dtype, prec, o, theirs, tf))
            print(f"done {name} {dtype}", file=sys.stderr)

    def ratio(a, b):
        return f"{a / b:.2f}x" if a and b else "n/a"

    first = rows[0][3] if rows else {}
    lines = [f"Machine: {first.get('cpu', '?')}, {args.threads} threads, SIMD {first.get('simd', '?')}, "
             f"measured bandwidth {first.get('bandwidth_gb_s', 0):.1f} GB/s; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. "
             f"llama.cpp: {('llama-bench ' + args.llama_bench) if args.llama_bench else 'llama-cpp-python'}. "
             f"Prompt {args.prompt_tokens} tokens, decode {args.decode_tokens} tokens, best of {args.repeats} repeats x {args.rounds} rounds, our KV cache {args.kv_cache} (llama.cpp: f16).",
             "",
             "| model | dtype | precision (ours) | prefill ours | prefill llama.cpp | ratio | decode ours | monitored, 8 traits x all layers (overhead) | steered (overhead) | decode llama.cpp | ratio | bandwidth-bound tok/s | ours / bound | peak RSS ours / llama.cpp (MiB) | load ours (s) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, dtype, prec, o, t, tf in rows:
        lp, ld = t.get("prefill_tok_s"), t.get("decode_tok_s")
        lines.append("| {} | {} | {} | {:.1f} | {} | {} | {:.2f} | {:.2f} ({:+.1f}%) | {:.2f} ({:+.1f}%) | {} | {} | {:.1f} | {:.0f}% | {:.0f} / {} | {:.3f} |".format(
            name, dtype, prec, o["prefill_tok_s"], f"{lp:.1f}" if lp else t.get("error", "n/a"), ratio(o["prefill_tok_s"], lp),
            o["decode_tok_s"], o["decode_monitored_tok_s"], o["monitor_overhead"] * 100,
            o["decode_steered_tok_s"], o["steer_overhead"] * 100,
            f"{ld:.2f}" if ld else "n/a", ratio(o["decode_tok_s"], ld), o["bandwidth_bound_tok_s"], o["bandwidth_ratio"] * 100,
            o["peak_rss_bytes"] / 2**20, f"{t['peak_rss_bytes'] / 2**20:.0f}" if "peak_rss_bytes" in t else "n/a", o["load_seconds"]))
    tfs = [(name, tf) for name, dtype, prec, o, t, tf in rows if tf]
    seen = set()
    for name, tf in tfs:
        if name in seen:
            continue
        seen.add(name)
        lines.append("")
        lines.append(f"transformers (bf16, random weights, {args.threads} threads) {name}: decode {tf.get('decode_tok_s', 0):.2f} tok/s, "
                     f"with all hidden states {tf.get('decode_hidden_tok_s', 0):.2f} tok/s" if "error" not in tf else f"transformers {name}: {tf['error']}")
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
