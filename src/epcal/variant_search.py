"""Calibration of the model variants of appendix A.8 (Figs. 6 and 10) by a search that does not depend on a start.

Objective: L_stat (Eq. 9) at the element length of model C's optimum, as a function of the variant's free
parameters (:attr:`epcal.variants.Variant.free_parameters`; B's alpha_p and A's moduli distribution are
fixed, as in A.8.1-A.8.2), every point run with the same replica streams (common random numbers: the
objective is a deterministic function of the parameters, and A's moduli fields and B's offsets are the
same samples at every point).  Every run starts from a KMC-quenched state at model C's T_hat.

Search (cfg ``search``), in the logarithms of the parameters (they are positive scales):

1. a space-filling design: ``design`` points of a scrambled, centred-discrepancy-optimized Latin
   hypercube (seed ``seed``) over the box ``ranges`` of the free parameters;
2. Nelder-Mead from each of the ``local`` best design points (``max_evals`` evaluations each, initial
   simplex of ``initial_step`` in each log-parameter, kept inside the box);
3. the best evaluated point wins and is re-run with the joint bootstrap (errors of the L's);
4. parameter errors: the evaluated points whose L_stat is within the best point's bootstrap error of the
   minimum cannot be told from it; each parameter's range over them is reported (``{p}_lo``, ``{p}_hi``)
   and half of it as ``{p}_err`` (status ``estimate``; ``few_points`` when fewer than d + 2 points are in
   that set; ``at_edge`` when the best point is within 2 % of the box's edge: a bound, not an estimate).
   The range is a lower bound of the true one where the search sampled little (no local quadratic fit:
   with 8 replicas per point L_stat is too rough for its Hessian to be positive definite).

Optional ``include``: named extra candidates evaluated with the design, "model_C" (model C's optimum)
and/or "paper" (the paper's A.8 value).  A different ``seed`` gives a different start set; the
optimum must not depend on it (benchmarks/pipeline/variant_starts.py compares two).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .stages.common import _boot_seed, _meta, probe_spec, quench_T, ref_boot_seed, run
from .params import model_params, resolve_model
from .losses import Evaluator, LossSettings, Reference
from .simulate import RunawayAvalanche

#: stream key of the variant calibration: every parameter point runs the same replica streams
VARIANT_STREAM_KEY = 0xA8
#: default box of the design per free parameter (covers the paper's optima of A.8 and model C's)
SEARCH_RANGES = {"k": (0.7, 4.0), "lam": (0.2, 4.0), "chi": (0.75, 4.0), "tau_c": (0.2, 2.0),
                 "dgamma_pl": (0.002, 0.1)}
SEARCH_DEFAULTS = {"design": 16, "local": 2, "seed": 1, "include": ()}


def variant_of(name: str, cfg: dict, values: dict | None = None):
    """The variant ``name`` with the configured A/B settings and this point's tau_c / dgamma_pl."""
    from .variants import variant

    values = values or {}
    G = cfg.get("shear_modulus") or {}
    pr = cfg.get("pressure") or {}
    return variant(name, tau_c=values.get("tau_c"), dgamma_pl=values.get("dgamma_pl"), G_mean=G.get("mean"),
                   G_shape=G.get("shape"), alpha_p=cfg.get("alpha_p"), p_mean=pr.get("mean"), p_std=pr.get("std"))


