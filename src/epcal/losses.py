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
vector over replicas and costs one matrix product.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from .observables import MACRO_OBS, MacroObservables, macro_observables  # noqa: F401 (re-exported)
from .schema import DELTA_GAMMA, GAMMA_STATIONARY, MACRO, PROBE, TableError, validate_table

MESO_QUANTITIES = ("tau_i", "tau_c", "delta_tau_c", "drop_tau_c")
MESO_MAGNITUDES = tuple(f"{s}_{q}" for q in MESO_QUANTITIES for s in ("mean", "std"))
#: Quenched-state magnitudes of the KMC temperature calibration (appendix A.3): the quenched state is
#: isotropic, so mean tau_i vanishes (its relative error would be noise over ~0); the von Mises stress
#: (mean and std) measures the amplitude of the frozen-in stress field instead.
QUENCH_QUANTITIES = ("sigma_vm",) + MESO_QUANTITIES
QUENCH_MAGNITUDES = tuple(m for m in (f"{s}_{q}" for q in QUENCH_QUANTITIES for s in ("mean", "std"))
                          if m != "mean_tau_i")
LOSS_COLUMNS = ("L_sigma", "L_drop", "L_incr", "L_macro", "L_meso_plus", "L_meso_minus", "L_stat")


# --------------------------------------------------------------------------- reference
@dataclasses.dataclass
class Reference:
    """A reference directory: macro.parquet, probe.parquet, reference.yaml."""

    macro: pd.DataFrame
    probe: pd.DataFrame
    meta: dict
    path: str = "<reference>"

    @classmethod
    def from_dir(cls, path: str | Path, validate: bool = True, alphas=None) -> "Reference":
        """Read a reference directory; ``validate=False`` skips the table checks (done once by the
        pipeline's reference_check rule) and ``alphas`` reads only the probe rows at those
        orientations (mod 180), which is what the sweeps need."""
        return cls(*read_reference_dir(path, validate=validate, alphas=alphas), path=str(path))

    @property
    def shear_modulus(self) -> float:
        return float(self.meta["shear_modulus"])

    @property
    def delta_gamma(self) -> float:
        return float(self.meta.get("delta_gamma", DELTA_GAMMA))


REFERENCE_KEYS = {"domain_length": (int, float), "shear_modulus": (int, float),
                  "bulk_modulus": (int, float), "delta_gamma": (int, float), "description": (str,)}


def _alpha_filters(alphas):
    out = []
    for a in alphas:
        for b in (a % 180.0, a % 180.0 - 180.0, a % 180.0 + 180.0):
            out.append([("alpha", ">=", b - 1e-6), ("alpha", "<=", b + 1e-6)])
    return out


def read_reference_dir(path: str | Path, need_probe_states=("stationary",), validate: bool = True, alphas=None):
    """Read and validate a reference directory; errors name the file and the column/key."""
    import yaml

    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"reference directory {path} does not exist")
    files = {n: path / n for n in ("macro.parquet", "probe.parquet", "reference.yaml")}
    for n, f in files.items():
        if not f.exists():
            raise FileNotFoundError(f"reference directory {path}: file {n} is missing "
                                    "(expected macro.parquet, probe.parquet, reference.yaml)")
    try:
        meta = yaml.safe_load(files["reference.yaml"].read_text()) or {}
    except yaml.YAMLError as exc:
        raise TableError(f"{files['reference.yaml']}: not valid YAML: {exc}") from None
    if not isinstance(meta, dict):
        raise TableError(f"{files['reference.yaml']}: expected a mapping of keys, got {type(meta).__name__}")
    problems = []
    for key, types in REFERENCE_KEYS.items():
        if key not in meta:
            problems.append(f"{files['reference.yaml']}: key '{key}' is missing")
        elif not isinstance(meta[key], types) or isinstance(meta[key], bool):
            problems.append(f"{files['reference.yaml']}: key '{key}' = {meta[key]!r}, expected "
                            f"{' or '.join(t.__name__ for t in types)}")
        elif key != "description" and not meta[key] > 0:
            problems.append(f"{files['reference.yaml']}: key '{key}' = {meta[key]!r}, expected > 0")
    if problems:
        raise TableError("\n".join(problems))
    if not validate:
        macro = pd.read_parquet(files["macro.parquet"])
        probe = pd.read_parquet(files["probe.parquet"], filters=_alpha_filters(alphas) if alphas else None)
        return macro, probe, meta
    macro = _read_checked(files["macro.parquet"], MACRO)
    probe = _read_checked(files["probe.parquet"], PROBE)
    st = set(probe["state"].astype(str))
    for s in need_probe_states:
        if s not in st:
            raise TableError(f"{files['probe.parquet']}: column 'state': no rows with state '{s}' "
                             f"(found {sorted(st)})")
    return macro, probe, meta


