"""Emergent properties (section 5): r(dgamma) of Eq. (10) and the Bauschinger reload test."""
import numpy as np
import pandas as pd
import pytest

from epcal.observables import rms_deviation, stress_series
from epcal.params import EPMParams
from epcal.observables import loading_curve
from epcal.bauschinger import run_bauschinger
from epcal.simulate import run_ensemble


def _table(gamma, sigma):
    steps = np.round(np.asarray(gamma) / 1e-4).astype(np.int64)
    n = len(steps)
    av = np.zeros(n, bool)
    return pd.DataFrame({"replica": 0, "step": steps, "gamma_ext": steps * 1e-4, "sigma_before": sigma,
                         "sigma_after": sigma, "avalanche": av, "n_slips": 0})


def test_rms_deviation_of_a_linear_ramp_is_analytic():
    # Sigma = c gamma: the std inside a window of m equally spaced points is c dgamma sqrt((m^2-1)/12)
    g = np.arange(0, 20001) * 1e-4
    df = _table([g[0], g[-1]], [0.0, 2.0])
    gam, sig = stress_series(df)
    assert np.allclose(sig, 1.0 * gam)
    r = rms_deviation(df, [0.001, 0.01], gamma_min=0.5)
    for w, val in zip(r.dgamma, r.r):
        m = int(round(w / 1e-4)) + 1
        assert val == pytest.approx(1e-4 * np.sqrt((m * m - 1) / 12.0), rel=1e-6)


def test_rms_deviation_grows_and_saturates_at_the_stress_std():
    p = EPMParams(L=8, l=6.6, N=12, k=2.0, lam=1.5, chi=2.0)
    ens = run_ensemble(p, range(4), seed=2, gamma_max=2.0)
    r = rms_deviation(ens.macro, [1e-4 * 2, 1e-3, 1e-2, 0.1, 0.5])
    assert np.all(np.diff(r.r) > 0)
    std = np.mean([stress_series(g)[1][stress_series(g)[0] > 0.5].std() for _, g in ens.macro.groupby("replica")])
    assert r.r.iloc[-1] == pytest.approx(std, rel=0.25)
    assert r.r.iloc[0] < 0.1 * std


def test_bauschinger_reverse_loading_is_softer():
    """Unloaded from the stationary state, reverse loading yields at a lower stress (Fig. 5d)."""
    p = EPMParams(L=10, l=6.6, N=16, k=2.18, lam=2.05, chi=2.25)
    df = run_bauschinger(p, range(6), seed=3, gamma_max=1.0, T_quench=0.25, strain=0.08)
    # unloading ends at zero stress
    for _, g in df[df.branch == "unload"].groupby("replica"):
        assert g.sigma_after.iloc[-1] <= 0 < g.sigma_after.iloc[0]
    grid = np.linspace(0, 0.08, 9)
    fwd = loading_curve(df, "forward", grid)
    rev = loading_curve(df, "reverse", grid)
    assert abs(fwd[0]) < 0.05 and abs(rev[0]) < 0.05
    # initially both elastic-ish: slope close to G for forward
    assert fwd[1] / grid[1] == pytest.approx(p.G, rel=0.25)
    # reverse is softer over the whole reload
    assert np.all(rev[2:] < fwd[2:])
    assert rev[2:].mean() < 0.9 * fwd[2:].mean()


def test_finite_size_scaling_of_stress_fluctuations(tmp_path, capsys):
    """std(Sigma_ext) decreases with the system size roughly as 1/L (paper: L^-0.94, Fig. 5b)."""
    from epcal.cli import main
    from epcal.schema import read_metadata

    out = tmp_path / "size.parquet"
    assert main(["size-scaling", "--sizes", "6,9,13", "--element-length", "6.6", "--slip-systems", "36",
                 "--replicas", "4", "--gamma-max", "1.5", "--seed", "4", "--out", str(out)]) == 0
    df = pd.read_parquet(out)
    assert np.all(np.diff(df.sigma_std) < 0)
    assert -1.25 < df.exponent.iloc[0] < -0.7
    assert read_metadata(out)["exponent"] == pytest.approx(df.exponent.iloc[0])


def test_loading_curve_saw_tooth_and_every_step_tables():
    """One loading_curve for both sides: EPM records (relaxed states and the stress before the next
    avalanche, external sign) give a saw tooth; an atomistic table (every step) is interpolated."""
    import pandas as pd

    grid = np.array([0.0, 0.05, 0.1, 0.15, 0.2])
    epm = pd.DataFrame({"replica": 0, "branch": "reverse", "gamma_load": [0.0, 0.1, 0.2],
                        "sigma_load": [0.0, 0.5, 0.6], "sigma_before": [0.0, -0.8, -0.9]})
    # from 0 up to 0.8 at 0.1 (elastic), drop to 0.5 (at a record: the relaxed state), up to 0.9 at 0.2
    np.testing.assert_allclose(loading_curve(epm, "reverse", grid), [0.0, 0.4, 0.5, 0.7, 0.9])
    atoms = pd.DataFrame({"replica": [0, 0, 0, 1, 1, 1], "branch": "forward",
                          "gamma_load": [0.2, 0.0, 0.1, 0.0, 0.1, 0.2], "sigma_load": [0.6, 0.0, 0.5, 0.0, 0.3, 0.2]})
    np.testing.assert_allclose(loading_curve(atoms, "forward", grid), [0.0, 0.2, 0.4, 0.4, 0.4])
