"""A private one-node Slurm cluster for the tests (Debian's Slurm 22.05 + munge, no accounting).

``SlurmCluster(workdir).start()`` installs the Debian packages when they are missing (apt, as root),
writes a munge key, starts ``munged``, ``slurmctld`` and ``slurmd`` (each forks itself and writes
its PID file in ``workdir``) and waits until the node is idle; ``stop()`` ends exactly those
three processes by PID and removes the configuration it wrote.

The node is this host: all its cores and ~80 % of its memory, ``proctrack/linuxproc``,
``task/none``, ``accounting_storage/none`` (``sacct`` fails as on a cluster without slurmdbd).
The configuration goes to Slurm's default path ``/etc/slurm/slurm.conf``, not to a private
file named by ``SLURM_CONF``: snakemake-executor-plugin-slurm-jobstep drops every ``SLURM_*``
variable before its ``srun`` inside the job (snakemake-executor-plugin-slurm issue #164), so a
cluster whose configuration is only reachable through ``SLURM_CONF`` cannot run its jobs.
An existing ``/etc/slurm/slurm.conf`` that this module did not write is never touched
(``UnavailableError``).
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge")
BINARIES = ("slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "sinfo", "munged")
CONF = Path("/etc/slurm/slurm.conf")
MARKER = "# written by epcal tests/slurm_cluster.py"
PARTITION = "epcal"
SHORT_PARTITION, SHORT_MINUTES = "epcal_short", 5  # a second partition with a time limit


class UnavailableError(RuntimeError):
    """A cluster cannot be started here (not root, no apt, a foreign Slurm configuration)."""


def _run(cmd, timeout=120, check=True, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}): {(r.stderr or r.stdout).strip()[-800:]}")
    return r


def missing_binaries() -> list[str]:
    return [b for b in BINARIES if shutil.which(b) is None and not Path(f"/usr/sbin/{b}").exists()]


def install_packages() -> None:
    """apt-get install the Debian packages (no recommends); refresh the package lists once if needed."""
    if not missing_binaries():
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise UnavailableError(f"Slurm binaries {missing_binaries()} missing and apt-get unusable (root: "
                               f"{os.geteuid() == 0}, apt-get: {shutil.which('apt-get')})")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES]
    r = _run(cmd, timeout=600, check=False, env=env)
    if r.returncode != 0:
        _run(["apt-get", "update", "-q"], timeout=600, check=False, env=env)
        r = _run(cmd, timeout=600, check=False, env=env)
    if r.returncode != 0 or missing_binaries():
        raise UnavailableError(f"apt-get install {' '.join(PACKAGES)} failed: {r.stderr.strip()[-800:]}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def node_memory_mb(fraction=0.8) -> int:
    """``fraction`` of this host's MemTotal, in MB (the node's RealMemory)."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(int(line.split()[1]) / 1024 * fraction)
    raise RuntimeError("MemTotal not in /proc/meminfo")


def _sbin(name) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


