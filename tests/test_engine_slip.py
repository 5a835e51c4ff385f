"""Slip systems: samplers against exact moments, orientation groups, dissipation bound."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit

from epcal.elastic import ddot, slip_tensor
from epcal.kernel_cache import periodic_kernel
from epcal.slip import (SlipSystems, make_rng_state, rng_fill_uniform, rng_uniform, slip_amplitude,
                        slip_stiffness_coefficients)

G, B = 13.2, 59.0


@njit
def _draw(kind, n, p1, p2, state):
    out = np.empty(n)
    for i in range(n):
        if kind == 0:
            out[i] = rng_uniform(state)
        else:
            out[i] = slip_amplitude(state, p1, p2)
    return out


def _check_mean(x, mean, var):
    # 5 standard errors: fails by chance with probability < 1e-6
    assert abs(x.mean() - mean) < 5 * math.sqrt(var / x.size)


def test_uniform_moments_and_range():
    x = _draw(0, 200_000, 0.0, 0.0, make_rng_state(1))
    assert 0 < x.min() and x.max() < 1
    _check_mean(x, 0.5, 1 / 12)
    _check_mean(x**2, 1 / 3, 1 / 5 - 1 / 9)


@pytest.mark.parametrize("k,lam", [(1.0, 1.0), (2.18, 2.05), (3.0, 0.5)])
def test_weibull_against_exact_moments(k, lam):
    """Thresholds as the engine draws them (renewal of whole elements, Eq. 5)."""
    K = periodic_kernel(4, G, B)
    x = SlipSystems.random(5556, 36, k, lam, slip_stiffness_coefficients(K), make_rng_state(2, int(k * 100))).tau_c
    x = x.ravel()
    m1 = lam * math.gamma(1 + 1 / k)
    m2 = lam**2 * math.gamma(1 + 2 / k)
    _check_mean(x, m1, m2 - m1**2)
    # CDF at the scale: P(x < lam) = 1 - 1/e
    frac = (x < lam).mean()
    p = 1 - math.exp(-1)
    assert abs(frac - p) < 5 * math.sqrt(p * (1 - p) / x.size)


@pytest.mark.parametrize("gmax,chi", [(0.1, 1.0), (0.05, 2.25), (0.2, 0.5)])
def test_slip_amplitude_against_exact_moments(gmax, chi):
    x = _draw(2, 200_000, gmax, chi, make_rng_state(3, int(chi * 100)))
    assert x.min() > 0 and x.max() < gmax
    # Eq. (7): mean gmax/(1+chi), E[x^2] = 2 gmax^2 / ((1+chi)(2+chi))
    m1 = gmax / (1 + chi)
    m2 = 2 * gmax**2 / ((1 + chi) * (2 + chi))
    _check_mean(x, m1, m2 - m1**2)


def test_same_seed_same_bits_and_different_seeds_differ():
    f_coef = slip_stiffness_coefficients(periodic_kernel(4, G, B))
    a, b, c = (SlipSystems.random(30, 8, 2.0, 1.0, f_coef, make_rng_state(*w)) for w in ((7, 1, 2), (7, 1, 2), (7, 1, 3)))
    for name in ("theta", "tau_c", "gamma_max_coef"):
        assert np.array_equal(getattr(a, name), getattr(b, name))
        assert not np.array_equal(getattr(a, name), getattr(c, name))


def test_group_angles_uniform():
    """theta ~ U(-pi/2, pi/2): E[cos 2 theta] = E[sin 2 theta] = 0, E[cos^2 2theta] = 1/2, E[theta^2] = pi^2/12."""
    f_coef = slip_stiffness_coefficients(periodic_kernel(4, G, B))
    th = SlipSystems.random(20_000, 12, 2.0, 1.0, f_coef, make_rng_state(11)).theta[:, ::4].ravel()
    _check_mean(np.cos(2 * th), 0.0, 0.5)
    _check_mean(np.sin(2 * th), 0.0, 0.5)
    _check_mean(np.cos(2 * th) ** 2, 0.5, 1 / 8)
    _check_mean(th**2, np.pi**2 / 12, np.pi**4 / 80 - np.pi**4 / 144)


def test_slip_systems_come_in_groups_of_four():
    K = periodic_kernel(8, G, B)
    f_coef = slip_stiffness_coefficients(K)
    s = SlipSystems.random(20, 12, 2.0, 1.0, f_coef, make_rng_state(5))
    assert np.all((s.theta > -np.pi / 2) & (s.theta <= np.pi / 2))
    for g in range(3):
        base = s.theta[:, 4 * g]
        for j, off in enumerate((0.5 * np.pi, 0.25 * np.pi, 0.75 * np.pi)):
            d = np.mod(s.theta[:, 4 * g + j + 1] - base - off, np.pi)
            assert np.allclose(np.minimum(d, np.pi - d), 0, atol=1e-12)
    # resolved-stress coefficients are those of M(theta)
    M = slip_tensor(s.theta)
    assert np.allclose(s.a, M[..., 0]) and np.allclose(s.b, 2 * M[..., 2])
    # gamma_max / tau = -2 / f(theta)
    from epcal.elastic import slip_stiffness
    assert np.allclose(s.gamma_max_coef, -2 / slip_stiffness(s.theta, K))
    with pytest.raises(ValueError, match="multiple of 4"):
        SlipSystems(4, 6)


@settings(max_examples=200, deadline=None)
@given(theta=st.floats(-np.pi / 2, np.pi / 2), tau=st.floats(0.01, 5.0), u=st.floats(0.0, 1.0),
       p=st.floats(-3, 3), q=st.floats(-3, 3))
def test_no_slip_dissipates_negatively(theta, tau, u, p, q):
    """Eq. (13)-(15): (Sigma + dSigma/2):dgamma M >= 0 for every amplitude up to gamma_max."""
    K = periodic_kernel(15, G, B)
    M = slip_tensor(theta)
    # stress with resolved shear tau on this system, any pressure p and orthogonal shear q
    sig = p * np.array([1.0, 1.0, 0.0]) + 2 * tau * M + 2 * q * slip_tensor(theta + np.pi / 4)
    assert ddot(M, sig) == pytest.approx(tau)
    coef = slip_stiffness_coefficients(K)
    f = coef[0] + coef[1] * np.cos(4 * theta) + coef[2] * np.sin(4 * theta) + coef[3] * np.cos(2 * theta) \
        + coef[4] * np.sin(2 * theta)
    gmax = -2 * tau / f
    dg = u * gmax
    dsig = K[0, 0] @ (dg * M)
    dissipation = ddot(sig + 0.5 * dsig, dg * M)
    assert dissipation >= -1e-12 * tau * gmax
    # the bound is sharp: at gamma_max the dissipation vanishes
    assert ddot(sig + 0.5 * K[0, 0] @ (gmax * M), gmax * M) == pytest.approx(0.0, abs=1e-10 * tau * gmax)


@njit
def _fill_vs_single(state1, state2, n):
    a = np.empty(n)
    rng_fill_uniform(state1, a)
    b = np.empty(n)
    for i in range(n):
        b[i] = rng_uniform(state2)
    return a, b


def test_block_fill_is_the_same_stream():
    a, b = _fill_vs_single(make_rng_state(3, 4), make_rng_state(3, 4), 1001)
    assert np.array_equal(a, b)


@given(st.floats(-4.0, 4.0), st.floats(-3.0, 3.0), st.floats(-3.0, 3.0), st.floats(-3.0, 3.0))
@settings(max_examples=60, deadline=None)
def test_resolved_shear_is_the_contraction_with_M(theta, sxx, syy, sxy):
    """tau = M(theta) : Sigma, the same formula on the engine's and the atoms' side (epcal.tensors):
    the 3-vector and 2x2 forms of M agree, tau(theta + pi/2) = -tau(theta), and the largest tau over
    theta is the radius of Mohr's circle sqrt(((syy - sxx) / 2)^2 + sxy^2)."""
    from epcal.tensors import resolved_shear, slip_matrix

    sig = np.array([sxx, syy, sxy])
    M = slip_tensor(theta)
    assert resolved_shear(sig, theta) == pytest.approx(float(ddot(M, sig)), abs=1e-12)
    assert np.allclose(slip_matrix(theta), [[M[0], M[2]], [M[2], M[1]]])
    assert resolved_shear(sig, theta + np.pi / 2) == pytest.approx(-resolved_shear(sig, theta), abs=1e-12)
    grid = np.linspace(0, np.pi, 2001)
    tmax = max(resolved_shear(sig, t) for t in grid)
    assert tmax == pytest.approx(np.hypot((syy - sxx) / 2, sxy), abs=1e-5)
