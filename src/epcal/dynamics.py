"""Athermal dynamics of the EPM (paper sections 3.3-3.4): numba kernels over plain arrays.

The thermal quench (appendix A.3) is :mod:`epcal.thermal`; both share this module's state
layout, redistribution and relaxation.

State of one lattice (E = L*L elements, flat index e = i*L + j):

* ``sig``    (E, 3) -- stress *without* the external load: the element stress is
  Sigma = sig + (0, 0, G gamma_ext), since the affine simple shear
  eps_xy = gamma_ext/2 adds C:eps = G gamma_ext to Sigma_xy of every element
  (homogeneous elasticity).  ``sig`` holds the pre-stress Sigma^0 and the
  plastic-strain-induced stress.
* ``eps_pl`` (E, 3) -- plastic strain (tensor components).
* slip systems ``theta, tau_c, a, b, gcoef`` (E, N), see :mod:`epcal.slip`.
* the external strain is an integer step counter ``n``:
  gamma_ext = n * dgamma, and the external stress contribution is always
  evaluated as ``G * (n * dgamma)``.  Every activation test uses the same
  floating-point expression (:func:`_dtau`), which makes the event-driven AQS
  (skipping elastic steps) identical bit for bit to stepping one step at a time.

Reduced kernels: a slip dg on system (a, b) is the plastic strain dg (a, -a, b/2),
so the stress change is (dg a) Kd + (dg b) Kx with Kd = K[..., :, 0] - K[..., :, 1] and
Kx = K[..., :, 2] / 2 (:func:`reduce_kernel`), stored column-doubled (:func:`wrap_kernel`).

Models A and B: the last two arguments ``het`` and ``pres`` of :func:`relax`,
:func:`steps_to_activation`, :func:`aqs` and :func:`epcal.thermal.kmc_quench` (:mod:`epcal.variant_kernels`;
None for every other model, pruned at compile time).  For A, ``relax`` receives gamma_ext
instead of G gamma_ext, and ``G`` of ``aqs`` is the sample's macroscopic modulus.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from .slip import RENEWAL_WORK_ROWS, draw_amplitude, renew_element, renew_systems, rng_uniform, slip_amplitude
from .variant_kernels import (activation_estimates_het, activation_estimates_pressure, active_at_het,
                              active_at_pressure, apply_slip_dense, element_load, pressure_term, threshold_at,
                              weakest_at, weakest_pressure)
from .variants import V_AMPLITUDES, V_KERNEL, V_SYSTEMS, V_THRESHOLDS

#: the activation predicate is Delta tau^c = tau_c - tau <= ACTIVE (section 3.1, DESIGN.md)
ACTIVE = 0.0
MAX_RELAX_STEPS = 1_000_000
#: an avalanche with more than FRACTURE_LIMIT slips per element is a runaway and is aborted.
#: Synchronous slips are each bounded by their own dissipation limit (Eq. 6), but many
#: simultaneous slips near gamma_max (chi < 1) can overshoot collectively (the uniform
#: response C is stiffer than the Eshelby self-response f) and the stresses then grow
#: geometrically.  The authors' code aborts such "fractured" relaxations the same way.
FRACTURE_LIMIT = 20
RUNAWAY_MESSAGE = "runaway avalanche (more than FRACTURE_LIMIT slips per element)"


def reduce_kernel(K: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(Kd, Kx) of a kernel with last axes (3, 3): responses to (1, -1, 0) and (0, 0, 1/2)."""
    Kd = np.ascontiguousarray(K[..., :, 0] - K[..., :, 1])
    Kx = np.ascontiguousarray(0.5 * K[..., :, 2])
    return Kd, Kx


@njit(cache=True, inline="always")
def _dtau(tau_c, a, b, d, sxy):
    """Distance to threshold tau_c - M:Sigma with M:Sigma = a (Sxx - Syy) + b Sxy (Eq. 4)."""
    return tau_c - (a * d + b * sxy)


