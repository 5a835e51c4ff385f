"""epcal: calibration of a tensorial mesoscale elasto-plastic model of amorphous plasticity.

Castellanos, Roux & Patinet, "Insights from the quantitative calibration of an
elasto-plastic model from a Lennard-Jones atomic glass" (the paper in
shared/paper).  See DESIGN.md for conventions.
"""
__version__ = "0.1.0"


_STALE_CACHE_SECONDS = 6 * 3600


def _key_numba_cache() -> None:
    """Point numba's on-disk cache at a directory keyed by the content of the whole package.

    Numba keys a cached function by its own source file only: after a change in
    another module whose function it calls (inlined at compile time), it would
    load stale machine code.  Keying the directory by a hash of every source
    file of epcal makes any change recompile.  Older directories of a source
    tree's ``__pycache__`` are removed after six hours.  A user-set ``NUMBA_CACHE_DIR`` wins.
    """
    import hashlib
    import os
    import shutil
    import tempfile
    import time
    from pathlib import Path

    if os.environ.get("NUMBA_CACHE_DIR"):
        return
    here = Path(__file__).resolve().parent
    h = hashlib.sha1()
    for path in sorted(here.rglob("*.py")):
        h.update(path.relative_to(here).as_posix().encode())
        h.update(path.read_bytes())
    name = f"numba-{h.hexdigest()[:16]}"
    xdg = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    for base in (here / "__pycache__", xdg / "epcal", Path(tempfile.gettempdir()) / "epcal"):
        target = base / name
        try:
            target.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if not os.access(target, os.W_OK):
            continue
        from numba.core import config

        config.CACHE_DIR = str(target)
        if base == here / "__pycache__":
            # an edited source tree: drop caches of older source states, once no process can still
            # be using them (a running process keeps the directory it started with)
            for old in base.glob("numba-*"):
                try:
                    stale = old.name != name and time.time() - old.stat().st_mtime > _STALE_CACHE_SECONDS
                except OSError:
                    continue
                if stale:
                    shutil.rmtree(old, ignore_errors=True)
        return


_key_numba_cache()


def code_version() -> str:
    """Package version plus git commit of the source tree when available."""
    import subprocess
    from pathlib import Path

    try:
        here = Path(__file__).resolve().parent
        rev = subprocess.run(["git", "-C", str(here), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--", str(here)],
                               capture_output=True, text=True, timeout=5)
        if rev.returncode == 0:
            return f"{__version__}+g{rev.stdout.strip()}{'.dirty' if dirty.stdout.strip() else ''}"
    except Exception:
        pass
    return __version__
