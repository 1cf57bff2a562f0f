#!/usr/bin/env python3
"""Bounded loopback load test of `persona serve` (issue 8).

Starts `persona serve` on 127.0.0.1 with stories260K and its example vectors in a fresh temporary run folder,
then runs several rounds of concurrent clients against the OpenAI endpoint (POST /v1/chat/completions,
max_tokens 16) and the dashboard API (GET /api/runs, GET /api/runs/{id}). Every response must be 200, or a
deliberate 429 from the generation queue (which must carry Retry-After); anything else, or a connection error,
is a failure. The server's RSS is sampled from /proc/<pid>/status throughout; round 1 is the warm-up, and the RSS
after the last round may exceed the RSS after round 1 by at most --rss-margin-mb.

Python standard library only; loopback only; bounded in requests and time (the server is stopped at the end, also
on failure). Exit status 0 = pass, 1 = unexpected responses or RSS growth, 2 = setup failure.

    python3 Scripts/load_test.py --persona /path/to/release/persona
"""

import argparse
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HOST = "127.0.0.1"
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def percentile(xs, p):
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.latency = {}   # endpoint -> [seconds] of 200s
        self.status = {}    # endpoint -> {status: count}
        self.errors = []    # unexpected statuses / exceptions (first few kept)
        self.error_count = 0

    def record(self, endpoint, status, dt, problem=None):
        with self.lock:
            self.status.setdefault(endpoint, {}).setdefault(status, 0)
            self.status[endpoint][status] += 1
            if status == 200:
                self.latency.setdefault(endpoint, []).append(dt)
            if problem:
                self.error_count += 1
                if len(self.errors) < 20:
                    self.errors.append(f"{endpoint}: {problem}")


def request(conn, method, path, body=None):
    headers = {"Content-Type": "application/json"} if body is not None else {}
    conn.request(method, path, body=body, headers=headers)
    r = conn.getresponse()
    data = r.read()
    return r.status, r.getheader("Retry-After"), data


def client(kind, port, deadline, budget, stats, run_ids, timeout):
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    i = 0
    while time.monotonic() < deadline and budget.take():
        i += 1
        if kind == "chat":
            endpoint, method, path = "POST /v1/chat/completions", "POST", "/v1/chat/completions"
            body = json.dumps({"model": "stories260K", "max_tokens": 16, "temperature": 0.8, "seed": i,
                               "messages": [{"role": "user", "content": f"Once upon a time {i}"}]})
        elif kind == "list":
            endpoint, method, path, body = "GET /api/runs", "GET", "/api/runs", None
        else:
            endpoint, method, body = "GET /api/runs/{id}", "GET", None
            path = f"/api/runs/{run_ids[i % len(run_ids)]}"
        t0 = time.monotonic()
        try:
            status, retry_after, data = request(conn, method, path, body)
        except (OSError, http.client.HTTPException) as e:
            stats.record(endpoint, "exception", time.monotonic() - t0, f"{type(e).__name__}: {e}")
            conn.close()
            conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
            continue
        dt = time.monotonic() - t0
        problem = None
        if status == 200:
            try:
                doc = json.loads(data)
                if kind == "chat" and not doc.get("choices"):
                    problem = "200 without choices"
            except ValueError:
                problem = "200 with a body that is not JSON"
        elif status == 429 and kind == "chat":
            if retry_after is None:
                problem = "429 without Retry-After"
            time.sleep(0.05)  # back off a little, as a polite client would
        else:
            problem = f"HTTP {status}: {data[:200]!r}"
        stats.record(endpoint, status, dt, problem)
    conn.close()


class Budget:
    """At most `n` requests in a round, over all clients."""

    def __init__(self, n):
        self.n, self.lock = n, threading.Lock()

    def take(self):
        with self.lock:
            if self.n <= 0:
                return False
            self.n -= 1
            return True


