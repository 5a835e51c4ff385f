"""Model A (appendix A.8.1): exact FEM of a lattice with per-element shear moduli, and its dynamics."""
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from epcal.elastic import (W, assemble, element_matrices, patch_kernel_direct, periodic_kernel_fft,
                           solve_patch_direct, solve_periodic_direct, stiffness, stiffness_field)
from epcal.heterogeneous import (HeterogeneousLattice, influence_matrix, lattice, patch_response,
                                 weibull_moduli)
from epcal.params import EPMParams
from epcal.samples import draw_sample
from epcal.simulate import Model, ProbeSpec, run_ensemble
from epcal.variants import variant

B = 59.0
RNG = np.random.default_rng(12)


def moduli(n, seed=0):
    return weibull_moduli(np.random.default_rng(seed), n, 18.4, 1.3)


def apply(K, eps):
    """Stress field of a plastic strain field with the influence matrix (E, E, 3, 3)."""
    return np.einsum("abij,bj->ai", K, eps.reshape(-1, 3))


@pytest.mark.parametrize("L", [4, 5])
def test_influence_matrix_equals_direct_fem_solve(L):
    G = moduli(L * L, L)
    K = influence_matrix(L, G, B)
    eps = RNG.normal(size=(L, L, 3))
    direct = solve_periodic_direct(eps, G.reshape(L, L), B).reshape(-1, 3)
    assert np.abs(apply(K, eps) - direct).max() < 1e-10 * np.abs(direct).max()


def test_homogeneous_limit_is_the_fft_kernel():
    L = 6
    K = influence_matrix(L, np.full(L * L, 13.2), B)
    Kf = periodic_kernel_fft(L, 13.2, B)
    i, j = np.divmod(np.arange(L * L), L)
    shifted = Kf[(i[:, None] - i[None, :]) % L, (j[:, None] - j[None, :]) % L]  # K[a - b]
    assert np.abs(K - shifted).max() < 1e-12 * np.abs(Kf).max()
    lat = HeterogeneousLattice(L, np.full(L * L, 13.2), B)
    assert np.allclose(lat.load, [0.0, 0.0, 13.2], rtol=0, atol=1e-12) and lat.G_eff == pytest.approx(13.2, abs=1e-12)


def test_reciprocity_and_mean_stress_sum_rule():
    """Maxwell-Betti: W K[a, b] = (W K[b, a])^T.  Mean stress change of a plastic strain p in b at fixed
    macroscopic strain: W sum_a K[a, b] = -(W D_b)^T, D_b the stress of b per unit macroscopic strain
    (energy U(eps0, p) is quadratic: d<Sigma>/dp_b and dSigma_b/deps0 are the same mixed second
    derivative); homogeneous: sum_a K[a, b] = -C."""
    L = 5
    G = moduli(L * L, 3)
    K = influence_matrix(L, G, B)
    WK = W @ K
    assert np.abs(WK - np.swapaxes(WK, 0, 1).swapaxes(2, 3)).max() < 1e-11 * np.abs(WK).max()
    D = np.stack([solve_periodic_direct(np.zeros((L, L, 3)), G.reshape(L, L), B, macro=e0).reshape(-1, 3)
                  for e0 in np.eye(3)], axis=2)  # (E, 3, 3): stress of b per unit macro strain component
    lhs = W @ K.sum(axis=0)
    rhs = -np.swapaxes(W @ D, 1, 2)
    assert np.abs(lhs - rhs).max() < 1e-10 * np.abs(rhs).max()
    # and a uniform plastic strain equal to the macroscopic strain leaves every element stress free
    e0 = np.array([0.01, -0.02, 0.03])
    assert np.abs(K.sum(axis=1) @ e0 + D @ e0).max() < 1e-12 * np.abs(D @ e0).max()


def test_external_response_and_eshelby_of_each_element():
    L = 5
    G = moduli(L * L, 4)
    lat = HeterogeneousLattice(L, G, B)
    direct = solve_periodic_direct(np.zeros((L, L, 3)), G.reshape(L, L), B, macro=[0, 0, 0.5]).reshape(-1, 3)
    assert np.abs(lat.load - direct).max() < 1e-11 * np.abs(direct).max()
    assert lat.G_eff == pytest.approx(direct[:, 2].mean(), rel=1e-12)
    assert np.abs(lat.load[:, :2].sum(axis=1)).max() > 1e-3  # heterogeneous shear has a pressure response
    # self blocks: S_e = I + C_e^-1 K[e, e]; f_e(theta) from the fitted coefficients
    K = influence_matrix(L, G, B)
    S = lat.eshelby_tensors()
    Cs = stiffness_field(G, B, L * L)
    assert np.allclose(np.einsum("eij,ejk->eik", Cs, S - np.eye(3)), K[np.arange(25), np.arange(25)], atol=1e-10)
    th = RNG.uniform(-np.pi / 2, np.pi / 2, 25)
    M = 0.5 * np.stack([-np.sin(2 * th), np.sin(2 * th), np.cos(2 * th)], axis=1)
    f = np.einsum("ei,ij,ejk,ek->e", M, W, K[np.arange(25), np.arange(25)], M)
    c = lat.f_coef
    fit = c[:, 0] + c[:, 1] * np.cos(4 * th) + c[:, 2] * np.sin(4 * th) + c[:, 3] * np.cos(2 * th) + c[:, 4] * np.sin(2 * th)
    assert np.allclose(fit, f, rtol=1e-10) and (f < 0).all()


