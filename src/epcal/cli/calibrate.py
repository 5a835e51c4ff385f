"""Calibration verbs of ``epcal`` (paper section 4): the Snakemake rules call these.

Every verb takes the config slice it uses as JSON (``--cfg``), reads and
writes parquet tables (with parameters and code version in the file
metadata) and prints progress to stderr.  Errors (bad config values, bad
tables) raise ValueError naming the key / file / column; ``epcal`` prints
them and exits with status 2.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def _cfg(text: str) -> dict:
    try:
        v = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"--cfg is not valid JSON: {exc}") from None
    if not isinstance(v, dict):
        raise ValueError("--cfg must be a JSON object")
    return v


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _write(df, path, stage, cfg=None, **extra):
    from epcal import code_version
    from epcal.schema import write_table

    meta = {"stage": stage, "code_version": code_version(), "config": cfg or {}, **extra}
    write_table(df, path, meta)
    _log(f"wrote {path} ({len(df)} rows)")


def _ref(path, fast_alphas=None):
    """The reference; with ``fast_alphas`` (a stage downstream of reference-check) the tables are not
    re-validated and only the probe rows at those orientations are read."""
    from epcal.refdir import read_reference

    if fast_alphas is None:
        return read_reference(path)
    return read_reference(path, validate=False, alphas=tuple(float(a) for a in fast_alphas))


def _loss_alphas(cfg):
    lo = cfg.get("losses") or {}
    return (lo.get("alpha_plus", 0.0), lo.get("alpha_minus", 90.0))


# ----------------------------------------------------------------------------- verbs
def cmd_reference_twin(a):
    import yaml

    from epcal.atomicio import write_text
    from epcal.stages.twin import make_twin
    from epcal.schema import MACRO, PROBE, write_table

    cfg = _cfg(a.cfg)
    macro, probe, meta = make_twin(cfg["twin"], cfg.get("model", {}))
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    write_table(macro, out / "macro.parquet", {"stage": "reference-twin", **meta["provenance"]}, MACRO)
    write_table(probe, out / "probe.parquet", {"stage": "reference-twin", **meta["provenance"]}, PROBE)
    write_text(out / "reference.yaml", yaml.safe_dump(meta, sort_keys=False))
    _log(f"twin reference in {out}: {macro['replica'].nunique()} replicas, {len(probe)} probe rows")


def cmd_reference_check(a):
    import pandas as pd

    from epcal.losses import Evaluator, LossSettings, macro_observables

    ref = _ref(a.ref)
    cfg = _cfg(a.cfg)
    s = LossSettings.from_config(cfg.get("losses"))
    ev = Evaluator(ref, s)  # raises on anything the losses cannot use
    obs = macro_observables(ref.macro, s.gamma_min, ref.delta_gamma)
    rows = [{"item": f"n_{k}", "value": float(v.size)} for k, v in obs.values.items()]
    rows += [{"item": f"bin_width_{k}", "value": t.bins.width} for k, t in ev.targets.items()]
    rows += [{"item": "R_used", "value": ev.ref_R},
             {"item": "replicas", "value": float(ref.macro["replica"].nunique())}]
    _write(pd.DataFrame(rows), a.out, "reference-check", cfg, reference=ref.meta)


def cmd_kernel_cell(a):
    from epcal.atomicio import save_npz
    from epcal.params import model_params, resolve_model
    from epcal.kernel_cache import patch_kernel, periodic_kernel

    from epcal.losses import resolve_radius
    from epcal.params import patch_size

    cfg = _cfg(a.cfg)
    ref = _ref(a.ref) if a.ref else None
    model = resolve_model(cfg.get("model"), ref.meta if ref else None)
    p = model_params(a.l, 1.0, 1.0, 1.0, model)
    K = periodic_kernel(p.L, p.G, p.B)  # fills the shared on-disk cache used by the sweeps
    R = cfg.get("R", 30.0)
    R = resolve_radius(ref.probe, "stationary", R, f"{a.ref}/probe.parquet") if ref is not None else float(R)
    n = min(patch_size(R, p.l, p.L), p.L)  # a small domain caps n at L_EP
    Kp = patch_kernel(n, p.G, p.B)
    save_npz(a.out, kernel=K, patch_kernel=Kp, L=p.L, n=n, l=p.l, G=p.G, B=p.B)
    _log(f"kernels of l={p.l}: L_EP={p.L} (periodic), n={n} (patch) -> {a.out}")


def cmd_sweep_macro(a):
    from epcal.stages.macro import sweep_macro_cell

    cfg = _cfg(a.cfg)
    df = sweep_macro_cell(_ref(a.ref, _loss_alphas(cfg)), float(a.l), float(a.k), cfg, threads=a.threads, log=_log)
    _write(df, a.out, "sweep-macro", cfg, l=float(a.l), k=float(a.k))


def cmd_sweep_meso(a):
    from epcal.stages.meso import sweep_meso_cell
    from epcal.schema import read_table

    cfg = _cfg(a.cfg)
    df = sweep_meso_cell(_ref(a.ref, _loss_alphas(cfg)), read_table(a.macro), cfg, threads=a.threads, log=_log)
    _write(df, a.out, "sweep-meso", cfg)


def cmd_select(a):
    from epcal.stages.macro import select_table
    from epcal.schema import read_table

    _write(select_table([read_table(p) for p in a.inputs]), a.out, "select")


def cmd_collect(a):
    import pandas as pd

    from epcal.schema import read_table

    _write(pd.concat([read_table(p) for p in a.inputs], ignore_index=True), a.out, "collect")


def cmd_fit(a):
    from epcal.stages.fit import fit
    from epcal.schema import read_table

    cfg = _cfg(a.cfg)
    _write(fit([read_table(p) for p in a.inputs], cfg), a.out, "fit", cfg)


def cmd_quench_temperature(a):
    from epcal.stages.temperature import quench_temperature
    from epcal.schema import read_table

    cfg = _cfg(a.cfg)
    opt = read_table(a.fit).iloc[0]
    ref = _ref(a.ref, cfg.get("alpha", [0.0, 90.0]))
    if not (ref.probe["state"].astype(str) == "quench").any():
        raise ValueError(f"{a.ref}/probe.parquet: column 'state': no 'quench' rows; the KMC temperature "
                         "is calibrated on the reference's quenched state (set quench.enabled: false to skip)")
    _write(quench_temperature(ref, opt, cfg, threads=a.threads, log=_log), a.out, "quench-temperature", cfg)


def cmd_optimum(a):
    from epcal.stages.temperature import optimum_table
    from epcal.schema import read_table

    cfg = _cfg(a.cfg)
    opt = optimum_table([read_table(p) for p in a.fits], [read_table(p) for p in a.temperatures],
                        cfg.get("half_width", 0.1))
    for _, r in opt.iterrows():
        for name in ("k_hat", "T_hat"):
            status = r.get(f"{name}_status", "estimate")
            if status not in ("estimate", "not_calibrated"):
                _log(f"WARNING: l = {r['l']:g}: {name} = {r[name]:.4g} is a bound, not an estimate ({status}); "
                     "widen the searched range (k grid / quench.T) or the fit window")
    _write(opt, a.out, "optimum")
    if a.csv:
        from epcal.atomicio import atomic_path

        with atomic_path(a.csv) as tmp:
            opt.to_csv(tmp, index=False)


def _optimum_row(path, l):
    from epcal.schema import read_table

    opt = read_table(path)
    return opt.loc[(opt["l"] - float(l)).abs().idxmin()]


def cmd_optimum_ensemble(a):
    from epcal.stages.optimum import optimum_ensemble
    from epcal.schema import MACRO, PROBE, write_table

    cfg = _cfg(a.cfg)
    row = _optimum_row(a.optimum, a.l)
    ref_meta = _ref(a.ref, [0.0]).meta if a.ref else None
    macro, probe, meta = optimum_ensemble(row, cfg, int(a.batch), threads=a.threads, ref_meta=ref_meta)
    write_table(macro, a.out_macro, meta, MACRO)
    write_table(probe, a.out_probe, meta, PROBE)
    _log(f"optimum ensemble batch {a.batch}: {macro['replica'].nunique()} replicas, {len(probe)} probe rows")


def cmd_emergent_size(a):
    from epcal.stages.optimum import emergent_size
    from epcal.schema import write_table

    cfg = _cfg(a.cfg)
    ref_meta = _ref(a.ref, [0.0]).meta if a.ref else None
    df, meta = emergent_size(_optimum_row(a.optimum, a.l), cfg, int(a.size), threads=a.threads, ref_meta=ref_meta)
    write_table(df, a.out, meta)
    _log(f"size scaling L_EP = {a.size}: std(Sigma_ext) = {df['sigma_std'].mean():.4f} over {len(df)} replicas")


def cmd_emergent_bauschinger(a):
    from epcal.stages.optimum import emergent_bauschinger
    from epcal.schema import write_table

    cfg = _cfg(a.cfg)
    ref_meta = _ref(a.ref, [0.0]).meta if a.ref else None
    df, meta = emergent_bauschinger(_optimum_row(a.optimum, a.l), cfg, threads=a.threads, ref_meta=ref_meta)
    write_table(df, a.out, meta)
    _log(f"Bauschinger test: {df['replica'].nunique()} replicas")


def _variant_ref(path, variant: str, cfg: dict):
    """The reference of a variant calibration: the probe rows at the loss orientations; for B every
    orientation (``alpha_p: auto`` is measured on all of them at R, as the reference's own alpha_p in
    reference.yaml)."""
    if variant == "B":
        from epcal.refdir import read_reference

        return read_reference(path, validate=False)
    return _ref(path, _loss_alphas(cfg))


def cmd_variant(a):
    from epcal.variant_search import calibrate_variant
    from epcal.schema import write_table

    cfg = _cfg(a.cfg)
    ref = _variant_ref(a.ref, a.variant, cfg)
    hist, meta = calibrate_variant(ref, a.variant, _optimum_row(a.optimum, a.l), cfg, threads=a.threads, log=_log)
    write_table(hist, a.out, meta)


def cmd_slip_systems(a):
    from epcal.stages.slip_systems import lambda_for_slip_systems
    from epcal.schema import write_table

    cfg = _cfg(a.cfg)
    ref = _ref(a.ref, _loss_alphas(cfg))
    scan, meta = lambda_for_slip_systems(ref, _optimum_row(a.optimum, a.l), cfg, int(a.n_systems),
                                         threads=a.threads, log=_log)
    write_table(scan, a.out, meta)


def cmd_figure(a):
    from epcal import figures

    cfg = _cfg(a.cfg)
    fn = figures.FIGURES.get(a.name)
    if fn is None:
        raise ValueError(f"figure {a.name!r}: expected one of {sorted(figures.FIGURES)}")
    data = fn(a.out, inputs=a.inputs, ref=a.ref, cfg=cfg)
    _write(data, a.data, f"figure-{a.name}", cfg)


def cmd_figure_data(a):
    from epcal import figure_data

    cfg = _cfg(a.cfg)
    fn = figure_data.DATA.get(a.name)
    if fn is None:
        raise ValueError(f"figure-data {a.name!r}: expected one of {sorted(figure_data.DATA)}")
    _write(fn(a.inputs, a.ref, cfg), a.out, f"figure-data-{a.name}", cfg)


def cmd_figure_plot(a):
    import pandas as pd

    from epcal import figures

    fn = figures.PLOTS.get(a.name)
    if fn is None:
        raise ValueError(f"figure-plot {a.name!r}: expected one of {sorted(figures.PLOTS)}")
    fn(pd.read_parquet(a.data), a.out, _cfg(a.cfg))
    _log(f"wrote {a.out}")


def _register_figure_tables(add) -> None:
    """figure-data (the table of a figure that reads ensembles, a cluster job) and figure-plot (its drawing)."""
    names = ", ".join(("fig2", "fig4", "fig5", "fig8", "fig9"))
    p = add("figure-data", cmd_figure_data, "The data table of a figure that reads run ensembles and the "
            "reference (cfg: bins, rms_windows); --out is the table")
    p.add_argument("name", help=names)
    p.add_argument("--ref", required=True, help="reference directory")
    p.add_argument("--inputs", nargs="*", default=[], help="the optimum ensemble's (and Fig. 5: the emergent) tables")
    p = add("figure-plot", cmd_figure_plot, "Draw a figure from its figure-data table (cfg: the figures slice)")
    p.add_argument("name", help=names)
    p.add_argument("--data", required=True, help="the figure-data table")


# ----------------------------------------------------------------------------- registration
def register(sub: argparse._SubParsersAction) -> None:
    def add(name, func, help_, *, ref=False, cfg=True, out=True, threads=False):
        p = sub.add_parser(name, help=help_, description=help_)
        if ref:
            p.add_argument("--ref", required=True,
                           help="reference directory (macro.parquet, probe.parquet, reference.yaml)")
        if cfg:
            p.add_argument("--cfg", default="{}", help="the config slice this stage uses, as JSON")
        if out:
            p.add_argument("--out", required=True, help="output file")
        if threads:
            p.add_argument("--threads", type=int, default=1, help="threads for the replica batch")
        p.set_defaults(func=func)
        return p

    p = add("reference-twin", cmd_reference_twin,
            "Make a twin reference with the EPM at stated parameters "
            "(cfg: {twin: {l,k,lam,chi,T,seed,replicas,...}, model}); --out is a directory")
    p = add("reference-check", cmd_reference_check,
            "Validate a reference directory (tables, keys, usable statistics) and write its summary", ref=True)
    p = add("kernel-cell", cmd_kernel_cell,
            "Periodic and R~30 patch FEM kernels of element length l (L_EP from the model/reference), cached",
            threads=False)
    p.add_argument("--ref", default=None, help="reference directory (domain and moduli when model keys are null)")
    p.add_argument("--l", required=True, type=float, help="element length l")
    p = add("sweep-macro", cmd_sweep_macro, "L_macro over the (lambda, chi) search of one (l, k) cell",
            ref=True, threads=True)
    p.add_argument("--l", required=True, type=float, help="element length l")
    p.add_argument("--k", required=True, type=float, help="Weibull shape k")
    p = add("sweep-meso", cmd_sweep_meso,
            "L_stat around the macro optimum of one (l, k) cell (patch probing at R ~ 30, alpha 0 and 90)",
            ref=True, threads=True)
    p.add_argument("--macro", required=True, help="the cell's sweep-macro table")
    p = add("select", cmd_select, "Best (lambda, chi) per (l, k) by L_macro", cfg=False)
    p.add_argument("inputs", nargs="+", help="sweep-macro tables")
    p = add("collect", cmd_collect, "Concatenate tables", cfg=False)
    p.add_argument("inputs", nargs="+")
    p = add("fit", cmd_fit, "Parabola fit of L_stat(k) -> k_hat, interpolated lam_hat, chi_hat, bootstrap errors")
    p.add_argument("inputs", nargs="+", help="sweep-meso tables of one l")
    p = add("quench-temperature", cmd_quench_temperature,
            "Scan the KMC quench temperature against the reference's quenched-state statistics",
            ref=True, threads=True)
    p.add_argument("--fit", required=True, help="fit table of this l")
    p = add("optimum", cmd_optimum, "Assemble results/calibration/optimum.parquet (cfg: the quench slice, half_width)")
    p.add_argument("--fits", nargs="+", required=True)
    p.add_argument("--temperatures", nargs="*", default=[])
    p.add_argument("--csv", default=None, help="also write a CSV copy")
    p = add("optimum-ensemble", cmd_optimum_ensemble,
            "One batch of runs at the optimum, quench and stationary states fully probed", out=False, threads=True)
    p.add_argument("--optimum", required=True)
    p.add_argument("--ref", default=None, help="reference directory (moduli and domain when model keys are null)")
    p.add_argument("--l", required=True, type=float)
    p.add_argument("--batch", required=True, type=int)
    p.add_argument("--out-macro", required=True)
    p.add_argument("--out-probe", required=True)
    def at_optimum(p):
        p.add_argument("--optimum", required=True, help="results/calibration/optimum.parquet")
        p.add_argument("--ref", default=None, help="reference directory (moduli when model keys are null)")
        p.add_argument("--l", required=True, type=float, help="element length (nearest row of the optimum table)")
        return p

    p = at_optimum(add("emergent-size", cmd_emergent_size, "Finite-size scaling at the optimum (Fig. 5b): "
                       "stationary std(Sigma_ext) on an L_EP x L_EP lattice", threads=True))
    p.add_argument("--size", required=True, type=int, help="lattice size L_EP")
    at_optimum(add("emergent-bauschinger", cmd_emergent_bauschinger, "Bauschinger test at the optimum (Fig. 5d): "
                   "unload from the stationary state, reload both senses", threads=True))
    p = at_optimum(add("variant", cmd_variant, "Calibrate one model variant of appendix A.8 (Fig. 6): L_stat over "
                       "its free parameters, a space-filling design then Nelder-Mead from its best points",
                       threads=True))
    p.add_argument("--variant", required=True, help="A, B, C, D, E, F, G, H or I")
    p = at_optimum(add("slip-systems", cmd_slip_systems, "lambda_hat at N slip systems per element, k_hat and "
                       "chi_hat fixed (appendix A.1, Fig. 7)", threads=True))
    p.add_argument("--n-systems", required=True, type=int, help="slip systems per element N (multiple of 4)")
    p = add("figure", cmd_figure, "Draw one figure of the paper and write its data table")
    p.add_argument("name", help="fig2, fig3, fig4, fig5, fig6, fig7, fig8, fig9, fig10")
    p.add_argument("--data", required=True, help="parquet file with the plotted data")
    p.add_argument("--ref", default=None, help="reference directory")
    p.add_argument("--inputs", nargs="*", default=[], help="input tables")
    _register_figure_tables(add)


if __name__ == "__main__":  # ``python -m epcal.cli.calibrate VERB ...`` (used by the conda rules)
    from epcal.cli import main

    sys.exit(main())
