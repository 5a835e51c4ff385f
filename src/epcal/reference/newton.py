"""Newton minimization of a patch with the sparse Hessian of the pair potential.

The relaxations of the local yield stress method start close to their minimum
(the predicted non-affine displacement), where LAMMPS' CG still needs hundreds
of iterations because the residual sits in the soft modes of the patch.  A
Newton step with the exact Hessian (assembled here from the pair potential of
:mod:`epcal.reference.potential`) removes it at once: 2-4 iterations reach the
force tolerance.  Safeguards: the Newton direction must be a descent direction
(the Hessian positive definite along it) and a backtracking line search must
decrease the energy; otherwise :func:`newton_relax` returns None and the caller
falls back to LAMMPS' CG (this happens at instabilities, once per test; moves
that only decide whether the branch is still elastic do not fall back).  The
caller then lets LAMMPS check the tolerance (a ``minimize`` that stops at once),
so LAMMPS stays the judge of equilibrium and computes all reported stresses.
"""
from __future__ import annotations


import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from scipy.spatial import cKDTree

from . import potential as pot
from .pair_kernels import _pair_tables
from .pair_lists import PairList


def _pair_terms(r, ti, tj):
    """U, U' and U'' of every pair."""
    u = np.zeros_like(r)
    du = np.zeros_like(r)
    d2u = np.zeros_like(r)
    a = np.minimum(ti, tj)
    b = np.maximum(ti, tj)
    for (p, q), (s, e, fpoly, dfpoly, epoly, shift) in _pair_tables().items():
        m = (a == p) & (b == q)
        if not m.any():
            continue
        rr = r[m]
        inner = rr < pot.R_IN
        t = rr - pot.R_IN
        sr6 = (s / rr) ** 6
        u_in = 4.0 * e * (sr6 * sr6 - sr6)
        f_in = 24.0 * e * (2.0 * sr6 * sr6 - sr6) / rr
        df_in = 24.0 * e * (-26.0 * sr6 * sr6 + 7.0 * sr6) / rr**2
        u[m] = np.where(inner, u_in, epoly(t)) - shift
        du[m] = -np.where(inner, f_in, fpoly(t))
        d2u[m] = -np.where(inner, df_in, dfpoly(t))
    return u, du, d2u


def _periodic_pairs(x, box):
    """Pairs (i, j) within R_OUT and their minimum-image vectors x_i - x_j in the triclinic
    periodic cell ``box`` = (lx, ly, xy): the pair search runs in the sheared-back
    rectangular cell (x - (xy/ly) y, y), where the cell is an orthogonal periodic box,
    with the cutoff enlarged by the shear; true distances are filtered afterwards."""
    lx, ly, xy = box
    t = xy / ly
    xs = np.empty_like(x)
    xs[:, 1] = np.mod(x[:, 1], ly)
    xs[:, 0] = np.mod(x[:, 0] - t * x[:, 1], lx)
    xs[:, 1] = np.minimum(xs[:, 1], np.nextafter(ly, 0))
    xs[:, 0] = np.minimum(xs[:, 0], np.nextafter(lx, 0))
    cut = pot.R_OUT * (1.0 + abs(t))
    pairs = cKDTree(xs, boxsize=(lx, ly)).query_pairs(cut, output_type="ndarray")
    i, j = pairs[:, 0], pairs[:, 1]
    ds = xs[i] - xs[j]
    ds[:, 0] -= np.round(ds[:, 0] / lx) * lx
    ds[:, 1] -= np.round(ds[:, 1] / ly) * ly
    d = np.stack([ds[:, 0] + t * ds[:, 1], ds[:, 1]], axis=1)
    keep = d[:, 0] ** 2 + d[:, 1] ** 2 < pot.R_OUT**2
    return i[keep], j[keep], d[keep]


def energy_forces_hessian(x, types, want_hessian=True, box=None):
    """Energy, forces (N, 2) and sparse Hessian (2N x 2N) of the pair potential; open
    boundaries, or the triclinic periodic cell ``box`` = (lx, ly, xy)."""
    n = len(x)
    if box is None:
        pairs = cKDTree(x).query_pairs(pot.R_OUT, output_type="ndarray")
        i, j = pairs[:, 0], pairs[:, 1]
        d = x[i] - x[j]
    else:
        i, j, d = _periodic_pairs(np.asarray(x, float), box)
    r = np.hypot(d[:, 0], d[:, 1])
    u, du, d2u = _pair_terms(r, types[i], types[j])
    nvec = d / r[:, None]
    fij = (-du)[:, None] * nvec  # force on i from j
    F = np.zeros((n, 2))
    np.add.at(F, i, fij)
    np.add.at(F, j, -fij)
    if not want_hessian:
        return u.sum(), F, None
    nn = nvec[:, :, None] * nvec[:, None, :]
    K = d2u[:, None, None] * nn + (du / r)[:, None, None] * (np.eye(2)[None] - nn)
    rows, cols, vals = [], [], []
    for a in range(2):
        for b in range(2):
            k = K[:, a, b]
            for (p, q, sgn) in ((i, i, 1.0), (j, j, 1.0), (i, j, -1.0), (j, i, -1.0)):
                rows.append(2 * p + a)
                cols.append(2 * q + b)
                vals.append(sgn * k)
    H = sp.csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(2 * n, 2 * n))
    return u.sum(), F, H