@pytest.mark.parametrize("n", [1, 3, 4])
def test_patch_response_equals_direct_solve_and_homogeneous_limit(n):
    Gp = moduli(n * n, 10 + n).reshape(n, n)
    Kp, R = patch_response(Gp, B)
    eps = RNG.normal(size=(n, n, 3))
    e0 = np.array([0.3, -0.1, 0.2])
    direct = solve_patch_direct(eps, Gp, B, boundary=e0).reshape(-1, 3)
    mine = np.einsum("xyij,yj->xi", Kp, eps.reshape(-1, 3)) + R @ e0
    assert np.abs(mine - direct).max() < 1e-10 * np.abs(direct).max()
    Kh, Rh = patch_response(np.full((n, n), 13.2), B)
    assert np.abs(Kh - patch_kernel_direct(n, 13.2, B)).max() < 1e-11 * np.abs(Kh).max()
    assert np.allclose(Rh, stiffness(13.2, B), rtol=0, atol=1e-10)  # affine solution of a homogeneous patch


def fem_energy(eps_pl, G, macro):
    """Elastic energy of the periodic lattice at macroscopic strain ``macro`` (direct sparse FEM):
    U = 1/2 sum_e (eps0 - p_e) W C_e (eps0 - p_e) - 1/2 f^T K^-1 f, f = sum_e Bbar^T W C_e (p_e - eps0)."""
    import scipy.sparse.linalg as spla

    L = eps_pl.shape[0]
    Cs = stiffness_field(G, B, L * L)
    Kg, en = assemble(L, L, G, B, periodic=True)
    _, Bbar = element_matrices(1.0, 1.0)
    d = np.asarray(macro) - eps_pl.reshape(-1, 3)
    dofs = np.stack([2 * en, 2 * en + 1], axis=2).reshape(-1, 8)
    f = np.zeros(Kg.shape[0])
    np.add.at(f, dofs.ravel(), -np.einsum("dk,kl,elm,em->ed", Bbar.T, W, Cs, d).ravel())
    u = np.zeros_like(f)
    u[2:] = spla.spsolve(Kg[2:][:, 2:].tocsc(), f[2:])
    return 0.5 * np.einsum("ei,ij,ejk,ek->", d, W, Cs, d) - 0.5 * f @ u


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10**6), e=st.integers(0, 15), theta=st.floats(-np.pi / 2, np.pi / 2),
       u=st.floats(0.0, 1.0), gamma=st.floats(-0.05, 0.05))
def test_no_slip_dissipates_negatively(seed, e, theta, u, gamma):
    """A.7 with heterogeneous moduli: a slip dgamma M in element e with dgamma <= gamma_max = -2 tau / f_e(theta)
    (f_e of the element's own self-response) never raises the elastic energy at fixed macroscopic strain
    (direct FEM energy, independent of the influence matrix); at gamma_max the dissipation vanishes."""
    L = 4
    r = np.random.default_rng(seed)
    G = weibull_moduli(r, L * L, 18.4, 1.3)
    lat = HeterogeneousLattice(L, G, B)
    eps = r.normal(scale=0.02, size=(L * L, 3))
    macro = np.array([0.0, 0.0, gamma / 2])
    sig = apply(influence_matrix(L, G, B), eps) + gamma * lat.load
    M = 0.5 * np.array([-np.sin(2 * theta), np.sin(2 * theta), np.cos(2 * theta)])
    tau = M @ W @ sig[e]
    if tau <= 1e-3:
        theta += np.pi / 2  # the opposite system (tau -> -tau): slips are only loaded in their own sense
        M = -M
        tau = -tau
    c = lat.f_coef[e]
    f = c[0] + c[1] * np.cos(4 * theta) + c[2] * np.sin(4 * theta) + c[3] * np.cos(2 * theta) + c[4] * np.sin(2 * theta)
    assert f < 0
    gmax = -2 * tau / f
    U0 = fem_energy(eps.reshape(L, L, 3), G, macro)
    after = eps.copy()
    after[e] += u * gmax * M
    dissipation = U0 - fem_energy(after.reshape(L, L, 3), G, macro)
    scale = abs(tau * gmax) + 1e-12
    # the dissipation is a difference of two FEM energies: round-off of order eps |U0| besides 1e-9 of its size
    tol = 1e-9 * scale + 64 * np.finfo(float).eps * abs(U0)
    assert dissipation >= -tol
    assert dissipation == pytest.approx(tau * u * gmax + 0.5 * f * (u * gmax) ** 2, abs=tol)


