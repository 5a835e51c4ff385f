"""Figures of the paper (2 to 10) from tables only; each returns its data as a tidy table.

Colours as in the paper: reference (atomistic or twin) in blue, EPM in red.
Data tables have the columns ``panel, series, state, quantity, x, y`` (and
``yerr`` where error bars are drawn) so that every plotted point is recoverable.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .losses import MACRO_OBS, Reference, macro_observables, reference_bins  # noqa: E402
from .schema import DELTA_GAMMA, GAMMA_STATIONARY  # noqa: E402

LABELS = {"sigma": r"$\Sigma_{xy}^{ext}$", "drop": r"$\delta\Sigma_{xy}^{ext}$", "incr": r"$\Delta\Sigma_{xy}^{ext}$",
          "sigma_vm": r"$\tilde\Sigma_{vm}$", "tau_i": r"$\bar\tau^i$", "tau_c": r"$\bar\tau^c$",
          "delta_tau_c": r"$\Delta\bar\tau^c$", "drop_tau_c": r"$\delta\bar\tau^c$"}
LOCAL = ("sigma_vm", "tau_i", "tau_c", "delta_tau_c", "drop_tau_c")


def _colors(cfg):
    c = cfg.get("colors") or {}
    return c.get("reference", "tab:blue"), c.get("epm", "tab:red")


def _save(fig, out, cfg):
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=int(cfg.get("dpi", 150)), bbox_inches="tight")
    plt.close(fig)


def _rows(records):
    df = pd.DataFrame.from_records(records)
    for c in ("panel", "series", "state", "quantity", "x", "y", "yerr"):
        if c not in df:
            df[c] = np.nan if c in ("x", "y", "yerr") else ""
    return df[["panel", "series", "state", "quantity", "x", "y", "yerr"]]


def _read_many(paths, columns=None, filters=None):
    if not paths:
        return pd.DataFrame()
    return pd.concat([pd.read_parquet(p, columns=columns, filters=filters) for p in paths], ignore_index=True)


def _pick(inputs, stem):
    for p in inputs:
        if Path(p).name.startswith(stem):
            return p
    raise ValueError(f"figure: input '{stem}*' missing among {inputs}")


def _pdf(x, edges):
    h, _ = np.histogram(x, edges, density=True)
    return 0.5 * (edges[1:] + edges[:-1]), h


def _common_edges(a, b, nbins):
    lo = np.nanpercentile(np.r_[a, b], 0.2)
    hi = np.nanpercentile(np.r_[a, b], 99.8)
    if not hi > lo:
        hi = lo + 1.0
    return np.linspace(lo, hi, nbins + 1)


# ------------------------------------------------------------------------------ Fig. 2
def fig2(out, inputs, ref, cfg):
    """(a) one stress-strain curve; (b-d) PDFs of Sigma_xy^ext, drops and increments (gamma > 0.5)."""
    R = Reference.from_dir(ref)
    ep = _read_many([p for p in inputs if "macro" in Path(p).name])
    cr, ce = _colors(cfg)
    rec = []
    fig, ax = plt.subplots(1, 4, figsize=(16, 3.6))
    for df, name, col in ((R.macro, "reference", cr), (ep, "epm", ce)):
        r0 = df["replica"].min()
        d = df[df["replica"] == r0].sort_values("step")
        # the curve: each record contributes (gamma, before) then (gamma, after)
        g = np.repeat(d["gamma_ext"].to_numpy(), 2)
        s = np.column_stack([d["sigma_before"], d["sigma_after"]]).ravel()
        ax[0].plot(g, s, color=col, lw=0.6, label=name)
        rec += [dict(panel="a", series=name, quantity="sigma", x=x, y=y) for x, y in zip(g, s)]
    ax[0].set_xlabel(r"$\gamma^{ext}$")
    ax[0].set_ylabel(LABELS["sigma"])
    ax[0].legend(frameon=False)
    o_ref = macro_observables(R.macro, GAMMA_STATIONARY, R.delta_gamma)
    o_ep = macro_observables(ep, GAMMA_STATIONARY, DELTA_GAMMA)
    for j, name in enumerate(MACRO_OBS):
        a, b = o_ref.values[name], o_ep.values[name]
        q = R.shear_modulus * R.delta_gamma if name == "incr" else None
        bins = reference_bins(a, 2000, q)
        lo = min(bins.index(a).min(), bins.index(b).min()) if b.size else bins.index(a).min()
        hi = max(bins.index(a).max(), bins.index(b).max()) if b.size else bins.index(a).max()
        edges = bins.edges(lo, hi)
        for x, col, ser in ((a, cr, "reference"), (b, ce, "epm")):
            if not x.size:
                continue
            c, h = _pdf(x, edges)
            ax[j + 1].step(c, h, where="mid", color=col, label=ser)
            rec += [dict(panel="bcd"[j], series=ser, quantity=name, x=xx, y=yy) for xx, yy in zip(c, h)]
        ax[j + 1].set_xlabel(LABELS[name])
        ax[j + 1].set_ylabel("PDF")
        if name != "sigma":
            ax[j + 1].set_yscale("log")
    _save(fig, out, cfg)
    return _rows(rec)


# ------------------------------------------------------------------------------ Fig. 3
def fig3(out, inputs, ref, cfg):
    """(a) L_macro(k) per l; (b) L_stat(k) per l with its parabola; (c) min L_stat vs l; (d) components at l."""
    sel = pd.read_parquet(_pick(inputs, "select"))
    meso = pd.read_parquet(_pick(inputs, "meso"))
    opt = pd.read_parquet(_pick(inputs, "optimum"))
    meso = meso[meso["boot"] == -1]
    best = meso.loc[meso.groupby(["l", "k"])["L_stat"].idxmin()].sort_values(["l", "k"])
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
            yy = o["a"] + o["b"] * kk + o["c"] * kk ** 2
            ax[1].plot(kk, yy, "-", color=col, lw=1)
            rec += [dict(panel="b", series=f"l={l:g} parabola", quantity="L_stat_fit", x=x, y=y) for x, y in zip(kk, yy)]
            # k_hat: a solid line with its error band when it is an estimate; dashed and labelled when a bound
            status = str(o.get("k_hat_status", "estimate"))
            est = status == "estimate"
            ax[1].axvline(o["k_hat"], color=col, lw=1, ls="-" if est else "--")
            if est:
                ax[1].axvspan(o["k_hat"] - o["k_hat_err"], o["k_hat"] + o["k_hat_err"], color=col, alpha=0.15, lw=0)
            else:
                ax[1].annotate(f"bound ({status.replace('_', ' ')})", (o["k_hat"], 0.97), xycoords=("data", "axes fraction"),
                               ha="center", va="top", fontsize=7, color=col)
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
def fig5(out, inputs, ref, cfg):
    """Emergent properties at the optimum (section 5): (a) r(dgamma) of Eq. (10); (b) finite-size
    scaling of std(Sigma_ext) with a power-law fit; (c) <delta tau_c> vs <tau_c> at R ~ 30 per
    orientation (quench, stationary); (d) Bauschinger test: reload forward and in reverse after
    unloading from the stationary state (the reference's when its directory has bauschinger.parquet)."""
    from .observables import macro_summary, rms_deviation
    from .simulate import loading_curve

    R = Reference.from_dir(ref)
    cr, ce = _colors(cfg)
    ep_macro = _read_many([p for p in inputs if Path(p).name.startswith("macro")])
    ep_probe = _read_many([p for p in inputs if Path(p).name.startswith("probe")],
                          columns=["state", "replica", "R", "alpha", "tau_c", "drop_tau_c"])
    sizes = _read_many([p for p in inputs if Path(p).name.startswith("size")])
    bau = _read_many([p for p in inputs if Path(p).name.startswith("bauschinger")])
    windows = [float(w) for w in cfg.get("rms_windows", [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1])]
    rec = []
    fig, ax = plt.subplots(1, 4, figsize=(17, 3.8))
    # (a) r(dgamma), saturating at std(Sigma_ext)
    for df, ser, col in ((R.macro, "reference", cr), (ep_macro, "epm", ce)):
        if df.empty:
            continue
        r = rms_deviation(df, windows)
        ax[0].errorbar(r["dgamma"], r["r"], yerr=r["r_sem"], fmt="o-", ms=3, color=col, label=ser)
        sd = float(np.mean([macro_summary(g)["sigma_std"] for _, g in df.groupby("replica")]))
        ax[0].axhline(sd, color=col, ls=":", lw=0.8)
        rec += [dict(panel="a", series=ser, quantity="r", x=x, y=y, yerr=e)
                for x, y, e in zip(r["dgamma"], r["r"], r["r_sem"])]
        rec.append(dict(panel="a", series=ser, quantity="sigma_std", x=np.nan, y=sd))
    ax[0].set(xscale="log", yscale="log", xlabel=r"$\Delta\gamma^{ext}$", ylabel=r"$r(\Delta\gamma^{ext})$")
    ax[0].legend(frameon=False, fontsize=7)
    # (b) finite-size scaling
    if not sizes.empty:
        g = sizes.groupby("domain_length")["sigma_std"]
        x, y = g.mean().index.to_numpy(float), g.mean().to_numpy()
        e = (g.std(ddof=1) / np.sqrt(g.count())).fillna(0.0).to_numpy()
        ax[1].errorbar(x, y, yerr=e, fmt="o", ms=4, color=ce, label="epm")
        rec += [dict(panel="b", series="epm", quantity="sigma_std", x=a, y=b, yerr=c) for a, b, c in zip(x, y, e)]
        if len(x) > 1:
            slope, icpt = np.polyfit(np.log(x), np.log(y), 1)
            xx = np.geomspace(x.min(), x.max(), 20)
            ax[1].plot(xx, np.exp(icpt) * xx**slope, "-", color=ce, lw=0.8, label=f"$L^{{{slope:.2f}}}$ (paper: $L^{{-0.94}}$)")
            rec.append(dict(panel="b", series="epm", quantity="exponent", x=np.nan, y=slope))
    Lref = float(R.meta.get("domain_length", np.nan))
    sd_ref = [macro_summary(g)["sigma_std"] for _, g in R.macro.groupby("replica")]
    ax[1].errorbar([Lref], [np.mean(sd_ref)], yerr=[np.std(sd_ref, ddof=1) / np.sqrt(len(sd_ref)) if len(sd_ref) > 1 else 0],
                   fmt="s", color=cr, label="reference")
    rec.append(dict(panel="b", series="reference", quantity="sigma_std", x=Lref, y=float(np.mean(sd_ref))))
    ax[1].set(xscale="log", yscale="log", xlabel="domain length L", ylabel=r"std($\Sigma_{xy}^{ext}$)")
    ax[1].legend(frameon=False, fontsize=7)
    # (c) <drop> vs <tau_c> per orientation at R ~ 30
    for df, ser, col in ((R.probe, "reference", cr), (ep_probe, "epm", ce)):
        if df.empty:
            continue
        for state, mk in (("quench", "s"), ("stationary", "o")):
            d = df[df["state"].astype(str) == state]
            if d.empty:
                continue
            d = d[np.isclose(d["R"], _nearest_R(d))]
            m = d.groupby("alpha")[["tau_c", "drop_tau_c"]].mean()
            ax[2].plot(m["tau_c"], m["drop_tau_c"], mk, ms=4, color=col, mfc="none" if state == "quench" else col,
                       label=f"{ser} {state}")
            for a_deg, (xv, yv) in zip(m.index, m.to_numpy()):
                rec.append(dict(panel="c", series=ser, state=state, quantity=f"alpha={a_deg:g}", x=xv, y=yv))
            for a_deg, tag in ((0.0, "+"), (90.0, "-")):
                sel = _alpha_eq(m.reset_index(), a_deg)
                if sel.any() and state == "stationary":
                    row = m.reset_index()[sel].iloc[0]
                    ax[2].annotate(tag, (row["tau_c"], row["drop_tau_c"]), fontsize=9, color=col)
    ax[2].set(xlabel=r"$\langle\bar\tau^c\rangle$ (R~30)", ylabel=r"$\langle\delta\bar\tau^c\rangle$")
    ax[2].legend(frameon=False, fontsize=7)
    # (d) Bauschinger test
    if not bau.empty:
        strain = float(bau["gamma_load"].max())
        grid = np.linspace(0.0, strain, 101)
        for branch, ls, lab in (("forward", "-", r"reload $\alpha^{ext}=0°$"), ("reverse", "--", r"reverse $\alpha^{ext}=90°$")):
            y = loading_curve(bau, branch, grid)
            ax[3].plot(grid, y, ls, color=ce, label=lab)
            rec += [dict(panel="d", series="epm", state=branch, quantity="sigma_load", x=a, y=b) for a, b in zip(grid, y)]
    ref_bau = Path(ref) / "bauschinger.parquet"
    if ref_bau.exists():  # optional reference table (atomistic reload test)
        from .reference.bauschinger import loading_curve as ref_loading_curve

        rb = pd.read_parquet(ref_bau)
        strain = float(rb[rb["branch"] != "unload"]["gamma_load"].max())
        grid = np.linspace(0.0, strain, 101)
        for branch, ls in (("forward", "-"), ("reverse", "--")):
            if (rb["branch"] == branch).any():
                y = ref_loading_curve(rb, branch, grid)
                ax[3].plot(grid, y, ls, color=cr, label=f"reference {branch}")
                rec += [dict(panel="d", series="reference", state=branch, quantity="sigma_load", x=a, y=b)
                        for a, b in zip(grid, y)]
    ax[3].set(xlabel=r"$\gamma$ since unloading", ylabel=r"$M(\alpha^{ext}):\Sigma^{ext}$")
    ax[3].legend(frameon=False, fontsize=7)
    _save(fig, out, cfg)
    return _rows(rec)


# ------------------------------------------------------------------------------ Fig. 7
def fig7(out, inputs, ref, cfg):
    """lambda_hat as a function of the number N of slip systems (appendix A.1), with the Weibull
    expectation lambda_hat(N) = lambda_hat(N0) (N / N0)^(1/k_hat) through the Table 1 value N0."""
    scans = _read_many(list(inputs))
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
def _local_tables(inputs, ref):
    R = Reference.from_dir(ref)
    ep = _read_many([p for p in inputs if "probe" in Path(p).name],
                    columns=["state", "replica", "R", "alpha", *LOCAL])
    return R.probe, ep


def _nearest_R(df, R0=30.0):
    u = np.unique(df["R"].to_numpy(float))
    return float(u[np.argmin(np.abs(u - R0))])


def _alpha_eq(df, a):
    x = np.mod(df["alpha"].to_numpy(float) - a + 90.0, 180.0) - 90.0
    return np.abs(x) < 1e-6


def _stats_fig(out, inputs, ref, cfg, stat: str):
    """Fig. 4 (stat='mean', with PDFs) or Fig. 8 (stat='std'): vs R at alpha = 0, vs alpha at R ~ 30."""
    ref_p, ep_p = _local_tables(inputs, ref)
    cr, ce = _colors(cfg)
    with_pdf = stat == "mean"
    ncol = 3 if with_pdf else 2
    fig, ax = plt.subplots(len(LOCAL), ncol, figsize=(4.2 * ncol, 2.6 * len(LOCAL)), squeeze=False)
    rec = []
    styles = {"quench": "--", "stationary": "-"}
    nb = int(cfg.get("bins", 60))
    # PDF bins: common to both models and both states, from the rows plotted (R ~ 30, alpha = 0)
    pdf_edges = {}
    for q in LOCAL:
        vals = []
        for df in (ref_p, ep_p):
            for state in styles:
                d = df[df["state"].astype(str) == state] if not df.empty else df
                if not d.empty:
                    d = d[_alpha_eq(d, 0.0)]
                    vals.append(d[np.isclose(d["R"], _nearest_R(d))][q].to_numpy())
        v = np.concatenate(vals) if vals else np.zeros(1)
        pdf_edges[q] = _common_edges(v, v, nb)
    for i, q in enumerate(LOCAL):
        for df, ser, col in ((ref_p, "reference", cr), (ep_p, "epm", ce)):
            if df.empty:
                continue
            for state, ls in styles.items():
                d = df[df["state"].astype(str) == state]
                if d.empty:
                    continue
                R30 = _nearest_R(d)
                d0 = d[_alpha_eq(d, 0.0)]
                c = 0
                if with_pdf:
                    x = d0[np.isclose(d0["R"], R30)][q].to_numpy()
                    edges = pdf_edges[q]
                    cc, h = _pdf(x, edges)
                    ax[i, 0].plot(cc, h, ls, color=col, label=f"{ser} {state}")
                    rec += [dict(panel=f"pdf_{q}", series=ser, state=state, quantity=q, x=a, y=b) for a, b in zip(cc, h)]
                    ax[i, 0].set(xlabel=LABELS[q] + f" (R~{R30:.0f}, α=0)", ylabel="PDF")
                    c = 1
                g = d0.groupby("R")[q].agg(stat)
                ax[i, c].plot(g.index, g.values, ls + "o", ms=3, color=col)
                rec += [dict(panel=f"{stat}_vs_R_{q}", series=ser, state=state, quantity=q, x=a, y=b)
                        for a, b in zip(g.index, g.values)]
                ax[i, c].set(xlabel="R", ylabel=f"{stat} " + LABELS[q])
                dR = d[np.isclose(d["R"], R30)]
                g = dR.groupby("alpha")[q].agg(stat)
                ax[i, c + 1].plot(g.index, g.values, ls + "o", ms=3, color=col)
                rec += [dict(panel=f"{stat}_vs_alpha_{q}", series=ser, state=state, quantity=q, x=a, y=b)
                        for a, b in zip(g.index, g.values)]
                ax[i, c + 1].set(xlabel=r"$\alpha$ (deg)", ylabel=f"{stat} " + LABELS[q])
    ax[0, 0].legend(frameon=False, fontsize=7)
    _save(fig, out, cfg)
    return _rows(rec)


def fig4(out, inputs, ref, cfg):
    return _stats_fig(out, inputs, ref, cfg, "mean")


def fig8(out, inputs, ref, cfg):
    return _stats_fig(out, inputs, ref, cfg, "std")


def fig9(out, inputs, ref, cfg):
    """Backward (alpha = 90) PDFs at R ~ 30 of tau_c, delta_tau_c and drop_tau_c, quench and stationary."""
    ref_p, ep_p = _local_tables(inputs, ref)
    cr, ce = _colors(cfg)
    nb = int(cfg.get("bins", 60))
    qs = ("tau_c", "delta_tau_c", "drop_tau_c")
    fig, ax = plt.subplots(1, 3, figsize=(13, 3.6))
    rec = []
    for j, q in enumerate(qs):
        for state, ls in (("quench", "--"), ("stationary", "-")):
            parts = {}
            for df, ser in ((ref_p, "reference"), (ep_p, "epm")):
                d = df[(df["state"].astype(str) == state)] if not df.empty else df
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
                ax[j].plot(c, h, ls, color=cr if ser == "reference" else ce, label=f"{ser} {state}")
                rec += [dict(panel="abc"[j], series=ser, state=state, quantity=q, x=a, y=b) for a, b in zip(c, h)]
        ax[j].set(xlabel=LABELS[q] + r" ($\alpha$=90°, R~30)", ylabel="PDF")
    ax[0].legend(frameon=False, fontsize=7)
    _save(fig, out, cfg)
    return _rows(rec)


FIGURES = {"fig2": fig2, "fig3": fig3, "fig4": fig4, "fig5": fig5, "fig6": fig6, "fig7": fig7, "fig8": fig8, "fig9": fig9,
           "fig10": fig10}
