"""Figures of the paper (2 to 10) from tables only; each returns its data as a tidy table.

Figs. 2, 4, 5, 8 and 9 read run ensembles and the reference: their tables come from
``figure_data`` (cluster jobs in the pipeline) and ``plot_figN(data, out, cfg)`` draws them.

Colours as in the paper: reference (atomistic or twin) in blue, EPM in red.
Data tables have the columns ``panel, series, state, quantity, x, y`` (and
``yerr`` where error bars are drawn) so that every plotted point is recoverable.
"""
from __future__ import annotations

from functools import partial
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from . import figure_data  # noqa: E402
from .atomicio import atomic_path  # noqa: E402
from .figure_data import LOCAL, _alpha_eq, _read_many, _rows  # noqa: E402
from .fits import select  # noqa: E402
from .losses import MACRO_OBS  # noqa: E402

LABELS = {"sigma": r"$\Sigma_{xy}^{ext}$", "drop": r"$\delta\Sigma_{xy}^{ext}$", "incr": r"$\Delta\Sigma_{xy}^{ext}$",
          "sigma_vm": r"$\tilde\Sigma_{vm}$", "tau_i": r"$\bar\tau^i$", "tau_c": r"$\bar\tau^c$",
          "delta_tau_c": r"$\Delta\bar\tau^c$", "drop_tau_c": r"$\delta\bar\tau^c$"}
STYLES = {"quench": "--", "stationary": "-"}


def _colors(cfg):
    c = cfg.get("colors") or {}
    return c.get("reference", "tab:blue"), c.get("epm", "tab:red")


def _series_colors(cfg):
    cr, ce = _colors(cfg)
    return (("reference", cr), ("epm", ce))


def _save(fig, out, cfg):
    """Write the figure atomically (format from the file name's suffix)."""
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format=Path(out).suffix.lstrip(".") or None, dpi=int(cfg.get("dpi", 150)), bbox_inches="tight")
    plt.close(fig)


def _pick(inputs, stem):
    for p in inputs:
        if Path(p).name.startswith(stem):
            return p
    raise ValueError(f"figure: input '{stem}*' missing among {inputs}")


def _sel(data, **eq):
    """Rows of a figure data table with the given column values, in table order."""
    m = np.ones(len(data), bool)
    for k, v in eq.items():
        m &= (data[k] == v).to_numpy()
    return data[m]


def _draw_from_tables(name, out, inputs, ref, cfg):
    """Figs. 2, 4, 5, 8, 9 from the ensemble and reference tables: figure_data's table, then its plot."""
    data = figure_data.DATA[name](inputs, ref, cfg)
    PLOTS[name](data, out, cfg)
    return data


# ------------------------------------------------------------------------------ Fig. 2
def plot_fig2(data, out, cfg):
    """Fig. 2 from its data table: (a) one stress-strain curve; (b-d) PDFs of Sigma_xy^ext, drops, increments."""
    fig, ax = plt.subplots(1, 4, figsize=(16, 3.6))
    for ser, col in _series_colors(cfg):
        d = _sel(data, panel="a", series=ser)
        ax[0].plot(d["x"], d["y"], color=col, lw=0.6, label=ser)
    ax[0].set_xlabel(r"$\gamma^{ext}$")
    ax[0].set_ylabel(LABELS["sigma"])
    ax[0].legend(frameon=False)
    for j, name in enumerate(MACRO_OBS):
        for ser, col in _series_colors(cfg):
            d = _sel(data, panel="bcd"[j], series=ser)
            if len(d):
                ax[j + 1].step(d["x"], d["y"], where="mid", color=col, label=ser)
        ax[j + 1].set_xlabel(LABELS[name])
        ax[j + 1].set_ylabel("PDF")
        if name != "sigma":
            ax[j + 1].set_yscale("log")
    _save(fig, out, cfg)