P = EPMParams(L=6, l=6.6, N=12, k=2.0, lam=1.5, chi=2.0)
A = variant("A")


def test_aqs_state_equals_direct_fem_solve_and_skipping_is_exact():
    """After AQS from a stress-free state, the element stresses are the direct FEM solution of the heterogeneous
    lattice with that plastic strain at that macroscopic strain; skipping elastic steps = stepping, bit for bit."""
    m = Model(P, variant=A)
    runs = {}
    for skip in (True, False):
        st_, rng = m.new_state(4, 0)
        runs[skip] = (m.drive(st_, rng, 0.4, skip=skip), st_)
    (fast, sf), (slow, ss) = runs[True], runs[False]
    assert len(fast[0]) > 20
    for x, y in zip(fast, slow):
        assert np.array_equal(x, y)
    assert np.array_equal(sf.sig, ss.sig)
    G = sf.sample.shear_moduli.reshape(P.L, P.L)
    gamma = sf.step * 1e-4
    direct = solve_periodic_direct(sf.eps_pl.reshape(P.L, P.L, 3), G, P.B, macro=[0, 0, gamma / 2]).reshape(-1, 3)
    assert np.abs(direct - sf.stress(P.G)).max() < 1e-9
    assert fast[2][-1] == pytest.approx(direct[:, 2].mean(), abs=1e-10)  # Sigma_ext = mean element Sigma_xy
    # relaxed: no system active; between avalanches Sigma_ext rises by G_eff per unit strain
    lat = sf.sample.lattice
    full = sf.stress(P.G)
    s_ = sf.systems
    dt = s_.tau_c - (s_.a * (full[:, 0] - full[:, 1])[:, None] + s_.b * full[:, 2][:, None])
    assert dt.min() > 0
    steps, before, after, slips = fast
    assert np.allclose(before[1:] - after[:-1], lat.G_eff * 1e-4 * np.diff(steps), atol=1e-10)


def test_same_seed_same_sample_and_bits_across_batches_and_threads():
    kw = dict(seed=3, gamma_max=0.5, T_quench=0.25, variant=A, probe=ProbeSpec(n_list=(3,), alpha_deg=(0.0, 90.0)))
    a = run_ensemble(P, [0, 1], threads=2, **kw)
    b = run_ensemble(P, [1], **kw)
    pd.testing.assert_frame_equal(a.macro[a.macro.replica == 1].reset_index(drop=True), b.macro, check_exact=True)
    pd.testing.assert_frame_equal(a.probe[a.probe.replica == 1].reset_index(drop=True), b.probe, check_exact=True)
    s1, s2 = draw_sample(A, P, 3, 1), draw_sample(A, P, 3, 1)
    assert np.array_equal(s1.shear_moduli, s2.shear_moduli)
    assert not np.array_equal(s1.shear_moduli, draw_sample(A, P, 3, 2).shear_moduli)
    assert lattice(P.L, s1.shear_moduli, P.B) is s1.lattice  # built once per sample
    G = np.concatenate([draw_sample(A, P, 3, r).shear_moduli for r in range(40)])
    assert G.mean() == pytest.approx(18.4, rel=0.05)  # Weibull with the configured mean


def test_probe_of_a_heterogeneous_patch_uses_its_own_response():
    """Local shear test of model A: the onset strain of an n = 1 patch is the first activation under its own
    loading R M(alpha) (R = C_e: a single element with fixed boundary is affine), and of larger patches
    under R_x M(alpha) from the patch solve."""
    m = Model(P, variant=A)
    st_, rng = m.new_state(8, 0)
    m.drive(st_, rng, 0.3)
    alphas = np.array([0.0, 30.0, 90.0])
    out, corners = m.probe(st_, rng.copy(), [1, 2], alphas)
    full = st_.stress(P.G)
    s_ = st_.systems
    for q, al in enumerate(np.deg2rad(alphas)):
        Mv = 0.5 * np.array([-np.sin(2 * al), np.sin(2 * al), np.cos(2 * al)])
        for p, e in enumerate(corners):
            load = stiffness(st_.sample.shear_moduli[e], P.B) @ Mv
            rate = s_.a[e] * (load[0] - load[1]) + s_.b[e] * load[2]
            rem = s_.tau_c[e] - (s_.a[e] * (full[e, 0] - full[e, 1]) + s_.b[e] * full[e, 2])
            g = np.where(rate > 0, rem / np.where(rate > 0, rate, 1), np.inf).min()
            assert out[p, 0, q, 0] == pytest.approx(g, rel=1e-12)
    assert np.isfinite(out[:, 1, :, :10]).all() and (out[:, 1, :, 10] >= 1).all()
