"""Local shear test of n x n patches (paper section 3.5), numba kernels.

A patch of n x n contiguous elements (wrapping the periodic boundary) is isolated
with its current stresses and slip systems.  Its boundary nodes are displaced by
the pure shear gamma~ M(alpha); in a homogeneous patch this loading adds the
uniform stress gamma~ C:M(alpha) = gamma~ G (-sin2a, sin2a, cos2a) to every element,
so a system's resolved stress rises at rate G cos(2(theta - alpha)).  The onset
gamma~_c is found exactly (minimum over the patch systems of the strain to
threshold), then the avalanche relaxes at fixed gamma~ with the fixed-boundary
patch kernel (:func:`epcal.kernel_cache.patch_kernel`) and the same slip rules as the
full system (Eqs. 6-7, renewal).  The dissipation bound gamma_max = -2 tau / f(theta)
(Eq. 6) uses the element's own self-response *inside the patch*,
f_x(theta) = M:Kp[x, x]:M (its Eshelby tensor with the fixed boundary), which is
what keeps every slip's dissipation non-negative (A.7) -- as in the authors'
code, where the patch solver recomputes S.

The probed state is never modified: each test relaxes a copy of the patch's stresses and slip
systems (:func:`epcal.dynamics.relax` with the patch's fixed boundary).

Model B (``pres``): every activation test of the patch uses the shifted thresholds
tau_c + alpha_p p with the pressure of the patch element (unchanged by the traceless
loading).  Model A (``het``): each patch with its own fixed-boundary responses (its
elements' moduli, :func:`epcal.heterogeneous.patch_set`), so its loading is no longer
uniform and the onset is found per patch.
"""
from __future__ import annotations

from collections import namedtuple

import numpy as np
from numba import njit

from .dynamics import (PATCH_F_OFFSET, PATCH_OFFSET, PATCH_OVERLAY, PATCH_SIZE, PATCH_TRIGGER, PATCH_TRIGGER_SYSTEM,
                       PatchBoundary, new_workspace, relax)
from .slip import SystemArrays
from .variant_kernels import dtau_pressure, pressure_term


@njit(cache=True)
def element_onsets(stress, tau_c, a, b, G, cos2a, sin2a, pres):
    """Per element and orientation: strain gamma~ to first activation and the system.

    Returns (g (E, A), sys (E, A)).  tau(gamma~) = tau + gamma~ G c with
    c = cos(2(theta - alpha)) = b cos2a - 2 a sin2a.
    """
    E, N = tau_c.shape
    A = cos2a.shape[0]
    g = np.full((E, A), np.inf)
    arg = np.full((E, A), -1, np.int64)
    for e in range(E):
        d = stress[e, 0] - stress[e, 1]
        sxy = stress[e, 2]
        if pres is not None:
            qe = pressure_term(pres, stress[e, 0], stress[e, 1])
        for s in range(N):
            if pres is None:
                rem = tau_c[e, s] - (a[e, s] * d + b[e, s] * sxy)
            else:
                rem = dtau_pressure(tau_c[e, s], a[e, s], b[e, s], d, sxy, qe)
            for q in range(A):
                c = b[e, s] * cos2a[q] - 2.0 * a[e, s] * sin2a[q]
                if c > 0.0:
                    gg = rem / (G * c)
                    if gg < g[e, q]:
                        g[e, q] = gg
                        arg[e, q] = s
    return g, arg


#: the local shear tests of :func:`probe_kernel`: the patches' lower-left elements (flat indices),
#: the patch sizes n, and cos 2 alpha, sin 2 alpha of the loading orientations
LocalTests = namedtuple("LocalTests", ["corners", "n_list", "cos2a", "sin2a"])
#: the fixed-boundary patch kernels (:func:`flatten_patch_kernels`): reduced kernels of size n_list[i]
#: at offset[i] in (kernel_d, kernel_x), the f_x(theta) coefficients of its elements from f_coef[f_offset[i]]
PatchKernels = namedtuple("PatchKernels", ["kernel_d", "kernel_x", "offset", "f_coef", "f_offset"])


@njit(cache=True)
def _with_overlay(x, rows):
    """A copy of the (E, N) array x with ``rows`` more rows after it (the patch overlay)."""
    out = np.empty((x.shape[0] + rows, x.shape[1]))
    out[:x.shape[0]] = x
    return out


