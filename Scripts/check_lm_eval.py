#!/usr/bin/env python3
"""lm-evaluation-harness against `persona serve`, checked against the same harness on transformers.

Run BY HAND (never in CI: it needs torch and lm-eval, several GB), from the repository root after
`swift build -c release --product persona`:

    python3 -m venv /work/LM && /work/LM/bin/pip install "lm-eval[api]==0.4.13" torch transformers gguf sentencepiece
    /work/LM/bin/python Scripts/check_lm_eval.py [--steer evil:8]

Pinned environment it was run with (checked at start; pass --any-version to override):
    lm-eval 0.4.13 / transformers 5.25.0 / torch 2.15.0 / gguf 0.19.0

What it does, offline: writes a 10-question multiple-choice task (easy facts, 4 choices each) and SmolLM2's tokenizer
(transformers reads it from the GGUF) to a temporary folder, then runs the task three ways:
  1. lm-eval's `local-completions` model against `persona serve` on SmolLM2-135M-Instruct.Q4_1.gguf (loglikelihood
     requests: token-id prompts, echo, logprobs 1, max_tokens 1);
  2. lm-eval's `hf` model on the same GGUF, dequantized to float32 by transformers (the independent reference);
  3. with --steer, (1) again on `persona serve --steer SPEC`.
It prints each accuracy and the largest |loglikelihood difference| between (1) and (2) over every (question, choice),
and fails if that exceeds --tolerance.
"""
import argparse
import glob
import importlib.metadata as md
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PINNED = {"lm_eval": "0.4.13", "transformers": "5.25.0", "torch": "2.15.0", "gguf": "0.19.0"}
QUESTIONS = [
    ("The capital of France is", [" Paris", " Rome", " Berlin", " Madrid"], 0),
    ("The capital of Italy is", [" Paris", " Rome", " Berlin", " Madrid"], 1),
    ("The capital of Germany is", [" Paris", " Rome", " Berlin", " Madrid"], 2),
    ("The capital of Spain is", [" Paris", " Rome", " Berlin", " Madrid"], 3),
    ("Two plus two equals", [" four", " five", " three", " ten"], 0),
    ("The color of the sky on a clear day is", [" blue", " green", " red", " black"], 0),
    ("Water freezes at zero degrees", [" Celsius", " Kelvin", " Newton", " Joule"], 0),
    ("The largest planet in the solar system is", [" Jupiter", " Mars", " Venus", " Mercury"], 0),
    ("A week has seven", [" days", " hours", " years", " cats"], 0),
    ("The opposite of hot is", [" cold", " warm", " tall", " loud"], 0),
]
TASK = """task: easy_facts
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{q}}}}"
doc_to_target: answer
doc_to_choice: "{{{{choices}}}}"
target_delimiter: ""
metric_list:
  - metric: acc
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def lm_eval(work, name, model, model_args):
    out = work / f"out_{name}"
    env = dict(os.environ, HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1")
    cmd = [str(Path(sys.executable).parent / "lm_eval"), "--model", model, "--tasks", "easy_facts", "--include_path", str(work),
           "--model_args", model_args, "--log_samples", "--output_path", str(out)]
    if model == "hf":
        cmd += ["--device", "cpu"]
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results = json.load(open(sorted(glob.glob(str(out / "**/results_*.json"), recursive=True))[-1]))
    samples = [json.loads(l) for l in open(sorted(glob.glob(str(out / "**/samples_easy_facts*.jsonl"), recursive=True))[-1])]
    samples.sort(key=lambda s: s["doc_id"])
    lls = [[float(r[0][0]) for r in s["resps"]] for s in samples]
    return results["results"]["easy_facts"]["acc,none"], lls


def with_server(binary, model, vectors, steer, body):
    port = free_port()
    args = [binary, "serve", "--model", model, "--vectors", vectors, "--port", str(port), "--no-examples",
            "--runs", tempfile.mkdtemp(prefix="persona-lm-eval-runs-")]
    if steer:
        args += ["--steer", steer]
    server = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=1)
                break
            except OSError:
                if server.poll() is not None:
                    sys.exit(f"persona serve exited with {server.returncode}")
                time.sleep(0.1)
        return body(f"http://127.0.0.1:{port}/v1/completions")
    finally:
        server.terminate()
        server.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--persona", default=str(REPO / ".build/release/persona"))
    ap.add_argument("--shared", default=os.environ.get("PERSONA_SHARED", str(REPO.parent / "shared")))
    ap.add_argument("--steer", help="also run the task on `persona serve --steer SPEC`, e.g. evil:8")
    ap.add_argument("--tolerance", type=float, default=1e-4, help="largest |loglikelihood difference| accepted")
    ap.add_argument("--any-version", action="store_true")
    a = ap.parse_args()
    if not a.any_version:
        for pkg, want in PINNED.items():
            have = md.version(pkg.replace("_", "-"))
            if have != want:
                sys.exit(f"{pkg} {have} installed, {want} pinned (pass --any-version to run anyway)")
    from transformers import AutoTokenizer

    model_dir = Path(a.shared) / "models/smollm2-135m-instruct"
    gguf = "SmolLM2-135M-Instruct.Q4_1.gguf"
    vectors = str(REPO / "examples/vectors/smollm2")
    work = Path(tempfile.mkdtemp(prefix="persona-lm-eval-"))
    with open(work / "test.jsonl", "w") as f:
        for q, choices, answer in QUESTIONS:
            f.write(json.dumps({"q": q, "choices": choices, "answer": answer}) + "\n")
    (work / "easy_facts.yaml").write_text(TASK.format(data=work / "test.jsonl"))
    tok = work / "tokenizer"
    AutoTokenizer.from_pretrained(str(model_dir), gguf_file=gguf).save_pretrained(str(tok))

    def served(url):
        return lm_eval(work, "persona", "local-completions", f"model=SmolLM2,base_url={url},tokenizer={tok},tokenized_requests=True")

    acc, ours = with_server(a.persona, str(model_dir / gguf), vectors, None, served)
    ref_acc, ref = lm_eval(work, "hf", "hf", f"pretrained={model_dir},gguf_file={gguf},tokenizer={tok},dtype=float32")
    diff = max(abs(x - y) for q, r in zip(ours, ref) for x, y in zip(q, r))
    print(f"persona serve: acc {acc:.2f}; transformers (GGUF dequantized, float32): acc {ref_acc:.2f}")
    print(f"largest |loglikelihood difference| over {sum(map(len, ours))} (question, choice) pairs: {diff:.2e}")
    if a.steer:
        s_acc, steered = with_server(a.persona, str(model_dir / gguf), vectors, a.steer, served)
        shift = sum(abs(x - y) for q, r in zip(steered, ours) for x, y in zip(q, r)) / sum(map(len, ours))
        print(f"persona serve --steer {a.steer}: acc {s_acc:.2f}; mean |loglikelihood shift| {shift:.3f}")
    if diff > a.tolerance:
        sys.exit(f"FAIL: loglikelihoods differ by {diff:.2e} > {a.tolerance}")
    print("OK")


if __name__ == "__main__":
    main()
