"""Snakemake dry runs of the shipped configs and start-up errors on bad configs / bad reference tables."""
from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))

pytestmark = pytest.mark.skipif(not Path(SNAKEMAKE).exists(), reason="snakemake not installed")


def dry_run(workdir: Path, configfile: Path | None = None, extra=()):
    cmd = [SNAKEMAKE, "-s", str(ROOT / "Snakefile"), "-n", "--directory", str(workdir), "-c", "1"]
    if configfile:
        cmd += ["--configfile", str(configfile)]
    cmd += list(extra)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})


def job_counts(out: str) -> dict[str, int]:
    """Parse the 'Job stats' table of a dry run."""
    counts, on = {}, False
    for line in out.splitlines():
        parts = line.split()
        if parts[:2] == ["job", "count"]:
            on = True
            continue
        if on and len(parts) == 2 and parts[1].isdigit():
            if parts[0] == "total":
                break
            counts[parts[0]] = int(parts[1])
    return counts


def load(name):
    return yaml.safe_load((ROOT / "config" / name).read_text())


def test_default_config_dry_run(tmp_path):
    r = dry_run(tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    c = job_counts(r.stdout)
    n_k = 9  # k = 1.00 ... 3.00 step 0.25
    assert c["sweep_macro"] == n_k and c["sweep_meso"] == n_k
    assert c["optimum_table"] == 1 and c["fig3"] == 1
    # source: auto -> the twin, as long as no reference is shipped in resources/reference
    assert c.get("reference_twin") == 1
    # Fig. 7 by the quick method: lambda rescaled at each of the 5 N, k_hat and chi_hat held
    assert c["slip_systems"] == 5 and "slip_sweep_macro" not in c
    # as A.1: the calibration again at each of the 5 N, on k = 1.0 ... 3.0 step 0.5
    retune = dry_run(tmp_path, extra=["--config", "slip_systems={'method': 'retune'}"])
    assert retune.returncode == 0, retune.stderr[-3000:]
    cr = job_counts(retune.stdout)
    assert cr["slip_sweep_macro"] == 5 * 5 and cr["slip_sweep_meso"] == 5 * 5 and cr["slip_fit"] == 5
    assert "slip_systems" not in cr


def test_auto_source_uses_a_shipped_reference(tmp_path):
    ship = tmp_path / "resources"
    ship.mkdir()
    _reference(ship).rename(ship / "reference")
    r = dry_run(tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    c = job_counts(r.stdout)
    assert "reference_twin" not in c and c["reference_check"] == 1


def test_paper_config_dry_run(tmp_path):
    # the paper's config calibrates against the shipped paper-geometry reference
    ref = ROOT / "resources" / "reference"
    r = dry_run(tmp_path, ROOT / "config" / "paper.yaml", extra=["--config", f"reference={{'tables': {{'path': '{ref}'}}}}"])
    assert r.returncode == 0, r.stderr[-3000:]
    c = job_counts(r.stdout)
    assert c["sweep_macro"] == 6 * 41, c  # six l of Table 1 x k = 1.00..3.00 step 0.05
    assert c["sweep_meso"] == 6 * 41
    assert c["fit"] == 6 and c["kernel"] == 6
    assert c["optimum_ensemble"] == 1024 // 64
    assert "reference_twin" not in c and f"reference = tables {ref}" in r.stderr


def test_atomistic_source_dry_run_includes_the_lammps_rules(tmp_path):
    if not (ROOT / "workflow" / "rules" / "reference.smk").exists():
        pytest.skip("workflow/rules/reference.smk not present")
    cfg = load("config.yaml")
    cfg["reference"]["source"] = "atomistic"
    f = tmp_path / "atom.yaml"
    f.write_text(yaml.safe_dump(cfg))
    r = dry_run(tmp_path, f)
    assert r.returncode == 0, r.stderr[-3000:]
    c = job_counts(r.stdout)
    assert c.get("ref_tables") == 1 and c["sweep_macro"] == 9 and "reference_twin" not in c


def test_paper_config_is_the_papers_protocol():
    p = load("paper.yaml")
    assert p["l"] == [3.5, 4.4, 6.6, 8.8, 10.5, 13.2]
    assert p["k"] == {"min": 1.0, "max": 3.0, "step": 0.05}
    assert p["macro"]["replicas"] == 48 and p["meso"]["replicas"] == 48
    assert p["losses"]["R"] == 30 and p["optimum"]["replicas"] == 1024 and p["optimum"]["n_alpha"] == 12


BAD = [
    # (mutation, substrings the error must contain)
    (lambda c: c["macro"].__setitem__("replicass", 4), ["macro", "replicass", "unknown key"]),
    (lambda c: c["macro"].__setitem__("replicas", 0), ["macro.replicas", "= 0", ">= 1"]),
    (lambda c: c["reference"].__setitem__("source", "md"), ["reference.source", '"md"', "one of"]),
    (lambda c: c.__setitem__("l", "6.6"), ["'l'", '"6.6"', "array"]),
    (lambda c: c["macro"]["search"].__setitem__("method", "bayes"), ["macro.search.method", "bayes", "grid"]),
    (lambda c: c["fit"].__setitem__("interp", "cubic"), ["fit.interp", "cubic", "regression"]),
    (lambda c: c["reference"]["twin"].__setitem__("seed", c["seed"]), ["reference.twin.seed", "different"]),
    (lambda c: c.__setitem__("k", {"min": 1.0, "max": 3.0}), ["'k'", "min, max, step"]),
    (lambda c: c.__setitem__("k", [0.05, 1.0]), ["'k'", "0.05", ">= 0.1"]),
    (lambda c: c["emergent"].__setitem__("sizes", [8]), ["emergent.sizes", "[8]"]),
]


@pytest.mark.parametrize("mutate,needles", BAD, ids=[f"bad{i}" for i in range(len(BAD))])
def test_bad_config_error_names_key_value_expected(tmp_path, mutate, needles):
    cfg = copy.deepcopy(load("config.yaml"))
    mutate(cfg)
    f = tmp_path / "bad.yaml"
    f.write_text(yaml.safe_dump(cfg))
    r = dry_run(tmp_path, f)
    assert r.returncode != 0
    err = r.stderr + r.stdout
    assert "invalid configuration" in err
    for n in needles:
        assert n in err, (n, err[-2000:])


def _reference(tmp: Path) -> Path:
    sys.path.insert(0, str(ROOT / "tests"))
    from test_losses import probe_table, sawtooth, write_reference

    return write_reference(tmp / "ref", sawtooth(3, 700, 1), probe_table(3, 1))


def _tables_config(tmp: Path, ref: Path) -> Path:
    cfg = copy.deepcopy(load("config.yaml"))
    cfg["reference"] = {"source": "tables", "tables": {"path": str(ref)}}
    f = tmp / "tables.yaml"
    f.write_text(yaml.safe_dump(cfg))
    return f


def test_good_reference_tables_accepted(tmp_path):
    ref = _reference(tmp_path)
    r = dry_run(tmp_path, _tables_config(tmp_path, ref))
    assert r.returncode == 0, r.stderr[-3000:]
    assert "reference_twin" not in job_counts(r.stdout)


@pytest.mark.parametrize("breakage,needles", [
    (lambda d: pd.read_parquet(d / "probe.parquet").drop(columns=["tau_c"]).to_parquet(d / "probe.parquet"),
     ["probe.parquet", "'tau_c'", "missing"]),
    (lambda d: pd.read_parquet(d / "macro.parquet").assign(sigma_after=np.nan).to_parquet(d / "macro.parquet"),
     ["macro.parquet", "'sigma_after'", "non-finite"]),
    (lambda d: pd.read_parquet(d / "probe.parquet").assign(state="liquid").to_parquet(d / "probe.parquet"),
     ["probe.parquet", "'state'", "liquid"]),
    (lambda d: (d / "reference.yaml").write_text("domain_length: 98.8\n"),
     ["reference.yaml", "'shear_modulus'", "missing"]),
], ids=["missing-column", "nan", "bad-state", "yaml-key"])
def test_bad_reference_tables_rejected_before_any_job(tmp_path, breakage, needles):
    ref = _reference(tmp_path)
    breakage(ref)
    r = dry_run(tmp_path, _tables_config(tmp_path, ref))
    assert r.returncode != 0
    err = r.stderr + r.stdout
    for n in needles:
        assert n in err, (n, err[-2000:])


def test_cli_errors_exit_2_with_a_message(tmp_path):
    epcal = str(Path(sys.executable).with_name("epcal"))
    r = subprocess.run([epcal, "sweep-macro", "--ref", str(tmp_path / "nope"), "--l", "6.6", "--k", "2",
                        "--cfg", "{}", "--out", str(tmp_path / "x.parquet")], capture_output=True, text=True)
    assert r.returncode == 2 and "nope" in r.stderr and "does not exist" in r.stderr
    r = subprocess.run([epcal, "fit", str(tmp_path / "x.parquet"), "--cfg", "{not json", "--out",
                        str(tmp_path / "y.parquet")], capture_output=True, text=True)
    assert r.returncode == 2 and "--cfg" in r.stderr
    for verb in ("sweep-macro", "sweep-meso", "select", "fit", "quench-temperature", "optimum",
                 "optimum-ensemble", "figure", "reference-twin", "reference-check", "kernel-cell"):
        h = subprocess.run([epcal, verb, "--help"], capture_output=True, text=True)
        assert h.returncode == 0 and "usage" in h.stdout, verb


@pytest.mark.parametrize("profile", ["default", "slurm"])
def test_profiles_dry_run(tmp_path, profile):
    r = dry_run(tmp_path, extra=["--profile", str(ROOT / "workflow" / "profiles" / profile)])
    assert r.returncode == 0, r.stderr[-3000:]
    assert job_counts(r.stdout)["sweep_macro"] == 9


def test_every_rule_declares_resources_log_benchmark():
    import re
    for smk in (ROOT / "workflow" / "rules").glob("*.smk"):
        if smk.name in ("common.smk", "reference.smk"):
            continue
        text = smk.read_text()
        for block in re.split(r"(?m)^\s*rule\b", text)[1:]:
            for key in ("log:", "benchmark:", "threads:", "mem_mb", "runtime"):
                assert key in block, (smk.name, block.splitlines()[0], key)


@pytest.mark.parametrize("main,fragment", [("config.yaml", "atomistic_default.yaml"), ("paper.yaml", "atomistic_paper.yaml")])
def test_atomistic_sections_match_their_fragments(main, fragment):
    """config.yaml / paper.yaml carry the atomistic settings of config/atomistic_*.yaml verbatim."""
    if not (ROOT / "config" / fragment).exists():
        pytest.skip(f"config/{fragment} not present")
    assert load(main)["reference"]["atomistic"] == load(fragment)["reference"]["atomistic"]
