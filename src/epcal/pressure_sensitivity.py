"""Pressure sensitivity alpha_p of the local yield stress, measured on a reference (paper A.8.2).

Model B shifts the slip thresholds by alpha_p p; the paper sets alpha_p = 0.2 "by looking at the
dependence of the yield stress tau_c on pressure p, measured in patches with R = 30".  Here that
dependence is measured on the reference's probe table: per patch, the local yield stress
``tau_c`` against the patch pressure before the test, p = -(sxx_i + syy_i) / 2 (stresses with
the tension-positive sign of the probe table, so p > 0 in compression).  The orientation sets the
level of tau_c (directional in the stationary state), so the slope is the pooled within-orientation
regression: tau_c and p are centred per alpha, alpha_p = sum(dp dtau_c) / sum(dp^2).  Patches of
one sample overlap and share its fluctuations; the error is a bootstrap over the independent
samples (``replica``), NaN with fewer than 3.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

#: the value A.8.2 uses (from Barbot et al. 2018)
PAPER_ALPHA_P = 0.2


def patch_pressure(probe: pd.DataFrame) -> np.ndarray:
    """p = -(sxx_i + syy_i) / 2 of each probe row (2D mean normal stress, compression positive)."""
    return -0.5 * (probe["sxx_i"].to_numpy(float) + probe["syy_i"].to_numpy(float))


def _slope(tau_c, p, alpha) -> float:
    d = pd.DataFrame({"t": tau_c, "p": p, "a": alpha})
    c = d - d.groupby("a")[["t", "p"]].transform("mean").assign(a=0.0)
    den = float((c["p"] ** 2).sum())
    return float((c["p"] * c["t"]).sum() / den) if den > 0 else float("nan")


def pressure_sensitivity(probe: pd.DataFrame, R: float, state: str = "stationary", n_boot: int = 200,
                         seed: int = 0, source: str = "probe") -> dict:
    """alpha_p (slope of tau_c against p at radius ``R`` in ``state``), its bootstrap error over the
    samples, and what it was measured on.  A table without the patch stress is an error naming it."""
    miss = {"sxx_i", "syy_i", "tau_c", "alpha", "R", "state", "replica"} - set(probe.columns)
    if miss:
        raise ValueError(f"{source}: no column(s) {sorted(miss)}; the pressure sensitivity needs the patch "
                         "stress before the test")
    rows = probe[(probe["state"].astype(str) == state) & np.isclose(probe["R"].to_numpy(float), float(R))]
    rows = rows[np.isfinite(rows["tau_c"].to_numpy(float))]
    if rows.empty:
        have = sorted(probe.loc[probe["state"].astype(str) == state, "R"].unique().tolist())
        raise ValueError(f"{source}: no {state!r} rows at R = {R:g} (it has R = {have})")
    p = patch_pressure(rows)
    tau_c, alpha, rep = rows["tau_c"].to_numpy(float), rows["alpha"].to_numpy(float), rows["replica"].to_numpy()
    out = {"alpha_p": _slope(tau_c, p, alpha), "R": float(R), "state": state, "n_rows": int(len(rows)),
           "n_samples": int(np.unique(rep).size), "p_mean": float(p.mean()), "p_std": float(p.std())}
    samples = np.unique(rep)
    if samples.size >= 3 and n_boot > 0:
        rng = np.random.default_rng(seed)
        idx = {s: np.flatnonzero(rep == s) for s in samples}
        boots = []
        for _ in range(int(n_boot)):
            take = np.concatenate([idx[s] for s in rng.choice(samples, samples.size)])
            boots.append(_slope(tau_c[take], p[take], alpha[take]))
        out["alpha_p_err"] = float(np.nanstd(boots))
    else:
        out["alpha_p_err"] = float("nan")
    return out
