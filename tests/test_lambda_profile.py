"""The lambda profile of the meso step (epcal.lambda_profile) and the chi-profile fit (epcal.fits)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from epcal import fits
from epcal import histograms as Hi
from epcal import losses as Lo
from epcal.lambda_profile import loss_profile, profile_minimum, scale_grid
from epcal.refdir import read_reference
from epcal.stages.meso import valley_lambda
from test_losses import probe_table, sawtooth, write_reference


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    ref = read_reference(write_reference(tmp_path_factory.mktemp("ref") / "ref", sawtooth(4, 900, 11),
                                         probe_table(4, 11)))
    ev = Lo.Evaluator(ref, Lo.LossSettings(R=30.0))
    return ev, sawtooth(n_rep=5, n_av=900, seed=3), probe_table(5, seed=4, shift=0.1)


def test_profile_at_one_is_the_evaluation_and_equals_scaled_tables(setup):
    """At s = 1 the profile is Evaluator.evaluate, row for row; at any s its meso losses are those of
    the table whose stresses are scaled by s (exactly), and its sigma and drop losses those of the
    scaled macro table (up to values lying on a bin edge); L_macro is macro_losses_scaled's."""
    ev, macro, probe = setup
    scales = np.array([0.85, 1.0, 1.2])
    _, prof = loss_profile(ev, macro, probe, scales, n_boot=6, seed=5)
    np.testing.assert_array_equal(prof["L_stat"][1], ev.evaluate(macro, probe, 6, 5)["L_stat"].to_numpy())
    stress = ["tau_i", "tau_c", "delta_tau_c", "drop_tau_c"]
    obs = Lo.macro_observables(macro, 0.0)
    replicas = np.unique(macro["replica"].to_numpy(np.int64))
    _, _, W, V = ev.design(len(replicas), 6, 5)
    for i, s in enumerate(scales):
        m = macro.assign(sigma_before=macro.sigma_before * s, sigma_after=macro.sigma_after * s,
                         gamma_ext=macro.gamma_ext * s)
        p = probe.assign(**{c: probe[c] * s for c in stress})
        full = ev.evaluate(m, p, n_boot=6, seed=5)
        for key in ("L_meso_plus", "L_meso_minus"):
            np.testing.assert_allclose(prof[key][i], full[key].to_numpy(), rtol=1e-10, atol=1e-12)
        surrogate = ev.macro_losses_scaled(obs, s, replicas, W, V["sample"])
        for key in ("L_sigma", "L_drop"):
            np.testing.assert_allclose(surrogate[key], full[key].to_numpy(), atol=0.005)
        np.testing.assert_array_equal(prof["L_macro"][i], surrogate["L_macro"])


def test_scaled_increments_stay_quantized_and_match_the_scaled_process(setup):
    """Increments are m quanta (q = G dgamma) where the distance to the next activation g/q lay in
    (m - 1, m]; the process at lambda s has ceil(s g / q) quanta.  The requantized surrogate from m
    is exact at s = 1, stays on the lattice, and its overlap loss against an independent sample of
    the true scaled process is at the two-sample floor, where plain scaling (off the lattice, aliased
    against whole-quantum bins) is not."""
    ev = setup[0]
    q = ev.incr_quantum
    rng = np.random.default_rng(11)
    g = rng.gamma(2.0, 6.0, 40000)  # distances to the next activation, in quanta
    m = np.ceil(g)
    assert np.array_equal(ev.scaled_values("incr", m * q, 1.0), m * q)
    for s in (0.9, 1.13):
        sur = ev.scaled_values("incr", m * q, s)
        np.testing.assert_allclose(sur / q, np.rint(sur / q), atol=1e-9)
        truth = np.ceil(s * rng.gamma(2.0, 6.0, 40000)) * q  # an independent sample at lambda s
        other = np.ceil(s * rng.gamma(2.0, 6.0, 40000)) * q
        t = Hi.HistogramTarget(truth, Hi.reference_bins(truth, 2000, q))
        floor = t.loss(other)
        assert t.loss(sur) < floor + 0.01
        assert t.loss(m * q * s) > t.loss(sur) + 0.02
        assert ev.scaled_values("drop", np.array([0.5]), s)[0] == 0.5 * s


