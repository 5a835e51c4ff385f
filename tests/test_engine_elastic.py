"""Elastic kernels: FFT vs direct FEM, sum rules, symmetries, Eshelby tensor, patch kernels."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from epcal.elastic import (W, ddot, eshelby_tensor, patch_kernel_direct, periodic_kernel_fft, slip_stiffness,
                           slip_tensor, solve_patch_direct, solve_periodic_direct, stiffness)
from epcal.kernel_cache import patch_kernel, periodic_kernel

G, B = 13.2, 59.0


def convolve(K, eps):
    L = eps.shape[0]
    out = np.zeros_like(eps)
    for i in range(L):
        for j in range(L):
            out += np.roll(np.roll(K @ eps[i, j], i, 0), j, 1)
    return out


@pytest.mark.parametrize("L", [5, 8, 9])
def test_fft_kernel_equals_direct_sparse_solve(L):
    rng = np.random.default_rng(L)
    eps = rng.normal(size=(L, L, 3))
    direct = solve_periodic_direct(eps, G, B)
    fft = convolve(periodic_kernel_fft(L, G, B), eps)
    assert np.abs(direct - fft).max() < 1e-10 * np.abs(direct).max()


@pytest.mark.parametrize("L", [4, 7, 15])
def test_mean_stress_change_is_minus_C_eps_over_L2(L):
    K = periodic_kernel_fft(L, G, B)
    # mean over the lattice of the response to a unit plastic strain in one element
    assert np.allclose(K.mean(axis=(0, 1)), -stiffness(G, B) / L**2, atol=1e-12)


def test_uniform_plastic_strain_only_uniform_stress():
    L = 8
    eps = np.broadcast_to(np.array([0.01, -0.02, 0.03]), (L, L, 3)).copy()
    sig = convolve(periodic_kernel_fft(L, G, B), eps)
    # the elastic strain changes by -eps_pl everywhere, nothing else
    assert np.allclose(sig, -(stiffness(G, B) @ eps[0, 0]), atol=1e-12)


def test_kernel_symmetries():
    L = 9
    K = periodic_kernel_fft(L, G, B)
    idx = (-np.arange(L)) % L
    P = np.diag([1.0, 1.0, -1.0])  # mirror x -> -x flips the xy component
    assert np.allclose(K[idx][:, idx], K, atol=1e-12)  # point inversion
    assert np.allclose(K[idx], P @ K @ P, atol=1e-12)  # mirror in x
    assert np.allclose(K[:, idx], P @ K @ P, atol=1e-12)  # mirror in y
    # 90 degree rotation: (dx, dy) -> (-dy, dx); xx <-> yy, xy -> -xy
    R = np.array([[0.0, 1, 0], [1, 0, 0], [0, 0, -1]])
    rot = np.empty_like(K)
    for i in range(L):
        for j in range(L):
            rot[(-j) % L, i] = R @ K[i, j] @ R.T
    assert np.allclose(rot, K, atol=1e-12)
    # Maxwell-Betti reciprocity: W K(d) is symmetric
    WK = W @ K
    assert np.allclose(WK, np.swapaxes(WK, -1, -2), atol=1e-12)


def test_eshelby_far_field_is_fourfold():
    """A simple-shear eigenstrain loads xy in the direction of the shear and unloads at 45 degrees."""
    L = 64
    K = periodic_kernel_fft(L, G, B)
    xy = K[..., 2, 2]
    for r in (6, 8, 10):
        along = np.mean([xy[r, 0], xy[0, r], xy[-r, 0], xy[0, -r]])
        diag = np.mean([xy[r, r], xy[-r, -r], xy[r, -r], xy[-r, r]])
        assert along > 0 > diag  # cos(4 phi) sign alternation
    # 1/r^2 decay (far enough, not yet periodic images): doubling r divides by ~4
    ratio = xy[6, 0] / xy[12, 0]
    assert 3.0 < ratio < 5.5


def test_eshelby_tensor_and_slip_stiffness():
    K = periodic_kernel(15, G, B)
    S = eshelby_tensor(K, G, B)
    # isotropic-lattice symmetries: S_xxxx = S_yyyy, no shear-normal coupling
    assert S[0, 0] == pytest.approx(S[1, 1])
    assert abs(S[0, 2]) < 1e-12 and abs(S[2, 0]) < 1e-12
    assert 0 < S[2, 2] < 1
    th = np.deg2rad([0.0, 22.5, 45.0, 67.5, 90.0])
    f = slip_stiffness(th, K)
    assert np.all(f < 0)
    # pure shear along the axes (theta = 45) is stiffer than simple shear (theta = 0) on the Q4 lattice
    assert f[2] < f[0]
    assert f[1] == pytest.approx(f[3]) and f[0] == pytest.approx(f[4])
    # f = (C:(S-I):M):M written out with the tensors
    C = stiffness(G, B)
    M = slip_tensor(th[1])
    assert f[1] == pytest.approx(ddot(C @ ((S - np.eye(3)) @ M), M))
    # bounded by the fully constrained element (S = 0): f >= -M:C:M = -G
    assert np.all(f > -G)


@given(st.floats(-np.pi, np.pi), st.floats(-np.pi, np.pi))
def test_slip_tensor_contraction(alpha, beta):
    assert ddot(slip_tensor(alpha), slip_tensor(beta)) == pytest.approx(0.5 * np.cos(2 * (alpha - beta)), abs=1e-12)


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_patch_kernel_against_direct_solve(n):
    rng = np.random.default_rng(n)
    eps = rng.normal(size=(n, n, 3))
    Kp = patch_kernel_direct(n, G, B)
    sig = np.einsum("abxy,by->ax", Kp, eps.reshape(-1, 3))
    direct = solve_patch_direct(eps, G, B).reshape(-1, 3)
    assert np.abs(sig - direct).max() < 1e-10 * np.abs(direct).max()
    # fixed boundary: the mean strain vanishes, so the mean stress change is -C <eps_pl>
    assert np.allclose(sig.mean(0), -stiffness(G, B) @ eps.reshape(-1, 3).mean(0), atol=1e-10)


def test_patch_kernel_reciprocity_and_cache():
    n = 4
    Kp = patch_kernel(n, G, B)
    assert np.allclose(Kp, patch_kernel_direct(n, G, B))
    WK = np.einsum("xy,abyz->abxz", W, Kp)
    assert np.allclose(WK, np.transpose(WK, (1, 0, 3, 2)), atol=1e-10)
    # a fixed boundary is stiffer than the periodic lattice: |f_patch| > |f_periodic| for the same theta
    K = periodic_kernel(15, G, B)
    centre = (n // 2) * n + n // 2
    th = np.linspace(0, np.pi, 7)
    assert np.all(slip_stiffness(th, Kp[centre, centre]) < slip_stiffness(th, K))
