"""Thermal dynamics of the EPM: the KMC quench at gamma_ext = 0 (paper appendix A.3), numba kernels
over the state of :mod:`epcal.dynamics` (its redistribution and athermal relaxation after every
thermal event).  Event selection by thinning over a sum tree of per-element rate bounds.
"""
from __future__ import annotations

from collections import namedtuple

import numpy as np
from numba import njit

from .dynamics import _dtau, new_workspace, redistribute, relax, weakest_active
from .slip import draw_amplitude, renew_element, renew_systems, rng_uniform
from .variant_kernels import (apply_slip_dense, element_rates_pressure, pressure_term, threshold_at,
                              weakest_pressure)
#: the stationarity test of :func:`kmc_quench`: blocks of ``block`` events, relative tolerance
#: ``rtol``, between ``min_blocks`` and ``max_blocks`` blocks
QuenchSchedule = namedtuple("QuenchSchedule", ["block", "rtol", "min_blocks", "max_blocks"])


@njit(cache=True)
def _element_rates(sig, tau_c, a, b, T, e, rates):
    d = sig[e, 0] - sig[e, 1]
    sxy = sig[e, 2]
    tot = 0.0
    for s in range(tau_c.shape[1]):
        r = np.exp(-_dtau(tau_c[e, s], a[e, s], b[e, s], d, sxy) / T)
        rates[e, s] = r
        tot += r
    return tot


@njit(cache=True)
def _tree_build(tree, P, leaves):
    for i in range(P):
        tree[P + i] = leaves[i] if i < leaves.shape[0] else 0.0
    for i in range(P - 1, 0, -1):
        tree[i] = tree[2 * i] + tree[2 * i + 1]


@njit(cache=True)
def _tree_update(tree, P, i, value):
    i += P
    tree[i] = value
    i //= 2
    while i >= 1:
        tree[i] = tree[2 * i] + tree[2 * i + 1]
        i //= 2


@njit(cache=True)
def _tree_find(tree, P, r):
    """Leaf index whose cumulative interval contains r (0 <= r < total): O(log P)."""
    i = 1
    while i < P:
        left = tree[2 * i]
        if r < left:
            i = 2 * i
        else:
            r -= left
            i = 2 * i + 1
    return i - P


@njit(cache=True)
def _vm_mean(sig):
    acc = 0.0
    for e in range(sig.shape[0]):
        dd = 0.5 * (sig[e, 0] - sig[e, 1])
        acc += np.sqrt(dd * dd + sig[e, 2] * sig[e, 2])
    return acc / sig.shape[0]


@njit(cache=True)
def _min_dtau_mean(sig, tau_c, a, b, pres):
    acc = 0.0
    for e in range(sig.shape[0]):
        if pres is None:
            s, dt = weakest_active(sig, 0.0, tau_c, a, b, e)
        else:
            s, dt, raw = weakest_pressure(tau_c, a, b, e, sig[e, 0] - sig[e, 1], sig[e, 2],
                                          pressure_term(pres, sig[e, 0], sig[e, 1]))
        acc += dt
    return acc / sig.shape[0]


@njit(cache=True)
def _rates(sig, tau_c, a, b, T, e, rates, pres):
    if pres is None:
        return _element_rates(sig, tau_c, a, b, T, e, rates)
    return element_rates_pressure(sig, tau_c, a, b, T, e, rates, pres)


@njit(cache=True)
def kmc_select(sig, tau_c, a, b, T, rng, tree, P, upper, rref, dref, sref, rates, pres):
    """Choose the next thermal event (element, system) with probability nu / sum(nu), by thinning.

    ``upper`` (in the sum ``tree``) must bound every element's exact rate sum; the
    proposed element's reference (rref, dref, sref) is refreshed on the way.
    """
    E, N = tau_c.shape
    while True:
        e = _tree_find(tree, P, rng_uniform(rng) * tree[1])
        if e >= E:
            e = E - 1
        R = _rates(sig, tau_c, a, b, T, e, rates, pres)
        accept = rng_uniform(rng) * upper[e] < R
        rref[e] = R
        dref[e] = sig[e, 0] - sig[e, 1]
        sref[e] = sig[e, 2]
        upper[e] = R
        _tree_update(tree, P, e, R)
        if accept:
            break
    r2 = rng_uniform(rng) * R
    s = N - 1
    c = 0.0
    for q in range(N):
        c += rates[e, q]
        if r2 < c:
            s = q
            break
    return e, s


