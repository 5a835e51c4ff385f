"""The lambda profile of the meso step (epcal.lambda_profile) and the chi-profile fit (epcal.fits)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from epcal import fits
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
    """The surrogate at s == evaluating the table whose stresses (and strains) are scaled by s, for every
    bootstrap row (same EPM and reference draws as Evaluator.evaluate)."""
    ev, macro, probe = setup
    scales = np.array([0.85, 1.0, 1.2])
    prof = loss_profile(ev, macro, probe, scales, n_boot=6, seed=5)
    stress = ["tau_i", "tau_c", "delta_tau_c", "drop_tau_c"]
    for i, s in enumerate(scales):
        m = macro.assign(sigma_before=macro.sigma_before * s, sigma_after=macro.sigma_after * s,
                         gamma_ext=macro.gamma_ext * s)
        p = probe.assign(**{c: probe[c] * s for c in stress})
        full = ev.evaluate(m, p, n_boot=6, seed=5)
        # meso magnitudes scale exactly; the macro histograms up to values on a bin edge (test_losses)
        for key in ("L_meso_plus", "L_meso_minus"):
            np.testing.assert_allclose(prof[key][i], full[key].to_numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(prof["L_macro"][i], full["L_macro"].to_numpy(), atol=0.005)
        if s == 1.0:
            np.testing.assert_array_equal(prof["L_stat"][i], ev.evaluate(macro, probe, 6, 5)["L_stat"].to_numpy())


def test_meso_profile_minimum_is_the_exact_magnitude_ratio(setup):
    """With the macro part flat, L_meso(s) = mean_m |1 - s F_m / F_ref,m| is minimal at a weighted
    median of F_ref,m / F_m; a shift of the EPM's stresses by 10 % is undone by s = 1 / 1.1."""
    ev, macro, probe = setup
    scales = scale_grid({"min": 0.8, "max": 1.25, "num": 181})
    ref_probe = ev.ref.probe
    ep = ref_probe.assign(**{c: ref_probe[c] * 1.1 for c in ("tau_i", "tau_c", "delta_tau_c", "drop_tau_c")})
    prof = loss_profile(ev, macro, ep, scales, n_boot=0, seed=0)
    j = int(np.argmin(prof["L_meso_plus"][:, 0] + prof["L_meso_minus"][:, 0]))
    assert scales[j] == pytest.approx(1 / 1.1, rel=0.003)


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
