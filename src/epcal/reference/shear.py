"""The AQS protocol of the atomistic reference: a run of :class:`epcal.reference.aqs.AQS` steps
with checkpoints (a resumed run is the same run) and state snapshots on the way.

One row per step is recorded (:data:`STEP_COLUMNS`): the virial stress (stress
sign, sigma = -p), energy, residual force, CG iterations and the maximum and
root-mean-square non-affine displacement of the step, from which
:mod:`epcal.reference.tables` derives the avalanche table.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from .aqs import AQS
from .lammps_driver import Lammps, State

STEP_COLUMNS = ("replica", "step", "gamma_ext", "sxx", "syy", "sxy", "pe", "fnorm", "iterations",
                "d_max", "d_rms", "seconds")


def run_aqs(state: State, n_steps: int, dgamma: float = 1e-4, ftol: float = 1e-6, replica: int = 0,
            start_step: int = 0, extrapolate: bool = True, checkpoint: str | Path | None = None,
            checkpoint_every: int = 1000, snapshots: dict[int, str | Path] | None = None,
            rows: list | None = None, u_prev: np.ndarray | None = None,
            log=None, solver: str = "cg") -> tuple[pd.DataFrame, State]:
    """Shear ``state`` (at step ``start_step``) up to step ``n_steps``; one row per step.

    ``checkpoint``: npz written every ``checkpoint_every`` steps with the state
    and all rows so far (resume with :func:`resume`).  ``snapshots``: {step:
    path} of states to save on the way (e.g. the stationary state to probe).
    """
    from .lammps_driver import is_root

    root = is_root()  # under MPI every rank runs this loop; only rank 0 writes files and logs
    log = log if root else None
    rows = list(rows or [])
    snapshots = dict(snapshots or {})
    lmp = Lammps(state)
    try:
        if not rows:
            ev = lmp.evaluate()
            rows.append({"replica": replica, "step": start_step, "gamma_ext": start_step * dgamma,
                         "sxx": ev["sxx"], "syy": ev["syy"], "sxy": ev["sxy"], "pe": ev["pe"],
                         "fnorm": ev["fnorm"], "iterations": 0, "d_max": 0.0, "d_rms": 0.0, "seconds": 0.0})
        aqs = AQS(lmp, dgamma=dgamma, ftol=ftol, extrapolate=extrapolate, solver=solver)
        u_prev, u_prev2 = (None, None) if u_prev is None else u_prev
        aqs._u_prev = None if u_prev is None or len(u_prev) != state.n else np.asarray(u_prev, float)
        aqs._u_prev2 = None if u_prev2 is None or len(u_prev2) != state.n else np.asarray(u_prev2, float)
        t_last = time.perf_counter()
        for step in range(start_step + 1, n_steps + 1):
            r = aqs.step()
            rows.append({"replica": replica, "step": step, "gamma_ext": step * dgamma, **r})
            if step in snapshots:
                st = lmp.state()  # collective (gather): every rank calls it
                path = snapshots.pop(step)
                if root:
                    st.save(path, step=step, gamma=step * dgamma)
            if checkpoint is not None and (step % checkpoint_every == 0 or step == n_steps):
                st = lmp.state()
                if root:
                    save_checkpoint(checkpoint, st, step, rows, (aqs._u_prev, aqs._u_prev2))
                if step < n_steps:
                    # go on exactly as a run resumed from this checkpoint: a new LAMMPS instance made
                    # from the saved state, the solver without its stored factorization and pair list
                    lmp.close()
                    lmp = Lammps(st)
                    aqs.lmp = lmp
                    aqs.reset_solver()
            if log is not None and time.perf_counter() - t_last > 30:
                t_last = time.perf_counter()
                print(f"step {step}/{n_steps} gamma={step * dgamma:.4f} sxy={r['sxy']:.4f} "
                      f"it={r['iterations']} {r['seconds'] * 1e3:.1f} ms", file=log, flush=True)
        final = lmp.state()
    finally:
        lmp.close()
    df = pd.DataFrame(rows, columns=list(STEP_COLUMNS))
    return df, final


def save_checkpoint(path, state: State, step: int, rows: list, u_prev=(None, None)):
    """State, rows so far and the non-affine displacements (u_n, u_{n-1}) that make the next
    step's first guess (so that a resumed run is the same run)."""
    df = pd.DataFrame(rows, columns=list(STEP_COLUMNS))
    empty = np.zeros((0, 2))
    u1, u2 = u_prev
    # State.save is atomic: an interrupted write never corrupts the last checkpoint
    state.save(path, step=step, u_prev=empty if u1 is None else u1, u_prev2=empty if u2 is None else u2,
               **{f"row_{c}": df[c].to_numpy() for c in STEP_COLUMNS})


def resume(path) -> tuple[State, int, list, tuple]:
    """(state, step, rows, (u_n, u_{n-1})) of a checkpoint written by :func:`save_checkpoint`."""
    st = State.load(path)
    step = int(st.meta["step"])
    cols = {c: st.meta[f"row_{c}"] for c in STEP_COLUMNS}
    rows = pd.DataFrame(cols).to_dict("records")
    us = tuple(u if u is not None and len(u) else None for u in (st.meta.get("u_prev"), st.meta.get("u_prev2")))
    st.meta = {}
    return st, step, rows, us