def newton_relax(x0, types, n_mobile, ftol, maxiter=20):
    """Relax the first ``n_mobile`` atoms of ``x0`` (others fixed); None if not a safe descent."""
    x = np.array(x0, float)
    dof = np.arange(2 * n_mobile)
    E, F, H = energy_forces_hessian(x, types)
    for _ in range(maxiter):
        g = F[:n_mobile].ravel()
        if np.sqrt(g @ g) < ftol:
            return x
        Hm = H[dof][:, dof]
        try:
            dx = spla.spsolve(Hm.tocsc(), g)
        except Exception:
            return None
        if not np.all(np.isfinite(dx)) or g @ dx <= 0 or np.abs(dx).max() > 0.3:
            return None
        step = 1.0
        while True:
            xt = x.copy()
            xt[:n_mobile] += step * dx.reshape(-1, 2)
            Et, Ft, Ht = energy_forces_hessian(xt, types)
            gt = Ft[:n_mobile].ravel()
            if Et <= E + 1e-12 * abs(E) or np.sqrt(gt @ gt) < np.sqrt(g @ g):
                break
            step *= 0.5
            if step < 1e-3:
                return None
        x, E, F, H = xt, Et, Ft, Ht
    return None


class ModifiedNewton:
    """Newton iterations with a *reused* factorization of the Hessian of the relaxed atoms.

    The Hessian changes little along an elastic branch, so one sparse LU
    factorization (symmetric mode) serves many
    relaxations; each iteration then costs one force evaluation (numba kernel on
    a Verlet list, :class:`PairList`) and two triangular solves.
    The factorization is renewed at the current point when an iteration reduces
    the force norm by less than the factor ``rate`` (or is not a descent); if
    even a fresh Newton step fails, :meth:`relax` returns None (the caller uses
    CG, or rejects the move).
    """

    def __init__(self, types, n_mobile, rate=0.5):
        self.rate = float(rate)
        self.types = np.asarray(types)
        self.n_mobile = int(n_mobile)
        self.lu = None
        self.n_factor = 0
        self.pairs = PairList(self.types, self.n_mobile)

    def _factor(self, x) -> bool:
        H = self.pairs.hessian(x)
        try:
            # symmetric mode (minimum degree on H + H^T, diagonal pivots): faster than
            # COLAMD with partial pivoting for this symmetric matrix; the Newton step is
            # checked (descent, line search) anyway
            self.lu = spla.splu(H, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0,
                                options=dict(SymmetricMode=True))
        except Exception:
            self.lu = None
            return False
        self.n_factor += 1
        return True

    def relax(self, x0, ftol, maxiter=60, restore_on_failure=False):
        """Relaxed positions, or None if Newton is not a safe descent from ``x0``;
        ``restore_on_failure``: then keep the factorization held before the call (that of the
        last good state) instead of the one made at the failing point."""
        if restore_on_failure:
            lu0 = self.lu
            x = self._relax(x0, ftol, maxiter)
            if x is None:
                self.lu = lu0
            return x
        return self._relax(x0, ftol, maxiter)

    def _relax(self, x0, ftol, maxiter):
        nm = self.n_mobile
        x = np.array(x0, float)
        E, F = self.pairs.energy_forces(x)
        g = F.ravel()
        gn = np.sqrt(g @ g)
        fresh = False
        if self.lu is None:
            if not self._factor(x):
                return None
            fresh = True
        for _ in range(maxiter):
            if gn < ftol:
                return x
            dx = self.lu.solve(g)
            ok = np.all(np.isfinite(dx)) and g @ dx > 0 and np.abs(dx).max() < 0.3
            if ok:
                step = 1.0
                while True:
                    xt = x.copy()
                    xt[:nm] += step * dx.reshape(-1, 2)
                    Et, Ft = self.pairs.energy_forces(xt)
                    gt = Ft.ravel()
                    gtn = np.sqrt(gt @ gt)
                    if Et <= E + 1e-12 * abs(E) or gtn < gn:
                        break
                    step *= 0.5
                    if step < 1e-2:
                        ok = False
                        break
            if not ok:
                if fresh:
                    return None
                if not self._factor(x):
                    return None
                fresh = True
                continue
            slow = gtn > self.rate * gn
            x, E, g, gn = xt, Et, gt, gtn
            fresh = False
            if slow and gn >= ftol:
                if not self._factor(x):
                    return None
                fresh = True
        return None
