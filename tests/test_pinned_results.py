"""Seeded results pinned (issue 14: a refactor must not change them).

Each case runs a small seeded computation through the code path production runs and compares a
fingerprint of every output column (size, sums, first and last value) with the values in
tests/data/pinned_results.json, to 1e-9 relative.  Not a hash of the bits: the last bits of BLAS
and FFT results differ between CPUs and library builds (a SHA-256 pin failed on a fresh machine
with the same code), while a changed result moves the sums far beyond rounding.  A change is a
change of results: make it on purpose, say why in the commit, and regenerate with
``python tests/test_pinned_results.py --regenerate``; a new output column alone is pinned with
``--add-columns`` (the existing values stay as they are).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

PINNED = Path(__file__).parent / "data" / "pinned_results.json"


def _fingerprint(a) -> list[float]:
    """(size, sum, sum |x|, sum x^2, first, last) of an array: equal up to rounding where the
    computation is the same, and far apart where any value changed."""
    a = np.asarray(a, float).ravel()
    if a.size == 0:
        return [0.0] * 6
    return [float(a.size), float(a.sum()), float(np.abs(a).sum()), float((a * a).sum()), float(a[0]), float(a[-1])]


def _table(df, prefix: str = "") -> dict:
    cols = sorted(c for c in df.columns if np.issubdtype(df[c].dtype, np.number) or df[c].dtype == bool)
    return {prefix + c: _fingerprint(df[c].to_numpy()) for c in cols}


def _params(**kw):
    from epcal.params import PAPER_MODEL, model_params

    return model_params(6.6, kw.get("k", 2.0), kw.get("lam", 1.8), kw.get("chi", 2.3), {**PAPER_MODEL, "N": 12})


def case_aqs_macro():
    from epcal.stages.common import run

    ens = run(_params(), range(2), seed=4242, gamma_max=0.3)
    return _table(ens.macro)


def case_quench_and_probes():
    from epcal.stages.common import probe_spec, run

    ens = run(_params(), range(2), seed=4243, gamma_max=0.2, T_quench=0.25,
              probe=probe_spec([2, 4], [0.0, 45.0, 90.0], ("quench", "stationary"), 2))
    return {**_table(ens.macro, "macro."), **_table(ens.probe, "probe.")}


def case_variant_D_shuffled_kernel():
    from epcal.stages.common import run
    from epcal.variants import variant

    ens = run(_params(), range(1), seed=4244, gamma_max=0.2, variant=variant("D"))
    return _table(ens.macro)


def case_fit_and_temperature():
    """The optimum from a synthetic loss table and a synthetic quench scan (fits, no engine)."""
    import pandas as pd

    from epcal.stages.temperature import temperature_optimum
    from epcal.fits import fit_optimum

    rng = np.random.default_rng(7)
    rows = []
    for b in range(-1, 8):
        for k in np.arange(1.0, 3.01, 0.25):
            for lam in (1.5, 1.6):
                rows.append({"l": 6.6, "k": k, "lam": lam * (2.0 / k) ** 0.5, "chi": 2.0 + 0.1 * k, "boot": b,
                             "resample": "full" if b < 0 else "joint",
                             "L_stat": abs(k - 2.1) * 0.2 + 0.05 + 0.01 * rng.random()})
    opt = fit_optimum(pd.DataFrame(rows), 0.5, "log_regression")
    T = np.round(np.arange(0.05, 0.501, 0.05), 2)
    scan = pd.concat([pd.DataFrame({"l": 6.6, "T": T, "boot": b, "resample": "full" if b < 0 else "joint",
                                    "shift": "none", "L_quench": 0.0,
                                    "mean_tau_c_a0": 1 + (T - 0.2) + 0.01 * rng.random(T.size),
                                    "ref_mean_tau_c_a0": 1.0}) for b in range(-1, 6)], ignore_index=True)
    t = temperature_optimum(scan, 0.1)
    return {**_table(opt, "optimum."), "T_hat": _fingerprint([t["T_hat"], t["T_hat_err"]])}


CASES = {name[5:]: fn for name, fn in dict(globals()).items() if name.startswith("case_")}


@pytest.mark.parametrize("name", sorted(CASES))
def test_pinned(name):
    pinned = json.loads(PINNED.read_text())
    assert name in pinned, f"{PINNED}: no pinned value for {name!r} (regenerate on purpose)"
    got, want = CASES[name](), pinned[name]
    assert sorted(got) == sorted(want), f"{name}: the output columns changed ({sorted(set(got) ^ set(want))})"
    changed = [c for c in want if got[c] != pytest.approx(want[c], rel=1e-9, abs=1e-12, nan_ok=True)]
    assert not changed, (f"seeded result {name!r} changed in {changed}: if intended, say why in the commit and "
                         "run python tests/test_pinned_results.py --regenerate")


if __name__ == "__main__" and "--regenerate" in sys.argv:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    PINNED.write_text(json.dumps({name: fn() for name, fn in sorted(CASES.items())}, indent=1) + "\n")
    print(f"wrote {PINNED}")
elif __name__ == "__main__" and "--add-columns" in sys.argv:
    # an output column added on purpose: pin it, leaving every pinned value as it is
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    pinned = json.loads(PINNED.read_text())
    for name, fn in sorted(CASES.items()):
        new = {c: v for c, v in fn().items() if c not in pinned.get(name, {})}
        pinned.setdefault(name, {}).update(new)
        print(f"{name}: added {sorted(new)}")
    PINNED.write_text(json.dumps(pinned, indent=1) + "\n")
