"""Do two start sets of the variant search find the same optimum?  (issue 12, item 6)

Compares the variant calibration tables of two runs that differ only in ``variants.search.seed`` (two
different space-filling designs, hence two different sets of Nelder-Mead starts):

    python benchmarks/pipeline/variant_starts.py RUN1/results/variants/l6.6 RUN2/results/variants/l6.6

Per variant: the best L_stat of each run with its bootstrap error and their difference in units of the
combined error; each free parameter of each run's best point with the range of the points that cannot be
told from it (L_stat within its error of the minimum, epcal.variant_search.parameter_ranges).  "agree"
when the L_stat differ by at most 2 combined errors and each run's best point lies inside the other's
ranges, for every free parameter.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd


def best_row(path: Path) -> pd.Series:
    t = pd.read_parquet(path)
    return t[t.best].iloc[0]


def main(a: str, b: str) -> None:
    rows = []
    for pa in sorted(Path(a).glob("*.parquet")):
        pb = Path(b) / pa.name
        if not pb.exists():
            continue
        ra, rb = best_row(pa), best_row(pb)
        line = {"variant": ra.variant, "seeds": f"{ra.search_seed}/{rb.search_seed}",
                "L_stat": f"{ra.L_stat:.3f}±{ra.L_stat_err:.3f} | {rb.L_stat:.3f}±{rb.L_stat_err:.3f}"}
        z = (ra.L_stat - rb.L_stat) / np.hypot(ra.L_stat_err, rb.L_stat_err)
        line["z_L"] = f"{z:+.1f}"
        agree = abs(z) <= 2
        for nm in ra.free.split(","):
            inside = (rb[f"{nm}_lo"] <= ra[nm] <= rb[f"{nm}_hi"]) and (ra[f"{nm}_lo"] <= rb[nm] <= ra[f"{nm}_hi"])
            agree &= bool(inside)
            line[nm] = (f"{ra[nm]:.3g} [{ra[f'{nm}_lo']:.3g}, {ra[f'{nm}_hi']:.3g}] | "
                        f"{rb[nm]:.3g} [{rb[f'{nm}_lo']:.3g}, {rb[f'{nm}_hi']:.3g}]")
        line["status"] = f"{ra.param_err_status}/{rb.param_err_status}"
        line["agree"] = agree
        line["points"] = f"{ra.evaluations}/{rb.evaluations}"
        rows.append(line)
    df = pd.DataFrame(rows).fillna("")
    try:
        print(df.to_markdown(index=False))
    except ImportError:  # tabulate not installed
        print(df.to_string(index=False))


if __name__ == "__main__":
    main(*sys.argv[1:3])