class SlurmCluster:
    """One node (this host) in partitions ``epcal`` (no time limit) and ``epcal_short`` (5 min); munge
    with a private key and socket."""

    def __init__(self, workdir: Path, min_job_age: int = 300):
        self.dir = Path(workdir)
        self.min_job_age = int(min_job_age)
        self.node = socket.gethostname().split(".")[0]
        self.cpus = os.cpu_count() or 1
        self.memory_mb = node_memory_mb()
        self.partition = PARTITION
        self.short_partition = SHORT_PARTITION
        self.pids: dict[str, int] = {}
        self._wrote_conf = False

    # ------------------------------------------------------------------ configuration
    def _paths(self):
        d = self.dir
        return {"munge": d / "munge", "state": d / "state", "spool": d / "spool", "log": d / "log"}

    def slurm_conf(self) -> str:
        p = self._paths()
        return "\n".join([
            MARKER,
            "ClusterName=epcaltest",
            f"SlurmctldHost={self.node}(127.0.0.1)",
            f"SlurmctldPort={_free_port()}",
            f"SlurmdPort={_free_port()}",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={p['munge'] / 'munge.socket'}",
            f"StateSaveLocation={p['state']}",
            f"SlurmdSpoolDir={p['spool']}",
            f"SlurmctldPidFile={self.dir / 'slurmctld.pid'}",
            f"SlurmdPidFile={self.dir / 'slurmd.pid'}",
            f"SlurmctldLogFile={p['log'] / 'slurmctld.log'}",
            f"SlurmdLogFile={p['log'] / 'slurmd.log'}",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "MpiDefault=none",
            "SchedulerType=sched/backfill",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core_Memory",
            "AccountingStorageType=accounting_storage/none",
            "JobAcctGatherType=jobacct_gather/none",
            "JobCompType=jobcomp/none",
            "ReturnToService=2",
            f"MinJobAge={self.min_job_age}",
            f"NodeName={self.node} NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory={self.memory_mb} State=UNKNOWN",
            f"PartitionName={self.partition} Nodes={self.node} Default=YES MaxTime=INFINITE State=UP",
            f"PartitionName={self.short_partition} Nodes={self.node} MaxTime={SHORT_MINUTES} State=UP",
            "",
        ])

    def _write_conf(self):
        if CONF.exists() and MARKER not in CONF.read_text(errors="ignore"):
            raise UnavailableError(f"{CONF} exists and was not written by this test (a real Slurm here?)")
        CONF.parent.mkdir(parents=True, exist_ok=True)
        CONF.write_text(self.slurm_conf())
        self._wrote_conf = True

    def _write_munge_key(self):
        m = self._paths()["munge"]
        m.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o755)  # munged: the socket's directories must be searchable by all
        os.chmod(m, 0o755)
        key = m / "munge.key"
        key.write_bytes(os.urandom(1024))
        os.chmod(key, 0o400)

    # ------------------------------------------------------------------ processes
    def _pid_from(self, name: str, pidfile: Path, timeout=20.0):
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if pidfile.exists() and pidfile.read_text().strip():
                self.pids[name] = int(pidfile.read_text().split()[0])
                return
            time.sleep(0.1)
        raise RuntimeError(f"{name} wrote no PID file {pidfile}: {self.logs()}")

    def _start_munged(self):
        m = self._paths()["munge"]
        _run([_sbin("munged"), f"--socket={m / 'munge.socket'}", f"--key-file={m / 'munge.key'}",
              f"--pid-file={m / 'munged.pid'}", f"--log-file={m / 'munged.log'}", f"--seed-file={m / 'munged.seed'}"])
        self._pid_from("munged", m / "munged.pid")

    def _start_slurm(self):
        for name in ("slurmctld", "slurmd"):
            _run([_sbin(name)])  # forks itself; the PID comes from its PID file
            self._pid_from(name, self.dir / f"{name}.pid")

    def wait_idle(self, timeout=60.0):
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            r = _run(["sinfo", "-h", "-N", "-o", "%T"], check=False)
            if r.returncode == 0 and set(r.stdout.split()) == {"idle"}:
                return
            time.sleep(0.5)
        raise RuntimeError(f"the node did not come up idle: {self.logs()}")

    def start(self) -> "SlurmCluster":
        install_packages()
        if os.geteuid() != 0:
            raise UnavailableError("slurmd and munged of this test need root")
        for p in self._paths().values():
            p.mkdir(parents=True, exist_ok=True)
        self._write_munge_key()
        self._write_conf()
        try:
            self._start_munged()
            self._start_slurm()
            self.wait_idle()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self):
        """SIGTERM the daemons this cluster started (by PID), wait for them, remove our slurm.conf."""
        for name in ("slurmd", "slurmctld", "munged"):
            pid = self.pids.pop(name, None)
            if pid is None:
                continue
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            t0 = time.monotonic()
            while time.monotonic() - t0 < 15 and Path(f"/proc/{pid}").exists():
                time.sleep(0.1)
            if Path(f"/proc/{pid}").exists():
                os.kill(pid, signal.SIGKILL)
        if self._wrote_conf and CONF.exists() and MARKER in CONF.read_text(errors="ignore"):
            CONF.unlink()
        self._wrote_conf = False

    # ------------------------------------------------------------------ queries
    def logs(self) -> str:
        out = []
        for f in sorted(self._paths()["log"].glob("*.log")) + [self._paths()["munge"] / "munged.log"]:
            if f.exists():
                out.append(f"--- {f.name}\n{f.read_text(errors='ignore')[-1500:]}")
        return "\n".join(out)

    def show_job(self, job_id: str) -> dict[str, str]:
        """``scontrol show job -o`` of one job as a dict (kept by slurmctld MinJobAge seconds after its end)."""
        r = _run(["scontrol", "show", "job", "-o", str(job_id)])
        fields = {}
        for tok in r.stdout.split():
            if "=" in tok:
                k, v = tok.split("=", 1)
                fields.setdefault(k, v)
        return fields

    def jobs_named(self, name: str) -> list[str]:
        r = _run(["squeue", "--states=all", "--noheader", "--format=%i", "--name", name])
        return r.stdout.split()
