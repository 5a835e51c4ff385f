"""Athermal quasistatic (AQS) simple shear of the EPM (paper section 3.4): numba kernels.

Event-driven: between avalanches the external strain advances by the number of steps to the next
activation (:func:`steps_to_activation`, exact with the activation predicate of
:mod:`epcal.dynamics`), so skipping elastic steps is identical bit for bit to stepping one step
at a time; the avalanches are :func:`epcal.dynamics.relax`.
"""
from __future__ import annotations

from collections import namedtuple

import numpy as np
from numba import njit

from .dynamics import ACTIVE, CACHE_MARGIN, _cache_bound, _dtau, new_workspace, relax
from .variant_kernels import (activation_estimates_het, activation_estimates_pressure, active_at_het,
                              active_at_pressure, element_load, pressure_term)

@njit(cache=True)
def _active_at(tau_c, a, b, d, sxy_internal, G, dgamma, m):
    return _dtau(tau_c, a, b, d, sxy_internal + G * (m * dgamma)) <= ACTIVE


@njit(cache=True, error_model="numpy")
def _activation_estimates(tau_c, a, b, e, d, sxy, rate_scale, rem, jest):
    """rem[s] = Delta tau^c of the systems of element e, jest[s] = rem[s] / (rate_scale b[s])
    for systems loaded by the drive (rate > 0), +inf otherwise (vectorized; no branches)."""
    for s in range(tau_c.shape[1]):
        r = _dtau(tau_c[e, s], a[e, s], b[e, s], d, sxy)
        rate = rate_scale * b[e, s]
        rem[s] = r
        jest[s] = r / rate if rate > 0.0 else np.inf


@njit(cache=True)
def steps_to_activation(sig, tau_c, a, b, G, dgamma, n, sign, jmax, cache, lb, work, het, pres):
    """Smallest j in [1, jmax] such that some system is active at step n + sign*j, else jmax + 1.

    Loading is affine, tau of a system moves by sign G dgamma b per step, so j is
    estimated by division and then fixed with the exact activation predicate, the
    same one the relaxation uses.  Each element has a cached lower bound
    j >= (min Delta tau^c)/(G dgamma); the element with the lowest bound is scanned
    first and every element whose bound exceeds the best j found is skipped.  ``lb``
    is a work buffer of length E, ``work`` one of at least two rows of length N.
    Model A: each system's rate is gamma (a c_d + b c_xy) and the bound uses the element's
    rate_max; model B: distances shifted by the element's alpha_p p (constant while driving).
    """
    E, N = tau_c.shape
    best = jmax + 1
    step_tau = G * dgamma
    ext = G * (n * dgamma)
    gam = n * dgamma
    rem = work[0]
    jest = work[1]
    first = 0
    for e in range(E):
        if het is None:
            bnd = _cache_bound(cache, e, sig[e, 0] - sig[e, 1], sig[e, 2] + ext)
        else:
            dl, sl = element_load(sig, e, gam, het)
            bnd = _cache_bound(cache, e, dl, sl)
        if pres is not None:
            bnd += pressure_term(pres, sig[e, 0], sig[e, 1])
        if het is None:
            lb[e] = (bnd - CACHE_MARGIN) / step_tau
        else:
            lb[e] = (bnd - CACHE_MARGIN) / (dgamma * het.rate_max[e])
        if lb[e] < lb[first]:
            first = e
    # visit the most promising element first, then all others pruned by their bound
    for q in range(-1, E):
        e = first if q < 0 else q
        if (q >= 0 and e == first) or lb[e] > best:
            continue
        d = sig[e, 0] - sig[e, 1]
        sxy_internal = sig[e, 2]
        if het is None:
            sxy = sxy_internal + ext
            if pres is None:
                _activation_estimates(tau_c, a, b, e, d, sxy, sign * step_tau, rem, jest)
            else:
                qe = pressure_term(pres, sig[e, 0], sig[e, 1])
                raw = activation_estimates_pressure(tau_c, a, b, e, d, sxy, qe, sign * step_tau, rem, jest)
        else:
            load_d = het.load_d[e]
            load_x = het.load_xy[e]
            dl, sxy = element_load(sig, e, gam, het)
            activation_estimates_het(tau_c, a, b, e, dl, sxy, load_d, load_x, sign * dgamma, rem, jest)
        dtau_min = np.inf
        for s in range(N):
            if rem[s] < dtau_min:
                dtau_min = rem[s]
            if jest[s] > best:
                continue
            j = int(np.ceil(jest[s]))
            if j < 1:
                j = 1
            if het is not None:
                while j > 1 and active_at_het(tau_c[e, s], a[e, s], b[e, s], d, sxy_internal, load_d, load_x, dgamma,
                                              n + sign * (j - 1)):
                    j -= 1
                while not active_at_het(tau_c[e, s], a[e, s], b[e, s], d, sxy_internal, load_d, load_x, dgamma,
                                        n + sign * j):
                    j += 1
            elif pres is not None:
                while j > 1 and active_at_pressure(tau_c[e, s], a[e, s], b[e, s], d, sxy_internal, G, dgamma,
                                                   n + sign * (j - 1), qe):
                    j -= 1
                while not active_at_pressure(tau_c[e, s], a[e, s], b[e, s], d, sxy_internal, G, dgamma,
                                             n + sign * j, qe):
                    j += 1
            else:
                while j > 1 and _active_at(tau_c[e, s], a[e, s], b[e, s], d, sxy_internal, G, dgamma,
                                           n + sign * (j - 1)):
                    j -= 1
                while not _active_at(tau_c[e, s], a[e, s], b[e, s], d, sxy_internal, G, dgamma, n + sign * j):
                    j += 1
            if j < best:
                best = j
        if pres is not None:
            dtau_min = raw  # the cache holds unshifted distances
        if het is not None:
            d = dl
        cache[0, e] = dtau_min
        cache[1, e] = d
        cache[2, e] = sxy
    return best


