"""The EPM lattice state (:class:`LatticeState`) and its tidy table (one row per element, slip
systems as list columns) and back: the quench states the ``epcal quench`` verb writes and the
probe verbs read."""
from __future__ import annotations

import dataclasses
import numpy as np
import pandas as pd

from .params import EPMParams
from .samples import Sample, slip_coefficients_of_elements
from .schema import DELTA_GAMMA
from .slip import SlipSystems


@dataclasses.dataclass
class LatticeState:
    """Everything that defines an EPM configuration (see :mod:`epcal.dynamics`)."""

    sig: np.ndarray        # (E, 3) stress without the external load
    eps_pl: np.ndarray     # (E, 3) plastic strain since the last reset
    systems: SlipSystems
    step: int = 0          # gamma_ext = step * dgamma
    slip_count: np.ndarray | None = None
    sample: Sample | None = None  # quenched data of models A and B (epcal.samples), shared by copies

    def copy(self) -> "LatticeState":
        return LatticeState(self.sig.copy(), self.eps_pl.copy(), self.systems.copy(), self.step,
                            None if self.slip_count is None else self.slip_count.copy(), self.sample)

    @property
    def _lattice(self):
        return None if self.sample is None else self.sample.lattice

    def stress(self, G: float, dgamma: float = DELTA_GAMMA) -> np.ndarray:
        """Full element stress Sigma = sig + (0, 0, G gamma_ext); model A: sig + gamma_ext c_e, the
        elements' own responses to the external strain.  (Model B's hydrostatic offset p0 is not in it.)"""
        s = self.sig.copy()
        if self._lattice is not None:
            s += (self.step * dgamma) * self._lattice.load
        else:
            s[:, 2] += G * (self.step * dgamma)
        return s

    def external_stress(self, G: float, dgamma: float = DELTA_GAMMA) -> float:
        """Sigma_xy^ext, the mean element Sigma_xy (model A: G is the sample's macroscopic modulus)."""
        if self._lattice is not None:
            G = self._lattice.G_eff
        return float(self.sig[:, 2].mean() + G * (self.step * dgamma))


def state_frame(state: LatticeState, params: EPMParams, *, replica: int, label: str) -> pd.DataFrame:
    """Snapshot of a state as a tidy table: one row per element, slip systems as list columns."""
    E = params.L * params.L
    i, j = np.divmod(np.arange(E), params.L)
    full = state.stress(params.G)
    df = pd.DataFrame({
        "replica": np.full(E, replica, np.int64), "label": label, "step": np.full(E, state.step, np.int64),
        "element": np.arange(E, dtype=np.int64), "i": i, "j": j,
        "sig_xx": state.sig[:, 0], "sig_yy": state.sig[:, 1], "sig_xy": state.sig[:, 2],
        "sxx": full[:, 0], "syy": full[:, 1], "sxy": full[:, 2],
        "eps_pl_xx": state.eps_pl[:, 0], "eps_pl_yy": state.eps_pl[:, 1], "eps_pl_xy": state.eps_pl[:, 2],
        "theta": list(state.systems.theta), "tau_c": list(state.systems.tau_c),
    })
    if state.sample is not None and state.sample.shear_moduli is not None:  # model A
        df["shear_modulus"] = state.sample.shear_moduli
    if state.sample is not None and state.sample.pressure_offset is not None:  # model B (not in sxx, syy)
        df["pressure_offset"] = state.sample.pressure_offset
    return df


def state_from_frame(df: pd.DataFrame, model) -> LatticeState:
    """Inverse of :func:`state_frame` for one (replica, label); ``model`` an :class:`epcal.simulate.Model`."""
    from .slip import _fill_system

    p = model.params
    df = df.sort_values("element")
    E = p.L * p.L
    if len(df) != E:
        raise ValueError(f"state table has {len(df)} elements, expected L_EP^2 = {E}")
    theta = np.stack(df["theta"].to_numpy())
    tau_c = np.stack(df["tau_c"].to_numpy())
    if theta.shape != (E, model.N):
        raise ValueError(f"state table slip systems have shape {theta.shape}, expected ({E}, {model.N})")
    systems = SlipSystems(E, model.N, axes=model.variant.systems == "axes")
    v = model.variant
    for col, needed in (("shear_modulus", v.heterogeneous), ("pressure_offset", v.pressure_sensitive)):
        if needed and col not in df.columns:
            raise ValueError(f"state table of model {v.name} has no column '{col}' (its sample)")
    sample = model.make_sample(df["shear_modulus"].to_numpy() if v.heterogeneous else None,
                               float(df["pressure_offset"].iloc[0]) if v.pressure_sensitive else None)
    for e in range(E):
        for s in range(model.N):
            _fill_system(systems.theta, systems.tau_c, systems.a, systems.b, systems.gamma_max_coef, e, s,
                         theta[e, s], tau_c[e, s], model.f_coef)
    if v.heterogeneous:
        systems.gamma_max_coef[:] = slip_coefficients_of_elements(systems.theta, sample.lattice.f_coef)
    sig = df[["sig_xx", "sig_yy", "sig_xy"]].to_numpy().copy()
    eps = df[["eps_pl_xx", "eps_pl_yy", "eps_pl_xy"]].to_numpy().copy()
    return LatticeState(sig, eps, systems, int(df["step"].iloc[0]), np.zeros(E, np.int64), sample)
