"""Engine speed benchmark at l = 6.6 (L_EP = 15, N = 36, k = 2.18, lam = 2.05, chi = 2.25).

Single core, after compilation (a warm-up run is excluded):
  * one AQS run gamma_ext 0 -> 2 from a random initial state (median over runs);
  * one KMC quench at T = 0.25 to stationarity (median);
  * probing one state at every element position, n = 1..8, 12 orientations (median).
With --variant A or B (appendix A.8.1-A.8.2, the paper's settings) the same for that model; A also
reports the build of each sample's lattice (influence matrix, responses) and the first probing of a
sample, which builds its 1800 fixed-boundary patches (later probings of that sample reuse them).

Usage:  python benchmarks/engine.py [--runs 20] [--variant C] [--json out.json]
Numbers measured on the project machine are recorded in benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

os.environ.setdefault("NUMBA_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # model A's FEM solves: one core, as the engine runs

import numpy as np  # noqa: E402

from epcal import code_version  # noqa: E402
from epcal.params import EPMParams  # noqa: E402
from epcal.simulate import Model, rng_for  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--variant", default="C", help="model variant (appendix A.8), default C")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    p = EPMParams.for_element_length(6.6, 2.18, 2.05, 2.25)
    if args.variant != "C":
        from epcal.variants import variant

        model = Model(p, variant=variant(args.variant))
    else:
        model = Model(p)
    alphas = np.arange(0, 180, 15.0)
    n_list = list(range(1, 9))
    builds, first_probe = [], []

    def new_state(seed, r):
        t = time.perf_counter()
        if hasattr(model, "new_state"):
            st, rng = model.new_state(seed, r)  # model C: rng_for(p, seed, r, 0), no sample
        else:  # an engine from before the variants A and B (interleaved A/B timing against it)
            rng = rng_for(p, seed, r, 0)
            st = model.random_state(rng)
        builds.append(time.perf_counter() - t)
        return st, rng

    def one_aqs(r):
        st, rng = new_state(1, r)
        t, c = time.perf_counter(), time.process_time()
        recs = model.drive(st, rng, 2.0)
        return time.perf_counter() - t, int(recs[3].sum()), int((recs[3] > 0).sum()), time.process_time() - c

    def one_quench(r):
        st, rng = new_state(2, r)
        t = time.perf_counter()
        info = model.quench(st, 0.25, rng)
        return time.perf_counter() - t, info.events, st

    one_aqs(10_000)
    _, _, st = one_quench(10_000)
    model.probe(st, rng_for(p, 3, 0, 1), n_list, alphas)  # warm-up (compile)
    builds.clear()

    aqs = [one_aqs(r) for r in range(args.runs)]
    quench = [one_quench(r) for r in range(args.runs)]
    probe = []
    for r in range(max(3, args.runs // 4)):
        st = quench[r][2]
        model.drive(st, rng_for(p, 2, r, 0), 2.0)
        t = time.perf_counter()
        model.probe(st, rng_for(p, 3, r, 1), n_list, alphas)
        probe.append(time.perf_counter() - t)
        if args.variant == "A":  # the first probing built the sample's patches: a second one reuses them
            first_probe.append(probe[-1])
            t = time.perf_counter()
            model.probe(st, rng_for(p, 3, r, 1), n_list, alphas)
            probe[-1] = time.perf_counter() - t

    res = {
        "variant": args.variant,
        "aqs_run_median_s": statistics.median(a[0] for a in aqs),
        "aqs_run_min_s": min(a[0] for a in aqs),
        "aqs_run_cpu_median_s": statistics.median(a[3] for a in aqs),  # this process's CPU time (robust to load)
        "aqs_slips_per_run": statistics.mean(a[1] for a in aqs),
        "aqs_avalanches_per_run": statistics.mean(a[2] for a in aqs),
        "quench_median_s": statistics.median(q[0] for q in quench),
        "quench_min_s": min(q[0] for q in quench),
        "quench_events_median": statistics.median(q[1] for q in quench),
        "probe_full_median_s": statistics.median(probe),
        "probe_full_min_s": min(probe),
        "probe_tests_per_state": p.L * p.L * len(n_list) * len(alphas),
        "sample_build_median_s": statistics.median(builds),
        "probe_first_of_sample_median_s": statistics.median(first_probe) if first_probe else None,
        "runs": args.runs,
        "code_version": code_version(),
        "machine": f"{platform.machine()} {os.cpu_count()} cpus, python {platform.python_version()}",
        "load_average": os.getloadavg()[0],
    }
    print(json.dumps(res, indent=2))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(res, fh, indent=2)


if __name__ == "__main__":
    main()
