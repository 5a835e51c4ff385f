"""The fit of L_stat(k) per l (section 4.2): :func:`epcal.fits.fit_optimum` on the meso cells."""
from __future__ import annotations

import pandas as pd

from ..fits import fit_optimum


def fit(tables: list[pd.DataFrame], cfg: dict) -> pd.DataFrame:
    losses = pd.concat(tables, ignore_index=True)
    return fit_optimum(losses, half_width=cfg.get("half_width", 0.5), interp=cfg.get("interp", "regression"),
                       per_k=cfg.get("per_k", "chi_profile"), chi_half_width=cfg.get("chi_half_width", 0.3),
                       k_model=cfg.get("k_model", "cubic"))
