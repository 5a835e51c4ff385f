"""The overlap loss L[P] = 1 - integral min(P_EP, P_MD) (paper eq. 8) on the reference's bins.

The binning rule (module doc of :mod:`epcal.losses`): a regular, unbounded lattice fixed by the
reference sample only (Freedman-Diaconis width with n capped at ``max_n``, an edge at the
reference median; for quantized increments a whole number of quanta with edges at half-quanta).
"""
from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Bins:
    """An unbounded regular lattice of bins: index = floor((x - anchor) / width)."""

    anchor: float
    width: float

    def index(self, x: np.ndarray) -> np.ndarray:
        return np.floor((np.asarray(x, float) - self.anchor) / self.width).astype(np.int64)

    def edges(self, lo: int, hi: int) -> np.ndarray:
        return self.anchor + self.width * np.arange(lo, hi + 2)


def reference_bins(ref: np.ndarray, max_n: int = 2000, quantum: float | None = None) -> Bins:
    """The binning rule of the module doc, from the reference sample only."""
    ref = np.asarray(ref, float)
    if ref.size < 2:
        raise ValueError(f"reference sample has {ref.size} value(s); need at least 2 to set the bins")
    q25, q50, q75 = np.percentile(ref, [25, 50, 75])
    iqr = q75 - q25
    if not iqr > 0:
        iqr = np.std(ref) * 1.349 or (abs(q50) * 1e-3 or 1e-12)
    n_b = min(ref.size, int(max_n))
    h = 2.0 * iqr / n_b ** (1.0 / 3.0)
    if quantum:
        m = max(1, int(round(h / quantum)))
        return Bins(anchor=-0.5 * quantum, width=m * quantum)
    return Bins(anchor=float(q50), width=float(h))


class HistogramTarget:
    """The reference histogram on fixed bins; L[P] (eq. 8) of (weighted) EPM replicas against it.

    The one implementation of the overlap loss: per-unit reference counts (``ref_unit``: the
    reference's independent unit of every value, e.g. its sample) so that a bootstrap of the
    reference is a weight vector over its units, like the EPM's over its replicas.
    """

    def __init__(self, ref: np.ndarray, bins: Bins, ref_unit: np.ndarray | None = None, n_units: int = 1):
        self.bins = bins
        ir = bins.index(ref)
        if ir.size == 0:
            raise ValueError("HistogramTarget: empty reference sample")
        self.lo, self.hi = int(ir.min()), int(ir.max())
        unit = np.zeros(ir.size, np.int64) if ref_unit is None else np.asarray(ref_unit, np.int64)
        nb = self.hi - self.lo + 1
        self.C = np.bincount(unit * nb + (ir - self.lo), minlength=n_units * nb).reshape(n_units, nb).astype(float)
        self.c = self.C.sum(axis=0)
        self.n = float(ir.size)

    def replica_counts(self, values: np.ndarray, replica: np.ndarray, replicas: np.ndarray):
        """(counts per replica, offset): EPM counts (R, nb) on a lattice window covering the reference
        and the values, and the offset of the reference's window inside it."""
        idx = self.bins.index(values)
        lo = min(self.lo, int(idx.min()) if idx.size else self.lo)
        hi = max(self.hi, int(idx.max()) if idx.size else self.hi)
        nb = hi - lo + 1
        pos = np.searchsorted(replicas, replica)
        counts = np.bincount(pos * nb + (idx - lo), minlength=len(replicas) * nb).reshape(len(replicas), nb)
        return counts.astype(float), self.lo - lo

    def loss_from_counts(self, counts: np.ndarray, offset: int, weights: np.ndarray,
                         ref_weights: np.ndarray | None = None) -> np.ndarray:
        """L = 1 - sum_j min(p_EP_j, p_MD_j) per row of ``weights`` (B, R) and ``ref_weights`` (B, units).

        Integer arithmetic on integer weights: exactly 0 for identical samples.
        """
        c = weights @ counts
        cr = self.c[None, :] if ref_weights is None else ref_weights @ self.C
        cref = np.zeros((cr.shape[0], c.shape[1]))
        cref[:, offset:offset + cr.shape[1]] = cr
        tot = c.sum(axis=1)
        nref = cref.sum(axis=1)
        common = np.minimum(c * nref[:, None], cref * tot[:, None]).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            L = 1.0 - common / (tot * nref)
        L[(tot == 0) | (nref == 0)] = np.nan
        return np.clip(L, 0.0, 1.0)

    def loss(self, values: np.ndarray) -> float:
        """L[P] of one EPM sample ``values`` against the whole reference (nan for an empty sample)."""
        values = np.asarray(values, float)
        if values.size == 0:
            return float("nan")
        counts, off = self.replica_counts(values, np.zeros(values.size, np.int64), np.zeros(1, np.int64))
        return float(self.loss_from_counts(counts, off, np.ones((1, 1)))[0])
