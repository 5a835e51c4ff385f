# Helpers shared by the rules: config validation, config slices, paths, wildcards.
import json
import math
import os
import sys
from pathlib import Path

import jsonschema
import numpy as np
import yaml
from snakemake.settings.types import DeploymentMethod

BASE = Path(workflow.basedir)
SRC = BASE / "src" / "epcal"
SCHEMA_FILE = BASE / "workflow" / "schemas" / "config.schema.yaml"
REF_FILES = ("macro.parquet", "probe.parquet", "reference.yaml")


# ----------------------------------------------------------------------------- validation
def _expected(err) -> str:
    s = err.schema if isinstance(err.schema, dict) else {}
    v = err.validator
    if v == "additionalProperties":
        allowed = sorted((err.schema.get("properties") or {}).keys())
        extra = sorted(set(err.instance) - set(allowed)) if isinstance(err.instance, dict) else []
        return f"unknown key(s) {extra} (a typo?); allowed keys here: {allowed}"
    if v == "required":
        return err.message
    if v == "enum":
        return f"one of {err.validator_value}"
    if v == "type":
        return f"type {err.validator_value}"
    if v in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        op = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}[v]
        return f"a number {op} {err.validator_value}"
    if v == "oneOf":
        return s.get("description", "one of the allowed forms") + f" ({err.message})"
    return err.message


def _path(err) -> str:
    return ".".join(str(p) for p in err.absolute_path) or "<top level>"


def _fill_defaults(schema, inst, root):
    if not isinstance(inst, dict) or not isinstance(schema, dict):
        return
    schema = _deref(schema, root)
    for key, sub in (schema.get("properties") or {}).items():
        sub = _deref(sub, root)
        if key not in inst and "default" in sub:
            inst[key] = json.loads(json.dumps(sub["default"]))
        if key in inst:
            _fill_defaults(sub, inst[key], root)


def _deref(schema, root):
    """The schema node itself, with a $ref replaced by its definition (sibling keys kept)."""
    if isinstance(schema, dict) and "$ref" in schema:
        extra = {k: v for k, v in schema.items() if k != "$ref"}
        return {**root["definitions"][schema["$ref"].split("/")[-1]], **extra}
    return schema if isinstance(schema, dict) else {}


def _types(schema) -> list:
    t = schema.get("type", [])
    return [t] if isinstance(t, str) else list(t)


def _valid(value, schema, root) -> bool:
    return jsonschema.Draft7Validator({**schema, "definitions": root["definitions"]}).is_valid(value)


def _alternatives(schema):
    return schema.get("oneOf") or schema.get("anyOf") or []


def _child(schema, key, root):
    sub = (schema.get("properties") or {}).get(key)
    if sub is None and isinstance(schema.get("additionalProperties"), dict):
        sub = schema["additionalProperties"]
    return _deref(sub or {}, root)


def _from_text(text: str, schema):
    """A --config value (Snakemake reads nested ones as text) read as the schema's scalar type."""
    t = _types(schema)
    low = text.strip().lower()
    if "null" in t and low in ("null", "~", "none"):
        return None
    if "boolean" in t and low in ("true", "false"):
        return low == "true"
    for kind, conv in (("integer", int), ("number", float)):
        if kind in t:
            try:
                return conv(text)
            except ValueError:
                pass
    return text


def _coerce(value, schema, root):
    """``value`` with the text scalars inside it read as the types of ``schema`` (other values unchanged)."""
    schema = _deref(schema, root)
    for alt in _alternatives(schema):
        c = _coerce(value, alt, root)
        if _valid(c, _deref(alt, root), root):
            return c
    if isinstance(value, dict):
        return {k: _coerce(v, _child(schema, k, root), root) for k, v in value.items()}
    if isinstance(value, list):
        return [_coerce(v, schema.get("items") or {}, root) for v in value]
    if isinstance(value, str):
        return _from_text(value, schema)
    return value


