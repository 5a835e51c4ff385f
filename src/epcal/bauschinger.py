"""The Bauschinger (reload) test of the EPM (section 5, Fig. 5d)."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

import pandas as pd

from .params import EPMParams
from .simulate import Model
from .variants import ORIGINAL, Variant


def bauschinger_replica(model: Model, replica: int, *, seed: int, gamma_max: float = 2.0,
                        T_quench: float | None = None, strain: float = 0.1) -> pd.DataFrame:
    """Reload test of section 5 (Fig. 5d) on one replica.

    Drive to the stationary state (gamma_max), unload (gamma_ext decreasing) until
    Sigma_ext <= 0, then from that state, separately, load forward (alpha_ext = 0,
    gamma_ext increasing) and in reverse (alpha_ext = 90, gamma_ext decreasing) by
    ``strain``, with the strain origin reset.  Returns the records of the three
    branches with ``gamma_load`` and ``sigma_load`` measured in the loading sense
    (reverse: -gamma, -Sigma_xy, i.e. the resolved stress M(90):Sigma).
    """
    state, rng = model.new_state(seed, replica)
    if T_quench is not None:
        model.quench(state, T_quench, rng)
    model.drive(state, rng, gamma_max)
    unload = model.drive(state, rng, steps=-state.step - 10 ** 7, stop_at_zero_stress=True)
    origin = state.step
    steps = int(round(strain / model.dgamma))
    frames = []
    for branch, sign, recs in (("unload", -1, unload), ("forward", 1, None), ("reverse", -1, None)):
        if recs is None:
            st = state.copy()
            recs = model.drive(st, rng.copy(), steps=sign * steps)
        stp, before, after, slips = recs
        frames.append(pd.DataFrame({
            "replica": replica, "branch": branch, "step": stp, "gamma_ext": stp * model.dgamma,
            "gamma_load": sign * (stp - origin) * model.dgamma,
            "sigma_before": before, "sigma_after": after,
            "sigma_load": sign * after, "avalanche": slips > 0, "n_slips": slips,
        }))
    return pd.concat(frames, ignore_index=True)


def run_bauschinger(params: EPMParams, replicas: Sequence[int], *, seed: int, gamma_max: float = 2.0,
                    T_quench: float | None = None, strain: float = 0.1, threads: int = 1,
                    variant: Variant = ORIGINAL) -> pd.DataFrame:
    model = Model(params, variant=variant)

    def one(r):
        return bauschinger_replica(model, int(r), seed=seed, gamma_max=gamma_max, T_quench=T_quench, strain=strain)

    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        return pd.concat(list(pool.map(one, replicas)), ignore_index=True)