def search_box(names, search: dict) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) log-parameter bounds of the search (``ranges`` over :data:`SEARCH_RANGES`)."""
    ranges = {**SEARCH_RANGES, **(search.get("ranges") or {})}
    return (np.log([float(ranges[nm][0]) for nm in names]), np.log([float(ranges[nm][1]) for nm in names]))


def design_points(names, search: dict) -> np.ndarray:
    """Log-parameter points (n, d) of the space-filling design over the box ``ranges``."""
    from scipy.stats import qmc

    lo, hi = search_box(names, search)
    n = int(search.get("design", SEARCH_DEFAULTS["design"]))
    lhs = qmc.LatinHypercube(d=len(names), optimization="random-cd", rng=int(search.get("seed", 1)))
    return lo + lhs.random(n) * (hi - lo)


def parameter_ranges(P: np.ndarray, L: np.ndarray, sigma_L: float) -> tuple[np.ndarray, np.ndarray, int]:
    """(lower, upper, count): range of each parameter (columns of P) over the points whose L is within
    sigma_L of the minimum (the points that cannot be told from the best)."""
    ok = np.isfinite(L)
    P, L = P[ok], L[ok]
    acc = L <= L.min() + (sigma_L if np.isfinite(sigma_L) else 0.0)
    return P[acc].min(axis=0), P[acc].max(axis=0), int(acc.sum())


def resolve_alpha_p(cfg: dict, ref: Reference, R: float, log=print) -> tuple[float, dict]:
    """(alpha_p, how it was set) of model B: a number as configured, or ``auto``: measured on the
    reference (:func:`epcal.pressure_sensitivity.pressure_sensitivity`, stationary state, the loss
    radius R) when it has at least 3 samples there, else A.8.2's 0.2; either way printed."""
    from .pressure_sensitivity import PAPER_ALPHA_P, pressure_sensitivity

    value = cfg.get("alpha_p", "auto")
    if value != "auto":
        return float(value), {"alpha_p_source": "config"}
    if getattr(ref, "probe_alphas", None) is not None:
        raise ValueError(f"variants.alpha_p = auto: {ref.path}/probe.parquet was read at alpha = "
                         f"{list(ref.probe_alphas)} only; alpha_p is measured on every orientation "
                         "(read the reference without alphas)")
    m = pressure_sensitivity(ref.probe, R, "stationary", seed=int(cfg["seed"]), source=f"{ref.path}/probe.parquet")
    if m["n_samples"] >= 3 and np.isfinite(m["alpha_p_err"]):
        log(f"variant B: alpha_p = {m['alpha_p']:.4g} +- {m['alpha_p_err']:.2g} measured on the reference "
            f"(tau_c against p, R = {R:g}, stationary, {m['n_samples']} samples)")
        return float(m["alpha_p"]), {"alpha_p_source": "reference",
                                     **{k if k.startswith("alpha_p") else f"alpha_p_{k}": v
                                        for k, v in m.items() if k != "alpha_p"}}
    log(f"variant B: alpha_p = {PAPER_ALPHA_P} (A.8.2's value): the reference has {m['n_samples']} sample(s) at "
        f"R = {R:g}, too few to measure it (it would give {m['alpha_p']:.3g} without an error)")
    return PAPER_ALPHA_P, {"alpha_p_source": "paper", "alpha_p_measured": m["alpha_p"],
                           "alpha_p_n_samples": m["n_samples"]}


def point_evaluator(ref: Reference, name: str, opt: pd.Series, cfg: dict, threads: int = 1, log=print):
    """(evaluate, base): evaluate(values, n_boot=0, boot_seed=None) is the Evaluator table (L's, bootstrap rows)
    of variant ``name`` at the parameters ``values`` with the calibration's common random numbers; ``base``
    holds the values of the parameters that are not free (model C's optimum; tau_c = lam_hat / 2,
    dgamma_pl = 0.03).  A fixed ``boot_seed`` makes the bootstrap rows of two points paired."""
    model = resolve_model(cfg.get("model"), ref.meta)
    settings = LossSettings.from_config(cfg.get("losses"))
    ev = Evaluator(ref, settings, shear_modulus=float(model["G"]), ref_seed=ref_boot_seed(cfg["seed"]))
    alpha_p, alpha_p_info = resolve_alpha_p(cfg, ref, ev.ref_R, log) if name == "B" else (None, {})
    cfg = {**cfg, "alpha_p": alpha_p}
    l = float(opt["l"])
    T = quench_T(opt, cfg, log)
    base = {"k": float(opt["k_hat"]), "lam": float(opt["lam_hat"]), "chi": float(opt["chi_hat"]),
            "tau_c": 0.5 * float(opt["lam_hat"]), "dgamma_pl": 0.03}
    reps = range(int(cfg["replicas"]))
    seed = int(cfg["seed"])

    def evaluate(values: dict, n_boot: int = 0, boot_seed: int | None = None):
        p = model_params(l, values["k"], values["lam"], values["chi"], model)
        spec = probe_spec([p.patch_size(ev.ref_R)], [settings.alpha_plus, settings.alpha_minus], ("stationary",),
                          cfg.get("stride", 1))
        ens = run(p, reps, seed, cfg.get("gamma_max", 2.0), T_quench=T, probe=spec, threads=threads,
                  variant=variant_of(name, cfg, values), stream_key=VARIANT_STREAM_KEY)
        bs = _boot_seed(seed, l, values["k"]) if boot_seed is None else int(boot_seed)
        return ev.evaluate(ens.macro, ens.probe, n_boot=n_boot, seed=bs, details=True)

    evaluate.T = T
    evaluate.model = model
    evaluate.cfg = cfg  # alpha_p resolved
    evaluate.alpha_p_info = alpha_p_info
    return evaluate, base


