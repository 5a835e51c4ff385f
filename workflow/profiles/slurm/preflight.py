"""Start-up checks of a run with the SLURM profile, before any job is submitted.

Called from the workflow's ``onstart`` (``workflow/profiles/slurm/preflight.smk``) when the
executor is ``slurm``; it raises one ``WorkflowError`` with one line per problem:

* ``slurm_account`` / ``slurm_partition`` still the profile's ``CHANGE_ME_...`` placeholder (a
  cluster without job accounting accepts any account string, so the plugin cannot tell);
* a partition this cluster does not have (``sinfo``), or a job that no node of its partition can
  hold (cores, memory, time limit): sbatch would refuse it after the run has started;
* a status command this cluster cannot answer: ``sacct`` without job accounting fails on every
  query and finished jobs stay "running" for ever; ``squeue`` only sees a finished job for
  ``MinJobAge`` seconds, which must exceed the plugin's longest wait between two status checks.
"""
from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass

PROFILE = "workflow/profiles/slurm/config.yaml"
PLACEHOLDER = "CHANGE_ME"
# snakemake-executor-plugin-slurm 2.6 (check_active_jobs, max_sleep_time): the interval between two
# status checks grows by 10 s per check without a finished job, up to 180 s
MAX_STATUS_INTERVAL_S = 180
HOW_TO_SET = {
    "slurm_account": "your Slurm account (sacctmgr show assoc user=$USER format=account, or sshare -U; "
                     "\"\" on a cluster without accounts)",
    "slurm_partition": "a partition of this cluster (sinfo -s)",
}


@dataclass(frozen=True)
class JobSpec:
    """What a cluster job asks of Slurm (the resources the executor turns into sbatch options)."""

    rule: str
    account: object
    partition: object
    cpus: int  # per task
    mem_mb: int | None  # per node
    runtime: int | None  # minutes


@dataclass(frozen=True)
class Partition:
    """Largest node of a partition (cores, memory in MB) and its time limit in minutes (None: infinite)."""

    name: str
    cpus: int
    mem_mb: int
    max_minutes: int | None


def _rules(specs) -> str:
    names = sorted({s.rule for s in specs})
    return ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")


def placeholder_problems(specs: list[JobSpec]) -> list[str]:
    """The placeholder account or partition, one line per key."""
    out = []
    for key, attr in (("slurm_account", "account"), ("slurm_partition", "partition")):
        bad = [s for s in specs if str(getattr(s, attr) or "").upper().startswith(PLACEHOLDER)]
        if bad:
            value = getattr(bad[0], attr)
            out.append(f"{key} = '{value}' is the placeholder of {PROFILE} (rules {_rules(bad)}): set "
                       f"default-resources: {key} there to {HOW_TO_SET[key]}")
    return out


def parse_minutes(limit: str) -> int | None:
    """A Slurm time limit ('infinite', 'MM', 'MM:SS', 'HH:MM:SS', 'D-HH[:MM[:SS]]') in whole minutes."""
    limit = limit.strip()
    if limit in ("infinite", "UNLIMITED", "n/a", "NONE", ""):
        return None
    days, _, rest = limit.rpartition("-")
    parts = [int(p) for p in rest.split(":")]
    if days:  # D-HH, D-HH:MM, D-HH:MM:SS
        parts += [0] * (3 - len(parts))
        h, m, s = parts
    elif len(parts) == 1:  # MM
        h, m, s = 0, parts[0], 0
    elif len(parts) == 2:  # MM:SS
        h, (m, s) = 0, parts
    else:
        h, m, s = parts
    return (int(days or 0) * 24 + h) * 60 + m + (1 if s else 0)


def parse_partitions(sinfo_out: str) -> dict[str, Partition]:
    """``sinfo -h -o '%R|%c|%m|%l'`` (one line per node configuration) -> the largest node per partition."""
    parts: dict[str, Partition] = {}
    for line in sinfo_out.splitlines():
        if line.count("|") != 3:
            continue
        name, cpus, mem, limit = (x.strip() for x in line.split("|"))
        cpus = int(re.sub(r"\D.*", "", cpus) or 0)
        mem = int(re.sub(r"\D.*", "", mem) or 0)
        old = parts.get(name)
        parts[name] = Partition(name, max(cpus, old.cpus if old else 0), max(mem, old.mem_mb if old else 0),
                                parse_minutes(limit))
    return parts


