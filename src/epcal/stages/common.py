"""Shared by the calibration stages: running an ensemble, probe specs, seeds, metadata (grids: epcal.grids)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .. import code_version
from ..params import model_params, resolve_model


def run(p, replicas, seed: int, gamma_max: float, T_quench=None, probe=None, threads: int = 1, variant=None,
        stream_key: int | None = None):
    from ..simulate import run_ensemble
    from ..variants import ORIGINAL

    return run_ensemble(p, replicas=replicas, seed=int(seed), gamma_max=float(gamma_max),
                        T_quench=T_quench, probe=probe, threads=int(threads),
                        variant=ORIGINAL if variant is None else variant, stream_key=stream_key)


def probe_spec(n_list, alphas, states, stride: int = 1):
    from ..simulate import ProbeSpec

    return ProbeSpec(n_list=tuple(int(n) for n in n_list), alpha_deg=tuple(float(a) for a in alphas),
                     states=tuple(states), stride=int(stride))


def _meta(stage: str, **kw) -> dict:
    return {"stage": stage, "code_version": code_version(), **kw}


def _boot_seed(seed, l, k, lam=0.0, chi=0.0) -> int:
    """Deterministic bootstrap seed of a cell (same resamples whatever the job layout)."""
    return int((int(seed) * 1_000_003 + int(round(float(l) * 1000)) * 7919 + int(round(float(k) * 1000))) % (2**31))


def ref_boot_seed(seed) -> int:
    """Seed of the reference's bootstrap draws: one per calibration (every cell and stage sees the
    same reference resamples, so the fit of bootstrap row b sees one coherent resampled reference)."""
    return int((int(seed) * 2_000_029 + 0x5EF) % (2**31))


def quench_T(opt: pd.Series, cfg: dict, log=print) -> float:
    """The KMC temperature of runs at the optimum: T_hat, or, where the optimum has none (the quench
    calibration disabled), cfg T_default with a printed notice (the outputs record T_quench)."""
    T = opt.get("T_hat", np.nan)
    if np.isfinite(T):
        return float(T)
    if "T_default" not in cfg:
        raise ValueError(f"l = {opt['l']}: the optimum has no T_hat (quench disabled?) and no T_default is configured")
    log(f"notice: l = {opt['l']}: no calibrated T_hat; the KMC quench uses T_default = {cfg['T_default']}")
    return float(cfg["T_default"])


def _optimum_params(opt: pd.Series, cfg: dict, ref_meta: dict | None):
    model = resolve_model(cfg.get("model"), ref_meta)
    return model_params(opt["l"], opt["k_hat"], opt["lam_hat"], opt["chi_hat"], model), quench_T(opt, cfg)
