"""The number of slip systems (appendix A.1), method fixed: lambda_hat at N with k_hat, chi_hat held."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..losses import Evaluator, LossSettings, macro_observables, Reference
from ..params import model_params, resolve_model
from .common import _boot_seed, _meta, ref_boot_seed, run


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
        loss = np.array([ev.macro_loss_scaled(obs_all, s)["L_macro"] for s in scales])
        j = int(np.nanargmin(loss))
        s_star = scales[j]
        if 0 < j < len(scales) - 1:
            x = np.log(scales[j - 1:j + 2])
            c2, c1, _ = np.polyfit(x, loss[j - 1:j + 2], 2)
            if c2 > 0:
                s_star = float(np.exp(np.clip(-c1 / (2 * c2), x[0], x[-1])))
        return s_star, loss

    s_star, loss = best_scale(ens.macro)
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
    scan = pd.DataFrame({"N": int(N), "lam": scales * lam0, "L_macro": loss})
    scan["best"] = False
    scan = pd.concat([scan, pd.DataFrame([{"N": int(N), "lam": lam_hat, "L_macro": float(np.nanmin(loss)),
                                           "best": True}])], ignore_index=True)
    scan = scan.assign(lam_hat=lam_hat, lam_hat_err=err, k=k, chi=chi, l=l, lam_ref=lam0, N_ref=int(p_ref.N))
    log(f"N = {N}: lambda_hat = {lam_hat:.4f} +- {err:.4f} (k = {k:.3g}, chi = {chi:.3g})")
    meta = _meta("slip-systems", params=p.as_dict(), seed=seed, replicas=[0, len(reps)])
    return scan, meta
