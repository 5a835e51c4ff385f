"""Local yield stress method (paper section 2.2) on the atomistic glass.

A patch of radius R centred on ``centre``: only the atoms within R + R_OUT of
the centre are kept (a cut-out, open boundaries); those beyond R are *frozen*
(their positions follow the affine map of the imposed pure shear exactly,
forces zeroed by ``fix setforce``), those within R relax.  The pure shear of
orientation alpha and amplitude gamma maps a point X (relative to the centre)
to (I + gamma M(alpha)) X, M(alpha) = 1/2 [[-sin 2a, cos 2a], [cos 2a, sin 2a]],
so alpha = 0 is the orientation of the external simple shear xy.

Patch stress: sum of the per-atom virial stresses (``compute stress/atom``,
stress sign) of the relaxed atoms divided by pi R^2; tau = M(alpha) : Sigma.

Onset: the strain is raised on the grid gamma_k = k * dgamma (dgamma = 1e-4)
until the first step k -> k+1 that is *not elastic*.  A step is elastic when
it is reversible: relaxing at k+1 then straining back to k and relaxing again
returns every relaxed atom to where it was (max distance < ``tol_rev``).  This
test is not fooled by the smooth softening before an instability (the
stress-strain curve then bends down, but the path is reversible) and is not
blind to a small drop (any rearrangement leaves the system in another basin).
Fast search (:meth:`Patch.probe`): coarse steps of ``coarse`` grid steps,
each started from the predicted non-affine displacement (quadratic
extrapolation of the branch from the last two accepted moves); a move is
accepted when its Newton relaxation (no CG fallback: the move only decides
accept / bisect) converges within ``tol_pred`` = 0.02 of the prediction
(avalanches move atoms by >~ 0.05, the smallest seen in the tests 0.07;
elastic coarse steps deviate by <~ 0.02).  A rejected coarse step is bisected
with the same test down to the first grid step that is not accepted,
lo -> lo+1; that single step is then decided by the reversibility test above,
exactly as plain stepping (:meth:`Patch.probe_plain`) decides it, with full
relaxations (CG where Newton fails).  If it is elastic (the rejection came from
the curvature of the branch near, not at, an instability, or from Newton
failing far from the minimum) the search goes on after it.  So the relaxation
through the avalanche and the reversibility test are usually done once per
test, and the onset equals that of plain stepping as long as no move accepted
by the prediction test hides an irreversible grid step (the premise of any
coarse stepping; checked against plain stepping in the tests and benchmark).  Note that reversibility over a
*coarse* step would not do: a short-lived new basin can vanish during a long
unloading and let the system fall back, hiding a small avalanche.

Reported (schema PROBE): tau_i = tau at gamma = 0, tau_c at the last elastic
grid point gamma_c, tau_f after the relaxation of the unstable step (at
gamma_c + dgamma), delta_tau_c = tau_c - tau_i, drop_tau_c = tau_c - tau_f,
sigma_vm of Sigma^i and the three stress tensors.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from . import potential as pot
from ..observables import von_mises
from ..tensors import resolved_shear, slip_matrix
from .lammps_driver import Lammps, State, min_image


def m_tensor(alpha_deg: float) -> np.ndarray:
    """M(alpha) as a 2x2 matrix (:func:`epcal.tensors.slip_matrix`), alpha in degrees."""
    return slip_matrix(math.radians(alpha_deg))


def resolved(stress: np.ndarray, alpha_deg: float) -> float:
    """tau = M(alpha) : Sigma for stress = (sxx, syy, sxy), alpha in degrees."""
    return resolved_shear(stress, math.radians(alpha_deg))


def grid_centres(lx: float, ly: float, spacing: float) -> np.ndarray:
    """Centres of a regular grid of (about) ``spacing`` covering the box."""
    nx = max(1, int(round(lx / spacing)))
    ny = max(1, int(round(ly / spacing)))
    gx = (np.arange(nx) + 0.5) * lx / nx
    gy = (np.arange(ny) + 0.5) * ly / ny
    return np.array([(x, y) for y in gy for x in gx])


@dataclass
class ProbeResult:
    alpha: float
    gamma_c: float
    k_c: int
    sigma_i: np.ndarray
    sigma_c: np.ndarray
    sigma_f: np.ndarray
    minimizations: int
    seconds: float

    @property
    def tau_i(self):
        return resolved(self.sigma_i, self.alpha)

    @property
    def tau_c(self):
        return resolved(self.sigma_c, self.alpha)

    @property
    def tau_f(self):
        return resolved(self.sigma_f, self.alpha)


class Patch:
    """A cut-out patch of a glass state, ready for local shear tests."""

    def __init__(self, state: State, centre, R: float, ftol: float = 1e-8, dgamma: float = 1e-4,
                 tol_rev: float = 1e-2, tol_pred: float = 2e-2, cutoff: float = pot.R_OUT,
                 solver: str = "newton"):
        self.R = float(R)
        self.centre = np.asarray(centre, float)
        d = min_image(state.pos - self.centre, state.lx, state.ly, state.xy)
        r = np.hypot(d[:, 0], d[:, 1])
        keep = np.flatnonzero(r < R + cutoff)
        inner = r[keep] < R
        order = np.concatenate([keep[inner], keep[~inner]])  # relaxed atoms first: ids 1..n_mobile
        self.atom_index = order
        self.n_mobile = int(inner.sum())
        self.X0 = d[order]
        self.types = state.types[order]
        self.ftol = ftol
        self.dgamma = dgamma
        self.tol_rev = tol_rev
        self.tol_pred = tol_pred
        if solver not in ("newton", "cg"):
            raise ValueError(f"solver must be 'newton' or 'cg', got {solver!r}")
        self.newton = None
        if solver == "newton":
            from .newton import ModifiedNewton

            self.newton = ModifiedNewton(self.types, self.n_mobile)
        self.n_fallback = 0
        self.n_newton_fail = 0
        self.cg_switch = 1e-3
        sub = State(self.X0.copy(), self.types, 0.0, 0.0)
        self.lmp = Lammps(sub, periodic=False)
        c = self.lmp.command
        n = len(order)
        c(f"group mobile id 1:{self.n_mobile}")
        if n > self.n_mobile:
            c(f"group frozen id {self.n_mobile + 1}:{n}")
            c("fix freeze frozen setforce 0.0 0.0 0.0")
        c("compute sa mobile stress/atom NULL virial")
        c("compute ps mobile reduce sum c_sa[1] c_sa[2] c_sa[4]")
        c("thermo_style custom step temp pe fnorm fmax c_pv[1] c_pv[2] c_pv[4] c_ps[1] c_ps[2] c_ps[3]")
        self.n_min = 0
        # relax the cut-out at zero strain (the inner atoms of a minimized glass barely move)
        self.x_init = self._relax_positions(self.X0)
        self.sigma_init = self.patch_stress()

    def close(self):
        self.lmp.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---------------------------------------------------------------- basics
    def patch_stress(self) -> np.ndarray:
        from lammps import LMP_STYLE_GLOBAL, LMP_TYPE_VECTOR

        ps = self.lmp.lmp.numpy.extract_compute("ps", LMP_STYLE_GLOBAL, LMP_TYPE_VECTOR)
        # stress/atom is the per-atom stress times volume (stress sign, already -p)
        return np.array(ps[:3], float) / (math.pi * self.R**2)

    def _relax_positions(self, x: np.ndarray, newton_only: bool = False) -> np.ndarray | None:
        """Relax the inner atoms from ``x``: modified Newton (sparse Hessian) when it is a safe
        descent, else LAMMPS CG; LAMMPS' ``minimize`` to ``ftol`` has the last word either way.

        ``newton_only``: return None instead of falling back to CG when Newton fails (the
        caller only needs to know whether the relaxation stays on the elastic branch).
        """
        if self.newton is not None:
            xn = self.newton.relax(x, self.ftol, restore_on_failure=newton_only)
            if xn is not None:
                x = xn
            elif newton_only:
                self.n_newton_fail += 1
                return None
            else:
                # CG through the rearrangement down to a loose tolerance (the slow end of CG is
                # the soft modes of the new minimum), then Newton from there
                self.n_fallback += 1
                self.lmp.set_positions(x)
                self.lmp.minimize(etol=0.0, ftol=max(self.ftol, self.cg_switch), maxiter=200000)
                x = self.lmp.positions()
                xn = self.newton.relax(x, self.ftol)
                if xn is not None:
                    x = xn
        self.lmp.set_positions(x)
        self.lmp.minimize(etol=0.0, ftol=self.ftol, maxiter=200000)
        self.n_min += 1
        return self.lmp.positions()

    def affine(self, k: int, M: np.ndarray) -> np.ndarray:
        F = np.eye(2) + k * self.dgamma * M
        return self.X0 @ F.T

    def move(self, x: np.ndarray, k_from: int, k_to: int, M: np.ndarray, guess=None, newton_only=False):
        """Relax at strain k_to starting from the minimum ``x`` at k_from; returns (x_new, u_nonaffine),
        or (None, None) when ``newton_only`` and the Newton relaxation fails."""
        F0 = np.eye(2) + k_from * self.dgamma * M
        F1 = np.eye(2) + k_to * self.dgamma * M
        T = F1 @ np.linalg.inv(F0)
        xa = x @ T.T
        xa[self.n_mobile:] = self.affine(k_to, M)[self.n_mobile:]  # frozen: exact affine map
        start = xa.copy()
        if guess is not None:
            start[: self.n_mobile] += guess
        xn = self._relax_positions(start, newton_only)
        if xn is None:
            return None, None
        return xn, xn[: self.n_mobile] - xa[: self.n_mobile]

    def reversible(self, x_new: np.ndarray, k_new: int, x_old: np.ndarray, k_old: int, M, v=None) -> bool:
        """Strain back from k_new to k_old and relax: does every relaxed atom return to ``x_old``?

        ``v``: tangent (non-affine displacement per grid step) of the branch; the back
        relaxation starts from the affine back-map shifted by -v*(k_new-k_old), the
        expected elastic response, never from ``x_old`` itself (which would decide nothing).
        """
        guess = None if v is None else -v * (k_new - k_old)
        xb, _ = self.move(x_new, k_new, k_old, M, guess)
        return float(np.abs(xb[: self.n_mobile] - x_old[: self.n_mobile]).max()) < self.tol_rev

    # ----------------------------------------------------------------- tests
    def probe(self, alpha: float, coarse: int = 20, k_max: int = 5000) -> ProbeResult | None:
        """Local shear test of orientation ``alpha`` (degrees); None if no instability up to k_max.

        Coarse steps of ``coarse`` grid steps start from the predicted
        non-affine displacement; a move is accepted as elastic when its Newton
        relaxation converges within ``tol_pred`` of the prediction (an
        avalanche moves atoms by >~ 0.05).  A rejected step (an instability, or
        merely the strong curvature of the branch close to one) is bisected
        with the same test down to the first grid step not accepted, which is
        decided by the same reversibility test as :meth:`probe_plain`.
        """
        t0 = time.perf_counter()
        n0 = self.n_min
        M = m_tensor(alpha)
        k, x = 0, self.x_init
        coarse = max(1, int(coarse))

        def predict(br, m):
            """Predicted non-affine displacement over the next m grid steps from the branch
            ``br`` = (v, hl, a): secant v of the last accepted move (hl grid steps, the tangent at
            its midpoint) and the change a of the tangent per grid step (None: linear)."""
            v, hl, a = br
            if a is None:
                return v * m
            return v * m + a * (0.5 * hl * m + 0.5 * m * m)

        def advance(br, u, m):
            v = u / m
            if br is None:
                return (v, m, None)
            return (v, m, (v - br[0]) / (0.5 * (br[1] + m)))

        def accepted(x_old, k_old, k_new, pred):
            """Newton-only move k_old -> k_new from the prediction: (x_new, u) if it stays on the
            elastic branch (within tol_pred of the prediction), else None; a failed single grid
            step whose Newton relaxation converged is kept in ``last`` (it is the full
            relaxation: no CG through an avalanche otherwise, the move only decides accept /
            bisect)."""
            x_new, u = self.move(x_old, k_old, k_new, M, pred, newton_only=True)
            if x_new is None or float(np.abs(u - pred).max()) >= self.tol_pred:
                last[:] = [k_old, x_new, u]
                return None
            return x_new, u

        last = [None, None, None]
        br = None  # branch (tangent) estimate
        while k < k_max:
            lo, x_lo, br_lo = k, x, br
            if br is not None:
                h = min(coarse, k_max - k)
                r = accepted(x, k, k + h, predict(br, h))
                if r is not None:
                    x, k, br = r[0], k + h, advance(br, r[1], h)
                    continue
                # something happened within (k, k+h]: bisection on the grid down to the first
                # grid step not accepted, (lo, lo + 1]
                hi = k + h
                while hi - lo > 1:
                    mid = (lo + hi) // 2
                    m = mid - lo
                    r = accepted(x_lo, lo, mid, predict(br_lo, m))
                    if r is not None:
                        lo, x_lo, br_lo = mid, r[0], advance(br_lo, r[1], m)
                    else:
                        hi = mid
            # the single grid step lo -> lo + 1, decided exactly as plain stepping decides it
            v_lo = None if br_lo is None else br_lo[0]
            if last[0] == lo and last[1] is not None:  # already relaxed from this start
                x_f, u_f = last[1], last[2]
            else:
                x_f, u_f = self.move(x_lo, lo, lo + 1, M, None if br_lo is None else predict(br_lo, 1))
            if not self.reversible(x_f, lo + 1, x_lo, lo, M, v_lo):
                return self._result(alpha, lo, x_lo, x_f, n0, t0)
            # elastic (the rejection came from the curvature of the branch): go on from lo + 1
            x, k, br = x_f, lo + 1, advance(br_lo, u_f, 1)
        return None

    def _result(self, alpha, k_c, x_c, x_f, n0, t0) -> ProbeResult:
        sigma_c = self._stress_at(x_c)
        sigma_f = self._stress_at(x_f)
        return ProbeResult(alpha, k_c * self.dgamma, k_c, self.sigma_init.copy(), sigma_c, sigma_f,
                           self.n_min - n0, time.perf_counter() - t0)

    def probe_plain(self, alpha: float, k_max: int = 5000) -> ProbeResult | None:
        """Reference: plain stepping on the grid, every step tested for reversibility."""
        t0 = time.perf_counter()
        n0 = self.n_min
        M = m_tensor(alpha)
        k, x, v = 0, self.x_init, None
        while k < k_max:
            x_new, u = self.move(x, k, k + 1, M, v)
            if self.reversible(x_new, k + 1, x, k, M, v):
                x, k, v = x_new, k + 1, u
                continue
            sigma_c = self._stress_at(x)
            sigma_f = self._stress_at(x_new)
            return ProbeResult(alpha, k * self.dgamma, k, self.sigma_init.copy(), sigma_c, sigma_f,
                               self.n_min - n0, time.perf_counter() - t0)
        return None

    def _set(self, x):
        self.lmp.set_positions(x)

    def _stress_at(self, x) -> np.ndarray:
        self.lmp.set_positions(x)
        self.lmp.command("run 0 post no")
        return self.patch_stress()


PROBE_COLUMNS = ("state", "replica", "x", "y", "R", "alpha", "tau_i", "tau_c", "delta_tau_c", "drop_tau_c",
                 "sigma_vm", "gamma_c", "sxx_i", "syy_i", "sxy_i", "sxx_c", "syy_c", "sxy_c",
                 "sxx_f", "syy_f", "sxy_f")


def result_row(res: ProbeResult, state_name: str, replica: int, centre, R: float) -> dict:
    return {
        "state": state_name, "replica": int(replica), "x": float(centre[0]), "y": float(centre[1]),
        "R": float(R), "alpha": float(res.alpha), "tau_i": res.tau_i, "tau_c": res.tau_c,
        "delta_tau_c": res.tau_c - res.tau_i, "drop_tau_c": res.tau_c - res.tau_f,
        "sigma_vm": float(von_mises(res.sigma_i)), "gamma_c": res.gamma_c,
        "sxx_i": res.sigma_i[0], "syy_i": res.sigma_i[1], "sxy_i": res.sigma_i[2],
        "sxx_c": res.sigma_c[0], "syy_c": res.sigma_c[1], "sxy_c": res.sigma_c[2],
        "sxx_f": res.sigma_f[0], "syy_f": res.sigma_f[1], "sxy_f": res.sigma_f[2],
    }


def probe_state(state: State, state_name: str, replica: int, R_values, alphas, grid_spacing: float,
                coarse: int = 20, ftol: float = 1e-8, k_max: int = 5000, done: set | None = None,
                on_patch=None, log=None, chunk: int = 0, n_chunks: int = 1, solver: str = "newton"):
    """Local shear tests on the grid of ``state``; yields (key, rows) per (centre, R) patch.

    ``alphas``: the orientations (degrees) of every R, or a dict {R: orientations} (e.g. the
    paper's full orientation scan only at R = 30).

    ``chunk``/``n_chunks``: only the centres ic with ic % n_chunks == chunk (one job per chunk).
    ``done``: keys (ic, R) already computed (resume); ``on_patch(key, rows)`` is
    called after each patch (checkpointing).  Tests without an instability up
    to k_max * dgamma are skipped (reported with ``log``).
    """
    done = done or set()
    centres = grid_centres(state.lx, state.ly, grid_spacing)
    for R in R_values:
        if 2 * (R + pot.R_OUT) > min(state.lx, state.ly):
            raise ValueError(f"patch radius R={R} too large for the box {state.lx:.2f} x {state.ly:.2f} "
                             f"(needs 2 (R + {pot.R_OUT}) <= L)")
    for R in R_values:
        for ic, c in enumerate(centres):
            key = (ic, float(R))
            if ic % n_chunks != chunk or key in done:
                continue
            rows = []
            with Patch(state, c, R, ftol=ftol, solver=solver) as p:
                for a in (alphas[R] if isinstance(alphas, dict) else alphas):
                    res = p.probe(float(a), coarse=coarse, k_max=k_max)
                    if res is None:
                        if log is not None:
                            print(f"no instability up to gamma={k_max * p.dgamma} at centre {c}, R={R}, "
                                  f"alpha={a}", file=log, flush=True)
                        continue
                    rows.append(result_row(res, state_name, replica, c, R))
            if on_patch is not None:
                on_patch(key, rows)
            yield key, rows