def test_meso_profile_minimum_is_the_weighted_median_ratio(setup):
    """L_meso(s) = mean_m |1 - s c_m| (c_m = F_m / F_ref,m) is minimal at the weighted median of 1/c_m
    with weights c_m: each quantity scaled by its own factor c (mean and std alike) puts it at
    1 / 1.2 for c = (1.1, 1.2, 0.9, 1.3)."""
    ev, macro, _ = setup
    scales = scale_grid({"min": 0.8, "max": 1.25, "num": 181})
    c = {"tau_i": 1.1, "tau_c": 1.2, "delta_tau_c": 0.9, "drop_tau_c": 1.3}
    ep = ev.ref.probe.assign(**{k: ev.ref.probe[k] * v for k, v in c.items()})
    _, prof = loss_profile(ev, macro, ep, scales, n_boot=0, seed=0)
    inv, w = 1 / np.array(list(c.values())), np.array(list(c.values()))
    o = np.argsort(inv)
    expect = inv[o][np.searchsorted(np.cumsum(w[o]), w.sum() / 2)]
    for key in ("L_meso_plus", "L_meso_minus"):
        assert scales[int(np.argmin(prof[key][:, 0]))] == pytest.approx(expect, rel=0.003)
    assert expect == pytest.approx(1 / 1.2)


def test_profile_minimum_and_edges():
    scales = np.array([0.9, 1.0, 1.1])
    L = np.array([[0.3, 0.1, 0.5], [0.2, 0.2, 0.4], [0.25, 0.3, 0.1]])
    prof = {k: L for k in ("L_macro", "L_meso_plus", "L_meso_minus", "L_stat")}
    m = profile_minimum(prof, scales)
    np.testing.assert_array_equal(m["scale_prof"], [1.0, 0.9, 1.1])
    np.testing.assert_array_equal(m["prof_edge"], [False, True, True])
    np.testing.assert_array_equal(m["L_stat_prof"], [0.2, 0.1, 0.1])


def test_scale_grid_contains_one_and_rejects_bad_ranges():
    assert 1.0 in scale_grid({"min": 0.8, "max": 1.25, "num": 60})
    for bad in ({"min": 1.1, "max": 1.3}, {"min": 0.8, "max": 0.9}, {"num": 2}):
        with pytest.raises(ValueError, match="meso.lam_profile"):
            scale_grid(bad)


def test_valley_lambda_follows_the_surrogate_valley():
    chis = [1.0, 1.5, 2.0, 3.0]
    lam_star = {1.0: 4.0, 1.5: 3.0, 2.0: 2.5, 3.0: 2.0}
    rows = [dict(boot=-1, stage="surrogate", chi=c, lam=lam, L_macro=abs(np.log(lam / lam_star[c])))
            for c in chis for lam in np.geomspace(1.0, 6.0, 200)]
    cell = pd.DataFrame(rows)
    lam_b = 2.55  # the true best point near the surrogate minimum at chi = 2
    got = valley_lambda(cell, 2.5, lam_b, 2.0)
    lam_grid = np.geomspace(1.0, 6.0, 200)
    mins = {c: lam_grid[np.argmin(np.abs(np.log(lam_grid / lam_star[c])))] for c in chis}
    expect = lam_b * np.exp(0.5 * (np.log(mins[2.0]) + np.log(mins[3.0])) - np.log(mins[2.0]))
    assert got == pytest.approx(expect, rel=1e-12)
    # beyond the scanned chi the end segment continues (not a constant)
    beyond = valley_lambda(cell, 3.5, lam_b, 2.0)
    slope = (np.log(mins[3.0]) - np.log(mins[2.0])) / 1.0
    assert beyond == pytest.approx(lam_b * np.exp(np.log(mins[3.0]) + 0.5 * slope - np.log(mins[2.0])), rel=1e-12)
    assert valley_lambda(cell.iloc[:0], 2.5, lam_b, 2.0) == lam_b


