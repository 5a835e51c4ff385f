"""Observables: engine arrays -> tidy tables, and the macroscale statistics of section 4.1.

The macro table (``epcal.schema.MACRO``) stores the ends of the elastic branches.
From it :func:`macro_observables` derives, in the stationary regime
gamma_ext > 0.5 (Fig. 2):

* ``sigma`` -- Sigma_xy^ext after relaxation at every strain step (elastic
  branches are linear between records, exact for the EPM);
* ``drop``  -- delta Sigma = sigma_before - sigma_after of each avalanche;
* ``incr``  -- Delta Sigma, the rise along one elastic branch between two
  consecutive avalanches (multiples of G dgamma for the EPM, Fig. 2d).

each with the replica (and strain) it comes from, for replica bootstraps.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from .schema import DELTA_GAMMA, GAMMA_STATIONARY

def von_mises(sig) -> np.ndarray:
    """Sigma_vm = (1/2 Sigma':Sigma')^(1/2) of tensor-component 3-vectors (xx, yy, xy) (section 4.2)."""
    sig = np.asarray(sig, dtype=float)
    return np.sqrt(0.25 * (sig[..., 0] - sig[..., 1]) ** 2 + sig[..., 2] ** 2)


MACRO_COLUMNS = ["replica", "step", "gamma_ext", "sigma_before", "sigma_after", "avalanche", "n_slips"]


def macro_frame(replica: int, steps, before, after, slips, dgamma: float = DELTA_GAMMA) -> pd.DataFrame:
    """Macro table of one run from engine records (first and last rows included by the caller)."""
    steps = np.asarray(steps, np.int64)
    slips = np.asarray(slips, np.int64)
    return pd.DataFrame({
        "replica": np.full(len(steps), replica, np.int64),
        "step": steps,
        "gamma_ext": steps * dgamma,
        "sigma_before": np.asarray(before, float),
        "sigma_after": np.asarray(after, float),
        "avalanche": slips > 0,
        "n_slips": slips,
    })


#: names of the three macroscale observables of Fig. 2 b-d: Sigma_xy^ext, drops, increments
MACRO_OBS = ("sigma", "drop", "incr")


@dataclasses.dataclass
class MacroObservables:
    """Per-observable values with the replica each value comes from."""

    values: dict[str, np.ndarray]
    replica: dict[str, np.ndarray]
    gamma: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)

    def n(self, name: str) -> int:
        return len(self.values[name])


def macro_observables(macro: pd.DataFrame, gamma_min: float = GAMMA_STATIONARY,
                      delta_gamma: float = DELTA_GAMMA) -> MacroObservables:
    """Sigma_xy^ext samples, drops and increments of the stationary regime (see module doc)."""
    df = macro.sort_values(["replica", "step"], kind="stable") if len(macro) else macro
    rep = df["replica"].to_numpy(np.int64)
    step = df["step"].to_numpy(np.int64)
    gam = df["gamma_ext"].to_numpy(float)
    sb = df["sigma_before"].to_numpy(float)
    sa = df["sigma_after"].to_numpy(float)
    av = df["avalanche"].to_numpy(bool)
    out_v: dict[str, list] = {k: [] for k in MACRO_OBS}
    out_r: dict[str, list] = {k: [] for k in MACRO_OBS}
    # drops
    m = av & (gam > gamma_min)
    out_v["drop"] = sb[m] - sa[m]
    out_r["drop"] = rep[m]
    out_g = {"drop": gam[m]}
    # branches: record i -> i+1 within a replica
    same = rep[1:] == rep[:-1]
    i0 = np.flatnonzero(same)
    i1 = i0 + 1
    # increments: both ends are avalanches, branch starts in the stationary regime
    mi = av[i0] & av[i1] & (gam[i0] > gamma_min)
    out_v["incr"] = sb[i1[mi]] - sa[i0[mi]]
    out_r["incr"] = rep[i0[mi]]
    out_g["incr"] = gam[i0[mi]]
    # stress samples on the strain grid
    nstep = np.abs(step[i1] - step[i0])
    ok = nstep > 0
    i0, i1, nstep = i0[ok], i1[ok], nstep[ok]
    tot = int(nstep.sum())
    if tot:
        br = np.repeat(np.arange(len(i0)), nstep)
        offs = np.arange(tot) - np.repeat(np.cumsum(nstep) - nstep, nstep)
        frac = offs / nstep[br]
        s = sa[i0][br] + frac * (sb[i1][br] - sa[i0][br])
        g = gam[i0][br] + frac * (gam[i1][br] - gam[i0][br])
        r = rep[i0][br]
    else:
        s = g = np.zeros(0)
        r = np.zeros(0, np.int64)
    # last record of each replica
    last = np.flatnonzero(np.r_[~same, True])
    s = np.r_[s, sa[last]]
    g = np.r_[g, gam[last]]
    r = np.r_[r, rep[last]]
    keep = g > gamma_min + 1e-9 * delta_gamma
    out_v["sigma"], out_r["sigma"], out_g["sigma"] = s[keep], r[keep], g[keep]
    return MacroObservables({k: np.asarray(v, float) for k, v in out_v.items()},
                            {k: np.asarray(v, np.int64) for k, v in out_r.items()},
                            {k: np.asarray(v, float) for k, v in out_g.items()})


def macro_summary(df: pd.DataFrame, gamma_min: float = GAMMA_STATIONARY) -> dict[str, float]:
    """Scalar summary of a macro table (used by ``epcal aqs --summary``)."""
    obs = macro_observables(df, gamma_min).values
    obs = {"stress": obs["sigma"], "drops": obs["drop"], "increments": obs["incr"]}
    n_rep = df["replica"].nunique()
    span = 0.0
    for _, g in df.groupby("replica"):
        span += max(0.0, g["gamma_ext"].max() - gamma_min)
    slips = df.loc[df["avalanche"], "n_slips"].sum() if "n_slips" in df else np.nan
    return {
        "sigma_mean": float(np.mean(obs["stress"])) if obs["stress"].size else float("nan"),
        "sigma_std": float(np.std(obs["stress"])) if obs["stress"].size else float("nan"),
        "drop_mean": float(np.mean(obs["drops"])) if obs["drops"].size else float("nan"),
        "increment_mean": float(np.mean(obs["increments"])) if obs["increments"].size else float("nan"),
        "drops_per_strain": float(obs["drops"].size / span) if span > 0 else float("nan"),
        "slips_per_run": float(slips / n_rep) if n_rep else float("nan"),
        "replicas": int(n_rep),
    }


def probe_frame(out: np.ndarray, *, state: str, replica: int, corners: np.ndarray, L: int, l: float,
                n_list, alpha_deg) -> pd.DataFrame:
    """Probe table (``epcal.schema.PROBE``) from the engine output of :func:`epcal.probe.probe_kernel`."""
    from .params import patch_radius

    P, NN, A, _ = out.shape
    alpha = np.deg2rad(np.asarray(alpha_deg, float))
    s2, c2 = np.sin(2 * alpha), np.cos(2 * alpha)
    pi, ni, qi = np.meshgrid(np.arange(P), np.arange(NN), np.arange(A), indexing="ij")
    pi, ni, qi = pi.ravel(), ni.ravel(), qi.ravel()
    r = out.reshape(-1, out.shape[-1])
    n_arr = np.asarray(n_list, np.int64)[ni]
    ci, cj = np.divmod(np.asarray(corners, np.int64)[pi], L)
    box = L * l

    def tau(sxx, syy, sxy):
        return -0.5 * s2[qi] * (sxx - syy) + c2[qi] * sxy

    tau_i = tau(r[:, 1], r[:, 2], r[:, 3])
    tau_c = tau(r[:, 4], r[:, 5], r[:, 6])
    tau_f = tau(r[:, 7], r[:, 8], r[:, 9])
    return pd.DataFrame({
        "state": state,
        "replica": np.full(len(pi), replica, np.int64),
        "x": np.mod((ci + 0.5 * n_arr) * l, box),
        "y": np.mod((cj + 0.5 * n_arr) * l, box),
        "R": np.array([patch_radius(int(n), l) for n in n_arr]),
        "alpha": np.asarray(alpha_deg, float)[qi],
        "n": n_arr,
        "tau_i": tau_i,
        "tau_c": tau_c,
        "delta_tau_c": tau_c - tau_i,
        "drop_tau_c": tau_c - tau_f,
        "sigma_vm": von_mises(r[:, 1:4]),
        "gamma_c": r[:, 0],
        "sxx_i": r[:, 1], "syy_i": r[:, 2], "sxy_i": r[:, 3],
        "sxx_c": r[:, 4], "syy_c": r[:, 5], "sxy_c": r[:, 6],
        "sxx_f": r[:, 7], "syy_f": r[:, 8], "sxy_f": r[:, 9],
        "n_slips": r[:, 10].astype(np.int64),
    })


def stress_series(g: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(gamma, Sigma_xy^ext) after relaxation at every strain step of one replica's macro table."""
    step = g["step"].to_numpy()
    gam = g["gamma_ext"].to_numpy()
    before = g["sigma_before"].to_numpy()
    after = g["sigma_after"].to_numpy()
    length = np.abs(np.diff(step))
    reps = length.copy()
    reps[-1] += 1
    j = np.arange(reps.sum()) - np.repeat(np.cumsum(reps) - reps, reps)
    safe = np.maximum(length, 1)
    slope = np.where(length > 0, (before[1:] - after[:-1]) / safe, 0.0)
    values = np.repeat(after[:-1], reps) + np.repeat(slope, reps) * j
    gvals = np.repeat(gam[:-1], reps) + np.repeat(np.where(length > 0, (gam[1:] - gam[:-1]) / safe, 0.0), reps) * j
    return gvals, values


