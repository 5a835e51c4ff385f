"""Athermal quasi-static (AQS) simple shear of the glass (paper section 2.1).

Each step: affine simple shear x += dgamma * y of box and atoms, then CG
minimization.  Speed-up: the minimization starts from the affine map *plus the
previous step's non-affine displacement* (the linear response of an elastic
branch repeats from one step to the next, so the first guess is already
accurate to O(dgamma^2) and CG needs few iterations).  After a plastic step the
previous non-affine displacement is a bad guess and is not used.  (A linear
extrapolation ``order=2``, 2 u_n - u_{n-1}, was measured to be *worse* with CG at
loose tolerances: it doubles the unconverged part of u_n; default order 1.)

``solver="newton"``: modified Newton iterations x <- x + H0^-1 F(x) with the sparse
Hessian H0 of the periodic glass (:mod:`epcal.reference.newton`, atom 0 pinned),
factorized once (SuperLU, ~1.3 s at 10^4 atoms) and reused over many steps,
accelerated by Anderson mixing; forces and the tolerance check are LAMMPS' (``run 0``),
so each iteration costs one LAMMPS force evaluation and one triangular solve.  At a
rearrangement (no convergence even with a fresh factorization) the step falls back
to LAMMPS CG.  The ``iterations`` column then counts Newton iterations (plus the CG
iterations of a fallback).

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
                 extrapolate: bool = True, maxiter: int = 100000, order: int = 1, solver: str = "cg",
                 newton_maxiter: int = 40, newton_rate: float = 0.8):
        if solver not in ("cg", "newton"):
            raise ValueError(f"solver must be 'cg' or 'newton', got {solver!r}")
        self.solver = solver
        self.newton_maxiter = int(newton_maxiter)
        self.newton_rate = float(newton_rate)
        self.anderson_m = 6
        self._lu = None
        self.n_factor = 0
        self.n_fallback = 0
        self.lmp = lmp
        self.dgamma = dgamma
        self.ftol = ftol
        self.etol = etol
        self.extrapolate = extrapolate
        self.order = int(order)
        self.maxiter = maxiter
        self._u_prev = None
        self._u_prev2 = None

    def step(self) -> dict:
        lmp = self.lmp
        t0 = time.perf_counter()
        x0 = lmp.positions()
        lx, ly, xy0 = lmp.box()
        lmp.shear_box(self.dgamma)
        xa = x0.copy()
        xa[:, 0] += self.dgamma * xa[:, 1]  # affine image of x0 (before any re-wrap)
        _, _, xy1 = lmp.box()
        guess = self.guess() if self.extrapolate and self._u_prev is not None else None
        res = None
        if self.solver == "newton":
            res = self._newton(xa + guess if guess is not None else xa.copy())
            if res is None:
                self.n_fallback += 1
                self._lu = None
        if res is None:
            if guess is not None:
                lmp.set_positions(xa + guess)
            res = lmp.minimize(etol=self.etol, ftol=self.ftol, maxiter=self.maxiter)
        x1 = lmp.positions()
        u = min_image(x1 - xa, lx, ly, xy1)
        d = np.hypot(u[:, 0], u[:, 1])
        dmax = float(d.max())
        elastic = dmax < EXTRAPOLATE_DMAX
        if not elastic:
            self._lu = None  # a rearrangement: the stored Hessian belongs to the old basin
        self._u_prev2 = self._u_prev if elastic else None
        self._u_prev = u if elastic else None
        s = lmp.stress()
        return {"sxx": s[0], "syy": s[1], "sxy": s[2], "pe": res.energy, "fnorm": res.fnorm2,
                "iterations": res.iterations, "d_max": dmax, "d_rms": float(np.sqrt((d**2).mean())),
                "seconds": time.perf_counter() - t0}

    def _factor(self, x) -> bool:
        """Sparse LU of the Hessian at ``x`` (current box), atom 0 pinned (removes the translations)."""
        import scipy.sparse.linalg as spla

        from .newton import energy_forces_hessian

        _, _, H = energy_forces_hessian(x, self._types, box=self.lmp.box())
        A = H[2:, 2:].tocsc()
        try:
            self._lu = spla.splu(A, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0,
                                 options={"SymmetricMode": True})
        except RuntimeError:
            self._lu = None
            return False
        self.n_factor += 1
        return True

    def _newton(self, x):
        """Modified Newton relaxation from ``x`` with a stored (reused) Hessian factorization.

        Forces, force norm and stress come from LAMMPS (``run 0``), so LAMMPS is the judge of
        the tolerance ``ftol`` exactly as for its own minimizer.  Each iteration: one force
        evaluation and one triangular solve.  The factorization is renewed (at most once per
        step) when an iteration reduces the force norm by less than ``newton_rate`` or is not a
        descent direction; if even a fresh one fails, None (the caller falls back to CG: a
        rearrangement).  Converges only to minima: a saddle is a repelling fixed point of the
        iteration with a positive definite stored Hessian.
        """
        lmp = self.lmp
        if not hasattr(self, "_types"):
            self._types = lmp.types()
        t0 = time.perf_counter()
        fresh = False
        if self._lu is None:
            if not self._factor(x):
                return None
            fresh = True
        lmp.set_positions(x)
        ev = lmp.evaluate()
        fn = ev["fnorm"]
        it = 0
        dX, dR = [], []
        x_last = r_last = None
        while fn >= self.ftol:
            if it >= self.newton_maxiter:
                return None
            g = lmp.forces()[1:].ravel()
            r = self._lu.solve(g)  # modified Newton step
            if not (np.all(np.isfinite(r)) and g @ r > 0 and np.abs(r).max() < 0.1):
                if fresh or not self._factor(x):
                    return None
                fresh = True
                dX, dR, x_last = [], [], None
                continue
            # Anderson mixing of the modified Newton iteration x <- x + H0^-1 F(x) (memory m)
            xv = x[1:].ravel()
            step = r
            if x_last is not None:
                dX.append(xv - x_last)
                dR.append(r - r_last)
                if len(dX) > self.anderson_m:
                    dX.pop(0)
                    dR.pop(0)
                DR = np.stack(dR, axis=1)
                gam, *_ = np.linalg.lstsq(DR, r, rcond=None)
                step = r - (np.stack(dX, axis=1) + DR) @ gam
            x_last, r_last = xv.copy(), r
            xt = x.copy()
            xt[1:] += step.reshape(-1, 2)
            lmp.set_positions(xt)
            evt = lmp.evaluate()
            it += 1
            if evt["fnorm"] < 2.0 * fn and np.abs(step).max() < 0.1:
                x, ev, fn = xt, evt, evt["fnorm"]
                continue
            # diverging: back to the last point, fresh factorization, no history
            lmp.set_positions(x)
            ev = lmp.evaluate()
            if fresh or not self._factor(x):
                return None
            fresh = True
            dX, dR, x_last = [], [], None
        from .engine import MinResult

        return MinResult(iterations=it, fnorm2=float(fn), fnorm_inf=float(ev["fmax"]), energy=float(ev["pe"]),
                         seconds=time.perf_counter() - t0)

    def guess(self) -> np.ndarray:
        """Predicted non-affine displacement of the next step: u_n (order 1) or the linear
        extrapolation u_n + (u_n - u_{n-1}) = 2 u_n - u_{n-1} (order 2) on an elastic branch."""
        if self.order >= 2 and self._u_prev2 is not None:
            return 2.0 * self._u_prev - self._u_prev2
        return self._u_prev

    def reset_guess(self):
        self._u_prev = None
        self._u_prev2 = None


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
    from .engine import is_root

    root = is_root()  # under MPI every rank runs this loop; only rank 0 writes files and logs
    log = log if root else None
    rows = list(rows or [])
    snapshots = dict(snapshots or {})
    with Lammps(state) as lmp:
        if not rows:
            ev = lmp.evaluate()
            rows.append({"replica": replica, "step": start_step, "gamma_ext": start_step * dgamma,
                         "sxx": ev["sxx"], "syy": ev["syy"], "sxy": ev["sxy"], "pe": ev["pe"],
                         "fnorm": ev["fnorm"], "iterations": 0, "d_max": 0.0, "d_rms": 0.0, "seconds": 0.0})
        aqs = AQS(lmp, dgamma=dgamma, ftol=ftol, extrapolate=extrapolate, solver=solver)
        aqs._u_prev = None if u_prev is None or len(u_prev) != state.n else np.asarray(u_prev, float)
        t_last = time.perf_counter()
        for k in range(start_step + 1, n_steps + 1):
            r = aqs.step()
            rows.append({"replica": replica, "step": k, "gamma_ext": k * dgamma, **r})
            if k in snapshots:
                st = lmp.state()  # collective (gather): every rank calls it
                path = snapshots.pop(k)
                if root:
                    st.save(path, step=k, gamma=k * dgamma)
            if checkpoint is not None and (k % checkpoint_every == 0 or k == n_steps):
                st = lmp.state()
                if root:
                    save_checkpoint(checkpoint, st, k, rows, aqs._u_prev)
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
