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

import math

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from scipy.spatial import cKDTree

from numba import njit, prange

from . import potential as pot

_PAIR_CACHE: dict = {}
_PAR_TABLE: list = []


def _par_table() -> np.ndarray:
    """Per pair type (0: S-S, 1: S-L, 2: L-L) the row (sigma, eps, force cubic f0..f3 in
    t = r - R_IN, energy quartic e0..e4, shift) for :func:`_ef_kernel_pbc`."""
    if not _PAR_TABLE:
        rows = []
        for key in ((1, 1), (1, 2), (2, 2)):
            s, e, fpoly, _, epoly, shift = _pair_tables()[key]
            fc = np.zeros(4)
            fc[: len(fpoly.coef)] = fpoly.coef
            ec = np.zeros(5)
            ec[: len(epoly.coef)] = epoly.coef
            rows.append(np.concatenate([[s, e], fc, ec, [shift]]))
        _PAR_TABLE.append(np.array(rows))
    return _PAR_TABLE[0]


class PairList:
    """Verlet list (open boundaries) of the pairs with at least one of the first ``n_mobile``
    atoms within R_OUT + ``skin``, rebuilt when an atom has moved by more than skin / 2;
    :meth:`energy_forces` gives the energy of those pairs and the forces on the mobile atoms."""

    def __init__(self, types, n_mobile, skin=0.3):
        self.types = np.asarray(types)
        self.n_mobile = int(n_mobile)
        self.skin = float(skin)
        self.x_ref = None
        self.par = _par_table()

    def _build(self, x):
        pairs = cKDTree(x).query_pairs(pot.R_OUT + self.skin, output_type="ndarray")
        pairs = pairs[pairs.min(axis=1) < self.n_mobile]
        self.pi = np.ascontiguousarray(pairs[:, 0], dtype=np.int64)
        self.pj = np.ascontiguousarray(pairs[:, 1], dtype=np.int64)
        ti, tj = self.types[self.pi], self.types[self.pj]
        self.pt = (np.minimum(ti, tj) + np.maximum(ti, tj) - 2).astype(np.int64)
        self.shift = np.zeros(len(self.pi))  # open boundaries: no image shift (shared kernels)
        self.x_ref = x.copy()

    def energy_forces(self, x):
        x = np.ascontiguousarray(x, dtype=float)
        if self.x_ref is None or len(x) != len(self.x_ref) or \
                np.max(np.abs(x - self.x_ref).sum(axis=1)) > 0.5 * self.skin:
            self._build(x)
        return _ef_kernel_pbc(x, self.pi, self.pj, self.pt, self.shift, self.shift, self.par, pot.R_IN, pot.R_OUT,
                              self.n_mobile)

    def hessian(self, x):
        """Sparse (CSC) Hessian of the mobile atoms (2 n_mobile x 2 n_mobile)."""
        x = np.ascontiguousarray(x, dtype=float)
        self.energy_forces(x)  # (re)builds the list if needed
        r, c, v = _hess_kernel_pbc(x, self.pi, self.pj, self.pt, self.shift, self.shift, self.par, pot.R_IN,
                                   pot.R_OUT, self.n_mobile)
        n = 2 * self.n_mobile
        return sp.csc_matrix((v, (r, c)), shape=(n, n))


def _pair_tables():
    if not _PAIR_CACHE:
        for key, (s, e) in pot.PAIRS.items():
            fpoly, epoly, shift = pot.smoothing_polynomials(s, e)
            _PAIR_CACHE[key] = (s, e, fpoly, fpoly.deriv(), epoly, shift)
    return _PAIR_CACHE


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
    factorization (symmetric mode, ~0.07 s for 3000 relaxed atoms) serves many
    relaxations; each iteration then costs one force evaluation (numba kernel on
    a Verlet list, :class:`PairList`, ~1 ms) and two triangular solves (~2 ms).
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
            # symmetric mode (minimum degree on H + H^T, diagonal pivots): ~3x faster than
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


