"""Optimum from the loss landscape (paper section 4.2).

Per element length l and per k, the optimum over (lambda, chi) is kept
(``per_k``); a curve is fitted to L_stat(k) by least squares over the k values
within ``half_width`` of the discrete minimum (all k when ``half_width`` is
None): ``k_model = "parabola"`` a + b k + c k^2, k_hat = -b / (2c) (clipped to
the fitted range; when c <= 0 the fit has no minimum and k_hat is the discrete
minimum), or ``k_model = "cubic"`` (the pipeline's default) a + b k + c k^2 +
d k^3, k_hat its minimum over the window.  lambda_hat and chi_hat are obtained at k_hat from the per-k
selected values: ``interp = "regression"`` (default) evaluates at k_hat a
straight line fitted over the same window, which smooths the staircase a
discrete (lambda, chi) grid produces; ``interp = "log_regression"`` fits that
line to log(lambda) and log(chi) (the selected lambda(k) is convex, falling
steeply at small k, and a straight line through it overestimates lambda_hat
inside the window); ``interp = "linear"`` interpolates between the two
neighbouring k.

The window: L_stat(k) is not a parabola but an asymmetric, V-like valley
(steeper on the small-k side); the wider the window, the further the fitted
vertex moves towards the shallow side (benchmarks/pipeline/RESULTS.md, section 4),
so the default configurations use ``half_width`` = 2 grid steps or a few more.
``k_model = "cubic"`` fits a cubic instead (:func:`fit_cubic`), which carries
the asymmetry's leading term.

Uncertainties: the loss tables carry bootstrap rows (``boot`` >= 0; ``boot`` = -1
is the full ensemble against the full reference) of three kinds (column
``resample``, :data:`epcal.resampling.RESAMPLE_KINDS`): the EPM replicas and the
reference's units resampled jointly, and each alone.  The whole procedure
(selection per k, fit, interpolation) is repeated on every bootstrap row; the
quoted error ``<x>_err`` is the standard deviation over the joint rows (the
error bar), ``<x>_err_epm`` and ``<x>_err_ref`` those over the rows that
resample only one side (the two contributions).

Bounds: k_hat is an *estimate* only when the parabola is convex and its vertex
lies inside the fitted window (``k_hat_status = "estimate"``).  A vertex beyond
the window's lower or upper end (k_hat is then that end) is reported as
``"at_lower_edge"`` / ``"at_upper_edge"``: the minimum lies at or beyond it,
so k_hat is a bound; a concave fit (no minimum) reports the discrete minimum
as ``"not_convex"``.  The same rule holds for T_hat.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from .losses import relative_loss

LOSS_KEYS = ("L_stat", "L_macro", "L_meso_plus", "L_meso_minus")


@dataclasses.dataclass(frozen=True)
class ParabolaFit:
    a: float
    b: float
    c: float
    k_hat: float
    L_hat: float
    convex: bool
    k_lo: float
    k_hi: float
    status: str = "estimate"

    @property
    def is_estimate(self) -> bool:
        return self.status == "estimate"


#: fit.interp values (module doc)
INTERP_METHODS = ("log_regression", "regression", "linear")

#: k_hat_status / T_hat_status values (module doc)
FIT_STATUSES = ("estimate", "at_lower_edge", "at_upper_edge", "not_convex")


def _finite(k, loss):
    """(k, loss) as float arrays without their non-finite points; none left is an error."""
    k = np.asarray(k, float)
    loss = np.asarray(loss, float)
    ok = np.isfinite(k) & np.isfinite(loss)
    if not ok.any():
        raise ValueError("fit: no finite L_stat values")
    return k[ok], loss[ok]


def _window(k, loss, half_width, n_min: int = 3):
    """(k, loss) of the window: within ``half_width`` of the discrete minimum, at least its n_min nearest."""
    j = int(np.argmin(loss))
    win = np.ones(k.size, bool) if half_width is None else np.abs(k - k[j]) <= half_width + 1e-12
    if np.unique(k[win]).size < n_min:
        win = np.zeros(k.size, bool)
        win[np.argsort(np.abs(k - k[j]), kind="stable")[:n_min]] = True
    return k[win], loss[win]


def fit_parabola(k, loss, half_width: float | None = None) -> ParabolaFit:
    """Least-squares parabola through L(k) near its discrete minimum; k_hat = -b/2c."""
    k, loss = _finite(k, loss)
    j = int(np.argmin(loss))
    kw, loss_w = _window(k, loss, half_width)
    if np.unique(kw).size < 3:
        return ParabolaFit(float(loss[j]), 0.0, 0.0, float(k[j]), float(loss[j]), False, float(kw.min()),
                           float(kw.max()), "not_convex")
    c, b, a = np.polyfit(kw, loss_w, 2)
    lo, hi = float(kw.min()), float(kw.max())
    if c > 0:
        vertex = -b / (2 * c)
        kh = float(np.clip(vertex, lo, hi))
        status = "at_lower_edge" if vertex <= lo else "at_upper_edge" if vertex >= hi else "estimate"
        convex = True
    else:
        kh = float(k[j])
        convex = False
        status = "not_convex"
    return ParabolaFit(float(a), float(b), float(c), kh, float(a + b * kh + c * kh * kh), convex, lo, hi, status)


@dataclasses.dataclass(frozen=True)
class CubicFit(ParabolaFit):
    """:func:`fit_cubic`'s result: L = a + b k + c k^2 + d k^3 over [k_lo, k_hi]."""
    d: float = 0.0


