"""The EPM's state layout, stress redistribution and relaxation (paper sections 3.3-3.4): numba
kernels over plain arrays.

Athermal quasistatic driving (section 3.4) is :mod:`epcal.athermal`, the thermal quench
(appendix A.3) :mod:`epcal.thermal`; both drive this module's avalanche loop (:func:`relax`).

State of one lattice (E = L*L elements, flat index e = i*L + j):

* ``sig``    (E, 3) -- stress *without* the external load: the element stress is
  Sigma = sig + (0, 0, G gamma_ext), since the affine simple shear
  eps_xy = gamma_ext/2 adds C:eps = G gamma_ext to Sigma_xy of every element
  (homogeneous elasticity).  ``sig`` holds the pre-stress Sigma^0 and the
  plastic-strain-induced stress.
* ``eps_pl`` (E, 3) -- plastic strain (tensor components).
* slip systems ``theta, tau_c, a, b, gamma_max_coef`` (E, N), see :mod:`epcal.slip`, passed
  together as one :data:`epcal.slip.SystemArrays`.
* the external strain is an integer step counter ``n``:
  gamma_ext = n * dgamma, and the external stress contribution is always
  evaluated as ``G * (n * dgamma)``.  Every activation test uses the same
  floating-point expression (:func:`_dtau`), which makes the event-driven AQS
  (skipping elastic steps) identical bit for bit to stepping one step at a time.

Reduced kernels: a slip dg on system (a, b) is the plastic strain dg (a, -a, b/2),
so the stress change is (dg a) Kd + (dg b) Kx with Kd = K[..., :, 0] - K[..., :, 1] and
Kx = K[..., :, 2] / 2 (:func:`reduce_kernel`), stored column-doubled (:func:`wrap_kernel`).

The kernels take their arguments in a few groups (named tuples, free inside numba): the state
(``sig``, ``eps_pl``, the systems), the :data:`Lattice`, the :data:`SlipLaw`, the work arrays
(:data:`Workspace`) and what the caller drives (:data:`epcal.athermal.Drive`,
:data:`epcal.thermal.QuenchSchedule`, :data:`epcal.probe.LocalTests`).

Models A and B: the arguments ``het`` and ``pres`` of :func:`relax`,
:func:`epcal.athermal.steps_to_activation`, :func:`epcal.athermal.aqs`, :func:`epcal.thermal.kmc_quench`
and :func:`epcal.probe.probe_kernel` (:mod:`epcal.variant_kernels`; None for every other model,
pruned at compile time).  For A, ``relax`` receives gamma_ext instead of G gamma_ext, and ``G`` of
``aqs`` is the sample's macroscopic modulus.  The last argument of :func:`relax`, ``patch``, is the
boundary: None for the periodic lattice, a :data:`PatchBoundary` in the local shear test.
"""
from __future__ import annotations

from collections import namedtuple

import numpy as np
from numba import njit

from .slip import (RENEWAL_WORK_ROWS, draw_amplitude, f_theta, renew_element, renew_systems, rng_uniform,
                   slip_amplitude)
from .variant_kernels import (apply_slip_dense, element_load, pressure_term, threshold_at,
                              weakest_at, weakest_pressure)
from .variants import V_AMPLITUDES, V_KERNEL, V_SYSTEMS, V_THRESHOLDS

