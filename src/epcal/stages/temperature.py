"""The KMC temperature (appendix A.3): the quench scan at the optimum, T_hat, the optimum table."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..resampling import ReferenceUnits, bootstrap_weights, resample_design
from ..losses import (magnitudes_from_sums, meso_sums, QUENCH_MAGNITUDES,
                      QUENCH_QUANTITIES, Reference, relative_loss,
                      resolve_radius, select_probe)
from ..fits import OPTIMUM_KEYS
from ..params import model_params, resolve_model
from ..grids import grid_values
from .common import probe_spec, ref_boot_seed, run


def quench_temperature(ref: Reference, opt: pd.Series, cfg: dict, threads: int = 1, log=print) -> pd.DataFrame:
    """Scan the KMC temperature; L_quench(T) = mean L[F] of the quenched-state magnitudes
    (:data:`epcal.losses.QUENCH_MAGNITUDES`: mean and std of sigma_vm, tau_c, delta_tau_c,
    drop_tau_c and std of tau_i) at the reference's R nearest ``R`` over ``alpha`` (default 0
    and 90 degrees), with replica and reference bootstrap rows.  The magnitudes themselves are
    kept (columns ``<magnitude>_a<alpha>`` and ``ref_<magnitude>_a<alpha>``): T_hat is fitted
    from them (:func:`epcal.fits.fit_temperature_magnitudes`).

    With ``propagate`` (default true) the scan is repeated (full ensemble only; column ``shift``)
    at the optimum moved by plus and minus one standard deviation along each principal axis of the
    covariance of (k_hat, lam_hat, chi_hat) (the joint bootstrap's errors and ``corr_*``; columns
    ``shift_k``, ``shift_lam``, ``shift_chi``), so that the optimum's own uncertainty enters T_hat's
    (:func:`temperature_optimum`).  The axes keep the shifted points inside the optimum's error
    ellipsoid: k and lambda are strongly anti-correlated along the valley, and k moved alone by
    its error bar leaves the valley, where T_hat moves far more than it does between
    bootstrap optima.  All scans use the random streams of the optimum's parameters (common random
    numbers).

    ``cfg`` keys: model, seed, T (grid), replicas, n_boot, R, alpha, stride, propagate.
    """
    model = resolve_model(cfg.get("model"), ref.meta)
    # exactly the configured R (select_probe: the reference must have it), or the largest (R: auto)
    R = resolve_radius(ref.probe, "quench", cfg.get("R", 30.0), f"{ref.path}/probe.parquet")
    log(f"quench-temperature: reference rows at R = {R:g}")
    alphas = [float(a) for a in cfg.get("alpha", [0.0, 90.0])]
    reps = np.arange(int(cfg["replicas"]))
    n_boot = int(cfg.get("n_boot", 0))
    units = ReferenceUnits(ref.macro, ref.probe)
    W_epm = bootstrap_weights(np.random.default_rng(int(cfg["seed"]) + 17), n_boot, len(reps)) if n_boot \
        else np.zeros((0, len(reps)))
    V_ref = units.weights(ref_boot_seed(cfg["seed"]), n_boot) if n_boot else {"unit": np.zeros((0, len(units.units)))}
    labels, boot, W, V = resample_design(n_boot, W_epm, {"unit": V_ref["unit"]})
    allm = [f"{s}_{q}" for q in QUENCH_QUANTITIES for s in ("mean", "std")]
    keep = np.array([m in QUENCH_MAGNITUDES for m in allm])
    names = [m for m in allm if m in QUENCH_MAGNITUDES]
    ref_mag = {}
    for a in alphas:
        rows_a = select_probe(ref.probe, "quench", R, a, f"{ref.path}/probe.parquet")
        sums = meso_sums(rows_a, quantities=QUENCH_QUANTITIES, groups=units.unit_of(rows_a), n_groups=len(units.units))
        ref_mag[a] = magnitudes_from_sums(*sums, V["unit"])[:, keep]
    # every scan draws the central scan's random streams (common random numbers): the change of
    # T_hat under a shift is then the parameter's effect, not the difference of two noises
    stream_key = model_params(opt["l"], opt["k_hat"], opt["lam_hat"], opt["chi_hat"], model).digest()
    shifts = [("none", np.zeros(3))]
    if cfg.get("propagate", True):
        shifts += principal_shifts(opt, log)
    rows = []
    for shift, d in shifts:
        at = {key: float(opt[key]) + float(d[i]) for i, key in enumerate(OPTIMUM_KEYS)}
        if min(at.values()) <= 0:
            log(f"quench-temperature: shift {shift} reaches a non-positive parameter {at}; not scanned")
            continue
        p = model_params(opt["l"], at["k_hat"], at["lam_hat"], at["chi_hat"], model)
        n = p.patch_size(R)
        spec = probe_spec([n], alphas, ("quench",), cfg.get("stride", 1))
        sel = slice(None) if shift == "none" else slice(0, 1)  # shifted scans: the full ensemble only
        for T in grid_values(cfg["T"]):
            # the quenched state is probed before any loading; one strain step is the shortest run
            ens = run(p, reps, cfg["seed"], gamma_max=1e-4, T_quench=float(T), probe=spec, threads=threads,
                      stream_key=stream_key)
            parts, cols = [], {}
            for a in alphas:
                rows_a = select_probe(ens.probe, "quench", R, a, "EPM probe table", exact_R=False)
                mags = magnitudes_from_sums(*meso_sums(rows_a, reps, QUENCH_QUANTITIES), W[sel])[:, keep]
                parts.append(relative_loss(mags, ref_mag[a][sel]))
                for i, m in enumerate(names):
                    cols[f"{m}_a{a:g}"] = mags[:, i]
                    cols[f"ref_{m}_a{a:g}"] = ref_mag[a][sel, i]
            loss = np.concatenate(parts, axis=1).mean(axis=1)
            rows.append(pd.DataFrame({"l": float(opt["l"]), "T": float(T), "boot": boot[sel], "resample": labels[sel],
                                      "shift": shift, "shift_k": d[0], "shift_lam": d[1], "shift_chi": d[2],
                                      "L_quench": loss, **cols}))
            log(f"l={opt['l']} T={T:.4g} [{shift}] L_quench={loss[0]:.4f}")
    return pd.concat(rows, ignore_index=True)


def principal_shifts(opt: pd.Series, log=print) -> list[tuple[str, np.ndarray]]:
    """("axis<i>+" / "axis<i>-", shift of (k_hat, lam_hat, chi_hat)): plus and minus the square root
    of each positive eigenvalue of the optimum's covariance (errors ``<key>_err``, correlations
    ``corr_<a>_<b>``) along its eigenvector; a parameter without a finite positive error is held."""
    err = np.array([float(opt.get(f"{key}_err", np.nan)) for key in OPTIMUM_KEYS])
    ok = np.isfinite(err) & (err > 0)
    for key in np.array(OPTIMUM_KEYS)[~ok]:
        log(f"quench-temperature: {key} has no error bar; not propagated")
    C = np.diag(np.where(ok, err, 0.0) ** 2)
    for i, a in enumerate(OPTIMUM_KEYS):
        for j, b in enumerate(OPTIMUM_KEYS):
            if i < j and ok[i] and ok[j]:
                rho = float(opt.get(f"corr_{a}_{b}", 0.0))
                C[i, j] = C[j, i] = (rho if np.isfinite(rho) else 0.0) * err[i] * err[j]
    e, V = np.linalg.eigh(C)
    out = []
    for i in np.argsort(e)[::-1]:
        if e[i] > 1e-12 * max(float(e.max()), 1e-300):
            v = np.sqrt(e[i]) * V[:, i]
            out += [(f"axis{len(out) // 2}+", v), (f"axis{len(out) // 2}-", -v)]
    return out


def _scan_magnitudes(g: pd.DataFrame):
    ep = [c for c in g.columns if c.startswith(("mean_", "std_")) and f"ref_{c}" in g.columns]
    if not ep:
        raise ValueError("quench scan table has no magnitude columns "
                         "(made by an older epcal: rerun quench-temperature)")
    return ep, [f"ref_{c}" for c in ep]


def temperature_optimum(scan: pd.DataFrame, half_width: float | None = 0.1) -> dict:
    """T_hat (with its bound status, :mod:`epcal.fits`) and its errors from a quench scan.

    ``T_hat_err_epm`` / ``T_hat_err_ref``: the scan's bootstrap rows resampling one side;
    ``T_hat_err_opt``: the optimum's error propagated, sqrt(sum_i d_i^2), d_i half the change of
    T_hat between the scans at plus and minus one standard deviation along principal axis i of
    the optimum's covariance (the ``axis<i>+/-`` shifts of :func:`quench_temperature`; one-sided
    where only one of the two was scanned); ``T_hat_err`` = sqrt(joint scan error^2 +
    T_hat_err_opt^2).
    """
    from ..fits import bootstrap_errors, fit_temperature_magnitudes

    if "shift" not in scan:
        scan = scan.assign(shift="none")
    ep, ref = _scan_magnitudes(scan)

    def fit_rows(g):
        g = g.sort_values("T")
        return fit_temperature_magnitudes(g["T"].to_numpy(), g[ep].to_numpy(), g[ref].to_numpy()[0], half_width)

    base = scan[scan["shift"] == "none"]
    per = {int(b): fit_rows(g) for b, g in base.groupby("boot")}
    kinds = dict(zip(base["boot"].to_numpy(int).tolist(), base["resample"].astype(str).tolist()))
    out = {"T_hat": per[-1]["T_hat"], "T_hat_status": per[-1]["T_hat_status"], "L_quench": per[-1]["L_quench"]}
    errs = bootstrap_errors(per, kinds, ("T_hat",))
    shifted = {str(sh): fit_rows(g)["T_hat"] for sh, g in scan[(scan["shift"] != "none") & (scan["boot"] == -1)]
               .groupby("shift")}
    axes = sorted({sh[:-1] for sh in shifted if sh.startswith("axis")})
    d = []
    for ax in axes:
        up, down = shifted.get(ax + "+"), shifted.get(ax + "-")
        d.append((up - down) / 2 if up is not None and down is not None
                 else (up - out["T_hat"]) if up is not None else (out["T_hat"] - down))
    out["T_hat_err_opt"] = float(np.sqrt(np.sum(np.square(d)))) if d else 0.0
    out["T_hat_err_scan"] = errs["T_hat_err"]
    out["T_hat_err"] = float(np.hypot(errs["T_hat_err"], out["T_hat_err_opt"]))
    out["T_hat_err_epm"], out["T_hat_err_ref"] = errs["T_hat_err_epm"], errs["T_hat_err_ref"]
    return out


def optimum_table(fits: list[pd.DataFrame], scans: list[pd.DataFrame],
                  T_half_width: float | None = 0.1) -> pd.DataFrame:
    """The final table: fit per l plus the KMC temperature per l."""
    opt = pd.concat(fits, ignore_index=True)
    Ts = {}
    for s in scans:
        for l, g in s.groupby("l"):
            Ts[round(float(l), 6)] = temperature_optimum(g, T_half_width)
    for col in ("T_hat", "T_hat_err", "T_hat_err_epm", "T_hat_err_ref", "T_hat_err_opt", "T_hat_err_scan", "L_quench"):
        opt[col] = [Ts.get(round(float(l), 6), {}).get(col, float("nan")) for l in opt["l"]]
    opt["T_hat_status"] = [Ts.get(round(float(l), 6), {}).get("T_hat_status", "not_calibrated") for l in opt["l"]]
    first = ["l", "k_hat", "k_hat_err", "k_hat_status", "lam_hat", "lam_hat_err", "chi_hat", "chi_hat_err",
             "T_hat", "T_hat_err", "T_hat_status", "L_stat", "L_stat_err", "L_macro", "L_macro_err",
             "L_meso_plus", "L_meso_plus_err", "L_meso_minus", "L_meso_minus_err"]
    return opt[first + [c for c in opt.columns if c not in first]]
