"""The verbs the rules call, end to end on a tiny glass; the rules' DAG (dry run) for both configs."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from epcal.reference.lammps_driver import lammps_available

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.lammps
@pytest.mark.skipif(not lammps_available(), reason="LAMMPS python module not importable")
def test_cli_prepare_shear_probe_tables_check(tmp_path):
    from epcal.cli import main
    from epcal.schema import read_metadata

    d = tmp_path
    assert main(["reference", "prepare", "--n-atoms", "400", "--replica", "3", "--seed", "5", "--t-equil", "5",
                 "--out-state", str(d / "glass_3.npz"), "--out-info", str(d / "glass_3.json"),
                 "--out-trace", str(d / "equilibration_3.parquet")]) == 0
    info = json.loads((d / "glass_3.json").read_text())
    assert info["replica"] == 3 and info["n_atoms"] == 400 and info["moduli"]["G"] > 0
    assert main(["reference", "shear", "--state", str(d / "glass_3.npz"), "--replica", "3", "--gamma-max", "0.004",
                 "--checkpoint", str(d / "ck.npz"), "--checkpoint-every", "10", "--out-steps", str(d / "steps.parquet"),
                 "--out-state", str(d / "stat.npz")]) == 0
    meta = read_metadata(d / "steps.parquet")
    assert meta["parameters"]["gamma_max"] == 0.004 and "code_version" in meta
    for state, src in (("quench", "glass_3.npz"), ("stationary", "stat.npz")):
        assert main(["reference", "probe", "--state", str(d / src), "--state-name", state, "--replica", "3",
                     "--R", "5", "--alpha", "0", "90", "--grid", "20", "--checkpoint", str(d / f"ck_{state}.parquet"),
                     "--out", str(d / f"probe_{state}.parquet")]) == 0
    # a second probe run resumes from its checkpoint and computes nothing new
    assert main(["reference", "probe", "--state", str(d / "glass_3.npz"), "--state-name", "quench", "--replica", "3",
                 "--R", "5", "--alpha", "0", "90", "--grid", "20", "--checkpoint", str(d / "ck_quench.parquet"),
                 "--out", str(d / "probe_quench2.parquet")]) == 0
    import pandas as pd
    assert pd.read_parquet(d / "probe_quench2.parquet").equals(pd.read_parquet(d / "probe_quench.parquet"))
    out = d / "ref"
    assert main(["reference", "tables", "--steps", str(d / "steps.parquet"), "--probes",
                 str(d / "probe_quench.parquet"), str(d / "probe_stationary.parquet"),
                 "--infos", str(d / "glass_3.json"), "--config", json.dumps({"dgamma": 1e-4, "grid_spacing": 20}),
                 "--out", str(out)]) == 0
    assert main(["reference", "check", str(out)]) == 0
    ref = yaml.safe_load((out / "reference.yaml").read_text())
    assert ref["n_samples"] == 1 and ref["provenance"]["seeds"] == {3: info["seed"]}
    assert (out / "equilibration.parquet").exists() and (out / "macro_steps.parquet").exists()


@pytest.mark.skipif(shutil.which("snakemake") is None and not (Path(sys.executable).parent / "snakemake").exists(),
                    reason="snakemake not installed")
@pytest.mark.parametrize("cfg, n_probe", [("config/atomistic_default.yaml", 4), ("config/atomistic_paper.yaml", 240)])
def test_rules_dry_run(tmp_path, cfg, n_probe):
    conf = yaml.safe_load((ROOT / cfg).read_text())
    conf["reference"]["atomistic"]["outdir"] = str(tmp_path / "out")
    if "paper" in cfg:  # the paper's 100 samples give an 8203-job DAG: 3 samples test its structure
        conf["reference"]["atomistic"]["n_samples"] = 3
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(conf))
    exe = shutil.which("snakemake") or str(Path(sys.executable).parent / "snakemake")
    r = subprocess.run([exe, "-s", str(ROOT / "workflow/rules/reference.smk"), "--configfile", str(tmp_path / "c.yaml"),
                        "-n", "--directory", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    text = r.stdout + r.stderr
    n = conf["reference"]["atomistic"]["n_samples"]
    import re
    counts = dict(re.findall(r"^(ref_\w+)\s+(\d+)\s*$", text, flags=re.M))
    assert int(counts["ref_prepare"]) == n and int(counts["ref_shear"]) == n
    assert int(counts["ref_probe"]) == n_probe


def test_bad_atomistic_config_is_rejected(tmp_path):
    exe = shutil.which("snakemake") or str(Path(sys.executable).parent / "snakemake")
    if not Path(exe).exists():
        pytest.skip("snakemake not installed")
    conf = yaml.safe_load((ROOT / "config/atomistic_default.yaml").read_text())
    conf["reference"]["atomistic"]["n_atom"] = 5  # a typo: additionalProperties is false
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(conf))
    r = subprocess.run([exe, "-s", str(ROOT / "workflow/rules/reference.smk"), "--configfile", str(tmp_path / "c.yaml"),
                        "-n", "--directory", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert r.returncode != 0 and "n_atom" in (r.stdout + r.stderr)