#: the periodic lattice as the kernels read it: the reduced kernels (Kd, Kx) in the layout of
#: :func:`wrap_kernel`, its size L, and the coefficients of the slip stiffness f(theta) (Eq. 6,
#: :func:`epcal.slip.slip_stiffness_coefficients`)
Lattice = namedtuple("Lattice", ["Kd", "Kx", "L", "f_coef"])
#: the slip law: Weibull shape k and scale lam of the thresholds (Eq. 5), exponent chi of the amplitudes (Eq. 7)
SlipLaw = namedtuple("SlipLaw", ["k", "lam", "chi"])
#: the work arrays of :func:`relax`: the step's slips (element, system, amplitude), the per-element
#: cache (:func:`new_cache`), the renewal work array (:func:`epcal.slip.renewal_work`), and the
#: variants' redistribution scratch (:func:`redistribute`)
Workspace = namedtuple("Workspace", ["buf_e", "buf_s", "buf_dg", "cache", "renewal", "scratch", "perm"])
#: a patch's fixed boundary for :func:`relax` (:mod:`epcal.probe`): ``rows``, the rows of its elements'
#: slip systems (element e renewed moves to row overlay + e); ``geometry``, the integers
#: (:data:`PATCH_SIZE` ... :data:`PATCH_TRIGGER_SYSTEM`) of the current test; its reduced kernel at
#: ``offset`` in (kernel_d, kernel_x); the f_x(theta) coefficients of its elements from f_coef[f_offset]
PatchBoundary = namedtuple("PatchBoundary", ["rows", "geometry", "kernel_d", "kernel_x", "f_coef"])
#: entries of PatchBoundary.geometry: elements m, first overlay row, kernel offset, f offset, and the
#: system (trigger, trigger_system) the loading brought to threshold
PATCH_SIZE, PATCH_OVERLAY, PATCH_OFFSET, PATCH_F_OFFSET, PATCH_TRIGGER, PATCH_TRIGGER_SYSTEM = range(6)

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
def apply_slip_patch(sig, kernel_d, kernel_x, offset, m, x, dg, a, b):
    """The stress change of a slip dg M at element x of an m-element patch with a fixed boundary
    (its stresses: the first m rows of ``sig``).

    ``kernel_d``/``kernel_x``: the patch's reduced kernel at ``offset``, laid out [source, target, 3]
    (:func:`epcal.probe.flatten_patch_kernels`).  The patch's plastic strain is not recorded.
    """
    base = offset + x * m * 3
    for y in range(m):
        kb = base + y * 3
        sig[y, 0] += dg * (a * kernel_d[kb] + b * kernel_x[kb])
        sig[y, 1] += dg * (a * kernel_d[kb + 1] + b * kernel_x[kb + 1])
        sig[y, 2] += dg * (a * kernel_d[kb + 2] + b * kernel_x[kb + 2])


@njit(cache=True)
def redistribute(sig, eps_pl, Kd2, Kx2, L, e, dg, a, b, variant_opts, rng, scratch, perm):
    """A slip's stress change under the variant's kernel (:mod:`epcal.variants`).

    Eshelby (original): :func:`apply_slip`.  Shuffled: the changes at the other
    elements go to a uniformly random permutation of them (Fisher-Yates, a new one
    per slip).  Mean field: every other element receives their mean.  The slipping
    element keeps its own change; the sum over the lattice is unchanged.
    ``scratch`` (E, 3) and ``perm`` (E,) are work arrays.
    """
    mode = variant_opts[V_KERNEL]
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


@njit(cache=True)
def new_workspace(E, N):
    """The work arrays of :func:`relax` for E elements of N systems (:data:`Workspace`)."""
    return Workspace(np.empty(E, np.int64), np.empty(E, np.int64), np.empty(E), new_cache(E),
                     np.empty((RENEWAL_WORK_ROWS, N)), np.empty((E, 3)), np.empty(E, np.int64))


#: safety margin of the cached bounds (stress units), far above round-off, far below any physics
CACHE_MARGIN = 1e-10


