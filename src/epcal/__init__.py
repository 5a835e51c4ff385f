"""epcal: calibration of a tensorial mesoscale elasto-plastic model of amorphous plasticity.

Castellanos, Roux & Patinet, "Insights from the quantitative calibration of an
elasto-plastic model from a Lennard-Jones atomic glass" (the paper in
shared/paper).  See DESIGN.md for conventions.
"""
__version__ = "0.1.0"


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
