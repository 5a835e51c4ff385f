"""Bit-identity check of the engine between two source trees (issue 14: a refactor keeps every bit).

``write`` runs a fixed set of seeded engine computations through :func:`epcal.simulate.run_ensemble`
(the path production runs) -- AQS with quench, quench and stationary local shear tests, state
snapshots, for models C, A, B, D, E, F and I -- and stores every numeric column in an ``.npz``;
``compare`` reports, column by column, whether two such files are equal bit for bit
(``np.array_equal``, NaN equal to NaN).

    PYTHONPATH=/tmp/epcal_base/src python benchmarks/same_bits.py write /tmp/before.npz
    PYTHONPATH=src python benchmarks/same_bits.py write /tmp/after.npz
    python benchmarks/same_bits.py compare /tmp/before.npz /tmp/after.npz
"""
from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import numpy as np  # noqa: E402

#: the variants and the extra parameters they need (appendix A.8)
CASES = {"C": {}, "A": {}, "B": {}, "D": {}, "E": {"tau_c": 1.2}, "F": {"dgamma_pl": 0.05}, "I": {}}


def _columns(df, prefix):
    out = {}
    for c in df.columns:
        v = df[c].to_numpy()
        if v.dtype == object and len(v) and isinstance(v[0], (list, tuple, np.ndarray)):
            v = np.stack([np.asarray(x, float).ravel() for x in v])  # array-valued cells (state snapshots)
        if np.issubdtype(np.asarray(v).dtype, np.number) or np.asarray(v).dtype == bool:
            out[f"{prefix}.{c}"] = np.asarray(v)
    return out


def write(path: str) -> None:
    from epcal.params import PAPER_MODEL, model_params
    from epcal.simulate import ProbeSpec, run_ensemble
    from epcal.variants import variant

    p = model_params(6.6, 2.0, 1.8, 2.3, {**PAPER_MODEL, "N": 12})
    probe = ProbeSpec(n_list=(1, 3, 4), alpha_deg=(0.0, 30.0, 90.0, 135.0), states=("quench", "stationary"), stride=2)
    arrays = {}
    for i, (name, extra) in enumerate(CASES.items()):
        ens = run_ensemble(p, replicas=range(2), seed=777 + i, gamma_max=0.4, T_quench=0.25, probe=probe,
                           snapshots=(0.2,), variant=variant(name, **extra))
        arrays.update(_columns(ens.macro, f"{name}.macro"))
        arrays.update(_columns(ens.probe, f"{name}.probe"))
        arrays.update(_columns(ens.states, f"{name}.states"))
        arrays[f"{name}.runs.quench_events"] = ens.runs["quench_events"].to_numpy() if "quench_events" in ens.runs \
            else np.zeros(0)
    np.savez(path, **arrays)
    print(f"{path}: {len(arrays)} columns")


def compare(a: str, b: str) -> int:
    A, B = np.load(a), np.load(b)
    bad = sorted(set(A.files) ^ set(B.files))
    for k in sorted(set(A.files) & set(B.files)):
        if A[k].shape != B[k].shape or not np.array_equal(A[k], B[k], equal_nan=A[k].dtype.kind == "f"):
            bad.append(k)
    print(f"{len(A.files)} columns compared, {len(bad)} differ" + ("".join(f"\n  {k}" for k in bad)))
    return 1 if bad else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("write")
    w.add_argument("out")
    c = sub.add_parser("compare")
    c.add_argument("a")
    c.add_argument("b")
    args = ap.parse_args()
    if args.cmd == "write":
        write(args.out)
        return 0
    return compare(args.a, args.b)


if __name__ == "__main__":
    sys.exit(main())
