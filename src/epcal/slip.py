"""Local slip systems (paper sections 3.1-3.3): thresholds, orientations, amplitudes, renewal.

Each element carries N slip systems in groups of four with angles theta,
theta + pi/2, theta + pi/4, theta + 3 pi/4 (one theta ~ U(-pi/2, pi/2] per group).
Per system the engine stores plain arrays of shape (E, N):

* ``theta``  -- slip angle,
* ``tau_c``  -- slip threshold, Weibull(k, lam) (Eq. 5),
* ``a``, ``b`` -- resolved stress coefficients, tau = M(theta):Sigma
  = a (Sigma_xx - Sigma_yy) + b Sigma_xy with a = -sin(2 theta)/2, b = cos(2 theta) (Eq. 4),
* ``gamma_max_coef`` -- gamma_max / tau = -2 / f(theta) (Eq. 6), f from :mod:`epcal.elastic`.

A slip of amplitude dg adds dg M(theta) = dg (a, -a, b/2) to the plastic strain
(Eq. 1).  Amplitudes follow Eq. (7), dg = gamma_max (1 - (1 - u)^(1/chi)).

Random numbers come from a xoshiro256** generator whose 4-word state is an
explicit uint64 array (one per replica), so results depend only on the seed.
"""
from __future__ import annotations

from collections import namedtuple

import numpy as np
from numba import njit

from .elastic import slip_stiffness
from .variants import ORIGINAL, V_AMPLITUDES, V_DGAMMA_PL, V_SYSTEMS, V_TAU_C, V_THRESHOLDS
from .vecmath import vexp, vlog, vsincos

TWO_PI = 2.0 * np.pi


# --------------------------------------------------------------- xoshiro256**
@njit(cache=True, inline="always")
def _rotl(x, k):
    return (x << np.uint64(k)) | (x >> np.uint64(64 - k))


@njit(cache=True, inline="always")
def _xoshiro_step(s0, s1, s2, s3):
    """One xoshiro256** step on the state words: (output, new state words)."""
    result = _rotl(s1 * np.uint64(5), 7) * np.uint64(9)
    t = s1 << np.uint64(17)
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    s3 = _rotl(s3, 45)
    return result, s0, s1, s2, s3


@njit(cache=True)
def rng_next(state):
    """Next 64-bit output of xoshiro256** (state: uint64[4], updated in place)."""
    result, state[0], state[1], state[2], state[3] = _xoshiro_step(state[0], state[1], state[2], state[3])
    return result


@njit(cache=True)
def rng_uniform(state):
    """Uniform double in the open interval (0, 1) (53 random bits)."""
    return ((rng_next(state) >> np.uint64(11)) + 0.5) * (1.0 / 9007199254740992.0)


@njit(cache=True)
def rng_fill_uniform(state, out):
    """out[:] = successive rng_uniform(state) draws (same stream), with the state kept in registers."""
    s0, s1, s2, s3 = state[0], state[1], state[2], state[3]
    for i in range(out.shape[0]):
        result, s0, s1, s2, s3 = _xoshiro_step(s0, s1, s2, s3)
        out[i] = ((result >> np.uint64(11)) + 0.5) * (1.0 / 9007199254740992.0)
    state[0], state[1], state[2], state[3] = s0, s1, s2, s3


def make_rng_state(*words: int) -> np.ndarray:
    """xoshiro state derived from integers (seed, parameter digest, replica, purpose ...)."""
    ss = np.random.SeedSequence([int(w) % (1 << 64) for w in words])
    st = ss.generate_state(4, dtype=np.uint64)
    if not st.any():  # pragma: no cover - astronomically unlikely
        st[0] = 1
    return st


# ----------------------------------------------------------------- samplers
@njit(cache=True)
def slip_amplitude(state, gamma_max, chi):
    """dgamma_pl on (0, gamma_max) from P = chi/gmax (1 - x/gmax)^(chi-1), Eq. (7)."""
    return gamma_max * (1.0 - rng_uniform(state) ** (1.0 / chi))


# --------------------------------------------------------------- slip systems
@njit(cache=True, inline="always")
def f_theta(f_coef, s2, c2):
    """f(theta) from sin 2theta, cos 2theta: f0 + f4c cos4t + f4s sin4t + f2c cos2t + f2s sin2t
    (exact on the Q4 lattice, see :func:`slip_stiffness_coefficients`)."""
    return f_coef[0] + f_coef[1] * (c2 * c2 - s2 * s2) + f_coef[2] * (2.0 * s2 * c2) + f_coef[3] * c2 + f_coef[4] * s2


@njit(cache=True)
def _fill_system(theta, tau_c, a, b, gamma_max_coef, e, s, angle, tc, f_coef):
    """Set system (e, s) to angle and threshold, with its derived coefficients."""
    s2 = np.sin(2.0 * angle)
    c2 = np.cos(2.0 * angle)
    theta[e, s] = angle
    tau_c[e, s] = tc
    a[e, s] = -0.5 * s2
    b[e, s] = c2
    gamma_max_coef[e, s] = -2.0 / f_theta(f_coef, s2, c2)