def _read_checked(path: Path, schema) -> pd.DataFrame:
    try:
        df = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises many kinds
        raise TableError(f"{path}: cannot be read as parquet: {exc}") from None
    return validate_table(df, schema, str(path))


# --------------------------------------------------------------------------- binning and overlap
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


def overlap_loss(ep: np.ndarray, ref: np.ndarray, bins: Bins | None = None, **kw) -> float:
    """L[P] = 1 - sum_j min(p_EP_j, p_MD_j) on ``bins`` (default: the reference rule)."""
    ep = np.asarray(ep, float)
    ref = np.asarray(ref, float)
    if ep.size == 0 or ref.size == 0:
        return float("nan")
    bins = bins or reference_bins(ref, **kw)
    ie, ir = bins.index(ep), bins.index(ref)
    lo = min(ie.min(), ir.min())
    hi = max(ie.max(), ir.max())
    # integer arithmetic: exactly 0 for identical samples
    ce = np.bincount(ie - lo, minlength=hi - lo + 1).astype(np.int64)
    cr = np.bincount(ir - lo, minlength=hi - lo + 1).astype(np.int64)
    common = int(np.minimum(ce * ref.size, cr * ep.size).sum())
    return float(max(0.0, 1.0 - common / (ep.size * ref.size)))


