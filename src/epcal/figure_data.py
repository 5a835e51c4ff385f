"""Data tables of the figures that read run ensembles and reference tables (Figs. 2, 4, 5, 8, 9).

Each ``figN_data(inputs, ref, cfg)`` reads the optimum ensemble's tables (``inputs``) and the
reference directory ``ref`` and returns the small tidy table that ``figures.figN`` draws:
columns ``panel, series, state, quantity, x, y, yerr``, every plotted point one row.  In the
pipeline these are cluster jobs (``figN_data`` rules); the figure rules on the submit host read
only these tables.  ``cfg`` keys used: ``bins`` (Figs. 4, 9), ``rms_windows`` (Fig. 5); nothing
about the looks of a figure, so a plot option redraws without recomputing.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .histograms import reference_bins
from .losses import MACRO_OBS, macro_observables
from .observables import loading_curve
from .refdir import read_reference
from .schema import DELTA_GAMMA, GAMMA_STATIONARY

LOCAL = ("sigma_vm", "tau_i", "tau_c", "delta_tau_c", "drop_tau_c")
STATES = ("quench", "stationary")
COLUMNS = ["panel", "series", "state", "quantity", "x", "y", "yerr"]


def _rows(records):
    df = pd.DataFrame.from_records(records)
    for c in COLUMNS:
        if c not in df:
            df[c] = np.nan if c in ("x", "y", "yerr") else ""
    return df[COLUMNS]


def _read_many(paths, columns=None, filters=None):
    if not paths:
        return pd.DataFrame()
    return pd.concat([pd.read_parquet(p, columns=columns, filters=filters) for p in paths], ignore_index=True)


def _pdf(x, edges):
    h, _ = np.histogram(x, edges, density=True)
    return 0.5 * (edges[1:] + edges[:-1]), h


def _common_edges(a, b, nbins):
    lo = np.nanpercentile(np.r_[a, b], 0.2)
    hi = np.nanpercentile(np.r_[a, b], 99.8)
    if not hi > lo:
        hi = lo + 1.0
    return np.linspace(lo, hi, nbins + 1)


def _nearest_R(df, R0=30.0):
    u = np.unique(df["R"].to_numpy(float))
    return float(u[np.argmin(np.abs(u - R0))])


def _alpha_eq(df, a):
    x = np.mod(df["alpha"].to_numpy(float) - a + 90.0, 180.0) - 90.0
    return np.abs(x) < 1e-6


def _in_state(df, state):
    return df[df["state"].astype(str) == state] if not df.empty else df


def _by_series_state(tables):
    """(series, state, rows) of every non-empty state of the (table, series) pairs, in order."""
    return [(ser, state, d) for df, ser in tables for state in STATES
            if not (d := _in_state(df, state)).empty]


# ------------------------------------------------------------------------------ Fig. 2
def fig2_data(inputs, ref, cfg):
    """(a) one stress-strain curve per series; (b-d) PDFs of Sigma_xy^ext, drops and increments (gamma > 0.5)."""
    R = read_reference(ref)
    ep = _read_many([p for p in inputs if "macro" in Path(p).name])
    rec = []
    for df, name in ((R.macro, "reference"), (ep, "epm")):
        r0 = df["replica"].min()
        d = df[df["replica"] == r0].sort_values("step")
        # the curve: each record contributes (gamma, before) then (gamma, after)
        g = np.repeat(d["gamma_ext"].to_numpy(), 2)
        s = np.column_stack([d["sigma_before"], d["sigma_after"]]).ravel()
        rec += [dict(panel="a", series=name, quantity="sigma", x=x, y=y) for x, y in zip(g, s)]
    o_ref = macro_observables(R.macro, GAMMA_STATIONARY, R.delta_gamma)
    o_ep = macro_observables(ep, GAMMA_STATIONARY, DELTA_GAMMA)
    for j, name in enumerate(MACRO_OBS):
        a, b = o_ref.values[name], o_ep.values[name]
        q = R.shear_modulus * R.delta_gamma if name == "incr" else None
        bins = reference_bins(a, 2000, q)
        lo = min(bins.index(a).min(), bins.index(b).min()) if b.size else bins.index(a).min()
        hi = max(bins.index(a).max(), bins.index(b).max()) if b.size else bins.index(a).max()
        edges = bins.edges(lo, hi)
        for x, ser in ((a, "reference"), (b, "epm")):
            if not x.size:
                continue
            c, h = _pdf(x, edges)
            rec += [dict(panel="bcd"[j], series=ser, quantity=name, x=xx, y=yy) for xx, yy in zip(c, h)]
    return _rows(rec)


# ------------------------------------------------------------------------------ local statistics
def _local_tables(inputs, ref):
    R = read_reference(ref)
    ep = _read_many([p for p in inputs if "probe" in Path(p).name],
                    columns=["state", "replica", "R", "alpha", *LOCAL])
    return R.probe, ep


def _pdf_edges(tables, nb):
    """PDF bins of Fig. 4, common to both series and both states, from the rows drawn (R ~ 30, alpha = 0)."""
    edges = {}
    for q in LOCAL:
        vals = []
        for df in tables:
            for state in STATES:
                d = _in_state(df, state)
                if not d.empty:
                    d = d[_alpha_eq(d, 0.0)]
                    vals.append(d[np.isclose(d["R"], _nearest_R(d))][q].to_numpy())
        v = np.concatenate(vals) if vals else np.zeros(1)
        edges[q] = _common_edges(v, v, nb)
    return edges


def _stats_data(inputs, ref, cfg, stat: str):
    """Fig. 4 (stat='mean', with PDFs at R ~ 30, alpha = 0) or Fig. 8 (stat='std'): per local quantity,
    series and state, the statistic vs R at alpha = 0 and vs alpha at R ~ 30 (Fig. 4 also has rows of
    panel 'R_nearest': the R ~ 30 of the PDFs, per series and state)."""
    ref_p, ep_p = _local_tables(inputs, ref)
    with_pdf = stat == "mean"
    edges = _pdf_edges((ref_p, ep_p), int(cfg.get("bins", 60))) if with_pdf else {}
    groups = _by_series_state(((ref_p, "reference"), (ep_p, "epm")))
    rec = [dict(panel="R_nearest", series=ser, state=state, quantity="R", y=_nearest_R(d))
           for ser, state, d in (groups if with_pdf else ())]
    for q in LOCAL:
        for ser, state, d in groups:
            R30 = _nearest_R(d)
            d0 = d[_alpha_eq(d, 0.0)]
            if with_pdf:
                cc, h = _pdf(d0[np.isclose(d0["R"], R30)][q].to_numpy(), edges[q])
                rec += [dict(panel=f"pdf_{q}", series=ser, state=state, quantity=q, x=a, y=b) for a, b in zip(cc, h)]
            g = d0.groupby("R")[q].agg(stat)
            rec += [dict(panel=f"{stat}_vs_R_{q}", series=ser, state=state, quantity=q, x=a, y=b)
                    for a, b in zip(g.index, g.values)]
            g = d[np.isclose(d["R"], R30)].groupby("alpha")[q].agg(stat)
            rec += [dict(panel=f"{stat}_vs_alpha_{q}", series=ser, state=state, quantity=q, x=a, y=b)
                    for a, b in zip(g.index, g.values)]
    return _rows(rec)


def fig4_data(inputs, ref, cfg):
    return _stats_data(inputs, ref, cfg, "mean")


def fig8_data(inputs, ref, cfg):
    return _stats_data(inputs, ref, cfg, "std")


def fig9_data(inputs, ref, cfg):
    """Backward (alpha = 90) PDFs at R ~ 30 of tau_c, delta_tau_c and drop_tau_c, quench and stationary."""
    ref_p, ep_p = _local_tables(inputs, ref)
    nb = int(cfg.get("bins", 60))
    rec = []
    for j, q in enumerate(("tau_c", "delta_tau_c", "drop_tau_c")):
        for state in STATES:
            parts = {}
            for df, ser in ((ref_p, "reference"), (ep_p, "epm")):
                d = _in_state(df, state)
                if d.empty:
                    continue
                d = d[_alpha_eq(d, 90.0)]
                if d.empty:
                    continue
                parts[ser] = d[np.isclose(d["R"], _nearest_R(d))][q].to_numpy()
            if not parts:
                continue
            allv = np.concatenate(list(parts.values()))
            edges = _common_edges(allv, allv, nb)
            for ser, x in parts.items():
                c, h = _pdf(x, edges)
                rec += [dict(panel="abc"[j], series=ser, state=state, quantity=q, x=a, y=b) for a, b in zip(c, h)]
    return _rows(rec)


# ------------------------------------------------------------------------------ Fig. 5
def _rms_records(R, ep_macro, windows):
    """(a) r(dgamma) of Eq. (10) per series and the mean std(Sigma_ext) it saturates at."""
    from .observables import macro_summary, rms_deviation

    rec = []
    for df, ser in ((R.macro, "reference"), (ep_macro, "epm")):
        if df.empty:
            continue
        r = rms_deviation(df, windows)
        sd = float(np.mean([macro_summary(g)["sigma_std"] for _, g in df.groupby("replica")]))
        rec += [dict(panel="a", series=ser, quantity="r", x=x, y=y, yerr=e)
                for x, y, e in zip(r["dgamma"], r["r"], r["r_sem"])]
        rec.append(dict(panel="a", series=ser, quantity="sigma_std", x=np.nan, y=sd))
    return rec


def _size_records(R, sizes):
    """(b) std(Sigma_ext) vs domain length (EPM sizes, power-law exponent) and the reference's point."""
    from .observables import macro_summary

    rec = []
    if not sizes.empty:
        g = sizes.groupby("domain_length")["sigma_std"]
        x, y = g.mean().index.to_numpy(float), g.mean().to_numpy()
        e = (g.std(ddof=1) / np.sqrt(g.count())).fillna(0.0).to_numpy()
        rec += [dict(panel="b", series="epm", quantity="sigma_std", x=a, y=b, yerr=c) for a, b, c in zip(x, y, e)]
        if len(x) > 1:
            rec.append(dict(panel="b", series="epm", quantity="exponent", x=np.nan,
                            y=np.polyfit(np.log(x), np.log(y), 1)[0]))
    sd_ref = [macro_summary(g)["sigma_std"] for _, g in R.macro.groupby("replica")]
    err = np.std(sd_ref, ddof=1) / np.sqrt(len(sd_ref)) if len(sd_ref) > 1 else 0.0
    rec.append(dict(panel="b", series="reference", quantity="sigma_std", x=float(R.meta.get("domain_length", np.nan)),
                    y=float(np.mean(sd_ref)), yerr=err))
    return rec


