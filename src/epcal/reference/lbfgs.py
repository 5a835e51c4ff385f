"""L-BFGS kernels of the AQS minimization of the periodic glass (numba).

The AQS steps of the flowing glass are cheap except the avalanches: ~1 step in 12
at 10^4 atoms, where the minimization runs down a rearrangement for hundreds of
iterations.  There every Python-side operation of an iteration (the two-loop
recursion on 20 000-vectors, the pair-list check of each trial position) costs
about as much as the force evaluation itself.  This module moves the whole plain
L-BFGS descent into one compiled loop (:func:`lbfgs_descent`, built on the two-loop
recursion :func:`two_loop_first` / :func:`two_loop_second`, which take any H0 in
between), and evaluates energies and forces in ``nchunk`` fixed chunks of the pair
list, on as many threads as numba has (:func:`epcal.reference.pair_kernels.energy_forces_chunked`).  The chunks
are fixed, so the sums, hence the trajectory, are the same bits on 1 or 2 threads.
(The preconditioned iteration of :class:`epcal.reference.aqs.AQS` keeps its numpy
two-loop: there the sparse triangular solves dominate each iteration.)

Memory layout: the L-BFGS pairs (s, y) live in a ring buffer ``S``, ``Y`` of shape
(m, n), ``rho`` = 1 / (s.y), with ``mem`` = [count, head] (head: the next slot).
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from .pair_kernels import energy_forces_chunked

#: status codes of :func:`lbfgs_descent`
CONVERGED, MAXITER, STALLED, REBUILD, FAILED = 0, 1, 2, 3, 4


@njit(cache=True, inline="always")
def _dot(a, b, ia, ib, n):
    """a[ia, :n] . b[ib, :n] of 2D arrays with 8 partial sums in registers (a fixed order: the same
    bits on every machine, and no latency-bound chain of one accumulator)."""
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = 0.0
    n8 = n - n % 8
    for t in range(0, n8, 8):
        s0 += a[ia, t] * b[ib, t]
        s1 += a[ia, t + 1] * b[ib, t + 1]
        s2 += a[ia, t + 2] * b[ib, t + 2]
        s3 += a[ia, t + 3] * b[ib, t + 3]
        s4 += a[ia, t + 4] * b[ib, t + 4]
        s5 += a[ia, t + 5] * b[ib, t + 5]
        s6 += a[ia, t + 6] * b[ib, t + 6]
        s7 += a[ia, t + 7] * b[ib, t + 7]
    r = ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))
    for t in range(n8, n):
        r += a[ia, t] * b[ib, t]
    return r


@njit(cache=True)
def two_loop_first(q, S, Y, rho, mem, alpha):
    """First loop of the L-BFGS two-loop recursion, in place on ``q`` (newest pair first);
    ``alpha`` receives the coefficients by slot."""
    count, head = mem[0], mem[1]
    m = S.shape[0]
    n = q.shape[0]
    q2 = q.reshape(1, n)
    for k in range(count):
        s = (head - 1 - k) % m
        a = _dot(S, q2, s, 0, n) * rho[s]
        alpha[s] = a
        for t in range(n):
            q[t] -= a * Y[s, t]


@njit(cache=True)
def two_loop_second(r, S, Y, rho, mem, alpha):
    """Second loop of the two-loop recursion, in place on r = H0^-1 q (oldest pair first):
    afterwards r = H^-1 g of the L-BFGS inverse-Hessian model (Nocedal & Wright, Alg. 7.4)."""
    count, head = mem[0], mem[1]
    m = S.shape[0]
    n = r.shape[0]
    r2 = r.reshape(1, n)
    for k in range(count - 1, -1, -1):
        s = (head - 1 - k) % m
        b = _dot(Y, r2, s, 0, n) * rho[s]
        c = alpha[s] - b
        for t in range(n):
            r[t] += c * S[s, t]


@njit(cache=True)
def push_pair(s_, y_, S, Y, rho, mem):
    """Store the pair (s, y) if its curvature s.y is positive (keeps H positive definite)."""
    n = s_.shape[0]
    s2 = s_.reshape(1, n)
    sy = _dot(s2, y_.reshape(1, n), 0, 0, n)
    ss = _dot(s2, s2, 0, 0, n)
    if sy <= 1e-16 * ss:
        return
    m = S.shape[0]
    h = mem[1]
    S[h, :] = s_
    Y[h, :] = y_
    rho[h] = 1.0 / sy
    mem[1] = (h + 1) % m
    mem[0] = min(mem[0] + 1, m)


@njit(cache=True)
def _list_valid(x, xa_ref, margin):
    """The pair list built at the reference positions (carried affinely to the current
    tilt: ``xa_ref``) still holds every pair within R_OUT at ``x`` (2 max|d| < margin)."""
    d2 = 0.0
    for i in range(x.shape[0]):
        dx = x[i, 0] - xa_ref[i, 0]
        dy = x[i, 1] - xa_ref[i, 1]
        v = dx * dx + dy * dy
        if v > d2:
            d2 = v
    return 2.0 * math.sqrt(d2) < margin


@njit(cache=True, nogil=True)
def lbfgs_descent(x, E, F, pi, pj, pt, sx, sy, par, r_in, r_out, nchunk, xa_ref, margin,
                  S, Y, rho, mem, Ehist, it0, maxiter, ftol, max_disp, stall_window, stall_frac, n_eval):
    """Plain L-BFGS (H0 = s.y / y.y of the newest pair) down an avalanche, atom 0 pinned,
    backtracking (Armijo) line search with at most ``max_disp`` per component.

    Runs from iteration ``it0`` until one of: the force norm is below ``ftol`` (CONVERGED),
    ``maxiter`` iterations (MAXITER), the energy decrease over the last ``stall_window``
    iterations is below ``stall_frac`` of the decrease so far, tested every 25 iterations
    (STALLED: the descent has reached the slow tail of a new basin), a trial position beyond
    the pair list's validity (REBUILD: the caller rebuilds the list at the returned x and
    calls again with the same memory), or no descent step (FAILED).  ``Ehist[k]`` holds the
    energy at iteration k; ``n_eval[0]`` counts the force evaluations.  Returns (status, it, x, E, F)."""
    n = x.shape[0]
    nd = 2 * (n - 1)
    alpha = np.zeros(S.shape[0])
    g = np.empty(nd)  # work arrays, allocated once; x and xt are two buffers swapped on acceptance
    q = np.empty(nd)
    s_ = np.empty(nd)
    y_ = np.empty(nd)
    xt = x.copy()  # row 0 (the pinned atom) never changes in either buffer
    it = it0
    while True:
        fn2 = 0.0
        for i in range(1, n):
            fn2 += F[i, 0] * F[i, 0] + F[i, 1] * F[i, 1]
        fn = math.sqrt(fn2)
        if fn < ftol:
            return CONVERGED, it, x, E, F
        if it >= maxiter:
            return MAXITER, it, x, E, F
        Ehist[it] = E
        if (stall_frac > 0.0 and it >= stall_window and it % 25 == 0
                and Ehist[it - stall_window] - E < stall_frac * (Ehist[0] - E)):
            return STALLED, it, x, E, F
        for i in range(1, n):
            g[2 * i - 2] = -F[i, 0]
            g[2 * i - 1] = -F[i, 1]
        q[:] = g
        two_loop_first(q, S, Y, rho, mem, alpha)
        h0 = 1e-2
        if mem[0] > 0:
            s = (mem[1] - 1) % S.shape[0]
            yy = _dot(Y, Y, s, s, nd)
            h0 = 1.0 / (rho[s] * yy)
        for t in range(nd):
            q[t] *= h0
        two_loop_second(q, S, Y, rho, mem, alpha)
        gp = 0.0
        amax = 0.0
        for t in range(nd):
            gp -= g[t] * q[t]
            a = abs(q[t])
            if a > amax:
                amax = a
        if not (gp < 0.0 and math.isfinite(gp)):
            if mem[0] > 0:  # drop the curvature memory and retry along -g
                mem[0] = 0
                it += 1
                continue
            return FAILED, it, x, E, F
        step = min(1.0, max_disp / amax) if amax > 0.0 else 1.0
        for i in range(1, n):
            xt[i, 0] = x[i, 0] - step * q[2 * i - 2]
            xt[i, 1] = x[i, 1] - step * q[2 * i - 1]
        if not _list_valid(xt, xa_ref, margin):
            return REBUILD, it, x, E, F
        while True:
            Et, Ft = energy_forces_chunked(xt, pi, pj, pt, sx, sy, par, r_in, r_out, nchunk)
            n_eval[0] += 1
            ft2 = 0.0
            for i in range(1, n):
                ft2 += Ft[i, 0] * Ft[i, 0] + Ft[i, 1] * Ft[i, 1]
            if Et <= E + 1e-4 * step * gp or (Et <= E + 1e-12 * abs(E) and ft2 < fn2):
                break
            step *= 0.5
            if step < 1e-4:
                break
            for i in range(1, n):
                xt[i, 0] = x[i, 0] - step * q[2 * i - 2]
                xt[i, 1] = x[i, 1] - step * q[2 * i - 1]
        it += 1
        if step < 1e-4:
            if mem[0] > 0:
                mem[0] = 0
                continue
            return FAILED, it, x, E, F
        for i in range(1, n):
            s_[2 * i - 2] = xt[i, 0] - x[i, 0]
            s_[2 * i - 1] = xt[i, 1] - x[i, 1]
            y_[2 * i - 2] = -Ft[i, 0] - g[2 * i - 2]
            y_[2 * i - 1] = -Ft[i, 1] - g[2 * i - 1]
        push_pair(s_, y_, S, Y, rho, mem)
        x, xt = xt, x
        E, F = Et, Ft