# ------------------------------------------------------------------------------ Fig. 3
def fig3(out, inputs, ref, cfg):
    """(a) L_macro(k) per l; (b) L_stat(k) per l with its parabola; (c) min L_stat vs l; (d) components at l."""
    sel = pd.read_parquet(_pick(inputs, "select"))
    meso = pd.read_parquet(_pick(inputs, "meso"))
    opt = pd.read_parquet(_pick(inputs, "optimum"))
    meso = meso[meso["boot"] == -1]
    per_k = str(opt["per_k"].iloc[0]) if "per_k" in opt else "argmin"
    best = select(meso, per_k, float(opt["chi_half_width"].iloc[0]) if "chi_half_width" in opt else 0.3)
    rec = []
    fig, ax = plt.subplots(1, 4, figsize=(17, 3.8))
    cmap = plt.get_cmap("viridis")
    ls = sorted(sel["l"].unique())
    for i, l in enumerate(ls):
        col = cmap(i / max(1, len(ls) - 1))
        s = sel[sel["l"] == l].sort_values("k")
        ax[0].errorbar(s["k"], s["L_macro"], yerr=s.get("L_macro_err"), color=col, marker="o", ms=3, label=f"l={l:g}")
        rec += [dict(panel="a", series=f"l={l:g}", quantity="L_macro", x=x, y=y, yerr=e)
                for x, y, e in zip(s["k"], s["L_macro"], s.get("L_macro_err", np.nan * s["k"]))]
        b = best[best["l"] == l]
        ax[1].plot(b["k"], b["L_stat"], "o", color=col, ms=3, label=f"l={l:g}")
        rec += [dict(panel="b", series=f"l={l:g}", quantity="L_stat", x=x, y=y) for x, y in zip(b["k"], b["L_stat"])]
        o = opt[np.isclose(opt["l"], l)]
        if len(o):
            o = o.iloc[0]
            kk = np.linspace(o["k_fit_lo"], o["k_fit_hi"], 50)
            yy = o["a"] + o["b"] * kk + o["c"] * kk ** 2 + float(o.get("d", 0.0)) * kk ** 3
            ax[1].plot(kk, yy, "-", color=col, lw=1)
            series = f"l={l:g} {o.get('k_model', 'parabola')}"
            rec += [dict(panel="b", series=series, quantity="L_stat_fit", x=x, y=y) for x, y in zip(kk, yy)]
            # k_hat: a solid line with its error band when it is an estimate; dashed and labelled when a bound
            status = str(o.get("k_hat_status", "estimate"))
            est = status == "estimate"
            ax[1].axvline(o["k_hat"], color=col, lw=1, ls="-" if est else "--")
            if est:
                ax[1].axvspan(o["k_hat"] - o["k_hat_err"], o["k_hat"] + o["k_hat_err"], color=col, alpha=0.15, lw=0)
            else:
                ax[1].annotate(f"bound ({status.replace('_', ' ')})", (o["k_hat"], 0.97),
                               xycoords=("data", "axes fraction"), ha="center", va="top", fontsize=7, color=col)
            rec.append(dict(panel="b", series=f"l={l:g} k_hat", quantity=f"k_hat:{status}", x=o["k_hat"],
                            y=o["L_stat"], yerr=o["k_hat_err"]))
    ax[0].set(xlabel="k", ylabel=r"$\mathcal{L}_{macro}$")
    ax[0].legend(frameon=False, fontsize=7)
    ax[1].set(xlabel="k", ylabel=r"$\mathcal{L}_{stat}$")
    ax[2].errorbar(opt["l"], opt["L_stat"], yerr=opt["L_stat_err"], fmt="o-", color="k")
    ax[2].set(xlabel="l", ylabel=r"$\hat{\mathcal{L}}_{stat}$")
    rec += [dict(panel="c", series="optimum", quantity="L_stat", x=x, y=y, yerr=e)
            for x, y, e in zip(opt["l"], opt["L_stat"], opt["L_stat_err"])]
    lf = float(cfg.get("l") or (6.6 if np.isclose(sel["l"], 6.6).any() else ls[0]))
    b = best[np.isclose(best["l"], lf)]
    for key, lab in (("L_macro", r"$\mathcal{L}_{macro}$"), ("L_meso_plus", r"$\mathcal{L}^+_{meso}$"),
                     ("L_meso_minus", r"$\mathcal{L}^-_{meso}$"), ("L_stat", r"$\mathcal{L}_{stat}$")):
        ax[3].plot(b["k"], b[key], "o-", ms=3, label=lab)
        rec += [dict(panel="d", series=f"l={lf:g}", quantity=key, x=x, y=y) for x, y in zip(b["k"], b[key])]
    ax[3].set(xlabel="k", ylabel="error", title=f"l = {lf:g}")
    ax[3].legend(frameon=False, fontsize=7)
    _save(fig, out, cfg)
    return _rows(rec)


