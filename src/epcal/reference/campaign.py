"""A reference campaign that outlives its sessions: per-sample pieces kept in the repository.

The rules of ``workflow/rules/reference.smk`` make each sample in a working directory (the
campaign's ``outdir``).  :func:`collect` copies every finished piece of a sample (the glass, its
equilibration trace, the AQS series, the probed states, the probe tables, benchmarks and logs)
and the checkpoints of the pieces still in progress into ``SAMPLES/<replica>/``, with the same
relative paths as in ``outdir``; :func:`restore` copies them back (a fresh machine resumes from
the last committed checkpoint) with modification times in the order of the rules, so Snakemake
sees the restored outputs as up to date.  A piece is a rule output: it exists only once its job
has finished (every writer is atomic), so a copied file is never half-written.

:func:`sample_pieces` tells which samples are complete (glass, AQS series and every probed
state's table): only those go into the assembled reference tables.
"""
from __future__ import annotations

import os
import re
import time
from pathlib import Path

from ..atomicio import copy_file

#: (subdirectory, file-name pattern with the replica as group "r", rule order for restored mtimes)
PIECES = (
    ("glass", r"glass_(?P<r>\d+)\.(npz|json)", 0),
    ("glass", r"equilibration_(?P<r>\d+)\.parquet", 0),
    ("aqs", r"steps_(?P<r>\d+)\.parquet", 1),
    ("aqs", r"stationary_(?P<r>\d+)_g[0-9.]+\.npz", 1),
    ("probe", r"probe_(quench|stationary_g[0-9.]+)_(?P<r>\d+)_\d+\.parquet", 2),
    ("bauschinger", r"bauschinger_(?P<r>\d+)\.parquet", 2),
    ("benchmarks", r"(prepare|shear|bauschinger)_(?P<r>\d+)\.tsv", 3),
    ("benchmarks", r"probe_(quench|stationary_g[0-9.]+)_(?P<r>\d+)_\d+\.tsv", 3),
    ("logs", r"(prepare|shear|bauschinger)_(?P<r>\d+)\.log", 3),
    ("logs", r"probe_(quench|stationary_g[0-9.]+)_(?P<r>\d+)_\d+\.log", 3),
)
#: checkpoints of pieces in progress (AQS state + rows, snapshots taken so far, finished patches)
CHECKPOINTS = (
    r"aqs_(?P<r>\d+)\.npz", r"aqs_(?P<r>\d+)\.step\d+\.npz",
    r"probe_(quench|stationary_g[0-9.]+)_(?P<r>\d+)_\d+\.parquet(\.done\.json)?",
)


def _replica_files(root: Path, subdir: str, pattern: str):
    d = root / subdir
    if not d.is_dir():
        return
    rx = re.compile(pattern + r"\Z")
    for p in sorted(d.iterdir()):
        m = rx.match(p.name)
        if m and p.is_file():
            yield int(m.group("r")), p


def _copy(src: Path, dst: Path) -> bool:
    """Copy ``src`` to ``dst`` atomically if the content differs; True when something was copied."""
    if dst.exists() and dst.stat().st_size == src.stat().st_size and dst.read_bytes() == src.read_bytes():
        return False
    copy_file(src, dst)
    return True