def wrap_kernel(Kr: np.ndarray) -> np.ndarray:
    """Reduced periodic kernel (L, L, 3) laid out as (L, 2L * 3): columns repeated once.

    Row di holds K[di, j mod L, c] at flat position 3 j + c for j in [0, 2L), so the
    response of lattice row i to a slip in column ey is the contiguous slice
    starting at 3 (L - ey): :func:`apply_slip` then runs over contiguous memory
    (vectorized by LLVM) instead of wrapping the column index.
    """
    L = Kr.shape[0]
    return np.ascontiguousarray(np.concatenate([Kr, Kr], axis=1).reshape(L, 2 * L * 3))


@njit(cache=True)
def apply_slip(sig, eps_pl, Kd2, Kx2, L, e, dg, a, b):
    """Add the plastic strain dg M to element e and redistribute its stress on the periodic lattice.

    ``Kd2``, ``Kx2``: reduced kernels in the layout of :func:`wrap_kernel`.
    """
    ex = e // L
    ey = e - ex * L
    ca = dg * a
    cb = dg * b
    flat = sig.reshape(L, 3 * L)
    j0 = 3 * (L - ey)
    for i in range(L):
        di = i - ex
        if di < 0:
            di += L
        row = flat[i]
        kd = Kd2[di, j0:j0 + 3 * L]
        kx = Kx2[di, j0:j0 + 3 * L]
        for q in range(3 * L):
            row[q] += ca * kd[q] + cb * kx[q]
    eps_pl[e, 0] += dg * a
    eps_pl[e, 1] -= dg * a
    eps_pl[e, 2] += 0.5 * dg * b


@njit(cache=True)
def redistribute(sig, eps_pl, Kd2, Kx2, L, e, dg, a, b, vopt, rng, scratch, perm):
    """A slip's stress change under the variant's kernel (:mod:`epcal.variants`).

    Eshelby (original): :func:`apply_slip`.  Shuffled: the changes at the other
    elements go to a uniformly random permutation of them (Fisher-Yates, a new one
    per slip).  Mean field: every other element receives their mean.  The slipping
    element keeps its own change; the sum over the lattice is unchanged.
    ``scratch`` (E, 3) and ``perm`` (E,) are work arrays.
    """
    mode = vopt[V_KERNEL]
    if mode == 0.0:
        apply_slip(sig, eps_pl, Kd2, Kx2, L, e, dg, a, b)
        return
    E = sig.shape[0]
    scratch[:, :] = 0.0
    apply_slip(scratch, eps_pl, Kd2, Kx2, L, e, dg, a, b)
    for c in range(3):
        sig[e, c] += scratch[e, c]
    if mode == 2.0:
        m0 = 0.0
        m1 = 0.0
        m2 = 0.0
        for y in range(E):
            if y != e:
                m0 += scratch[y, 0]
                m1 += scratch[y, 1]
                m2 += scratch[y, 2]
        m0 /= E - 1
        m1 /= E - 1
        m2 /= E - 1
        for y in range(E):
            if y != e:
                sig[y, 0] += m0
                sig[y, 1] += m1
                sig[y, 2] += m2
        return
    n = 0
    for y in range(E):
        if y != e:
            perm[n] = y
            n += 1
    for i in range(n - 1, 0, -1):
        j = int(rng_uniform(rng) * (i + 1))
        t = perm[i]
        perm[i] = perm[j]
        perm[j] = t
    q = 0
    for y in range(E):
        if y != e:
            src = perm[q]
            q += 1
            sig[y, 0] += scratch[src, 0]
            sig[y, 1] += scratch[src, 1]
            sig[y, 2] += scratch[src, 2]


@njit(cache=True)
def weakest_active(sig, ext_xy, tau_c, a, b, e):
    """(system, Delta tau^c) of the lowest distance to threshold in element e."""
    d = sig[e, 0] - sig[e, 1]
    sxy = sig[e, 2] + ext_xy
    best = np.inf
    bs = -1
    for s in range(tau_c.shape[1]):
        dt = _dtau(tau_c[e, s], a[e, s], b[e, s], d, sxy)
        if dt < best:
            best = dt
            bs = s
    return bs, best