@njit(cache=True, nogil=True)
def probe_kernel(stress, systems, lattice, law, G, tests, kernels, rng, out, variant_opts, het, pres):
    """Local shear tests of all (corner, n, alpha); writes out[p, ni, q, :] =
    (gamma_c, Sxx_i, Syy_i, Sxy_i, Sxx_c, Syy_c, Sxy_c, Sxx_f, Syy_f, Sxy_f, slips).

    stress: the full element stress Sigma (E, 3) of the probed state (not the `sig` of
    :mod:`epcal.dynamics`, which leaves out G gamma_ext); ``systems``, ``lattice``, ``law`` as in
    :func:`epcal.dynamics.relax`; ``tests``: :data:`LocalTests`; ``kernels``: :data:`PatchKernels`.
    The avalanche after the onset is :func:`epcal.dynamics.relax` with the patch's fixed boundary
    (:data:`epcal.dynamics.PatchBoundary`) on a copy of the patch's stresses; renewed systems go to
    an overlay.
    ``variant_opts``: the model variant (:mod:`epcal.variants`): its slip systems, thresholds and
    amplitudes; the patch kernel stays the fixed-boundary Eshelby kernel in every variant.
    ``pres``: model B's pressure term (None otherwise).  ``het``: model A's patches, a
    :data:`epcal.variant_kernels.PatchSet` (None otherwise): the kernel and f_x of patch
    (p, ni) at het.k_off[p, ni] and het.patch_f_off[p, ni] (kernels.offset, kernels.f_offset unused),
    the loading stress of element x per unit gamma~ R_x M(alpha) (het.resp), the onset found per patch.
    """
    tau_c, a, b = systems.tau_c, systems.a, systems.b
    corners, n_list, cos2a, sin2a = tests
    L = lattice.L
    E, N = tau_c.shape
    A = cos2a.shape[0]
    nmax = 0
    for ni in range(n_list.shape[0]):
        if n_list[ni] > nmax:
            nmax = n_list[ni]
    M = nmax * nmax
    if het is None:
        g_el, s_el = element_onsets(stress, tau_c, a, b, G, cos2a, sin2a, pres)
    else:
        load = np.empty((M, 3))
    loc_sig = np.empty((M, 3))
    loc_eps_pl = np.zeros((M, 3))  # not recorded by the patch boundary
    loc_elem = np.empty(M, np.int64)
    loc_rows = np.empty(M, np.int64)
    loc_slips = np.zeros(M, np.int64)  # slips per patch element (not reported)
    # the systems and an overlay of M rows after them, where a test's renewed systems go
    own = SystemArrays(_with_overlay(systems.theta, M), _with_overlay(tau_c, M), _with_overlay(a, M),
                       _with_overlay(b, M), _with_overlay(systems.gamma_max_coef, M))
    ws = new_workspace(M, N)
    cache = ws.cache
    geometry = np.empty(6, np.int64)
    geometry[PATCH_OVERLAY] = E
    boundary = PatchBoundary(loc_rows, geometry, kernels.kernel_d, kernels.kernel_x, kernels.f_coef)
    for p in range(corners.shape[0]):
        ci = corners[p] // L
        cj = corners[p] - ci * L
        for ni in range(n_list.shape[0]):
            n = n_list[ni]
            m = n * n
            if het is None:
                off = kernels.offset[ni]
                pbase = kernels.f_offset[ni]
            else:
                off = het.k_off[p, ni]
                pbase = het.patch_f_off[p, ni]
            for u in range(n):
                for v in range(n):
                    loc_elem[u * n + v] = ((ci + u) % L) * L + (cj + v) % L
            geometry[PATCH_SIZE] = m
            geometry[PATCH_OFFSET] = off
            geometry[PATCH_F_OFFSET] = pbase
            si0 = 0.0
            si1 = 0.0
            si2 = 0.0
            for x in range(m):
                e = loc_elem[x]
                si0 += stress[e, 0]
                si1 += stress[e, 1]
                si2 += stress[e, 2]
            si0 /= m
            si1 /= m
            si2 /= m
            for q in range(A):
                # onset: weakest element of the patch for this orientation
                gc = np.inf
                trig = -1
                trig_s = -1
                if het is None:
                    for x in range(m):
                        gg = g_el[loc_elem[x], q]
                        if gg < gc:
                            gc = gg
                            trig = x
                    if trig >= 0:
                        trig_s = s_el[loc_elem[trig], q]
                else:  # model A: the loading R_x M(alpha) differs per element
                    hs = 0.5 * sin2a[q]
                    hc = 0.5 * cos2a[q]
                    for x in range(m):
                        r9 = het.resp[pbase + x]
                        for c in range(3):
                            load[x, c] = -r9[3 * c] * hs + r9[3 * c + 1] * hs + r9[3 * c + 2] * hc
                        e = loc_elem[x]
                        d = stress[e, 0] - stress[e, 1]
                        sxy = stress[e, 2]
                        for s in range(N):
                            rate = a[e, s] * (load[x, 0] - load[x, 1]) + b[e, s] * load[x, 2]
                            if rate > 0.0:
                                gg = (tau_c[e, s] - (a[e, s] * d + b[e, s] * sxy)) / rate
                                if gg < gc:
                                    gc = gg
                                    trig = x
                                    trig_s = s
                r = out[p, ni, q]
                r[0] = gc
                r[1] = si0
                r[2] = si1
                r[3] = si2
                if trig < 0:  # no system can be activated by this loading (never for N >= 4)
                    for z in range(4, 11):
                        r[z] = np.nan
                    continue
                if het is None:
                    lx = -gc * G * sin2a[q]
                    ly = gc * G * sin2a[q]
                    lxy = gc * G * cos2a[q]
                    r[4] = si0 + lx
                    r[5] = si1 + ly
                    r[6] = si2 + lxy
                    for x in range(m):
                        e = loc_elem[x]
                        loc_sig[x, 0] = stress[e, 0] + lx
                        loc_sig[x, 1] = stress[e, 1] + ly
                        loc_sig[x, 2] = stress[e, 2] + lxy
                else:
                    for c in range(3):
                        r[4 + c] = 0.0
                    for x in range(m):
                        e = loc_elem[x]
                        for c in range(3):
                            loc_sig[x, c] = stress[e, c] + gc * load[x, c]
                            r[4 + c] += loc_sig[x, c] / m
                # avalanche at fixed gamma~ (fixed boundary): every element is scanned in its first step
                for x in range(m):
                    loc_rows[x] = loc_elem[x]
                    cache[0, x] = -np.inf
                geometry[PATCH_TRIGGER] = trig
                geometry[PATCH_TRIGGER_SYSTEM] = trig_s
                slips = relax(loc_sig, loc_eps_pl, own, lattice, law, 0.0, rng, loc_slips, ws, variant_opts, None, pres,
                              boundary)
                sf0 = 0.0
                sf1 = 0.0
                sf2 = 0.0
                for x in range(m):
                    sf0 += loc_sig[x, 0]
                    sf1 += loc_sig[x, 1]
                    sf2 += loc_sig[x, 2]
                r[7] = sf0 / m
                r[8] = sf1 / m
                r[9] = sf2 / m
                r[10] = slips


