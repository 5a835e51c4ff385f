"""The twin reference: the EPM at stated parameters, probed as an atomistic reference would be."""
from __future__ import annotations

import pandas as pd

from .. import code_version
from ..params import model_params, resolve_model
from ..refneeds import twin_probe_grid
from .common import probe_spec, run


def make_twin(twin: dict, model: dict) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """A reference made by the EPM itself at stated parameters (a 'digital twin')."""
    model = resolve_model(model)
    p = model_params(twin["l"], twin["k"], twin["lam"], twin["chi"], model)
    n_list, alphas = twin_probe_grid(twin, p)  # the grid the start-up check expects (epcal.refneeds)
    spec = probe_spec(n_list, alphas, ("quench", "stationary"), twin.get("stride", 1))
    ens = run(p, range(int(twin["replicas"])), twin["seed"], twin.get("gamma_max", 2.0),
              T_quench=float(twin["T"]), probe=spec, threads=twin.get("threads", 1))
    meta = {"domain_length": float(model["domain_length"]), "shear_modulus": p.G, "bulk_modulus": p.B,
            "delta_gamma": 1e-4,
            "description": (f"EPM twin reference at l={p.l}, k={p.k}, lam={p.lam}, chi={p.chi}, "
                            f"T={twin['T']} (seed {twin['seed']}, {twin['replicas']} replicas)"),
            "n_samples": int(twin["replicas"]),
            "provenance": {"generator": "epcal reference-twin", "code_version": code_version(),
                           "params": p.as_dict(), "T": float(twin["T"]), "seed": int(twin["seed"])}}
    return ens.macro, ens.probe, meta
