"""Meso cells (section 4.2): L_stat around the macro optimum of one (l, k) cell."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..lambda_profile import loss_profile, profile_minimum, scale_grid
from ..losses import Evaluator, LossSettings, Reference
from ..params import lattice_rule, model_params, resolve_model
from ..simulate import RunawayAvalanche
from .common import _boot_seed, probe_spec, ref_boot_seed, run
from .macro import best_macro


def sweep_meso_cell(ref: Reference, cell: pd.DataFrame, cfg: dict, threads: int = 1, log=print) -> pd.DataFrame:
    """L_macro, L+_meso, L-_meso and L_stat around the macro optimum of one (l, k) cell.

    ``cfg`` keys: model, seed, gamma_max, replicas, n_boot, losses, stride,
    neighborhood {lam_rel: [...], chi: [...], chi_rel: [...], valley: int}: relative lambda
    and absolute chi offsets around the cell's macro optimum; relative chi offsets *along* the
    macro valley lambda*(chi) (lambda from the surrogate scan, :func:`valley_lambda`); plus the
    ``valley`` best true-ensemble candidates of the macro cell (points of the valley too, so the
    meso step explores chi without leaving the macro constraint).
    ``lam_profile`` {min, max, num, refine} (or absent): every candidate also gets its lambda profile
    (:mod:`epcal.lambda_profile`): columns ``lam_prof`` (lambda at the profile minimum, per
    bootstrap row), ``L_stat_prof`` and the other ``<loss>_prof``, ``prof_edge``.
    """
    b = best_macro(cell)
    l, k = float(b["l"]), float(b["k"])
    model = resolve_model(cfg.get("model"), ref.meta)
    settings = LossSettings.from_config(cfg.get("losses"))
    ev = Evaluator(ref, settings, shear_modulus=float(model["G"]), ref_seed=ref_boot_seed(cfg["seed"]))
    nb = cfg.get("neighborhood", {})
    reps = range(int(cfg["replicas"]))
    seed = int(cfg["seed"])
    cands = []
    for dl in nb.get("lam_rel", [0.0]):
        for dc in nb.get("chi", [0.0]):
            cands.append((round(float(b["lam"]) * (1.0 + float(dl)), 4), round(float(b["chi"]) + float(dc), 4),
                          "offset"))
    for r in nb.get("chi_rel", []):
        chi = float(b["chi"]) * (1.0 + float(r))
        cands.append((round(valley_lambda(cell, chi, float(b["lam"]), float(b["chi"])), 4), round(chi, 4), "stencil"))
    true = cell[(cell["boot"] == -1) & (cell["stage"] != "surrogate")].sort_values("L_macro")
    for _, t in true.head(int(nb.get("valley", 1))).iterrows():
        cands.append((round(float(t["lam"]), 4), round(float(t["chi"]), 4), "valley"))
    seen = set()
    rows = []
    for lam, chi, origin in cands:
        if lam <= 0 or chi <= 0 or (lam, chi) in seen:
            continue
        seen.add((lam, chi))
        p = model_params(l, k, lam, chi, model)
        n = p.patch_size(ev.ref_R)  # the EPM patch whose R is nearest the reference's R
        spec = probe_spec([n], [settings.alpha_plus, settings.alpha_minus], ("stationary",),
                          cfg.get("stride", 1))
        try:
            ens = run(p, reps, seed, cfg.get("gamma_max", 2.0), probe=spec, threads=threads)
        except RunawayAvalanche as exc:
            log(f"l={l} k={k} lam={lam:.4g} chi={chi:.4g} [{origin}] skipped: {exc}")
            continue
        n_boot, bseed = int(cfg.get("n_boot", 0)), _boot_seed(seed, l, k)
        r = ev.evaluate(ens.macro, ens.probe, n_boot=n_boot, seed=bseed, details=True)
        if cfg.get("lam_profile"):
            scales, prof = loss_profile(ev, ens.macro, ens.probe, scale_grid(cfg["lam_profile"]), n_boot, bseed,
                                        refine=int(cfg["lam_profile"].get("refine", 0)))
            prof = profile_minimum(prof, scales)
            r = r.assign(lam_prof=lam * prof.pop("scale_prof"), **prof)
        r = r.assign(l=l, k=k, lam=lam, chi=chi, n=n, origin=origin, L_EP=p.L, N=p.N, l_lattice=p.l,
                     lattice_rule=lattice_rule(l, float(model["domain_length"])))
        rows.append(r)
        prof = (f" profile: lam={r['lam_prof'].iloc[0]:.4g} L_stat={r['L_stat_prof'].iloc[0]:.4f}"
                if "lam_prof" in r else "")
        log(f"l={l} k={k} lam={lam:.4g} chi={chi:.4g} [{origin}] L_stat={r['L_stat'].iloc[0]:.4f}{prof}")
    if not rows:
        raise ValueError("meso.neighborhood produced no valid (lam, chi) with lam > 0 and chi > 0")
    return pd.concat(rows, ignore_index=True)


def valley_lambda(cell: pd.DataFrame, chi: float, lam_b: float, chi_b: float) -> float:
    """lambda on the macro valley at ``chi``: the cell's best true point (lam_b, chi_b) moved along
    the valley lambda*(chi) of the surrogate scan (log lambda* piecewise linear in chi, extended
    linearly beyond the scanned chi by its end segments); lam_b itself where the cell has no
    surrogate rows (grid search) or only one scanned chi."""
    sur = cell[(cell["boot"] == -1) & (cell["stage"] == "surrogate")] if "stage" in cell else cell.iloc[:0]
    if sur["chi"].nunique() < 2:
        return lam_b
    mins = sur.loc[sur.groupby("chi")["L_macro"].idxmin()].sort_values("chi")
    x, u = mins["chi"].to_numpy(float), np.log(mins["lam"].to_numpy(float))

    def valley(c):
        i = int(np.clip(np.searchsorted(x, c) - 1, 0, x.size - 2))  # the segment of c, or an end one
        return u[i] + (u[i + 1] - u[i]) * (c - x[i]) / (x[i + 1] - x[i])

    return float(lam_b * np.exp(valley(chi) - valley(chi_b)))
