"""Do two start sets of the variant search find the same optimum?  (issue 12, item 6)

Compares the variant calibration tables of two runs that differ only in ``variants.search.seed`` (two
different space-filling designs, hence two different sets of Nelder-Mead starts):

    python benchmarks/pipeline/variant_starts.py RUN1 RUN2 --ref RUN1/resources/reference [--n-boot 100]

RUN1, RUN2: the two run directories (results/variants/l<l>/*.parquet and results/calibration/optimum.parquet).
Per variant:

* both best points are evaluated again with the same common random numbers and the same bootstrap
  resamples (joint: EPM replicas and reference units), so their difference dL = L_stat(best 1) -
  L_stat(best 2) has a paired error: ``z_paired`` = dL / std(dL);
* the best L_stat of each run with its own bootstrap error;
* each free parameter of each best point and the range of the points (of both runs) that cannot be
  told from the better of the two (L_stat within its error of the minimum).

"agree" when |z_paired| <= 2: the two searches found optima of the same quality within errors; the
parameter ranges say how well the reference pins the parameters.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd


def main() -> None:
    from epcal.refdir import read_reference
    from epcal.schema import read_metadata
    from epcal.variant_search import point_evaluator

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run1")
    ap.add_argument("run2")
    ap.add_argument("--ref", required=True, help="the reference directory of the runs")
    ap.add_argument("--l", default="6.6")
    ap.add_argument("--n-boot", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    opt = pd.read_parquet(Path(args.run1) / "results/calibration/optimum.parquet")
    opt = opt.loc[(opt["l"] - float(args.l)).abs().idxmin()]
    ref = read_reference(args.ref)
    rows = []
    for pa in sorted((Path(args.run1) / f"results/variants/l{args.l}").glob("*.parquet")):
        pb = Path(args.run2) / f"results/variants/l{args.l}" / pa.name
        if not pb.exists():
            continue
        ta, tb = pd.read_parquet(pa), pd.read_parquet(pb)
        ra, rb = ta[ta.best].iloc[0], tb[tb.best].iloc[0]
        cfg = read_metadata(pa)["cfg"]
        evaluate, _ = point_evaluator(ref, ra.variant, opt, cfg, threads=args.threads, log=lambda *_: None)
        keys = ("k", "lam", "chi", "tau_c", "dgamma_pl")
        boots = []
        for r in (ra, rb):
            t = evaluate({k: float(r[k]) for k in keys}, n_boot=args.n_boot, boot_seed=12345)
            boots.append(t[t["resample"] == "joint"].sort_values("boot")["L_stat"].to_numpy())
        d = boots[0] - boots[1]
        z = (ra.L_stat - rb.L_stat) / d.std(ddof=1)
        names = ra.free.split(",")
        both = pd.concat([ta[~ta.runaway], tb[~tb.runaway]])
        Lmin = min(ra.L_stat, rb.L_stat)
        sig = ra.L_stat_err if ra.L_stat <= rb.L_stat else rb.L_stat_err
        acc = both[both.L_stat <= Lmin + sig]
        line = {"variant": ra.variant,
                "L_stat (seed 1 | seed 2)": f"{ra.L_stat:.3f}±{ra.L_stat_err:.3f} | {rb.L_stat:.3f}±{rb.L_stat_err:.3f}",
                "dL ± paired err": f"{ra.L_stat - rb.L_stat:+.3f} ± {d.std(ddof=1):.3f}", "z_paired": f"{z:+.1f}"}
        for nm in names:
            line[nm] = f"{ra[nm]:.3g} | {rb[nm]:.3g} [{acc[nm].min():.3g}, {acc[nm].max():.3g}]"
        line["status"] = f"{ra.param_err_status}/{rb.param_err_status}"
        line["agree"] = bool(abs(z) <= 2)
        rows.append(line)
        print(line, flush=True)
    df = pd.DataFrame(rows).fillna("")
    try:
        print(df.to_markdown(index=False))
    except ImportError:  # tabulate not installed
        print(df.to_string(index=False))


if __name__ == "__main__":
    main()
