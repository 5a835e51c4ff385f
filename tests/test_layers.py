"""The layering of src/epcal (DESIGN.md, "Layers"; README.md, the map of the code), checked on the imports of every module.

Every import counts, also the ones inside functions.  The contracts:

* the engine (arrays in, arrays out) imports only the engine and the shared formulas
  (``tensors``), and no pandas, YAML, parquet or plotting, nor epcal's I/O modules;
* the shared formulas import no epcal module and no I/O package;
* figures (tables in, figures out) import no engine, driver or atomistic module;
* the atomistic side knows nothing of the EPM engine or its drivers;
* losses and fits read no files;
* no import circles.

KNOWN lists violations allowed for now (empty): the test fails on any violation not listed, and on
a listed one that is gone.  The Snakefile and its rules import only the start-up modules (which
reference and its check, the lattice, the config grids, the source files of each verb); the jobs
call the CLI.
"""
from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PKG = SRC / "epcal"

ENGINE = {"vecmath", "elastic", "slip", "dynamics", "athermal", "thermal", "probe", "heterogeneous", "variant_kernels", "variants",
          "samples", "params"}
DRIVERS = {"simulate", "bauschinger", "variant_search", "kernel_cache", "stages", "stages.common", "stages.twin", "stages.macro",
           "stages.meso", "stages.fit", "stages.temperature", "stages.optimum", "stages.slip_systems"}
#: formulas shared by the engine and the atomistic side, and the config grids (pure numpy, no epcal imports)
COMMON = {"tensors", "grids"}
FIGURES = {"figures", "figure_data"}
LOSSES_FITS = {"losses", "histograms", "fits", "resampling", "lambda_profile"}
IO_PACKAGES = {"pandas", "yaml", "pyarrow", "matplotlib"}

#: (module, imported) pairs and circles allowed for now, each with its reason (none left)
KNOWN: set[tuple[str, str]] = set()


def _module(path: Path) -> str:
    parts = list(path.relative_to(PKG).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts) or "__init__"


def _exists(dotted: str) -> bool:
    p = PKG.joinpath(*dotted.split("."))
    return p.with_suffix(".py").exists() or (p / "__init__.py").exists()


def imports() -> dict[str, set[str]]:
    """{module: imported epcal modules (relative names) and third-party top-level packages}."""
    out = {}
    for path in sorted(PKG.rglob("*.py")):
        mod = _module(path)
        pkg = mod if path.name == "__init__.py" else (mod.rsplit(".", 1)[0] if "." in mod else "")
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                for a in node.names:
                    name = a.name
                    deps.add(name[len("epcal."):] if name.startswith("epcal.") else name.split(".")[0])
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = [p for p in pkg.split(".") if p and p != "__init__"]
                    base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                    target = ".".join(base + ([node.module] if node.module else []))
                elif node.module.startswith("epcal"):
                    target = node.module[len("epcal."):] if node.module != "epcal" else ""
                else:
                    deps.add(node.module.split(".")[0])
                    continue
                for a in node.names:
                    sub = f"{target}.{a.name}" if target else a.name
                    deps.add(sub if _exists(sub) else (target or "__init__"))
        deps.discard(mod)
        out[mod] = deps
    return out


def violations(graph: dict[str, set[str]]) -> set[tuple[str, str]]:
    found = set()
    for mod, deps in graph.items():
        internal = {d for d in deps if d in graph}
        if mod in ENGINE:
            found |= {(mod, d) for d in internal if d not in ENGINE | COMMON}
            found |= {(mod, d) for d in deps & IO_PACKAGES}
        if mod in COMMON:
            found |= {(mod, d) for d in internal | (deps & IO_PACKAGES)}
        if mod in FIGURES:
            found |= {(mod, d) for d in internal if d in ENGINE | DRIVERS or d.startswith("reference")}
        if mod.startswith("reference."):
            found |= {(mod, d) for d in internal if d in ENGINE | DRIVERS | FIGURES | LOSSES_FITS}
        if mod in LOSSES_FITS:
            found |= {(mod, d) for d in deps & ({"yaml"} | {"refdir", "atomicio"})}
    return found | {("circle", " ".join(sorted(c))) for c in circles(graph)}


def circles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v, counter=[0]):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(comp)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_import_parser_sees_relative_absolute_and_lazy_imports():
    g = imports()
    assert {"slip", "variants"} <= g["dynamics"]          # from .slip import ..., from . import variants
    assert "reference.lammps_driver" in g["reference.aqs"]      # from .lammps_driver import ...
    assert "pressure_sensitivity" in g["variant_search"]  # an import inside a function
    assert "pandas" in g["losses"] and "numpy" in g["elastic"]


def test_the_checks_catch_a_forbidden_import_and_a_circle():
    g = {"elastic": {"numpy", "pandas", "losses"}, "losses": {"elastic"}, "figures": {"simulate"},
         "simulate": set(), "reference.glass": {"dynamics"}, "dynamics": set()}
    found = violations(g)
    assert {("elastic", "pandas"), ("elastic", "losses"), ("figures", "simulate"),
            ("reference.glass", "dynamics"), ("circle", "elastic losses")} <= found


def test_layers_hold_except_the_known_violations():
    found = violations(imports())
    new = sorted(found - KNOWN)
    gone = sorted(KNOWN - found)
    assert not new, f"forbidden import(s) or circle(s): {new} (see the layers in this module's docstring)"
    assert not gone, f"fixed, remove from tests/test_layers.py KNOWN: {gone}"


#: what the Snakefile and its rules may import from epcal (at start-up; the jobs run `epcal` verbs)
WORKFLOW_IMPORTS = {"refdir", "params", "grids", "codedeps"}


def test_workflow_imports_only_the_start_up_modules():
    """Snakemake files are not Python: their import lines are read as text."""
    import re

    root = SRC.parent
    line = re.compile(r"^\s*(?:from\s+(epcal(?:\.[\w.]+)?)\s+import|import\s+(epcal(?:\.[\w.]+)?))", re.M)
    found = {}
    for path in [root / "Snakefile", *sorted((root / "workflow").rglob("*.smk")), *sorted((root / "workflow").rglob("*.py"))]:
        for m in line.finditer(path.read_text()):
            name = m.group(1) or m.group(2)
            found.setdefault(name[len("epcal."):] if name != "epcal" else "", set()).add(path.name)
    assert found, "no epcal import found in the workflow: the check reads the wrong files"
    bad = {m: sorted(f) for m, f in found.items() if m not in WORKFLOW_IMPORTS}
    assert not bad, f"the workflow imports epcal modules beyond the start-up ones: {bad}"