# ---------------------------------------------------------------- periodic (AQS) kernels
@njit(cache=True, inline="always")
def _pair_u_f_df(r, r2, p, r_in):
    """Pair energy u (unshifted), force f = -U'(r) and its derivative df = -U''(r) at distance r
    from the row ``p`` of :func:`_par_table` (LJ inside r_in, the smoothing polynomial beyond)."""
    if r < r_in:
        sr2 = p[0] * p[0] / r2
        sr6 = sr2 * sr2 * sr2
        u = 4.0 * p[1] * (sr6 * sr6 - sr6)
        f = 24.0 * p[1] * (2.0 * sr6 * sr6 - sr6) / r
        df = 24.0 * p[1] * (-26.0 * sr6 * sr6 + 7.0 * sr6) / r2
    else:
        t = r - r_in
        u = p[6] + t * (p[7] + t * (p[8] + t * (p[9] + t * p[10])))
        f = p[2] + t * (p[3] + t * (p[4] + t * p[5]))
        df = p[3] + t * (2.0 * p[4] + t * 3.0 * p[5])
    return u, f, df


@njit(cache=True, inline="always")
def _pair_vector(x, pi, pj, sx, sy, q):
    """(i, j, dx, dy, r^2) of candidate pair q: x_i - x_j + (sx, sy)[q] (image shift)."""
    i = pi[q]
    j = pj[q]
    dx = x[i, 0] - x[j, 0] + sx[q]
    dy = x[i, 1] - x[j, 1] + sy[q]
    return i, j, dx, dy, dx * dx + dy * dy


@njit(cache=True, inline="always")
def _ef_pairs(x, pi, pj, pt, sx, sy, par, r_in, r_out, lo, hi, F):
    """Energy of the candidate pairs lo..hi-1 (pi, pj) of types pt, their forces added to ``F`` (on
    atoms below len(F) only); pair vector x_i - x_j + (sx, sy) (periodic image shift; zero for
    open boundaries); pairs beyond r_out skipped: the same pair potential as :func:`_pair_terms`."""
    n_out = F.shape[0]
    E = 0.0
    r_out2 = r_out * r_out
    for q in range(lo, hi):
        i, j, dx, dy, r2 = _pair_vector(x, pi, pj, sx, sy, q)
        if r2 >= r_out2:
            continue
        r = math.sqrt(r2)
        p = par[pt[q]]
        u, f, _ = _pair_u_f_df(r, r2, p, r_in)
        E += u - p[11]
        fx = f * dx / r
        fy = f * dy / r
        if i < n_out:
            F[i, 0] += fx
            F[i, 1] += fy
        if j < n_out:
            F[j, 0] -= fx
            F[j, 1] -= fy
    return E


@njit(cache=True, parallel=True)
def energy_forces_chunked(x, pi, pj, pt, sx, sy, par, r_in, r_out, nchunk):
    """Energy and forces of the periodic pair list (same pair terms as
    :func:`_ef_kernel_pbc`), the pairs split into ``nchunk``
    contiguous chunks summed in a fixed order (thread-count independent bits)."""
    n = x.shape[0]
    npair = pi.shape[0]
    Fc = np.zeros((nchunk, n, 2))
    Ec = np.zeros(nchunk)
    for c in prange(nchunk):
        Ec[c] = _ef_pairs(x, pi, pj, pt, sx, sy, par, r_in, r_out, c * npair // nchunk, (c + 1) * npair // nchunk,
                          Fc[c])
    F = np.zeros((n, 2))
    E = 0.0
    for c in range(nchunk):
        E += Ec[c]
        for i in range(n):
            F[i, 0] += Fc[c, i, 0]
            F[i, 1] += Fc[c, i, 1]
    return E, F


@njit(cache=True)
def _ef_kernel_pbc(x, pi, pj, pt, sx, sy, par, r_in, r_out, n_out):
    """Energy of the candidate pairs and forces on the first ``n_out`` atoms (:func:`_ef_pairs`)."""
    F = np.zeros((n_out, 2))
    E = _ef_pairs(x, pi, pj, pt, sx, sy, par, r_in, r_out, 0, pi.shape[0], F)
    return E, F


