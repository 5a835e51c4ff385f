"""Command line interface ``epcal``: the only place that wires the modules together.

Each verb group lives in its own module with a ``register(subparsers)``
function; the Snakemake rules call these verbs and nothing else.
"""
from __future__ import annotations

import argparse
import importlib
import os
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
    parser.add_argument("--debug", action="store_true",
                        help=f"show the traceback of any error (also: {DEBUG_ENV}=1), e.g. to report an internal one")
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


#: environment variable that makes every error show its traceback (like --debug)
DEBUG_ENV = "EPCAL_DEBUG"


def _debug(args) -> bool:
    return bool(getattr(args, "debug", False)) or os.environ.get(DEBUG_ENV, "") not in ("", "0")


def main(argv: list[str] | None = None) -> int:
    """Run one verb.  User errors (bad parameters, bad tables, missing files, a full disk) print one
    line and exit 2; with --debug or EPCAL_DEBUG=1 every error shows its traceback."""
    from epcal.atomicio import DiskFullError

    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv  # accepted anywhere on the line, not only before the verb
    parser = build_parser()
    args = parser.parse_args([a for a in argv if a != "--debug"])
    args.debug = debug
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, DiskFullError) as exc:
        if _debug(args):
            raise
        print(f"epcal {args.verb}: error: {exc}  (--debug or {DEBUG_ENV}=1 shows the traceback)", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
