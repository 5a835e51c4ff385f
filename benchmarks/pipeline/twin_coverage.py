"""Coverage of the calibration's error bars, measured on twin recoveries (issue 15).

Draws ``--n`` parameter points (k, lambda, chi, T) uniformly inside the searched ranges of a
configuration (default ``config/config.yaml``: k inside its grid, lambda and chi inside the macro
search, T inside the quench grid, each ``--margin`` away from the edges), makes for each a twin
reference with its own seed (disjoint from the calibration's), runs the calibration
(``results/calibration/optimum.parquet``: sweeps, fit, KMC temperature) against it, and reports
per parameter the bias (mean of x_hat - x with its standard error) and the fraction of recoveries
within 1 and 2 reported errors (with the binomial error of that fraction), plus how many k_hat and
T_hat came out as bounds.

    python benchmarks/pipeline/twin_coverage.py --n 20 --workdir /tmp/coverage --jobs 2
    python benchmarks/pipeline/twin_coverage.py --workdir /tmp/coverage --summary   # from finished runs

Each recovery runs in WORKDIR/twin_<i>/ (resumable: a finished one is not rerun); the table of all
recoveries is WORKDIR/coverage.csv, the summary WORKDIR/coverage.md.  ``--record CSV`` (e.g. a file
under benchmarks/pipeline/, committed) keeps the finished recoveries across machines: rows of the
same point, twin seed, config and calibration code version are taken from it instead of rerun,
and every newly finished recovery is added to it.
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import copy
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[2]
PARAMS = ("k", "lam", "chi", "T")


def _grid(spec):
    sys.path.insert(0, str(ROOT / "src"))
    from epcal.grids import grid_values

    return np.asarray(grid_values(spec), float)


def draw_points(cfg: dict, n: int, seed: int, margin: float) -> list[dict]:
    """n points drawn uniformly inside the searched ranges of ``cfg`` (a fraction ``margin`` of each
    range kept clear of its edges); chi >= 1.2 (below, runaway avalanches are common)."""
    rng = np.random.default_rng(seed)
    ks = _grid(cfg["k"])
    lam = cfg["macro"]["search"]["lam"]
    lam_lo, lam_hi = (float(lam["min"]), float(lam["max"])) if isinstance(lam, dict) else (min(lam), max(lam))
    chis = _grid(cfg["macro"]["search"]["chi"])
    Ts = _grid(cfg["quench"]["T"])

    def inside(lo, hi, log=False):
        if log:
            a, b = math.log(lo), math.log(hi)
            w = (b - a) * margin
            return float(math.exp(rng.uniform(a + w, b - w)))
        w = (hi - lo) * margin
        return float(rng.uniform(lo + w, hi - w))

    pts = []
    for i in range(n):
        pts.append({"k": round(inside(ks.min(), ks.max()), 3),
                    "lam": round(inside(max(lam_lo, 1.0), min(lam_hi, 3.5), log=True), 3),
                    "chi": round(inside(max(chis.min(), 1.2), chis.max()), 3),
                    "T": round(inside(Ts.min(), Ts.max()), 3),
                    "twin_seed": int(rng.integers(10**6, 10**7)), "index": i})
    return pts


def twin_config(base: dict, pt: dict, l: float) -> dict:
    cfg = copy.deepcopy(base)
    if pt["twin_seed"] == cfg["seed"]:
        raise ValueError("twin seed equals the calibration seed")
    cfg["reference"]["source"] = "twin"
    cfg["reference"]["twin"] = {**cfg["reference"]["twin"], "l": l, "k": pt["k"], "lam": pt["lam"],
                                "chi": pt["chi"], "T": pt["T"], "seed": pt["twin_seed"]}
    cfg["reference"].pop("tables", None)
    for stage in ("emergent", "slip_systems", "variants"):
        cfg[stage]["enabled"] = False
    return cfg


def run_one(workdir: Path, cfg: dict, cores: int) -> tuple[Path, float]:
    """Calibrate against one twin in ``workdir`` (skipped when its optimum exists)."""
    out = workdir / "results/calibration/optimum.parquet"
    if out.exists():
        return out, 0.0
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.yaml").write_text(yaml.safe_dump(cfg))
    exe = shutil.which("snakemake") or str(Path(sys.executable).parent / "snakemake")
    env = {**os.environ, "EPCAL_CACHE_DIR": str(workdir.parent / "cache")}
    t0 = time.perf_counter()
    r = subprocess.run([exe, "-s", str(ROOT / "Snakefile"), "--directory", str(workdir), "--configfile",
                        str(workdir / "config.yaml"), "-c", str(cores), "results/calibration/optimum.parquet"],
                       capture_output=True, text=True, env=env)
    (workdir / "snakemake.log").write_text(r.stdout + r.stderr)
    if r.returncode != 0:
        raise RuntimeError(f"{workdir}: snakemake failed (see {workdir / 'snakemake.log'})")
    return out, time.perf_counter() - t0


def code_version() -> str:
    """A hash of the code a recovery runs: src/epcal, the Snakefile and the rules."""
    import hashlib

    h = hashlib.sha256()
    files = sorted((ROOT / "src" / "epcal").rglob("*.py")) + [ROOT / "Snakefile"] \
        + sorted((ROOT / "workflow").rglob("*.smk")) + sorted((ROOT / "workflow" / "schemas").glob("*.yaml"))
    for f in files:
        h.update(f.relative_to(ROOT).as_posix().encode())
        h.update(f.read_bytes())
    return "src-" + h.hexdigest()[:12]


def config_hash(cfg: dict) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:12]


def summarize(rows: pd.DataFrame) -> str:
    lines = ["| parameter | n | bias (mean x_hat - x) | its s.e. | within 1 sigma | within 2 sigma | bounds |",
             "|---|---|---|---|---|---|---|"]
    for x in PARAMS:
        if f"{x}_hat" not in rows:  # e.g. a re-fit of k, lambda, chi only
            continue
        d = rows[np.isfinite(rows[f"{x}_hat"])]
        dev = d[f"{x}_hat"] - d[x]
        z = dev / d[f"{x}_hat_err"]
        n = len(d)
        f1, f2 = float((z.abs() <= 1).mean()), float((z.abs() <= 2).mean())
        e1, e2 = math.sqrt(0.68 * 0.32 / n), math.sqrt(0.95 * 0.05 / n)
        st = d.get(f"{x}_hat_status")
        bounds = int((st != "estimate").sum()) if st is not None else 0
        lines.append(f"| {x} | {n} | {dev.mean():+.4f} | {dev.std(ddof=1) / math.sqrt(n):.4f} | "
                     f"{f1:.2f} (target 0.68 ± {e1:.2f}) | {f2:.2f} (target 0.95 ± {e2:.2f}) | {bounds} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(ROOT / "config/config.yaml"))
    ap.add_argument("--n", type=int, default=20, help="number of twin recoveries")
    ap.add_argument("--seed", type=int, default=20261201, help="seed of the parameter points and twin seeds")
    ap.add_argument("--margin", type=float, default=0.1, help="fraction of each range kept clear of its edges")
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--jobs", type=int, default=2, help="recoveries run at once (one core each)")
    ap.add_argument("--summary", action="store_true", help="only summarize the finished recoveries")
    ap.add_argument("--record", default=None, help="CSV of finished recoveries kept across machines (read, extended)")
    a = ap.parse_args(argv)
    base = yaml.safe_load(Path(a.config).read_text())
    if len(base["l"]) != 1:
        raise SystemExit(f"{a.config}: coverage runs one element length; config 'l' = {base['l']}")
    work = Path(a.workdir)
    work.mkdir(parents=True, exist_ok=True)
    pts = draw_points(base, a.n, a.seed, a.margin)
    (work / "points.json").write_text(json.dumps(pts, indent=1))
    t0 = time.perf_counter()
    walls = {}
    version = code_version()
    cfg_hash = config_hash(base)
    recorded = pd.read_csv(a.record) if a.record and Path(a.record).exists() else pd.DataFrame()
    done = {}
    for _, r in recorded.iterrows():
        if r.get("code_version") == version and r.get("config_hash") == cfg_hash:
            done[int(r["index"])] = r
    todo = [p for p in pts if not (p["index"] in done and int(done[p["index"]]["twin_seed"]) == p["twin_seed"])]
    if not a.summary:
        with cf.ThreadPoolExecutor(max_workers=a.jobs) as pool:
            futs = {pool.submit(run_one, work / f"twin_{p['index']:02d}", twin_config(base, p, base["l"][0]), 1): p
                    for p in todo}
            for f in cf.as_completed(futs):
                p = futs[f]
                try:
                    _, w = f.result()
                    walls[p["index"]] = w
                    print(f"twin {p['index']:2d} done ({w:.0f} s)", flush=True)
                except RuntimeError as exc:
                    print(f"twin {p['index']:2d} FAILED: {exc}", flush=True)
    rows = []
    for p in pts:
        f = work / f"twin_{p['index']:02d}/results/calibration/optimum.parquet"
        if not f.exists():
            if p["index"] in done and int(done[p["index"]]["twin_seed"]) == p["twin_seed"]:
                rows.append(done[p["index"]].to_dict())
            continue
        o = pd.read_parquet(f).iloc[0]
        rows.append({**p, **{c: o[c] for c in o.index if c.endswith(("_hat", "_err", "_err_epm", "_err_ref",
                                                                         "_status")) or c in ("L_stat",)},
                     "code_version": version, "config_hash": cfg_hash})
    df = pd.DataFrame(rows)
    df.to_csv(work / "coverage.csv", index=False)
    if a.record:
        keep = recorded[~((recorded.get("code_version") == version) & (recorded.get("config_hash") == cfg_hash))] \
            if len(recorded) else recorded
        pd.concat([keep, df], ignore_index=True).to_csv(a.record, index=False)
    text = (f"{len(df)} of {len(pts)} twin recoveries, config {a.config}, point seed {a.seed}, "
            f"wall {time.perf_counter() - t0:.0f} s\n\n" + summarize(df))
    (work / "coverage.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
