"""The lambda profile of an ensemble's losses, from the stress scaling of the EPM (section 4.2).

The EPM is (up to the discreteness of the strain step) invariant under scaling every stress,
threshold and strain by one factor s, so an ensemble run at lambda gives a surrogate of the
ensemble at s * lambda: its macro observables scaled by s (the stationary cut applied on the scaled
strain, the quantized increments requantized: :meth:`Evaluator.scaled_values`; the surrogate of the scaled macro search,
:meth:`Evaluator.macro_losses_scaled`) and
its meso magnitudes (means and standard deviations of stresses) multiplied by s exactly.

:func:`loss_profile` evaluates L_macro, L+_meso, L-_meso and L_stat (eqs. 8-10) on a grid of s
for every bootstrap row of :meth:`Evaluator.evaluate` (the same EPM and reference draws), and
:func:`profile_minimum` takes, per row, the s of the lowest L_stat: the meso step's estimate of
lambda at one chi is then continuous and free in every bootstrap row, instead of a choice among
a few fixed lambda candidates.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .losses import Evaluator, l_stat, relative_loss
from .observables import macro_observables
from .schema import DELTA_GAMMA

PROFILE_KEYS = ("L_macro", "L_meso_plus", "L_meso_minus", "L_stat")


def scale_grid(spec: dict | None) -> np.ndarray:
    """The scales s of the profile: ``{min, max, num}`` geometric (default 0.8 ... 1.25, 61 points);
    must contain 1 (the evaluated lambda itself).  (``refine``, the scales added around the minima,
    is read by the caller.)"""
    spec = {k: v for k, v in dict(spec or {}).items() if k != "refine"}
    lo, hi, num = float(spec.get("min", 0.8)), float(spec.get("max", 1.25)), int(spec.get("num", 61))
    if not (0 < lo < 1 < hi) or num < 3:
        raise ValueError(f"meso.lam_profile = {spec}: expected 0 < min < 1 < max and num >= 3")
    s = np.geomspace(lo, hi, num)
    s[np.argmin(np.abs(np.log(s)))] = 1.0
    return s


def loss_profile(ev: Evaluator, macro: pd.DataFrame, probe: pd.DataFrame, scales, n_boot: int, seed: int,
                 delta_gamma: float = DELTA_GAMMA, refine: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(scales, {key: (len(scales), B)}) for :data:`PROFILE_KEYS`, rows as ``ev.evaluate(macro, probe,
    n_boot, seed)``.  ``refine`` > 0: that many more scales, evenly (geometrically) spaced between
    the grid neighbours of the rows' lowest and highest minimum, merged into the returned grid.

    At s = 1 the values are those of ``ev.evaluate`` (up to values lying exactly on a bin edge).
    """
    scales = np.asarray(scales, float)
    obs = macro_observables(macro, 0.0, delta_gamma)
    replicas = np.unique(macro["replica"].to_numpy(np.int64))
    _, _, W, V = ev.design(len(replicas), n_boot, seed)
    meso = ev.meso_magnitudes(probe, replicas, W, V["unit"])

    def at(sc):
        out = {key: np.empty((sc.size, W.shape[0])) for key in PROFILE_KEYS}
        for i, s in enumerate(sc):
            out["L_macro"][i] = ev.macro_losses_scaled(obs, s, replicas, W, V["sample"])["L_macro"]
            for tag, (mags, ref_mags, _) in meso.items():
                out[f"L_meso_{tag}"][i] = relative_loss(s * mags, ref_mags).mean(axis=1)
            out["L_stat"][i] = l_stat(out["L_macro"][i], out["L_meso_plus"][i], out["L_meso_minus"][i])
        return out

    prof = at(scales)
    if refine and np.isfinite(prof["L_stat"]).any():
        j = np.argmin(np.where(np.isfinite(prof["L_stat"]), prof["L_stat"], np.inf), axis=0)
        lo, hi = scales[max(int(j.min()) - 1, 0)], scales[min(int(j.max()) + 1, scales.size - 1)]
        fine = np.geomspace(lo, hi, int(refine) + 2)[1:-1]
        fine = fine[~np.isin(fine, scales)]
        more = at(fine)
        allsc = np.concatenate([scales, fine])
        o = np.argsort(allsc, kind="stable")
        scales, prof = allsc[o], {key: np.concatenate([prof[key], more[key]])[o] for key in prof}
    return scales, prof


def profile_minimum(profile: dict[str, np.ndarray], scales) -> dict[str, np.ndarray]:
    """Per bootstrap row: the scale of the lowest L_stat (``scale_prof``), the losses there
    (``<key>_prof``) and whether it lies at an end of the grid (``prof_edge``: the minimum is at or
    beyond it)."""
    scales = np.asarray(scales, float)
    loss = np.where(np.isfinite(profile["L_stat"]), profile["L_stat"], np.inf)
    j = np.argmin(loss, axis=0)
    cols = np.arange(loss.shape[1])
    none = ~np.isfinite(loss).any(axis=0)  # a row without any finite loss has no minimum
    out = {"scale_prof": np.where(none, np.nan, scales[j]), "prof_edge": ((j == 0) | (j == scales.size - 1)) & ~none}
    for key in PROFILE_KEYS:
        out[f"{key}_prof"] = profile[key][j, cols]
    return out
