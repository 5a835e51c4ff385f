"""Calibration stages (paper section 4, appendix A.3): each returns tidy tables.

Every stage is one function with plain arguments (the config slice it uses as
a dict); :mod:`epcal.cli.calibrate` wraps them as ``epcal`` verbs and the
Snakemake rules call those verbs.  The EPM is run through
:func:`epcal.simulate.run_ensemble`, whose random stream per replica depends
only on (parameters, seed, replica index): batching never changes a result,
and the twin reference uses a seed disjoint from the calibration's.

(lambda, chi) search of one (l, k) cell (``search.method``):

``grid``    the paper's baseline: every (lambda, chi) of the grid, each with
            ``replicas`` runs.
``scaled``  exploits that the EPM is (up to the discreteness of the strain
            step) invariant under scaling every stress, threshold and strain
            by the same factor: an ensemble run at lambda_0 gives, by scaling
            its stresses (and its stationary-regime onset) by s = lambda /
            lambda_0, a surrogate of the ensemble at lambda.  Stage 1 runs
            one ensemble per chi of the grid at lambda_0 (``coarse_replicas``
            runs) and scans lambda on a fine grid through the surrogate;
            then (``refine_chi``) the vertex chi* of a parabola through the
            three best surrogate minima L*(chi) gets its own stage-1 scan
            (successive refinement); stage 2 runs true ensembles
            (``replicas`` runs) at the surrogate optimum lambda*(chi) of the
            ``refine`` best chi; the cell's best
            (lambda, chi) is the best *true* ensemble.  The rows of stage 1
            are kept (``stage = "surrogate"``) but never selected.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from . import code_version
from .fits import fit_optimum
from .losses import (QUENCH_MAGNITUDES, QUENCH_QUANTITIES, Evaluator, LossSettings, Reference, ReferenceUnits,
                     bootstrap_weights, macro_observables, magnitudes_from_sums, meso_sums, relative_loss,
                     resample_design, resolve_radius, select_probe)
from .params import lattice_rule, model_params, resolve_model
from .refdir import twin_probe_grid
from .simulate import RunawayAvalanche


# --------------------------------------------------------------------------- engine access
def run(p, replicas, seed: int, gamma_max: float, T_quench=None, probe=None, threads: int = 1, variant=None,
        stream_key: int | None = None):
    from .simulate import run_ensemble
    from .variants import ORIGINAL

    return run_ensemble(p, replicas=replicas, seed=int(seed), gamma_max=float(gamma_max),
                        T_quench=T_quench, probe=probe, threads=int(threads),
                        variant=ORIGINAL if variant is None else variant, stream_key=stream_key)


def probe_spec(n_list, alphas, states, stride: int = 1):
    from .simulate import ProbeSpec

    return ProbeSpec(n_list=tuple(int(n) for n in n_list), alpha_deg=tuple(float(a) for a in alphas),
                     states=tuple(states), stride=int(stride))


def grid_values(spec) -> np.ndarray:
    """A list of values, or {min, max, step} / {min, max, num} (num log-spaced if log: true)."""
    if isinstance(spec, dict):
        lo, hi = float(spec["min"]), float(spec["max"])
        if "step" in spec:
            n = int(math.floor((hi - lo) / float(spec["step"]) + 1e-9)) + 1
            return np.round(lo + float(spec["step"]) * np.arange(n), 10)
        num = int(spec["num"])
        return np.geomspace(lo, hi, num) if spec.get("log") else np.linspace(lo, hi, num)
    return np.asarray(spec, float)


def _meta(stage: str, **kw) -> dict:
    return {"stage": stage, "code_version": code_version(), **kw}


# --------------------------------------------------------------------------- twin reference
def make_twin(twin: dict, model: dict) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """A reference made by the EPM itself at stated parameters (a 'digital twin')."""
    model = resolve_model(model)
    p = model_params(twin["l"], twin["k"], twin["lam"], twin["chi"], model)
    n_list, alphas = twin_probe_grid(twin, p)  # the grid the start-up check expects (epcal.refdir)
    spec = probe_spec(n_list, alphas, ("quench", "stationary"), twin.get("stride", 1))
    ens = run(p, range(int(twin["replicas"])), twin["seed"], twin.get("gamma_max", 2.0),
              T_quench=float(twin["T"]), probe=spec, threads=twin.get("threads", 1))
    meta = {"domain_length": float(model["domain_length"]), "shear_modulus": p.G, "bulk_modulus": p.B,
            "delta_gamma": 1e-4,
            "description": (f"EPM twin reference at l={p.l}, k={p.k}, lam={p.lam}, chi={p.chi}, "
                            f"T={twin['T']} (seed {twin['seed']}, {twin['replicas']} replicas)"),
            "n_samples": int(twin["replicas"]),
            "provenance": {"generator": "epcal reference-twin", "code_version": code_version(),
                           "params": p.as_dict(), "T": float(twin["T"]), "seed": int(twin["seed"])}}
    return ens.macro, ens.probe, meta


# --------------------------------------------------------------------------- macro sweep
def sweep_macro_cell(ref: Reference, l: float, k: float, cfg: dict, threads: int = 1,
                     log=print) -> pd.DataFrame:
    """All evaluated (lambda, chi) of one (l, k) cell with L_macro and its bootstrap rows.

    ``cfg`` keys: model, seed, gamma_max, replicas, n_boot, losses, search.
    """
    search = cfg["search"]
    method = search.get("method", "grid")
    model = resolve_model(cfg.get("model"), ref.meta)
    settings = LossSettings.from_config(cfg.get("losses"))
    ev = Evaluator(ref, settings, shear_modulus=float(model["G"]), ref_seed=ref_boot_seed(cfg["seed"]),
                   meso=False)
    reps = range(int(cfg["replicas"]))
    n_boot = int(cfg.get("n_boot", 0))
    seed = int(cfg["seed"])
    lams = grid_values(search["lam"])
    chis = grid_values(search["chi"])
    rows = []
    n_runs = 0

    def true_eval(lam, chi, stage):
        nonlocal n_runs
        p = model_params(l, k, lam, chi, model)
        try:
            ens = run(p, reps, seed, cfg.get("gamma_max", 2.0), threads=threads)
        except RunawayAvalanche as exc:  # no stationary flow at this point: never the optimum
            log(f"l={l} k={k} lam={lam:.4g} chi={chi:.4g} [{stage}] skipped: {exc}")
            return float("inf")
        n_runs += len(reps)
        r = ev.evaluate(ens.macro, None, n_boot=n_boot, seed=_boot_seed(seed, l, k, lam, chi))
        r = r.assign(l=float(l), k=float(k), lam=float(lam), chi=float(chi), stage=stage)
        rows.append(r)
        log(f"l={l} k={k} lam={lam:.4g} chi={chi:.4g} [{stage}] L_macro={r['L_macro'].iloc[0]:.4f}")
        return float(r["L_macro"].iloc[0])

    if method == "grid":
        for lam in lams:
            for chi in chis:
                true_eval(lam, chi, "grid")
    elif method == "scaled":
        lam0 = float(search.get("lam0") or np.sqrt(lams.min() * lams.max()))
        fine = np.geomspace(lams.min(), lams.max(), int(search.get("lam_points", 61)))
        coarse = range(int(search.get("coarse_replicas", cfg["replicas"])))
        surrogate_min = {}

        def scan(chi):
            nonlocal n_runs
            p = model_params(l, k, lam0, chi, model)
            try:
                ens = run(p, coarse, seed, cfg.get("gamma_max", 2.0), threads=threads)
            except RunawayAvalanche as exc:
                log(f"l={l} k={k} chi={chi:.4g} surrogate skipped: {exc}")
                return
            n_runs += len(coarse)
            obs_all = macro_observables(ens.macro, 0.0)
            Ls = []
            for lam in fine:
                r = ev.macro_loss_scaled(obs_all, lam / lam0)
                Ls.append(r["L_macro"])
                rows.append(pd.DataFrame([{"boot": -1, "resample": "full", **r, "n_replicas": len(coarse),
                                           "l": float(l), "k": float(k),
                                           "lam": float(lam), "chi": float(chi), "stage": "surrogate"}]))
            j = int(np.argmin(Ls))
            surrogate_min[float(chi)] = (Ls[j], float(fine[j]))
            log(f"l={l} k={k} chi={chi:.4g} surrogate: lam*={fine[j]:.4g} L_macro~{Ls[j]:.4f}")

        for chi in chis:
            scan(float(chi))
        # successive refinement in chi: vertex of the parabola through the 3 best surrogate minima
        if search.get("refine_chi", True) and len(chis) >= 3:
            cs = np.array(sorted(surrogate_min))
            Ls = np.array([surrogate_min[c][0] for c in cs])
            j = int(np.argmin(Ls))
            if 0 < j < len(cs) - 1:
                c2, c1, _ = np.polyfit(cs[j - 1:j + 2], Ls[j - 1:j + 2], 2)
                if c2 > 0:
                    chi_star = round(float(np.clip(-c1 / (2 * c2), cs[j - 1], cs[j + 1])), 3)
                    if chi_star not in surrogate_min:
                        scan(chi_star)
        best = sorted((v[0], v[1], c) for c, v in surrogate_min.items())
        for _, lam, chi in best[: int(search.get("refine", 2))]:
            true_eval(round(lam, 4), chi, "refine")
    else:
        raise ValueError(f"search.method = {method!r}: expected 'grid' or 'scaled'")
    if not any((r["stage"] != "surrogate").any() for r in rows):
        raise ValueError(f"sweep-macro l={l} k={k}: no (lam, chi) of macro.search gave a finished ensemble "
                         "(runaway avalanches everywhere?); widen macro.search.chi / lam")
    out = pd.concat(rows, ignore_index=True)
    out["n_runs_cell"] = n_runs
    return out


def _boot_seed(seed, l, k, lam=0.0, chi=0.0) -> int:
    """Deterministic bootstrap seed of a cell (same resamples whatever the job layout)."""
    return int((int(seed) * 1_000_003 + int(round(float(l) * 1000)) * 7919 + int(round(float(k) * 1000))) % (2**31))


def ref_boot_seed(seed) -> int:
    """Seed of the reference's bootstrap draws: one per calibration (every cell and stage sees the
    same reference resamples, so the fit of bootstrap row b sees one coherent resampled reference)."""
    return int((int(seed) * 2_000_029 + 0x5EF) % (2**31))


def best_macro(cell: pd.DataFrame) -> pd.Series:
    """The true-ensemble (lambda, chi) of a cell with the lowest L_macro (full ensemble)."""
    d = cell[(cell["boot"] == -1) & (cell["stage"] != "surrogate")]
    if d.empty:
        raise ValueError("macro sweep table has no true-ensemble rows")
    return d.loc[d["L_macro"].idxmin()]


def select_table(cells: list[pd.DataFrame]) -> pd.DataFrame:
    """Per (l, k): the best (lambda, chi) by L_macro, its components and bootstrap error."""
    rows = []
    for c in cells:
        b = best_macro(c)
        d = c[(c["lam"] == b["lam"]) & (c["chi"] == b["chi"]) & (c["stage"] == b["stage"])]
        boots = d[d["resample"] == "joint"]
        row = {key: b[key] for key in ("l", "k", "lam", "chi", "L_sigma", "L_drop", "L_incr", "L_macro")}
        row["L_macro_err"] = float(boots["L_macro"].std(ddof=0)) if len(boots) else float("nan")
        row["n_runs_cell"] = int(c["n_runs_cell"].iloc[0]) if "n_runs_cell" in c else -1
        rows.append(row)
    return pd.DataFrame(rows).sort_values(["l", "k"]).reset_index(drop=True)


# --------------------------------------------------------------------------- meso sweep
def sweep_meso_cell(ref: Reference, cell: pd.DataFrame, cfg: dict, threads: int = 1, log=print) -> pd.DataFrame:
    """L_macro, L+_meso, L-_meso and L_stat around the macro optimum of one (l, k) cell.

    ``cfg`` keys: model, seed, gamma_max, replicas, n_boot, losses, stride,
    neighborhood {lam_rel: [...], chi: [...], valley: int}: relative lambda
    and absolute chi offsets around the cell's macro optimum, plus the
    ``valley`` best true-ensemble candidates of the macro cell (points of the
    macro-constrained valley lambda*(chi), so the meso step explores chi
    without leaving the macro constraint).
    """
    b = best_macro(cell)
    l, k = float(b["l"]), float(b["k"])
    model = resolve_model(cfg.get("model"), ref.meta)
    settings = LossSettings.from_config(cfg.get("losses"))
    ev = Evaluator(ref, settings, shear_modulus=float(model["G"]), ref_seed=ref_boot_seed(cfg["seed"]))
    nb = cfg.get("neighborhood", {})
    reps = range(int(cfg["replicas"]))
    seed = int(cfg["seed"])
    cands = []
    for dl in nb.get("lam_rel", [0.0]):
        for dc in nb.get("chi", [0.0]):
            cands.append((round(float(b["lam"]) * (1.0 + float(dl)), 4), round(float(b["chi"]) + float(dc), 4), "offset"))
    true = cell[(cell["boot"] == -1) & (cell["stage"] != "surrogate")].sort_values("L_macro")
    for _, t in true.head(int(nb.get("valley", 1))).iterrows():
        cands.append((round(float(t["lam"]), 4), round(float(t["chi"]), 4), "valley"))
    seen = set()
    rows = []
    for lam, chi, origin in cands:
        if lam <= 0 or chi <= 0 or (lam, chi) in seen:
            continue
        seen.add((lam, chi))
        p = model_params(l, k, lam, chi, model)
        n = p.patch_size(ev.ref_R)  # the EPM patch whose R is nearest the reference's R
        spec = probe_spec([n], [settings.alpha_plus, settings.alpha_minus], ("stationary",),
                          cfg.get("stride", 1))
        try:
            ens = run(p, reps, seed, cfg.get("gamma_max", 2.0), probe=spec, threads=threads)
        except RunawayAvalanche as exc:
            log(f"l={l} k={k} lam={lam:.4g} chi={chi:.4g} [{origin}] skipped: {exc}")
            continue
        r = ev.evaluate(ens.macro, ens.probe, n_boot=int(cfg.get("n_boot", 0)),
                        seed=_boot_seed(seed, l, k), details=True)
        r = r.assign(l=l, k=k, lam=lam, chi=chi, n=n, origin=origin, L_EP=p.L, N=p.N, l_lattice=p.l,
                     lattice_rule=lattice_rule(l, float(model["domain_length"])))
        rows.append(r)
        log(f"l={l} k={k} lam={lam:.4g} chi={chi:.4g} [{origin}] L_stat={r['L_stat'].iloc[0]:.4f}")
    if not rows:
        raise ValueError("meso.neighborhood produced no valid (lam, chi) with lam > 0 and chi > 0")
    return pd.concat(rows, ignore_index=True)


# --------------------------------------------------------------------------- fit
def fit(tables: list[pd.DataFrame], cfg: dict) -> pd.DataFrame:
    losses = pd.concat(tables, ignore_index=True)
    return fit_optimum(losses, half_width=cfg.get("half_width", 0.5), interp=cfg.get("interp", "regression"))


# --------------------------------------------------------------------------- KMC temperature
def quench_temperature(ref: Reference, opt: pd.Series, cfg: dict, threads: int = 1, log=print) -> pd.DataFrame:
    """Scan the KMC temperature; L_quench(T) = mean L[F] of the quenched-state magnitudes
    (:data:`epcal.losses.QUENCH_MAGNITUDES`: mean and std of sigma_vm, tau_c, delta_tau_c,
    drop_tau_c and std of tau_i) at the reference's R nearest ``R`` over ``alpha`` (default 0
    and 90 degrees), with replica and reference bootstrap rows.  The magnitudes themselves are
    kept (columns ``<magnitude>_a<alpha>`` and ``ref_<magnitude>_a<alpha>``): T_hat is fitted
    from them (:func:`epcal.fits.fit_temperature_magnitudes`).

    With ``propagate`` (default true) the scan is repeated (full ensemble only; column ``shift``)
    at the optimum moved by one error bar along k_hat, lam_hat and chi_hat, so that the optimum's
    own uncertainty enters T_hat's (:func:`temperature_optimum`).

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
    shifts = [("none", 0.0)]
    if cfg.get("propagate", True):
        shifts += [(key, float(opt.get(f"{key}_err", np.nan))) for key in ("k_hat", "lam_hat", "chi_hat")]
    rows = []
    for shift, d in shifts:
        if shift != "none" and not (np.isfinite(d) and d > 0):
            log(f"quench-temperature: {shift} has no error bar; not propagated")
            continue
        at = {key: float(opt[key]) + (d if key == shift else 0.0) for key in ("k_hat", "lam_hat", "chi_hat")}
        p = model_params(opt["l"], at["k_hat"], at["lam_hat"], at["chi_hat"], model)
        n = p.patch_size(R)
        spec = probe_spec([n], alphas, ("quench",), cfg.get("stride", 1))
        sel = slice(None) if shift == "none" else slice(0, 1)  # shifted scans: the full ensemble only
        for T in grid_values(cfg["T"]):
            # the quenched state is probed before any loading; one strain step is the shortest run
            ens = run(p, reps, cfg["seed"], gamma_max=1e-4, T_quench=float(T), probe=spec, threads=threads)
            Ls, cols = [], {}
            for a in alphas:
                rows_a = select_probe(ens.probe, "quench", R, a, "EPM probe table", exact_R=False)
                mags = magnitudes_from_sums(*meso_sums(rows_a, reps, QUENCH_QUANTITIES), W[sel])[:, keep]
                Ls.append(relative_loss(mags, ref_mag[a][sel]))
                for i, m in enumerate(names):
                    cols[f"{m}_a{a:g}"] = mags[:, i]
                    cols[f"ref_{m}_a{a:g}"] = ref_mag[a][sel, i]
            L = np.concatenate(Ls, axis=1).mean(axis=1)
            rows.append(pd.DataFrame({"l": float(opt["l"]), "T": float(T), "boot": boot[sel], "resample": labels[sel],
                                      "shift": shift, "shift_by": d, "L_quench": L, **cols}))
            log(f"l={opt['l']} T={T:.4g} [{shift}] L_quench={L[0]:.4f}")
    return pd.concat(rows, ignore_index=True)