def rms_deviation(df: pd.DataFrame, windows, gamma_min: float = GAMMA_STATIONARY) -> pd.DataFrame:
    """r(dgamma) of Eq. (10): the std of Sigma_xy^ext inside strain windows of width dgamma,
    averaged over window positions in the stationary regime and over replicas (Fig. 5a)."""
    rows = []
    for w in windows:
        stds = []
        for _, g in df.groupby("replica", sort=True):
            gam, sig = stress_series(g)
            keep = gam > gamma_min
            sig = sig[keep]
            m = max(2, int(round(w / DELTA_GAMMA)) + 1)  # points in a window of width w
            if sig.size < m:
                continue
            # std over all windows at once (sliding, step one point) via cumulative sums
            c1 = np.concatenate([[0.0], np.cumsum(sig)])
            c2 = np.concatenate([[0.0], np.cumsum(sig * sig)])
            s1 = c1[m:] - c1[:-m]
            s2 = c2[m:] - c2[:-m]
            var = np.maximum(s2 / m - (s1 / m) ** 2, 0.0)
            stds.append(np.sqrt(var))
        if stds:
            allv = np.concatenate(stds)
            rows.append({"dgamma": float(w), "r": float(allv.mean()), "r_sem": float(allv.std() / np.sqrt(len(stds)))})
    return pd.DataFrame(rows)