# ------------------------------------------------------------------------------ Fig. 5
def _alpha_of(quantity: pd.Series) -> pd.DataFrame:
    """The orientation of Fig. 5c rows (quantity 'alpha=<deg>') as an 'alpha' column."""
    return pd.DataFrame({"alpha": quantity.str.slice(len("alpha=")).astype(float).to_numpy()})


def plot_fig5(data, out, cfg):
    """Fig. 5 from its data table: (a) r(dgamma) and std(Sigma_ext); (b) finite-size scaling with its
    power-law fit; (c) <delta tau_c> vs <tau_c> per orientation; (d) Bauschinger reloads."""
    (_, cr), (_, ce) = _series_colors(cfg)
    fig, ax = plt.subplots(1, 4, figsize=(17, 3.8))
    for ser, col in _series_colors(cfg):
        r = _sel(data, panel="a", series=ser, quantity="r")
        if r.empty:
            continue
        ax[0].errorbar(r["x"], r["y"], yerr=r["yerr"], fmt="o-", ms=3, color=col, label=ser)
        sigma_std = float(_sel(data, panel="a", series=ser, quantity="sigma_std")["y"].iloc[0])
        ax[0].axhline(sigma_std, color=col, ls=":", lw=0.8)
    ax[0].set(xscale="log", yscale="log", xlabel=r"$\Delta\gamma^{ext}$", ylabel=r"$r(\Delta\gamma^{ext})$")
    ax[0].legend(frameon=False, fontsize=7)
    e = _sel(data, panel="b", series="epm", quantity="sigma_std")
    if not e.empty:
        x, y = e["x"].to_numpy(float), e["y"].to_numpy(float)
        ax[1].errorbar(x, y, yerr=e["yerr"], fmt="o", ms=4, color=ce, label="epm")
        if len(x) > 1:
            slope, icpt = np.polyfit(np.log(x), np.log(y), 1)
            xx = np.geomspace(x.min(), x.max(), 20)
            ax[1].plot(xx, np.exp(icpt) * xx**slope, "-", color=ce, lw=0.8,
                       label=f"$L^{{{slope:.2f}}}$ (paper: $L^{{-0.94}}$)")
    r = _sel(data, panel="b", series="reference", quantity="sigma_std")
    ax[1].errorbar(r["x"], r["y"], yerr=r["yerr"], fmt="s", color=cr, label="reference")
    ax[1].set(xscale="log", yscale="log", xlabel="domain length L", ylabel=r"std($\Sigma_{xy}^{ext}$)")
    ax[1].legend(frameon=False, fontsize=7)
    for ser, col in _series_colors(cfg):
        for state, mk in (("quench", "s"), ("stationary", "o")):
            d = _sel(data, panel="c", series=ser, state=state)
            if d.empty:
                continue
            ax[2].plot(d["x"], d["y"], mk, ms=4, color=col, mfc="none" if state == "quench" else col,
                       label=f"{ser} {state}")
            for a_deg, tag in ((0.0, "+"), (90.0, "-")):
                at = _alpha_eq(_alpha_of(d["quantity"]), a_deg)
                if at.any() and state == "stationary":
                    row = d[at].iloc[0]
                    ax[2].annotate(tag, (row["x"], row["y"]), fontsize=9, color=col)
    ax[2].set(xlabel=r"$\langle\bar\tau^c\rangle$ (R~30)", ylabel=r"$\langle\delta\bar\tau^c\rangle$")
    ax[2].legend(frameon=False, fontsize=7)
    for branch, ls, lab in (("forward", "-", r"reload $\alpha^{ext}=0°$"),
                            ("reverse", "--", r"reverse $\alpha^{ext}=90°$")):
        d = _sel(data, panel="d", series="epm", state=branch)
        if len(d):
            ax[3].plot(d["x"], d["y"], ls, color=ce, label=lab)
    for branch, ls in (("forward", "-"), ("reverse", "--")):
        d = _sel(data, panel="d", series="reference", state=branch)
        if len(d):
            ax[3].plot(d["x"], d["y"], ls, color=cr, label=f"reference {branch}")
    ax[3].set(xlabel=r"$\gamma$ since unloading", ylabel=r"$M(\alpha^{ext}):\Sigma^{ext}$")
    ax[3].legend(frameon=False, fontsize=7)
    _save(fig, out, cfg)


