"""Model variants of appendix A.8 (epcal.variants): kernels, slip systems, amplitudes, runs."""
import dataclasses

import numpy as np
import pytest

from epcal.dynamics import redistribute, reduce_kernel, wrap_kernel
from epcal.kernel_cache import periodic_kernel
from epcal.observables import macro_summary
from epcal.params import EPMParams
from epcal.simulate import Model, ProbeSpec, rng_for, run_ensemble
from epcal.slip import make_rng_state
from epcal.variants import VARIANT_NAMES, variant

P = EPMParams(L=10, l=6.6, N=12, k=2.2, lam=2.0, chi=2.25)
EXTRA = {"E": dict(tau_c=1.0), "F": dict(dgamma_pl=0.02), "G": dict(dgamma_pl=0.02), "H": dict(tau_c=0.5, dgamma_pl=0.02)}
IMPLEMENTED = ("A", "B", "C", "D", "E", "F", "G", "H", "I")


def test_registry_and_clear_errors():
    assert set(IMPLEMENTED) == set(VARIANT_NAMES)
    a, b = variant("A"), variant("B")
    assert (a.G_mean, a.G_shape, a.alpha_p) == (18.4, 1.3, None) and a.heterogeneous  # A.8.1
    assert (b.alpha_p, b.p_mean, b.p_std, b.G_mean) == (0.2, 1.95, 0.22, None) and b.pressure_sensitive  # A.8.2
    assert a.free_parameters == b.free_parameters == ("k", "lam", "chi")  # alpha_p is fixed in B (A.8.2)
    with pytest.raises(ValueError, match="G_shape = -1"):
        variant("A", G_shape=-1)
    with pytest.raises(ValueError, match="p_std = -0.1"):
        variant("B", p_std=-0.1)
    # a measured alpha_p compatible with zero may be negative (alpha_p: auto on a twin, say)
    assert variant("B", alpha_p=-0.02).alpha_p == -0.02
    with pytest.raises(ValueError, match="alpha_p = nan: expected a finite number$"):
        variant("B", alpha_p=float("nan"))
    with pytest.raises(ValueError, match="not implemented"):
        dataclasses.replace(a, alpha_p=0.2, p_mean=0.0, p_std=0.0).validate()
    with pytest.raises(ValueError, match="expected one of"):
        variant("Z")
    with pytest.raises(ValueError, match="tau_c = None.*--tau-c"):
        variant("E")
    with pytest.raises(ValueError, match="dgamma_pl = -0.1"):
        variant("F", dgamma_pl=-0.1)
    assert variant("C").free_parameters == ("k", "lam", "chi")
    assert variant("E", tau_c=1).free_parameters == ("tau_c", "chi")
    assert variant("F", dgamma_pl=0.1).free_parameters == ("k", "lam", "dgamma_pl")
    assert variant("H", tau_c=1, dgamma_pl=0.1).free_parameters == ("tau_c", "dgamma_pl")


def _one_slip(kernel, e=17, seed=3):
    L = 10
    Kd, Kx = (wrap_kernel(k) for k in reduce_kernel(periodic_kernel(L, 13.2, 59.0)))
    sig = np.zeros((L * L, 3))
    eps = np.zeros((L * L, 3))
    opts = variant(kernel).options()
    redistribute(sig, eps, Kd, Kx, L, e, 0.05, 0.3, -0.7, opts, make_rng_state(seed), np.empty((L * L, 3)),
                 np.empty(L * L, np.int64))
    return sig, eps


def test_shuffled_and_mean_field_kernels_keep_own_change_and_sum():
    ref, eps_ref = _one_slip("C")
    e = 17
    for name in ("D", "I"):
        d, eps = _one_slip(name)
        assert np.array_equal(eps, eps_ref)                       # the plastic strain is the slip's
        assert np.allclose(d[e], ref[e], rtol=0, atol=1e-15)      # own change not shuffled/averaged
        assert np.allclose(d.sum(0), ref.sum(0), rtol=0, atol=1e-13)  # sum rule: -C:deps_pl in total
    others = np.delete(np.arange(100), e)
    # shuffled: the same multiset of changes, at other places
    d, _ = _one_slip("D")
    key = lambda a: a[np.lexsort(a.T[::-1])]  # noqa: E731
    assert np.array_equal(key(d[others]), key(ref[others]))
    assert not np.array_equal(d[others], ref[others])
    # a new permutation per slip: another stream gives another assignment
    d2, _ = _one_slip("D", seed=4)
    assert not np.array_equal(d[others], d2[others])
    # mean field: one identical change everywhere else, the mean of the Eshelby changes
    m, _ = _one_slip("I")
    assert np.allclose(m[others], ref[others].mean(0), rtol=0, atol=1e-15)


