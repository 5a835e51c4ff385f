"""A small calibration through workflow/profiles/slurm on a real Slurm, against the same run done locally.

The module starts a private one-node Slurm 22.05 (tests/slurm_cluster.py: Debian's slurmctld, slurmd
and munge, installed with apt when missing; no job accounting, so sacct fails as on a cluster
without slurmdbd) and stops its daemons by PID at the end.  The profile is used the way a user
would: a copy of workflow/profiles/slurm with only slurm_account and slurm_partition edited; the
command line adds only --slurm-init-seconds-before-status-checks 2 (short jobs, short test).

Asserted: every cluster job went through sbatch (its Slurm job id in Snakemake's log and in
slurmctld's records, job name = the run's id), the rule's threads / mem_mb / runtime are the cores,
memory and time limit Slurm recorded, local rules did not reach Slurm, the optimum equals a local
run's on the same config bit for bit, and wrong settings stop the run before any submission with
one line naming the key.

Where Slurm cannot be started (not root, no apt, a foreign /etc/slurm/slurm.conf) the module is
skipped with the reason, except under CI=true, where that is a failure.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from slurm_cluster import SlurmCluster, UnavailableError
from test_pipeline_config import SNAKEMAKE

ROOT = Path(__file__).resolve().parents[1]
PROFILE = ROOT / "workflow" / "profiles" / "slurm"
ACCOUNT = "epcal-ci"
THREADS = min(2, os.cpu_count() or 1)
pytestmark = pytest.mark.skipif(not Path(SNAKEMAKE).exists(), reason="snakemake not installed")

# a handful of cluster jobs: 1 kernel, 3 macro and 3 meso cells, 2 optimum batches, the figure tables;
# stage resources distinct from each other so that each job's record identifies its rule's values
CFG = {
    "seed": 31,
    "l": [6.6],
    "k": [1.6, 2.2, 2.8],
    "reference": {"source": "tables", "tables": {"path": str(ROOT / "resources" / "reference-small")}},
    "losses": {"R": 15.0},
    "macro": {"replicas": 4, "n_boot": 10,
              "search": {"method": "scaled", "lam": {"min": 0.5, "max": 5.0, "num": 8, "log": True},
                         "chi": [1.0, 2.0, 3.0], "coarse_replicas": 2, "refine": 1},
              "resources": {"threads": 1, "mem_mb": 700, "runtime": 7}},
    "meso": {"replicas": 4, "n_boot": 10, "neighborhood": {"lam_rel": [0.0], "chi": [0.0], "valley": 1},
             "resources": {"threads": THREADS, "mem_mb": 600, "runtime": 6}},
    "fit": {"half_width": None, "interp": "regression"},
    "quench": {"enabled": False},
    "optimum": {"replicas": 4, "batch_size": 2, "n_alpha": 4, "stride": 3,
                "resources": {"threads": 1, "mem_mb": 800, "runtime": 8}},
    "emergent": {"enabled": False},
    "slip_systems": {"enabled": False},
    "variants": {"enabled": False},
    "figures": {"dpi": 50},
}
# rule -> (cores, MB, minutes) that Slurm must have recorded (stage resources above; kernel's own)
EXPECTED = {
    "reference_check": (1, 1000, 10),
    "kernel": (1, 1000, 10),
    "sweep_macro": (1, 700, 7),
    "sweep_meso": (THREADS, 600, 6),
    "optimum_ensemble": (1, 800, 8),
    **{f"fig{n}_data": (1, 2000, 30) for n in (2, 4, 8, 9)},  # memory: max(2000, 4 x input size + 1000)
}
COUNTS = {"reference_check": 1, "kernel": 1, "sweep_macro": 3, "sweep_meso": 3, "optimum_ensemble": 2,
          **{f"fig{n}_data": 1 for n in (2, 4, 8, 9)}}
LOCAL_RULES = ("select", "collect_meso", "fit", "optimum_table", "fig2", "fig3", "fig4", "fig8", "fig9")
SUBMITTED = re.compile(r"Job \d+ has been submitted with SLURM jobid (\d+) \(log: (\S+)\)")
RUN_ID = re.compile(r"SLURM run ID: (\S+)")


@pytest.fixture(scope="module")
def cluster():
    # not pytest's tmp_path: munged wants every directory above its socket searchable by all
    d = Path(tempfile.mkdtemp(prefix="epcal-slurm-"))
    c = SlurmCluster(d)
    try:
        c.start()
    except UnavailableError as e:
        shutil.rmtree(d, ignore_errors=True)
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but no Slurm for the SLURM profile test: {e}")
        pytest.skip(f"no Slurm here: {e}")
    yield c
    c.stop()
    shutil.rmtree(d, ignore_errors=True)


def user_profile(dest: Path, account=ACCOUNT, partition=None) -> Path:
    """A copy of the shipped profile with only its two placeholders replaced (what a user edits)."""
    shutil.copytree(PROFILE, dest)
    cfg = dest / "config.yaml"
    text = cfg.read_text()
    for key, value in (("slurm_account", account), ("slurm_partition", partition)):
        if value is not None:
            text, n = re.subn(rf'(?m)^(\s*{key}:\s*)"CHANGE_ME_\w+"', rf'\g<1>"{value}"', text)
            assert n == 1, key
    cfg.write_text(text)
    return dest


def snake(workdir: Path, *args, timeout=600):
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "cfg.yaml").write_text(yaml.safe_dump(CFG))
    cmd = [SNAKEMAKE, "-s", str(ROOT / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(workdir / "cfg.yaml"), *args]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    return r, time.perf_counter() - t0


def _failure(r, workdir: Path, cluster=None) -> str:
    logs = "\n".join(f"--- {p}\n{p.read_text(errors='ignore')[-1200:]}"
                     for p in sorted(workdir.rglob("*.log")) if ".snakemake/log" not in str(p))
    return f"{r.stderr[-5000:]}\n{logs[-6000:]}\n{cluster.logs() if cluster else ''}"


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("local")
    r, _ = snake(d, "-c", "2", "results/calibration/optimum.parquet")
    assert r.returncode == 0, _failure(r, d)
    return d


@pytest.fixture(scope="module")
def slurm_run(cluster, tmp_path_factory):
    base = tmp_path_factory.mktemp("slurm")
    profile = user_profile(base / "profile", partition=cluster.partition)
    d = base / "run"
    r, elapsed = snake(d, "--profile", str(profile), "--slurm-init-seconds-before-status-checks", "2")
    assert r.returncode == 0, _failure(r, d, cluster)
    log = r.stderr + r.stdout
    ids = SUBMITTED.findall(log)
    run_id = RUN_ID.search(log)
    assert ids and run_id, log[-3000:]
    print(f"SLURM run: {len(ids)} jobs in {elapsed:.0f} s")
    return {"dir": d, "log": log, "ids": [i for i, _ in ids], "run_id": run_id.group(1), "elapsed": elapsed}


def _rule_of(record: dict) -> str:
    m = re.match(r"rule_(\w+?)_wildcards_", record.get("Comment", "")) or re.match(r"rule_(\w+)$", record.get("Comment", ""))
    assert m, record.get("Comment")
    return m.group(1)


def _minutes(limit: str) -> int:
    h, m, s = (int(x) for x in limit.split(":"))
    return h * 60 + m + (1 if s else 0)


def test_cluster_jobs_went_through_sbatch_with_the_rules_resources(cluster, slurm_run):
    records = {i: cluster.show_job(i) for i in slurm_run["ids"]}
    # slurmctld knows exactly the jobs the log names, all of this run, all finished on this node
    assert sorted(cluster.jobs_named(slurm_run["run_id"]), key=int) == sorted(slurm_run["ids"], key=int)
    by_rule: dict[str, list[dict]] = {}
    for i, rec in records.items():
        assert rec["JobState"] == "COMPLETED" and rec["ExitCode"] == "0:0", (i, rec)
        assert rec["JobName"] == slurm_run["run_id"] and rec["Partition"] == cluster.partition
        assert rec["Account"] == ACCOUNT and rec["BatchHost"] == cluster.node
        by_rule.setdefault(_rule_of(rec), []).append(rec)
    for rule, n in COUNTS.items():
        assert len(by_rule.get(rule, [])) == n, (rule, sorted(by_rule))
    for rule, recs in sorted(by_rule.items()):  # shown with pytest -s
        print(f"{rule}: Slurm jobs {','.join(r['JobId'] for r in recs)}: NumCPUs={recs[0]['NumCPUs']} "
              f"MinMemoryNode={recs[0]['MinMemoryNode']} TimeLimit={recs[0]['TimeLimit']}")
    assert set(by_rule) == set(COUNTS), sorted(by_rule)
    for rule, recs in by_rule.items():
        cpus, mem, minutes = EXPECTED[rule]
        for rec in recs:
            assert (int(rec["NumCPUs"]), rec["MinMemoryNode"], _minutes(rec["TimeLimit"])) == (cpus, f"{mem}M", minutes), rec
    for f in ("calibration/optimum.parquet", "figures/fig2.png", "figures/fig4.png", "figures/fig9.png"):
        assert (slurm_run["dir"] / "results" / f).exists(), f


def _local_jobs(log: str) -> dict[str, list[str]]:
    """rule -> input files of every job Snakemake ran on the submit host ('localrule NAME:' blocks)."""
    jobs: dict[str, list[str]] = {}
    for m in re.finditer(r"(?m)^localrule (\w+):\n((?:    .*\n)+)", log):
        inputs = re.search(r"(?m)^    input: (.*)$", m.group(2))
        jobs.setdefault(m.group(1), []).extend(inputs.group(1).split(", ") if inputs else [])
    return jobs


def test_submit_host_reads_only_small_tables(slurm_run):
    """Local jobs: the small-table and plotting rules, never a reader of the run ensembles or the reference."""
    jobs = _local_jobs(slurm_run["log"])
    assert set(jobs) == set(LOCAL_RULES) | {"all"}, sorted(jobs)
    ref = str(ROOT / "resources" / "reference-small")
    for rule, inputs in jobs.items():
        for f in inputs:
            assert not f.startswith(("results/optimum/", ref, "results/reference/")), (rule, f)
            if not f.endswith(".py") and rule != "all":
                assert (slurm_run["dir"] / f).stat().st_size < 200_000, (rule, f)


def test_slurm_optimum_equals_the_local_run(slurm_run, local_run):
    a = pd.read_parquet(slurm_run["dir"] / "results/calibration/optimum.parquet")
    b = pd.read_parquet(local_run / "results/calibration/optimum.parquet")
    pd.testing.assert_frame_equal(a, b, check_exact=True)


def test_slurm_run_is_a_handful_of_jobs_none_retried(slurm_run):
    """Each cluster job submitted once (the profile retries a failed job once: that would add an id).
    Wall time (printed above) is 2-5 minutes on 2 cores, depending on what else runs there."""
    assert len(slurm_run["ids"]) == len(set(slurm_run["ids"])) == sum(COUNTS.values()), slurm_run["ids"]


# ------------------------------------------------------------------ start-up errors, before any submission
def _submits_nothing(cluster, tmp_path, profile, *extra):
    n0 = len(_all_jobs())
    r, _ = snake(tmp_path / "run", "--profile", str(profile), *extra, timeout=120)
    assert r.returncode != 0
    assert len(_all_jobs()) == n0, "a job was submitted"
    assert "has been submitted" not in r.stderr and "Logfile" not in r.stderr, r.stderr[-2000:]
    return r.stderr


def _all_jobs() -> list[str]:
    r = subprocess.run(["squeue", "--states=all", "--noheader", "--format=%i"], capture_output=True, text=True)
    return r.stdout.split()


def test_placeholders_and_sacct_without_accounting_stop_the_run(cluster, tmp_path):
    """The shipped profile (placeholders) with the plugin's default status command, sacct, on a cluster
    without slurmdbd (where that run would wait for ever): one line per problem, nothing submitted."""
    err = _submits_nothing(cluster, tmp_path, PROFILE, "--slurm-status-command", "sacct")
    for key in ("slurm_account", "slurm_partition"):
        lines = [ln for ln in err.splitlines() if f"{key} = 'CHANGE_ME_" in ln]
        assert len(lines) == 1, err[-3000:]
        assert "workflow/profiles/slurm/config.yaml" in lines[0]
    lines = [ln for ln in err.splitlines() if "sacct fails on this cluster" in ln]
    assert len(lines) == 1 and "accounting" in lines[0] and "use squeue" in lines[0], err[-3000:]


def test_unknown_partition_and_a_job_over_the_time_limit_stop_the_run(cluster, tmp_path):
    """A partition this cluster lacks (every job) and one that exists but is too short for kernel's 10 min."""
    profile = user_profile(tmp_path / "p", partition="no_such_partition")
    err = _submits_nothing(cluster, tmp_path, profile, "--set-resources", f"kernel:slurm_partition={cluster.short_partition}")
    lines = [ln for ln in err.splitlines() if "'no_such_partition' is not a partition of this cluster" in ln]
    assert len(lines) == 1 and cluster.partition in lines[0], err[-3000:]
    lines = [ln for ln in err.splitlines() if f"partition '{cluster.short_partition}' allows at most 5 min per job" in ln]
    assert len(lines) == 1 and "rule kernel asks runtime = 10" in lines[0], err[-3000:]
