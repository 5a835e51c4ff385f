"""Re-estimate finished twin recoveries with the current estimator, without rerunning the sweeps.

For each WORKDIR/twin_<i>/ of a ``twin_coverage.py`` run: the current fit (the ``fit`` section of
--config, default config/config.yaml, or --half-width / --interp) on its stored meso cells, then the current quench scan
and T_hat at that optimum against the twin's reference (the quench stage is cheap: ~15 s per scan),
and the coverage summary of ``twin_coverage.py``.  How the estimator fixes of issue 15 were
developed (RESULTS.md section 4); a fresh ``twin_coverage.py`` run at other points is the test.

    python benchmarks/pipeline/refit_coverage.py --workdir /tmp/coverage --out /tmp/coverage/refit
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import functools
import json
import sys
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def refit_one(pt: dict, work: Path, out: Path, hw, interp, per_k, chw, no_quench: bool, k_model="parabola") -> dict | None:
    """The current estimator on one stored recovery (None when it has no meso cells)."""
    from epcal import fits
    from epcal.stages.temperature import optimum_table, quench_temperature
    from epcal.refdir import read_reference
    from twin_coverage import PARAMS

    d = work / f"twin_{pt['index']:02d}"
    cfg = yaml.safe_load((d / "config.yaml").read_text())
    l = cfg["l"][0]
    cells = sorted((d / f"results/sweep/meso/l{l:g}").glob("k*.parquet"))
    if not cells:
        return None
    opt = fits.fit_optimum(pd.concat([pd.read_parquet(c) for c in cells], ignore_index=True), hw, interp,
                           per_k, chw, k_model)
    if no_quench:
        o = opt.iloc[0]
        return {**pt, **{c: o[c] for c in o.index if c.split("_hat")[0] in PARAMS[:3]}}
    scan_path = out / f"quench_{pt['index']:02d}.parquet"
    if not scan_path.exists():
        ref = read_reference(d / "results/reference/twin", validate=False, alphas=(0.0, 90.0))
        q = {k: v for k, v in cfg["quench"].items() if k not in ("resources", "enabled", "half_width")}
        quench_temperature(ref, opt.iloc[0], {**q, "model": cfg["model"], "seed": cfg["seed"]},
                           log=lambda *_: None).to_parquet(scan_path)
    o = optimum_table([opt], [pd.read_parquet(scan_path)], cfg["quench"]["half_width"]).iloc[0]
    print(f"twin {pt['index']:2d}: " + "  ".join(f"{p} {pt[p]:.3f} -> {o[p + '_hat']:.3f} +- {o[p + '_hat_err']:.3f}"
                                              for p in PARAMS), flush=True)
    return {**pt, **{c: o[c] for c in o.index if c.split("_hat")[0] in PARAMS or c.startswith(("T_hat", "k_hat"))}}


def main(argv=None) -> int:
    from twin_coverage import summarize

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", required=True, help="a twin_coverage.py work directory")
    ap.add_argument("--out", required=True, help="directory for the new quench scans and the summary")
    ap.add_argument("--config", default=str(ROOT / "config/config.yaml"), help="whose fit section is the estimator")
    ap.add_argument("--half-width", type=float, default=None)
    ap.add_argument("--interp", default=None)
    ap.add_argument("--per-k", default=None, help="fit.per_k (default: the config's)")
    ap.add_argument("--chi-half-width", type=float, default=None, help="fit.chi_half_width (default: the config's)")
    ap.add_argument("--k-model", default=None, help="fit.k_model (default: the config's)")
    ap.add_argument("--no-quench", action="store_true", help="k, lambda, chi only (no new quench scans)")
    ap.add_argument("--jobs", type=int, default=1, help="recoveries re-estimated at once (one core each)")
    a = ap.parse_args(argv)
    work, out = Path(a.workdir), Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    fit_cfg = yaml.safe_load(Path(a.config).read_text())["fit"]
    hw = a.half_width if a.half_width is not None else fit_cfg["half_width"]
    interp = a.interp or fit_cfg["interp"]
    per_k = a.per_k or fit_cfg.get("per_k", "chi_profile")
    chw = a.chi_half_width if a.chi_half_width is not None else fit_cfg.get("chi_half_width", 0.3)
    k_model = a.k_model or fit_cfg.get("k_model", "parabola")
    print(f"fit: half_width {hw}, interp {interp}, per_k {per_k}, chi_half_width {chw}, k_model {k_model}")
    pts = json.loads((work / "points.json").read_text())
    job = functools.partial(refit_one, work=work, out=out, hw=hw, interp=interp, per_k=per_k, chw=chw,
                            no_quench=a.no_quench, k_model=k_model)
    with cf.ProcessPoolExecutor(max_workers=max(1, a.jobs)) as pool:
        rows = [r for r in pool.map(job, pts) if r is not None]
    df = pd.DataFrame(rows)
    df.to_csv(out / "refit.csv", index=False)
    text = summarize(df)
    (out / "refit.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
