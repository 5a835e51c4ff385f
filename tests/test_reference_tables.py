"""Reference tables: drop detection, round trip through the schema check, error reports."""
import numpy as np
import pandas as pd
import pytest
import yaml

from epcal.refdir import check_reference_dir
from epcal.reference.tables import detect_avalanches, macro_from_steps
from epcal.schema import MACRO, PROBE, check_table, write_table


def _steps(sxy, dmax, replica=0):
    n = len(sxy)
    return pd.DataFrame({"replica": replica, "step": np.arange(n), "gamma_ext": np.arange(n) * 1e-4,
                         "sxx": 0.0, "syy": 0.0, "sxy": sxy, "pe": 0.0, "fnorm": 0.0, "iterations": 1,
                         "d_max": dmax, "d_rms": 0.0, "seconds": 0.0})


def test_drop_detection_ignores_smooth_softening_and_sees_small_drops():
    # elastic branch, smooth softening (stress decreases by 2e-4 with small displacements) just before
    # an instability, a big drop, a branch, a *small* drop (1e-4) with a real rearrangement, a branch
    s = [0.0, 0.0013, 0.0026, 0.0039, 0.0040, 0.0038, 0.0020, 0.0033, 0.0046, 0.0045, 0.0058, 0.0071]
    d = [0.0, 0.001, 0.001, 0.001, 0.004, 0.02, 0.4, 0.001, 0.001, 0.08, 0.001, 0.001]
    av = detect_avalanches(_steps(np.array(s), np.array(d)))
    assert list(np.flatnonzero(av)) == [6, 9]
    m = macro_from_steps(_steps(np.array(s), np.array(d)))
    assert list(m["step"]) == [0, 6, 9, 11]
    assert list(m["avalanche"]) == [False, True, True, False]
    # sigma_before: the branch (steps 0..5, mean increment 0.0038/5) extrapolated to step 6
    assert m["sigma_before"].iloc[1] == pytest.approx(0.0038 + 0.0038 / 5)
    assert m["sigma_after"].iloc[1] == pytest.approx(0.0020)
    assert (m["n_slips"] == -1).all()
    assert check_table(m, MACRO, "macro") == []


def _probe(n=8):
    """Probe rows of both states at alpha = 0 and 90 (what the default config reads)."""
    rng = np.random.default_rng(0)
    tau_i = rng.normal(0, 0.3, n)
    tau_c = tau_i + rng.uniform(0.1, 1.0, n)
    return pd.DataFrame({"state": ["quench", "quench", "stationary", "stationary"] * (n // 4),
                         "replica": np.arange(n) % 2,
                         "x": rng.uniform(0, 10, n), "y": rng.uniform(0, 10, n), "R": 5.0,
                         "alpha": [0.0, 90.0] * (n // 2), "tau_i": tau_i, "tau_c": tau_c,
                         "delta_tau_c": tau_c - tau_i, "drop_tau_c": rng.uniform(0, 0.5, n),
                         "sigma_vm": rng.uniform(0, 1, n), "gamma_c": rng.uniform(0, 0.1, n)})


def _write_dir(tmp_path, macro=None, probe=None, meta=None):
    s = np.cumsum(np.r_[0, np.full(30, 1.3e-3)])
    s[10:] -= 0.01
    d = np.full(31, 1e-3)
    d[10] = 0.3
    macro = macro if macro is not None else macro_from_steps(_steps(s, d))
    probe = probe if probe is not None else _probe()
    write_table(macro, tmp_path / "macro.parquet", {"x": 1})
    write_table(probe, tmp_path / "probe.parquet", {"x": 1})
    meta = meta if meta is not None else {
        "domain_length": 39.5, "n_atoms": 1600, "n_samples": 1, "shear_modulus": 14.0, "bulk_modulus": 51.0,
        "delta_gamma": 1e-4, "description": "test", "provenance": {"command": "pytest"}}
    (tmp_path / "reference.yaml").write_text(yaml.safe_dump(meta))
    return tmp_path


def test_round_trip_through_the_check(tmp_path):
    d = _write_dir(tmp_path)
    assert check_reference_dir(d) == []
    from epcal.refdir import read_reference

    ref = read_reference(d)
    macro, probe, meta = ref.macro, ref.probe, ref.meta
    assert check_table(macro, MACRO) == [] and check_table(probe, PROBE) == []
    assert meta["shear_modulus"] == 14.0 and macro["avalanche"].sum() == 1


def test_every_problem_is_reported_with_file_column_row(tmp_path):
    probe = _probe()
    probe.loc[3, "tau_c"] = np.nan           # non-finite value
    probe = probe.drop(columns=["sigma_vm"])  # missing column
    s = np.r_[0.0, 0.1, 0.2]
    macro = macro_from_steps(_steps(s, np.zeros(3)))
    macro.loc[0, "sigma_after"] = 5.0        # non-avalanche record with a jump
    meta = {"domain_length": -1.0, "n_atoms": 1600, "n_samples": 1, "shear_modulus": 14.0,
            "bulk_modulus": 51.0, "delta_gamma": 1e-4}  # no description, bad L
    d = _write_dir(tmp_path, macro=macro, probe=probe, meta=meta)
    problems = check_reference_dir(d)
    text = "\n".join(problems)
    assert "probe.parquet: column 'sigma_vm' is missing" in text
    assert "probe.parquet: column 'tau_c': non-finite values in rows 3" in text
    assert "macro.parquet: columns 'sigma_before'/'sigma_after'" in text and "rows 0" in text
    assert "reference.yaml: key 'description' is missing" in text
    assert "reference.yaml: key 'domain_length': expected a positive number" in text


def test_cli_check(tmp_path, capsys):
    from epcal.cli import main

    d = _write_dir(tmp_path)
    assert main(["reference", "check", str(d)]) == 0
    (d / "probe.parquet").unlink()
    assert main(["reference", "check", str(d)]) == 2
    err = capsys.readouterr().err
    assert "probe.parquet: missing" in err


@pytest.mark.parametrize("name", ["reference", "reference-small"])
def test_shipped_reference_is_valid(name):
    from pathlib import Path

    d = Path(__file__).resolve().parents[1] / "resources" / name
    assert check_reference_dir(d) == []
    meta = yaml.safe_load((d / "reference.yaml").read_text())
    assert meta["n_atoms"] > 0 and 5 < meta["shear_modulus"] < 30


def test_optional_bauschinger_table_is_checked(tmp_path):
    d = _write_dir(tmp_path)
    bau = pd.DataFrame({"replica": [0, 0, 0], "branch": ["unload", "forward", "sideways"],
                        "gamma_load": [0.0, 1e-4, np.nan], "sigma_load": [0.5, 0.1, 0.2]})
    bau.to_parquet(d / "bauschinger.parquet")
    text = "\n".join(check_reference_dir(d))
    assert "bauschinger.parquet: column 'gamma_load': non-finite values in rows 2" in text
    assert "bauschinger.parquet: column 'branch': values ['sideways'] in rows 2" in text
    (d / "bauschinger.parquet").unlink()
    assert check_reference_dir(d) == []  # the table is optional