def fit_cubic(k, loss, half_width: float | None = None) -> ParabolaFit:
    """Least-squares cubic through L(k) near its discrete minimum (the window of :func:`fit_parabola`,
    at least its 5 nearest k); k_hat is the minimum of the cubic over the window.

    L_stat(k) is an asymmetric valley (steeper at small k).  A parabola fitted over a window of half
    width h around the minimum k0 takes the asymmetry's term d (k - k0)^3 into its linear term and
    moves its vertex by about -(d / c) h^2 x (0.3 for a continuous window, 0.425 for 5 points) towards
    the shallow side (c, d the quadratic and cubic Taylor coefficients at k0); the cubic carries that
    term, and its vertex error starts at order h^4.  The minimum of the cubic
    strictly inside the window is an estimate (then a local minimum, L'' > 0); at an end of the
    window it is a bound (``at_lower_edge`` / ``at_upper_edge``).  With 4 k or fewer in all,
    :func:`fit_parabola`."""
    k, loss = _finite(k, loss)
    kw, loss_w = _window(k, loss, half_width, n_min=5)
    if np.unique(kw).size < 5:
        return fit_parabola(k, loss, half_width)
    lo, hi = float(kw.min()), float(kw.max())
    x0, s = 0.5 * (lo + hi), 0.5 * (hi - lo)  # fitted in x = (k - x0) / s for conditioning
    d3, c2, b1, a0 = np.polyfit((kw - x0) / s, loss_w, 3)
    cand = [-1.0, 1.0]
    disc = c2 * c2 - 3 * d3 * b1  # roots of L'(x) = b1 + 2 c2 x + 3 d3 x^2, without cancellation
    if disc >= 0:
        q = -(c2 + np.copysign(np.sqrt(disc), c2))
        if q != 0:
            cand.append(b1 / q)
        if d3 != 0:
            cand.append(q / (3 * d3))
    cand = np.clip(np.array(cand, float), -1.0, 1.0)
    vals = a0 + b1 * cand + c2 * cand ** 2 + d3 * cand ** 3
    x = float(cand[int(np.argmin(vals))])
    status = "at_lower_edge" if x <= -1.0 + 1e-12 else "at_upper_edge" if x >= 1.0 - 1e-12 else "estimate"
    # back to k: L = a + b k + c k^2 + d k^3
    d = d3 / s ** 3
    c = c2 / s ** 2 - 3 * d * x0
    b = b1 / s - 2 * c2 * x0 / s ** 2 + 3 * d * x0 ** 2
    a = a0 - b1 * x0 / s + c2 * x0 ** 2 / s ** 2 - d * x0 ** 3
    kh = x0 + s * x
    convex = bool(2 * c2 + 6 * d3 * x > 0)  # L'' > 0 where the minimum is
    return CubicFit(float(a), float(b), float(c), float(kh), float(np.min(vals)), convex, lo, hi, status, float(d))


#: fit.k_model values: the curve fitted to L_stat(k) (module doc)
K_MODELS = ("parabola", "cubic")


def fit_valley(k, loss, half_width: float | None, k_model: str = "parabola") -> ParabolaFit:
    """The fit of L_stat(k) by ``k_model``: :func:`fit_parabola` or :func:`fit_cubic`."""
    if k_model == "parabola":
        return fit_parabola(k, loss, half_width)
    if k_model == "cubic":
        return fit_cubic(k, loss, half_width)
    raise ValueError(f"fit.k_model = {k_model!r}: expected one of {list(K_MODELS)}")


