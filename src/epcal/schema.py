"""Table contracts shared by the EPM, the atomistic reference and the calibration.

Every artifact of epcal is a tidy parquet table.  The EPM output and the
atomistic reference (made by :mod:`epcal.reference` or imported from a user's
own MD) use *the same* tables, so one loss function serves both
(DESIGN.md section 6).  Units are LJ units (stress in eps_SL / sigma_SL**2).

Two tables matter for the calibration:

``macro``  (paper section 4.1, Fig. 2)
    The stress-strain sequence of AQS runs, one row per *record*: the initial
    state (``avalanche == False``), every avalanche (``avalanche == True``:
    ``sigma_before`` is Sigma_xy^ext at the end of the elastic branch, just
    before the avalanche, ``sigma_after`` just after it, both at the same
    ``gamma_ext``) and the end of the run (``avalanche == False``).  Between
    two consecutive records the response is an elastic branch: the stress
    goes linearly from ``sigma_after`` of the earlier record to
    ``sigma_before`` of the later one.  Rows are sorted by (replica, step).

``probe``  (paper sections 2.2 and 3.5, Figs. 4, 8, 9)
    One row per local shear test: a patch of effective radius ``R`` centred at
    (``x``, ``y``) in a state (``quench`` or ``stationary``) of a replica,
    sheared in pure shear of orientation ``alpha`` (degrees; 0 = forward,
    aligned with the external simple shear; 90 = backward).  ``tau_i``,
    ``tau_c``, ``delta_tau_c`` = tau_c - tau_i, ``drop_tau_c`` = tau_c - tau_f,
    ``sigma_vm`` = von Mises stress of the initial patch stress.

A reference directory holds ``macro.parquet``, ``probe.parquet`` and
``reference.yaml`` (domain length, moduli, strain step, provenance).
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

#: AQS strain increment of the paper (sections 2.1 and 3.4).
DELTA_GAMMA = 1e-4
#: Start of the stationary regime used for all macroscale statistics.
GAMMA_STATIONARY = 0.5
#: Allowed values of the ``state`` column of probe tables.
PROBE_STATES = ("quench", "stationary")


@dataclasses.dataclass(frozen=True)
class Column:
    name: str
    kind: str  # "int", "float", "bool", "str"
    required: bool = True
    finite: bool = True
    doc: str = ""


@dataclasses.dataclass(frozen=True)
class TableSchema:
    name: str
    columns: tuple[Column, ...]
    sort_by: tuple[str, ...] = ()

    @property
    def required(self) -> list[str]:
        return [c.name for c in self.columns if c.required]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


MACRO = TableSchema(
    name="macro",
    columns=(
        Column("replica", "int", doc="independent run (sample) index"),
        Column("step", "int", doc="signed number of strain steps, gamma_ext = step * delta_gamma"),
        Column("gamma_ext", "float", doc="external shear strain gamma_ext of the record"),
        Column("sigma_before", "float", doc="Sigma_xy^ext before the avalanche (end of the elastic branch)"),
        Column("sigma_after", "float", doc="Sigma_xy^ext after the avalanche"),
        Column("avalanche", "bool", doc="True for avalanches; False for the first and last record"),
        Column("n_slips", "int", required=False, doc="slip events in the avalanche (EPM); -1 if unknown (MD)"),
    ),
    sort_by=("replica", "step"),
)

PROBE = TableSchema(
    name="probe",
    columns=(
        Column("state", "str", doc="'quench' or 'stationary'"),
        Column("replica", "int", doc="independent run (sample) index"),
        Column("x", "float", doc="patch centre x (LJ length)"),
        Column("y", "float", doc="patch centre y (LJ length)"),
        Column("R", "float", doc="effective patch radius (LJ length)"),
        Column("alpha", "float", doc="shear orientation in degrees (0 forward, 90 backward)"),
        Column("tau_i", "float", doc="initial resolved shear stress M(alpha):Sigma^i"),
        Column("tau_c", "float", doc="local yield stress M(alpha):Sigma^c"),
        Column("delta_tau_c", "float", doc="distance to threshold tau_c - tau_i"),
        Column("drop_tau_c", "float", doc="local stress drop tau_c - tau_f"),
        Column("sigma_vm", "float", doc="von Mises stress of the initial patch stress"),
        Column("n", "int", required=False, doc="EPM patch size n (elements per side)"),
        Column("gamma_c", "float", required=False, doc="local strain at the onset"),
        Column("gamma_ext", "float", required=False,
               doc="external strain of the probed state (0 for the quench state)"),
        Column("sxx_i", "float", required=False), Column("syy_i", "float", required=False),
        Column("sxy_i", "float", required=False), Column("sxx_c", "float", required=False),
        Column("syy_c", "float", required=False), Column("sxy_c", "float", required=False),
        Column("sxx_f", "float", required=False), Column("syy_f", "float", required=False),
        Column("sxy_f", "float", required=False),
    ),
    sort_by=(),
)

#: optional table of a reference directory: the Bauschinger (reload) test of section 5 (Fig. 5d)
BAUSCHINGER = TableSchema(
    name="bauschinger",
    columns=(
        Column("replica", "int", doc="independent run (sample) index"),
        Column("branch", "str", doc="'unload', 'forward' (alpha_ext = 0) or 'reverse' (alpha_ext = 90)"),
        Column("gamma_load", "float", doc="strain since the start of the branch, in its loading sense"),
        Column("sigma_load", "float",
               doc="stress in the loading sense: +Sigma_xy^ext (unload: +), -Sigma_xy^ext reverse"),
        Column("gamma_ext", "float", required=False), Column("sxy", "float", required=False),
    ),
    sort_by=("replica",),
)
BAUSCHINGER_BRANCHES = ("unload", "forward", "reverse")

SCHEMAS = {"macro": MACRO, "probe": PROBE, "bauschinger": BAUSCHINGER}


class TableError(ValueError):
    """A table does not follow its contract; the message names file, column and rows."""


def _kind_ok(series: pd.Series, kind: str) -> bool:
    dt = series.dtype
    if kind == "int":
        return pd.api.types.is_integer_dtype(dt)
    if kind == "float":
        return pd.api.types.is_float_dtype(dt) or pd.api.types.is_integer_dtype(dt)
    if kind == "bool":
        return pd.api.types.is_bool_dtype(dt)
    if kind == "str":
        return pd.api.types.is_object_dtype(dt) or pd.api.types.is_string_dtype(dt)
    raise ValueError(kind)


def _rows(mask: np.ndarray, limit: int = 5) -> str:
    idx = np.flatnonzero(mask)
    shown = ", ".join(str(i) for i in idx[:limit])
    more = f" (and {len(idx) - limit} more)" if len(idx) > limit else ""
    return f"rows {shown}{more}"


def check_table(df: pd.DataFrame, schema: TableSchema, source: str = "<table>") -> list[str]:
    """Return every problem of ``df`` against ``schema`` as 'file: column: what' lines."""
    problems: list[str] = []
    for col in schema.columns:
        if col.name not in df.columns:
            if col.required:
                problems.append(f"{source}: column '{col.name}' is missing (expected {col.kind}: {col.doc})")
            continue
        s = df[col.name]
        if not _kind_ok(s, col.kind):
            problems.append(f"{source}: column '{col.name}' has dtype {s.dtype}, expected {col.kind}")
            continue
        if col.kind in ("int", "float") and col.finite:
            bad = ~np.isfinite(s.to_numpy(dtype=float))
            if bad.any():
                problems.append(f"{source}: column '{col.name}': non-finite values in {_rows(bad)}")
        if col.kind == "str" and s.isna().any():
            problems.append(f"{source}: column '{col.name}': missing values in {_rows(s.isna().to_numpy())}")
    if problems:
        return problems
    if schema is MACRO:
        problems += _check_macro(df, source)
    elif schema is PROBE:
        problems += _check_probe(df, source)
    return problems


def _check_macro(df: pd.DataFrame, source: str) -> list[str]:
    out = []
    for rep, g in df.groupby("replica", sort=False):
        steps = g["step"].to_numpy()
        if len(steps) < 2:
            out.append(f"{source}: replica {rep}: needs at least a first and a last record, has {len(steps)} row(s)")
            continue
        d = np.diff(steps)
        # records are in loading order: monotone step sequence (either sense); only the
        # last record may share the step of the avalanche before it
        if not (np.all(d[:-1] > 0) and d[-1] >= 0 or np.all(d[:-1] < 0) and d[-1] <= 0):
            bad = np.zeros(len(df), bool)
            pos = g.index.to_numpy()
            bad_local = np.concatenate([[False], ~((d >= 0) if steps[-1] >= steps[0] else (d <= 0))])
            bad[np.searchsorted(df.index.to_numpy(), pos[bad_local])] = True
            out.append(f"{source}: column 'step': replica {rep} is not monotone in loading order ({_rows(bad)})")
        av = g["avalanche"].to_numpy()
        if av[0] or av[-1]:
            out.append(f"{source}: column 'avalanche': replica {rep}: first and last record must be non-avalanche rows")
    nonav = ~df["avalanche"].to_numpy()
    diff = np.abs(df["sigma_before"].to_numpy() - df["sigma_after"].to_numpy())
    bad = nonav & (diff > 1e-12 * (1 + np.abs(df["sigma_before"].to_numpy())))
    if bad.any():
        out.append(f"{source}: columns 'sigma_before'/'sigma_after': must be equal on non-avalanche records, "
                   f"differ in {_rows(bad)}")
    return out


def _check_probe(df: pd.DataFrame, source: str) -> list[str]:
    out = []
    st = df["state"].astype(str)
    bad = ~st.isin(PROBE_STATES).to_numpy()
    if bad.any():
        out.append(f"{source}: column 'state': expected one of {PROBE_STATES}, "
                   f"got {sorted(set(st[bad]))[:3]} in {_rows(bad)}")
    bad = (df["R"].to_numpy() <= 0)
    if bad.any():
        out.append(f"{source}: column 'R': must be > 0, {_rows(bad)}")
    for name, ref in (("delta_tau_c", df["tau_c"] - df["tau_i"]),):
        bad = ~np.isclose(df[name].to_numpy(), ref.to_numpy(), rtol=1e-6, atol=1e-8)
        if bad.any():
            out.append(f"{source}: column '{name}': must equal tau_c - tau_i, differs in {_rows(bad)}")
    bad = df["sigma_vm"].to_numpy() < 0
    if bad.any():
        out.append(f"{source}: column 'sigma_vm': must be >= 0, {_rows(bad)}")
    return out


def validate_table(df: pd.DataFrame, schema: TableSchema, source: str = "<table>") -> pd.DataFrame:
    """Raise :class:`TableError` listing every problem, or return ``df``."""
    problems = check_table(df, schema, source)
    if problems:
        raise TableError("\n".join(problems))
    return df


# ---------------------------------------------------------------- parquet I/O
META_KEY = b"epcal"


def write_table(df: pd.DataFrame, path: str | Path, metadata: dict | None = None,
                schema: TableSchema | None = None) -> Path:
    """Write ``df`` as parquet with ``metadata`` (parameters, seed, version; in the pipeline also the
    reference used, ``reference_used``) in the file, atomically (:mod:`epcal.atomicio`)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from . import __version__

    if schema is not None:
        validate_table(df, schema, str(path))
    meta = {"epcal_version": __version__, **_reference_used(), **(metadata or {})}
    table = pa.Table.from_pandas(df, preserve_index=False)
    existing = table.schema.metadata or {}
    table = table.replace_schema_metadata({**existing, META_KEY: json.dumps(meta, default=_json_default).encode()})
    from .atomicio import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return path