@njit(cache=True)
def mean_xy(sig):
    acc = 0.0
    for e in range(sig.shape[0]):
        acc += sig[e, 2]
    return acc / sig.shape[0]


@njit(cache=True)
def _crossed_zero(mean_sxy_internal, G, dgamma, m, sign):
    """True when the external stress at step m has reached zero in the sense of driving."""
    return sign * (mean_sxy_internal + G * (m * dgamma)) >= 0.0


@njit(cache=True)
def _steps_to_zero_stress(mean_sxy_internal, G, dgamma, n, sign, jmax):
    """Smallest j in [1, jmax] at which the external stress has crossed zero, else jmax + 1.

    Driving with ``sign`` moves Sigma_ext by sign G dgamma per step (no avalanche),
    so sign * Sigma_ext grows linearly; estimate, then fix with the exact predicate.
    """
    jest = -sign * (mean_sxy_internal + G * (n * dgamma)) / (G * dgamma)
    if jest > jmax + 1:
        return jmax + 1
    j = max(1, int(np.ceil(jest)))
    while j > 1 and _crossed_zero(mean_sxy_internal, G, dgamma, n + sign * (j - 1), sign):
        j -= 1
    while not _crossed_zero(mean_sxy_internal, G, dgamma, n + sign * j, sign):
        j += 1
    return j


#: the AQS drive of :func:`aqs`: the shear modulus G of the external stress G gamma_ext, the strain
#: step dgamma, the start and end steps n, n_end (either sense), whether to stop where the external
#: stress crosses zero (unloading, section 5) and whether to skip elastic steps exactly
Drive = namedtuple("Drive", ["G", "dgamma", "n", "n_end", "stop_at_zero", "skip"])
#: the avalanche records of :func:`aqs`, one row each: step, Sigma_ext before and after, slips
Records = namedtuple("Records", ["step", "before", "after", "slips"])


@njit(cache=True, nogil=True)
def aqs(sig, eps_pl, systems, lattice, law, drive, rng, slip_count, records, variant_opts, het, pres):
    """AQS simple shear from step drive.n toward drive.n_end (either sense), section 3.4.

    Records each avalanche as (step, Sigma_ext before, Sigma_ext after, slips) in ``records``
    (:data:`Records`).  With ``drive.skip`` the elastic steps are jumped over exactly; without it the
    strain advances one dgamma at a time (reference path).  With ``drive.stop_at_zero`` the drive
    stops at the first step where the external stress has crossed zero in the sense of driving
    (unloading, section 5).  The other arguments are those of :func:`epcal.dynamics.relax`.
    Returns (n, records, finished): ``finished`` is False when the buffers are full (call again to
    continue).
    """
    G, dgamma, n, n_end, stop_at_zero, skip = drive
    tau_c, a, b = systems.tau_c, systems.a, systems.b
    E, N = tau_c.shape
    sign = 1 if n_end >= n else -1
    cap = records.step.shape[0]
    ws = new_workspace(E, N)
    cache = ws.cache
    work = ws.renewal
    lb = np.empty(E)
    nrec = 0
    mean_sxy_internal = mean_xy(sig)
    while n != n_end:
        if nrec >= cap:
            return n, nrec, False
        remaining = (n_end - n) * sign
        if skip:
            j = steps_to_activation(sig, tau_c, a, b, G, dgamma, n, sign, remaining, cache, lb, work, het, pres)
            if stop_at_zero:
                jz = _steps_to_zero_stress(mean_sxy_internal, G, dgamma, n, sign, remaining)
                if jz < j:
                    j = jz
            if j > remaining:
                j = remaining
        else:
            j = 1
        n += sign * j
        ext = G * (n * dgamma)
        before = mean_sxy_internal + ext
        if het is None:
            ns = relax(sig, eps_pl, systems, lattice, law, ext, rng, slip_count, ws, variant_opts, het, pres, None)
        else:  # model A: relax at gamma_ext; G is the sample's macroscopic modulus (records)
            ns = relax(sig, eps_pl, systems, lattice, law, n * dgamma, rng, slip_count, ws, variant_opts, het, pres,
                       None)
        if ns > 0:
            mean_sxy_internal = mean_xy(sig)
            records.step[nrec] = n
            records.before[nrec] = before
            records.after[nrec] = mean_sxy_internal + ext
            records.slips[nrec] = ns
            nrec += 1
        if stop_at_zero and _crossed_zero(mean_sxy_internal, G, dgamma, n, sign):
            return n, nrec, True
    return n, nrec, True