@njit(cache=True, nogil=True)
def kmc_quench(sig, eps_pl, systems, lattice, law, T, rng, slip_count, schedule, history, variant_opts, het, pres):
    """Thermal KMC at gamma_ext = 0 (appendix A.3) until stationarity, then T = 0 relaxation.

    Rates nu = exp(-Delta tau^c / T) (Eq. 11, V_a = 1).  A thermal event slips the
    chosen system with gamma_max(tau^c) and is followed by an athermal avalanche.

    Event selection is exact and cheap by *thinning*: each element keeps an upper
    bound U_e >= sum_s nu_s, U_e = R_e^ref / (1 - B_e / T) >= R_e^ref exp(B_e / T), where R_e^ref is its exact
    rate at a reference stress and B_e = |d - d_ref|/2 + |Sxy - Sxy_ref| bounds the
    change of any resolved stress since then.  An element is proposed from a sum
    tree over U (O(log E) descent) and accepted with probability R_e / U_e (its
    exact rate, N exponentials); a system of the accepted element is chosen with
    probability nu_s / R_e.  Accepted events are therefore distributed exactly as
    nu_n / sum nu.  After an event the bounds of all elements are updated in O(E);
    elements that slipped or whose bound exceeds T/2 are recomputed exactly.

    Stationarity criterion (stated and tested; ``schedule``: :data:`QuenchSchedule`): blocks of
    ``block`` thermal events;
    per block the means of X1 = <Sigma_vm> and X2 = <min_s Delta tau^c> over
    elements, sampled 16 times per block.  Stationary when every element has
    slipped at least once and, for both X, the mean of the last two blocks differs
    from the mean of the two before by at most ``rtol`` (relative), after at least
    ``max(min_blocks, 4)`` blocks.  Returns (events, blocks, converged);
    ``history[b] = (X1, X2)``.

    Model B: rates and X2 from the shifted distances, the thermal amplitude bound gamma_max of the
    shifted threshold, and B_e includes the change |alpha_p| |tr - tr_ref| / 2 of alpha_p p.
    Model A: dense redistribution and each element's own f_e (no external load here).  The other
    arguments are those of :func:`epcal.dynamics.relax`.
    """
    theta, tau_c, a, b, gamma_max_coef = systems
    Kd, Kx, L, f_coef = lattice
    k, lam, chi = law
    block, rtol, min_blocks, max_blocks = schedule
    E, N = tau_c.shape
    P = 1
    while P < E:
        P *= 2
    tree = np.zeros(2 * P)
    rates = np.empty((E, N))
    rref = np.empty(E)
    dref = np.empty(E)
    sref = np.empty(E)
    upper = np.empty(E)
    last_count = np.empty(E, np.int64)
    ws = new_workspace(E, N)
    cache, work, scratch, perm = ws.cache, ws.renewal, ws.scratch, ws.perm
    # start from an athermally stable state
    relax(sig, eps_pl, systems, lattice, law, 0.0, rng, slip_count, ws, variant_opts, het, pres, None)
    if pres is not None:
        tref = np.empty(E)
        alpha = abs(pres[0])
    for e in range(E):
        rref[e] = _rates(sig, tau_c, a, b, T, e, rates, pres)
        dref[e] = sig[e, 0] - sig[e, 1]
        sref[e] = sig[e, 2]
        if pres is not None:
            tref[e] = sig[e, 0] + sig[e, 1]
        upper[e] = rref[e]
        last_count[e] = slip_count[e]
    _tree_build(tree, P, upper)
    sample_every = max(1, block // 16)
    refresh = 0.5 * T
    events = 0
    for blk in range(max_blocks):
        x1 = 0.0
        x2 = 0.0
        nsamp = 0
        for ev in range(block):
            e, s = kmc_select(sig, tau_c, a, b, T, rng, tree, P, upper, rref, dref, sref, rates, pres)
            if pres is None:
                dg = draw_amplitude(rng, gamma_max_coef[e, s] * tau_c[e, s], chi, variant_opts)
            else:
                tc = threshold_at(tau_c[e, s], pressure_term(pres, sig[e, 0], sig[e, 1]))
                dg = draw_amplitude(rng, gamma_max_coef[e, s] * tc, chi, variant_opts)
            if het is None:
                redistribute(sig, eps_pl, Kd, Kx, L, e, dg, a[e, s], b[e, s], variant_opts, rng, scratch, perm)
                renew_systems(rng, theta, tau_c, a, b, gamma_max_coef, e, k, lam, f_coef, work, variant_opts)
            else:
                apply_slip_dense(sig, eps_pl, het.kernel_d, het.kernel_x, e, dg, a[e, s], b[e, s])
                renew_element(rng, theta, tau_c, a, b, gamma_max_coef, e, k, lam, het.f_coef[e], work)
            slip_count[e] += 1
            cache[0, e] = -np.inf
            relax(sig, eps_pl, systems, lattice, law, 0.0, rng, slip_count, ws, variant_opts, het, pres, None)
            events += 1
            # --- update the bounds of all elements
            for q in range(E):
                d = sig[q, 0] - sig[q, 1]
                bound = 0.5 * abs(d - dref[q]) + abs(sig[q, 2] - sref[q])
                if pres is not None:
                    bound += 0.5 * alpha * abs(sig[q, 0] + sig[q, 1] - tref[q])
                if slip_count[q] != last_count[q] or bound > refresh:
                    rref[q] = _rates(sig, tau_c, a, b, T, q, rates, pres)
                    dref[q] = d
                    sref[q] = sig[q, 2]
                    if pres is not None:
                        tref[q] = sig[q, 0] + sig[q, 1]
                    upper[q] = rref[q]
                    last_count[q] = slip_count[q]
                else:
                    # exp(x) <= 1 / (1 - x) for 0 <= x < 1 (here x <= 1/2): a valid, cheaper bound
                    upper[q] = rref[q] / (1.0 - bound / T)
            _tree_build(tree, P, upper)
            if ev % sample_every == 0:
                x1 += _vm_mean(sig)
                x2 += _min_dtau_mean(sig, tau_c, a, b, pres)
                nsamp += 1
        history[blk, 0] = x1 / nsamp
        history[blk, 1] = x2 / nsamp
        nb = blk + 1
        if nb >= min_blocks and nb >= 4:
            all_slipped = True
            for e in range(E):
                if slip_count[e] == 0:
                    all_slipped = False
                    break
            if all_slipped:
                ok = True
                for c in range(2):
                    recent = 0.5 * (history[nb - 1, c] + history[nb - 2, c])
                    before = 0.5 * (history[nb - 3, c] + history[nb - 4, c])
                    if abs(recent - before) > rtol * abs(recent):
                        ok = False
                if ok:
                    return events, nb, True
    return events, max_blocks, False