#: rows of the renewal work array (:func:`renewal_work`)
_W_A, _W_B, _W_Y, _W_PHI, _W_S2, _W_C2 = 0, 1, 2, 3, 4, 5
RENEWAL_WORK_ROWS = 6


def renewal_work(N: int) -> np.ndarray:
    """Work array for :func:`renew_element` with N systems per element (no allocation per slip)."""
    return np.empty((RENEWAL_WORK_ROWS, N))


@njit(cache=True, error_model="numpy")
def renew_element(state, theta, tau_c, a, b, gamma_max_coef, e, k, lam, f_coef, work):
    """Draw all N systems of element e anew (section 3.3): groups of four angles, Weibull thresholds.

    Random numbers: N uniforms for the thresholds tau_c = lam (-ln u)^(1/k) (Eq. 5),
    then N/4 for the group angles theta ~ U(-pi/2, pi/2).  The four angles
    theta + (0, pi/2, pi/4, 3pi/4) have 2 theta rotated by (0, pi, pi/2, 3pi/2):
    their sines and cosines follow from one pair.  Transcendentals are evaluated
    by the vectorized kernels of :mod:`epcal.vecmath` over the N systems at once.
    ``work`` is :func:`renewal_work` (N).
    """
    N = theta.shape[1]
    G = N // 4
    tc = tau_c[e]
    wa = work[_W_A]
    ib = work[_W_B].view(np.int64)
    y = work[_W_Y]
    phi = work[_W_PHI][:G]
    s2 = work[_W_S2][:G]
    c2 = work[_W_C2][:G]
    rng_fill_uniform(state, tc)
    rng_fill_uniform(state, phi)
    for g in range(G):
        phi[g] = np.pi * (1.0 - 2.0 * phi[g])  # 2 theta in (-pi, pi)
    # distinct input and output arrays: LLVM vectorizes only when they cannot overlap
    vlog(tc, y, ib, wa)
    for s in range(N):
        tc[s] = -y[s]                      # exponential variate -ln u > 0
    vlog(tc, y, ib, wa)
    ik = 1.0 / k
    for s in range(N):
        tc[s] = y[s] * ik
    vexp(tc, y, wa)                        # (-ln u)^(1/k)
    vsincos(phi, s2, c2)
    # per system: angle (scalar pass), then sin/cos of 2 theta rotated by the group offset
    sx = wa                                # work rows reused: the logs/exp are done
    cx = work[_W_B]
    half = 0.5 * np.pi
    for g in range(G):
        th = 0.5 * phi[g]
        sn = s2[g]
        cs = c2[g]
        q = 4 * g
        a1 = th + half
        if a1 > half:
            a1 -= np.pi
        a2 = th + 0.25 * np.pi
        if a2 > half:
            a2 -= np.pi
        a3 = th + 0.75 * np.pi
        if a3 > half:
            a3 -= np.pi
        theta[e, q] = th
        theta[e, q + 1] = a1
        theta[e, q + 2] = a2
        theta[e, q + 3] = a3
        sx[q], cx[q] = sn, cs
        sx[q + 1], cx[q + 1] = -sn, -cs
        sx[q + 2], cx[q + 2] = cs, -sn
        sx[q + 3], cx[q + 3] = -cs, sn
    # vectorized pass: thresholds, resolved-stress coefficients, gamma_max / tau = -2/f(theta)
    ar = a[e]
    br = b[e]
    gr = gamma_max_coef[e]
    for s in range(N):
        sn = sx[s]
        cs = cx[s]
        tc[s] = lam * y[s]
        ar[s] = -0.5 * sn
        br[s] = cs
        gr[s] = -2.0 / f_theta(f_coef, sn, cs)


@njit(cache=True)
def renew_systems(state, theta, tau_c, a, b, gamma_max_coef, e, k, lam, f_coef, work, variant_opts):
    """Renewal of element e under the model variant ``variant_opts`` (:mod:`epcal.variants`).

    Original model: :func:`renew_element`.  Two-system variants (F, G, H): systems at
    0 and 90 degrees sharing one Weibull threshold.  Non-evolving thresholds (E, H):
    every threshold is the homogeneous tau_c.
    """
    fixed = variant_opts[V_THRESHOLDS] == 1.0
    if variant_opts[V_SYSTEMS] == 1.0:
        tc = variant_opts[V_TAU_C] if fixed else lam * np.exp(np.log(-np.log(rng_uniform(state))) / k)
        theta[e, 0] = 0.0
        a[e, 0] = 0.0
        b[e, 0] = 1.0
        gamma_max_coef[e, 0] = -2.0 / f_theta(f_coef, 0.0, 1.0)
        theta[e, 1] = 0.5 * np.pi
        a[e, 1] = 0.0
        b[e, 1] = -1.0
        gamma_max_coef[e, 1] = -2.0 / f_theta(f_coef, 0.0, -1.0)
        tau_c[e, 0] = tc
        tau_c[e, 1] = tc
        return
    renew_element(state, theta, tau_c, a, b, gamma_max_coef, e, k, lam, f_coef, work)
    if fixed:
        for s in range(tau_c.shape[1]):
            tau_c[e, s] = variant_opts[V_TAU_C]