def _drop_records(R, ep_probe):
    """(c) <drop_tau_c> vs <tau_c> at R ~ 30 per orientation, series and state."""
    rec = []
    for ser, state, d in _by_series_state(((R.probe, "reference"), (ep_probe, "epm"))):
        d = d[np.isclose(d["R"], _nearest_R(d))]
        m = d.groupby("alpha")[["tau_c", "drop_tau_c"]].mean()
        rec += [dict(panel="c", series=ser, state=state, quantity=f"alpha={a_deg:g}", x=xv, y=yv)
                for a_deg, (xv, yv) in zip(m.index, m.to_numpy())]
    return rec


def _bauschinger_records(bau, ref):
    """(d) reload forward and in reverse after unloading from the stationary state (EPM; reference when
    its directory has bauschinger.parquet)."""
    rec = []
    if not bau.empty:
        grid = np.linspace(0.0, float(bau["gamma_load"].max()), 101)
        for branch in ("forward", "reverse"):
            y = loading_curve(bau, branch, grid)
            rec += [dict(panel="d", series="epm", state=branch, quantity="sigma_load", x=a, y=b)
                    for a, b in zip(grid, y)]
    ref_bau = Path(ref) / "bauschinger.parquet"
    if ref_bau.exists():  # optional reference table (atomistic reload test)
        rb = pd.read_parquet(ref_bau)
        grid = np.linspace(0.0, float(rb[rb["branch"] != "unload"]["gamma_load"].max()), 101)
        for branch in ("forward", "reverse"):
            if (rb["branch"] == branch).any():
                y = loading_curve(rb, branch, grid)
                rec += [dict(panel="d", series="reference", state=branch, quantity="sigma_load", x=a, y=b)
                        for a, b in zip(grid, y)]
    return rec


def fig5_data(inputs, ref, cfg):
    """Emergent properties at the optimum (section 5): (a) r(dgamma) of Eq. (10); (b) finite-size
    scaling of std(Sigma_ext); (c) <delta tau_c> vs <tau_c> at R ~ 30 per orientation; (d) Bauschinger test."""
    R = read_reference(ref)
    name = lambda p: Path(p).name  # noqa: E731
    ep_macro = _read_many([p for p in inputs if name(p).startswith("macro")])
    ep_probe = _read_many([p for p in inputs if name(p).startswith("probe")],
                          columns=["state", "replica", "R", "alpha", "tau_c", "drop_tau_c"])
    sizes = _read_many([p for p in inputs if name(p).startswith("size")])
    bau = _read_many([p for p in inputs if name(p).startswith("bauschinger")])
    windows = [float(w) for w in cfg.get("rms_windows", [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1])]
    rec = (_rms_records(R, ep_macro, windows) + _size_records(R, sizes) + _drop_records(R, ep_probe)
           + _bauschinger_records(bau, ref))
    return _rows(rec)


DATA = {"fig2": fig2_data, "fig4": fig4_data, "fig5": fig5_data, "fig8": fig8_data, "fig9": fig9_data}
