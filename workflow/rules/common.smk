# Helpers shared by the rules: config validation, config slices, paths, wildcards.
import json
import math
import os
import sys
from pathlib import Path

import jsonschema
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
    if "$ref" in schema:
        ref = schema["$ref"].split("/")[-1]
        schema = root["definitions"][ref]
    for key, sub in (schema.get("properties") or {}).items():
        if "$ref" in sub:
            sub = {**root["definitions"][sub["$ref"].split("/")[-1]], **{k: v for k, v in sub.items() if k != "$ref"}}
        if key not in inst and "default" in sub:
            inst[key] = json.loads(json.dumps(sub["default"]))
        if key in inst:
            _fill_defaults(sub, inst[key], root)


def validate_config(cfg: dict, schema_file=SCHEMA_FILE) -> dict:
    """Validate against the schema; the error names the key, the value and what was expected."""
    schema = yaml.safe_load(Path(schema_file).read_text())
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
    # cross-key rules the schema cannot express
    ref = cfg["reference"]
    if ref["source"] == "auto":
        # the shipped (atomistic) reference when it exists, else the twin
        path = Path(ref.get("tables", {}).get("path", "resources/reference"))
        ref["source"] = "tables" if all((path / f).exists() for f in REF_FILES) else "twin"
        ref["resolved_from"] = "auto"
    if ref["source"] == "twin":
        if "twin" not in ref:
            raise ValueError("invalid configuration: config key 'reference.twin' is missing, "
                             "expected the twin parameters when reference.source = twin")
        if ref["twin"]["seed"] == cfg["seed"]:
            raise ValueError(f"invalid configuration: config key 'reference.twin.seed' = {ref['twin']['seed']}: "
                             f"expected a seed different from 'seed' = {cfg['seed']} (disjoint random streams)")
    if ref["source"] == "atomistic" and "atomistic" not in ref:
        raise ValueError("invalid configuration: config key 'reference.atomistic' is missing, "
                         "expected the atomistic reference settings when reference.source = atomistic")
    if cfg["quench"]["enabled"] and "T" not in cfg["quench"]:
        raise ValueError("invalid configuration: config key 'quench.T' is missing, expected the temperature "
                         "grid when quench.enabled = true")
    if min(grid(cfg["k"])) < 0.1:
        raise ValueError(f"invalid configuration: config key 'k' = {cfg['k']}: expected Weibull shapes >= 0.1 "
                         "(src/epcal/params.py K_MIN)")
    for key in ("lam", "chi"):
        spec = cfg["macro"]["search"][key]
        if isinstance(spec, dict) and spec["max"] < spec["min"]:
            raise ValueError(f"invalid configuration: config key 'macro.search.{key}' = {spec}: expected max >= min")
    return cfg


# ----------------------------------------------------------------------------- values and slices
def grid(spec):
    if isinstance(spec, dict):
        lo, hi = float(spec["min"]), float(spec["max"])
        if "step" in spec:
            n = int(math.floor((hi - lo) / float(spec["step"]) + 1e-9)) + 1
            return [round(lo + float(spec["step"]) * i, 10) for i in range(n)]
        num = int(spec["num"])
        if spec.get("log"):
            return [lo * (hi / lo) ** (i / max(num - 1, 1)) for i in range(num)]
        return [lo + (hi - lo) * i / max(num - 1, 1) for i in range(num)]
    return [float(v) for v in spec]


def fmt_l(l):
    return f"{float(l):g}"


def fmt_k(k):
    return f"{float(k):.2f}"


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


def check_reference_tables_now():
    """source: tables -> validate the user's tables before any job is scheduled."""
    if config["reference"]["source"] != "tables" or not workflow.is_main_process:
        return  # jobs re-parse the Snakefile (cluster, local subprocesses): validate once, in the main process
    sys.path.insert(0, str(BASE / "src"))
    from epcal.losses import read_reference_dir

    read_reference_dir(ref_dir())


# ----------------------------------------------------------------------------- code dependencies
ENGINE_CODE = ["params", "elastic", "slip", "dynamics", "probe", "observables", "simulate", "schema"]


def code(*modules):
    """Source files a rule uses: editing one reruns the rule (mtime trigger)."""
    return [str(SRC / f"{m}.py") for m in modules] + [str(SRC / "cli" / "calibrate.py")]


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