def interpolate_at(k, y, k_hat: float, lo: float, hi: float, method: str = "regression") -> float:
    k = np.asarray(k, float)
    y = np.asarray(y, float)
    o = np.argsort(k)
    k, y = k[o], y[o]
    if method == "linear":
        return float(np.interp(k_hat, k, y))
    if method in ("regression", "log_regression"):
        w = (k >= lo - 1e-12) & (k <= hi + 1e-12)
        if np.unique(k[w]).size < 2:
            return float(np.interp(k_hat, k, y))
        if method == "log_regression":  # a straight line in log y: no bias from the convex lambda(k)
            s, i = np.polyfit(k[w], np.log(y[w]), 1)
            return float(np.exp(i + s * k_hat))
        s, i = np.polyfit(k[w], y[w], 1)
        return float(i + s * k_hat)
    raise ValueError(f"fit.interp = {method!r}: expected one of {list(INTERP_METHODS)}")


#: fit.per_k values (module doc)
PER_K_METHODS = ("chi_profile", "argmin")


def select_per_k(df: pd.DataFrame, key: str = "L_stat") -> pd.DataFrame:
    """For each (l, k, boot) the candidate row with the lowest ``key`` (``per_k = "argmin"``)."""
    d = df[np.isfinite(df[key])]
    idx = d.groupby(["l", "k", "boot"], sort=True)[key].idxmin()
    return d.loc[idx.to_numpy()].sort_values(["l", "boot", "k"]).reset_index(drop=True)


PROFILE_COLUMNS = ("lam_prof", "L_stat_prof", "L_macro_prof", "L_meso_plus_prof", "L_meso_minus_prof")


def chi_profile_one(g: pd.DataFrame, chi_half_width: float) -> dict:
    """(lambda, chi, losses) of one (l, k, boot) from its candidates' lambda profiles (``per_k =
    "chi_profile"``): a parabola (:func:`fit_parabola`) through the profile minima L_stat_prof(chi)
    within ``chi_half_width`` x chi of their lowest (at least the 3 nearest), chi at its vertex,
    lambda interpolated (log-linear in chi) between the candidates' profile minima.

    The loss components are the same-window parabolas of L_macro_prof, L+_prof and L-_prof at
    that chi (so L_stat = l_stat(components) holds exactly, l_stat being linear).  A candidate whose
    profile minimum lies at an end of its scale grid (``prof_edge``: a bound, not a minimum) is left
    out when at least 3 other chi remain.  For one chi of the same value only the lowest counts.
    """
    g = g[np.isfinite(g["L_stat_prof"])]
    if "prof_edge" in g:
        inner = g[~g["prof_edge"].astype(bool)]
        if inner["chi"].nunique() >= 3:
            g = inner
    g = g.loc[g.groupby("chi")["L_stat_prof"].idxmin()].sort_values("chi")
    chi, loss = g["chi"].to_numpy(float), g["L_stat_prof"].to_numpy(float)
    j = int(np.argmin(loss))
    f = fit_parabola(chi, loss, chi_half_width * chi[j])
    out = {"chi": f.k_hat, "chi_status": f.status,
           "lam": float(np.exp(np.interp(f.k_hat, chi, np.log(g["lam_prof"].to_numpy(float)))))}
    win = (chi >= f.k_lo - 1e-12) & (chi <= f.k_hi + 1e-12)
    for key in ("L_stat", "L_macro", "L_meso_plus", "L_meso_minus"):
        y = g[f"{key}_prof"].to_numpy(float)
        if f.convex and np.unique(chi[win]).size >= 3:
            out[key] = float(np.polyval(np.polyfit(chi[win], y[win], 2), f.k_hat))
        else:  # no parabola: the candidate at chi_hat (the discrete minimum)
            out[key] = float(y[int(np.argmin(np.abs(chi - f.k_hat)))])
    return out


def select_chi_profile(df: pd.DataFrame, chi_half_width: float = 0.3) -> pd.DataFrame:
    """For each (l, k, boot) the optimum over chi of the lambda profiles (:func:`chi_profile_one`)."""
    miss = [c for c in PROFILE_COLUMNS if c not in df]
    if miss:
        raise ValueError(f"fit.per_k = chi_profile: the meso table lacks {miss} (set meso.lam_profile, "
                         "or fit.per_k: argmin)")
    lattice = [c for c in ("L_EP", "N", "l_lattice", "n", "lattice_rule") if c in df]
    rows = [{"l": l, "k": k, "boot": b, **chi_profile_one(g, chi_half_width), **{c: g[c].iloc[0] for c in lattice}}
            for (l, k, b), g in df.groupby(["l", "k", "boot"], sort=True) if np.isfinite(g["L_stat_prof"]).any()]
    return pd.DataFrame(rows).sort_values(["l", "boot", "k"]).reset_index(drop=True)


