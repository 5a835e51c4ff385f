"""Bauschinger (reload) test of the atomistic glass (paper section 5, Fig. 5d).

The protocol of the EPM's :func:`epcal.bauschinger.bauschinger_replica`: from a
stationary state of the AQS simple shear, unload (gamma_ext decreasing in steps
of dgamma, each followed by a minimization) to the first step where
Sigma_xy^ext <= 0; then, separately from that unloaded state, load forward
(alpha_ext = 0, gamma_ext increasing) and in reverse (alpha_ext = 90, gamma_ext
decreasing) by ``strain``.  The loading-sense stress of a branch is the resolved
stress M(alpha_ext):Sigma, i.e. +Sigma_xy forward and -Sigma_xy in reverse.

One row per step (:data:`COLUMNS`), with the same ``branch``, ``gamma_load`` and
``sigma_load`` columns as the EPM's Bauschinger table.
"""
from __future__ import annotations

import time

import pandas as pd

from .aqs import AQS
from .lammps_driver import Lammps, State

COLUMNS = ("replica", "branch", "step", "gamma_ext", "gamma_load", "sxx", "syy", "sxy", "sigma_load", "d_max",
           "iterations")


def bauschinger_test(state: State, replica: int, gamma0: float, strain: float = 0.1, dgamma: float = 1e-4,
                     ftol: float = 5e-4, max_unload_steps: int = 50_000, log=None) -> pd.DataFrame:
    """Unload ``state`` (at external strain ``gamma0``) to zero stress, then reload both senses.

    Raises RuntimeError if the stress is not positive at the start (not a forward-sheared
    stationary state) or does not reach zero within ``max_unload_steps``.
    """
    if not strain > 0:
        raise ValueError(f"Bauschinger strain = {strain}: expected > 0")
    rows = []
    n_load = int(round(strain / dgamma))
    t0 = time.perf_counter()
    with Lammps(state) as lmp:
        ev = lmp.evaluate()
        if not ev["sxy"] > 0:
            raise RuntimeError(f"replica {replica}: sigma_xy = {ev['sxy']:.4g} <= 0 at the start: "
                               "expected a state sheared forward (the stationary state of the AQS run)")
        rows.append({"branch": "unload", "step": 0, "gamma_ext": gamma0, "gamma_load": 0.0, "sxx": ev["sxx"],
                     "syy": ev["syy"], "sxy": ev["sxy"], "sigma_load": ev["sxy"], "d_max": 0.0, "iterations": 0})
        aqs = AQS(lmp, dgamma=-dgamma, ftol=ftol)
        n_unload = 0
        sxy = ev["sxy"]
        while sxy > 0:
            if n_unload >= max_unload_steps:
                raise RuntimeError(f"replica {replica}: sigma_xy still {sxy:.4g} > 0 after {n_unload} "
                                   "unloading steps")
            r = aqs.step()
            n_unload += 1
            sxy = r["sxy"]
            rows.append({"branch": "unload", "step": -n_unload, "gamma_ext": gamma0 - n_unload * dgamma,
                         "gamma_load": n_unload * dgamma,
                         "sxx": r["sxx"], "syy": r["syy"], "sxy": sxy, "sigma_load": sxy, "d_max": r["d_max"],
                         "iterations": r["iterations"]})
        unloaded = lmp.state()
    if log:
        print(f"replica {replica}: unloaded after {n_unload} steps ({time.perf_counter() - t0:.0f} s)", file=log,
              flush=True)
    gamma_u = gamma0 - n_unload * dgamma
    for branch, sign in (("forward", 1), ("reverse", -1)):
        with Lammps(unloaded) as lmp:
            ev = lmp.evaluate()
            rows.append({"branch": branch, "step": -n_unload, "gamma_ext": gamma_u, "gamma_load": 0.0, "sxx": ev["sxx"],
                         "syy": ev["syy"], "sxy": ev["sxy"], "sigma_load": sign * ev["sxy"], "d_max": 0.0,
                         "iterations": 0})
            aqs = AQS(lmp, dgamma=sign * dgamma, ftol=ftol)
            for j in range(1, n_load + 1):
                r = aqs.step()
                rows.append({"branch": branch, "step": -n_unload + sign * j, "gamma_ext": gamma_u + sign * j * dgamma,
                             "gamma_load": j * dgamma, "sxx": r["sxx"], "syy": r["syy"], "sxy": r["sxy"],
                             "sigma_load": sign * r["sxy"], "d_max": r["d_max"], "iterations": r["iterations"]})
        if log:
            print(f"replica {replica}: {branch} reload done ({time.perf_counter() - t0:.0f} s)", file=log, flush=True)
    df = pd.DataFrame(rows)
    df.insert(0, "replica", int(replica))
    return df[list(COLUMNS)]
