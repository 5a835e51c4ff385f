"""Compare the (lambda, chi) searches of one (l, k) cell: the paper's grid vs the scaled search.

A twin reference (EPM at l=6.6, k=2.2, lam=2.0, chi=2.25, T=0.25, its own seed) is made once;
for each k the grid (every lambda x chi, `replicas` runs each) and the scaled search
(surrogate scan in lambda at lambda_0 + chi refinement + true runs at the best candidates)
are run with the same replicas/seed, and the optimum, its L_macro (with its replica-bootstrap
error) and the number of runs are written to search_comparison.csv.

    nice python benchmarks/pipeline/compare_search.py [--k 1.5 2.2 2.75] [--out DIR]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from epcal.stages.macro import best_macro, sweep_macro_cell
from epcal.stages.twin import make_twin
from epcal.refdir import read_reference
from epcal.schema import MACRO, PROBE, write_table

HERE = Path(__file__).resolve().parent
MODEL = {"G": 13.2, "B": 59.0, "domain_length": 98.8045}
TWIN = {"l": 6.6, "k": 2.2, "lam": 2.0, "chi": 2.25, "T": 0.25, "seed": 777001, "replicas": 32,
        "n_list": [8], "alpha": [0.0, 90.0]}
# lam >= 1 and chi >= 1: at l = 6.6 the corner lam = 0.5, chi = 0.5 does not finish (engine issue reported)
LAM = {"min": 1.0, "max": 4.0, "step": 0.25}
CHI = [1.0, 1.5, 2.0, 2.5, 3.0, 4.0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--k", nargs="+", type=float, default=[1.5, 2.2, 2.75])
    ap.add_argument("--replicas", type=int, default=16)
    ap.add_argument("--out", default=str(HERE / "out"))
    a = ap.parse_args()
    out = Path(a.out)
    ref_dir = out / "twin"
    if not (ref_dir / "reference.yaml").exists():
        macro, probe, meta = make_twin(TWIN, MODEL)
        ref_dir.mkdir(parents=True, exist_ok=True)
        write_table(macro, ref_dir / "macro.parquet", {}, MACRO)
        write_table(probe, ref_dir / "probe.parquet", {}, PROBE)
        (ref_dir / "reference.yaml").write_text(yaml.safe_dump(meta))
    ref = read_reference(ref_dir)
    base = {"model": MODEL, "seed": 1000, "gamma_max": 2.0, "replicas": a.replicas, "n_boot": 50}
    rows = []
    for k in a.k:
        for method, search in (("grid", {"method": "grid", "lam": LAM, "chi": CHI}),
                               ("scaled", {"method": "scaled", "lam": LAM, "chi": CHI, "lam_points": 91,
                                           "coarse_replicas": a.replicas, "refine": 3})):
            t0 = time.perf_counter()
            cell = sweep_macro_cell(ref, 6.6, k, {**base, "search": search}, log=lambda m: print(m, flush=True))
            dt = time.perf_counter() - t0
            b = best_macro(cell)
            bo = cell[(cell.lam == b.lam) & (cell.chi == b.chi) & (cell.stage == b.stage) & (cell.boot >= 0)]
            rows.append({"k": k, "method": method, "lam": b.lam, "chi": b.chi, "L_macro": b.L_macro,
                         "L_macro_err": float(bo.L_macro.std(ddof=0)), "runs": int(cell.n_runs_cell.iloc[0]),
                         "seconds": round(dt, 1)})
            print(json.dumps(rows[-1]), flush=True)
    df = pd.DataFrame(rows)
    df.to_csv(HERE / "search_comparison.csv", index=False)
    print(df.to_string(index=False))


if __name__ == "__main__":
    main()
