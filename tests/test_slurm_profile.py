"""The SLURM profile's settings and its start-up checks (workflow/profiles/slurm/preflight.py), without a cluster.

The checks against a real Slurm (placeholders, unknown partition, sacct without accounting, a whole
run) are in tests/test_slurm_e2e.py.
"""
from __future__ import annotations

import runpy
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PROFILE = ROOT / "workflow" / "profiles" / "slurm"
pf = runpy.run_path(str(PROFILE / "preflight.py"))
JobSpec, Partition = pf["JobSpec"], pf["Partition"]


def spec(rule="sweep_macro", account="acct", partition="short", cpus=1, mem_mb=2000, runtime=60):
    return JobSpec(rule, account, partition, cpus, mem_mb, runtime)


def test_profile_leaves_only_account_and_partition_to_set():
    cfg = yaml.safe_load((PROFILE / "config.yaml").read_text())
    placeholders = {k for k, v in cfg["default-resources"].items() if str(v).startswith("CHANGE_ME")}
    assert placeholders == {"slurm_account", "slurm_partition"}
    flat = {k: v for k, v in cfg.items() if k != "default-resources"}
    assert not [k for k, v in flat.items() if "CHANGE_ME" in str(v)]
    # the status command that works with and without job accounting, and a first check sooner than 40 s
    assert cfg["executor"] == "slurm" and cfg["slurm-status-command"] == "squeue"
    assert 0 < cfg["slurm-init-seconds-before-status-checks"] < 40
    # the plugin falls back to sacct when MinJobAge < 3 x the initial interval: Slurm's default 300 s is far above
    assert 3 * cfg["slurm-init-seconds-before-status-checks"] < 300


def test_placeholders_give_one_line_per_key_naming_the_file():
    lines = pf["placeholder_problems"]([spec(account="CHANGE_ME_account", partition="CHANGE_ME_partition"),
                                        spec("kernel", account="CHANGE_ME_account", partition="CHANGE_ME_partition")])
    assert len(lines) == 2
    assert lines[0].startswith("slurm_account = 'CHANGE_ME_account' is the placeholder of workflow/profiles/slurm/config.yaml")
    assert "rules kernel, sweep_macro" in lines[0] and "\n" not in lines[0]
    assert lines[1].startswith("slurm_partition = 'CHANGE_ME_partition'")
    assert pf["placeholder_problems"]([spec(), spec(account="")]) == []


@pytest.mark.parametrize("limit, minutes", [("infinite", None), ("30", 30), ("30:00", 30), ("1:30:00", 90),
                                            ("2-00:00:00", 2880), ("1-12", 2160), ("00:10:30", 11)])
def test_slurm_time_limits(limit, minutes):
    assert pf["parse_minutes"](limit) == minutes


def test_partition_table_keeps_the_largest_node():
    parts = pf["parse_partitions"]("short|16|64000|4:00:00\nshort|32|128000|4:00:00\nlong|8+|32000+|7-00:00:00\n")
    assert parts["short"] == Partition("short", 32, 128000, 240)
    assert parts["long"] == Partition("long", 8, 32000, 7 * 1440)


def test_unknown_partition_and_jobs_too_big_for_it():
    parts = {"short": Partition("short", 4, 8000, 120)}
    assert pf["partition_problems"]([spec()], parts) == []
    (line,) = pf["partition_problems"]([spec(partition="shrot")], parts)
    assert "'shrot' is not a partition of this cluster (sinfo lists: short)" in line
    lines = pf["partition_problems"]([spec("reference_twin", mem_mb=16000), spec("sweep_meso", cpus=8),
                                      spec("ref_shear", runtime=2880)], parts)
    assert len(lines) == 3
    assert "allows at most 4 cores per job but rule sweep_meso asks cores = 8" in lines[0]
    assert "allows at most 8000 MB per job but rule reference_twin asks mem_mb = 16000" in lines[1]
    assert "allows at most 120 min per job but rule ref_shear asks runtime = 2880" in lines[2]


def test_status_command_checks():
    no_acct = "Slurm accounting storage is disabled"
    (line,) = pf["status_problems"]("sacct", 300, no_acct)
    assert "sacct fails on this cluster (Slurm accounting storage is disabled)" in line and "use squeue" in line
    assert pf["status_problems"]("squeue", 300, no_acct) == []
    assert pf["status_problems"]("squeue", 300, None) == []
    assert pf["status_problems"]("sacct", 30, None) == []
    (line,) = pf["status_problems"]("squeue", 60, None)
    assert "MinJobAge = 60 s" in line and "use sacct" in line
    (line,) = pf["status_problems"]("squeue", 60, no_acct)
    assert "ask the administrators for MinJobAge > 180 s" in line
