"""The source files an ``epcal`` verb runs, derived from the code (the rules' code dependencies).

Every pipeline rule runs one verb of :mod:`epcal.cli.calibrate` (``cmd_<verb>``).  Its code
dependencies are the files of every definition the verb can reach: starting from ``cmd_<verb>``,
``epcal.cli.main`` and the CLI groups' ``register`` functions, each name a reached function,
class or constant uses is resolved through the module's imports (module level and inside the
function, absolute and relative) to its definition in epcal, and followed in turn; the
module-level statements of a reached module (they run on import) are followed too, and each
package's ``__init__.py`` counts.  A module imported at module level but none of whose names a
reached definition uses is not a dependency: its definitions never run (a module-level import
statement runs only that module's own module-level code, which affects a verb only through the
names it defines).  Names used only through other packages (numpy, numba, ...) end
the walk.  A name that cannot be resolved to a definition (a module used as a whole, a dynamic
attribute) makes its whole module a dependency, so the walk errs on the side of rerunning.

Compared with a hand list, editing any file a verb really uses (e.g. ``vecmath.py``, the
threshold draws, or ``variants.py``) reruns its rules, and editing a file it does not use
(``figures.py`` for a sweep) does not.
"""
from __future__ import annotations

import ast
import functools
from pathlib import Path

PACKAGE = "epcal"


class _Module:
    """One parsed source file: its top-level definitions, imports and other statements."""

    def __init__(self, name: str, path: Path, is_package: bool):
        self.name, self.path = name, path
        self.package = name if is_package else name.rpartition(".")[0]
        tree = ast.parse(path.read_text(), filename=str(path))
        self.defs: dict[str, ast.AST] = {}
        self.imports: dict[str, tuple[str, str | None]] = {}
        self.statements: list[ast.AST] = []
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                self.defs[node.name] = node
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                self.imports.update(self.import_map(node))
            else:
                self.statements.append(node)
                for target in _assigned_names(node):
                    self.defs.setdefault(target, node)

    def absolute(self, node: ast.ImportFrom) -> str:
        if not node.level:
            return node.module or ""
        base = self.package.split(".")
        base = base[: len(base) - (node.level - 1)]
        return ".".join(base + ([node.module] if node.module else []))

    def import_map(self, node) -> dict[str, tuple[str, str | None]]:
        """alias -> (module, attribute or None for the module itself) of one import statement."""
        out = {}
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.asname:
                    out[a.asname] = (a.name, None)
                else:  # "import epcal.x" binds "epcal"
                    out[a.name.split(".")[0]] = (a.name.split(".")[0], None)
            return out
        mod = self.absolute(node)
        for a in node.names:
            out[a.asname or a.name] = (mod, a.name)
        return out


def _assigned_names(node) -> list[str]:
    targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
    return [t.id for t in targets if isinstance(t, ast.Name)]


#: the definition name that stands for a module's module-level statements (they run on import)
MODULE_LEVEL = "<module>"


