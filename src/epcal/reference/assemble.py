"""The reference directory from per-sample pieces: tables, ``reference.yaml``, measured properties.

:func:`write_reference_dir` writes ``macro.parquet``, ``macro_steps.parquet``, ``probe.parquet``,
``equilibration.parquet`` (and ``bauschinger.parquet`` when given) and ``reference.yaml`` with
the measured properties of the glass (:func:`glass_properties`) and the provenance of every
sample.  :func:`assemble_samples` does it for the complete samples of a campaign
(:mod:`epcal.reference.campaign`), so the reference grows by whole samples.
"""
from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ..schema import BAUSCHINGER, MACRO, PROBE, write_table
from ..refdir import validate_reference_dir
from .tables import drop_census, macro_from_steps

#: the stationary regime of the macroscale statistics (section 2.1: gamma_ext > 0.5)
GAMMA_STATIONARY = 0.5


def _mean_se(x) -> dict:
    x = np.asarray(x, float)
    x = x[np.isfinite(x)]
    n = len(x)
    if n == 0:
        return {"mean": float("nan"), "se": float("nan"), "n": 0}
    se = float(x.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
    return {"mean": float(x.mean()), "se": se, "n": int(n)}


def _sample_mean_se(df: pd.DataFrame, col: str) -> dict:
    """Mean of ``col`` over rows, standard error from the spread of the per-sample means (samples independent)."""
    per = df.groupby("replica")[col].mean()
    out = _mean_se(per.to_numpy())
    out["mean"] = float(df[col].mean()) if len(df) else float("nan")
    return out


def glass_properties(infos: list[dict], steps: pd.DataFrame, macro: pd.DataFrame, probes: pd.DataFrame,
                     R: float | None = None) -> dict:
    """Measured properties with standard errors over samples (the samples are the independent units).

    G, B and the pressure p = -(sxx + syy)/2 of the quenched glasses (mean, standard error, sample
    spread) and of the stationary regime (its sample spread: of the per-sample means); the
    stationary (gamma_ext > 0.5) mean and std of Sigma_xy, the avalanche rate and the
    mean drop; <tau_c> and <delta_tau_c> at the largest R, forward (alpha = 0) and backward (90);
    per probed state the pressure sensitivity alpha_p of tau_c at that R (:mod:`epcal.pressure_sensitivity`).
    """
    G = [d["moduli"]["G"] for d in infos]
    B = [d["moduli"]["B"] for d in infos]
    p = [-0.5 * (d["stress"]["sxx"] + d["stress"]["syy"]) for d in infos]
    st = steps[steps["gamma_ext"] > GAMMA_STATIONARY]
    st_p = st.assign(p=-0.5 * (st["sxx"] + st["syy"]))
    per_std = st.groupby("replica")["sxy"].std(ddof=1)
    av = macro[macro["avalanche"] & (macro["gamma_ext"] > GAMMA_STATIONARY)]
    drops = (av["sigma_before"] - av["sigma_after"]).to_numpy()
    n_steps = st.groupby("replica").size()
    out = {
        "shear_modulus": {**_mean_se(G), "std": float(np.std(G, ddof=1)) if len(G) > 1 else float("nan")},
        "bulk_modulus": {**_mean_se(B), "std": float(np.std(B, ddof=1)) if len(B) > 1 else float("nan")},
        "pressure_quench": {**_mean_se(p), "std": float(np.std(p, ddof=1)) if len(p) > 1 else float("nan")},
        "pressure_stationary": {**_sample_mean_se(st_p, "p"),
                                "std": float(st_p.groupby("replica")["p"].mean().std(ddof=1))},
        "stationary_sigma_xy": {**_sample_mean_se(st, "sxy"), "std": float(st["sxy"].std(ddof=1)),
                                "std_per_sample": _mean_se(per_std.to_numpy())},
        "stationary_drops": {
            "per_unit_strain": float(len(drops) / (n_steps.sum() * float(steps["gamma_ext"].diff().median())))
            if len(n_steps) else float("nan"),
            "mean": _sample_mean_se(av.assign(drop=drops), "drop") if len(av) else {},
            "std": float(np.std(drops, ddof=1)) if len(drops) > 1 else float("nan"),
            "n": int(len(drops)),
        },
    }
    if len(probes):
        r_max = float(probes["R"].max()) if R is None else float(R)
        local = {}
        for state in sorted(probes["state"].unique()):
            for a, name in ((0.0, "forward"), (90.0, "backward")):
                g = probes[(probes["state"] == state) & (probes["R"] == r_max) & (probes["alpha"] == a)]
                if len(g):
                    local[f"{state}_{name}"] = {c: _sample_mean_se(g, c) for c in ("tau_c", "delta_tau_c")}
        out["local_yield_stress"] = {"R": r_max, **local}
        if {"sxx_i", "syy_i"} <= set(probes.columns):  # variant B's alpha_p as A.8.2 measures it
            from ..pressure_sensitivity import pressure_sensitivity

            out["pressure_sensitivity"] = {
                state: {k: v for k, v in pressure_sensitivity(probes, r_max, state).items() if k not in ("R", "state")}
                for state in sorted(probes["state"].unique()) if (probes[probes["state"] == state]["R"] == r_max).any()}
    return out


def write_reference_dir(out, steps: pd.DataFrame, probes: pd.DataFrame, infos: list[dict], cfg: dict,
                        d_threshold: float, traces: list[pd.DataFrame] | None = None,
                        bauschinger: pd.DataFrame | None = None, command: str = "",
                        wall: dict | None = None, samples: dict | None = None) -> dict:
    """Write the reference directory ``out``; returns the content of its ``reference.yaml``."""
    import yaml

    from .. import code_version
    from ..atomicio import write_text

    steps = steps.sort_values(["replica", "step"]).reset_index(drop=True)
    probes = probes.sort_values(["state", "replica", "R", "alpha", "y", "x"]).reset_index(drop=True)
    infos = sorted(infos, key=lambda d: d["replica"])
    out = Path(out)
    meta = {"code_version": code_version(), "config": cfg, "d_threshold": d_threshold}
    macro = macro_from_steps(steps, d_threshold)
    write_table(macro, out / "macro.parquet", meta, MACRO)
    write_table(steps, out / "macro_steps.parquet", meta)
    write_table(probes, out / "probe.parquet", meta, PROBE)
    if traces:  # the liquids' energy and F_s(q, t) traces (equilibration shown per sample)
        write_table(pd.concat(traces, ignore_index=True), out / "equilibration.parquet", meta)
    if bauschinger is not None and len(bauschinger):  # the reload test of Fig. 5d (optional table)
        write_table(bauschinger.sort_values(["replica", "branch", "gamma_load"]).reset_index(drop=True),
                    out / "bauschinger.parquet", meta, BAUSCHINGER)
    wall = dict(wall or {})
    G = [d["moduli"]["G"] for d in infos]
    B = [d["moduli"]["B"] for d in infos]
    ref = {
        "description": cfg.get("description", "atomistic reference made by epcal (LAMMPS)"),
        "domain_length": float(infos[0]["box"][0]),
        "n_atoms": int(infos[0]["n_atoms"]),
        "n_samples": len(infos),
        "shear_modulus": float(np.mean(G)),
        "bulk_modulus": float(np.mean(B)),
        "shear_modulus_per_sample": [float(g) for g in G],
        "bulk_modulus_per_sample": [float(b) for b in B],
        "delta_gamma": float(cfg.get("dgamma", 1e-4)),
        "gamma_max": float(steps["gamma_ext"].max()),
        "R_values": sorted(float(r) for r in probes["R"].unique()),
        "alpha_values": sorted(float(a) for a in probes["alpha"].unique()),
        "grid_spacing": float(cfg.get("grid_spacing", 0)),
        "drop_detection": {"rule": "sxy_k < sxy_{k-1} and max non-affine displacement of step k > d_threshold",
                           **drop_census(steps, d_threshold)},
        "n_avalanches": int(macro["avalanche"].sum()),
        "n_probe_tests": int(len(probes)),
        "properties": _plain(glass_properties(infos, steps, macro, probes)),
        "equilibration": [{"replica": d["replica"], **{k: d["equilibration"][k] for k in
                           ("energy_plateau", "tau_alpha", "window", "window_over_tau_alpha", "pe_q3", "pe_q4")}}
                          for d in infos],
        "provenance": {
            "code_version": code_version(),
            "lammps_version": infos[0].get("lammps_version"),
            "config": cfg,
            "seeds": {int(d["replica"]): int(d["seed"]) for d in infos},
            "command": command,
            "wall_seconds": wall,
            "wall_seconds_total": float(sum(wall.values())),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "python": sys.version.split()[0],
            **({"samples": _plain(samples)} if samples else {}),
        },
    }
    write_text(out / "reference.yaml", yaml.safe_dump(ref, sort_keys=False))
    validate_reference_dir(out)  # the table contracts (a config's needs: epcal reference check --config)
    return ref


def _plain(o):
    """Python scalars, lists and dicts only (for YAML)."""
    if isinstance(o, dict):
        return {(int(k) if isinstance(k, np.integer) else k): _plain(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_plain(v) for v in o]
    if isinstance(o, np.ndarray):
        return _plain(o.tolist())
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, (np.bool_,)):
        return bool(o)
    return o


def _file_meta(path) -> dict:
    import pyarrow.parquet as pq

    from ..schema import META_KEY

    md = pq.read_schema(path).metadata or {}
    raw = md.get(META_KEY)
    return json.loads(raw) if raw else {}


def sample_provenance(pieces: dict) -> dict:
    """Seed, code and LAMMPS versions, solver settings and wall times of one sample's pieces."""
    info = json.loads(Path(pieces["info"]).read_text())
    steps_meta = _file_meta(pieces["steps"])
    prm = steps_meta.get("parameters", {})
    wall = {}
    for b in pieces["benchmarks"]:
        try:
            wall[Path(b).stem] = float(pd.read_csv(b, sep="\t")["s"].iloc[0])
        except (OSError, KeyError, ValueError, IndexError, pd.errors.ParserError):
            continue  # a benchmark file of an interrupted job: no wall time recorded
    probe_versions = sorted({_file_meta(p).get("code_version", "?") for ps in pieces["probes"].values() for p in ps})
    return {
        "seed": int(info["seed"]),
        "lammps_version": info.get("lammps_version"),
        "code_version": {"prepare": info.get("code_version"), "shear": steps_meta.get("code_version"),
                         "probe": probe_versions},
        "prepare": {k: info.get("parameters", {}).get(k) for k in
                    ("n_atoms", "t_equil", "temperature", "dt", "quench_ftol", "n_trace")},
        "aqs": {k: prm.get(k) for k in ("gamma_max", "dgamma", "ftol", "solver", "checkpoint_every")},
        "aqs_wall_seconds_in_last_job": steps_meta.get("wall_seconds"),
        "wall_seconds": wall,
    }


def assemble_samples(samples_dir, cfg: dict, out, states, command: str = "") -> dict:
    """The reference directory ``out`` from the complete samples under ``samples_dir``."""
    from .campaign import sample_pieces

    pieces = sample_pieces(samples_dir, states)
    if not pieces:
        raise ValueError(f"{samples_dir}: no complete sample (glass, AQS series and the probe tables of "
                         f"{', '.join(states)})")
    infos = [json.loads(Path(p["info"]).read_text()) for p in pieces.values()]
    steps = pd.concat([pd.read_parquet(p["steps"]) for p in pieces.values()], ignore_index=True)
    probes = pd.concat([pd.read_parquet(f) for p in pieces.values() for fs in p["probes"].values() for f in fs],
                       ignore_index=True)
    traces = [pd.read_parquet(p["trace"]).assign(replica=int(r)) for r, p in pieces.items() if p["trace"].exists()]
    bau = [pd.read_parquet(p["bauschinger"]) for p in pieces.values() if p["bauschinger"].exists()]
    prov = {int(r): sample_provenance(p) for r, p in pieces.items()}
    wall = {f"{r}/{k}": v for r, d in prov.items() for k, v in d["wall_seconds"].items()}
    return write_reference_dir(out, steps, probes, infos, cfg, cfg.get("d_threshold", 0.05), traces=traces,
                               bauschinger=pd.concat(bau, ignore_index=True) if bau else None,
                               command=command, wall=wall, samples=prov)