def collect(outdir, samples, replicas=None) -> list[Path]:
    """Copy the finished pieces and in-progress checkpoints of ``outdir`` into ``samples/<r>/``.

    A checkpoint is dropped from ``samples`` once the piece it belongs to is finished there.
    Returns the paths written (or removed) under ``samples``.
    """
    outdir, samples = Path(outdir), Path(samples)
    want = None if replicas is None else {int(r) for r in replicas}
    # logs and benchmarks belong to a sample once its glass exists (those of a preparation in
    # progress are not pieces)
    prepared = {r for d in (outdir, *samples.glob("[0-9]*"))
                for r, _ in _replica_files(d, "glass", r"glass_(?P<r>\d+)\.npz")}
    changed = []
    for subdir, pattern, _ in PIECES:
        for r, p in _replica_files(outdir, subdir, pattern):
            if subdir in ("logs", "benchmarks") and r not in prepared:
                continue
            if want is None or r in want:
                dst = samples / str(r) / subdir / p.name
                if _copy(p, dst):
                    changed.append(dst)
    for pattern in CHECKPOINTS:
        for r, p in _replica_files(outdir, "checkpoints", pattern):
            if (want is None or r in want) and not _finished(samples / str(r), r, p.name):
                dst = samples / str(r) / "checkpoints" / p.name
                if _copy(p, dst):
                    changed.append(dst)
    # checkpoints of finished pieces are not needed any more
    for ck_dir in sorted(samples.glob("*/checkpoints")):
        r = int(ck_dir.parent.name)
        if want is not None and r not in want:
            continue
        for ck in sorted(ck_dir.iterdir()):
            if _finished(ck_dir.parent, r, ck.name):
                ck.unlink()
                changed.append(ck)
    return changed


def _finished(sample_dir: Path, r: int, checkpoint_name: str) -> bool:
    """Is the piece that checkpoint ``checkpoint_name`` belongs to finished in ``sample_dir``?"""
    if checkpoint_name.startswith("aqs_"):
        return (sample_dir / "aqs" / f"steps_{r}.parquet").exists()
    return (sample_dir / "probe" / (checkpoint_name.split(".parquet")[0] + ".parquet")).exists()


def restore(samples, outdir, replicas=None) -> list[Path]:
    """Copy ``samples/<r>/`` back into ``outdir``; mtimes follow the rule order (inputs older than outputs).

    A checkpoint already in ``outdir`` is kept: the committed one was collected from it, so the
    local one is as far or further (a campaign restarted on the same machine goes on from there)."""
    samples, outdir = Path(samples), Path(outdir)
    want = None if replicas is None else {int(r) for r in replicas}
    t0 = time.time() - 3600.0
    written = []
    for r_dir in sorted(p for p in samples.iterdir() if p.is_dir() and p.name.isdigit()):
        if want is not None and int(r_dir.name) not in want:
            continue
        for subdir, pattern, order in PIECES:
            for _, p in _replica_files(r_dir, subdir, pattern):
                dst = outdir / subdir / p.name
                _copy(p, dst)
                os.utime(dst, (t0 + 60 * order, t0 + 60 * order))
                written.append(dst)
        for pattern in CHECKPOINTS:
            for _, p in _replica_files(r_dir, "checkpoints", pattern):
                dst = outdir / "checkpoints" / p.name
                if dst.exists() or dst.with_name(p.name.removesuffix(".done.json")).exists():
                    continue  # a probe checkpoint and its .done.json go together
                _copy(p, dst)
                written.append(dst)
    return written


def sample_pieces(samples, states) -> dict[int, dict]:
    """{replica: pieces} of the complete samples under ``samples`` (every one of ``states`` probed).

    ``states``: the probed-state names of the campaign (``quench``, ``stationary_g1``, ...).
    """
    out = {}
    for r_dir in sorted((p for p in Path(samples).iterdir() if p.is_dir() and p.name.isdigit()),
                        key=lambda p: int(p.name)):
        r = int(r_dir.name)
        glass = r_dir / "glass"
        pieces = {
            "info": glass / f"glass_{r}.json",
            "trace": glass / f"equilibration_{r}.parquet",
            "steps": r_dir / "aqs" / f"steps_{r}.parquet",
            "probes": {s: sorted((r_dir / "probe").glob(f"probe_{s}_{r}_*.parquet")) for s in states},
            "bauschinger": r_dir / "bauschinger" / f"bauschinger_{r}.parquet",
            "benchmarks": sorted((r_dir / "benchmarks").glob("*.tsv")),
        }
        if pieces["info"].exists() and pieces["steps"].exists() and all(pieces["probes"].values()):
            out[r] = pieces
    return out
