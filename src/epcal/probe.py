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

The probed state is never modified: renewed systems live in a per-test overlay.

Model B (``pres``): every activation test of the patch uses the shifted thresholds
tau_c + alpha_p p with the pressure of the patch element (unchanged by the traceless
loading).  Model A (``het``): each patch with its own fixed-boundary responses (its
elements' moduli, :func:`epcal.heterogeneous.patch_set`), so its loading is no longer
uniform and the onset is found per patch.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from .dynamics import ACTIVE, CACHE_MARGIN, FRACTURE_LIMIT, MAX_RELAX_STEPS, RUNAWAY_MESSAGE
from .slip import RENEWAL_WORK_ROWS, draw_amplitude, renew_systems
from .variant_kernels import dtau_pressure, pressure_term, threshold_at


@njit(cache=True)
def element_onsets(sig, tau_c, a, b, G, cos2a, sin2a, pres):
    """Per element and orientation: strain gamma~ to first activation and the system.

    Returns (g (E, A), sys (E, A)).  tau(gamma~) = tau + gamma~ G c with
    c = cos(2(theta - alpha)) = b cos2a - 2 a sin2a.
    """
    E, N = tau_c.shape
    A = cos2a.shape[0]
    g = np.full((E, A), np.inf)
    arg = np.full((E, A), -1, np.int64)
    for e in range(E):
        d = sig[e, 0] - sig[e, 1]
        sxy = sig[e, 2]
        if pres is not None:
            qe = pressure_term(pres, sig[e, 0], sig[e, 1])
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


@njit(cache=True, nogil=True)
def probe_kernel(sig, theta, tau_c, a, b, gamma_max_coef, L, G, n_list, kd_flat, kx_flat, k_off, patch_f_coef, patch_f_off,
                 cos2a, sin2a, corners, rng, k, lam, chi, f_coef, out, variant_opts, het, pres):
    """Local shear tests of all (corner, n, alpha); writes out[p, ni, q, :] =
    (gamma_c, Sxx_i, Syy_i, Sxy_i, Sxx_c, Syy_c, Sxy_c, Sxx_f, Syy_f, Sxy_f, slips).

    sig: full element stress (E, 3) of the probed state.  corners: flat index of
    the patch's lower-left element.  Kernel of size n at kd_flat[k_off[ni]:]
    laid out as [b, a, 3] (reduced, see :func:`epcal.dynamics.reduce_kernel`);
    patch_f_coef[patch_f_off[ni] + x] are the Fourier coefficients of f_x(theta) in that patch.
    ``variant_opts``: the model variant (:mod:`epcal.variants`): its slip systems, thresholds and
    amplitudes; the patch kernel stays the fixed-boundary Eshelby kernel in every variant.
    ``pres``: model B's pressure term (None otherwise).  ``het``: model A's patches, a
    :data:`epcal.variant_kernels.PatchSet` (None otherwise): the kernel and f_x of patch
    (p, ni) at het.k_off[p, ni] and het.patch_f_off[p, ni] (k_off, patch_f_off unused), the loading
    stress of element x per unit gamma~ R_x M(alpha) (het.resp), the onset found per patch.
    """
    E, N = tau_c.shape
    A = cos2a.shape[0]
    nmax = 0
    for ni in range(n_list.shape[0]):
        if n_list[ni] > nmax:
            nmax = n_list[ni]
    M = nmax * nmax
    if het is None:
        g_el, s_el = element_onsets(sig, tau_c, a, b, G, cos2a, sin2a, pres)
    else:
        load = np.empty((M, 3))
    loc_sig = np.empty((M, 3))
    loc_elem = np.empty(M, np.int64)
    renewed = np.zeros(M, np.bool_)
    patch_theta = np.empty((M, N))
    patch_tau_c = np.empty((M, N))
    patch_a = np.empty((M, N))
    patch_b = np.empty((M, N))
    patch_gamma_max_coef = np.empty((M, N))
    work = np.empty((RENEWAL_WORK_ROWS, N))  # renewal work array (epcal.slip.renewal_work)
    buf_a = np.empty(M, np.int64)
    buf_s = np.empty(M, np.int64)
    buf_dg = np.empty(M)
    cache_dtau = np.empty(M)
    cache_d = np.empty(M)
    cache_sxy = np.empty(M)
    for p in range(corners.shape[0]):
        ci = corners[p] // L
        cj = corners[p] - ci * L
        for ni in range(n_list.shape[0]):
            n = n_list[ni]
            m = n * n
            if het is None:
                off = k_off[ni]
                pbase = patch_f_off[ni]
            else:
                off = het.k_off[p, ni]
                pbase = het.patch_f_off[p, ni]
            for u in range(n):
                for v in range(n):
                    loc_elem[u * n + v] = ((ci + u) % L) * L + (cj + v) % L
            si0 = 0.0
            si1 = 0.0
            si2 = 0.0
            for x in range(m):
                e = loc_elem[x]
                si0 += sig[e, 0]
                si1 += sig[e, 1]
                si2 += sig[e, 2]
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
                        d = sig[e, 0] - sig[e, 1]
                        sxy = sig[e, 2]
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
                        loc_sig[x, 0] = sig[e, 0] + lx
                        loc_sig[x, 1] = sig[e, 1] + ly
                        loc_sig[x, 2] = sig[e, 2] + lxy
                        renewed[x] = False
                else:
                    for c in range(3):
                        r[4 + c] = 0.0
                    for x in range(m):
                        e = loc_elem[x]
                        for c in range(3):
                            loc_sig[x, c] = sig[e, c] + gc * load[x, c]
                            r[4 + c] += loc_sig[x, c] / m
                        renewed[x] = False
                # avalanche at fixed gamma~ (fixed boundary)
                slips = 0
                first = True
                for _ in range(MAX_RELAX_STEPS):
                    nact = 0
                    for x in range(m):
                        d = loc_sig[x, 0] - loc_sig[x, 1]
                        sxy = loc_sig[x, 2]
                        # exact bound (|a| <= 1/2, |b| <= 1): skip elements that cannot be active
                        if pres is None:
                            if not first and not renewed[x] and cache_dtau[x] - (
                                    0.5 * abs(d - cache_d[x]) + abs(sxy - cache_sxy[x])) > CACHE_MARGIN:
                                continue
                        elif not first and not renewed[x] and cache_dtau[x] - (
                                0.5 * abs(d - cache_d[x]) + abs(sxy - cache_sxy[x])) \
                                + pressure_term(pres, loc_sig[x, 0], loc_sig[x, 1]) > CACHE_MARGIN:
                            continue
                        best = np.inf
                        bs = -1
                        if renewed[x]:
                            for s in range(N):
                                dt = patch_tau_c[x, s] - (patch_a[x, s] * d + patch_b[x, s] * sxy)
                                if dt < best:
                                    best = dt
                                    bs = s
                        else:
                            e = loc_elem[x]
                            for s in range(N):
                                dt = tau_c[e, s] - (a[e, s] * d + b[e, s] * sxy)
                                if dt < best:
                                    best = dt
                                    bs = s
                        cache_dtau[x] = best  # unshifted: the bound above is on the unshifted distances
                        if pres is not None:  # model B: shifted distances (the weakest system is the same for q >= 0)
                            qx = pressure_term(pres, loc_sig[x, 0], loc_sig[x, 1])
                            if qx >= 0.0:
                                best = best + qx
                            else:
                                best = np.inf
                                for s in range(N):
                                    if renewed[x]:
                                        dt = dtau_pressure(patch_tau_c[x, s], patch_a[x, s], patch_b[x, s], d, sxy, qx)
                                    else:
                                        e = loc_elem[x]
                                        dt = dtau_pressure(tau_c[e, s], a[e, s], b[e, s], d, sxy, qx)
                                    if dt < best:
                                        best = dt
                                        bs = s
                        cache_d[x] = d
                        cache_sxy[x] = sxy
                        if first and x == trig and best > ACTIVE:
                            # the trigger sits exactly at threshold; round-off may leave it at +1e-16
                            bs = trig_s
                            best = ACTIVE
                        if best <= ACTIVE:
                            if renewed[x]:
                                tc = patch_tau_c[x, bs]
                                s2 = -2.0 * patch_a[x, bs]
                                c2 = patch_b[x, bs]
                            else:
                                e = loc_elem[x]
                                tc = tau_c[e, bs]
                                s2 = -2.0 * a[e, bs]
                                c2 = b[e, bs]
                            if pres is None:
                                tau = tc - best
                            else:
                                tau = threshold_at(tc, qx) - best
                            fc = patch_f_coef[pbase + x]
                            f = fc[0] + fc[1] * (c2 * c2 - s2 * s2) + fc[2] * (2.0 * s2 * c2) + fc[3] * c2 + fc[4] * s2
                            buf_a[nact] = x
                            buf_s[nact] = bs
                            buf_dg[nact] = draw_amplitude(rng, -2.0 * tau / f, chi, variant_opts)
                            nact += 1
                    first = False
                    if nact == 0:
                        break
                    for i in range(nact):
                        x = buf_a[i]
                        s = buf_s[i]
                        if renewed[x]:
                            sa = patch_a[x, s]
                            sb = patch_b[x, s]
                        else:
                            sa = a[loc_elem[x], s]
                            sb = b[loc_elem[x], s]
                        dg = buf_dg[i]
                        base = off + x * m * 3
                        for y in range(m):
                            kb = base + y * 3
                            loc_sig[y, 0] += dg * (sa * kd_flat[kb] + sb * kx_flat[kb])
                            loc_sig[y, 1] += dg * (sa * kd_flat[kb + 1] + sb * kx_flat[kb + 1])
                            loc_sig[y, 2] += dg * (sa * kd_flat[kb + 2] + sb * kx_flat[kb + 2])
                    for i in range(nact):
                        x = buf_a[i]
                        renew_systems(rng, patch_theta, patch_tau_c, patch_a, patch_b, patch_gamma_max_coef, x, k, lam,
                                      f_coef, work, variant_opts)
                        renewed[x] = True
                    slips += nact
                    if slips > FRACTURE_LIMIT * m:
                        raise RuntimeError(RUNAWAY_MESSAGE)
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
    """Reduced patch kernels laid out for :func:`probe_kernel`: (kd_flat, kx_flat, offsets, pf, pf_offsets).

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
    return (np.concatenate(kd_parts), np.concatenate(kx_parts), np.array(offs, np.int64),
            np.ascontiguousarray(np.concatenate(pf)), np.array(pf_offs, np.int64))
