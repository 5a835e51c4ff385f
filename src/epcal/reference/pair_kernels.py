"""Numba kernels of the pair potential on a pair list with image shifts (paper section 2.1).

Energy, forces (serial, and threaded over chunks of the list) and the sparse Hessian of the
smoothed binary LJ potential of :mod:`epcal.reference.potential`, evaluated on the pairs of a
Verlet list (:mod:`epcal.reference.pair_lists`) whose pair vectors carry an image shift
nx (lx, 0) + ny (xy, ly) (zero for an open patch).
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from . import potential as pot

_PAIR_CACHE: dict = {}
_PAR_TABLE: list = []


def _pair_tables():
    if not _PAIR_CACHE:
        for key, (s, e) in pot.PAIRS.items():
            fpoly, epoly, shift = pot.smoothing_polynomials(s, e)
            _PAIR_CACHE[key] = (s, e, fpoly, fpoly.deriv(), epoly, shift)
    return _PAIR_CACHE


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