def _scan_magnitudes(g: pd.DataFrame):
    ep = [c for c in g.columns if c.startswith(("mean_", "std_")) and f"ref_{c}" in g.columns]
    if not ep:
        raise ValueError("quench scan table has no magnitude columns (made by an older epcal: rerun quench-temperature)")
    return ep, [f"ref_{c}" for c in ep]


def temperature_optimum(scan: pd.DataFrame, half_width: float | None = 0.1, corr: dict | None = None) -> dict:
    """T_hat (with its bound status, :mod:`epcal.fits`) and its errors from a quench scan.

    ``T_hat_err_epm`` / ``T_hat_err_ref``: the scan's bootstrap rows resampling one side;
    ``T_hat_err_opt``: the optimum's error propagated linearly, sqrt(d^T C d), d_i the change of
    T_hat when optimum parameter i moves by its error bar (the ``shift`` scans) and C their
    correlations over the joint bootstrap rows (``corr``: corr_<a>_<b> of the fit table);
    ``T_hat_err`` = sqrt(joint scan error^2 + T_hat_err_opt^2).
    """
    from .fits import OPTIMUM_KEYS, bootstrap_errors, fit_temperature_magnitudes

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
    d = np.array([fit_rows(scan[(scan["shift"] == key) & (scan["boot"] == -1)])["T_hat"] - out["T_hat"]
                  if ((scan["shift"] == key) & (scan["boot"] == -1)).any() else 0.0 for key in OPTIMUM_KEYS])
    C = np.eye(len(OPTIMUM_KEYS))
    for i, a in enumerate(OPTIMUM_KEYS):
        for j, b in enumerate(OPTIMUM_KEYS):
            if i < j:
                C[i, j] = C[j, i] = float((corr or {}).get(f"corr_{a}_{b}", 0.0))
    out["T_hat_err_opt"] = float(np.sqrt(max(d @ C @ d, 0.0)))
    out["T_hat_err_scan"] = errs["T_hat_err"]
    out["T_hat_err"] = float(np.hypot(errs["T_hat_err"], out["T_hat_err_opt"]))
    out["T_hat_err_epm"], out["T_hat_err_ref"] = errs["T_hat_err_epm"], errs["T_hat_err_ref"]
    return out