def loading_curve(df: pd.DataFrame, branch: str, grid: np.ndarray) -> np.ndarray:
    """Replica-averaged stress in the loading sense of one reload ``branch`` (Bauschinger test,
    section 5) on the strain grid ``grid``.

    ``sigma_load`` is the relaxed stress in the loading sense at each record.  EPM tables record the
    ends of the elastic branches, with ``sigma_before`` the stress before the next avalanche (in
    the external sign: the reverse branch loads in -xy), so between records the stress rises
    linearly from one relaxed state to the next unrelaxed one (a saw tooth); a table without
    ``sigma_before`` (atomistic: every step recorded) is interpolated linearly between records.
    """
    sign = 1.0 if branch == "forward" else -1.0
    curves = []
    for _, g in df[df["branch"] == branch].sort_values("gamma_load", kind="stable").groupby("replica"):
        gl = g["gamma_load"].to_numpy()
        sa = g["sigma_load"].to_numpy()
        sb = sign * g["sigma_before"].to_numpy() if "sigma_before" in g else sa
        if len(gl) < 2:
            curves.append(np.interp(grid, gl, sa))
            continue
        x = np.repeat(gl, 2)[1:-1]
        y = np.empty(2 * len(gl) - 2)
        y[0::2] = sa[:-1]
        y[1::2] = sb[1:]
        curves.append(np.interp(grid, x, y))
    return np.mean(curves, axis=0)