#: safety margin of the cached bounds (stress units), far above round-off, far below any physics
CACHE_MARGIN = 1e-10


@njit(cache=True)
def new_cache(E):
    """Per-element cache (cmin, cd, cs): min Delta tau^c at a reference stress (d = Sxx - Syy, Sxy).

    Since |a| <= 1/2 and |b| <= 1, every system of element e satisfies
    Delta tau^c >= cmin - (|d - cd|/2 + |Sxy - cs|): elements whose bound is positive
    cannot be active and are not scanned.  The pruning is exact (results unchanged).
    Row 3 is scratch for the bounds of one scan.
    """
    c = np.empty((4, E))
    c[0, :] = -np.inf
    c[1, :] = 0.0
    c[2, :] = 0.0
    return c


@njit(cache=True, inline="always")
def _cache_bound(cache, e, d, sxy):
    return cache[0, e] - (0.5 * abs(d - cache[1, e]) + abs(sxy - cache[2, e]))


@njit(cache=True)
def relax(sig, eps_pl, theta, tau_c, a, b, gcoef, Kd, Kx, L, ext_xy, rng, k, lam, chi, f_coef,
          slip_count, buf_e, buf_s, buf_dg, cache, work, vopt, scratch, perm, het, pres):
    """Athermal relaxation at fixed external strain (section 3.4); returns the number of slips.

    Synchronous steps: every element with an active system (Delta tau^c <= 0) slips
    on its weakest one, with amplitudes drawn from the stresses before this step's
    redistribution; then all redistributions are applied and the slipped elements'
    systems renewed.  Repeats until no system is active.  ``slip_count[e]`` counts
    slips per element; ``work`` is the renewal work array (:func:`epcal.slip.renewal_work`);
    ``vopt`` the model variant (:mod:`epcal.variants`), ``scratch``/``perm`` its work arrays;
    ``het``/``pres`` models A and B (module docstring; for A ``ext_xy`` is gamma_ext).
    """
    E = sig.shape[0]
    total = 0
    bound = cache[3]
    # the original model's kernels are called directly, not through the variant dispatchers
    # (redistribute, renew_systems, draw_amplitude): model C's hot path pays nothing for D-I
    eshelby = vopt[V_KERNEL] == 0.0
    power_law = vopt[V_AMPLITUDES] == 0.0
    original_systems = vopt[V_SYSTEMS] == 0.0 and vopt[V_THRESHOLDS] == 0.0
    for _ in range(MAX_RELAX_STEPS):
        nact = 0
        for e in range(E):  # branch-free, vectorized: bounds of all elements
            if het is None:
                bound[e] = _cache_bound(cache, e, sig[e, 0] - sig[e, 1], sig[e, 2] + ext_xy)
            else:
                dl, sl = element_load(sig, e, ext_xy, het)
                bound[e] = _cache_bound(cache, e, dl, sl)
            if pres is not None:  # the cache holds unshifted distances: the shift is exact
                bound[e] += pressure_term(pres, sig[e, 0], sig[e, 1])
        for e in range(E):
            if bound[e] > CACHE_MARGIN:
                continue
            if het is None:
                d = sig[e, 0] - sig[e, 1]
                sxy = sig[e, 2] + ext_xy
            else:
                d, sxy = element_load(sig, e, ext_xy, het)
            if pres is None:
                if het is None:
                    s, dt = weakest_active(sig, ext_xy, tau_c, a, b, e)
                else:
                    s, dt = weakest_at(tau_c, a, b, e, d, sxy)
                cache[0, e] = dt
            else:
                qe = pressure_term(pres, sig[e, 0], sig[e, 1])
                s, dt, raw = weakest_pressure(tau_c, a, b, e, d, sxy, qe)
                cache[0, e] = raw
            cache[1, e] = d
            cache[2, e] = sxy
            if dt <= ACTIVE:
                if pres is None:
                    tau = tau_c[e, s] - dt
                else:
                    tau = threshold_at(tau_c[e, s], qe) - dt
                buf_e[nact] = e
                buf_s[nact] = s
                if power_law:
                    buf_dg[nact] = slip_amplitude(rng, gcoef[e, s] * tau, chi)
                else:
                    buf_dg[nact] = draw_amplitude(rng, gcoef[e, s] * tau, chi, vopt)
                nact += 1
        if nact == 0:
            return total
        for i in range(nact):
            e = buf_e[i]
            s = buf_s[i]
            if het is not None:
                apply_slip_dense(sig, eps_pl, het.kernel_d, het.kernel_x, e, buf_dg[i], a[e, s], b[e, s])
            elif eshelby:
                apply_slip(sig, eps_pl, Kd, Kx, L, e, buf_dg[i], a[e, s], b[e, s])
            else:
                redistribute(sig, eps_pl, Kd, Kx, L, e, buf_dg[i], a[e, s], b[e, s], vopt, rng, scratch, perm)
        for i in range(nact):
            e = buf_e[i]
            if het is not None:  # gamma_max / tau from the element's own f_e(theta)
                renew_element(rng, theta, tau_c, a, b, gcoef, e, k, lam, het.f_coef[e], work)
            elif original_systems:
                renew_element(rng, theta, tau_c, a, b, gcoef, e, k, lam, f_coef, work)
            else:
                renew_systems(rng, theta, tau_c, a, b, gcoef, e, k, lam, f_coef, work, vopt)
            slip_count[e] += 1
            cache[0, e] = -np.inf
        total += nact
        if total > FRACTURE_LIMIT * E:
            raise RuntimeError(RUNAWAY_MESSAGE)
    raise RuntimeError("relaxation did not converge")


