"""Command line interface ``epcal``: the only place that wires the modules together.

Each verb group lives in its own module with a ``register(subparsers)``
function; the Snakemake rules call these verbs and nothing else.
"""
from __future__ import annotations

import argparse
import importlib
import sys

#: verb-group modules, in the order of ``epcal --help``
_GROUPS = ("epcal.cli.engine", "epcal.cli.calibrate", "epcal.cli.reference")


def build_parser() -> argparse.ArgumentParser:
    from epcal import __version__

    parser = argparse.ArgumentParser(
        prog="epcal",
        description="Mesoscale elasto-plastic model (EPM) and its calibration against atomistic data.",
    )
    parser.add_argument("--version", action="version", version=f"epcal {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    for name in _GROUPS:
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as exc:  # a group not (yet) present in this checkout
            if exc.name == name:
                continue
            raise
        mod.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as exc:
        # user errors (bad parameters, bad tables, missing files): one clear line, no traceback
        print(f"epcal {args.verb}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
