"""Numba kernels of the two variants that change the mechanics: A (A.8.1) and B (A.8.2).

The kernels of the original model (:mod:`epcal.dynamics`, :mod:`epcal.probe`) take two optional
arguments, ``het`` and ``pres``.  For every variant but A and B both are None: numba removes each
``if het is None`` / ``if pres is None`` branch before type inference (dead-branch pruning), so
model C's machine code is that of kernels without them -- a compile-time specialization, not a
runtime test in its loops.

**A, heterogeneous elasticity** (``het``: :data:`HetLattice` of :class:`epcal.heterogeneous.
HeterogeneousLattice`).  The lattice stress is ``sig`` (plastic strain and pre-stress) plus the
response to the external strain, gamma_ext c_e, now different per element: the element "load"
(d, Sxy) = (Sxx - Syy, Sxy) is (sig_xx - sig_yy + gamma c_d, sig_xy + gamma c_xy), one expression
(:func:`element_load`) in the relaxation and in the next-activation prediction (so skipping is exact
as for C).  A system's resolved stress rises at gamma (a c_d + b c_xy), bounded per element by
``rate_max`` = |c_d|/2 + |c_xy|.  Slips redistribute with the dense influence matrix
(:func:`apply_slip_dense`), gamma_max uses each element's own f_e(theta).

**B, pressure-sensitive thresholds** (``pres``: float array [alpha_p, p0]).  Each threshold acts as
tau_c + alpha_p p (A.8.2), with the element pressure p = p0 - (Sxx + Syy)/2 (stress positive in
tension, p positive in compression; p0 the sample's hydrostatic offset, the pressure the paper adds by
hand to the computed stresses, which never enter ``sig``).  q = alpha_p p is one number per element,
so the distance to threshold of every system is the original one plus q (:func:`dtau_pressure`);
the weakest system is the original weakest.  Where q < 0 (tension) an effective threshold may not
fall below :data:`TAU_FLOOR` (as in the authors' code), so that every slip keeps tau > 0 and its
gamma_max > 0.  Under the external simple shear and the patch's pure shear (both traceless on
homogeneous elements) p does not change: q is constant during loading, and the next activation is
predicted from the shifted distances exactly as in C.
"""
from __future__ import annotations

from collections import namedtuple

import numpy as np
from numba import njit

#: model A's lattice as the numba kernels read it (arrays of :class:`epcal.heterogeneous.HeterogeneousLattice`)
HetLattice = namedtuple("HetLattice", ["load_d", "load_xy", "rate_max", "kernel_d", "kernel_x", "f_coef"])
#: model A's fixed-boundary patches: offsets per (corner, size) and loading responses (see heterogeneous.patch_set)
PatchSet = namedtuple("PatchSet", ["k_off", "patch_f_off", "resp"])

#: smallest effective threshold of model B where tension lowers tau_c + alpha_p p (stress units)
TAU_FLOOR = 1e-3


# ----------------------------------------------------------------------------- B: pressure
@njit(cache=True, inline="always")
def pressure_term(pres, sxx, syy):
    """q = alpha_p p of an element, p = p0 - (Sxx + Syy)/2 (A.8.2)."""
    return pres[0] * (pres[1] - 0.5 * (sxx + syy))


@njit(cache=True, inline="always")
def dtau_pressure(tau_c, a, b, d, sxy, q):
    """Distance to the shifted threshold: (tau_c - M:Sigma) + q, or max(tau_c + q, TAU_FLOOR) - M:Sigma
    where q < 0."""
    if q >= 0.0:
        return (tau_c - (a * d + b * sxy)) + q
    t = tau_c + q
    if t < TAU_FLOOR:
        t = TAU_FLOOR
    return t - (a * d + b * sxy)


@njit(cache=True, inline="always")
def threshold_at(tau_c, q):
    """The effective threshold tau_c + q (floored at TAU_FLOOR where q < 0)."""
    t = tau_c + q
    if q < 0.0 and t < TAU_FLOOR:
        t = TAU_FLOOR
    return t


@njit(cache=True, inline="always")
def weakest_at(tau_c, a, b, e, d, sxy):
    """(system, Delta tau^c) of the lowest distance to threshold of element e at load (d, Sxy)."""
    best = np.inf
    bs = -1
    for s in range(tau_c.shape[1]):
        dt = tau_c[e, s] - (a[e, s] * d + b[e, s] * sxy)
        if dt < best:
            best = dt
            bs = s
    return bs, best