# ------------------------------------------------------------------------------ Fig. 7
def fig7(out, inputs, ref, cfg):
    """lambda_hat as a function of the number N of slip systems (appendix A.1).  The inputs are the
    per-N fit tables of ``slip_systems.method = retune`` (:func:`fig7_retuned`) or the lambda scans
    of ``fixed`` (k_hat, chi_hat held; Weibull expectation through the Table 1 value N0)."""
    scans = _read_many(list(inputs))
    if "k_hat" in scans.columns:
        return fig7_retuned(out, scans, cfg)
    best = scans[scans["best"]].sort_values("N")
    N = best["N"].to_numpy(float)
    lam = best["lam_hat"].to_numpy(float)
    err = best["lam_hat_err"].to_numpy(float)
    k = float(best["k"].iloc[0])
    N0 = float(best["N_ref"].iloc[0])  # the calibrated model's N (Table 1)
    lam0 = float(np.interp(np.log(N0), np.log(N), np.log(lam)))
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.6))
    _, ce = _colors(cfg)
    ax[0].errorbar(N, lam, yerr=np.nan_to_num(err), fmt="o", color=ce, label="EPM")
    xx = np.geomspace(N.min(), N.max(), 30)
    pred = np.exp(lam0) * (xx / N0) ** (1.0 / k)
    slope = float(np.polyfit(np.log(N), np.log(lam), 1)[0]) if len(N) > 1 else np.nan
    ax[0].plot(xx, pred, "k--", lw=0.8, label=rf"$\propto N^{{1/\hat k}}$, 1/k = {1 / k:.2f} (fit {slope:.2f})")
    ax[0].set(xscale="log", yscale="log", xlabel="slip systems per element N", ylabel=r"$\hat\lambda$")
    ax[0].legend(frameon=False, fontsize=7)
    for n_sys, g in scans[~scans["best"]].groupby("N"):
        ax[1].plot(g["lam"], g["L_macro"], lw=0.8, label=f"N = {n_sys}")
    ax[1].set(xscale="log", xlabel=r"$\lambda$", ylabel=r"$L_{macro}$")
    ax[1].legend(frameon=False, fontsize=7)
    _save(fig, out, cfg)
    rec = [dict(panel="a", series="epm", quantity="lam_hat", x=a, y=b, yerr=c) for a, b, c in zip(N, lam, err)]
    rec += [dict(panel="a", series="expected", quantity="lam_hat", x=a, y=b) for a, b in zip(xx, pred)]
    rec.append(dict(panel="a", series="epm", quantity="exponent", x=np.nan, y=slope))
    rec += [dict(panel="b", series=f"N={int(r.N)}", quantity="L_macro", x=r.lam, y=r.L_macro)
            for r in scans[~scans["best"]].itertuples()]
    return _rows(rec)


