"""CLI verbs: help, outputs with metadata, summary keys, clear errors before compute."""
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from epcal.cli import main
from epcal.schema import MACRO, PROBE, check_table, read_metadata


def test_help_on_every_verb(capsys):
    for verb in ("kernel", "quench", "aqs", "probe", "bauschinger", "rms", "size-scaling"):
        with pytest.raises(SystemExit) as exc:
            main([verb, "--help"])
        assert exc.value.code == 0
        assert "usage: epcal " + verb in capsys.readouterr().out


def test_kernel_prints_S_and_f(capsys):
    assert main(["kernel", "--size", "15"]) == 0
    out = capsys.readouterr().out
    assert "Eshelby tensor S" in out and "theta =  67.5 deg" in out


def test_aqs_quench_probe_pipeline(tmp_path, capsys):
    macro = tmp_path / "macro.parquet"
    states = tmp_path / "states.parquet"
    args = ["aqs", "--size", "8", "--slip-systems", "12", "--k", "2", "--lam", "1.5", "--chi", "2",
            "--replicas", "2", "--seed", "5", "--gamma-max", "0.8", "--T", "0.3",
            "--snapshots", "quench,0.8", "--states-out", str(states), "--out", str(macro), "--summary"]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("sigma_mean", "sigma_std", "drop_mean", "drops_per_strain", "slips_per_run", "seconds_per_run"):
        assert key in summary
    assert summary["sigma_mean"] > 0 and summary["drops_per_strain"] > 0
    df = pd.read_parquet(macro)
    assert check_table(df, MACRO) == []
    meta = read_metadata(macro)
    assert meta["params"]["k"] == 2.0 and meta["seed"] == 5 and "code_version" in meta
    probe = tmp_path / "probe.parquet"
    assert main(["probe", "--states", str(states), "--n", "1-3", "--alpha", "0,90", "--out", str(probe)]) == 0
    p = pd.read_parquet(probe)
    assert check_table(p, PROBE) == []
    assert set(p.state) == {"quench", "stationary"} and set(p.n) == {1, 2, 3}
    assert len(p) == 2 * 2 * 64 * 3 * 2


def test_variant_runs_and_probes_from_its_state_file(tmp_path, capsys):
    """A two-system variant: its states carry the variant, so probing rebuilds the same model."""
    states = tmp_path / "states.parquet"
    assert main(["aqs", "--size", "6", "--variant", "H", "--tau-c", "0.6", "--dgamma-pl", "0.03", "--gamma-max", "0.6",
                 "--snapshots", "0.6", "--states-out", str(states), "--summary"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["drops_per_strain"] > 0
    assert read_metadata(states)["variant"]["name"] == "H"
    probe = tmp_path / "probe.parquet"
    assert main(["probe", "--states", str(states), "--n", "2", "--alpha", "0,90", "--out", str(probe)]) == 0
    p = pd.read_parquet(probe)
    assert read_metadata(probe)["variant"]["tau_c"] == 0.6
    assert (p.tau_c > 0).all()


@pytest.mark.parametrize("args", [["--variant", "A", "--G-mean", "15", "--G-shape", "2"],
                                  ["--variant", "B", "--alpha-p", "0.3", "--p-mean", "2", "--p-std", "0.2"]])
def test_variants_a_and_b_run_and_probe_from_their_state_files(tmp_path, capsys, args):
    """epcal aqs --variant A|B: the state file carries the sample (moduli field / pressure offset), so the state
    read back has the same full stresses (model A: with each element's own response to the external strain)
    and can be probed."""
    from epcal.params import EPMParams
    from epcal.lattice_tables import state_from_frame
    from epcal.simulate import Model
    from epcal.variants import Variant

    states = tmp_path / "states.parquet"
    assert main(["aqs", "--size", "6", *args, "--gamma-max", "0.6", "--T", "0.25", "--snapshots", "0.6",
                 "--states-out", str(states), "--summary"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["drops_per_strain"] > 0
    meta = read_metadata(states)
    df = pd.read_parquet(states)
    col = "shear_modulus" if args[1] == "A" else "pressure_offset"
    assert col in df.columns and meta["variant"]["name"] == args[1]
    probe = tmp_path / "probe.parquet"
    assert main(["probe", "--states", str(states), "--n", "1,3", "--alpha", "0,90", "--out", str(probe)]) == 0
    p = pd.read_parquet(probe)
    assert check_table(p, PROBE) == [] and p.tau_c.notna().all()
    model = Model(EPMParams(**meta["params"]), variant=Variant(**meta["variant"]))
    st = state_from_frame(df, model)
    assert np.allclose(st.stress(model.params.G)[:, 2], df.sxy, rtol=0, atol=1e-12)


@pytest.mark.parametrize("args,needle", [
    (["aqs", "--k", "-1"], "parameter k = -1.0"),
    (["aqs", "--slip-systems", "10"], "multiple of 4"),
    (["quench", "--T", "0"], "--T 0"),
    (["probe", "--states", "nonexistent.parquet"], "nonexistent.parquet"),
    (["aqs", "--variant", "B", "--p-std", "-1"], "p_std = -1.0"),
    (["aqs", "--variant", "E"], "--tau-c"),
])
def test_bad_input_gives_clear_error(args, needle):
    proc = subprocess.run([sys.executable, "-m", "epcal.cli", *args], capture_output=True, text=True)
    assert proc.returncode == 2
    assert needle in proc.stderr
    assert "Traceback" not in proc.stderr