def optimum_table(fits: list[pd.DataFrame], scans: list[pd.DataFrame], T_half_width: float | None = 0.1) -> pd.DataFrame:
    """The final table: fit per l plus the KMC temperature per l."""
    opt = pd.concat(fits, ignore_index=True)
    corr = {round(float(r["l"]), 6): {c: r[c] for c in opt.columns if c.startswith("corr_")} for _, r in opt.iterrows()}
    Ts = {}
    for s in scans:
        for l, g in s.groupby("l"):
            Ts[round(float(l), 6)] = temperature_optimum(g, T_half_width, corr.get(round(float(l), 6)))
    for col in ("T_hat", "T_hat_err", "T_hat_err_epm", "T_hat_err_ref", "T_hat_err_opt", "T_hat_err_scan", "L_quench"):
        opt[col] = [Ts.get(round(float(l), 6), {}).get(col, float("nan")) for l in opt["l"]]
    opt["T_hat_status"] = [Ts.get(round(float(l), 6), {}).get("T_hat_status", "not_calibrated") for l in opt["l"]]
    first = ["l", "k_hat", "k_hat_err", "k_hat_status", "lam_hat", "lam_hat_err", "chi_hat", "chi_hat_err",
             "T_hat", "T_hat_err", "T_hat_status", "L_stat", "L_stat_err", "L_macro", "L_macro_err",
             "L_meso_plus", "L_meso_plus_err", "L_meso_minus", "L_meso_minus_err"]
    return opt[first + [c for c in opt.columns if c not in first]]


