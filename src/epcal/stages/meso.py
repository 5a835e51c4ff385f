"""Meso cells (section 4.2): L_stat around the macro optimum of one (l, k) cell."""
from __future__ import annotations

import pandas as pd

from ..losses import Evaluator, LossSettings, Reference
from ..params import lattice_rule, model_params, resolve_model
from ..simulate import RunawayAvalanche
from .common import _boot_seed, probe_spec, ref_boot_seed, run
from .macro import best_macro


def sweep_meso_cell(ref: Reference, cell: pd.DataFrame, cfg: dict, threads: int = 1, log=print) -> pd.DataFrame:
    """L_macro, L+_meso, L-_meso and L_stat around the macro optimum of one (l, k) cell.

    ``cfg`` keys: model, seed, gamma_max, replicas, n_boot, losses, stride,
    neighborhood {lam_rel: [...], chi: [...], valley: int}: relative lambda
    and absolute chi offsets around the cell's macro optimum, plus the
    ``valley`` best true-ensemble candidates of the macro cell (points of the
    macro-constrained valley lambda*(chi), so the meso step explores chi
    without leaving the macro constraint).
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
            cands.append((round(float(b["lam"]) * (1.0 + float(dl)), 4), round(float(b["chi"]) + float(dc), 4), "offset"))
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
        r = ev.evaluate(ens.macro, ens.probe, n_boot=int(cfg.get("n_boot", 0)),
                        seed=_boot_seed(seed, l, k), details=True)
        r = r.assign(l=l, k=k, lam=lam, chi=chi, n=n, origin=origin, L_EP=p.L, N=p.N, l_lattice=p.l,
                     lattice_rule=lattice_rule(l, float(model["domain_length"])))
        rows.append(r)
        log(f"l={l} k={k} lam={lam:.4g} chi={chi:.4g} [{origin}] L_stat={r['L_stat'].iloc[0]:.4f}")
    if not rows:
        raise ValueError("meso.neighborhood produced no valid (lam, chi) with lam > 0 and chi > 0")
    return pd.concat(rows, ignore_index=True)