def fit_one(sel: pd.DataFrame, half_width: float | None, interp: str, k_model: str = "parabola") -> dict:
    """Optimum from the per-k selection of one (l, boot)."""
    sel = sel.sort_values("k")
    f = fit_valley(sel["k"], sel["L_stat"], half_width, k_model)
    out = {"k_hat": f.k_hat, "k_hat_status": f.status, "a": f.a, "b": f.b, "c": f.c, "convex": f.convex,
           "k_fit_lo": f.k_lo, "k_fit_hi": f.k_hi, "L_stat_fit": f.L_hat, "k_model": k_model}
    out["d"] = f.d if isinstance(f, CubicFit) else 0.0
    for col, name in (("lam", "lam_hat"), ("chi", "chi_hat")):
        out[name] = interpolate_at(sel["k"], sel[col], f.k_hat, f.k_lo, f.k_hi, interp)
    for key in LOSS_KEYS:
        if key in sel:
            out[key] = float(np.interp(f.k_hat, sel["k"].to_numpy(float), sel[key].to_numpy(float)))
    return out


def bootstrap_errors(per_boot: dict, kinds: dict, keys) -> dict:
    """``<key>_err`` (joint rows), ``<key>_err_epm`` and ``<key>_err_ref`` (one side resampled) of
    the fits ``per_boot`` {boot: dict}; ``kinds`` {boot: resample kind}."""
    out = {}
    for suffix, kind in (("", "joint"), ("_epm", "epm"), ("_ref", "reference")):
        rows = [v for b, v in per_boot.items() if kinds.get(b) == kind]
        for key in keys:
            vals = np.array([v[key] for v in rows if key in v], float)
            out[f"{key}_err{suffix}"] = float(np.nanstd(vals)) if vals.size else float("nan")
        if suffix == "":
            out["n_boot"] = len(rows)
    return out


OPTIMUM_KEYS = ("k_hat", "lam_hat", "chi_hat")


def bootstrap_correlations(per_boot: dict, kinds: dict, keys) -> dict:
    """``corr_<a>_<b>``: the correlation over the joint bootstrap rows of every pair of ``keys``
    (k_hat and lam_hat are strongly anti-correlated: lambda compensates k)."""
    rows = [v for b, v in per_boot.items() if kinds.get(b) == "joint"]
    X = np.array([[v[key] for key in keys] for v in rows], float)
    out = {}
    for i, a in enumerate(keys):
        for j in range(i + 1, len(keys)):
            x, y = X[:, i] if len(X) else X, X[:, j] if len(X) else X
            ok = np.isfinite(x) & np.isfinite(y) if len(X) else np.zeros(0, bool)
            c = np.corrcoef(x[ok], y[ok])[0, 1] if ok.sum() > 2 and np.std(x[ok]) > 0 and np.std(y[ok]) > 0 else 0.0
            out[f"corr_{a}_{keys[j]}"] = float(c)
    return out


def select(losses: pd.DataFrame, per_k: str = "argmin", chi_half_width: float = 0.3) -> pd.DataFrame:
    """The per-(l, k, boot) optimum the k fit uses (``fit.per_k``; Fig. 3b shows the same)."""
    if per_k not in PER_K_METHODS:
        raise ValueError(f"fit.per_k = {per_k!r}: expected one of {list(PER_K_METHODS)}")
    return select_per_k(losses) if per_k == "argmin" else select_chi_profile(losses, chi_half_width)


