"""Fig. 7 from per-N re-tuned calibrations (appendix A.1): the Weibull weakest-link rescaling."""
import numpy as np
import pandas as pd
import pytest

from epcal.figures import fig7


def _fit_tables(tmp_path, k=2.0, noise=0.0, seed=0):
    """Fit tables of a model whose only N dependence is lambda_hat = 1.5 (N / 36)^(1/k)."""
    rng = np.random.default_rng(seed)
    paths = []
    for N in (12, 24, 36, 48, 72):
        lam = 1.5 * (N / 36) ** (1 / k) * np.exp(noise * rng.normal())
        row = {"l": 6.6, "N": N, "k_hat": k + noise * rng.normal(), "k_hat_err": 0.1, "lam_hat": lam,
               "lam_hat_err": 0.03 * lam, "chi_hat": 2.2, "chi_hat_err": 0.1, "L_stat": 0.05, "L_stat_err": 0.01}
        p = tmp_path / f"N{N}.parquet"
        pd.DataFrame([row]).to_parquet(p)
        paths.append(p)
    return paths


def test_retuned_fig7_recovers_the_weibull_exponent(tmp_path):
    data = fig7(tmp_path / "fig7.png", _fit_tables(tmp_path, k=2.0), None, {"dpi": 40, "format": "png"})
    assert (tmp_path / "fig7.png").exists()
    ex = data[data.quantity == "exponent"].set_index("series")["y"]
    assert ex["epm"] == pytest.approx(0.5, abs=1e-9) and ex["expected"] == pytest.approx(0.5, abs=1e-9)
    lam = data[(data.quantity == "lam_hat") & (data.series == "epm")]
    assert list(lam["x"]) == [12, 24, 36, 48, 72]
    pred = data[(data.quantity == "lam_hat") & (data.series == "expected")]
    np.testing.assert_allclose(pred["y"], 1.5 * (pred["x"] / 36) ** 0.5, rtol=1e-9)


def test_retuned_fig7_expectation_uses_the_weighted_mean_k(tmp_path):
    paths = _fit_tables(tmp_path, k=2.0)
    d = pd.read_parquet(paths[0])
    d["k_hat"], d["k_hat_err"] = 5.0, 10.0  # a poorly determined k_hat hardly moves the mean
    d.to_parquet(paths[0])
    data = fig7(tmp_path / "fig7.png", paths, None, {"dpi": 40, "format": "png"})
    ex = data[data.quantity == "exponent"].set_index("series")["y"]
    assert ex["expected"] == pytest.approx(0.5, abs=0.001)
