"""Local shear test: exact onset, analytic relations, slow reference path, determinism."""
import numpy as np
import pytest

from epcal.elastic import ddot, slip_tensor
from epcal.kernel_cache import patch_kernel
from epcal.params import EPMParams, patch_radius
from epcal.simulate import Model, rng_for
from epcal.slip import renew_element, renewal_work, slip_amplitude
from epcal.observables import probe_frame
from epcal.schema import PROBE, check_table

P = EPMParams(L=8, l=6.6, N=12, k=2.0, lam=1.5, chi=2.0)


@pytest.fixture(scope="module")
def sheared():
    model = Model(P)
    rng = rng_for(P, 3, 0, 0)
    st = model.random_state(rng)
    model.drive(st, rng, 0.8)
    return model, st


def test_onset_is_exact_and_relations_hold(sheared):
    model, st = sheared
    n_list, alpha = [1, 2, 4], [0.0, 30.0, 90.0, 135.0]
    out, corners = model.probe(st, rng_for(P, 1, 0, 9), n_list, alpha)
    df = probe_frame(out, state="stationary", replica=0, corners=corners, L=P.L, l=P.l, n_list=n_list,
                     alpha_deg=alpha)
    assert check_table(df, PROBE) == []
    # Delta tau^c = G gamma_c: the affine load adds gamma C:M(alpha) and M:C:M = G
    assert np.allclose(df.delta_tau_c, P.G * df.gamma_c, rtol=1e-12, atol=1e-12)
    assert np.all(df.gamma_c > 0)
    # the patch stress at the onset differs from the initial one by gamma_c 2G M(alpha) only
    M = slip_tensor(np.deg2rad(df.alpha.to_numpy()))
    dS = df[["sxx_c", "syy_c", "sxy_c"]].to_numpy() - df[["sxx_i", "syy_i", "sxy_i"]].to_numpy()
    assert np.allclose(dS, 2 * P.G * df.gamma_c.to_numpy()[:, None] * M, atol=1e-12)
    # exactness: just below gamma_c no system of the patch is active, at gamma_c one is at threshold
    full = st.stress(P.G)
    sys = st.systems
    for _, row in df.sample(40, random_state=0).iterrows():
        n = int(row.n)
        ci, cj = int(round(row.x / P.l - n / 2)) % P.L, int(round(row.y / P.l - n / 2)) % P.L
        elems = [((ci + u) % P.L) * P.L + (cj + v) % P.L for u in range(n) for v in range(n)]
        Ma = slip_tensor(np.deg2rad(row.alpha))
        best = np.inf
        for e in elems:
            s = full[e] + row.gamma_c * 2 * P.G * Ma
            tau = sys.a[e] * (s[0] - s[1]) + sys.b[e] * s[2]
            best = min(best, (sys.tau_c[e] - tau).min())
        assert abs(best) < 1e-9


def test_onset_minimum_over_contained_patches(sheared):
    """An n x n patch contains the 1 x 1 patches at its elements: its onset is their minimum."""
    model, st = sheared
    out, corners = model.probe(st, rng_for(P, 1, 0, 1), [1, 3], [0.0, 90.0])
    g1 = out[:, 0, :, 0]  # (corner, alpha)
    for p, c in enumerate(corners):
        ci, cj = divmod(int(c), P.L)
        elems = [((ci + u) % P.L) * P.L + (cj + v) % P.L for u in range(3) for v in range(3)]
        idx = [int(np.flatnonzero(corners == e)[0]) for e in elems]
        assert np.allclose(out[p, 1, :, 0], g1[idx].min(axis=0))


def slow_patch_test(st, model, corner, n, alpha_deg, rng):
    """Plain numpy reference of one local shear test (same rules and random-number order)."""
    p = model.params
    sys = st.systems
    full = st.stress(p.G)
    ci, cj = divmod(corner, p.L)
    elems = [((ci + u) % p.L) * p.L + (cj + v) % p.L for u in range(n) for v in range(n)]
    th = [sys.theta[e].copy() for e in elems]
    tc = [sys.tau_c[e].copy() for e in elems]
    a = [sys.a[e].copy() for e in elems]
    b = [sys.b[e].copy() for e in elems]
    gc = [sys.gamma_max_coef[e].copy() for e in elems]
    Ma = slip_tensor(np.deg2rad(alpha_deg))
    c = np.array([bb * np.cos(2 * np.deg2rad(alpha_deg)) - 2 * aa * np.sin(2 * np.deg2rad(alpha_deg))
                  for aa, bb in zip(a, b)])
    sig = np.array([full[e] for e in elems])
    rem = np.array([tc[x] - (a[x] * (sig[x, 0] - sig[x, 1]) + b[x] * sig[x, 2]) for x in range(n * n)])
    with np.errstate(divide="ignore", invalid="ignore"):
        g = np.where(c > 0, rem / (p.G * c), np.inf)
    gamma_c = g.min()
    trig, trig_s = np.unravel_index(np.argmin(g), g.shape)
    sig = sig + gamma_c * 2 * p.G * Ma
    Kp = patch_kernel(n, p.G, p.B)
    first = True
    while True:
        act = []
        for x in range(n * n):
            dt = tc[x] - (a[x] * (sig[x, 0] - sig[x, 1]) + b[x] * sig[x, 2])
            s = int(np.argmin(dt))
            best = dt[s]
            if first and x == trig and best > 0:
                s, best = trig_s, 0.0
            if best <= 0:
                f_patch = ddot(slip_tensor(th[x][s]), Kp[x, x] @ slip_tensor(th[x][s]))
                act.append((x, s, slip_amplitude(rng, -2 * (tc[x][s] - best) / f_patch, p.chi)))
        first = False
        if not act:
            break
        for x, s, dg in act:
            eps = dg * np.array([a[x][s], -a[x][s], 0.5 * b[x][s]])
            sig += np.einsum("ayz,z->ay", Kp[:, x], eps)
        for x, s, dg in act:
            arrs = [np.zeros((1, p.N)) for _ in range(5)]
            renew_element(rng, *arrs, 0, p.k, p.lam, model.f_coef, renewal_work(p.N))
            th[x], tc[x], a[x], b[x], gc[x] = (arr[0] for arr in arrs)
    return gamma_c, sig.mean(0)