@njit(cache=True)
def _active_at(tau_c, a, b, d, sres, G, dgamma, m):
    return _dtau(tau_c, a, b, d, sres + G * (m * dgamma)) <= ACTIVE


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
        sres = sig[e, 2]
        if het is None:
            sxy = sres + ext
            if pres is None:
                _activation_estimates(tau_c, a, b, e, d, sxy, sign * step_tau, rem, jest)
            else:
                qe = pressure_term(pres, sig[e, 0], sig[e, 1])
                raw = activation_estimates_pressure(tau_c, a, b, e, d, sxy, qe, sign * step_tau, rem, jest)
        else:
            cd = het.load_d[e]
            cx = het.load_xy[e]
            dl, sxy = element_load(sig, e, gam, het)
            activation_estimates_het(tau_c, a, b, e, dl, sxy, cd, cx, sign * dgamma, rem, jest)
        cmin = np.inf
        for s in range(N):
            if rem[s] < cmin:
                cmin = rem[s]
            if jest[s] > best:
                continue
            j = int(np.ceil(jest[s]))
            if j < 1:
                j = 1
            if het is not None:
                while j > 1 and active_at_het(tau_c[e, s], a[e, s], b[e, s], d, sres, cd, cx, dgamma,
                                              n + sign * (j - 1)):
                    j -= 1
                while not active_at_het(tau_c[e, s], a[e, s], b[e, s], d, sres, cd, cx, dgamma, n + sign * j):
                    j += 1
            elif pres is not None:
                while j > 1 and active_at_pressure(tau_c[e, s], a[e, s], b[e, s], d, sres, G, dgamma,
                                                   n + sign * (j - 1), qe):
                    j -= 1
                while not active_at_pressure(tau_c[e, s], a[e, s], b[e, s], d, sres, G, dgamma, n + sign * j, qe):
                    j += 1
            else:
                while j > 1 and _active_at(tau_c[e, s], a[e, s], b[e, s], d, sres, G, dgamma, n + sign * (j - 1)):
                    j -= 1
                while not _active_at(tau_c[e, s], a[e, s], b[e, s], d, sres, G, dgamma, n + sign * j):
                    j += 1
            if j < best:
                best = j
        if pres is not None:
            cmin = raw  # the cache holds unshifted distances
        if het is not None:
            d = dl
        cache[0, e] = cmin
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
def _crossed_zero(mres, G, dgamma, m, sign):
    """True when the external stress at step m has reached zero in the sense of driving."""
    return sign * (mres + G * (m * dgamma)) >= 0.0