def _reference_used() -> dict:
    """The pipeline's resolved reference (set at start-up in EPCAL_REFERENCE), recorded in every table."""
    import os

    raw = os.environ.get("EPCAL_REFERENCE")
    if not raw:
        return {}
    try:
        return {"reference_used": json.loads(raw)}
    except json.JSONDecodeError:
        return {"reference_used": raw}


def read_table(path: str | Path, schema: TableSchema | None = None) -> pd.DataFrame:
    df = pd.read_parquet(path)
    if schema is not None:
        validate_table(df, schema, str(path))
    return df


def read_metadata(path: str | Path) -> dict:
    import pyarrow.parquet as pq

    md = pq.read_schema(path).metadata or {}
    raw = md.get(META_KEY)
    return json.loads(raw) if raw else {}


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(type(o))


def concat_tables(paths: Iterable[str | Path], schema: TableSchema | None = None) -> pd.DataFrame:
    return pd.concat([read_table(p, schema) for p in paths], ignore_index=True)


@dataclasses.dataclass
class Reference:
    """The tables of a reference directory (macro.parquet, probe.parquet) and its reference.yaml;
    read by :func:`epcal.refdir.read_reference`."""

    macro: pd.DataFrame
    probe: pd.DataFrame
    meta: dict
    path: str = "<reference>"
    #: the probe orientations read (mod 180), None: every row of probe.parquet
    probe_alphas: tuple | None = None

    @property
    def shear_modulus(self) -> float:
        return float(self.meta["shear_modulus"])

    @property
    def delta_gamma(self) -> float:
        return float(self.meta.get("delta_gamma", DELTA_GAMMA))
