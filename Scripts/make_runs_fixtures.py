#!/usr/bin/env python3
"""Reference numbers for Tests/PersonaRunsTests (statistics of trait curves), computed with numpy.
Run by hand, not in CI:

    /work/V/bin/python Scripts/make_runs_fixtures.py

Last run with: Python 3.11.7, numpy 2.4.6 (versions are also written into the fixture).
Writes Tests/PersonaRunsTests/Fixtures/stats_reference.json from synthetic, seeded curves (no shared data copied).
"""
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "Tests" / "PersonaRunsTests" / "Fixtures" / "stats_reference.json"


def running_avg(x, w):
    # The per-token project's trailing window, growing at the start.
    return [float(np.mean(x[max(0, i - w + 1): i + 1])) for i in range(len(x))]


def pertoken_rule(x):
    base = x[:3]
    thr = np.mean(base) + np.std(base)  # np.std: population std (ddof=0)
    for i in range(3, len(x)):
        if x[i] > thr:
            return i
    return None


def main():
    rng = np.random.RandomState(20261127)
    n = 40
    t = np.arange(n)
    curves = {
        "happy": np.round(0.5 * np.sin(t / 5.0) + 0.3 * rng.randn(n) + 1.0, 6),
        "evil": np.round(-0.4 * np.sin(t / 5.0) + 0.3 * rng.randn(n), 6),
        "calm": np.round(0.05 * t + 0.2 * rng.randn(n) - 0.5, 6),
    }
    names = sorted(curves)
    out = {
        "generator": {"python": sys.version.split()[0], "numpy": np.__version__, "seed": 20261127},
        "curves": {k: v.tolist() for k, v in curves.items()},
        "stats": {},
        "correlations": {"traits": names, "matrix": np.corrcoef(np.stack([curves[k] for k in names])).tolist()},
    }
    for k, x in curves.items():
        out["stats"][k] = {
            "mean": float(np.mean(x)), "std": float(np.std(x)), "min": float(np.min(x)), "max": float(np.max(x)),
            "spikiness": float(np.std(x) / abs(np.mean(x))),
            "running_avg_5": running_avg(x, 5), "running_avg_10": running_avg(x, 10),
            "pertoken_rule": pertoken_rule(x),
            "pertoken_spikes": [int(i) for i in np.where(x > np.mean(x) + np.std(x))[0]],
        }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out, indent=1) + "\n")
    print("wrote", OUT, OUT.stat().st_size, "bytes")


if __name__ == "__main__":
    main()