def test_shuffled_kernel_sends_each_change_uniformly():
    """Chi-square: where does the change of one source element land?  Uniform over the E - 1 others."""
    L = 4
    Kd, Kx = (wrap_kernel(k) for k in reduce_kernel(periodic_kernel(L, 13.2, 59.0)))
    opts = variant("D").options()
    rng = make_rng_state(8)
    base = np.zeros((L * L, 3))
    src_val = None
    hits = np.zeros(L * L)
    scratch, perm = np.empty((L * L, 3)), np.empty(L * L, np.int64)
    n = 6000
    for _ in range(n):
        sig = base.copy()
        redistribute(sig, np.zeros((L * L, 3)), Kd, Kx, L, 0, 1.0, 0.0, 1.0, opts, rng, scratch, perm)
        if src_val is None:
            ref = base.copy()
            redistribute(ref, np.zeros((L * L, 3)), Kd, Kx, L, 0, 1.0, 0.0, 1.0, variant("C").options(), rng,
                         scratch, perm)
            src_val = ref[5]
        hits[np.flatnonzero(np.all(sig == src_val, axis=1))] += 1
    assert hits[0] == 0 and hits.sum() == n
    expected = n / (L * L - 1)
    chi2 = ((hits[1:] - expected) ** 2 / expected).sum()
    assert chi2 < 40  # 14 degrees of freedom: P(chi2 > 40) ~ 2e-4


def _model(name):
    return Model(P, variant=variant(name, **EXTRA.get(name, {})))


def test_two_system_variants_systems_thresholds_and_constant_amplitude():
    for name in ("F", "H"):
        m = _model(name)
        rng = rng_for(P, 5, 0, 0)
        st = m.random_state(rng)
        s = st.systems
        assert s.theta.shape == (100, 2)
        assert np.all(s.theta[:, 0] == 0.0) and np.allclose(s.theta[:, 1], np.pi / 2)
        assert np.array_equal(s.tau_c[:, 0], s.tau_c[:, 1])
        recs = m.drive(st, rng, 1.0)
        assert recs[3].sum() > 100
        # slips only on xy, each of amplitude exactly dgamma_pl: eps_pl_xy in multiples of dgamma_pl / 2
        assert np.all(st.eps_pl[:, :2] == 0.0)
        units = st.eps_pl[:, 2] / (0.5 * 0.02)
        assert np.allclose(units, np.round(units), atol=1e-9)
        assert np.array_equal(s.tau_c[:, 0], s.tau_c[:, 1])
        if name == "H":
            assert np.all(s.tau_c == 0.5)
        else:
            assert np.unique(s.tau_c).size > 50  # renewed Weibull thresholds


def test_fixed_thresholds_never_evolve():
    m = _model("E")
    rng = rng_for(P, 6, 0, 0)
    st = m.random_state(rng)
    m.quench(st, 0.25, rng)
    recs = m.drive(st, rng, 1.0)
    assert recs[3].sum() > 100
    assert np.all(st.systems.tau_c == 1.0)
    assert np.unique(st.systems.theta).size > 100  # orientations still renewed


@pytest.mark.parametrize("name", IMPLEMENTED)
def test_every_variant_flows_reproducibly(name):
    v = variant(name, **EXTRA.get(name, {}))
    kw = dict(seed=7, gamma_max=1.0, T_quench=0.25, probe=ProbeSpec(n_list=(2,), alpha_deg=(0.0, 90.0)), variant=v)
    a = run_ensemble(P, [0, 1], **kw)
    b = run_ensemble(P, [1], **kw)
    assert a.macro[a.macro.replica == 1].reset_index(drop=True).equals(b.macro.reset_index(drop=True))
    s = macro_summary(a.macro, gamma_min=0.5)
    assert s["sigma_mean"] > 0 and s["drops_per_strain"] > 10
    assert a.probe["tau_c"].notna().all() and a.meta["variant"]["name"] == name


def test_mean_field_avalanches_are_smaller_than_with_eshelby_kernel():
    """Without the Eshelby kernel's fluctuations (I) avalanches stay small: smaller, more frequent
    stress drops and a smoother flow curve than C (section 6; measured at this size: drop mean
    0.017 vs 0.051, std 0.059 vs 0.103 over 8 replicas; the bounds leave a wide margin)."""
    out = {}
    for name in ("C", "I"):
        ens = run_ensemble(P, range(4), seed=9, gamma_max=2.0, variant=variant(name))
        s = [macro_summary(g) for _, g in ens.macro.groupby("replica")]
        out[name] = {k: np.mean([x[k] for x in s]) for k in ("drop_mean", "sigma_std", "drops_per_strain")}
    assert out["I"]["drop_mean"] < 0.6 * out["C"]["drop_mean"]
    assert out["I"]["sigma_std"] < 0.8 * out["C"]["sigma_std"]
    assert out["I"]["drops_per_strain"] > 1.5 * out["C"]["drops_per_strain"]