# --------------------------------------------------------------------------- ensemble at the optimum
def optimum_ensemble(opt: pd.Series, cfg: dict, batch: int, threads: int = 1, ref_meta: dict | None = None):
    """Batch ``batch`` of the runs at the optimum, quench and stationary states probed at every
    n up to R ~ R_max and ``n_alpha`` orientations over 180 degrees."""
    p, T = _optimum_params(opt, cfg, ref_meta)
    from .params import patch_size

    n_max = min(patch_size(float(cfg.get("R_max", 30.0)), p.l, p.L), p.L)  # a small domain caps n at L_EP
    n_list = list(range(int(cfg.get("n_min", 1)), n_max + 1))
    alphas = list(np.arange(int(cfg["n_alpha"])) * 180.0 / int(cfg["n_alpha"]))
    spec = probe_spec(n_list, alphas, ("quench", "stationary"), cfg.get("stride", 1))
    size = int(cfg["batch_size"])
    reps = range(batch * size, min((batch + 1) * size, int(cfg["replicas"])))
    ens = run(p, reps, cfg["seed"], cfg.get("gamma_max", 2.0), T_quench=T, probe=spec, threads=threads)
    meta = _meta("optimum-ensemble", params=p.as_dict(), T_quench=T, seed=int(cfg["seed"]),
                 replicas=[reps.start, reps.stop])
    return ens.macro, ens.probe, meta


