"""Seeded results pinned bit for bit (issue 14: a refactor must not change them).

Each case runs a small seeded computation through the code path production runs and compares a
SHA-256 of its output arrays with the value in tests/data/pinned_results.json.  A change of these
bits is a change of results: make it on purpose, say why in the commit, and regenerate with
``python tests/test_pinned_results.py --regenerate``.
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest

PINNED = Path(__file__).parent / "data" / "pinned_results.json"


def _digest(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(np.asarray(a))
        h.update(str(a.dtype).encode() + str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _table(df) -> str:
    cols = sorted(c for c in df.columns if np.issubdtype(df[c].dtype, np.number) or df[c].dtype == bool)
    return _digest(*[df[c].to_numpy() for c in cols])


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
    return _table(ens.macro) + _table(ens.probe)


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
    return _table(opt) + _digest(np.array([t["T_hat"], t["T_hat_err"]]))


CASES = {name[5:]: fn for name, fn in dict(globals()).items() if name.startswith("case_")}


@pytest.mark.parametrize("name", sorted(CASES))
def test_pinned(name):
    pinned = json.loads(PINNED.read_text())
    assert name in pinned, f"{PINNED}: no pinned value for {name!r} (regenerate on purpose)"
    assert CASES[name]() == pinned[name], (f"seeded result {name!r} changed: if intended, say why in the commit and "
                                           "run python tests/test_pinned_results.py --regenerate")


if __name__ == "__main__" and "--regenerate" in sys.argv:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    PINNED.write_text(json.dumps({name: fn() for name, fn in sorted(CASES.items())}, indent=1) + "\n")
    print(f"wrote {PINNED}")