def flatten_patch_kernels(kernels: list[np.ndarray]):
    """Reduced patch kernels laid out for :func:`probe_kernel` (:data:`PatchKernels`).

    For a kernel Kp[a, b] (stress at a from plastic strain at b) the layout is
    [b, a, component] so that one slip reads a contiguous block.
    """
    from .dynamics import reduce_kernel
    from .slip import slip_stiffness_coefficients

    kd_parts, kx_parts, offs, pf, pf_offs = [], [], [], [], []
    pos = 0
    epos = 0
    for Kp in kernels:
        m = Kp.shape[0]
        pf.append(np.array([slip_stiffness_coefficients(Kp[x, x]) for x in range(m)]))
        pf_offs.append(epos)
        epos += m
        Kd, Kx = reduce_kernel(Kp)  # (a, b, 3)
        kd_parts.append(np.ascontiguousarray(Kd.transpose(1, 0, 2)).ravel())
        kx_parts.append(np.ascontiguousarray(Kx.transpose(1, 0, 2)).ravel())
        offs.append(pos)
        pos += kd_parts[-1].size
    return PatchKernels(np.concatenate(kd_parts), np.concatenate(kx_parts), np.array(offs, np.int64),
                        np.ascontiguousarray(np.concatenate(pf)), np.array(pf_offs, np.int64))