class CodeDeps:
    """Reachability walk over the epcal sources under ``src`` (the directory holding ``epcal/``).

    The nodes are (module, definition) pairs; (module, None) is the whole module and
    (module, MODULE_LEVEL) its module-level statements.  The edges of a node depend on its source
    only, so they are computed once per node for all walks.
    """

    def __init__(self, src: str | Path):
        self.src = Path(src)
        self._modules: dict[str, _Module | None] = {}
        self._edges: dict[tuple, list] = {}

    def module(self, name: str) -> _Module | None:
        """The parsed module ``name`` of the package, or None (not an epcal module)."""
        if name not in self._modules:
            self._modules[name] = None
            if name == PACKAGE or name.startswith(PACKAGE + "."):
                base = self.src.joinpath(*name.split("."))
                if (base / "__init__.py").exists():
                    self._modules[name] = _Module(name, base / "__init__.py", True)
                elif base.with_suffix(".py").exists():
                    self._modules[name] = _Module(name, base.with_suffix(".py"), False)
        return self._modules[name]

    def files(self, entries, skip=()) -> list[Path]:
        """Source files reached from ``entries``: (module name, definition name) pairs; the
        definitions in ``skip`` are not followed."""
        seen, found = set(skip), set()
        todo = list(entries)
        while todo:
            key = todo.pop()
            mod = self.module(key[0])
            if key in seen or mod is None:
                continue
            seen.add(key)
            found.add(mod.path)
            parts = mod.name.split(".")  # importing a module runs its packages' and its own module level
            todo.extend((".".join(parts[:i]), MODULE_LEVEL) for i in range(1, len(parts) + 1))
            todo.extend(self.edges(key))
        return sorted(found)

    def edges(self, key) -> list:
        """The nodes one node uses (cached)."""
        if key not in self._edges:
            self._edges[key] = self._successors(*key)
        return self._edges[key]

    def _successors(self, mod_name: str, name: str | None) -> list:
        mod = self.module(mod_name)
        if name == MODULE_LEVEL:
            return [k for stmt in mod.statements for k in self._names(mod, stmt, {})]
        if name is None:  # the module used as a whole
            return [(mod_name, d) for d in mod.defs]
        if name not in mod.defs and self.module(f"{mod_name}.{name}") is not None:  # "from epcal import figures"
            return [(f"{mod_name}.{name}", MODULE_LEVEL)]
        if name in mod.defs:
            node = mod.defs[name]
            local = {}
            for inner in ast.walk(node):
                if isinstance(inner, (ast.Import, ast.ImportFrom)):
                    local.update(mod.import_map(inner))
            return self._names(mod, node, local)
        if name in mod.imports:  # re-exported
            return [mod.imports[name]]
        return [(mod_name, None)]  # defined dynamically: the whole module

    def _names(self, mod: _Module, node, local: dict) -> list:
        """(module, name) pairs of the epcal definitions ``node`` refers to."""
        out = []
        imports = {**mod.imports, **local}
        for inner in ast.walk(node):
            if isinstance(inner, (ast.Import, ast.ImportFrom)):  # an import runs the imported module
                out.extend((target, MODULE_LEVEL) for target, _ in mod.import_map(inner).values())
            elif isinstance(inner, ast.Attribute) and isinstance(inner.value, ast.Name):
                out.extend(self._attribute(imports, inner.value.id, inner.attr))
            elif isinstance(inner, ast.Name):
                if inner.id in imports:
                    target, attr = imports[inner.id]
                    if attr is None or self.module(f"{target}.{attr}") is not None:
                        continue  # a module alias: its attributes are followed one by one
                    out.append((target, attr))
                elif inner.id in mod.defs:
                    out.append((mod.name, inner.id))
        return out

    def _attribute(self, imports: dict, alias: str, attr: str) -> list:
        """``alias.attr`` where ``alias`` names an epcal module (or a package, with ``attr`` a submodule)."""
        if alias not in imports:
            return []
        target, name = imports[alias]
        mod_name = target if name is None else f"{target}.{name}"
        if self.module(mod_name) is None:
            return []
        if self.module(f"{mod_name}.{attr}") is not None:
            return [(f"{mod_name}.{attr}", None)]
        return [(mod_name, attr)]


@functools.lru_cache(maxsize=None)
def _walker(src: str) -> CodeDeps:
    return CodeDeps(src)


def verb_sources(verb: str, src: str | Path, cli_module: str = "epcal.cli.calibrate") -> list[Path]:
    """Source files the ``epcal`` verb ``verb`` (e.g. 'sweep-macro') of ``cli_module`` runs."""
    return list(_verb_sources(verb, str(Path(src).resolve()), cli_module))


@functools.lru_cache(maxsize=None)
def _verb_sources(verb: str, src: str, cli_module: str) -> tuple[Path, ...]:
    deps = _walker(src)
    func = "cmd_" + verb.replace("-", "_")
    mod = deps.module(cli_module)
    if mod is None or func not in mod.defs:
        raise ValueError(f"epcal verb {verb!r}: no function {func} in {cli_module}")
    cli_dir = Path(src).joinpath(*cli_module.split(".")[:-1])
    groups = [f"{PACKAGE}.cli.{p.stem}" for p in sorted(cli_dir.glob("*.py")) if not p.stem.startswith("_")]
    entries = [(cli_module, func), (f"{PACKAGE}.cli", "main")] + [(g, "register") for g in groups]
    # the groups' register() functions name every verb function; only the one the rule runs is followed
    verbs = {(g, d) for g in groups for d in deps.module(g).defs if d.lstrip("_").startswith("cmd_")}
    return tuple(deps.files(entries, skip=verbs - {(cli_module, func)}))
