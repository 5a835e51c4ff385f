"""Verlet lists of the atomistic solvers: open patches (scipy's KD-tree) and the triclinic
periodic cell of AQS (numba cell lists, rebuilt when atoms or the tilt moved too far).

Both hand their pairs, with image shifts, to the kernels of :mod:`epcal.reference.pair_kernels`.
"""
from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp
from numba import njit
from scipy.spatial import cKDTree

from . import potential as pot
from .pair_kernels import _ef_kernel_pbc, _hess_kernel_pbc, _par_table, energy_forces_chunked


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
        # a cell list when the box holds >= 3 cells of side rc (tilt included) each way, else the k-d tree
        if not kdtree and lx // (rc * (1.0 + abs(t))) >= 3 and ly // rc >= 3:
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
        # mispredicted about every second pair (timings: benchmarks/reference/RESULTS.md)
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
        from .lammps_driver import min_image

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
