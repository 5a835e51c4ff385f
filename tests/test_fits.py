"""Parabola fit, interpolation and bootstrap errors (epcal.fits)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from epcal import fits


@settings(max_examples=40, deadline=None)
@given(st.floats(1.2, 2.8), st.floats(0.05, 2.0), st.floats(0.0, 0.5))
def test_parabola_recovers_vertex(k0, c, L0):
    k = np.round(np.arange(1.0, 3.0001, 0.05), 2)
    L = L0 + c * (k - k0) ** 2
    f = fits.fit_parabola(k, L, half_width=0.5)
    assert f.convex
    assert f.k_hat == pytest.approx(k0, abs=1e-6)
    assert f.L_hat == pytest.approx(L0, abs=1e-8)


def test_parabola_edge_and_concave():
    k = np.linspace(1, 3, 9)
    f = fits.fit_parabola(k, (k - 0.0) ** 2, half_width=None)  # vertex outside: clipped
    assert f.k_hat == pytest.approx(1.0)
    f = fits.fit_parabola(k, -(k - 2) ** 2)  # no minimum: discrete minimum
    assert not f.convex and f.k_hat in (1.0, 3.0)
    f = fits.fit_parabola([1.0, 2.0], [0.3, 0.2])
    assert not f.convex and f.k_hat == 2.0


@settings(max_examples=40, deadline=None)
@given(st.floats(1.5, 2.5), st.floats(0.05, 2.0), st.floats(-0.3, 0.3), st.floats(0.0, 0.5))
def test_cubic_recovers_the_minimum_of_an_asymmetric_valley(k0, c, skew, L0):
    """A valley L0 + c (k - k0)^2 + d (k - k0)^3 (d = skew c: asymmetric, locally convex over the
    window): the cubic's k_hat is exact, the parabola's vertex moves by -1.7 (d / c) step^2 to first
    order (5 points of a symmetric window: sum x^4 / sum x^2 = 3.4 step^2)."""
    k = np.round(np.arange(1.0, 3.0001, 0.25), 2)
    d = skew * c
    L = L0 + c * (k - k0) ** 2 + d * (k - k0) ** 3
    f = fits.fit_cubic(k, L, half_width=0.5)
    assert f.status == "estimate" and f.convex
    assert f.k_hat == pytest.approx(k0, abs=1e-7)
    assert f.L_hat == pytest.approx(L0, abs=1e-9)
    kk = np.linspace(f.k_lo, f.k_hi, 9)
    assert np.allclose(f.a + f.b * kk + f.c * kk ** 2 + f.d * kk ** 3, L0 + c * (kk - k0) ** 2 + d * (kk - k0) ** 3)


def test_parabola_bias_on_a_skewed_valley_is_the_predicted_one():
    k = np.round(np.arange(1.0, 3.0001, 0.25), 2)
    c, d = 0.4, -0.004  # small skew: first order holds; vertex on a grid point, symmetric window
    L = 0.1 + c * (k - 2.0) ** 2 + d * (k - 2.0) ** 3
    p = fits.fit_parabola(k, L, 0.5)
    assert p.k_hat - 2.0 == pytest.approx(-1.7 * d / c * 0.25 ** 2, rel=0.02)
    assert fits.fit_cubic(k, L, 0.5).k_hat == pytest.approx(2.0, abs=1e-9)


def test_cubic_bounds_and_small_grids():
    k = np.round(np.arange(1.0, 3.0001, 0.25), 2)
    lo = fits.fit_cubic(k, (k - 0.3) ** 2, 0.5)
    assert lo.status == "at_lower_edge" and lo.k_hat == 1.0
    hi = fits.fit_cubic(k, (k - 3.6) ** 2, 0.5)
    assert hi.status == "at_upper_edge" and hi.k_hat == 3.0
    concave = fits.fit_cubic(k, -(k - 2.0) ** 2, 0.5)
    assert concave.status != "estimate" and not concave.convex
    # four k in all: the parabola is all they determine
    few = fits.fit_cubic([1.0, 1.5, 2.0, 2.5], [0.3, 0.1, 0.12, 0.4], 0.5)
    assert type(few) is fits.ParabolaFit and few.status == "estimate"
    with pytest.raises(ValueError, match="fit.k_model"):
        fits.fit_valley(k, k ** 2, 0.5, "quartic")


def test_fit_optimum_with_the_cubic_records_its_curve():
    df = synthetic_losses(noise=0.001, n_boot=4)
    opt = fits.fit_optimum(df, half_width=0.5, k_model="cubic").iloc[0]
    assert opt["k_model"] == "cubic" and opt["k_hat_status"] == "estimate"
    assert opt["k_hat"] == pytest.approx(2.1, abs=0.02)
    kk = np.array([opt["k_hat"]])
    assert (opt["a"] + opt["b"] * kk + opt["c"] * kk ** 2 + opt["d"] * kk ** 3)[0] == pytest.approx(opt["L_stat_fit"])


def test_interpolation():
    k = np.array([1.0, 1.5, 2.0, 2.5])
    y = 2 * k + 1
    assert fits.interpolate_at(k, y, 1.75, 1.0, 2.5, "linear") == pytest.approx(4.5)
    assert fits.interpolate_at(k, y, 1.75, 1.0, 2.5, "regression") == pytest.approx(4.5)
    with pytest.raises(ValueError, match="fit.interp"):
        fits.interpolate_at(k, y, 1.75, 1.0, 2.5, "spline")


fits_kinds = ("joint", "epm", "reference")


def synthetic_losses(k0=2.1, lam0=2.0, chi0=2.2, noise=0.01, n_boot=30, seed=0):
    """Loss landscape with its minimum at (k0, lam(k0), chi(k0)); lam, chi linear in k."""
    rng = np.random.default_rng(seed)
    rows = []
    for k in np.round(np.arange(1.0, 3.0001, 0.1), 2):
        lam_k, chi_k = lam0 + 0.5 * (k - k0), chi0 - 0.3 * (k - k0)
        for dl in (-0.1, 0.0, 0.1):
            for dc in (-0.25, 0.0, 0.25):
                base = 0.15 + 0.2 * (k - k0) ** 2 + 2.0 * dl ** 2 + 0.4 * dc ** 2
                for b in range(-1, 3 * n_boot):
                    kind = "full" if b == -1 else fits_kinds[b // n_boot]
                    # the joint rows carry both noises, the one-sided rows one of them each
                    e = 0.0 if b == -1 else rng.normal(0, noise * (np.sqrt(2) if kind == "joint" else 1.0))
                    rows.append(dict(l=6.6, k=k, lam=round(lam_k + dl, 4), chi=round(chi_k + dc, 4), boot=b,
                                     resample=kind, L_stat=base + e, L_macro=base + e, L_meso_plus=base,
                                     L_meso_minus=base))
    return pd.DataFrame(rows)


def test_fit_optimum_recovers_and_errors_shrink_with_noise():
    df = synthetic_losses(noise=0.01)
    opt = fits.fit_optimum(df, half_width=0.5).iloc[0]
    assert opt["k_hat"] == pytest.approx(2.1, abs=0.02)
    assert opt["lam_hat"] == pytest.approx(2.0, abs=0.02)
    assert opt["chi_hat"] == pytest.approx(2.2, abs=0.02)
    assert opt["L_stat"] == pytest.approx(0.15, abs=0.01)
    assert 0 < opt["k_hat_err"] < 0.3
    quiet = fits.fit_optimum(synthetic_losses(noise=0.001), half_width=0.5).iloc[0]
    assert quiet["k_hat_err"] < opt["k_hat_err"]
    # the true value lies within a few error bars
    assert abs(opt["k_hat"] - 2.1) < 4 * opt["k_hat_err"] + 0.01
    assert opt["k_hat_err_epm"] > 0 and opt["k_hat_err_ref"] > 0
    assert opt["k_hat_status"] == "estimate" and opt["n_boot"] == 30


def test_bound_status_of_the_fit():
    """A vertex beyond the fitted window, or a concave fit, is a bound, never an estimate."""
    k = np.round(np.arange(1.0, 3.0001, 0.25), 2)
    assert fits.fit_parabola(k, (k - 2.0) ** 2, 0.75).status == "estimate"
    lo = fits.fit_parabola(k, (k - 0.5) ** 2, 0.75)
    assert lo.status == "at_lower_edge" and lo.k_hat == 1.0
    hi = fits.fit_parabola(k, (k - 3.4) ** 2, None)
    assert hi.status == "at_upper_edge" and hi.k_hat == 3.0
    assert fits.fit_parabola(k, -(k - 2.0) ** 2).status == "not_convex"
    # the optimum table carries it
    df = synthetic_losses(k0=0.6, noise=0.001, n_boot=4)
    opt = fits.fit_optimum(df, half_width=0.5).iloc[0]
    assert opt["k_hat_status"] == "at_lower_edge" and opt["k_hat_bound_frac"] == 1.0
    T = np.array([0.1, 0.2, 0.3])
    F = np.stack([1.0 + T, 1.0 + 2 * T], axis=1)  # both cross their reference below the grid
    assert fits.fit_temperature_magnitudes(T, F, [1.05, 1.1])["T_hat_status"] == "at_lower_edge"


def test_fit_temperature_magnitudes_exact_where_a_parabola_through_the_loss_is_biased():
    """All magnitudes cross their reference at T0 = 0.13 and curve differently: L_quench(T) is an
    asymmetric V (steep at low T).  Fitting the smooth magnitudes recovers T0; a parabola through
    the V (the former estimator) lands on its shallow side."""
    T = np.round(np.arange(0.05, 0.5001, 0.05), 2)
    T0 = 0.13
    ref = np.array([1.0, 2.0, 0.5])
    slope, curv = np.array([-6.0, 3.0, -4.0]), np.array([20.0, -8.0, 15.0])
    F = ref * (1 + slope * (T[:, None] - T0) + curv * (T[:, None] - T0) ** 2)
    out = fits.fit_temperature_magnitudes(T, F, ref, half_width=0.1)
    assert out["T_hat_status"] == "estimate"
    assert out["T_hat"] == pytest.approx(T0, abs=0.1 / 400)
    L = fits.relative_loss(F, ref).mean(axis=1)
    assert fits.fit_parabola(T, L, 0.1).k_hat > T0 + 0.02


def test_log_regression_exact_for_an_exponential_lambda_of_k():
    k = np.arange(1.0, 2.01, 0.25)
    lam = 4.0 * np.exp(-1.3 * k)
    assert fits.interpolate_at(k, lam, 1.4, 1.0, 2.0, "log_regression") == pytest.approx(4.0 * np.exp(-1.3 * 1.4))
    assert fits.interpolate_at(k, lam, 1.4, 1.0, 2.0, "regression") > 4.0 * np.exp(-1.3 * 1.4) * 1.02


def test_bootstrap_correlations():
    per = {b: {"k_hat": float(b), "lam_hat": -2.0 * b, "chi_hat": (-1) ** b} for b in range(10)}
    per[-1] = {"k_hat": 0.0, "lam_hat": 0.0, "chi_hat": 0.0}
    kinds = {b: "joint" for b in range(10)} | {-1: "full"}
    c = fits.bootstrap_correlations(per, kinds, fits.OPTIMUM_KEYS)
    assert c["corr_k_hat_lam_hat"] == pytest.approx(-1.0)
    assert abs(c["corr_k_hat_chi_hat"]) < 0.5


def test_fit_missing_columns():
    with pytest.raises(ValueError, match="L_stat"):
        fits.fit_optimum(pd.DataFrame({"l": [1.0], "k": [1.0], "lam": [1.0], "chi": [1.0], "boot": [-1]}))


def test_temperature_optimum_propagates_the_optimum_error():
    """T_hat_err_opt from the scans along the principal axes of the optimum's covariance is exact for
    a T_hat linear in (k, lambda, chi): sqrt(g^T C g), whatever the correlations (k and lambda
    anti-correlated -0.97 here, as along the calibration's valley); the axes reproduce C."""
    from epcal.stages.temperature import principal_shifts, temperature_optimum

    T = np.round(np.arange(0.05, 0.5001, 0.05), 2)
    opt = pd.Series({"k_hat_err": 0.3, "lam_hat_err": 0.2, "chi_hat_err": 0.1, "corr_k_hat_lam_hat": -0.97,
                     "corr_k_hat_chi_hat": 0.4, "corr_lam_hat_chi_hat": -0.5})
    sd = np.array([0.3, 0.2, 0.1])
    R = np.array([[1.0, -0.97, 0.4], [-0.97, 1.0, -0.5], [0.4, -0.5, 1.0]])
    C = R * np.outer(sd, sd)
    shifts = principal_shifts(opt, log=lambda *a: None)
    plus = np.array([v for name, v in shifts if name.endswith("+")])
    np.testing.assert_allclose(plus.T @ plus, C, atol=1e-12)
    g = np.array([0.2, 0.5, -0.3])  # dT_hat / d(k, lambda, chi)

    def rows(T0, shift, boots):
        out = []
        for b in boots:
            t0 = T0 + 0.001 * b if b >= 0 else T0
            out.append(pd.DataFrame({"l": 6.6, "T": T, "boot": b, "resample": "full" if b < 0 else "joint",
                                     "shift": shift, "L_quench": np.abs(T - t0),
                                     "mean_tau_c_a0": 1.0 + (T - t0), "ref_mean_tau_c_a0": 1.0,
                                     "std_tau_c_a0": 2.0 * (1.0 - 3 * (T - t0)), "ref_std_tau_c_a0": 2.0}))
        return out
    scan = pd.concat(rows(0.22, "none", [-1, 0, 1, 2, 3]) + [r for name, v in shifts
                                                              for r in rows(0.22 + g @ v, name, [-1])], ignore_index=True)
    out = temperature_optimum(scan, 0.1)
    assert out["T_hat"] == pytest.approx(0.22, abs=1e-3)
    assert out["T_hat_err_opt"] == pytest.approx(np.sqrt(g @ C @ g), rel=0.02)
    assert out["T_hat_err_scan"] == pytest.approx(np.std([0.22, 0.221, 0.222, 0.223]), abs=5e-4)
    assert out["T_hat_err"] == pytest.approx(np.hypot(out["T_hat_err_scan"], out["T_hat_err_opt"]))
    one_sided = temperature_optimum(scan[~scan["shift"].astype(str).str.endswith("-")], 0.1)
    assert one_sided["T_hat_err_opt"] == pytest.approx(np.sqrt(g @ C @ g), rel=0.02)