def calibrate_variant(ref: Reference, name: str, opt: pd.Series, cfg: dict, threads: int = 1, log=print):
    """Optimum of model variant ``name`` at the element length of ``opt`` (model C's optimum row); see module.

    cfg keys: model, seed, losses, replicas, gamma_max, stride, max_evals, n_boot, initial_step, T_default,
    search {design, local, seed, ranges, include}, alpha_p, pressure {mean, std}, shear_modulus {mean, shape}.
    Returns (one row per evaluated point, ``stage`` design/include/local, ``best`` marking the optimum, meta).
    """
    from scipy.optimize import minimize

    from .variants import PAPER_OPTIMA

    run_point, base = point_evaluator(ref, name, opt, cfg, threads, log)
    model, T, l, cfg = run_point.model, run_point.T, float(opt["l"]), run_point.cfg
    search = {**SEARCH_DEFAULTS, **(cfg.get("search") or {})}
    names = variant_of(name, cfg, base).free_parameters
    reps = range(int(cfg["replicas"]))
    seed = int(cfg["seed"])
    rows, cache = [], {}

    def objective(x, stage, start):
        key = tuple(np.round(x, 10))
        if key in cache:
            return cache[key]
        values = {**base, **{nm: float(np.exp(xi)) for nm, xi in zip(names, x)}}
        common = {**{k: values[k] for k in ("k", "lam", "chi", "tau_c", "dgamma_pl")}, "stage": stage, "start": start}
        try:
            r = run_point(values).iloc[0]
            f = float(r["L_stat"])
            rows.append({**common, **r.to_dict(), "runaway": False})
        except RunawayAvalanche:
            f = float("inf")  # a runaway point is not a candidate: no finite loss is worse
            rows.append({**common, "runaway": True, "L_stat": np.nan})
        log(f"variant {name} [{stage} {start}]: " + ", ".join(f"{nm}={values[nm]:.4g}" for nm in names)
            + f"  L_stat={f:.4f}")
        cache[key] = f
        return f

    design = design_points(names, search)
    lo, hi = search_box(names, search)
    for i, x in enumerate(design):
        objective(x, "design", i)
    for cand in search.get("include") or ():
        src = {"model_C": {}, "paper": PAPER_OPTIMA.get(name, {})}.get(cand)
        if src is None:
            raise ValueError(f"variants.search.include: {cand!r}: expected 'model_C' or 'paper'")
        objective(np.log([{**base, **src}[nm] for nm in names]), "include", cand)
    order = np.argsort([cache[tuple(np.round(x, 10))] for x in design])
    step = float(cfg.get("initial_step", 0.25))
    converged = []
    for j in order[: int(search.get("local", 2))]:
        x0 = design[j]
        if not np.isfinite(cache[tuple(np.round(x0, 10))]):
            continue
        # initial simplex inside the box: step towards the far side where the near one is too close
        steps = np.where(x0 + step <= hi, step, -step)
        simplex = np.vstack([x0] + [x0 + steps[i] * np.eye(len(names))[i] for i in range(len(names))])
        res = minimize(objective, x0, args=("local", int(j)), method="Nelder-Mead", bounds=list(zip(lo, hi)),
                       options={"maxfev": int(cfg.get("max_evals", 30)), "initial_simplex": simplex,
                                "xatol": 0.02, "fatol": 1e-3})
        converged.append(bool(res.success))
    hist = pd.DataFrame(rows)
    ok = hist[~hist["runaway"]]
    if ok.empty:
        raise ValueError(f"variant {name}: every evaluated point ran away (no finite L_stat); "
                         "change variants.search.ranges")
    best = ok.loc[ok["L_stat"].idxmin()]
    values = {k: float(best[k]) for k in ("k", "lam", "chi", "tau_c", "dgamma_pl")}
    boot = run_point(values, n_boot=int(cfg.get("n_boot", 50)))
    errs = boot[boot["resample"] == "joint"][[c for c in boot.columns if c.startswith("L_")]].std(ddof=1)
    hist["best"] = False
    hist.loc[best.name, "best"] = True
    for c, e in errs.items():
        hist[f"{c}_err"] = np.where(hist["best"], e, np.nan)
    plo, phi, n_acc = parameter_ranges(ok[list(names)].to_numpy(float), ok["L_stat"].to_numpy(float),
                                       float(errs.get("L_stat", np.nan)))
    status = "estimate" if n_acc >= len(names) + 2 else "few_points"
    xb = np.log([values[nm] for nm in names])
    if np.any(np.minimum(xb - lo, hi - xb) < 0.02 * (hi - lo)):
        status = "at_edge"
    for nm, a, b in zip(names, plo, phi):
        hist[f"{nm}_lo"] = np.where(hist["best"], a, np.nan)
        hist[f"{nm}_hi"] = np.where(hist["best"], b, np.nan)
        hist[f"{nm}_err"] = np.where(hist["best"], 0.5 * (b - a), np.nan)
    hist = hist.assign(variant=name, l=l, free=",".join(names), evaluations=len(cache), converged=all(converged),
                       param_err_status=status, n_indistinguishable=n_acc, search_seed=int(search.get("seed", 1)))
    meta = _meta("variant-calibration", variant=name, variant_settings=variant_of(name, cfg, values).as_dict(),
                 free_parameters=list(names), search={k: v for k, v in search.items() if k != "ranges"},
                 ranges={nm: list({**SEARCH_RANGES, **(search.get("ranges") or {})}[nm]) for nm in names},
                 T_quench=T, seed=seed, replicas=[0, len(reps)], model=model, cfg=cfg, **run_point.alpha_p_info)
    log(f"variant {name}: best " + ", ".join(f"{nm}={values[nm]:.4g}" for nm in names)
        + f"  L_stat={best['L_stat']:.4f} ({len(cache)} points; parameter errors: {status})")
    return hist, meta