def partition_problems(specs: list[JobSpec], partitions: dict[str, Partition]) -> list[str]:
    """Unknown partitions, and jobs larger than every node of their partition or longer than its limit."""
    out = []
    asked = sorted({str(s.partition) for s in specs if s.partition and not str(s.partition).upper().startswith(PLACEHOLDER)})
    for name in asked:
        if name not in partitions:
            out.append(f"slurm_partition = '{name}' is not a partition of this cluster (sinfo lists: "
                       f"{', '.join(sorted(partitions)) or 'none'}): set default-resources: slurm_partition in {PROFILE}")
            continue
        p = partitions[name]
        mine = [s for s in specs if str(s.partition) == name]
        for what, too_big, limit in (
            ("cores", [s for s in mine if p.cpus and s.cpus > p.cpus], f"{p.cpus} cores"),
            ("mem_mb", [s for s in mine if p.mem_mb and (s.mem_mb or 0) > p.mem_mb], f"{p.mem_mb} MB"),
            ("runtime", [s for s in mine if p.max_minutes is not None and (s.runtime or 0) > p.max_minutes],
             f"{p.max_minutes} min"),
        ):
            if too_big:
                worst = max(too_big, key=lambda s: {"cores": s.cpus, "mem_mb": s.mem_mb or 0,
                                                    "runtime": s.runtime or 0}[what])
                val = {"cores": worst.cpus, "mem_mb": worst.mem_mb, "runtime": worst.runtime}[what]
                out.append(f"partition '{name}' allows at most {limit} per job but rule {worst.rule} asks {what} = {val} "
                           f"(rules {_rules(too_big)}; resources: in the config's stage sections): "
                           "choose another partition or smaller resources")
    return out


def status_problems(command: str | None, min_job_age: int | None, sacct_error: str | None) -> list[str]:
    """Whether ``command`` (the plugin's status command) can follow this cluster's jobs to their end."""
    key = f"slurm-status-command in {PROFILE}"
    if command == "sacct" and sacct_error:
        return [f"{key} is sacct, but sacct fails on this cluster ({sacct_error}): finished jobs would never be "
                "seen to finish; use squeue (it asks slurmctld, with or without job accounting)"]
    if command in (None, "squeue") and min_job_age is not None and min_job_age <= MAX_STATUS_INTERVAL_S:
        fix = ("use sacct (this cluster has job accounting)" if not sacct_error else
               f"ask the administrators for MinJobAge > {MAX_STATUS_INTERVAL_S} s (sacct fails here: {sacct_error})")
        return [f"{key} is squeue, but this cluster forgets finished jobs after MinJobAge = {min_job_age} s, "
                f"sooner than the plugin's longest wait between status checks ({MAX_STATUS_INTERVAL_S} s): {fix}"]
    return []


# ----------------------------------------------------------------------------- cluster queries
def _query(cmd: list[str]) -> tuple[int, str, str]:
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        return 127, "", str(e)
    return r.returncode, r.stdout, r.stderr.strip()


def cluster_partitions() -> dict[str, Partition]:
    rc, out, err = _query(["sinfo", "-h", "-o", "%R|%c|%m|%l"])
    if rc != 0:
        raise RuntimeError(f"sinfo failed ({err or rc}): is this a Slurm login node with a running slurmctld?")
    return parse_partitions(out)


def cluster_min_job_age() -> int | None:
    rc, out, _ = _query(["scontrol", "show", "config"])
    m = re.search(r"^MinJobAge\s*=\s*(\d+)", out, re.M) if rc == 0 else None
    return int(m.group(1)) if m else None


def sacct_error() -> str | None:
    """None when ``sacct`` answers (job accounting), else its first error line."""
    rc, _, err = _query(["sacct", "-X", "-n", "--format=JobIdRaw", "--starttime", "now"])
    return None if rc == 0 else (err.splitlines() or [f"exit {rc}"])[0]


def job_specs(dag) -> list[JobSpec]:
    """The cluster jobs of this run (local rules excluded), with the resources they will ask for."""
    specs = []
    for job in dag.needrun_jobs():
        if job.is_local:
            continue
        r = job.resources

        def num(key):
            v = r.get(key)
            return int(v) if isinstance(v, (int, float)) else None

        # cores per task (an MPI job's tasks may spread over nodes; --mem is per node)
        cpus = num("cpus_per_task") or job.threads
        specs.append(JobSpec(job.rule.name, r.get("slurm_account"), r.get("slurm_partition"), int(cpus),
                             num("mem_mb"), num("runtime")))
    return specs


def check(workflow) -> None:
    """Raise a WorkflowError listing every problem, before the scheduler submits anything."""
    from snakemake.exceptions import WorkflowError

    specs = job_specs(workflow.dag)
    if not specs:
        return
    problems = placeholder_problems(specs)
    try:
        problems += partition_problems(specs, cluster_partitions())
    except RuntimeError as e:
        problems.append(str(e))
    settings = workflow.executor_settings
    problems += status_problems(getattr(settings, "status_command", None), cluster_min_job_age(), sacct_error())
    if problems:
        raise WorkflowError("SLURM profile: " + "\n  ".join(problems))