# ------------------------------------------------------------------ emergent properties (section 5)
def quench_T(opt: pd.Series, cfg: dict, log=print) -> float:
    """The KMC temperature of runs at the optimum: T_hat, or, where the optimum has none (the quench
    calibration disabled), cfg T_default with a printed notice (the outputs record T_quench)."""
    T = opt.get("T_hat", np.nan)
    if np.isfinite(T):
        return float(T)
    if "T_default" not in cfg:
        raise ValueError(f"l = {opt['l']}: the optimum has no T_hat (quench disabled?) and no T_default is configured")
    log(f"notice: l = {opt['l']}: no calibrated T_hat; the KMC quench uses T_default = {cfg['T_default']}")
    return float(cfg["T_default"])


def _optimum_params(opt: pd.Series, cfg: dict, ref_meta: dict | None):
    model = resolve_model(cfg.get("model"), ref_meta)
    return model_params(opt["l"], opt["k_hat"], opt["lam_hat"], opt["chi_hat"], model), quench_T(opt, cfg)


def emergent_size(opt: pd.Series, cfg: dict, L: int, threads: int = 1, ref_meta: dict | None = None):
    """Finite-size scaling (Fig. 5b): runs at the optimum on an L x L lattice of the same l.

    One row per replica: std and mean of the stationary Sigma_xy^ext (gamma_ext > 0.5),
    with the domain length L l (the size the paper compares with the atomistic box)."""
    import dataclasses

    from .observables import macro_summary

    p, T = _optimum_params(opt, cfg, ref_meta)
    p = dataclasses.replace(p, L=int(L)).validate()
    reps = range(int(cfg["size_replicas"]))
    ens = run(p, reps, cfg["seed"], cfg.get("gamma_max", 2.0), T_quench=T, threads=threads)
    rows = []
    for r, g in ens.macro.groupby("replica"):
        s = macro_summary(g)
        rows.append({"L_EP": int(L), "domain_length": float(L * p.l), "replica": int(r),
                     "sigma_std": s["sigma_std"], "sigma_mean": s["sigma_mean"]})
    meta = _meta("emergent-size", params=p.as_dict(), T_quench=T, seed=int(cfg["seed"]), replicas=[0, len(reps)])
    return pd.DataFrame(rows), meta


