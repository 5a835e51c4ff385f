"""Do two start sets of the variant search find the same optimum?  (issue 12, item 6)

Compares the variant calibration tables of two runs that differ only in ``variants.search.seed`` (two
different space-filling designs, hence two different sets of Nelder-Mead starts):

    python benchmarks/pipeline/variant_starts.py RUN1/results/variants/l6.6 RUN2/results/variants/l6.6

Per variant: the best L_stat of each run with its bootstrap error, their difference in units of the
combined error, and each free parameter with its error (half-width of the region where L_stat is
within its error of the minimum, epcal.variant_search.parameter_errors) and the difference in units of
the combined error.  "agree" when every |z| <= 2.
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
        zs = []
        line = {"variant": ra.variant, "seeds": f"{ra.search_seed}/{rb.search_seed}",
                "L_stat": f"{ra.L_stat:.3f}±{ra.L_stat_err:.3f} | {rb.L_stat:.3f}±{rb.L_stat_err:.3f}"}
        z = (ra.L_stat - rb.L_stat) / np.hypot(ra.L_stat_err, rb.L_stat_err)
        zs.append(z)
        line["z_L"] = f"{z:+.1f}"
        for nm in ra.free.split(","):
            ea, eb = ra.get(f"{nm}_err", np.nan), rb.get(f"{nm}_err", np.nan)
            z = (ra[nm] - rb[nm]) / np.hypot(ea, eb)
            zs.append(z)
            line[nm] = f"{ra[nm]:.3g}±{ea:.2g} | {rb[nm]:.3g}±{eb:.2g} (z {z:+.1f})"
        line["points"] = f"{ra.evaluations}/{rb.evaluations}"
        line["agree"] = bool(np.all(np.abs(np.nan_to_num(zs, nan=np.inf)) <= 2))
        rows.append(line)
    df = pd.DataFrame(rows).fillna("")
    print(df.to_markdown(index=False) if hasattr(df, "to_markdown") else df.to_string(index=False))


if __name__ == "__main__":
    main(*sys.argv[1:3])