def profile_losses(k0=2.1, chi0=2.2, u0=np.log(2.0), noise=0.01, n_boot=30, seed=0):
    """Meso rows with lambda profiles: the profile minimum L(k, chi) = 0.1 + 0.2 (k - k0)^2 + 0.3 (chi -
    chi_k)^2 (chi_k = chi0 exp(-0.15 (k - k0)), log-linear as the fit's interpolation), the profile's lambda exp(u0 - 0.4 (k - k0) - 0.2 (chi - chi_k));
    candidates at 5 chi per k; noise on the loss of every bootstrap row."""
    rng = np.random.default_rng(seed)
    rows = []
    for k in np.round(np.arange(1.0, 3.0001, 0.25), 2):
        chi_k = chi0 * np.exp(-0.15 * (k - k0))
        for chi in np.round(chi_k + np.array([-0.6, -0.3, 0.0, 0.3, 0.6]), 4):
            base = 0.1 + 0.2 * (k - k0) ** 2 + 0.3 * (chi - chi_k) ** 2
            lam = float(np.exp(u0 - 0.4 * (k - k0) - 0.2 * (chi - chi_k)))
            for b in range(-1, 3 * n_boot):
                kind = "full" if b == -1 else ("joint", "epm", "reference")[b // n_boot]
                e = 0.0 if b == -1 else rng.normal(0, noise)
                rows.append(dict(l=6.6, k=k, lam=round(lam * 1.03, 4), chi=chi, boot=b, resample=kind,
                                 L_stat=base + 0.05, L_macro=base, L_meso_plus=base, L_meso_minus=base,
                                 lam_prof=lam, L_stat_prof=base + e, L_macro_prof=base, L_meso_plus_prof=base,
                                 L_meso_minus_prof=base))
    return pd.DataFrame(rows)


@settings(max_examples=20, deadline=None)
@given(st.floats(1.5, 2.6), st.floats(1.6, 2.8))
def test_chi_profile_recovers_the_optimum_exactly(k0, chi0):
    """Noiseless quadratic profiles: the chi vertex per k, then the k parabola, are exact; lambda is the
    profile's lambda at (k_hat, chi_hat) up to the log-linear interpolation between candidates."""
    opt = fits.fit_optimum(profile_losses(k0, chi0, noise=0.0, n_boot=1), half_width=0.5,
                           interp="log_regression", per_k="chi_profile", chi_half_width=0.4).iloc[0]
    assert opt["k_hat"] == pytest.approx(k0, abs=1e-6)
    assert opt["chi_hat"] == pytest.approx(chi0, abs=1e-6)
    assert opt["lam_hat"] == pytest.approx(2.0, rel=1e-6)
    assert opt["k_hat_status"] == "estimate" and opt["chi_bound_frac"] == 0.0


def test_chi_profile_bootstrap_is_not_confined_to_the_candidates():
    """The per-k chi of the bootstrap rows varies continuously (the former argmin could only return one of
    the 5 candidate chi), and the spread of chi_hat follows the noise."""
    df = profile_losses(noise=0.01)
    sel = fits.select_chi_profile(df, 0.4)
    cands = set(df["chi"].round(4))
    assert (~sel["chi"].round(4).isin(cands)).mean() > 0.9
    loud = fits.fit_optimum(df, 0.5, "log_regression", "chi_profile", 0.4).iloc[0]
    quiet = fits.fit_optimum(profile_losses(noise=0.002), 0.5, "log_regression", "chi_profile", 0.4).iloc[0]
    assert 0 < quiet["chi_hat_err"] < loud["chi_hat_err"]
    assert abs(loud["chi_hat"] - 2.2) < 3 * loud["chi_hat_err"]


def test_chi_profile_needs_the_profile_columns():
    df = profile_losses(n_boot=1).drop(columns=["lam_prof"])
    with pytest.raises(ValueError, match="meso.lam_profile"):
        fits.fit_optimum(df, per_k="chi_profile")
    with pytest.raises(ValueError, match="fit.per_k"):
        fits.fit_optimum(df, per_k="best")


def one_k(chis, L, lam=None, edge=None):
    """The profile rows of one (l, k, boot)."""
    chis = np.asarray(chis, float)
    lam = np.exp(-0.2 * chis) if lam is None else np.asarray(lam, float)
    d = pd.DataFrame({"chi": chis, "L_stat_prof": L, "lam_prof": lam, "L_macro_prof": L,
                      "L_meso_plus_prof": L, "L_meso_minus_prof": L})
    if edge is not None:
        d["prof_edge"] = edge
    return d


def test_chi_profile_uneven_candidates_duplicates_edges_and_few_chi():
    chis = np.array([1.5, 1.7, 1.95, 2.3, 2.45])  # uneven, vertex 1.83 off every candidate
    L = 0.1 + 0.4 * (chis - 1.83) ** 2
    r = fits.chi_profile_one(one_k(chis, L), 0.5)
    assert r["chi"] == pytest.approx(1.83, abs=1e-9) and r["chi_status"] == "estimate"
    assert r["lam"] == pytest.approx(np.exp(np.interp(1.83, chis, -0.2 * chis)), rel=1e-12)
    assert r["L_stat"] == pytest.approx(0.1, abs=1e-9)
    assert r["L_stat"] == pytest.approx(0.5 * (r["L_macro"] + 0.5 * (r["L_meso_plus"] + r["L_meso_minus"])))
    # a duplicate chi counts once, with its lower loss
    dup = one_k(np.append(chis, 1.95), np.append(L, L[2] + 0.3))
    assert fits.chi_profile_one(dup, 0.5)["chi"] == pytest.approx(1.83, abs=1e-9)
    # a candidate whose profile minimum is at its grid's end is a bound: left out (3 chi remain)
    bad = L.copy()
    bad[1] = 0.0
    edged = fits.chi_profile_one(one_k(chis, bad, edge=[False, True, False, False, False]), 0.5)
    assert edged["chi"] == pytest.approx(1.83, abs=1e-9)
    # NaN rows are ignored; with 2 chi there is no parabola: the lower one, flagged
    two = fits.chi_profile_one(one_k([1.5, 2.0, 2.5], [0.2, 0.1, np.nan]), 0.5)
    assert two["chi"] == 2.0 and two["chi_status"] == "not_convex" and two["L_stat"] == 0.1
    one = fits.chi_profile_one(one_k([2.0], [0.1]), 0.5)
    assert one["chi"] == 2.0 and one["chi_status"] == "not_convex"
    # a vertex beyond the candidates is clipped and reported as a bound
    far = fits.chi_profile_one(one_k(chis, 0.1 + 0.4 * (chis - 1.2) ** 2), 0.5)
    assert far["chi"] == 1.5 and far["chi_status"] == "at_lower_edge"


def test_refined_profile_adds_scales_around_the_minima_only(setup):
    """The refined grid keeps every coarse scale with its values and adds scales strictly between the
    grid neighbours of the rows' minima; the minimum can only get lower."""
    ev, macro, probe = setup
    coarse = scale_grid({"min": 0.8, "max": 1.25, "num": 21})
    sc0, p0 = loss_profile(ev, macro, probe, coarse, n_boot=4, seed=2)
    sc1, p1 = loss_profile(ev, macro, probe, coarse, n_boot=4, seed=2, refine=15)
    assert np.array_equal(sc0, coarse) and coarse.size + 10 <= sc1.size <= coarse.size + 15
    assert np.all(np.diff(sc1) > 0)  # (a new scale equal to a coarse one is not added twice)
    keep = np.isin(sc1, coarse)
    np.testing.assert_array_equal(p1["L_stat"][keep], p0["L_stat"])
    j = np.argmin(p0["L_stat"], axis=0)
    new = sc1[~keep]
    assert new.min() > coarse[max(j.min() - 1, 0)] and new.max() < coarse[min(j.max() + 1, coarse.size - 1)]
    assert np.all(p1["L_stat"].min(axis=0) <= p0["L_stat"].min(axis=0))