@njit(cache=True)
def draw_amplitude(state, gamma_max, chi, variant_opts):
    """Slip amplitude: Eq. (7), or the variant's constant dgamma_pl (F, G, H)."""
    if variant_opts[V_AMPLITUDES] == 1.0:
        return variant_opts[V_DGAMMA_PL]
    return slip_amplitude(state, gamma_max, chi)


@njit(cache=True)
def renew_all(state, theta, tau_c, a, b, gamma_max_coef, k, lam, f_coef, variant_opts):
    work = np.empty((RENEWAL_WORK_ROWS, theta.shape[1]))
    for e in range(theta.shape[0]):
        renew_systems(state, theta, tau_c, a, b, gamma_max_coef, e, k, lam, f_coef, work, variant_opts)


#: the angles on which f(theta) is sampled for its Fourier fit (5 or more determine it)
FIT_ANGLES = np.linspace(-np.pi / 2, np.pi / 2, 17, endpoint=False)


def fourier_basis(theta) -> np.ndarray:
    """The basis (1, cos 4theta, sin 4theta, cos 2theta, sin 2theta) of f(theta), shape theta.shape + (5,)."""
    theta = np.asarray(theta, float)
    return np.stack([np.ones_like(theta), np.cos(4 * theta), np.sin(4 * theta), np.cos(2 * theta),
                     np.sin(2 * theta)], axis=-1)


def fit_slip_stiffness(f: np.ndarray, what: str = "f(theta)") -> np.ndarray:
    """Fourier coefficients (..., 5) of f(theta) sampled on :data:`FIT_ANGLES` (last axis), checked to
    be an exact 4-fold series and negative (Eq. 6 needs f < 0)."""
    f = np.asarray(f, float)
    A = fourier_basis(FIT_ANGLES)
    coef = np.linalg.lstsq(A, f.T, rcond=None)[0].T
    fit = coef @ A.T
    if np.abs(fit - f).max() > 1e-9 * np.abs(f).max():
        raise RuntimeError(f"{what} is not a 4-fold Fourier series: kernel broken")
    if fit.max() >= 0:
        raise RuntimeError(f"slip stiffness {what} must be negative for every theta")
    return coef


def slip_stiffness_at(f_coef: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """f(theta) from its coefficients (..., 5), broadcast against theta (the numpy form of :func:`f_theta`)."""
    c = np.asarray(f_coef, float)
    return (c[..., 0] + c[..., 1] * np.cos(4 * theta) + c[..., 2] * np.sin(4 * theta)
            + c[..., 3] * np.cos(2 * theta) + c[..., 4] * np.sin(2 * theta))


def slip_stiffness_coefficients(K: np.ndarray) -> np.ndarray:
    """Fourier coefficients (f0, f4c, f4s, f2c, f2s) of f(theta) = M(theta):K0 M(theta).

    f is a quadratic form in (sin 2theta, cos 2theta), hence exactly a combination of
    1, cos 4theta, sin 4theta, cos 2theta, sin 2theta; fitted exactly on 5+ angles.
    """
    return fit_slip_stiffness(slip_stiffness(FIT_ANGLES, K))


#: the slip systems as the kernels read them, each (E, N): angle, threshold tau_c, the coefficients
#: (a, b) of the resolved stress M:Sigma = a (Sxx - Syy) + b Sxy (Eq. 4) and gamma_max / tau (Eq. 6)
SystemArrays = namedtuple("SystemArrays", ["theta", "tau_c", "a", "b", "gamma_max_coef"])


class SlipSystems:
    """Arrays of the N slip systems of E elements (see module docstring)."""

    def __init__(self, E: int, N: int, axes: bool = False):
        if axes and N != 2:
            raise ValueError(f"number of slip systems N = {N}: the two-system variants have N = 2")
        if not axes and (N % 4 != 0 or N <= 0):
            raise ValueError(f"number of slip systems N = {N}: expected a positive multiple of 4")
        self.theta = np.zeros((E, N))
        self.tau_c = np.zeros((E, N))
        self.a = np.zeros((E, N))
        self.b = np.zeros((E, N))
        self.gamma_max_coef = np.zeros((E, N))

    @classmethod
    def random(cls, E, N, k, lam, f_coef, rng_state, variant=ORIGINAL) -> "SlipSystems":
        """Random systems of E elements (N per element; variant: see :mod:`epcal.variants`)."""
        sys = cls(E, variant.n_systems(N), axes=variant.systems == "axes")
        renew_all(rng_state, sys.theta, sys.tau_c, sys.a, sys.b, sys.gamma_max_coef, k, lam, f_coef, variant.options())
        return sys

    def arrays(self) -> "SystemArrays":
        return SystemArrays(self.theta, self.tau_c, self.a, self.b, self.gamma_max_coef)

    def copy(self) -> "SlipSystems":
        new = SlipSystems.__new__(SlipSystems)
        for name in ("theta", "tau_c", "a", "b", "gamma_max_coef"):
            setattr(new, name, getattr(self, name).copy())
        return new