def fit_optimum(losses: pd.DataFrame, half_width: float | None = 0.5, interp: str = "regression",
                per_k: str = "argmin", chi_half_width: float = 0.3, k_model: str = "parabola") -> pd.DataFrame:
    """The optimum table: one row per l with values (full ensemble), bound status and bootstrap errors."""
    need = {"l", "k", "lam", "chi", "boot", "resample", "L_stat"}
    miss = need - set(losses.columns)
    if miss:
        raise ValueError(f"fit: loss table lacks column(s) {sorted(miss)}")
    sel = select(losses, per_k, chi_half_width)
    kinds = dict(zip(losses["boot"].to_numpy(int).tolist(), losses["resample"].astype(str).tolist()))
    rows = []
    for l, g in sel.groupby("l", sort=True):
        per_boot = {b: fit_one(gb, half_width, interp, k_model) for b, gb in g.groupby("boot", sort=True)}
        if -1 not in per_boot:
            raise ValueError(f"fit: no full-ensemble rows (boot = -1) for l = {l}")
        row = {"l": float(l), **per_boot[-1]}
        row.update(bootstrap_errors(per_boot, kinds, ("k_hat", "lam_hat", "chi_hat", *LOSS_KEYS)))
        row.update(bootstrap_correlations(per_boot, kinds, OPTIMUM_KEYS))
        joint = [v["k_hat_status"] for b, v in per_boot.items() if kinds.get(b) == "joint"]
        row["k_hat_bound_frac"] = float(np.mean([s != "estimate" for s in joint])) if joint else float("nan")
        row["n_k"] = int(g[g["boot"] == -1]["k"].nunique())
        for col in ("L_EP", "N", "l_lattice", "n", "lattice_rule"):  # the lattice the optimum was found on
            if col in g:
                row[col] = g[col].iloc[0]
        if "chi_status" in g:  # chi at an end of its candidates (or no parabola), joint rows, k of the window
            joint_b = [b for b, kind in kinds.items() if kind == "joint"]
            w = g[g["boot"].isin(joint_b) & (g["k"] >= row["k_fit_lo"] - 1e-12) & (g["k"] <= row["k_fit_hi"] + 1e-12)]
            row["chi_bound_frac"] = float((w["chi_status"] != "estimate").mean()) if len(w) else float("nan")
        row["per_k"] = per_k
        row["chi_half_width"] = float(chi_half_width)
        rows.append(row)
    return pd.DataFrame(rows)


def fit_temperature_magnitudes(T, F_ep, F_ref, half_width: float | None = 0.1, n_fine: int = 401) -> dict:
    """T_hat from a quench scan's magnitudes (paper eq. 9, L_quench = mean_m |1 - F_EP,m / F_MD,m|).

    L_quench(T) is V-shaped and asymmetric (steep at low T), so a parabola through it is pulled
    towards its shallow side.  Each magnitude F_EP,m(T) is smooth instead: it is fitted by a
    least-squares parabola over the temperatures within ``half_width`` of the discrete minimum of
    L_quench (at least the 3 nearest), and T_hat is the minimum over that window of the loss of the
    fitted magnitudes.  A minimum at an end of the window is a bound (status as :func:`fit_parabola`).

    ``T`` (nT,), ``F_ep`` (nT, M) the EPM magnitudes, ``F_ref`` (M,) the reference's.
    """
    T = np.asarray(T, float)
    F_ep = np.asarray(F_ep, float).reshape(T.size, -1)
    F_ref = np.asarray(F_ref, float).ravel()
    o = np.argsort(T)
    T, F_ep = T[o], F_ep[o]
    ok = np.isfinite(F_ep).all(axis=0) & np.isfinite(F_ref) & (F_ref != 0)
    if not ok.any():
        raise ValueError("fit: no finite quench magnitudes")
    F_ep, F_ref = F_ep[:, ok], F_ref[ok]
    loss = relative_loss(F_ep, F_ref[None, :]).mean(axis=1)
    j = int(np.argmin(loss))
    win = np.ones(T.size, bool) if half_width is None else np.abs(T - T[j]) <= half_width + 1e-12
    if win.sum() < 3:
        win = np.zeros(T.size, bool)
        win[np.argsort(np.abs(T - T[j]), kind="stable")[:3]] = True
    Tw = T[win]
    if Tw.size < 3:
        return {"T_hat": float(T[j]), "L_quench": float(loss[j]), "convex": False, "T_hat_status": "not_convex"}
    coef = np.polyfit(Tw, F_ep[win], 2)  # (3, M)
    Tf = np.linspace(Tw.min(), Tw.max(), int(n_fine))
    Ff = coef[0][None, :] * Tf[:, None] ** 2 + coef[1][None, :] * Tf[:, None] + coef[2][None, :]
    loss_fine = relative_loss(Ff, F_ref[None, :]).mean(axis=1)
    i = int(np.argmin(loss_fine))
    status = "at_lower_edge" if i == 0 else "at_upper_edge" if i == Tf.size - 1 else "estimate"
    return {"T_hat": float(Tf[i]), "L_quench": float(loss_fine[i]), "convex": True, "T_hat_status": status}