def fig7_retuned(out, fits: pd.DataFrame, cfg):
    """A.1 re-tuned: k_hat, lambda_hat, chi_hat of the calibration at each N.  The Weibull
    expectation (the weakest of N thresholds has scale lambda N^(-1/k)) is lambda_hat ~ N^(1/k) with
    k the error-weighted mean of the re-tuned k_hat; its level is the least-squares one; the free
    slope of log lambda_hat against log N is recorded beside it."""
    f = fits.sort_values("N")
    N = f["N"].to_numpy(float)
    lam, lam_err = f["lam_hat"].to_numpy(float), f["lam_hat_err"].to_numpy(float)
    w = 1.0 / np.maximum(f["k_hat_err"].to_numpy(float), 1e-6) ** 2
    k_mean = float(np.sum(w * f["k_hat"]) / np.sum(w))
    level = float(np.mean(np.log(lam) - np.log(N) / k_mean))
    slope = float(np.polyfit(np.log(N), np.log(lam), 1)[0]) if len(N) > 1 else np.nan
    xx = np.geomspace(N.min(), N.max(), 30)
    pred = np.exp(level) * xx ** (1.0 / k_mean)
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.6))
    _, ce = _colors(cfg)
    ax[0].errorbar(N, lam, yerr=np.nan_to_num(lam_err), fmt="o", color=ce, label="EPM, re-tuned at each N")
    ax[0].plot(xx, pred, "k--", lw=0.8, label=rf"$\propto N^{{1/\bar k}}$, 1/k = {1 / k_mean:.2f} (fit {slope:.2f})")
    ax[0].set(xscale="log", yscale="log", xlabel="slip systems per element N", ylabel=r"$\hat\lambda$")
    ax[0].legend(frameon=False, fontsize=7)
    for col, mk, lab in (("k_hat", "s", r"$\hat k$"), ("chi_hat", "^", r"$\hat\chi$")):
        ax[1].errorbar(N, f[col], yerr=np.nan_to_num(f[f"{col}_err"].to_numpy(float)), fmt=mk, label=lab)
    ax[1].set(xscale="log", xlabel="slip systems per element N", ylabel="re-tuned optimum")
    ax[1].legend(frameon=False, fontsize=7)
    _save(fig, out, cfg)
    rec = [dict(panel="a", series="epm", quantity="lam_hat", x=a, y=b, yerr=c) for a, b, c in zip(N, lam, lam_err)]
    rec += [dict(panel="a", series="expected", quantity="lam_hat", x=a, y=b) for a, b in zip(xx, pred)]
    rec.append(dict(panel="a", series="epm", quantity="exponent", x=np.nan, y=slope))
    rec.append(dict(panel="a", series="expected", quantity="exponent", x=np.nan, y=1.0 / k_mean))
    for col in ("k_hat", "chi_hat", "L_stat"):
        rec += [dict(panel="b", series="epm", quantity=col, x=a, y=b, yerr=c)
                for a, b, c in zip(N, f[col], f[f"{col}_err"])]
    return _rows(rec)


# ------------------------------------------------------------------------------ Figs. 6 and 10
def _variant_optima(inputs):
    """Best row of each variant calibration table, in variant order."""
    rows = [pd.read_parquet(p) for p in inputs]
    best = pd.concat([r[r["best"]] for r in rows], ignore_index=True)
    return best.sort_values("variant").reset_index(drop=True)


def fig6(out, inputs, ref, cfg):
    """Relative errors of each model variant at its own optimum (appendix A.8): L_macro, L+_meso,
    L-_meso with replica-bootstrap error bars (Fig. 6)."""
    best = _variant_optima(inputs)
    fig, ax = plt.subplots(figsize=(1.2 * len(best) + 3, 3.6))
    x = np.arange(len(best))
    rec = []
    for j, (col, lab, c) in enumerate((("L_macro", r"$\hat L_{macro}$", "0.35"),
                                        ("L_meso_plus", r"$\hat L^+_{meso}$", "tab:orange"),
                                        ("L_meso_minus", r"$\hat L^-_{meso}$", "tab:purple"))):
        y = best[col].to_numpy(float)
        e = best.get(f"{col}_err", pd.Series(np.nan, index=best.index)).to_numpy(float)
        ax.bar(x + (j - 1) * 0.27, y, 0.27, yerr=np.nan_to_num(e), color=c, label=lab, capsize=2)
        rec += [dict(panel="a", series=v, quantity=col, x=float(i), y=yy, yerr=ee)
                for i, (v, yy, ee) in enumerate(zip(best["variant"], y, e))]
    ax.set_xticks(x, best["variant"])
    ax.set(xlabel="model variant", ylabel="relative error")
    ax.legend(frameon=False, fontsize=8)
    _save(fig, out, cfg)
    return _rows(rec)


