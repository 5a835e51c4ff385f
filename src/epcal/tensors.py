"""Tensor formulas shared by the EPM engine and the atomistic side (paper Eqs. 2-3).

Symmetric 2x2 tensors are 3-vectors of tensor components ``(t_xx, t_yy, t_xy)`` (never the
engineering shear 2 eps_xy); the double contraction is A:B = A_xx B_xx + A_yy B_yy + 2 A_xy B_xy.
The slip (Schmid) tensor of a plane at angle theta to x, M(theta) = (s x n + n x s) / 2, has the
components (-sin 2theta, sin 2theta, cos 2theta) / 2; the resolved shear stress on it is
tau = M(theta) : Sigma.  Pure numpy, no epcal imports: the engine (:mod:`epcal.elastic`) and
the local yield stress method of the atoms (:mod:`epcal.reference.lys`) use the same formulas.
"""
from __future__ import annotations

import numpy as np


def ddot(a, b) -> np.ndarray:
    """Double contraction A:B of tensor-component vectors (last axis of length 3)."""
    a, b = np.asarray(a), np.asarray(b)
    return a[..., 0] * b[..., 0] + a[..., 1] * b[..., 1] + 2.0 * a[..., 2] * b[..., 2]


def slip_tensor(theta) -> np.ndarray:
    """M(theta) of Eq. (3) as tensor-component vectors, shape (..., 3)."""
    theta = np.asarray(theta, dtype=float)
    s, c = np.sin(2 * theta), np.cos(2 * theta)
    return 0.5 * np.stack([-s, s, c], axis=-1)


def slip_matrix(theta: float) -> np.ndarray:
    """M(theta) of Eq. (3) as a 2x2 matrix (the affine map of a local shear along theta)."""
    s, c = np.sin(2 * theta), np.cos(2 * theta)
    return 0.5 * np.array([[-s, c], [c, s]])


def resolved_shear(stress, theta: float) -> float:
    """tau = M(theta) : Sigma for one stress (sxx, syy, sxy): sin 2theta (syy - sxx) / 2 + cos 2theta sxy."""
    return float(0.5 * np.sin(2 * theta) * (stress[1] - stress[0]) + np.cos(2 * theta) * stress[2])
