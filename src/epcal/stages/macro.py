"""Macro cells (paper section 4.1): L_macro over the (lambda, chi) search of one (l, k).

(lambda, chi) search of one (l, k) cell (``search.method``):

``grid``    the paper's baseline: every (lambda, chi) of the grid, each with
            ``replicas`` runs.
``scaled``  exploits that the EPM is (up to the discreteness of the strain
            step) invariant under scaling every stress, threshold and strain
            by the same factor: an ensemble run at lambda_0 gives, by scaling
            its stresses (and its stationary-regime onset) by s = lambda /
            lambda_0, a surrogate of the ensemble at lambda.  Stage 1 runs
            one ensemble per chi of the grid at lambda_0 (``coarse_replicas``
            runs) and scans lambda on a fine grid through the surrogate;
            then (``refine_chi``) the vertex chi* of a parabola through the
            three best surrogate minima L*(chi) gets its own stage-1 scan
            (successive refinement); stage 2 runs true ensembles
            (``replicas`` runs) at the surrogate optimum lambda*(chi) of the
            ``refine`` best chi; the cell's best
            (lambda, chi) is the best *true* ensemble.  The rows of stage 1
            are kept (``stage = "surrogate"``) but never selected.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..losses import Evaluator, LossSettings, macro_observables, Reference
from ..params import model_params, resolve_model
from ..simulate import RunawayAvalanche
from ..grids import grid_values
from .common import _boot_seed, ref_boot_seed, run


def sweep_macro_cell(ref: Reference, l: float, k: float, cfg: dict, threads: int = 1,
                     log=print) -> pd.DataFrame:
    """All evaluated (lambda, chi) of one (l, k) cell with L_macro and its bootstrap rows.

    ``cfg`` keys: model, seed, gamma_max, replicas, n_boot, losses, search.
    """
    search = cfg["search"]
    method = search.get("method", "grid")
    model = resolve_model(cfg.get("model"), ref.meta)
    settings = LossSettings.from_config(cfg.get("losses"))
    ev = Evaluator(ref, settings, shear_modulus=float(model["G"]), ref_seed=ref_boot_seed(cfg["seed"]),
                   meso=False)
    reps = range(int(cfg["replicas"]))
    n_boot = int(cfg.get("n_boot", 0))
    seed = int(cfg["seed"])
    lams = grid_values(search["lam"])
    chis = grid_values(search["chi"])
    rows = []
    n_runs = 0

    def true_eval(lam, chi, stage):
        nonlocal n_runs
        p = model_params(l, k, lam, chi, model)
        try:
            ens = run(p, reps, seed, cfg.get("gamma_max", 2.0), threads=threads)
        except RunawayAvalanche as exc:  # no stationary flow at this point: never the optimum
            log(f"l={l} k={k} lam={lam:.4g} chi={chi:.4g} [{stage}] skipped: {exc}")
            return float("inf")
        n_runs += len(reps)
        r = ev.evaluate(ens.macro, None, n_boot=n_boot, seed=_boot_seed(seed, l, k, lam, chi))
        r = r.assign(l=float(l), k=float(k), lam=float(lam), chi=float(chi), stage=stage)
        rows.append(r)
        log(f"l={l} k={k} lam={lam:.4g} chi={chi:.4g} [{stage}] L_macro={r['L_macro'].iloc[0]:.4f}")
        return float(r["L_macro"].iloc[0])

    if method == "grid":
        for lam in lams:
            for chi in chis:
                true_eval(lam, chi, "grid")
    elif method == "scaled":
        lam0 = float(search.get("lam0") or np.sqrt(lams.min() * lams.max()))
        fine = np.geomspace(lams.min(), lams.max(), int(search.get("lam_points", 61)))
        coarse = range(int(search.get("coarse_replicas", cfg["replicas"])))
        surrogate_min = {}

        def scan(chi):
            nonlocal n_runs
            p = model_params(l, k, lam0, chi, model)
            try:
                ens = run(p, coarse, seed, cfg.get("gamma_max", 2.0), threads=threads)
            except RunawayAvalanche as exc:
                log(f"l={l} k={k} chi={chi:.4g} surrogate skipped: {exc}")
                return
            n_runs += len(coarse)
            obs_all = macro_observables(ens.macro, 0.0)
            Ls = []
            for lam in fine:
                r = ev.macro_loss_scaled(obs_all, lam / lam0)
                Ls.append(r["L_macro"])
                rows.append(pd.DataFrame([{"boot": -1, "resample": "full", **r, "n_replicas": len(coarse),
                                           "l": float(l), "k": float(k),
                                           "lam": float(lam), "chi": float(chi), "stage": "surrogate"}]))
            j = int(np.argmin(Ls))
            surrogate_min[float(chi)] = (Ls[j], float(fine[j]))
            log(f"l={l} k={k} chi={chi:.4g} surrogate: lam*={fine[j]:.4g} L_macro~{Ls[j]:.4f}")

        for chi in chis:
            scan(float(chi))
        # successive refinement in chi: vertex of the parabola through the 3 best surrogate minima
        if search.get("refine_chi", True) and len(chis) >= 3:
            cs = np.array(sorted(surrogate_min))
            Ls = np.array([surrogate_min[c][0] for c in cs])
            j = int(np.argmin(Ls))
            if 0 < j < len(cs) - 1:
                c2, c1, _ = np.polyfit(cs[j - 1:j + 2], Ls[j - 1:j + 2], 2)
                if c2 > 0:
                    chi_star = round(float(np.clip(-c1 / (2 * c2), cs[j - 1], cs[j + 1])), 3)
                    if chi_star not in surrogate_min:
                        scan(chi_star)
        best = sorted((v[0], v[1], c) for c, v in surrogate_min.items())
        for _, lam, chi in best[: int(search.get("refine", 2))]:
            true_eval(round(lam, 4), chi, "refine")
    else:
        raise ValueError(f"search.method = {method!r}: expected 'grid' or 'scaled'")
    if not any((r["stage"] != "surrogate").any() for r in rows):
        raise ValueError(f"sweep-macro l={l} k={k}: no (lam, chi) of macro.search gave a finished ensemble "
                         "(runaway avalanches everywhere?); widen macro.search.chi / lam")
    out = pd.concat(rows, ignore_index=True)
    out["n_runs_cell"] = n_runs
    return out


def best_macro(cell: pd.DataFrame) -> pd.Series:
    """The true-ensemble (lambda, chi) of a cell with the lowest L_macro (full ensemble)."""
    d = cell[(cell["boot"] == -1) & (cell["stage"] != "surrogate")]
    if d.empty:
        raise ValueError("macro sweep table has no true-ensemble rows")
    return d.loc[d["L_macro"].idxmin()]


def select_table(cells: list[pd.DataFrame]) -> pd.DataFrame:
    """Per (l, k): the best (lambda, chi) by L_macro, its components and bootstrap error."""
    rows = []
    for c in cells:
        b = best_macro(c)
        d = c[(c["lam"] == b["lam"]) & (c["chi"] == b["chi"]) & (c["stage"] == b["stage"])]
        boots = d[d["resample"] == "joint"]
        row = {key: b[key] for key in ("l", "k", "lam", "chi", "L_sigma", "L_drop", "L_incr", "L_macro")}
        row["L_macro_err"] = float(boots["L_macro"].std(ddof=0)) if len(boots) else float("nan")
        row["n_runs_cell"] = int(c["n_runs_cell"].iloc[0]) if "n_runs_cell" in c else -1
        rows.append(row)
    return pd.DataFrame(rows).sort_values(["l", "k"]).reset_index(drop=True)
