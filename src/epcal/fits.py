"""Optimum from the loss landscape (paper section 4.2).

Per element length l and per k, the candidate (lambda, chi) with the lowest
L_stat is kept; a parabola a + b k + c k^2 is fitted to L_stat(k) (by least
squares, over the k values within ``half_width`` of the discrete minimum,
all k when ``half_width`` is None) and k_hat = -b / (2c) (clipped to the
fitted range; when c <= 0 the fit has no minimum and k_hat is the discrete
minimum).  lambda_hat and chi_hat are obtained at k_hat from the per-k
selected values: ``interp = "regression"`` (default) evaluates at k_hat a
straight line fitted over the same window, which smooths the staircase a
discrete (lambda, chi) grid produces; ``interp = "linear"`` interpolates
between the two neighbouring k.

Uncertainties: the loss tables carry bootstrap rows (``boot`` >= 0; ``boot`` = -1
is the full ensemble against the full reference) of three kinds (column
``resample``, :data:`epcal.losses.RESAMPLE_KINDS`): the EPM replicas and the
reference's units resampled jointly, and each alone.  The whole procedure
(selection per k, fit, interpolation) is repeated on every bootstrap row; the
quoted error ``<x>_err`` is the standard deviation over the joint rows (the
error bar), ``<x>_err_epm`` and ``<x>_err_ref`` those over the rows that
resample only one side (the two contributions).

Bounds: k_hat is an *estimate* only when the parabola is convex and its vertex
lies inside the fitted window (``k_hat_status = "estimate"``).  A vertex beyond
the window's lower or upper end (k_hat is then that end) is reported as
``"at_lower_edge"`` / ``"at_upper_edge"``: the minimum lies at or beyond it,
so k_hat is a bound; a concave fit (no minimum) reports the discrete minimum
as ``"not_convex"``.  The same rule holds for T_hat.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

LOSS_KEYS = ("L_stat", "L_macro", "L_meso_plus", "L_meso_minus")


@dataclasses.dataclass(frozen=True)
class ParabolaFit:
    a: float
    b: float
    c: float
    k_hat: float
    L_hat: float
    convex: bool
    k_lo: float
    k_hi: float
    status: str = "estimate"

    @property
    def is_estimate(self) -> bool:
        return self.status == "estimate"


#: k_hat_status / T_hat_status values (module doc)
FIT_STATUSES = ("estimate", "at_lower_edge", "at_upper_edge", "not_convex")


def fit_parabola(k, L, half_width: float | None = None) -> ParabolaFit:
    """Least-squares parabola through L(k) near its discrete minimum; k_hat = -b/2c."""
    k = np.asarray(k, float)
    L = np.asarray(L, float)
    ok = np.isfinite(k) & np.isfinite(L)
    k, L = k[ok], L[ok]
    if k.size == 0:
        raise ValueError("fit: no finite L_stat values")
    j = int(np.argmin(L))
    win = np.ones(k.size, bool) if half_width is None else np.abs(k - k[j]) <= half_width + 1e-12
    kw, Lw = k[win], L[win]
    if np.unique(kw).size < 3:
        # widen to the 3 nearest k of the minimum
        order = np.argsort(np.abs(k - k[j]), kind="stable")[:3]
        kw, Lw = k[order], L[order]
    if np.unique(kw).size < 3:
        return ParabolaFit(float(L[j]), 0.0, 0.0, float(k[j]), float(L[j]), False, float(kw.min()), float(kw.max()),
                           "not_convex")
    c, b, a = np.polyfit(kw, Lw, 2)
    lo, hi = float(kw.min()), float(kw.max())
    if c > 0:
        vertex = -b / (2 * c)
        kh = float(np.clip(vertex, lo, hi))
        status = "at_lower_edge" if vertex <= lo else "at_upper_edge" if vertex >= hi else "estimate"
        convex = True
    else:
        kh = float(k[j])
        convex = False
        status = "not_convex"
    return ParabolaFit(float(a), float(b), float(c), kh, float(a + b * kh + c * kh * kh), convex, lo, hi, status)


def interpolate_at(k, y, k_hat: float, lo: float, hi: float, method: str = "regression") -> float:
    k = np.asarray(k, float)
    y = np.asarray(y, float)
    o = np.argsort(k)
    k, y = k[o], y[o]
    if method == "linear":
        return float(np.interp(k_hat, k, y))
    if method == "regression":
        w = (k >= lo - 1e-12) & (k <= hi + 1e-12)
        if np.unique(k[w]).size < 2:
            return float(np.interp(k_hat, k, y))
        s, i = np.polyfit(k[w], y[w], 1)
        return float(i + s * k_hat)
    raise ValueError(f"fit.interp = {method!r}: expected 'regression' or 'linear'")


def select_per_k(df: pd.DataFrame, key: str = "L_stat") -> pd.DataFrame:
    """For each (l, k, boot) the candidate row with the lowest ``key``."""
    d = df[np.isfinite(df[key])]
    idx = d.groupby(["l", "k", "boot"], sort=True)[key].idxmin()
    return d.loc[idx.to_numpy()].sort_values(["l", "boot", "k"]).reset_index(drop=True)


def fit_one(sel: pd.DataFrame, half_width: float | None, interp: str) -> dict:
    """Optimum from the per-k selection of one (l, boot)."""
    sel = sel.sort_values("k")
    f = fit_parabola(sel["k"], sel["L_stat"], half_width)
    out = {"k_hat": f.k_hat, "k_hat_status": f.status, "a": f.a, "b": f.b, "c": f.c, "convex": f.convex,
           "k_fit_lo": f.k_lo, "k_fit_hi": f.k_hi, "L_stat_fit": f.L_hat}
    for col, name in (("lam", "lam_hat"), ("chi", "chi_hat")):
        out[name] = interpolate_at(sel["k"], sel[col], f.k_hat, f.k_lo, f.k_hi, interp)
    for key in LOSS_KEYS:
        if key in sel:
            out[key] = float(np.interp(f.k_hat, sel["k"].to_numpy(float), sel[key].to_numpy(float)))
    return out


def bootstrap_errors(per_boot: dict, kinds: dict, keys) -> dict:
    """``<key>_err`` (joint rows), ``<key>_err_epm`` and ``<key>_err_ref`` (one side resampled) of
    the fits ``per_boot`` {boot: dict}; ``kinds`` {boot: resample kind}."""
    out = {}
    for suffix, kind in (("", "joint"), ("_epm", "epm"), ("_ref", "reference")):
        rows = [v for b, v in per_boot.items() if kinds.get(b) == kind]
        for key in keys:
            vals = np.array([v[key] for v in rows if key in v], float)
            out[f"{key}_err{suffix}"] = float(np.nanstd(vals)) if vals.size else float("nan")
        if suffix == "":
            out["n_boot"] = len(rows)
    return out


def fit_optimum(losses: pd.DataFrame, half_width: float | None = 0.5, interp: str = "regression") -> pd.DataFrame:
    """The optimum table: one row per l with values (full ensemble), bound status and bootstrap errors."""
    need = {"l", "k", "lam", "chi", "boot", "resample", "L_stat"}
    miss = need - set(losses.columns)
    if miss:
        raise ValueError(f"fit: loss table lacks column(s) {sorted(miss)}")
    sel = select_per_k(losses)
    kinds = dict(zip(losses["boot"].to_numpy(int).tolist(), losses["resample"].astype(str).tolist()))
    rows = []
    for l, g in sel.groupby("l", sort=True):
        per_boot = {b: fit_one(gb, half_width, interp) for b, gb in g.groupby("boot", sort=True)}
        if -1 not in per_boot:
            raise ValueError(f"fit: no full-ensemble rows (boot = -1) for l = {l}")
        row = {"l": float(l), **per_boot[-1]}
        row.update(bootstrap_errors(per_boot, kinds, ("k_hat", "lam_hat", "chi_hat", *LOSS_KEYS)))
        joint = [v["k_hat_status"] for b, v in per_boot.items() if kinds.get(b) == "joint"]
        row["k_hat_bound_frac"] = float(np.mean([s != "estimate" for s in joint])) if joint else float("nan")
        row["n_k"] = int(g[g["boot"] == -1]["k"].nunique())
        for col in ("L_EP", "N", "l_lattice", "n", "lattice_rule"):  # the lattice the optimum was found on
            if col in g:
                row[col] = g[col].iloc[0]
        rows.append(row)
    return pd.DataFrame(rows)


def fit_temperature(T, L, half_width: float | None = 0.1) -> dict:
    """T_hat from a quench-loss scan: least-squares parabola over the temperatures within
    ``half_width`` of the discrete minimum (at least the 3 nearest), as :func:`fit_parabola`."""
    f = fit_parabola(T, L, half_width)
    return {"T_hat": f.k_hat, "L_quench": f.L_hat, "convex": f.convex, "T_hat_status": f.status}
