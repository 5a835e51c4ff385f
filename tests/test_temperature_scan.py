"""The quench scan of the KMC temperature (epcal.stages.temperature): its shifted scans."""
from __future__ import annotations

import numpy as np
import pandas as pd

from epcal.params import PAPER_MODEL
from epcal.refdir import read_reference
from epcal.stages.temperature import quench_temperature
from test_losses import probe_table, sawtooth, write_reference


def test_shifted_scans_share_the_central_random_streams(tmp_path):
    """Shifts of (almost) zero reproduce the central scan's magnitudes: the shifted scans draw the same
    random streams (common random numbers), so T_hat's propagated error measures the parameters'
    effect, not the noise of independent ensembles; a real shift moves them.  Uncorrelated errors:
    the principal axes are the parameters themselves, largest first."""
    ref = read_reference(write_reference(tmp_path / "ref", sawtooth(3, 300, 1), probe_table(3, 2)))
    cfg = {"model": {**PAPER_MODEL, "N": 12}, "seed": 5, "T": [0.2, 0.3], "replicas": 2, "n_boot": 0,
           "R": 30.0, "alpha": [0.0]}
    opt = pd.Series({"l": 6.6, "k_hat": 2.0, "lam_hat": 1.8, "chi_hat": 2.3,
                     "k_hat_err": 1e-6, "lam_hat_err": 0.3, "chi_hat_err": 1e-6})
    scan = quench_temperature(ref, opt, cfg, log=lambda *a: None)
    assert sorted(scan["shift"].unique()) == ["axis0+", "axis0-", "axis1+", "axis1-", "axis2+", "axis2-", "none"]
    lam_axis = scan[scan["shift"] == "axis0+"]
    assert np.allclose(np.abs(lam_axis[["shift_k", "shift_lam", "shift_chi"]].to_numpy()), [0.0, 0.3, 0.0])
    cols = [c for c in scan.columns if c.endswith("_a0") and not c.startswith("ref_")]
    central = scan[scan["shift"] == "none"].sort_values("T")[cols].to_numpy()
    for shift in ("axis1+", "axis2-"):  # 1e-6 of k or chi: the same streams give the same quench to ~1e-6
        np.testing.assert_allclose(scan[scan["shift"] == shift].sort_values("T")[cols].to_numpy(), central,
                                   rtol=1e-3)
    moved = lam_axis.sort_values("T")[cols].to_numpy()
    # lambda +- 0.3 scales the thresholds: the magnitudes move by about 0.3 / 1.8 of themselves
    assert np.median(np.abs(moved / central - 1)) > 0.05
