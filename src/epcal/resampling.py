"""The bootstrap draws of a calibration: EPM replicas and the reference's independent units.

Every statistic of the losses is a sum over replicas (or over the reference's units), so one
bootstrap resample is a vector of counts over them (:func:`bootstrap_weights`), and an
evaluation's rows pair EPM and reference draws (:func:`resample_design`).
"""
from __future__ import annotations

import numpy as np
import pandas as pd


def bootstrap_weights(rng: np.random.Generator, n_boot: int, n: int) -> np.ndarray:
    """(n_boot, n) resampling counts: each row draws n of the n units with replacement."""
    idx = rng.integers(0, n, size=(n_boot, n))
    W = np.zeros((n_boot, n))
    np.add.at(W, (np.repeat(np.arange(n_boot), n), idx.ravel()), 1.0)
    return W


#: the kinds of bootstrap rows (column ``resample``): both sides resampled jointly (the error bar),
#: only the EPM replicas, only the reference's units (the two contributions)
RESAMPLE_KINDS = ("joint", "epm", "reference")


def resample_design(n_boot: int, W_epm: np.ndarray, V_ref: dict[str, np.ndarray]):
    """Row layout of an evaluation: (labels, boot ids, EPM weights, reference weights per unit kind).

    Row 0 is the full ensemble against the full reference (boot = -1, resample = "full"); then
    ``n_boot`` rows of each of :data:`RESAMPLE_KINDS`, with the *same* draws: "joint" pairs EPM draw
    b with reference draw b, "epm" keeps the reference whole, "reference" keeps the EPM whole.
    """
    R = W_epm.shape[1]
    ones_W = np.ones((1, R))
    Ws, Vs, labels = [ones_W], {k: [np.ones((1, v.shape[1]))] for k, v in V_ref.items()}, ["full"]
    if n_boot:
        for kind in RESAMPLE_KINDS:
            Ws.append(W_epm if kind in ("joint", "epm") else np.repeat(ones_W, n_boot, 0))
            for k, v in V_ref.items():
                Vs[k].append(v if kind in ("joint", "reference") else np.ones_like(v))
            labels += [kind] * n_boot
    boot = np.arange(-1, len(labels) - 1)
    return np.array(labels), boot, np.vstack(Ws), {k: np.vstack(v) for k, v in Vs.items()}


class ReferenceUnits:
    """The reference's independent units: its samples, and within each sample its probed states.

    A bootstrap draw resamples the samples with replacement and, within every drawn sample, its
    probed states of each kind (``gamma_ext`` tells apart the stationary states of one sample; a
    table without it has one state per sample and state name).  Weights are counts over samples (macro tables)
    and over (sample, state) units (probe tables).
    """

    def __init__(self, macro: pd.DataFrame, probe: pd.DataFrame):
        self.samples = np.unique(np.concatenate([macro["replica"].to_numpy(np.int64),
                                                 probe["replica"].to_numpy(np.int64)]))
        keys = self._unit_keys(probe)
        self.units = sorted(set(keys))
        self.unit_index = {u: i for i, u in enumerate(self.units)}
        self.unit_sample = np.searchsorted(self.samples, np.array([u[0] for u in self.units], np.int64))
        # within a sample, states are resampled among those of the same name (its stationary states)
        groups: dict = {}
        for i, u in enumerate(self.units):
            groups.setdefault((u[0], u[1]), []).append(i)
        self._groups = [(np.searchsorted(self.samples, k[0]), np.array(v)) for k, v in sorted(groups.items())]

    @staticmethod
    def _unit_keys(probe: pd.DataFrame):
        g = probe["gamma_ext"].to_numpy(float) if "gamma_ext" in probe else np.zeros(len(probe))
        return list(zip(probe["replica"].to_numpy(np.int64).tolist(), probe["state"].astype(str).tolist(),
                        np.round(g, 9).tolist()))

    def sample_of(self, replica: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.samples, np.asarray(replica, np.int64))

    def unit_of(self, probe: pd.DataFrame) -> np.ndarray:
        return np.array([self.unit_index[k] for k in self._unit_keys(probe)], np.int64)

    def weights(self, seed: int, n_boot: int) -> dict[str, np.ndarray]:
        """{"sample": (n_boot, S), "unit": (n_boot, U)}: one two-level draw per row (seeded)."""
        # two streams: the sample draws do not depend on which probed states the tables have (a
        # stage that reads no probe rows sees the same resampled samples as one that does)
        rng_s, rng_u = (np.random.default_rng([int(seed), i]) for i in (0, 1))
        S, U = len(self.samples), len(self.units)
        Vs, Vu = np.zeros((n_boot, S)), np.zeros((n_boot, U))
        per_sample = [[u for s_, u in self._groups if s_ == s] for s in range(S)]
        for b in range(n_boot):
            for s in rng_s.integers(0, S, size=S):
                Vs[b, s] += 1.0
                for u in per_sample[s]:
                    np.add.at(Vu[b], u[rng_u.integers(0, u.size, size=u.size)], 1.0)
        return {"sample": Vs, "unit": Vu}
