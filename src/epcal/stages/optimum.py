"""Ensembles at the optimum: the figures' ensemble and the emergent analyses of section 5."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .common import _meta, _optimum_params, probe_spec, run


def optimum_ensemble(opt: pd.Series, cfg: dict, batch: int, threads: int = 1, ref_meta: dict | None = None):
    """Batch ``batch`` of the runs at the optimum, quench and stationary states probed at every
    n up to R ~ R_max and ``n_alpha`` orientations over 180 degrees."""
    p, T = _optimum_params(opt, cfg, ref_meta)
    from ..params import patch_size

    n_max = min(patch_size(float(cfg.get("R_max", 30.0)), p.l, p.L), p.L)  # a small domain caps n at L_EP
    n_list = list(range(int(cfg.get("n_min", 1)), n_max + 1))
    alphas = list(np.arange(int(cfg["n_alpha"])) * 180.0 / int(cfg["n_alpha"]))
    spec = probe_spec(n_list, alphas, ("quench", "stationary"), cfg.get("stride", 1))
    size = int(cfg["batch_size"])
    reps = range(batch * size, min((batch + 1) * size, int(cfg["replicas"])))
    ens = run(p, reps, cfg["seed"], cfg.get("gamma_max", 2.0), T_quench=T, probe=spec, threads=threads)
    meta = _meta("optimum-ensemble", params=p.as_dict(), T_quench=T, seed=int(cfg["seed"]),
                 replicas=[reps.start, reps.stop])
    return ens.macro, ens.probe, meta



def emergent_size(opt: pd.Series, cfg: dict, L: int, threads: int = 1, ref_meta: dict | None = None):
    """Finite-size scaling (Fig. 5b): runs at the optimum on an L x L lattice of the same l.

    One row per replica: std and mean of the stationary Sigma_xy^ext (gamma_ext > 0.5),
    with the domain length L l (the size the paper compares with the atomistic box)."""
    import dataclasses

    from ..observables import macro_summary

    p, T = _optimum_params(opt, cfg, ref_meta)
    p = dataclasses.replace(p, L=int(L)).validate()
    reps = range(int(cfg["size_replicas"]))
    ens = run(p, reps, cfg["seed"], cfg.get("gamma_max", 2.0), T_quench=T, threads=threads)
    rows = []
    for r, g in ens.macro.groupby("replica"):
        s = macro_summary(g)
        rows.append({"L_EP": int(L), "domain_length": float(L * p.l), "replica": int(r),
                     "sigma_std": s["sigma_std"], "sigma_mean": s["sigma_mean"]})
    meta = _meta("emergent-size", params=p.as_dict(), T_quench=T, seed=int(cfg["seed"]), replicas=[0, len(reps)])
    return pd.DataFrame(rows), meta


def emergent_bauschinger(opt: pd.Series, cfg: dict, threads: int = 1, ref_meta: dict | None = None):
    """Bauschinger test (Fig. 5d) at the optimum: drive to the stationary state, unload to
    Sigma_ext = 0, then reload forward (alpha_ext = 0) and in reverse (alpha_ext = 90)."""
    from ..bauschinger import run_bauschinger

    p, T = _optimum_params(opt, cfg, ref_meta)
    reps = range(int(cfg["bauschinger_replicas"]))
    df = run_bauschinger(p, reps, seed=int(cfg["seed"]), gamma_max=float(cfg.get("gamma_max", 2.0)), T_quench=T,
                         strain=float(cfg["bauschinger_strain"]), threads=threads)
    meta = _meta("emergent-bauschinger", params=p.as_dict(), T_quench=T, seed=int(cfg["seed"]),
                 replicas=[0, len(reps)], strain=float(cfg["bauschinger_strain"]))
    return df, meta