def fig10(out, inputs, ref, cfg):
    """Relative error of every compared quantity for each variant at its optimum (Fig. 10):
    the three macroscale PDFs and the mean/std of each local quantity, forward and backward."""
    best = _variant_optima(inputs)
    cols = ["L_sigma", "L_drop", "L_incr"] + sorted(c for c in best.columns if c.startswith("L_mean_") or
                                                    c.startswith("L_std_"))
    cols = [c for c in cols if not c.endswith("_err")]
    M = best[cols].to_numpy(float)
    fig, ax = plt.subplots(figsize=(0.45 * len(cols) + 3, 0.45 * len(best) + 2))
    im = ax.imshow(M, aspect="auto", cmap="viridis", vmin=0)
    ax.set_xticks(np.arange(len(cols)), [c[2:] for c in cols], rotation=75, fontsize=7)
    ax.set_yticks(np.arange(len(best)), best["variant"])
    for i in range(M.shape[0]):
        for j in range(M.shape[1]):
            ax.text(j, i, f"{M[i, j]:.2f}", ha="center", va="center", fontsize=5,
                    color="w" if M[i, j] < 0.6 * np.nanmax(M) else "k")
    fig.colorbar(im, ax=ax, label="relative error")
    rec = [dict(panel="a", series=v, quantity=c, x=float(j), y=M[i, j])
           for i, v in enumerate(best["variant"]) for j, c in enumerate(cols)]
    _save(fig, out, cfg)
    return _rows(rec)


# ------------------------------------------------------------------------------ local statistics
def _plot_stats(data, out, cfg, stat: str):
    """Fig. 4 (stat='mean', with PDFs) or Fig. 8 (stat='std') from its data table: per local quantity,
    vs R at alpha = 0 and vs alpha at R ~ 30, quench dashed, stationary solid."""
    with_pdf = stat == "mean"
    ncol = 3 if with_pdf else 2
    fig, ax = plt.subplots(len(LOCAL), ncol, figsize=(4.2 * ncol, 2.6 * len(LOCAL)), squeeze=False)
    for i, q in enumerate(LOCAL):
        for ser, col in _series_colors(cfg):
            for state, ls in STYLES.items():
                if _sel(data, series=ser, state=state).empty:
                    continue
                c = 0
                if with_pdf:
                    d = _sel(data, panel=f"pdf_{q}", series=ser, state=state)
                    R30 = float(_sel(data, panel="R_nearest", series=ser, state=state)["y"].iloc[0])
                    ax[i, 0].plot(d["x"], d["y"], ls, color=col, label=f"{ser} {state}")
                    ax[i, 0].set(xlabel=LABELS[q] + f" (R~{R30:.0f}, α=0)", ylabel="PDF")
                    c = 1
                for k, (by, xlabel) in enumerate((("R", "R"), ("alpha", r"$\alpha$ (deg)"))):
                    d = _sel(data, panel=f"{stat}_vs_{by}_{q}", series=ser, state=state)
                    ax[i, c + k].plot(d["x"], d["y"], ls + "o", ms=3, color=col)
                    ax[i, c + k].set(xlabel=xlabel, ylabel=f"{stat} " + LABELS[q])
    if with_pdf:  # the PDF curves carry the labels
        ax[0, 0].legend(frameon=False, fontsize=7)
    _save(fig, out, cfg)


def plot_fig4(data, out, cfg):
    _plot_stats(data, out, cfg, "mean")


def plot_fig8(data, out, cfg):
    _plot_stats(data, out, cfg, "std")


def plot_fig9(data, out, cfg):
    """Fig. 9 from its data table: backward (alpha = 90) PDFs at R ~ 30 of tau_c, delta_tau_c, drop_tau_c."""
    fig, ax = plt.subplots(1, 3, figsize=(13, 3.6))
    for j, q in enumerate(("tau_c", "delta_tau_c", "drop_tau_c")):
        for state, ls in STYLES.items():
            for ser, col in _series_colors(cfg):
                d = _sel(data, panel="abc"[j], series=ser, state=state)
                if len(d):
                    ax[j].plot(d["x"], d["y"], ls, color=col, label=f"{ser} {state}")
        ax[j].set(xlabel=LABELS[q] + r" ($\alpha$=90°, R~30)", ylabel="PDF")
    ax[0].legend(frameon=False, fontsize=7)
    _save(fig, out, cfg)


# figures drawn from a data table of figure_data (in the pipeline: a cluster job makes the table)
PLOTS = {"fig2": plot_fig2, "fig4": plot_fig4, "fig5": plot_fig5, "fig8": plot_fig8, "fig9": plot_fig9}

# name -> draw(out, inputs, ref, cfg), returning the figure's data table
FIGURES = {"fig3": fig3, "fig6": fig6, "fig7": fig7, "fig10": fig10,
           **{name: partial(_draw_from_tables, name) for name in PLOTS}}
