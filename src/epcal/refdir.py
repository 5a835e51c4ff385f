"""The reference directory: its contract, its one validator and the start-up resolution.

A reference directory holds ``macro.parquet`` and ``probe.parquet`` (schemas
:data:`epcal.schema.MACRO`, :data:`epcal.schema.PROBE`), ``reference.yaml`` with
the keys of :data:`REQUIRED_KEYS` (checked, when present, also those of
:data:`OPTIONAL_KEYS`) and optionally ``bauschinger.parquet``.

:func:`check_reference_dir` is the only validator: ``epcal reference check``,
the pipeline's start-up and :func:`read_reference_dir` all use
it.  Besides the table contracts it checks what the calibration will read
(:class:`Needs`, made from the config by :func:`needs_from_config`): probe rows
of every state at exactly the configured radius and orientations
(``losses.R``, ``losses.alpha_plus``/``alpha_minus``; ``quench.R``,
``quench.alpha`` when the quench is calibrated) and enough macroscale values in
the stationary regime.  ``R: auto`` resolves to the largest radius the
reference has in that state.

:func:`resolve_reference` is the pipeline's start-up step: which reference is
used (``reference.source: auto`` -> the shipped tables when they exist and
validate, else the twin, and it says which and why), the radii the rules get,
and every problem, before any job runs.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pandas as pd

from .refneeds import Needs, Offer, atomistic_offer, needs_from_config, resolve_needs, twin_offer
from .schema import BAUSCHINGER, BAUSCHINGER_BRANCHES, DELTA_GAMMA, MACRO, PROBE, Reference, TableError, check_table

REFERENCE_FILES = ("macro.parquet", "probe.parquet", "reference.yaml")
#: keys every reference.yaml must have -> what is expected (config/README.md lists the same)
REQUIRED_KEYS = {"domain_length": "a positive number", "shear_modulus": "a positive number",
                 "bulk_modulus": "a positive number", "delta_gamma": "a positive number",
                 "description": "a text"}
#: keys that are checked when present (written by ``epcal reference tables`` / ``assemble``)
OPTIONAL_KEYS = {"n_atoms": "a positive integer", "n_samples": "a positive integer", "provenance": "a mapping"}
#: the shipped reference (reference.source: auto uses it when it exists and validates)
SHIPPED = "resources/reference"


# ----------------------------------------------------------------------------- reference.yaml
def _value_ok(value, expected: str) -> bool:
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if expected == "a positive number":
        return number and math.isfinite(value) and value > 0
    if expected == "a positive integer":
        return isinstance(value, int) and not isinstance(value, bool) and value > 0
    if expected == "a text":
        return isinstance(value, str) and bool(value.strip())
    if expected == "a mapping":
        return isinstance(value, dict)
    raise ValueError(expected)


def check_reference_yaml(f: Path) -> tuple[dict, list[str]]:
    """(the mapping, its problems) of a reference.yaml: required keys present, values of the expected kind."""
    import yaml

    try:
        meta = yaml.safe_load(f.read_text())
    except yaml.YAMLError as exc:
        return {}, [f"{f}: not valid YAML ({exc})"]
    meta = {} if meta is None else meta
    if not isinstance(meta, dict):
        return {}, [f"{f}: expected a mapping of keys at top level, got {type(meta).__name__}"]
    problems = [f"{f}: key '{k}' is missing (expected {what})" for k, what in REQUIRED_KEYS.items() if k not in meta]
    for k, what in {**REQUIRED_KEYS, **OPTIONAL_KEYS}.items():
        if k in meta and not _value_ok(meta[k], what):
            problems.append(f"{f}: key '{k}': expected {what}, got {meta[k]!r}")
    return meta, problems


# ----------------------------------------------------------------------------- the validator
@dataclasses.dataclass
class Report:
    """Outcome of :func:`inspect_reference_dir`: problems (empty: valid), resolved radii, notes, meta."""

    problems: list
    radii: dict
    notes: list
    meta: dict


def missing_files(path: Path) -> list[str]:
    """'file is missing' problems of a reference directory (with a hint for a near miss)."""
    path = Path(path)
    if not path.exists():
        return [f"{path}: reference directory does not exist"]
    if not path.is_dir():
        return [f"{path}: not a directory (expected {', '.join(REFERENCE_FILES)})"]
    if not any(path.iterdir()):
        return [f"{path}: reference directory is empty (expected {', '.join(REFERENCE_FILES)})"]
    out = []
    for name in REFERENCE_FILES:
        if not (path / name).exists():
            near = sorted(p.name for p in path.iterdir() if p.stem == Path(name).stem and p.name != name)
            hint = f" (found {', '.join(near)}: rename it to {name})" if near else ""
            out.append(f"{path / name}: missing{hint} (a reference directory holds {', '.join(REFERENCE_FILES)})")
    return out


def _read_parquet(f: Path, problems: list, columns=None) -> pd.DataFrame | None:
    try:
        return pd.read_parquet(f, columns=columns)
    except Exception as exc:  # pyarrow raises many kinds
        problems.append(f"{f}: cannot be read as parquet ({type(exc).__name__}: {exc})")
        return None


def _check_stationary(df: pd.DataFrame, f: Path, gamma_min: float | None, delta_gamma: float) -> list[str]:
    """At least two values of each macroscale observable beyond gamma_min (what the losses bin).

    (An avalanche may raise Sigma_xy^ext in a tensorial EPM, so a twin's macro table can have
    sigma_after > sigma_before: that is not a contract of the table.)"""
    out = []
    if gamma_min is not None:
        from .observables import MACRO_OBS, macro_observables

        obs = macro_observables(df, gamma_min, delta_gamma)
        for name in MACRO_OBS:
            if obs.values[name].size < 2:
                out.append(f"{f}: {obs.values[name].size} '{name}' value(s) in the stationary regime (gamma_ext > "
                           f"losses.gamma_min = {gamma_min:g}); the losses need at least 2")
    return out


def _check_bauschinger(f: Path) -> list[str]:
    df = _read_parquet(f, problems := [])
    if df is None:
        return problems
    problems = check_table(df, BAUSCHINGER, str(f))
    if "branch" in df:
        bad = ~df["branch"].astype(str).isin(BAUSCHINGER_BRANCHES)
        if bad.any():
            idx = ", ".join(map(str, np.flatnonzero(bad.to_numpy())[:5]))
            problems.append(f"{f}: column 'branch': values {sorted(set(df['branch'][bad].astype(str)))} "
                            f"in rows {idx}, expected one of {list(BAUSCHINGER_BRANCHES)}")
    return problems


def inspect_reference_dir(path: str | Path, needs: Needs | None = None,
                          states=("stationary",)) -> Report:
    """Every problem of a reference directory, as 'file: column: rows: what' or 'config key ...' lines.

    ``needs`` (None: only the table contracts) are matched against the probe grid; ``states`` must
    have probe rows.
    """
    path = Path(path)
    problems = missing_files(path)
    if problems and not path.is_dir():
        return Report(problems, {}, [], {})
    meta = {}
    if (path / "reference.yaml").exists():
        meta, p = check_reference_yaml(path / "reference.yaml")
        problems += p
    tables = {}
    for name, schema in (("macro.parquet", MACRO), ("probe.parquet", PROBE)):
        f = path / name
        if f.exists() and (df := _read_parquet(f, problems)) is not None:
            p = check_table(df, schema, str(f))
            problems += p
            tables[name] = None if p else df
    if (path / "bauschinger.parquet").exists():  # optional: the reload test of Fig. 5d
        problems += _check_bauschinger(path / "bauschinger.parquet")
    if tables.get("macro.parquet") is not None:
        dg = meta.get("delta_gamma") if _value_ok(meta.get("delta_gamma"), "a positive number") else DELTA_GAMMA
        problems += _check_stationary(tables["macro.parquet"], path / "macro.parquet",
                                      needs.gamma_min if needs else None, float(dg))
    radii, notes = {}, []
    probe = tables.get("probe.parquet")
    if probe is not None:
        present = set(probe["state"].astype(str))
        problems += [f"{path / 'probe.parquet'}: column 'state': no rows with state '{s}' (found {sorted(present)})"
                     for s in states if s not in present]
        if needs is not None:
            radii, p, notes = resolve_needs(needs, Offer.from_probe(probe, str(path / "probe.parquet")))
            problems += p
    return Report(problems, radii, notes, meta)


def check_reference_dir(path: str | Path, needs: Needs | None = None) -> list[str]:
    """Every problem of a reference directory (empty if it is valid; for ``needs`` when given)."""
    return inspect_reference_dir(path, needs).problems


def validate_reference_dir(path: str | Path, needs: Needs | None = None) -> Report:
    """Raise :class:`TableError` listing every problem, or return the report."""
    rep = inspect_reference_dir(path, needs)
    if rep.problems:
        raise TableError(f"{len(rep.problems)} problem(s) in reference directory {path}:\n" + "\n".join(rep.problems))
    return rep


def probe_offer(path: str | Path) -> Offer:
    """The probe grid of a reference directory, reading three columns only (no validation)."""
    f = Path(path) / "probe.parquet"
    return Offer.from_probe(pd.read_parquet(f, columns=["state", "R", "alpha"]), str(f))


# ----------------------------------------------------------------------------- start-up resolution
@dataclasses.dataclass
class Resolution:
    """Which reference the pipeline uses, why, and the radii the rules receive."""

    source: str
    path: str | None
    reason: str
    radii: dict
    notes: list

    def record(self) -> dict:
        """What every artifact records (file metadata key ``reference_used``)."""
        return {"source": self.source, "path": self.path, "reason": self.reason, "radii": self.radii}

    def summary(self) -> str:
        where = f" {self.path}" if self.path else ""
        lines = [f"epcal: reference = {self.source}{where} ({self.reason})"] + [f"epcal: {n}" for n in self.notes]
        return "\n".join(lines)


def _is_shipped(path: str) -> bool:
    return Path(path).resolve() == Path(SHIPPED).resolve()


def _bad_tables(path: str, key: str, problems: list) -> ValueError:
    shown = problems[:12] + ([f"... and {len(problems) - 12} more"] if len(problems) > 12 else [])
    return ValueError(f"invalid reference: config key '{key}' = {path!r}: {len(problems)} problem(s):\n  "
                      + "\n  ".join(shown))


def _choose_source(ref: dict) -> tuple[str, str | None, str]:
    """(source, tables path, reason) of reference.source, ``auto`` resolved (the shipped reference is
    always fully validated, so every process that parses the workflow makes the same choice)."""
    src = ref["source"]
    path = str((ref.get("tables") or {}).get("path", SHIPPED))
    if src != "auto":
        reason = "reference.source = " + src
        return src, path if src == "tables" else None, reason
    if not _is_shipped(path):
        return "tables", path, f"reference.source = auto with reference.tables.path = {path}"
    if not Path(path).exists():
        return "twin", None, f"reference.source = auto and there is no shipped reference in {SHIPPED}"
    problems = inspect_reference_dir(path, needs=None).problems
    if problems:
        return "twin", None, (f"reference.source = auto: the shipped reference in {SHIPPED} does not validate, "
                              f"so the twin is used; first of {len(problems)} problem(s): {problems[0]}")
    return "tables", path, f"reference.source = auto: the shipped reference in {SHIPPED} validates"


def _check_source_section(cfg: dict, src: str, reason: str) -> None:
    """The config section the chosen source needs (reference.twin, reference.atomistic)."""
    ref = cfg["reference"]
    if src in ("twin", "atomistic") and src not in ref:
        raise ValueError(f"invalid configuration: config key 'reference.{src}' is missing, expected the {src} "
                         f"reference settings ({reason})")
    if src == "twin" and ref["twin"]["seed"] == cfg["seed"]:
        raise ValueError(f"invalid configuration: config key 'reference.twin.seed' = {ref['twin']['seed']}: "
                         f"expected a seed different from 'seed' = {cfg['seed']} (disjoint random streams)")


def resolve_reference(cfg: dict, full: bool = True) -> Resolution:
    """The start-up step of the pipeline (config already schema-validated, defaults filled).

    Chooses the reference (``auto``: the shipped tables when they exist and validate, else the
    twin), validates the tables (``full``: every table contract; otherwise only the files and the
    probe grid, for processes that re-parse the workflow) and resolves ``losses.R`` / ``quench.R``
    against the reference's probe grid.  Raises ValueError naming the config key on any problem.
    """
    ref = cfg["reference"]
    needs = needs_from_config(cfg)
    src, path, reason = _choose_source(ref)
    _check_source_section(cfg, src, reason)
    if src == "tables":
        problems = missing_files(Path(path))
        if not problems and full:
            rep = inspect_reference_dir(path, needs)
            problems, radii, notes = rep.problems, rep.radii, rep.notes
        elif not problems:
            radii, problems, notes = resolve_needs(needs, probe_offer(path))
        if problems:
            raise _bad_tables(path, "reference.tables.path", problems)
        return Resolution("tables", path, reason, radii, notes)
    offer = twin_offer(ref["twin"], cfg.get("model")) if src == "twin" else atomistic_offer(ref["atomistic"])
    radii, problems, notes = resolve_needs(needs, offer)
    if problems:
        raise ValueError("invalid configuration for " + offer.source + ":\n  " + "\n  ".join(problems))
    return Resolution(src, None, reason, radii, notes)


def apply_resolution(cfg: dict, res: Resolution) -> dict:
    """Write the resolved source and radii into the config (what the rules receive as params)."""
    cfg["reference"]["source"] = res.source
    if res.path is not None:
        cfg["reference"].setdefault("tables", {})["path"] = res.path
    cfg["reference"]["resolved"] = res.record()
    for key, R in res.radii.items():
        section, name = key.split(".")
        cfg[section][name] = float(R)
    return cfg


# ----------------------------------------------------------------------------- reading
def _alpha_filters(alphas):
    out = []
    for a in alphas:
        for b in (a % 180.0, a % 180.0 - 180.0, a % 180.0 + 180.0):
            out.append([("alpha", ">=", b - 1e-6), ("alpha", "<=", b + 1e-6)])
    return out


def read_reference_dir(path: str | Path, need_probe_states=("stationary",), validate: bool = True, alphas=None):
    """(macro, probe, meta) of a reference directory, validated by :func:`inspect_reference_dir` (the one
    validator; ``validate=False``: reference.yaml only, the tables having been checked at start-up)."""
    import yaml

    path = Path(path)
    missing = missing_files(path)
    if missing:
        raise FileNotFoundError("\n".join(missing))
    files = {n: path / n for n in ("macro.parquet", "probe.parquet", "reference.yaml")}
    if validate:
        problems = inspect_reference_dir(path, states=tuple(need_probe_states)).problems
    else:
        meta, problems = check_reference_yaml(files["reference.yaml"])
    if problems:
        raise TableError("\n".join(problems))
    meta = yaml.safe_load(files["reference.yaml"].read_text())
    probe_filter = _alpha_filters(alphas) if alphas and not validate else None
    return pd.read_parquet(files["macro.parquet"]), pd.read_parquet(files["probe.parquet"], filters=probe_filter), meta


def read_reference(path: str | Path, validate: bool = True, alphas=None) -> Reference:
    """The :class:`epcal.schema.Reference` of a directory; ``validate=False`` skips the table checks
    (done once by the pipeline's reference_check rule) and ``alphas`` reads only the probe rows at
    those orientations (mod 180), which is what the sweeps need."""
    subset = tuple(float(a) for a in alphas) if alphas and not validate else None
    return Reference(*read_reference_dir(path, validate=validate, alphas=alphas), path=str(path), probe_alphas=subset)
