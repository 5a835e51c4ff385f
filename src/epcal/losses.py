"""Calibration losses (paper section 4, DESIGN.md section 3).

Everything here works on the tidy tables of :mod:`epcal.schema`, so the same
code serves the EPM output and the reference (atomistic or twin).

Macroscale observables (stationary regime, gamma_ext > 0.5), from a ``macro``
table whose records are the first state, every avalanche and the last state,
with elastic (linear) branches in between:

``sigma``  Sigma_xy^ext sampled on the AQS strain grid along the curve.  The
           state at step s of a branch that starts at record i (step s_i,
           stress ``sigma_after``) and ends at record i+1 is
           sigma_after_i + (s - s_i) (sigma_before_{i+1} - sigma_after_i) / (s_{i+1} - s_i)
           for s_i <= s < s_{i+1}; the last record contributes its own point.
``drop``   delta Sigma = sigma_before - sigma_after on avalanche rows.
``incr``   Delta Sigma = sigma_before_{i+1} - sigma_after_i on a branch that
           joins two consecutive avalanches.

Binning rule for L[P] = 1 - integral min(P_EP, P_MD) (paper eq. 8)
-------------------------------------------------------------------
The bins are a regular lattice fixed by the *reference* sample only, so that
every point of the (k, lambda, chi) grid is compared on the same bins and a
resampled EPM ensemble never moves them:

* width  h = 2 IQR_ref / n_b**(1/3)  (Freedman-Diaconis on the reference) with
  n_b = min(n_ref, ``max_n``): capping n keeps the bins wide enough for the
  EPM ensembles (a few 10^3 events) so the finite-sample floor of L stays
  small and does not depend on the reference size;
* anchor: a bin edge at the reference median;
* for the stress increments, whose EPM values are multiples of the quantum
  q = G Delta gamma (Fig. 2d), h is rounded to a whole number M >= 1 of
  quanta and the edges sit at half-quanta, so every bin holds exactly M
  discrete values (no aliasing between the discrete EPM and a smooth
  reference);
* the lattice is unbounded (bin index floor((x - anchor)/h)), so no sample is
  ever out of range.

With probabilities p_j = counts_j / n on that lattice,
L[P] = 1 - sum_j min(p_EP_j, p_MD_j) in [0, 1]: 0 for identical samples, 1
for samples more than one bin apart.

Mesoscale magnitudes (paper eq. 9): mean and standard deviation (ddof = 0)
of tau_i, tau_c, delta_tau_c and drop_tau_c in the stationary state at the
patch radius nearest R = 30, L[F] = |1 - F_EP / F_MD|, L+ at alpha = 0 and
L- at alpha = 90, each the mean of its 8 values;
L_stat = (L_macro + (L+ + L-)/2) / 2.

Replica bootstrap: all statistics are sums over replicas (histogram counts,
sums of x and x^2), so a bootstrap resample of the EPM replicas is a weight
vector over replicas and costs one matrix product (the draws: :mod:`epcal.resampling`).
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from .observables import MACRO_OBS, MacroObservables, macro_observables  # noqa: F401 (re-exported)
from .histograms import HistogramTarget, reference_bins
from .resampling import ReferenceUnits, bootstrap_weights, resample_design
from .schema import DELTA_GAMMA, GAMMA_STATIONARY, Reference, TableError  # noqa: F401 (Reference re-exported)

MESO_QUANTITIES = ("tau_i", "tau_c", "delta_tau_c", "drop_tau_c")
MESO_MAGNITUDES = tuple(f"{s}_{q}" for q in MESO_QUANTITIES for s in ("mean", "std"))
#: Quenched-state magnitudes of the KMC temperature calibration (appendix A.3): the quenched state is
#: isotropic, so mean tau_i vanishes (its relative error would be noise over ~0); the von Mises stress
#: (mean and std) measures the amplitude of the frozen-in stress field instead.
QUENCH_QUANTITIES = ("sigma_vm",) + MESO_QUANTITIES
QUENCH_MAGNITUDES = tuple(m for m in (f"{s}_{q}" for q in QUENCH_QUANTITIES for s in ("mean", "std"))
                          if m != "mean_tau_i")
#: seed of the fixed offsets that requantize scaled increments (:meth:`Evaluator.scaled_values`)
REQUANTIZE_SEED = 0x51CA1E
LOSS_COLUMNS = ("L_sigma", "L_drop", "L_incr", "L_macro", "L_meso_plus", "L_meso_minus", "L_stat")


# --------------------------------------------------------------------------- meso magnitudes
def _nearest(values: np.ndarray, target: float) -> float:
    u = np.unique(values)
    return float(u[np.argmin(np.abs(u - target))])


def select_probe(probe: pd.DataFrame, state: str, R: float, alpha: float, source: str = "probe",
                 exact_R: bool = True) -> pd.DataFrame:
    """Rows of ``state`` at radius ``R`` and orientation ``alpha`` (mod 180).

    ``exact_R``: the table must have R itself (a reference: never another R in its place);
    ``exact_R=False``: the table's radius nearest R (an EPM table, whose patches of n elements have
    R = l n / sqrt(pi)).
    """
    d = probe[probe["state"].astype(str) == state]
    if d.empty:
        raise TableError(f"{source}: column 'state': no rows with state '{state}'")
    a = np.mod(d["alpha"].to_numpy(float), 180.0)
    da = np.minimum(np.abs(a - alpha % 180.0), 180.0 - np.abs(a - alpha % 180.0))
    d = d[da < 1e-6]
    if d.empty:
        raise TableError(f"{source}: column 'alpha': no '{state}' rows at alpha = {alpha:g} degrees")
    Rs = d["R"].to_numpy(float)
    if exact_R:
        keep = np.abs(Rs - float(R)) <= 1e-6 * max(1.0, abs(float(R)))
        if not keep.any():
            raise TableError(f"{source}: column 'R': no '{state}' rows at R = {float(R):g} and alpha = {alpha:g} "
                             f"(the table has R = {', '.join(f'{r:g}' for r in np.unique(Rs))}); set the loss's R "
                             "to one of them, or R: auto")
        return d[keep]
    r = _nearest(Rs, R)
    return d[np.isclose(Rs, r)]


def meso_sums(rows: pd.DataFrame, replicas: np.ndarray | None = None, quantities=MESO_QUANTITIES,
              groups: np.ndarray | None = None, n_groups: int | None = None):
    """Per-replica (count, sum x, sum x^2) of ``quantities``: arrays (n_rep, 1), (n_rep, q), (n_rep, q).

    ``groups`` (one group index per row, ``n_groups`` in all) replaces the replicas as the units
    (the reference's (sample, state) units).
    """
    X = rows[list(quantities)].to_numpy(float)
    if groups is None:
        rep = rows["replica"].to_numpy(np.int64)
        replicas = np.unique(rep) if replicas is None else replicas
        pos = np.searchsorted(replicas, rep)
        ok = (pos < len(replicas)) & (replicas[np.minimum(pos, len(replicas) - 1)] == rep)
        X, pos, size = X[ok], pos[ok], len(replicas)
    else:
        pos, size = np.asarray(groups, np.int64), int(n_groups)
    n = np.zeros((size, 1))
    s1 = np.zeros((size, len(quantities)))
    s2 = np.zeros_like(s1)
    np.add.at(n, pos, 1.0)
    np.add.at(s1, pos, X)
    np.add.at(s2, pos, X * X)
    return n, s1, s2


def magnitudes_from_sums(n, s1, s2, weights: np.ndarray) -> np.ndarray:
    """(B, 2q) array of magnitudes (mean, std per quantity), MESO_MAGNITUDES order for the default
    quantities, of the rows pooled over the units (replicas or reference samples) with ``weights``
    (B, units) as multiplicities.

    The std estimates the population's: the pooled variance of n correlated rows is low by the
    variance of their mean, E[s^2] = sigma^2 - Var(mean), and the patches of one unit share its
    macroscopic state, so Var(mean) is that of the unit means / (number of units), not sigma^2 / n:
    without it, ensembles of different sizes differ in their std.  Var(mean) is estimated from the spread of
    the unit sums around the mean (the ratio-mean estimator of cluster sampling, factor
    U / (U - 1) with U the weighted number of units that have rows; no correction for U <= 1).
    """
    w = np.asarray(weights, float)
    N = w @ n
    U = w @ (n > 0).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        m = (w @ s1) / N
        v = (w @ s2) / N - m * m
        spread = w @ (s1 * s1) - 2.0 * m * (w @ (s1 * n)) + m * m * (w @ (n * n))  # sum_u w_u (s1_u - m n_u)^2
        factor = np.divide(U, U - 1.0, out=np.zeros_like(U), where=U > 1)
        var_mean = factor * spread / (N * N)
        v = np.maximum(v + np.maximum(var_mean, 0.0), 0.0)
    out = np.empty((w.shape[0], 2 * s1.shape[1]))
    out[:, 0::2] = m
    out[:, 1::2] = np.sqrt(v)
    return out


def relative_loss(ep: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """L[F] = |1 - F_EP / F_MD| (paper eq. 9)."""
    ref = np.asarray(ref, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.abs(1.0 - np.asarray(ep, float) / ref)


def l_stat(L_macro, L_plus, L_minus):
    return 0.5 * (np.asarray(L_macro) + 0.5 * (np.asarray(L_plus) + np.asarray(L_minus)))


# --------------------------------------------------------------------------- the evaluator
def resolve_radius(probe: pd.DataFrame, state: str, R, source: str = "probe") -> float:
    """The loss radius: ``R`` itself, or for R = "auto" the largest R of the ``state`` rows."""
    if R != "auto":
        return float(R)
    d = probe[probe["state"].astype(str) == state]
    if d.empty:
        raise TableError(f"{source}: column 'state': no rows with state '{state}' (R: auto)")
    return float(d["R"].max())


@dataclasses.dataclass
class LossSettings:
    R: float | str = 30.0
    alpha_plus: float = 0.0
    alpha_minus: float = 90.0
    gamma_min: float = GAMMA_STATIONARY
    max_n: int = 2000
    quantize_increments: bool = True

    @classmethod
    def from_config(cls, cfg: dict | None) -> "LossSettings":
        cfg = dict(cfg or {})
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(cfg) - fields
        if unknown:
            raise ValueError(f"losses: unknown key(s) {sorted(unknown)}; expected {sorted(fields)}")
        return cls(**cfg)


class Evaluator:
    """Losses of EPM ensembles against one reference, with a joint bootstrap of both.

    Bootstrap rows resample the EPM replicas and the reference's units (:class:`ReferenceUnits`:
    samples, and the probed states within them) jointly, and each side alone
    (:func:`resample_design`); the reference draws depend only on ``ref_seed`` and the
    reference, so every (k, lambda, chi) of a calibration sees the same reference resamples.
    """

    def __init__(self, ref: Reference, settings: LossSettings | None = None, shear_modulus: float | None = None,
                 ref_seed: int = 0, meso: bool = True):
        """``meso=False``: macroscale losses only (the reference's probe rows are not read, so the
        settings' R and orientations do not matter)."""
        self.ref = ref
        self.s = settings or LossSettings()
        self.ref_seed = int(ref_seed)
        self.units = ReferenceUnits(ref.macro, ref.probe)
        obs = macro_observables(ref.macro, self.s.gamma_min, ref.delta_gamma)
        G = shear_modulus if shear_modulus is not None else ref.shear_modulus
        self.targets = {}
        self.incr_quantum = None  # G dgamma when the increments are quantized (scaled_values)
        for name in MACRO_OBS:
            v = obs.values[name]
            if v.size < 2:
                raise TableError(f"{ref.path}/macro.parquet: too few '{name}' values in the stationary regime "
                                 f"(gamma_ext > {self.s.gamma_min}): {v.size}")
            q = G * ref.delta_gamma if (name == "incr" and self.s.quantize_increments) else None
            if q:
                self.incr_quantum = q
            self.targets[name] = HistogramTarget(v, reference_bins(v, self.s.max_n, q),
                                                 self.units.sample_of(obs.replica[name]), len(self.units.samples))
        self.ref_meso = {}
        self.ref_R = float("nan")
        if not meso:
            return
        src = f"{ref.path}/probe.parquet"
        self.ref_R = resolve_radius(ref.probe, "stationary", self.s.R, src)
        self.ref_meso = {}  # (unit sums of the reference rows, magnitudes of the whole reference)
        U = len(self.units.units)
        for tag, a in (("plus", self.s.alpha_plus), ("minus", self.s.alpha_minus)):
            rows = select_probe(ref.probe, "stationary", self.ref_R, a, src)
            sums = meso_sums(rows, groups=self.units.unit_of(rows), n_groups=U)
            mags = magnitudes_from_sums(*sums, np.ones((1, U)))[0]
            zero = [k for k, v in zip(MESO_MAGNITUDES, mags) if v == 0]
            if zero:
                raise TableError(f"{src}: reference magnitude(s) {zero} are zero at alpha={a:g}: L[F] undefined")
            self.ref_meso[tag] = (sums, mags)

    def reference_weights(self, n_boot: int) -> dict[str, np.ndarray]:
        return self.units.weights(self.ref_seed, n_boot) if n_boot else {
            "sample": np.zeros((0, len(self.units.samples))), "unit": np.zeros((0, len(self.units.units)))}

    def design(self, n_replicas: int, n_boot: int, seed: int):
        """The rows of an evaluation (:func:`resample_design`): EPM replica draws seeded by ``seed``,
        reference draws by the evaluator's ``ref_seed``."""
        if n_replicas == 0:
            raise ValueError("EPM macro table is empty")
        R = int(n_replicas)
        W_epm = bootstrap_weights(np.random.default_rng(seed), n_boot, R) if n_boot else np.zeros((0, R))
        return resample_design(n_boot, W_epm, self.reference_weights(n_boot))

    # ------------------------------------------------------------------
    def macro_losses_scaled(self, obs_all: MacroObservables, scale: float, replicas: np.ndarray, W: np.ndarray,
                            V_sample: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """L_sigma, L_drop, L_incr and L_macro, one value per row of the replica weights ``W`` (and
        reference weights ``V_sample``), of an ensemble whose stresses and strains are all multiplied
        by ``scale``: the surrogate of the scaled search and of the lambda profiles.

        ``obs_all`` must come from :func:`macro_observables` with ``gamma_min = 0`` (the stationary
        cut is applied here on the scaled strain).
        """
        out = {}
        for name in MACRO_OBS:
            keep = obs_all.gamma[name] * scale > self.s.gamma_min
            t = self.targets[name]
            values = self.scaled_values(name, obs_all.values[name], scale)
            counts, off = t.replica_counts(values[keep], obs_all.replica[name][keep], replicas)
            out[f"L_{name}"] = t.loss_from_counts(counts, off, W, V_sample)
        out["L_macro"] = (out["L_sigma"] + out["L_drop"] + out["L_incr"]) / 3.0
        return out

    def scaled_values(self, name: str, values: np.ndarray, scale: float) -> np.ndarray:
        """The macro observable ``name`` of the ensemble at lambda * scale, from the one at lambda.

        Stresses scale by ``scale``, except the quantized increments: an elastic branch of m strain
        steps (increment m q, q = G dgamma) ended where the next activation's distance g in units of
        q lay in (m - 1, m]; at lambda * scale that distance is scale * g, so the branch has
        ceil(scale (m - u)) steps with u uniform in [0, 1) (drawn once per value, seeded by
        :data:`REQUANTIZE_SEED`, the same for every scale): exact at scale = 1, and no aliasing of
        scaled quanta against the reference's whole-quantum bins.
        """
        if name != "incr" or not self.incr_quantum:
            return values * scale
        q = self.incr_quantum
        m = np.rint(values / q)
        u = np.random.default_rng(REQUANTIZE_SEED).random(values.size)
        return q * np.ceil(scale * (m - u))

    def macro_loss_scaled(self, obs_all: MacroObservables, scale: float) -> dict[str, float]:
        """:meth:`macro_losses_scaled` of the whole ensemble against the whole reference."""
        replicas = np.unique(np.concatenate([obs_all.replica[name] for name in MACRO_OBS]).astype(np.int64))
        out = self.macro_losses_scaled(obs_all, scale, replicas, np.ones((1, len(replicas))))
        return {key: float(v[0]) for key, v in out.items()}

    def meso_magnitudes(self, probe: pd.DataFrame, replicas: np.ndarray, W: np.ndarray, V_unit: np.ndarray):
        """{"plus"|"minus": (EPM magnitudes (B, 8), reference magnitudes (B, 8), EPM patch R)} of the
        stationary probe rows at the loss radius, rows of the replica / unit weights W, V_unit."""
        out = {}
        for tag, a in (("plus", self.s.alpha_plus), ("minus", self.s.alpha_minus)):
            rows = select_probe(probe, "stationary", self.ref_R, a, "EPM probe table", exact_R=False)
            out[tag] = (magnitudes_from_sums(*meso_sums(rows, replicas), W),
                        magnitudes_from_sums(*self.ref_meso[tag][0], V_unit), float(rows["R"].iloc[0]))
        return out

    def evaluate(self, macro: pd.DataFrame, probe: pd.DataFrame | None = None,
                 n_boot: int = 0, seed: int = 0, delta_gamma: float = DELTA_GAMMA,
                 details: bool = False) -> pd.DataFrame:
        """One row per bootstrap sample with the losses: boot = -1 (resample "full") is the full
        ensemble against the full reference, then ``n_boot`` rows of each kind in
        :data:`RESAMPLE_KINDS` (EPM replica draws seeded by ``seed``, reference draws by the
        evaluator's ``ref_seed``); macro and meso losses use the same draws.
        """
        obs = macro_observables(macro, self.s.gamma_min, delta_gamma)
        replicas = np.unique(macro["replica"].to_numpy(np.int64))
        R = len(replicas)
        labels, boot, W, V = self.design(R, n_boot, seed)
        out = {"boot": boot, "resample": labels}
        for name in MACRO_OBS:
            t = self.targets[name]
            counts, off = t.replica_counts(obs.values[name], obs.replica[name], replicas)
            out[f"L_{name}"] = t.loss_from_counts(counts, off, W, V["sample"])
        out["L_macro"] = (out["L_sigma"] + out["L_drop"] + out["L_incr"]) / 3.0
        if probe is not None and len(probe):
            for tag, (mags, ref_mags, R_ep) in self.meso_magnitudes(probe, replicas, W, V["unit"]).items():
                Lf = relative_loss(mags, ref_mags)
                out[f"L_meso_{tag}"] = Lf.mean(axis=1)
                if details:
                    for j, k in enumerate(MESO_MAGNITUDES):
                        out[f"{k}_{tag}"] = mags[:, j]
                        out[f"L_{k}_{tag}"] = Lf[:, j]
                if tag == "plus":
                    out["R_ep"] = np.full(W.shape[0], R_ep)
            out["L_stat"] = l_stat(out["L_macro"], out["L_meso_plus"], out["L_meso_minus"])
        out["n_replicas"] = np.full(W.shape[0], R)
        return pd.DataFrame(out)