@njit(cache=True)
def weakest_pressure(tau_c, a, b, e, d, sxy, q):
    """(system, shifted distance, unshifted distance) of the weakest system of element e (model B).

    For q >= 0 the shifted distance is the unshifted minimum + q (rounding is monotone, so this is
    the minimum of the per-system values of :func:`dtau_pressure`, the ones the AQS prediction uses)."""
    bs, raw = weakest_at(tau_c, a, b, e, d, sxy)
    if q >= 0.0:
        return bs, raw + q, raw
    best = np.inf
    for s in range(tau_c.shape[1]):
        dt = dtau_pressure(tau_c[e, s], a[e, s], b[e, s], d, sxy, q)
        if dt < best:
            best = dt
            bs = s
    return bs, best, raw


@njit(cache=True, error_model="numpy")
def activation_estimates_pressure(tau_c, a, b, e, d, sxy, q, rate_scale, rem, jest):
    """As dynamics._activation_estimates with the shifted distances; returns the unshifted minimum."""
    raw = np.inf
    for s in range(tau_c.shape[1]):
        r0 = tau_c[e, s] - (a[e, s] * d + b[e, s] * sxy)
        if r0 < raw:
            raw = r0
        r = dtau_pressure(tau_c[e, s], a[e, s], b[e, s], d, sxy, q)
        rate = rate_scale * b[e, s]
        rem[s] = r
        jest[s] = r / rate if rate > 0.0 else np.inf
    return raw


@njit(cache=True, inline="always")
def active_at_pressure(tau_c, a, b, d, sxy_internal, G, dgamma, m, q):
    return dtau_pressure(tau_c, a, b, d, sxy_internal + G * (m * dgamma), q) <= 0.0


@njit(cache=True)
def element_rates_pressure(sig, tau_c, a, b, T, e, rates, pres):
    """Thermal rates nu = exp(-Delta tau^c / T) (Eq. 11) with the shifted distances; returns their sum."""
    d = sig[e, 0] - sig[e, 1]
    sxy = sig[e, 2]
    q = pressure_term(pres, sig[e, 0], sig[e, 1])
    tot = 0.0
    for s in range(tau_c.shape[1]):
        r = np.exp(-dtau_pressure(tau_c[e, s], a[e, s], b[e, s], d, sxy, q) / T)
        rates[e, s] = r
        tot += r
    return tot


# ------------------------------------------------------------------ A: heterogeneous elasticity
@njit(cache=True, inline="always")
def element_load(sig, e, gam, het):
    """(Sxx - Syy, Sxy) of element e at gamma_ext = gam: sig plus the element's own response gam c_e."""
    return (sig[e, 0] - sig[e, 1]) + gam * het.load_d[e], sig[e, 2] + gam * het.load_xy[e]


@njit(cache=True)
def apply_slip_dense(sig, eps_pl, kernel_d, kernel_x, e, dg, a, b):
    """Plastic strain dg M in element e and its stress change everywhere, dense influence matrix
    (rows kernel_d[e], kernel_x[e]: responses to (1, -1, 0) and (0, 0, 1/2), contiguous over targets)."""
    ca = dg * a
    cb = dg * b
    flat = sig.reshape(sig.shape[0] * 3)
    kd = kernel_d[e]
    kx = kernel_x[e]
    for q in range(flat.shape[0]):
        flat[q] += ca * kd[q] + cb * kx[q]
    eps_pl[e, 0] += dg * a
    eps_pl[e, 1] -= dg * a
    eps_pl[e, 2] += 0.5 * dg * b


@njit(cache=True, error_model="numpy")
def activation_estimates_het(tau_c, a, b, e, d, sxy, load_d, load_x, rate_scale, rem, jest):
    """rem[s] = Delta tau^c, jest[s] = rem[s] / (rate_scale (a c_d + b c_xy)) for systems the drive loads."""
    for s in range(tau_c.shape[1]):
        r = tau_c[e, s] - (a[e, s] * d + b[e, s] * sxy)
        rate = rate_scale * (a[e, s] * load_d + b[e, s] * load_x)
        rem[s] = r
        jest[s] = r / rate if rate > 0.0 else np.inf


@njit(cache=True, inline="always")
def active_at_het(tau_c, a, b, d_internal, sxy_internal, load_d, load_x, dgamma, m):
    """The activation predicate of model A at step m: the expression of :func:`element_load`."""
    g = m * dgamma
    return tau_c - (a * (d_internal + g * load_d) + b * (sxy_internal + g * load_x)) <= 0.0
