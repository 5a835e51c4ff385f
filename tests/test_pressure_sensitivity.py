"""alpha_p of variant B measured on a reference: tau_c against the patch pressure (A.8.2)."""
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from epcal.pressure_sensitivity import PAPER_ALPHA_P, patch_pressure, pressure_sensitivity


def synthetic_probe(alpha_p=0.3, n_samples=6, n_patches=40, seed=0, offsets=(0.0, 0.8, 0.3, -0.2), noise=0.05):
    rng = np.random.default_rng(seed)
    rows = []
    for r in range(n_samples):
        p0 = rng.normal(1.9, 0.2)  # the sample's mean pressure
        for i in range(n_patches):
            p = p0 + rng.normal(0, 0.15)
            for a, off in zip((0.0, 45.0, 90.0, 135.0), offsets):
                rows.append({"state": "stationary", "replica": r, "R": 30.0, "alpha": a, "sxx_i": -p + 0.1,
                             "syy_i": -p - 0.1, "tau_c": 1.0 + off + alpha_p * p + rng.normal(0, noise)})
    return pd.DataFrame(rows)


def test_patch_pressure_is_compression_positive():
    d = pd.DataFrame({"sxx_i": [-2.0, 1.0], "syy_i": [-1.0, 1.0]})
    np.testing.assert_allclose(patch_pressure(d), [1.5, -1.0])


def test_recovers_the_slope_within_its_error():
    m = pressure_sensitivity(synthetic_probe(), 30.0)
    assert m["n_samples"] == 6 and m["n_rows"] == 6 * 40 * 4
    assert 0 < m["alpha_p_err"] < 0.05
    assert m["alpha_p"] == pytest.approx(0.3, abs=3 * m["alpha_p_err"])


def test_coverage_of_the_sample_bootstrap_over_many_seeds():
    """The error is a bootstrap over samples: about 2/3 of the estimates within one error."""
    z = []
    for seed in range(30):
        m = pressure_sensitivity(synthetic_probe(n_samples=8, n_patches=10, seed=seed, noise=0.2), 30.0,
                                 n_boot=100, seed=seed)
        z.append((m["alpha_p"] - 0.3) / m["alpha_p_err"])
    frac = np.mean(np.abs(z) < 1)
    assert 0.45 < frac < 0.9  # 0.68 with a binomial s.e. of 0.085 (and a bootstrap of 8 samples)


@settings(max_examples=20, deadline=None)
@given(shift=st.floats(-3, 3), offsets=st.lists(st.floats(-2, 2), min_size=4, max_size=4))
def test_invariant_to_orientation_levels_and_a_pressure_offset(shift, offsets):
    base = synthetic_probe(n_samples=2, n_patches=10)
    ref = pressure_sensitivity(base, 30.0)["alpha_p"]
    moved = base.copy()
    moved["sxx_i"] -= shift
    moved["syy_i"] -= shift  # every patch's pressure + shift
    for a, off in zip((0.0, 45.0, 90.0, 135.0), offsets):
        moved.loc[moved["alpha"] == a, "tau_c"] += off
    assert pressure_sensitivity(moved, 30.0)["alpha_p"] == pytest.approx(ref, abs=1e-9)


def test_too_few_samples_no_error_and_missing_data_named():
    m = pressure_sensitivity(synthetic_probe(n_samples=2), 30.0)
    assert np.isnan(m["alpha_p_err"]) and np.isfinite(m["alpha_p"])
    with pytest.raises(ValueError, match=r"no 'stationary' rows at R = 20 \(it has R = \[30.0\]\)"):
        pressure_sensitivity(synthetic_probe(n_samples=2), 20.0)
    with pytest.raises(ValueError, match=r"x.parquet: no column\(s\) \['sxx_i'\]"):
        pressure_sensitivity(synthetic_probe(n_samples=2).drop(columns="sxx_i"), 30.0, source="x.parquet")


def test_variant_B_alpha_p_auto():
    from types import SimpleNamespace

    from epcal.variant_search import resolve_alpha_p

    logs = []
    ref = SimpleNamespace(probe=synthetic_probe(n_samples=5), path="ref")
    a, info = resolve_alpha_p({"alpha_p": "auto", "seed": 1}, ref, 30.0, logs.append)
    assert info["alpha_p_source"] == "reference" and a == pytest.approx(0.3, abs=0.05)
    assert 0 < info["alpha_p_err"] < 0.05 and info["alpha_p_n_samples"] == 5  # recorded under its own name
    assert "measured on the reference" in logs[-1]
    ref2 = SimpleNamespace(probe=synthetic_probe(n_samples=2), path="ref")
    a, info = resolve_alpha_p({"alpha_p": "auto", "seed": 1}, ref2, 30.0, logs.append)
    assert a == PAPER_ALPHA_P and info["alpha_p_source"] == "paper" and "too few" in logs[-1]
    assert resolve_alpha_p({"alpha_p": 0.15, "seed": 1}, ref2, 30.0, logs.append) == (0.15, {"alpha_p_source": "config"})


def test_variant_B_reads_every_orientation_of_the_shipped_reference():
    """The variant-B job measures alpha_p on the rows the reference's own alpha_p uses (every
    orientation at R = 30, stationary), not only on the loss orientations it reads otherwise."""
    from pathlib import Path

    import yaml

    from epcal.cli.calibrate import _variant_ref
    from epcal.variant_search import resolve_alpha_p

    ship = Path(__file__).resolve().parents[1] / "resources" / "reference"
    cfg = {"losses": {"alpha_plus": 0.0, "alpha_minus": 90.0}, "alpha_p": "auto", "seed": 1}
    own = yaml.safe_load((ship / "reference.yaml").read_text())["properties"]["pressure_sensitivity"]["stationary"]
    ref_b = _variant_ref(ship, "B", cfg)
    a, info = resolve_alpha_p(cfg, ref_b, 30.0, lambda *_: None)
    assert info["alpha_p_source"] == "reference" and info["alpha_p_n_rows"] == own["n_rows"]
    assert a == pytest.approx(own["alpha_p"], rel=1e-12)
    ref_c = _variant_ref(ship, "C", cfg)
    assert set(ref_c.probe["alpha"]) == {0.0, 90.0} and ref_c.probe_alphas == (0.0, 90.0)
    with pytest.raises(ValueError, match=r"read at alpha = \[0.0, 90.0\] only"):
        resolve_alpha_p(cfg, ref_c, 30.0, lambda *_: None)