def emergent_bauschinger(opt: pd.Series, cfg: dict, threads: int = 1, ref_meta: dict | None = None):
    """Bauschinger test (Fig. 5d) at the optimum: drive to the stationary state, unload to
    Sigma_ext = 0, then reload forward (alpha_ext = 0) and in reverse (alpha_ext = 90)."""
    from .simulate import run_bauschinger

    p, T = _optimum_params(opt, cfg, ref_meta)
    reps = range(int(cfg["bauschinger_replicas"]))
    df = run_bauschinger(p, reps, seed=int(cfg["seed"]), gamma_max=float(cfg.get("gamma_max", 2.0)), T_quench=T,
                         strain=float(cfg["bauschinger_strain"]), threads=threads)
    meta = _meta("emergent-bauschinger", params=p.as_dict(), T_quench=T, seed=int(cfg["seed"]),
                 replicas=[0, len(reps)], strain=float(cfg["bauschinger_strain"]))
    return df, meta


# ------------------------------------------------------------------ number of slip systems (appendix A.1)
def lambda_for_slip_systems(ref: Reference, opt: pd.Series, cfg: dict, N: int, threads: int = 1,
                            log=print) -> tuple[pd.DataFrame, dict]:
    """lambda_hat at N slip systems per element, k_hat and chi_hat fixed (appendix A.1, Fig. 7).

    One ensemble at (k_hat, lambda_hat, chi_hat) with N systems; L_macro as a function of lambda
    follows by rescaling its stresses and strains (the scaled search of the macro sweep), scanned
    on a fine log grid; lambda_hat(N) at its minimum (vertex of the parabola in log lambda through
    the three lowest points), with a replica-bootstrap error.  The expected behaviour is
    lambda_hat ~ N^(1/k) (the weakest of N Weibull thresholds is Weibull with scale lambda N^(-1/k)).

    cfg keys: model, seed, losses, replicas, n_boot, gamma_max, scale_range.
    Returns (the scan: one row per lambda with ``best`` marking the optimum, meta).
    """
    import dataclasses

    model = resolve_model(cfg.get("model"), ref.meta)
    settings = LossSettings.from_config(cfg.get("losses"))
    ev = Evaluator(ref, settings, shear_modulus=float(model["G"]), ref_seed=ref_boot_seed(cfg["seed"]),
                   meso=False)
    l, k, lam0, chi = float(opt["l"]), float(opt["k_hat"]), float(opt["lam_hat"]), float(opt["chi_hat"])
    p_ref = model_params(l, k, lam0, chi, model)  # N of Table 1 at this l: the calibrated model
    p = dataclasses.replace(p_ref, N=int(N)).validate()
    reps = range(int(cfg["replicas"]))
    seed = int(cfg["seed"])
    ens = run(p, reps, seed, cfg.get("gamma_max", 2.0), threads=threads)
    lo, hi = (float(x) for x in cfg.get("scale_range", [0.25, 4.0]))
    scales = np.geomspace(lo, hi, 161)

    def best_scale(macro, scales=scales):
        obs_all = macro_observables(macro, 0.0)
        L = np.array([ev.macro_loss_scaled(obs_all, s)["L_macro"] for s in scales])
        j = int(np.nanargmin(L))
        s_star = scales[j]
        if 0 < j < len(scales) - 1:
            x = np.log(scales[j - 1:j + 2])
            c2, c1, _ = np.polyfit(x, L[j - 1:j + 2], 2)
            if c2 > 0:
                s_star = float(np.exp(np.clip(-c1 / (2 * c2), x[0], x[-1])))
        return s_star, L

    s_star, L = best_scale(ens.macro)
    boots = []
    rng = np.random.default_rng(_boot_seed(seed, l, k, float(N)))
    groups = [g for _, g in ens.macro.groupby("replica")]
    for _ in range(int(cfg.get("n_boot", 20))):
        pick = rng.integers(0, len(groups), len(groups))
        mac = pd.concat([groups[i].assign(replica=j) for j, i in enumerate(pick)], ignore_index=True)
        # resamples move the minimum by a few per cent: scan +-30 % around it on the same spacing
        near = scales[(scales > s_star / 1.3) & (scales < s_star * 1.3)]
        boots.append(best_scale(mac, near)[0] * lam0)
    lam_hat = s_star * lam0
    err = float(np.std(boots, ddof=1)) if len(boots) > 1 else float("nan")
    scan = pd.DataFrame({"N": int(N), "lam": scales * lam0, "L_macro": L})
    scan["best"] = False
    scan = pd.concat([scan, pd.DataFrame([{"N": int(N), "lam": lam_hat, "L_macro": float(np.nanmin(L)),
                                           "best": True}])], ignore_index=True)
    scan = scan.assign(lam_hat=lam_hat, lam_hat_err=err, k=k, chi=chi, l=l, lam_ref=lam0, N_ref=int(p_ref.N))
    log(f"N = {N}: lambda_hat = {lam_hat:.4f} +- {err:.4f} (k = {k:.3g}, chi = {chi:.3g})")
    meta = _meta("slip-systems", params=p.as_dict(), seed=seed, replicas=[0, len(reps)])
    return scan, meta


