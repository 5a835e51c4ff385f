"""Interleaved A/B timing of the engine benchmark between two source trees (same machine, same load).

Runs ``benchmarks/engine.py`` alternately with PYTHONPATH=<tree A>/src and <tree B>/src, ``--rounds``
times each (fresh processes; numba caches compiled before timing), and prints the per-round medians and
the median over rounds.  Usage:

    python benchmarks/ab_interleaved.py /tmp/epcal_base . --rounds 5 --runs 20 [--variant C]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

KEYS = ("aqs_run_median_s", "aqs_run_cpu_median_s", "aqs_run_min_s", "quench_median_s", "probe_full_median_s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("tree_a")
    ap.add_argument("tree_b")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--variant", default="C")
    args = ap.parse_args()
    bench = Path(__file__).resolve().parent / "engine.py"
    res = {"A": [], "B": []}
    for i in range(args.rounds):
        for tag, tree in (("A", args.tree_a), ("B", args.tree_b)):
            with tempfile.NamedTemporaryFile(suffix=".json") as fh:
                env = {**os.environ, "PYTHONPATH": str(Path(tree).resolve() / "src")}
                cmd = [sys.executable, str(bench), "--runs", str(args.runs), "--json", fh.name]
                if args.variant != "C":
                    cmd += ["--variant", args.variant]
                subprocess.run(cmd, env=env, check=True, capture_output=True)
                r = json.load(open(fh.name))
            res[tag].append(r)
            print(f"round {i} {tag}: " + "  ".join(f"{k}={r[k] * 1e3:.2f} ms" for k in KEYS)
                  + f"  load={r['load_average']:.2f}  {r['code_version']}", flush=True)
    for k in KEYS:
        a = statistics.median(r[k] for r in res["A"])
        b = statistics.median(r[k] for r in res["B"])
        print(f"{k}: A {a * 1e3:.2f} ms, B {b * 1e3:.2f} ms, B/A = {b / a:.3f}")


if __name__ == "__main__":
    main()