def wait_ready(port, proc, seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if proc.poll() is not None:
            return False
        try:
            c = http.client.HTTPConnection(HOST, port, timeout=2)
            status, _, _ = request(c, "GET", "/api/runs")
            c.close()
            if status == 200:
                return True
        except OSError:
            pass
        time.sleep(0.2)
    return False


def list_run_ids(port):
    c = http.client.HTTPConnection(HOST, port, timeout=10)
    status, _, data = request(c, "GET", "/api/runs")
    c.close()
    doc = json.loads(data)
    items = doc if isinstance(doc, list) else next((v for v in doc.values() if isinstance(v, list)), [])
    return [it["id"] for it in items if isinstance(it, dict) and "id" in it]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--persona", required=True, help="path to the persona binary (a release build)")
    ap.add_argument("--model", default=os.path.join(REPO, "../shared/models/stories260K/stories260K.gguf"))
    ap.add_argument("--vectors", default=os.path.join(REPO, "examples/vectors/stories260K"))
    ap.add_argument("--chat-clients", type=int, default=16)
    ap.add_argument("--api-clients", type=int, default=16, help="clients on the run API (half list, half get)")
    ap.add_argument("--rounds", type=int, default=4, help="round 1 is the warm-up for the RSS check")
    ap.add_argument("--round-seconds", type=float, default=10.0)
    ap.add_argument("--round-requests", type=int, default=4000, help="request cap per round, all clients")
    ap.add_argument("--max-concurrent", type=int, default=2, help="passed to persona serve")
    ap.add_argument("--rss-margin-mb", type=float, default=32.0)
    ap.add_argument("--json", help="also write the summary here")
    args = ap.parse_args()

    port = free_port()
    runs_dir = tempfile.mkdtemp(prefix="persona-load-")
    cmd = [args.persona, "serve", "--host", HOST, "--port", str(port), "--model", args.model,
           "--vectors", args.vectors, "--runs", runs_dir, "--max-concurrent", str(args.max_concurrent)]
    log = open(os.path.join(runs_dir, "serve.log"), "wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    samples = []  # (t, rss KiB)
    stop_sampling = threading.Event()

    def sampler():
        t0 = time.monotonic()
        while not stop_sampling.is_set():
            r = rss_kib(proc.pid)
            if r is not None:
                samples.append((time.monotonic() - t0, r))
            stop_sampling.wait(0.2)

    try:
        if not wait_ready(port, proc, 60):
            print(f"server did not come up; log: {os.path.join(runs_dir, 'serve.log')}", file=sys.stderr)
            return 2
        threading.Thread(target=sampler, daemon=True).start()
        run_ids = list_run_ids(port)
        if not run_ids:
            print("GET /api/runs listed no runs (the example runs should be there)", file=sys.stderr)
            return 2
        stats = Stats()
        round_end_rss = []
        started = time.monotonic()
        for rnd in range(args.rounds):
            deadline = time.monotonic() + args.round_seconds
            budget = Budget(args.round_requests)
            kinds = ["chat"] * args.chat_clients + [("list" if i % 2 == 0 else "get") for i in range(args.api_clients)]
            threads = [threading.Thread(target=client, args=(k, port, deadline, budget, stats, run_ids, 60)) for k in kinds]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=args.round_seconds + 90)
            if any(t.is_alive() for t in threads):
                stats.record("harness", "hang", 0, "a client did not finish within its round + 90 s")
            time.sleep(1.0)  # let in-flight work settle before reading RSS
            round_end_rss.append(rss_kib(proc.pid))
        elapsed = time.monotonic() - started
        if proc.poll() is not None:
            stats.record("harness", "exit", 0, f"server exited with status {proc.returncode}")
    finally:
        stop_sampling.set()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()

    rss = [r for _, r in samples]
    growth_mb = (round_end_rss[-1] - round_end_rss[0]) / 1024.0 if len(round_end_rss) > 1 and None not in round_end_rss else 0.0
    summary = {
        "binary": args.persona, "rounds": args.rounds, "round_seconds": args.round_seconds,
        "chat_clients": args.chat_clients, "api_clients": args.api_clients, "max_concurrent": args.max_concurrent,
        "elapsed_s": round(elapsed, 1),
        "status_counts": {e: {str(k): v for k, v in s.items()} for e, s in stats.status.items()},
        "latency_ms": {e: {"n": len(v), "p50": round(percentile(v, 50) * 1000, 2), "p99": round(percentile(v, 99) * 1000, 2)}
                       for e, v in stats.latency.items()},
        "requests_per_s": round(sum(sum(s.values()) for s in stats.status.values()) / max(elapsed, 1e-9), 1),
        "rss_mb": {"start": round(rss[0] / 1024, 1) if rss else None, "end": round(rss[-1] / 1024, 1) if rss else None,
                   "peak": round(max(rss) / 1024, 1) if rss else None,
                   "after_each_round": [round(r / 1024, 1) for r in round_end_rss if r is not None],
                   "growth_after_warmup": round(growth_mb, 1), "margin": args.rss_margin_mb},
        "unexpected": stats.error_count, "first_errors": stats.errors,
    }
    print(json.dumps(summary, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=2)
    failed = False
    if stats.error_count:
        print(f"FAIL: {stats.error_count} unexpected responses or errors", file=sys.stderr)
        failed = True
    if growth_mb > args.rss_margin_mb:
        print(f"FAIL: RSS grew {growth_mb:.1f} MB after the warm-up round (margin {args.rss_margin_mb} MB)", file=sys.stderr)
        failed = True
    if not failed:
        print("PASS", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