@njit(cache=True)
def _steps_to_zero_stress(mres, G, dgamma, n, sign, jmax):
    """Smallest j in [1, jmax] at which the external stress has crossed zero, else jmax + 1.

    Driving with ``sign`` moves Sigma_ext by sign G dgamma per step (no avalanche),
    so sign * Sigma_ext grows linearly; estimate, then fix with the exact predicate.
    """
    jest = -sign * (mres + G * (n * dgamma)) / (G * dgamma)
    if jest > jmax + 1:
        return jmax + 1
    j = max(1, int(np.ceil(jest)))
    while j > 1 and _crossed_zero(mres, G, dgamma, n + sign * (j - 1), sign):
        j -= 1
    while not _crossed_zero(mres, G, dgamma, n + sign * j, sign):
        j += 1
    return j


@njit(cache=True, nogil=True)
def aqs(sig, eps_pl, theta, tau_c, a, b, gcoef, Kd, Kx, L, G, dgamma, n, n_end, stop_at_zero,
        skip, rng, k, lam, chi, f_coef, slip_count, rec_step, rec_before, rec_after, rec_slips, vopt, het, pres):
    """AQS simple shear from step n toward n_end (either sense), section 3.4.

    Records each avalanche as (step, Sigma_ext before, Sigma_ext after, slips) in the
    rec_* buffers.  With ``skip`` the elastic steps are jumped over exactly;
    without it the strain advances one dgamma at a time (reference path).  With
    ``stop_at_zero`` the drive stops at the first step where the external stress
    has crossed zero in the sense of driving (unloading, section 5).  Returns (n, records, finished):
    ``finished`` is False when the buffers are full (call again to continue).
    """
    E = sig.shape[0]
    sign = 1 if n_end >= n else -1
    cap = rec_step.shape[0]
    buf_e = np.empty(E, np.int64)
    buf_s = np.empty(E, np.int64)
    buf_dg = np.empty(E)
    cache = new_cache(E)
    lb = np.empty(E)
    work = np.empty((RENEWAL_WORK_ROWS, tau_c.shape[1]))
    scratch = np.empty((E, 3))
    perm = np.empty(E, np.int64)
    nrec = 0
    mres = mean_xy(sig)
    while n != n_end:
        if nrec >= cap:
            return n, nrec, False
        remaining = (n_end - n) * sign
        if skip:
            j = steps_to_activation(sig, tau_c, a, b, G, dgamma, n, sign, remaining, cache, lb, work, het, pres)
            if stop_at_zero:
                jz = _steps_to_zero_stress(mres, G, dgamma, n, sign, remaining)
                if jz < j:
                    j = jz
            if j > remaining:
                j = remaining
        else:
            j = 1
        n += sign * j
        ext = G * (n * dgamma)
        before = mres + ext
        if het is None:
            ns = relax(sig, eps_pl, theta, tau_c, a, b, gcoef, Kd, Kx, L, ext, rng, k, lam, chi, f_coef,
                       slip_count, buf_e, buf_s, buf_dg, cache, work, vopt, scratch, perm, het, pres)
        else:  # model A: relax at gamma_ext; G is the sample's macroscopic modulus (records)
            ns = relax(sig, eps_pl, theta, tau_c, a, b, gcoef, Kd, Kx, L, n * dgamma, rng, k, lam, chi, f_coef,
                       slip_count, buf_e, buf_s, buf_dg, cache, work, vopt, scratch, perm, het, pres)
        if ns > 0:
            mres = mean_xy(sig)
            rec_step[nrec] = n
            rec_before[nrec] = before
            rec_after[nrec] = mres + ext
            rec_slips[nrec] = ns
            nrec += 1
        if stop_at_zero and _crossed_zero(mres, G, dgamma, n, sign):
            return n, nrec, True
    return n, nrec, True