def coerce_overrides(cfg: dict, overrides: dict, schema: dict, root: dict) -> None:
    """Read the command-line ``--config`` values (``overrides``) in ``cfg`` as their schema types."""
    schema = _deref(schema, root)
    for key, val in (overrides or {}).items():
        if key not in cfg:
            continue
        sub = _child(schema, key, root)
        if isinstance(val, dict) and isinstance(cfg[key], dict) and not _alternatives(sub):
            coerce_overrides(cfg[key], val, sub, root)
        else:
            cfg[key] = _coerce(cfg[key], sub, root)


def normalise(value, schema, root):
    """One spelling per value: integers as int (1e3 -> 1000), other numbers as float (30 -> 30.0),
    so that equal configurations give equal rule params (and rerun nothing)."""
    schema = _deref(schema, root)
    for alt in _alternatives(schema):
        if _valid(value, _deref(alt, root), root):
            return normalise(value, alt, root)
    if isinstance(value, dict):
        return {k: normalise(v, _child(schema, k, root), root) for k, v in value.items()}
    if isinstance(value, list):
        return [normalise(v, schema.get("items") or {}, root) for v in value]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    t = _types(schema)
    if "integer" in t and float(value).is_integer():
        return int(value)
    if "number" in t:
        return float(value)
    return value


def _grid_keys(cfg):
    """(config key, grid spec) of every grid of the config."""
    out = [("k", cfg["k"]), ("macro.search.lam", cfg["macro"]["search"]["lam"]),
           ("macro.search.chi", cfg["macro"]["search"]["chi"])]
    if "T" in cfg["quench"]:
        out.append(("quench.T", cfg["quench"]["T"]))
    return out


def _check_grids(cfg):
    """min <= max of every {min, max} grid; l and k values that name distinct cells."""
    for key, spec in _grid_keys(cfg):
        if isinstance(spec, dict) and spec["max"] < spec["min"]:
            raise ValueError(f"invalid configuration: config key '{key}' = {spec}: expected max >= min")
    for key, values, fmt in (("l", cfg["l"], fmt_l), ("k", grid(cfg["k"]), fmt_k)):
        names = [fmt(v) for v in values]
        twice = sorted({n for n in names if names.count(n) > 1}, key=float)
        if twice:
            raise ValueError(f"invalid configuration: config key '{key}' = {values}: lists {', '.join(twice)} "
                             "more than once (each value is one cell)")
    if min(grid(cfg["k"])) < 0.1:
        raise ValueError(f"invalid configuration: config key 'k' = {cfg['k']}: expected Weibull shapes >= 0.1 "
                         "(src/epcal/params.py K_MIN)")


def validate_config(cfg: dict, overrides: dict | None = None, schema_file=SCHEMA_FILE) -> dict:
    """Validate against the schema; the error names the key, the value and what was expected.

    ``overrides`` (Snakemake's ``--config`` values, which arrive as text when nested) are first
    read as their schema types; every number is then spelled one way (:func:`normalise`).
    """
    schema = yaml.safe_load(Path(schema_file).read_text())
    coerce_overrides(cfg, overrides, schema, schema)
    cfg.update(normalise(dict(cfg), schema, schema))
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(cfg), key=lambda e: list(e.absolute_path))
    if errors:
        lines = []
        for e in errors[:10]:
            val = e.instance
            shown = json.dumps(val) if not isinstance(val, dict) else "{" + ", ".join(sorted(map(str, val))) + "}"
            if len(shown) > 120:
                shown = shown[:117] + "..."
            lines.append(f"  config key '{_path(e)}' = {shown}: expected {_expected(e)}")
        raise ValueError("invalid configuration (schema " + str(schema_file.relative_to(BASE)) + "):\n" + "\n".join(lines))
    _fill_defaults(schema, cfg, schema)
    # cross-key rules the schema cannot express (the reference's: resolve_reference_now)
    if cfg["quench"]["enabled"] and "T" not in cfg["quench"]:
        raise ValueError("invalid configuration: config key 'quench.T' is missing, expected the temperature "
                         "grid when quench.enabled = true")
    if cfg["fit"]["per_k"] == "chi_profile" and not cfg["meso"].get("lam_profile"):
        raise ValueError("invalid configuration: config key 'meso.lam_profile' = null: expected the scales "
                         "{min, max, num} of the lambda profiles that fit.per_k = chi_profile fits (or fit.per_k: argmin)")
    _check_grids(cfg)
    return cfg