@njit(cache=True)
def new_cache(E):
    """Per-element cache (rows: dtau_min, d_ref, sxy_ref): the min Delta tau^c of the element's systems
    at a reference stress (d_ref = Sxx - Syy, sxy_ref = Sxy).

    Since |a| <= 1/2 and |b| <= 1, every system of element e satisfies
    Delta tau^c >= dtau_min - (|d - d_ref|/2 + |Sxy - sxy_ref|): elements whose bound is positive
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
def relax(sig, eps_pl, systems, lattice, law, ext_xy, rng, slip_count, ws, variant_opts, het, pres, patch):
    """Athermal relaxation at fixed external strain (section 3.4); returns the number of slips.

    Synchronous steps: every element with an active system (Delta tau^c <= 0) slips
    on its weakest one, with amplitudes drawn from the stresses before this step's
    redistribution; then all redistributions are applied and the slipped elements'
    systems renewed.  Repeats until no system is active.  ``systems``: :data:`epcal.slip.SystemArrays`;
    ``lattice``: :data:`Lattice`; ``law``: :data:`SlipLaw`; ``slip_count[e]`` counts slips per element;
    ``ws``: :func:`new_workspace`; ``variant_opts`` the model variant (:mod:`epcal.variants`);
    ``het``/``pres`` models A and B (module docstring; for A ``ext_xy`` is gamma_ext).

    The boundary: None, the periodic lattice (its kernel, or model A's dense one, or the variant's
    redistribution); or a :data:`PatchBoundary`, the fixed boundary of the local shear test
    (:mod:`epcal.probe`): ``sig`` then holds the patch's stresses in its first m rows and element e
    has the systems of row patch.rows[e] (renewed into the overlay rows: the probed state is not
    modified); the patch's own kernel and gamma_max = -2 tau / f_x(theta) from each
    element's self-response in the patch, and its trigger slips in the first step.
    """
    theta, tau_c, a, b, gamma_max_coef = systems
    Kd, Kx, L, f_coef = lattice
    k, lam, chi = law
    buf_e, buf_s, buf_dg, cache, work, scratch, perm = ws
    if patch is None:
        E = sig.shape[0]
    else:  # the patch's elements are the first m rows of its arrays
        E = patch.geometry[PATCH_SIZE]
    total = 0
    bound = cache[3]
    # the original model's kernels are called directly, not through the variant dispatchers
    # (redistribute, renew_systems, draw_amplitude): model C's hot path pays nothing for D-I
    eshelby = variant_opts[V_KERNEL] == 0.0
    power_law = variant_opts[V_AMPLITUDES] == 0.0
    original_systems = variant_opts[V_SYSTEMS] == 0.0 and variant_opts[V_THRESHOLDS] == 0.0
    for step in range(MAX_RELAX_STEPS):
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
            if patch is None:  # se: the element's row in the systems
                se = e
            else:
                se = patch.rows[e]
            if het is None:
                d = sig[e, 0] - sig[e, 1]
                sxy = sig[e, 2] + ext_xy
            else:
                d, sxy = element_load(sig, e, ext_xy, het)
            if pres is None:
                s, dt = weakest_at(tau_c, a, b, se, d, sxy)
                cache[0, e] = dt
            else:
                qe = pressure_term(pres, sig[e, 0], sig[e, 1])
                s, dt, raw = weakest_pressure(tau_c, a, b, se, d, sxy, qe)
                cache[0, e] = raw
            cache[1, e] = d
            cache[2, e] = sxy
            if patch is not None:
                if step == 0 and e == patch.geometry[PATCH_TRIGGER] and dt > ACTIVE:
                    # the trigger sits exactly at threshold; round-off may leave it at +1e-16
                    s = patch.geometry[PATCH_TRIGGER_SYSTEM]
                    dt = ACTIVE
            if dt <= ACTIVE:
                if pres is None:
                    tau = tau_c[se, s] - dt
                else:
                    tau = threshold_at(tau_c[se, s], qe) - dt
                if patch is None:
                    gamma_max = gamma_max_coef[e, s] * tau
                else:
                    fc = patch.f_coef[patch.geometry[PATCH_F_OFFSET] + e]
                    gamma_max = -2.0 * tau / f_theta(fc, -2.0 * a[se, s], b[se, s])
                buf_e[nact] = e
                buf_s[nact] = s
                if power_law:
                    buf_dg[nact] = slip_amplitude(rng, gamma_max, chi)
                else:
                    buf_dg[nact] = draw_amplitude(rng, gamma_max, chi, variant_opts)
                nact += 1
        if nact == 0:
            return total
        for i in range(nact):
            e = buf_e[i]
            s = buf_s[i]
            if patch is not None:
                se = patch.rows[e]
                apply_slip_patch(sig, patch.kernel_d, patch.kernel_x, patch.geometry[PATCH_OFFSET], E, e, buf_dg[i],
                                 a[se, s], b[se, s])
            elif het is not None:
                apply_slip_dense(sig, eps_pl, het.kernel_d, het.kernel_x, e, buf_dg[i], a[e, s], b[e, s])
            elif eshelby:
                apply_slip(sig, eps_pl, Kd, Kx, L, e, buf_dg[i], a[e, s], b[e, s])
            else:
                redistribute(sig, eps_pl, Kd, Kx, L, e, buf_dg[i], a[e, s], b[e, s], variant_opts, rng, scratch, perm)
        for i in range(nact):
            e = buf_e[i]
            if patch is None:
                se = e
            else:  # the patch's renewed systems go to its overlay rows
                se = patch.geometry[PATCH_OVERLAY] + e
                patch.rows[e] = se
            if het is not None:  # gamma_max / tau from the element's own f_e(theta)
                renew_element(rng, theta, tau_c, a, b, gamma_max_coef, se, k, lam, het.f_coef[e], work)
            elif original_systems:
                renew_element(rng, theta, tau_c, a, b, gamma_max_coef, se, k, lam, f_coef, work)
            else:
                renew_systems(rng, theta, tau_c, a, b, gamma_max_coef, se, k, lam, f_coef, work, variant_opts)
            slip_count[e] += 1
            cache[0, e] = -np.inf
        total += nact
        if total > FRACTURE_LIMIT * E:
            raise RuntimeError(RUNAWAY_MESSAGE)
    raise RuntimeError("relaxation did not converge")
