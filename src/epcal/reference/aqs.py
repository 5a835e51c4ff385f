"""Athermal quasi-static (AQS) simple shear of the glass (paper section 2.1).

Each step: affine simple shear x += dgamma * y of box and atoms, then CG
minimization.  Speed-up: the minimization starts from the affine map *plus the
previous step's non-affine displacement* (the linear response of an elastic
branch repeats from one step to the next, so the first guess is already
accurate to O(dgamma^2) and CG needs few iterations).  After a plastic step the
previous non-affine displacement is a bad guess and is not used.

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

from .engine import Lammps, State, min_image

STEP_COLUMNS = ("replica", "step", "gamma_ext", "sxx", "syy", "sxy", "pe", "fnorm", "iterations",
                "d_max", "d_rms", "seconds")

#: a step whose max non-affine displacement exceeds this is not used as first guess for the next
EXTRAPOLATE_DMAX = 0.05


class AQS:
    """AQS driver around a periodic :class:`Lammps` instance."""

    def __init__(self, lmp: Lammps, dgamma: float = 1e-4, ftol: float = 1e-6, etol: float = 0.0,
                 extrapolate: bool = True, maxiter: int = 100000):
        self.lmp = lmp
        self.dgamma = dgamma
        self.ftol = ftol
        self.etol = etol
        self.extrapolate = extrapolate
        self.maxiter = maxiter
        self._u_prev = None

    def step(self) -> dict:
        lmp = self.lmp
        t0 = time.perf_counter()
        x0 = lmp.positions()
        lx, ly, xy0 = lmp.box()
        lmp.shear_box(self.dgamma)
        xa = x0.copy()
        xa[:, 0] += self.dgamma * xa[:, 1]  # affine image of x0 (before any re-wrap)
        _, _, xy1 = lmp.box()
        if self.extrapolate and self._u_prev is not None:
            lmp.set_positions(xa + self._u_prev)
        res = lmp.minimize(etol=self.etol, ftol=self.ftol, maxiter=self.maxiter)
        x1 = lmp.positions()
        u = min_image(x1 - xa, lx, ly, xy1)
        d = np.hypot(u[:, 0], u[:, 1])
        dmax = float(d.max())
        self._u_prev = u if dmax < EXTRAPOLATE_DMAX else None
        s = lmp.stress()
        return {"sxx": s[0], "syy": s[1], "sxy": s[2], "pe": res.energy, "fnorm": res.fnorm2,
                "iterations": res.iterations, "d_max": dmax, "d_rms": float(np.sqrt((d**2).mean())),
                "seconds": time.perf_counter() - t0}

    def reset_guess(self):
        self._u_prev = None


def run_aqs(state: State, n_steps: int, dgamma: float = 1e-4, ftol: float = 1e-6, replica: int = 0,
            start_step: int = 0, extrapolate: bool = True, checkpoint: str | Path | None = None,
            checkpoint_every: int = 1000, snapshots: dict[int, str | Path] | None = None,
            rows: list | None = None, u_prev: np.ndarray | None = None,
            log=None) -> tuple[pd.DataFrame, State]:
    """Shear ``state`` (at step ``start_step``) up to step ``n_steps``; one row per step.

    ``checkpoint``: npz written every ``checkpoint_every`` steps with the state
    and all rows so far (resume with :func:`resume`).  ``snapshots``: {step:
    path} of states to save on the way (e.g. the stationary state to probe).
    """
    rows = list(rows or [])
    snapshots = dict(snapshots or {})
    with Lammps(state) as lmp:
        if not rows:
            ev = lmp.evaluate()
            rows.append({"replica": replica, "step": start_step, "gamma_ext": start_step * dgamma,
                         "sxx": ev["sxx"], "syy": ev["syy"], "sxy": ev["sxy"], "pe": ev["pe"],
                         "fnorm": ev["fnorm"], "iterations": 0, "d_max": 0.0, "d_rms": 0.0, "seconds": 0.0})
        aqs = AQS(lmp, dgamma=dgamma, ftol=ftol, extrapolate=extrapolate)
        aqs._u_prev = None if u_prev is None or len(u_prev) != state.n else np.asarray(u_prev, float)
        t_last = time.perf_counter()
        for k in range(start_step + 1, n_steps + 1):
            r = aqs.step()
            rows.append({"replica": replica, "step": k, "gamma_ext": k * dgamma, **r})
            if k in snapshots:
                lmp.state().save(snapshots.pop(k), step=k, gamma=k * dgamma)
            if checkpoint is not None and (k % checkpoint_every == 0 or k == n_steps):
                save_checkpoint(checkpoint, lmp.state(), k, rows, aqs._u_prev)
            if log is not None and time.perf_counter() - t_last > 30:
                t_last = time.perf_counter()
                print(f"step {k}/{n_steps} gamma={k * dgamma:.4f} sxy={r['sxy']:.4f} "
                      f"it={r['iterations']} {r['seconds'] * 1e3:.1f} ms", file=log, flush=True)
        final = lmp.state()
    df = pd.DataFrame(rows, columns=list(STEP_COLUMNS))
    return df, final


def save_checkpoint(path, state: State, step: int, rows: list, u_prev: np.ndarray | None = None):
    """State, rows so far and the first guess of the next step (so that a resumed run is the same run)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    df = pd.DataFrame(rows, columns=list(STEP_COLUMNS))
    state.save(tmp, step=step, u_prev=np.zeros((0, 2)) if u_prev is None else u_prev,
               **{f"row_{c}": df[c].to_numpy() for c in STEP_COLUMNS})
    tmp.replace(path)  # atomic: an interrupted write never corrupts the last checkpoint


def resume(path) -> tuple[State, int, list, np.ndarray | None]:
    """(state, step, rows, u_prev) of a checkpoint written by :func:`save_checkpoint`."""
    st = State.load(path)
    step = int(st.meta["step"])
    cols = {c: st.meta[f"row_{c}"] for c in STEP_COLUMNS}
    rows = pd.DataFrame(cols).to_dict("records")
    u_prev = st.meta.get("u_prev")
    st.meta = {}
    return st, step, rows, (u_prev if u_prev is not None and len(u_prev) else None)