class HistogramTarget:
    """Reference histogram on fixed bins; evaluates L[P] for (weighted) EPM replicas."""

    def __init__(self, ref: np.ndarray, bins: Bins):
        self.bins = bins
        ir = bins.index(ref)
        self.lo, self.hi = int(ir.min()), int(ir.max())
        self.c = np.bincount(ir - self.lo).astype(float)
        self.n = float(ir.size)

    def replica_counts(self, values: np.ndarray, replica: np.ndarray, replicas: np.ndarray):
        """Counts per replica on a lattice window covering the reference and the values."""
        idx = self.bins.index(values)
        lo = min(self.lo, int(idx.min()) if idx.size else self.lo)
        hi = max(self.hi, int(idx.max()) if idx.size else self.hi)
        nb = hi - lo + 1
        pos = np.searchsorted(replicas, replica)
        counts = np.bincount(pos * nb + (idx - lo), minlength=len(replicas) * nb).reshape(len(replicas), nb)
        counts = counts.astype(float)
        cref = np.zeros(nb)
        cref[self.lo - lo:self.hi - lo + 1] = self.c
        return counts, cref

    def loss_from_counts(self, counts: np.ndarray, cref: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """weights: (B, n_replicas) -> L for each weight vector (exact 0 for identical integer counts)."""
        c = weights @ counts
        tot = c.sum(axis=1)
        common = np.minimum(c * self.n, cref[None, :] * tot[:, None]).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            L = 1.0 - common / (tot * self.n)
        L[tot == 0] = np.nan
        return np.clip(L, 0.0, 1.0)


# --------------------------------------------------------------------------- meso magnitudes
def _nearest(values: np.ndarray, target: float) -> float:
    u = np.unique(values)
    return float(u[np.argmin(np.abs(u - target))])


def select_probe(probe: pd.DataFrame, state: str, R: float, alpha: float, source: str = "probe") -> pd.DataFrame:
    """Rows of ``state`` at the available radius nearest ``R`` and orientation ``alpha`` (mod 180)."""
    d = probe[probe["state"].astype(str) == state]
    if d.empty:
        raise TableError(f"{source}: column 'state': no rows with state '{state}'")
    a = np.mod(d["alpha"].to_numpy(float), 180.0)
    da = np.minimum(np.abs(a - alpha % 180.0), 180.0 - np.abs(a - alpha % 180.0))
    d = d[da < 1e-6]
    if d.empty:
        raise TableError(f"{source}: column 'alpha': no '{state}' rows at alpha = {alpha:g} degrees")
    r = _nearest(d["R"].to_numpy(float), R)
    return d[np.isclose(d["R"].to_numpy(float), r)]


def meso_sums(rows: pd.DataFrame, replicas: np.ndarray | None = None, quantities=MESO_QUANTITIES):
    """Per-replica (count, sum x, sum x^2) of ``quantities``: arrays (n_rep, 1), (n_rep, q), (n_rep, q)."""
    rep = rows["replica"].to_numpy(np.int64)
    replicas = np.unique(rep) if replicas is None else replicas
    pos = np.searchsorted(replicas, rep)
    ok = (pos < len(replicas)) & (replicas[np.minimum(pos, len(replicas) - 1)] == rep)
    X = rows[list(quantities)].to_numpy(float)[ok]
    pos = pos[ok]
    n = np.zeros((len(replicas), 1))
    s1 = np.zeros((len(replicas), len(quantities)))
    s2 = np.zeros_like(s1)
    np.add.at(n, pos, 1.0)
    np.add.at(s1, pos, X)
    np.add.at(s2, pos, X * X)
    return n, s1, s2


def magnitudes_from_sums(n, s1, s2, weights: np.ndarray) -> np.ndarray:
    """(B, 2q) array of magnitudes (mean, std per quantity), MESO_MAGNITUDES order for the default quantities."""
    N = weights @ n
    with np.errstate(invalid="ignore", divide="ignore"):
        m = (weights @ s1) / N
        v = np.maximum((weights @ s2) / N - m * m, 0.0)
    out = np.empty((weights.shape[0], 2 * s1.shape[1]))
    out[:, 0::2] = m
    out[:, 1::2] = np.sqrt(v)
    return out


def meso_magnitudes(rows: pd.DataFrame, quantities=MESO_QUANTITIES) -> dict[str, float]:
    X = rows[list(quantities)].to_numpy(float)
    out = {}
    for j, q in enumerate(quantities):
        out[f"mean_{q}"] = float(X[:, j].mean()) if len(X) else float("nan")
        out[f"std_{q}"] = float(X[:, j].std()) if len(X) else float("nan")
    return out


def relative_loss(ep: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """L[F] = |1 - F_EP / F_MD| (paper eq. 9)."""
    ref = np.asarray(ref, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.abs(1.0 - np.asarray(ep, float) / ref)


def l_stat(L_macro, L_plus, L_minus):
    return 0.5 * (np.asarray(L_macro) + 0.5 * (np.asarray(L_plus) + np.asarray(L_minus)))


# --------------------------------------------------------------------------- the evaluator
@dataclasses.dataclass
class LossSettings:
    R: float = 30.0
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
    """Losses of EPM ensembles against one reference, with a replica bootstrap."""

    def __init__(self, ref: Reference, settings: LossSettings | None = None, shear_modulus: float | None = None):
        self.ref = ref
        self.s = settings or LossSettings()
        obs = macro_observables(ref.macro, self.s.gamma_min, ref.delta_gamma)
        G = shear_modulus if shear_modulus is not None else ref.shear_modulus
        self.targets = {}
        for name in MACRO_OBS:
            v = obs.values[name]
            if v.size < 2:
                raise TableError(f"{ref.path}/macro.parquet: too few '{name}' values in the stationary regime "
                                 f"(gamma_ext > {self.s.gamma_min}): {v.size}")
            q = G * ref.delta_gamma if (name == "incr" and self.s.quantize_increments) else None
            self.targets[name] = HistogramTarget(v, reference_bins(v, self.s.max_n, q))
        self.ref_meso = {}
        src = f"{ref.path}/probe.parquet"
        for tag, a in (("plus", self.s.alpha_plus), ("minus", self.s.alpha_minus)):
            rows = select_probe(ref.probe, "stationary", self.s.R, a, src)
            mags = meso_magnitudes(rows)
            self.ref_meso[tag] = np.array([mags[k] for k in MESO_MAGNITUDES])
            zero = [k for k, v in mags.items() if v == 0]
            if zero:
                raise TableError(f"{src}: reference magnitude(s) {zero} are zero at alpha={a:g}: L[F] undefined")
        self.ref_R = float(select_probe(ref.probe, "stationary", self.s.R, self.s.alpha_plus, src)["R"].iloc[0])

    # ------------------------------------------------------------------
    def macro_loss_scaled(self, obs_all: MacroObservables, scale: float) -> dict[str, float]:
        """L_macro of an ensemble whose stresses and strains are all multiplied by ``scale``.

        ``obs_all`` must come from :func:`macro_observables` with ``gamma_min = 0`` (the stationary
        cut is applied here on the scaled strain).  Used by the scaled (lambda, chi) search.
        """
        out = {}
        for name in MACRO_OBS:
            keep = obs_all.gamma[name] * scale > self.s.gamma_min
            out[f"L_{name}"] = self._overlap_target(name, obs_all.values[name][keep] * scale)
        out["L_macro"] = (out["L_sigma"] + out["L_drop"] + out["L_incr"]) / 3.0
        return out

    def _overlap_target(self, name: str, values: np.ndarray) -> float:
        t = self.targets[name]
        if values.size == 0:
            return float("nan")
        idx = t.bins.index(values)
        lo, hi = min(t.lo, int(idx.min())), max(t.hi, int(idx.max()))
        ce = np.bincount(idx - lo, minlength=hi - lo + 1).astype(float)
        cr = np.zeros(hi - lo + 1)
        cr[t.lo - lo:t.hi - lo + 1] = t.c
        common = np.minimum(ce * t.n, cr * values.size).sum()
        return float(max(0.0, 1.0 - common / (values.size * t.n)))

    def evaluate(self, macro: pd.DataFrame, probe: pd.DataFrame | None = None,
                 n_boot: int = 0, seed: int = 0, delta_gamma: float = DELTA_GAMMA,
                 details: bool = False) -> pd.DataFrame:
        """One row per bootstrap sample (boot = -1 is the full ensemble) with the losses.

        Bootstrap samples resample the replicas with replacement (seeded by
        ``seed``); macro and meso losses use the same resample.
        """
        obs = macro_observables(macro, self.s.gamma_min, delta_gamma)
        replicas = np.unique(macro["replica"].to_numpy(np.int64))
        R = len(replicas)
        if R == 0:
            raise ValueError("EPM macro table is empty")
        W = [np.ones((1, R))]
        if n_boot:
            rng = np.random.default_rng(seed)
            idx = rng.integers(0, R, size=(n_boot, R))
            Wb = np.zeros((n_boot, R))
            np.add.at(Wb, (np.repeat(np.arange(n_boot), R), idx.ravel()), 1.0)
            W.append(Wb)
        W = np.vstack(W)
        out = {"boot": np.arange(-1, W.shape[0] - 1)}
        for name in MACRO_OBS:
            t = self.targets[name]
            counts, cref = t.replica_counts(obs.values[name], obs.replica[name], replicas)
            out[f"L_{name}"] = t.loss_from_counts(counts, cref, W)
        out["L_macro"] = (out["L_sigma"] + out["L_drop"] + out["L_incr"]) / 3.0
        if probe is not None and len(probe):
            for tag, a in (("plus", self.s.alpha_plus), ("minus", self.s.alpha_minus)):
                rows = select_probe(probe, "stationary", self.ref_R, a, "EPM probe table")
                mags = magnitudes_from_sums(*meso_sums(rows, replicas), W)
                Lf = relative_loss(mags, self.ref_meso[tag][None, :])
                out[f"L_meso_{tag}"] = Lf.mean(axis=1)
                if details:
                    for j, k in enumerate(MESO_MAGNITUDES):
                        out[f"{k}_{tag}"] = mags[:, j]
                        out[f"L_{k}_{tag}"] = Lf[:, j]
                if tag == "plus":
                    out["R_ep"] = np.full(W.shape[0], float(rows["R"].iloc[0]))
            out["L_stat"] = l_stat(out["L_macro"], out["L_meso_plus"], out["L_meso_minus"])
        out["n_replicas"] = np.full(W.shape[0], R)
        return pd.DataFrame(out)


def quench_loss(ep_probe: pd.DataFrame, ref_probe: pd.DataFrame, R: float = 30.0,
                alphas=(0.0, 90.0), ref_source: str = "reference probe.parquet") -> dict:
    """Mean L[F] of the QUENCH_MAGNITUDES in the quenched state over ``alphas`` (KMC temperature)."""
    Ls = []
    out = {}
    for a in alphas:
        r = meso_magnitudes(select_probe(ref_probe, "quench", R, a, ref_source), QUENCH_QUANTITIES)
        e = meso_magnitudes(select_probe(ep_probe, "quench", R, a, "EPM probe table"), QUENCH_QUANTITIES)
        for k in QUENCH_MAGNITUDES:
            L = float(relative_loss(e[k], r[k]))
            out[f"L_{k}_a{a:g}"] = L
            Ls.append(L)
    out["L_quench"] = float(np.mean(Ls))
    return out