def resolve_reference_now(cfg: dict):
    """The start-up step (epcal.refdir.resolve_reference): which reference, why, the radii the
    rules receive; printed once, recorded in every artifact (EPCAL_REFERENCE), written into cfg.
    Jobs that re-parse the workflow repeat the choice without re-reading whole tables."""
    sys.path.insert(0, str(BASE / "src"))
    from epcal.refdir import apply_resolution, resolve_reference

    res = resolve_reference(cfg, full=workflow.is_main_process)
    apply_resolution(cfg, res)
    os.environ["EPCAL_REFERENCE"] = json.dumps(res.record(), sort_keys=True)
    if workflow.is_main_process:
        print(res.summary(), file=sys.stderr)
    return res


# ----------------------------------------------------------------------------- values and slices
def grid(spec):
    """The values of a config grid (epcal.grids, the one the stages use), as floats."""
    sys.path.insert(0, str(BASE / "src"))
    from epcal.grids import grid_values

    return [float(v) for v in grid_values(spec)]


def fmt_l(l):
    """Wildcard of an element length: its exact shortest decimal (6.6 -> '6.6', 10.0 -> '10')."""
    return np.format_float_positional(float(l), unique=True, trim="-")


def fmt_k(k):
    """Wildcard of a Weibull shape: at least two decimals, as many as the value needs to be exact
    (2.0 -> '2.00', 1.125 -> '1.125', 2.001 -> '2.001'), so a cell carries its k exactly."""
    return np.format_float_positional(float(k), unique=True, min_digits=2)


def L_VALUES():
    return [fmt_l(l) for l in config["l"]]


def K_VALUES():
    return sorted({fmt_k(k) for k in grid(config["k"])}, key=float)


def strip(d, *drop):
    return {k: v for k, v in d.items() if k not in drop}


def as_json(obj):
    return json.dumps(obj, sort_keys=True)


def res(stage, key, default):
    return (config.get(stage, {}).get("resources") or {}).get(key, default)


# ----------------------------------------------------------------------------- reference
TWIN_DIR = "results/reference/twin"


def ref_dir():
    src = config["reference"]["source"]
    if src == "twin":
        return TWIN_DIR
    if src == "tables":
        return config["reference"]["tables"]["path"]
    return ATOMISTIC_REF_DIR


def ref_files():
    return [f"{ref_dir()}/{f}" for f in REF_FILES]


# ----------------------------------------------------------------------------- code dependencies
def code(verb):
    """Source files the ``epcal`` verb of a rule runs, derived from its imports (epcal.codedeps):
    editing one reruns the rule, editing any other file does not."""
    sys.path.insert(0, str(BASE / "src"))
    from epcal.codedeps import verb_sources

    return [str(p) for p in verb_sources(verb, BASE / "src")]


#: the losses keys of the macroscale losses (the macro cells and the slip-system scans read only these)
MACRO_LOSS_KEYS = ("gamma_min", "max_n", "quantize_increments")


def macro_losses():
    return {k: v for k, v in config["losses"].items() if k in MACRO_LOSS_KEYS}


# ----------------------------------------------------------------------------- the command
if DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method:
    # the conda env (envs/epcal.yaml) has the dependencies; the package comes from this checkout
    EPCAL = f'PYTHONPATH="{BASE / "src"}${{PYTHONPATH:+:$PYTHONPATH}}" python -m epcal.cli.calibrate'
else:
    EPCAL = f'"{sys.executable}" -m epcal.cli.calibrate'


def log_of(name):
    return f"results/logs/{name}.log"


def bench_of(name):
    return f"results/benchmarks/{name}.tsv"


def n_batches():
    o = config["optimum"]
    return int(math.ceil(o["replicas"] / o["batch_size"]))


def figure_l():
    l = config["figures"].get("l")
    if l is None:
        return fmt_l(6.6 if 6.6 in [float(x) for x in config["l"]] else config["l"][0])
    if fmt_l(l) not in L_VALUES():
        raise ValueError(f"invalid configuration: config key 'figures.l' = {l}: expected one of config 'l' {config['l']}")
    return fmt_l(l)
