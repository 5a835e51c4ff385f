"""Reference tables: the MACRO avalanche table derived from the per-step AQS
series, the PROBE table and ``reference.yaml`` (the check of a reference directory, any
user's own MD data in this layout being a drop-in replacement, is :mod:`epcal.refdir`).

Drop detection rule (MD, documented in resources/reference/README.md with its census at 10^4 atoms): AQS
step k (from gamma_{k-1} to gamma_k, then minimization) is an *avalanche* when

* the stress decreases, sxy_k < sxy_{k-1}, **and**
* the step's largest non-affine displacement d_max exceeds ``d_threshold``
  (default 0.05 sigma_SL; atoms of an elastic step move by ~1e-3, those of a
  rearrangement by ~0.1-1), i.e. the decrease is discontinuous, not the
  smooth non-affine softening of an elastic branch approaching an instability.

Record of an avalanche at step k: ``gamma_ext`` = gamma_k, ``sigma_after`` =
sxy_k, ``sigma_before`` = the elastic branch extrapolated to gamma_k: sxy_{k-1}
plus the branch's mean increment per step (the branch runs from the previous
record to step k-1; for a branch of zero length sigma_before = sxy_{k-1}).
The first (step 0) and last step are non-avalanche records.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

D_THRESHOLD = 0.05


def detect_avalanches(steps: pd.DataFrame, d_threshold: float = D_THRESHOLD) -> np.ndarray:
    """Boolean mask of avalanche steps for one replica's per-step series (sorted by step)."""
    s = steps["sxy"].to_numpy()
    d = steps["d_max"].to_numpy()
    av = np.zeros(len(s), bool)
    av[1:] = (np.diff(s) < 0) & (d[1:] > d_threshold)
    if len(av):
        av[-1] = False
    return av


def drop_census(steps: pd.DataFrame, d_threshold: float = D_THRESHOLD, near: float = 0.4) -> dict:
    """How sharp the drop rule is on per-step series (any number of replicas).

    Counts the steps whose stress decreases, those of them the rule calls elastic (d_max at or
    below ``d_threshold``), the steps near the threshold (near * d_threshold < d_max <= d_threshold:
    the ambiguous range), and the rearrangements (d_max above the threshold) that do not lower
    the stress (their release is smaller than the elastic increment of the step).
    """
    n = dec = dec_below = near_thr = plastic_up = 0
    for _, g in steps.sort_values(["replica", "step"]).groupby("replica", sort=True):
        s = g["sxy"].to_numpy()
        d = g["d_max"].to_numpy()[1:]
        down = np.diff(s) < 0
        n += len(d)
        dec += int(down.sum())
        dec_below += int((down & (d <= d_threshold)).sum())
        near_thr += int(((d > near * d_threshold) & (d <= d_threshold)).sum())
        plastic_up += int((~down & (d > d_threshold)).sum())
    return {"d_threshold": float(d_threshold), "steps": n, "stress_decreasing": dec,
            "decreasing_at_or_below_threshold": dec_below,
            "ambiguous_range": [round(near * d_threshold, 12), float(d_threshold)],
            "steps_in_ambiguous_range": near_thr, "above_threshold_stress_increasing": plastic_up}


def macro_from_steps(steps: pd.DataFrame, d_threshold: float = D_THRESHOLD) -> pd.DataFrame:
    """MACRO table (schema :data:`epcal.schema.MACRO`) from AQS per-step series of one or more replicas."""
    rows = []
    for rep, g in steps.sort_values(["replica", "step"]).groupby("replica", sort=True):
        g = g.reset_index(drop=True)
        s = g["sxy"].to_numpy()
        st = g["step"].to_numpy()
        gam = g["gamma_ext"].to_numpy()
        av = detect_avalanches(g, d_threshold)
        rows.append((rep, st[0], gam[0], s[0], s[0], False))
        last_i, last_s = 0, s[0]
        for i in np.flatnonzero(av):
            n_branch = (i - 1) - last_i
            before = s[i - 1] + ((s[i - 1] - last_s) / n_branch if n_branch > 0 else 0.0)
            rows.append((rep, st[i], gam[i], before, s[i], True))
            last_i, last_s = i, s[i]
        i = len(s) - 1
        if i > 0:
            rows.append((rep, st[i], gam[i], s[i], s[i], False))
    df = pd.DataFrame(rows, columns=["replica", "step", "gamma_ext", "sigma_before", "sigma_after", "avalanche"])
    df["replica"] = df["replica"].astype("int64")
    df["step"] = df["step"].astype("int64")
    df["avalanche"] = df["avalanche"].astype(bool)
    df["n_slips"] = np.full(len(df), -1, dtype="int64")
    return df