def test_patch_slips_never_dissipate_negatively(sheared):
    """With the patch's own f_x, every slip in a local test satisfies Eq. (14)."""
    model, st = sheared
    n = 3
    Kp = patch_kernel(n, P.G, P.B)
    rng = np.random.default_rng(1)
    for x in range(n * n):
        for th in rng.uniform(-np.pi / 2, np.pi / 2, 20):
            M = slip_tensor(th)
            f = ddot(M, Kp[x, x] @ M)
            tau = rng.uniform(0.1, 2)
            gmax = -2 * tau / f
            sig = 2 * tau * M
            assert ddot(sig + 0.5 * Kp[x, x] @ (gmax * M), gmax * M) == pytest.approx(0, abs=1e-9)
            assert ddot(sig + 0.5 * Kp[x, x] @ (0.7 * gmax * M), 0.7 * gmax * M) > 0


def test_fast_probe_equals_slow_reference(sheared):
    model, st = sheared
    for corner, n, alpha in [(0, 1, 0.0), (5, 2, 90.0), (17, 4, 45.0), (63, 5, 120.0), (30, 8, 0.0)]:
        fast, _ = model.probe(st, rng_for(P, 2, corner, 0), [n], [alpha], corners=np.array([corner]))
        gamma_c, sf = slow_patch_test(st, model, corner, n, alpha, rng_for(P, 2, corner, 0))
        assert fast[0, 0, 0, 0] == pytest.approx(gamma_c, rel=1e-12)
        assert np.allclose(fast[0, 0, 0, 7:10], sf, rtol=1e-9, atol=1e-12)


def test_probe_leaves_state_untouched_and_is_deterministic(sheared):
    model, st = sheared
    before = (st.sig.copy(), st.systems.tau_c.copy())
    a, _ = model.probe(st, rng_for(P, 1, 0, 5), [2, 4], [0.0, 90.0])
    b, _ = model.probe(st, rng_for(P, 1, 0, 5), [2, 4], [0.0, 90.0])
    assert np.array_equal(a, b)
    assert np.array_equal(before[0], st.sig) and np.array_equal(before[1], st.systems.tau_c)


#: Table 1 of the paper, typed in from the paper: (l, L_EP, N, n(R = 30))
PAPER_TABLE1 = [(3.5, 29, 8, 15), (4.4, 23, 16, 12), (6.6, 15, 36, 8), (8.8, 11, 64, 6), (10.5, 9, 92, 5),
                (13.2, 8, 144, 4)]


@pytest.mark.parametrize("l, L_EP, N, n30", PAPER_TABLE1)
def test_table1_reproduced_at_the_paper_domain(l, L_EP, N, n30):
    from epcal.params import DOMAIN_LENGTH, RULE_TABLE1, lattice_rule

    p = EPMParams.for_element_length(l, 2, 2, 2)
    assert (p.L, p.N, p.patch_size(30.0)) == (L_EP, N, n30)
    # the element side the lattice really has: the domain divided by L_EP
    assert p.l == pytest.approx(DOMAIN_LENGTH / L_EP, rel=1e-15)
    assert lattice_rule(l) == RULE_TABLE1
    # R = l n / sqrt(pi) with that side
    assert patch_radius(n30, p.l) == pytest.approx(DOMAIN_LENGTH / L_EP * n30 / np.sqrt(np.pi))


def test_lattice_rule_off_the_paper_domain():
    """Any other domain: L_EP = round(L / l), N = rho_s l^2 to a multiple of 4, n nearest R; stated."""
    from epcal.params import RULE_OTHER, lattice_rule

    p = EPMParams.for_element_length(6.6, 2, 2, 2, domain_length=39.5218)
    assert (p.L, p.N) == (6, 36) and p.l == pytest.approx(39.5218 / 6)
    assert p.patch_size(15.0) == round(15.0 * np.sqrt(np.pi) / p.l)
    assert lattice_rule(6.6, 39.5218) == RULE_OTHER
    # an l that is not in Table 1 on the paper's domain follows the rule too
    q = EPMParams.for_element_length(5.0, 2, 2, 2)
    assert (q.L, q.N) == (20, 20) and lattice_rule(5.0) == RULE_OTHER
