"""The 2D binary Lennard-Jones glass of the paper (section 2.1, DESIGN.md section 5).

Units sigma_SL = epsilon_SL = m = 1.  Types: 1 = S (small), 2 = L (large),
N_L / N_S = (1 + sqrt 5) / 4.  Between R_IN = 2.0 and R_OUT = 2.5 (absolute,
the same for all pairs) the pair *force* is the cubic polynomial that matches
the LJ force and its slope at R_IN and vanishes with zero slope at R_OUT; the
energy is its integral, shifted to zero at R_OUT (the energy is thus C2).  This
is LAMMPS ``pair_style lj/smooth 2.0 2.5`` + ``pair_modify shift yes``.

This module is the *independent* numpy reference used by the tests to check
the LAMMPS engine: the smoothing cubic is obtained here by solving the four
matching conditions as a linear system and integrated with numpy.polynomial,
not by copying LAMMPS' closed-form coefficients.
"""
from __future__ import annotations

import math

import numpy as np

#: inner and outer radius of the smoothing region (sigma_SL)
R_IN = 2.0
R_OUT = 2.5
#: N_L / N_S
RATIO_L_OVER_S = (1.0 + math.sqrt(5.0)) / 4.0
#: number density of the paper's glass, N = 10**4 in L = 98.8045
DENSITY = 1.0e4 / 98.8045**2
#: temperature of the equilibrated supercooled liquid (1.132 * T_g, T_g = 0.31)
T_LIQUID = 0.351
#: pair parameters (sigma, epsilon), type indices 1 = S, 2 = L
PAIRS = {
    (1, 1): (2.0 * math.sin(math.pi / 10.0), 0.5),
    (1, 2): (1.0, 1.0),
    (2, 2): (2.0 * math.sin(math.pi / 5.0), 0.5),
}


def composition(n_atoms: int) -> tuple[int, int]:
    """(N_S, N_L) for ``n_atoms`` atoms with N_L/N_S as close as possible to (1+sqrt5)/4."""
    n_l = int(round(n_atoms * RATIO_L_OVER_S / (1.0 + RATIO_L_OVER_S)))
    return n_atoms - n_l, n_l


def box_length(n_atoms: int, density: float = DENSITY) -> float:
    """Side of the square periodic box holding ``n_atoms`` at ``density``."""
    return math.sqrt(n_atoms / density)


def pair_params(ti: int, tj: int) -> tuple[float, float]:
    return PAIRS[(min(ti, tj), max(ti, tj))]


def _lj_force(r, s, e):
    """Magnitude of the LJ force -dU/dr (positive = repulsive)."""
    sr6 = (s / r) ** 6
    return 24.0 * e * (2.0 * sr6 * sr6 - sr6) / r


def _lj_dforce(r, s, e):
    sr6 = (s / r) ** 6
    return 24.0 * e * (-26.0 * sr6 * sr6 + 7.0 * sr6) / r**2


def _lj_energy(r, s, e):
    sr6 = (s / r) ** 6
    return 4.0 * e * (sr6 * sr6 - sr6)


def smoothing_polynomials(s: float, e: float, r_in: float = R_IN, r_out: float = R_OUT):
    """(force_poly, energy_poly, shift) in t = r - r_in on [r_in, r_out].

    force(t) is the cubic with force(0) = F_LJ(r_in), force'(0) = F_LJ'(r_in),
    force(T) = force'(T) = 0, T = r_out - r_in; energy(t) = U_LJ(r_in) - int_0^t force,
    and ``shift`` = energy(T) is subtracted everywhere (shift yes).
    """
    T = r_out - r_in
    A = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [1, T, T**2, T**3], [0, 1, 2 * T, 3 * T**2]], float)
    b = np.array([_lj_force(r_in, s, e), _lj_dforce(r_in, s, e), 0.0, 0.0])
    fpoly = np.polynomial.Polynomial(np.linalg.solve(A, b))
    epoly = _lj_energy(r_in, s, e) - fpoly.integ()
    return fpoly, epoly, float(epoly(T))


def pair_energy_force(r: np.ndarray, s: float, e: float):
    """Energy U(r) and force magnitude F(r) = -dU/dr of one pair type (vectorized, r < R_OUT)."""
    r = np.asarray(r, float)
    fpoly, epoly, shift = smoothing_polynomials(s, e)
    inner = r < R_IN
    t = r - R_IN
    u = np.where(inner, _lj_energy(r, s, e), epoly(t)) - shift
    f = np.where(inner, _lj_force(r, s, e), fpoly(t))
    out = r >= R_OUT
    return np.where(out, 0.0, u), np.where(out, 0.0, f)


def energy_forces_virial(pos: np.ndarray, types: np.ndarray, lx: float, ly: float, xy: float = 0.0):
    """Total energy, forces (N, 2) and virial stress tensor of a 2D triclinic periodic box.

    O(N^2) minimum image (the box must be larger than 2 R_OUT in both directions);
    meant for small test configurations.  Returns ``(E, F, sigma)`` with
    ``sigma = (1/A) sum_pairs r_ij (x) f_ij``-type pair virial written with the
    *stress* sign: sigma = -p_virial (positive under positive simple shear of
    a solid), A = lx * ly.
    """
    pos = np.asarray(pos, float)
    types = np.asarray(types, int)
    n = len(pos)
    E = 0.0
    F = np.zeros((n, 2))
    W = np.zeros((2, 2))  # sum over pairs d (x) f_on_i, d = r_i - r_j
    for i in range(n - 1):
        d = pos[i] - pos[i + 1:]
        # minimum image in a triclinic cell: first y (carries xy), then x
        ny = np.round(d[:, 1] / ly)
        d[:, 1] -= ny * ly
        d[:, 0] -= ny * xy
        d[:, 0] -= np.round(d[:, 0] / lx) * lx
        r = np.hypot(d[:, 0], d[:, 1])
        tj = types[i + 1:]
        for (a, b), (s, e) in PAIRS.items():
            m = (r < R_OUT) & (((types[i] == a) & (tj == b)) | ((types[i] == b) & (tj == a)))
            if not m.any():
                continue
            u, fmag = pair_energy_force(r[m], s, e)
            E += u.sum()
            fvec = (fmag / r[m])[:, None] * d[m]  # force on i from j
            F[i] += fvec.sum(0)
            F[i + 1 + np.flatnonzero(m)] -= fvec
            W += d[m].T @ fvec
    area = lx * ly
    # pressure tensor (virial part) p = W / A; stress sigma = -p
    return E, F, -W / area
