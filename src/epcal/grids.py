"""Grids of configuration values (``k``, ``macro.search.lam``/``chi``, ``quench.T``, ...).

A grid is a list of values, ``{min, max, step}`` (inclusive, rounded to 10 decimals) or
``{min, max, num}`` (``log: true``: geometric spacing); config/README.md states the same.
Pure numpy, no epcal imports: the calibration stages and the Snakefile's job list use this one.
"""
from __future__ import annotations

import math

import numpy as np


def grid_values(spec) -> np.ndarray:
    """A list of values, or {min, max, step} / {min, max, num} (num log-spaced if log: true)."""
    if isinstance(spec, dict):
        lo, hi = float(spec["min"]), float(spec["max"])
        if "step" in spec:
            n = int(math.floor((hi - lo) / float(spec["step"]) + 1e-9)) + 1
            return np.round(lo + float(spec["step"]) * np.arange(n), 10)
        num = int(spec["num"])
        return np.geomspace(lo, hi, num) if spec.get("log") else np.linspace(lo, hi, num)
    return np.asarray(spec, float)