@njit(cache=True)
def _hess_kernel_pbc(x, pi, pj, pt, sx, sy, par, r_in, r_out, nm):
    """COO triplets (rows, cols, vals) of the Hessian block of the first ``nm`` atoms (dof 2 i + a);
    pair vector x_i - x_j + (sx, sy) (periodic image shift; zero for open boundaries): the same
    second derivatives as :func:`energy_forces_hessian`.  Duplicate (i, j) blocks arise only
    from distinct periodic images (summed by the sparse constructor)."""
    npair = pi.shape[0]
    rows = np.empty(4 * nm + 8 * npair, np.int64)
    cols = np.empty(4 * nm + 8 * npair, np.int64)
    vals = np.empty(4 * nm + 8 * npair)
    diag = np.zeros((nm, 2, 2))
    c = 0
    r_out2 = r_out * r_out
    for q in range(npair):
        i, j, dx, dy, r2 = _pair_vector(x, pi, pj, sx, sy, q)
        if r2 >= r_out2:
            continue
        r = math.sqrt(r2)
        _, f, df = _pair_u_f_df(r, r2, par[pt[q]], r_in)
        # U' = -f, U'' = -df: K = U'' n n + U'/r (I - n n)
        nx = dx / r
        ny = dy / r
        a = -df
        b = -f / r
        kxx = a * nx * nx + b * (1.0 - nx * nx)
        kyy = a * ny * ny + b * (1.0 - ny * ny)
        kxy = (a - b) * nx * ny
        if i < nm:
            diag[i, 0, 0] += kxx
            diag[i, 1, 1] += kyy
            diag[i, 0, 1] += kxy
        if j < nm:
            diag[j, 0, 0] += kxx
            diag[j, 1, 1] += kyy
            diag[j, 0, 1] += kxy
        if i < nm and j < nm:
            for (u, w) in ((i, j), (j, i)):
                rows[c] = 2 * u
                cols[c] = 2 * w
                vals[c] = -kxx
                rows[c + 1] = 2 * u + 1
                cols[c + 1] = 2 * w + 1
                vals[c + 1] = -kyy
                rows[c + 2] = 2 * u
                cols[c + 2] = 2 * w + 1
                vals[c + 2] = -kxy
                rows[c + 3] = 2 * u + 1
                cols[c + 3] = 2 * w
                vals[c + 3] = -kxy
                c += 4
    for i in range(nm):
        rows[c] = 2 * i
        cols[c] = 2 * i
        vals[c] = diag[i, 0, 0]
        rows[c + 1] = 2 * i + 1
        cols[c + 1] = 2 * i + 1
        vals[c + 1] = diag[i, 1, 1]
        rows[c + 2] = 2 * i
        cols[c + 2] = 2 * i + 1
        vals[c + 2] = diag[i, 0, 1]
        rows[c + 3] = 2 * i + 1
        cols[c + 3] = 2 * i
        vals[c + 3] = diag[i, 0, 1]
        c += 4
    return rows[:c], cols[:c], vals[:c]


@njit(cache=True)
def _cell_scan(xs, order, start, ncx, ncy, lx, ly, t, rc, pi, pj, dxs, dys, store):
    """Pairs within ``rc`` of the sorted cell list (half stencil); counts them, and stores them
    (i, j, minimum-image x_i - x_j) when ``store``.  Returns the count."""
    m = 0
    rc2 = rc * rc
    hx = 0.5 * lx
    hy = 0.5 * ly
    offs = ((0, 0), (1, 0), (-1, 1), (0, 1), (1, 1))
    for cy in range(ncy):
        for cx in range(ncx):
            c0 = cy * ncx + cx
            for (ox, oy) in offs:
                c1 = ((cy + oy) % ncy) * ncx + (cx + ox) % ncx
                for a in range(start[c0], start[c0 + 1]):
                    i = order[a]
                    b0 = a + 1 if c1 == c0 else start[c1]
                    for b in range(b0, start[c1 + 1]):
                        j = order[b]
                        sxd = xs[i, 0] - xs[j, 0]
                        syd = xs[i, 1] - xs[j, 1]
                        if sxd > hx:  # minimum image (both wrapped into [0, l))
                            sxd -= lx
                        elif sxd < -hx:
                            sxd += lx
                        if syd > hy:
                            syd -= ly
                        elif syd < -hy:
                            syd += ly
                        dx = sxd + t * syd
                        if dx * dx + syd * syd < rc2:
                            if store:
                                pi[m] = i
                                pj[m] = j
                                dxs[m] = dx
                                dys[m] = syd
                            m += 1
    return m


