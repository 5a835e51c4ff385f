"""The reference campaign across sessions: per-sample pieces collected, restored, assembled.

* a sample killed mid-AQS resumes from its collected (committed) checkpoint, restored into an
  empty working directory, to the same per-step series as an uninterrupted run;
* the rules make a two-sample campaign (three probed states per sample, one radius with more
  orientations), :func:`collect` copies its pieces, ``epcal reference assemble`` makes the
  reference directory from them, which passes ``epcal reference check`` and holds exactly the
  pieces' rows (schema round trip);
* the shipped paper-geometry reference follows the schema.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from epcal.reference.lammps_driver import lammps_available

ROOT = Path(__file__).resolve().parents[1]
EPCAL = str(Path(sys.executable).parent / "epcal")
SNAKEMAKE = shutil.which("snakemake") or str(Path(sys.executable).parent / "snakemake")
needs_lammps = pytest.mark.skipif(not lammps_available() and os.environ.get("CI") != "true",
                                  reason="LAMMPS python module not importable")


@pytest.fixture(scope="module")
def glass(tmp_path_factory):
    d = tmp_path_factory.mktemp("glass")
    subprocess.run([EPCAL, "reference", "prepare", "--n-atoms", "400", "--replica", "0", "--seed", "11",
                    "--t-equil", "5", "--out-state", str(d / "glass_0.npz"), "--out-info", str(d / "glass_0.json"),
                    "--out-trace", str(d / "equilibration_0.parquet")], check=True, capture_output=True)
    return d / "glass_0.npz"


def _shear(glass, out, extra=()):
    return [EPCAL, "reference", "shear", "--state", str(glass), "--replica", "0", "--gamma-max", "0.008",
            "--solver", "newton", "--ftol", "1e-3", "--checkpoint", str(out / "checkpoints/aqs_0.npz"),
            "--checkpoint-every", "10", "--snapshot", "0.002", str(out / "aqs/stationary_0_g0.002.npz"),
            "--out-steps", str(out / "aqs/steps_0.parquet"), "--out-state", str(out / "aqs/stationary_0_g0.008.npz"),
            *extra]


@pytest.mark.lammps
@needs_lammps
def test_killed_aqs_resumes_from_committed_checkpoint(glass, tmp_path):
    from epcal.reference.campaign import collect, restore

    full = tmp_path / "full"
    subprocess.run(_shear(glass, full), check=True, capture_output=True)
    ref = pd.read_parquet(full / "aqs/steps_0.parquet")

    # the same run, killed (SIGKILL) once its checkpoint has passed the snapshot at step 20
    run = tmp_path / "run"
    proc = subprocess.Popen(_shear(glass, run), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ck = run / "checkpoints/aqs_0.npz"
    t0 = time.time()
    while time.time() - t0 < 300:
        if ck.exists() and int(np.load(ck)["step"]) >= 30:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    step_killed = int(np.load(ck)["step"])
    assert 30 <= step_killed < 80 and not (run / "aqs/steps_0.parquet").exists()

    samples = tmp_path / "samples"  # what is committed
    collect(run, samples)
    assert (samples / "0/checkpoints/aqs_0.npz").exists()
    assert (samples / "0/checkpoints/aqs_0.step20.npz").exists()
    fresh = tmp_path / "fresh"  # a new machine: only the committed pieces
    restore(samples, fresh)
    subprocess.run(_shear(glass, fresh), check=True, capture_output=True)
    got = pd.read_parquet(fresh / "aqs/steps_0.parquet")
    cols = [c for c in ref.columns if c != "seconds"]
    assert list(got["step"]) == list(range(81))
    pd.testing.assert_frame_equal(got[cols], ref[cols], check_exact=True)
    for name in ("stationary_0_g0.002.npz", "stationary_0_g0.008.npz"):
        a, b = np.load(full / "aqs" / name), np.load(fresh / "aqs" / name)
        assert np.array_equal(a["pos"], b["pos"]) and float(a["gamma"]) == float(b["gamma"])
    # once the piece is finished and collected, its checkpoints leave the sample directory
    collect(fresh, samples)
    assert not list((samples / "0/checkpoints").glob("aqs_*"))
    assert (samples / "0/aqs/steps_0.parquet").exists()


@pytest.mark.lammps
@needs_lammps
def test_campaign_rules_collect_assemble_check(tmp_path):
    conf = yaml.safe_load((ROOT / "config/atomistic_campaign.yaml").read_text())
    a = conf["reference"]["atomistic"]
    a.update(outdir="out", n_atoms=400, n_samples=2, t_equil=5.0, n_trace=20, gamma_max=0.004,
             stationary_gammas=[0.002, 0.004], checkpoint_every=10, R=[4.0, 5.0], alpha=[0.0, 90.0],
             alpha_by_R=[{"R": 5.0, "alpha": [0.0, 45.0, 90.0, 135.0]}], grid_spacing=20.0,
             runtime_prepare=10, runtime_shear=10, runtime_probe=10, mem_mb=1000)
    cfg = tmp_path / "campaign.yaml"
    cfg.write_text(yaml.safe_dump(conf))
    targets = [f"out/probe/probe_{s}_{r}_0.parquet" for r in (0, 1)
               for s in ("quench", "stationary_g0.002", "stationary_g0.004")]
    r = subprocess.run([SNAKEMAKE, "-s", str(ROOT / "workflow/rules/reference.smk"), "--configfile", str(cfg),
                        "--directory", str(tmp_path), "--cores", "2", *targets], capture_output=True, text=True,
                       timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    samples = tmp_path / "samples"
    from epcal.reference.campaign import collect

    collect(tmp_path / "out", samples)
    assert sorted(p.name for p in samples.iterdir()) == ["0", "1"]
    out = tmp_path / "ref"
    r = subprocess.run([EPCAL, "reference", "assemble", str(samples), "--config", str(cfg), "--out", str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([EPCAL, "reference", "check", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    probe = pd.read_parquet(out / "probe.parquet")
    pieces = pd.concat([pd.read_parquet(p) for p in sorted(samples.glob("*/probe/*.parquet"))], ignore_index=True)
    key = ["state", "replica", "gamma_ext", "R", "alpha", "x", "y"]
    pd.testing.assert_frame_equal(probe.sort_values(key).reset_index(drop=True),
                                  pieces[probe.columns].sort_values(key).reset_index(drop=True))
    # three probed states per sample, told apart by gamma_ext; the orientations per R as configured
    assert sorted(probe["gamma_ext"].unique()) == [0.0, 0.002, 0.004]
    assert sorted(probe.loc[probe["R"] == 5.0, "alpha"].unique()) == [0.0, 45.0, 90.0, 135.0]
    assert sorted(probe.loc[probe["R"] == 4.0, "alpha"].unique()) == [0.0, 90.0]
    steps = pd.read_parquet(out / "macro_steps.parquet")
    assert sorted(steps["replica"].unique()) == [0, 1] and len(steps) == 2 * 41
    ref = yaml.safe_load((out / "reference.yaml").read_text())
    prov = ref["provenance"]["samples"]
    assert sorted(prov) == [0, 1]
    for r_, d in prov.items():
        info = json.loads((samples / str(r_) / "glass" / f"glass_{r_}.json").read_text())
        assert d["seed"] == info["seed"] and d["aqs"]["solver"] == "newton" and d["lammps_version"]
        assert d["wall_seconds"]["prepare_{}".format(r_)] > 0
    props = ref["properties"]
    assert props["shear_modulus"]["n"] == 2 and props["shear_modulus"]["se"] > 0
    ps = props["pressure_sensitivity"]  # variant B's alpha_p per probed state at the largest R
    assert sorted(ps) == ["quench", "stationary"]  # the stationary states of all strains together
    assert all(d["n_samples"] == 2 and np.isfinite(d["alpha_p"]) for d in ps.values())
    # a sample without every probed state is not complete: the reference grows by whole samples
    for p in (samples / "1/probe").glob("probe_stationary_g0.004_*"):
        p.unlink()
    r = subprocess.run([EPCAL, "reference", "assemble", str(samples), "--config", str(cfg), "--out", str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 0 and yaml.safe_load((out / "reference.yaml").read_text())["n_samples"] == 1


SHIPPED = ROOT / "resources/reference"


def test_shipped_campaign_pieces_follow_the_schema():
    """Every committed piece of the paper-geometry reference: the glass of sample r comes from its own
    recorded seed (derived from the campaign's base seed), has 10^4 atoms in the paper's box and its
    equilibration trace; AQS series, probe tables and checkpoints follow their contracts; the complete
    samples assemble into a reference directory that `epcal reference check` accepts."""
    from epcal.reference import shear
    from epcal.reference.campaign import sample_pieces
    from epcal.reference.glass import sample_seed
    from epcal.schema import PROBE, check_table

    conf = yaml.safe_load((ROOT / "config/atomistic_campaign.yaml").read_text())["reference"]["atomistic"]
    samples = sorted((SHIPPED / "samples").glob("[0-9]*"), key=lambda p: int(p.name))
    assert samples, "no committed sample under resources/reference/samples"
    for d in samples:
        r = int(d.name)
        info = json.loads((d / f"glass/glass_{r}.json").read_text())
        assert info["replica"] == r and info["seed"] == sample_seed(conf["seed"], r)
        assert info["n_atoms"] == conf["n_atoms"] and info["box"][0] == pytest.approx(98.8045, abs=1e-3)
        assert info["parameters"]["t_equil"] == conf["t_equil"] and info["quench"]["fnorm2"] < conf["quench_ftol"]
        trace = pd.read_parquet(d / f"glass/equilibration_{r}.parquet")
        assert len(trace) == conf["n_trace"] and trace["temperature"].mean() == pytest.approx(0.351, abs=0.005)
        steps_f = d / f"aqs/steps_{r}.parquet"
        if steps_f.exists():
            steps = pd.read_parquet(steps_f)
            assert list(steps["step"]) == list(range(int(round(conf["gamma_max"] / conf["dgamma"])) + 1))
            assert (steps["fnorm"] < conf["aqs_ftol"]).all()
        for f in sorted((d / "probe").glob("*.parquet")):
            assert check_table(pd.read_parquet(f), PROBE, str(f)) == []
        ck = d / "checkpoints" / f"aqs_{r}.npz"
        if ck.exists():
            st, step, rows, _ = shear.resume(ck)
            assert st.n == conf["n_atoms"] and len(rows) == step + 1
    states = ["quench"] + [f"stationary_g{g:g}" for g in conf["stationary_gammas"]]
    if sample_pieces(SHIPPED / "samples", states):
        from epcal.reference.assemble import assemble_samples
        from epcal.refdir import check_reference_dir

        out = Path(__import__("tempfile").mkdtemp())
        ref = assemble_samples(SHIPPED / "samples", conf, out, states)
        assert check_reference_dir(out) == [] and ref["n_atoms"] == conf["n_atoms"]


def test_shipped_reference_is_its_samples_assembled(tmp_path):
    """The default reference (resources/reference) is what `epcal reference assemble` makes of the
    committed samples (the tables are data derived from the pieces, row for row), at the paper's
    geometry: >= 8 samples of 10^4 atoms in L = 98.8045, AQS to gamma = 2, a >= 4 x 4 grid of centres
    per probed state, R = 5 ... 30 at alpha = 0, 45, 90, 135 and every 15 degrees at R = 30, the
    patch stress tensor kept."""
    from epcal.reference.assemble import assemble_samples

    conf = yaml.safe_load((ROOT / "config/atomistic_campaign.yaml").read_text())["reference"]["atomistic"]
    states = ["quench"] + [f"stationary_g{g:g}" for g in conf["stationary_gammas"]]
    ref = assemble_samples(SHIPPED / "samples", conf, tmp_path, states)
    shipped = yaml.safe_load((SHIPPED / "reference.yaml").read_text())
    assert ref["n_samples"] == shipped["n_samples"] >= 8 and shipped["n_atoms"] == 10000
    assert shipped["domain_length"] == pytest.approx(98.8045, abs=1e-3) and shipped["gamma_max"] == pytest.approx(2.0)
    assert ref["properties"] == shipped["properties"] and ref["provenance"]["seeds"] == shipped["provenance"]["seeds"]
    for name in ("macro.parquet", "probe.parquet", "macro_steps.parquet"):
        pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / name), pd.read_parquet(SHIPPED / name))
    probe = pd.read_parquet(SHIPPED / "probe.parquet")
    assert {"sxx_i", "syy_i", "sxy_i"} <= set(probe.columns)
    assert sorted(probe["R"].unique()) == [5.0, 10.0, 15.0, 20.0, 25.0, 30.0]
    for (state, r, _), g in probe.groupby(["state", "replica", probe["gamma_ext"].round(6)]):
        assert len(g[["x", "y"]].drop_duplicates()) >= 16, (state, r)
        assert set(g["alpha"]) >= {0.0, 45.0, 90.0, 135.0}
        assert sorted(g[g["R"] == 30.0]["alpha"].unique()) == [15.0 * i for i in range(12)]
    assert set(probe["state"]) == {"quench", "stationary"}
    assert sorted(probe[probe["state"] == "stationary"]["gamma_ext"].round(6).unique()) == [1.0, 1.5, 2.0]


def test_restore_keeps_a_local_checkpoint(tmp_path):
    """A campaign restarted on the same machine goes on from its own (further) checkpoints; a missing
    one comes from the committed pieces; a probe checkpoint and its .done.json stay together."""
    from epcal.reference.campaign import restore

    samples, out = tmp_path / "samples", tmp_path / "out"
    (samples / "0/checkpoints").mkdir(parents=True)
    (out / "checkpoints").mkdir(parents=True)
    for name in ("aqs_0.npz", "probe_quench_0_0.parquet", "probe_quench_0_0.parquet.done.json", "aqs_0.step10.npz"):
        (samples / "0/checkpoints" / name).write_bytes(b"committed")
    (out / "checkpoints/aqs_0.npz").write_bytes(b"local, further")
    (out / "checkpoints/probe_quench_0_0.parquet").write_bytes(b"local, further")
    written = {p.name for p in restore(samples, out)}
    assert written == {"aqs_0.step10.npz"}
    assert (out / "checkpoints/aqs_0.npz").read_bytes() == b"local, further"
    assert not (out / "checkpoints/probe_quench_0_0.parquet.done.json").exists()
    (out / "checkpoints/aqs_0.npz").unlink()
    restore(samples, out)
    assert (out / "checkpoints/aqs_0.npz").read_bytes() == b"committed"


def test_collect_skips_the_logs_of_a_preparation_in_progress(tmp_path):
    """A sample exists once its glass does: the (empty) log of a killed preparation is not committed."""
    from epcal.reference.campaign import collect

    out, samples = tmp_path / "out", tmp_path / "samples"
    for d in ("glass", "logs", "benchmarks"):
        (out / d).mkdir(parents=True)
    (out / "logs/prepare_2.log").write_text("")
    (out / "benchmarks/prepare_2.tsv").write_text("s\n1\n")
    (out / "glass/glass_0.npz").write_bytes(b"glass")
    (out / "logs/prepare_0.log").write_text("prepared")
    collect(out, samples)
    assert not (samples / "2").exists()
    assert (samples / "0/logs/prepare_0.log").read_text() == "prepared"
