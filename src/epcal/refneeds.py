"""What the calibration reads from a reference, what a reference offers, and their match.

:class:`Needs` (from the config, :func:`needs_from_config`): probe rows of every state at exactly
the configured radius and orientations (``losses.R``, ``losses.alpha_plus``/``alpha_minus``;
``quench.R``, ``quench.alpha`` when the quench is calibrated); ``R: auto`` is the largest radius
the reference has in that state.  :class:`Offer`: what shipped tables (:func:`epcal.refdir.probe_offer`),
an atomistic config (:func:`atomistic_offer`) or the twin (:func:`twin_offer`) provide.
:func:`resolve_needs` matches the two before any job runs (:func:`epcal.refdir.resolve_reference`).
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd

#: relative tolerance of "the same radius / orientation"
_TOL = 1e-6


# ----------------------------------------------------------------------------- what the calibration reads
@dataclasses.dataclass(frozen=True)
class ProbeNeed:
    """Probe rows of ``state`` at radius ``R`` (a number or 'auto') and each of ``alphas``.

    ``R_key`` and ``alpha_keys`` are the config keys that ask for them (named in every error).
    """

    state: str
    R: float | str
    alphas: tuple[float, ...]
    R_key: str
    alpha_keys: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Needs:
    """Everything the rules read from a reference: probe rows and (``gamma_min`` not None) at least
    two values of each macroscale observable in the stationary regime gamma_ext > gamma_min."""

    probe: tuple[ProbeNeed, ...] = ()
    gamma_min: float | None = 0.5


def _R_value(v):
    return "auto" if v == "auto" else float(v)


def needs_from_config(cfg: dict) -> Needs:
    """The needs of a pipeline config (its ``losses`` and ``quench`` sections; schema defaults if absent)."""
    lo = cfg.get("losses") or {}
    q = cfg.get("quench") or {"enabled": True}
    ap, am = float(lo.get("alpha_plus", 0.0)), float(lo.get("alpha_minus", 90.0))
    probe = [ProbeNeed("stationary", _R_value(lo.get("R", 30.0)), (ap, am), "losses.R",
                       ("losses.alpha_plus", "losses.alpha_minus"))]
    if q.get("enabled", True):
        alphas = tuple(float(a) for a in q.get("alpha", [0.0, 90.0]))
        probe.append(ProbeNeed("quench", _R_value(q.get("R", 30.0)), alphas, "quench.R",
                               tuple(f"quench.alpha[{i}]" for i in range(len(alphas)))))
    return Needs(tuple(probe), float(lo.get("gamma_min", 0.5)))


#: what ``epcal reference check`` checks without --config: the probe rows the default configuration
#: (config/config.yaml) reads; the stationary macro statistics depend on a config's losses.gamma_min
DEFAULT_NEEDS = dataclasses.replace(
    needs_from_config({"losses": {"R": "auto"}, "quench": {"enabled": True, "R": "auto"}}), gamma_min=None)


# ----------------------------------------------------------------------------- what a reference offers
@dataclasses.dataclass(frozen=True)
class Offer:
    """The probe grid of a reference: state -> {R: orientations (mod 180)}; ``lattice``: the
    lattice (EPMParams) of an EPM-made reference (the twin), whose radii are l n / sqrt(pi)."""

    grid: dict
    source: str
    lattice: object = None  # EPMParams of an EPM-made reference

    @classmethod
    def from_probe(cls, probe: pd.DataFrame, source: str) -> "Offer":
        grid: dict = {}
        for (state, R), alpha in probe.groupby(["state", "R"], sort=True)["alpha"]:
            grid.setdefault(str(state), {})[float(R)] = sorted({float(a) % 180.0 for a in alpha})
        return cls(grid, source)


def twin_probe_grid(twin: dict, p) -> tuple[list[int], list[float]]:
    """Patch sizes n and orientations (degrees) the twin reference (reference.twin) is probed at,
    on its lattice ``p`` (EPMParams): by default the 4 sizes up to n(R_max)."""
    n_max = p.patch_size(float(twin.get("R_max", 30.0)))
    n_list = [int(n) for n in (twin.get("n_list") or range(max(1, n_max - 3), n_max + 1))]
    alphas = [float(a) for a in (twin.get("alpha") or np.arange(0.0, 180.0, 15.0))]
    return n_list, alphas


def twin_lattice(twin: dict, model: dict | None):
    """The EPM lattice (EPMParams) the twin reference is made on."""
    from .params import model_params, resolve_model

    return model_params(twin["l"], twin["k"], twin["lam"], twin["chi"], resolve_model(model))


def twin_offer(twin: dict, model: dict | None) -> Offer:
    """The probe grid the twin will have (it is made by a job, after start-up)."""
    from .params import patch_radius

    p = twin_lattice(twin, model)
    n_list, alphas = twin_probe_grid(twin, p)
    per_R = {patch_radius(n, p.l): sorted({a % 180.0 for a in alphas}) for n in n_list}
    return Offer({"quench": per_R, "stationary": dict(per_R)}, "the twin (reference.twin)", lattice=p)


def atomistic_offer(atom: dict) -> Offer:
    """The probe grid the atomistic rules will produce (reference.atomistic: R, alpha, alpha_by_R)."""
    per_R = {float(R): sorted({float(a) % 180.0 for a in atom.get("alpha", [])}) for R in atom.get("R", [])}
    for d in atom.get("alpha_by_R", []) or []:
        per_R[float(d["R"])] = sorted({float(a) % 180.0 for a in d["alpha"]})
    return Offer({"quench": per_R, "stationary": dict(per_R)}, "the atomistic reference (reference.atomistic)")


def _find(values, x) -> float | None:
    for v in values:
        if math.isclose(v, x, rel_tol=_TOL, abs_tol=1e-9):
            return v
    return None


def _fmt(values) -> str:
    return ", ".join(f"{v:g}" for v in values) or "none"


def _resolve_R(need: ProbeNeed, offer: Offer, per_R: dict) -> tuple[float | None, str | None, str]:
    """(radius, problem, how it was chosen) of one need against the radii of its state."""
    radii = sorted(per_R)
    if need.R == "auto":
        return radii[-1], None, f"{need.R_key} = auto -> R = {radii[-1]:g} (the largest R of {offer.source})"
    want, how = float(need.R), f"{need.R_key} = {float(need.R):g}"
    if offer.lattice is not None:  # an EPM-made reference: the radius of the EPM patch for R
        from .params import patch_radius

        lat = offer.lattice
        n = lat.patch_size(want)
        want = patch_radius(n, lat.l)
        how += f" -> R = {want:g} (patch n = {n} of the twin's lattice, element side {lat.l:.4g})"
    got = _find(radii, want)
    if got is None:
        return None, (f"config key '{need.R_key}' = {need.R}: {offer.source} has no '{need.state}' rows at "
                      f"R = {want:g}; it has R = {_fmt(radii)} (set {need.R_key} to one of them, or auto)"), how
    return got, None, how


def resolve_needs(needs: Needs, offer: Offer) -> tuple[dict, list[str], list[str]]:
    """Match the needs against a reference's probe grid.

    Returns ({R_key: radius}, problems naming the config key and what the reference has,
    lines saying how each radius was chosen).
    """
    radii, problems, notes = {}, [], []
    for need in needs.probe:
        per_R = offer.grid.get(need.state) or {}
        if not per_R:
            problems.append(f"{offer.source}: no '{need.state}' probe rows, needed by {need.R_key} and "
                            f"{', '.join(need.alpha_keys)}" + (" (or set quench.enabled: false)"
                                                               if need.state == "quench" else ""))
            continue
        R, problem, how = _resolve_R(need, offer, per_R)
        if problem:
            problems.append(problem)
            continue
        radii[need.R_key] = R
        notes.append(how)
        for key, a in zip(need.alpha_keys, need.alphas):
            if _find(per_R[R], a % 180.0) is None:
                problems.append(f"config key '{key}' = {a:g}: {offer.source} has no '{need.state}' rows at "
                                f"alpha = {a:g} (mod 180) and R = {R:g}; it has alpha = {_fmt(per_R[R])} there")
    return radii, problems, notes