@njit(cache=True)
def _cell_pairs(x, lx, ly, xy, rc):
    """Pairs of the triclinic periodic cell within distance ``rc``, by a cell list in sheared
    coordinates (cells >= rc (1 + |t|) by >= rc, t = xy / ly; half stencil): (pi, pj, nx, ny),
    the pair vector being x_i - x_j + nx (lx, 0) + ny (xy, ly).  Needs at least 3 cells each
    way (the caller checks)."""
    n = x.shape[0]
    t = xy / ly
    ncx = int(lx // (rc * (1.0 + abs(t))))
    ncy = int(ly // rc)
    xs = np.empty((n, 2))
    cell = np.empty(n, np.int64)
    for i in range(n):
        y = x[i, 1] - math.floor(x[i, 1] / ly) * ly
        if y >= ly:
            y = 0.0
        u = x[i, 0] - t * x[i, 1]
        u = u - math.floor(u / lx) * lx
        if u >= lx:
            u = 0.0
        xs[i, 0] = u
        xs[i, 1] = y
        cx = min(int(u / lx * ncx), ncx - 1)
        cy = min(int(y / ly * ncy), ncy - 1)
        cell[i] = cy * ncx + cx
    order = np.argsort(cell, kind="mergesort")
    start = np.zeros(ncx * ncy + 1, np.int64)
    for i in range(n):
        start[cell[i] + 1] += 1
    for c in range(ncx * ncy):
        start[c + 1] += start[c]
    e_i = np.empty(0, np.int64)
    e_f = np.empty(0)
    m = _cell_scan(xs, order, start, ncx, ncy, lx, ly, t, rc, e_i, e_i, e_f, e_f, False)
    pi = np.empty(m, np.int64)
    pj = np.empty(m, np.int64)
    dxs = np.empty(m)
    dys = np.empty(m)
    _cell_scan(xs, order, start, ncx, ncy, lx, ly, t, rc, pi, pj, dxs, dys, True)
    nx = np.empty(m)
    ny = np.empty(m)
    for q in range(m):
        i = pi[q]
        j = pj[q]
        sx_ = dxs[q] - (x[i, 0] - x[j, 0])  # a lattice vector nx (lx, 0) + ny (xy, ly)
        sy_ = dys[q] - (x[i, 1] - x[j, 1])
        ny[q] = math.floor(sy_ / ly + 0.5)
        nx[q] = math.floor((sx_ - ny[q] * xy) / lx + 0.5)
    return pi, pj, nx, ny


@njit(cache=True)
def _bracket_order(x, pi, pj, nx, ny, lx, ly, xy, r_in, r_out, nchunk):
    """The pairs reordered, stably, by (chunk, distance bracket at x: < r_in, < r_out, beyond), the
    chunks being those of :func:`energy_forces_chunked` (counting sort)."""
    m = pi.shape[0]
    key = np.empty(m, np.int64)
    cnt = np.zeros(3 * nchunk + 1, np.int64)
    for c in range(nchunk):
        for q in range(c * m // nchunk, (c + 1) * m // nchunk):
            i = pi[q]
            j = pj[q]
            dx = x[i, 0] - x[j, 0] + nx[q] * lx + ny[q] * xy
            dy = x[i, 1] - x[j, 1] + ny[q] * ly
            r2 = dx * dx + dy * dy
            k = 3 * c + (1 if r2 >= r_in * r_in else 0) + (1 if r2 >= r_out * r_out else 0)
            key[q] = k
            cnt[k + 1] += 1
    for k in range(3 * nchunk):
        cnt[k + 1] += cnt[k]
    pi2 = np.empty_like(pi)
    pj2 = np.empty_like(pj)
    nx2 = np.empty_like(nx)
    ny2 = np.empty_like(ny)
    for q in range(m):
        d = cnt[key[q]]
        cnt[key[q]] += 1
        pi2[d] = pi[q]
        pj2[d] = pj[q]
        nx2[d] = nx[q]
        ny2[d] = ny[q]
    return pi2, pj2, nx2, ny2


class PeriodicPairList:
    """Verlet list of the triclinic periodic cell ``box`` = (lx, ly, xy): pairs within
    R_OUT + ``skin`` and their image shifts nx (lx, 0) + ny (xy, ly), for the numba
    energy/force/Hessian kernels.  :meth:`prepare` maps positions (wrapped or not) onto the
    images of the list (x_ref carried affinely to the current tilt, plus the minimum-image
    displacement) and rebuilds the list when an atom moved by more than skin / 2 or the change
    of tilt could bring a pair beyond the skin within R_OUT (the criterion
    2 max|d| + |dxy / ly| (R_OUT + skin) < skin); a change of lx or ly also rebuilds it."""

    def __init__(self, types, skin=0.3, nchunk=0):
        self.types = np.asarray(types)
        self.skin = float(skin)
        self.nchunk = int(nchunk)  # > 0: the threaded, chunked kernel :func:`energy_forces_chunked`
        self.x_ref = None
        self.box_ref = None
        self.par = _par_table()
        self.n_build = 0

    def _build(self, x, box, kdtree=False):
        lx, ly, xy = box
        t = xy / ly
        rc = pot.R_OUT + self.skin
        if not kdtree and lx // (rc * (1.0 + abs(t))) >= 3 and ly // rc >= 3:  # cell list (~10x faster than the k-d tree)
            pi, pj, self.nx, self.ny = _cell_pairs(np.ascontiguousarray(x, dtype=float), lx, ly, xy, rc)
            self._finish_build(pi, pj, x, box)
            return
        xs = np.empty_like(x)
        xs[:, 1] = np.mod(x[:, 1], ly)
        xs[:, 0] = np.mod(x[:, 0] - t * x[:, 1], lx)
        xs[:, 1] = np.minimum(xs[:, 1], np.nextafter(ly, 0))
        xs[:, 0] = np.minimum(xs[:, 0], np.nextafter(lx, 0))
        rc = pot.R_OUT + self.skin
        pairs = cKDTree(xs, boxsize=(lx, ly)).query_pairs(rc * (1.0 + abs(t)), output_type="ndarray")
        i, j = pairs[:, 0], pairs[:, 1]
        ds = xs[i] - xs[j]
        ds[:, 0] -= np.round(ds[:, 0] / lx) * lx
        ds[:, 1] -= np.round(ds[:, 1] / ly) * ly
        d = np.stack([ds[:, 0] + t * ds[:, 1], ds[:, 1]], axis=1)  # minimum-image x_i - x_j
        keep = d[:, 0] ** 2 + d[:, 1] ** 2 < rc**2
        i, j, d = i[keep], j[keep], d[keep]
        s = d - (x[i] - x[j])  # a lattice vector nx (lx, 0) + ny (xy, ly)
        ny = np.round(s[:, 1] / ly)
        nx = np.round((s[:, 0] - ny * xy) / lx)
        self.nx, self.ny = nx, ny
        self._finish_build(i, j, x, box)

    def _finish_build(self, i, j, x, box):
        # order the pairs of each force-kernel chunk by distance bracket (LJ, smoothing, beyond the
        # cutoff) at the build positions: the kernel's branches then follow runs instead of being
        # mispredicted about every second pair (measured at 10^4 atoms: 1.2 ms instead of 2.4 ms)
        i, j, self.nx, self.ny = _bracket_order(np.ascontiguousarray(x, dtype=float), np.asarray(i, np.int64),
                                                np.asarray(j, np.int64), np.asarray(self.nx, float),
                                                np.asarray(self.ny, float), *box, pot.R_IN, pot.R_OUT,
                                                max(1, self.nchunk))
        self.pi = np.ascontiguousarray(i, dtype=np.int64)
        self.pj = np.ascontiguousarray(j, dtype=np.int64)
        ti, tj = self.types[self.pi], self.types[self.pj]
        self.pt = (np.minimum(ti, tj) + np.maximum(ti, tj) - 2).astype(np.int64)
        self.x_ref = x.copy()
        self.box_ref = tuple(box)
        self.n_build += 1
        self._set_box(box)

    def _set_box(self, box):
        lx, ly, xy = box
        self.sx = np.ascontiguousarray(self.nx * lx + self.ny * xy)
        self.sy = np.ascontiguousarray(self.ny * ly)
        self.box = tuple(box)

    def prepare(self, x, box):
        """Positions equivalent to ``x`` (same atoms modulo the lattice) on the list's images in
        ``box``; rebuilds the list if needed.  Pass the result to :meth:`energy_forces` /
        :meth:`hessian`."""
        from .engine import min_image

        x = np.array(x, dtype=float)
        box = tuple(float(b) for b in box)
        if self.x_ref is not None and len(x) == len(self.x_ref) and box[:2] == self.box_ref[:2]:
            lx, ly, xy = box
            dt = (xy - self.box_ref[2]) / ly
            xa = self.x_ref.copy()
            xa[:, 0] += dt * xa[:, 1]
            d = min_image(x - xa, lx, ly, xy)
            if 2.0 * np.sqrt((d**2).sum(axis=1).max()) + abs(dt) * (pot.R_OUT + self.skin) < self.skin:
                if box != self.box:
                    self._set_box(box)
                return np.ascontiguousarray(xa + d)
        self._build(x, box)
        return x

    def follow(self, x):
        """``x`` (already on the list's images, same box as the last :meth:`prepare`), after
        rebuilding the list if an atom moved too far: to be called on every new trial position."""
        lx, ly, xy = self.box
        dt = (xy - self.box_ref[2]) / ly
        d = x - self.x_ref
        d[:, 0] -= dt * self.x_ref[:, 1]
        if 2.0 * np.sqrt((d**2).sum(axis=1).max()) + abs(dt) * (pot.R_OUT + self.skin) >= self.skin:
            self._build(np.ascontiguousarray(x, dtype=float), self.box)
        return x

    def energy_forces(self, x):
        if self.nchunk > 0:
            return energy_forces_chunked(x, self.pi, self.pj, self.pt, self.sx, self.sy, self.par, pot.R_IN,
                                         pot.R_OUT, self.nchunk)
        return _ef_kernel_pbc(x, self.pi, self.pj, self.pt, self.sx, self.sy, self.par, pot.R_IN, pot.R_OUT, len(x))

    def validity(self):
        """(x_ref carried affinely to the current tilt, margin): the list holds every pair
        within R_OUT at positions x as long as 2 max_i |x_i - xa_ref_i| < margin."""
        lx, ly, xy = self.box
        dt = (xy - self.box_ref[2]) / ly
        xa = self.x_ref.copy()
        xa[:, 0] += dt * self.x_ref[:, 1]
        return xa, self.skin - abs(dt) * (pot.R_OUT + self.skin)

    def hessian(self, x, r_cut=None):
        """Sparse (CSC) Hessian of all atoms (2N x 2N); ``r_cut`` < R_OUT: of the pairs closer than
        r_cut only (a cheaper preconditioner)."""
        r, c, v = _hess_kernel_pbc(x, self.pi, self.pj, self.pt, self.sx, self.sy, self.par, pot.R_IN,
                                   pot.R_OUT if r_cut is None else float(r_cut), len(x))
        n = 2 * len(x)
        return sp.csc_matrix((v, (r, c)), shape=(n, n))
