"""Engine verbs: ``epcal kernel | quench | aqs | probe``."""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

from ..params import BULK_MODULUS, DOMAIN_LENGTH, SHEAR_MODULUS
from .options import float_list, int_list, parse_snapshots


def _model_options(p: argparse.ArgumentParser, full: bool = True) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--size", type=int, default=15, help="lattice size L_EP (elements per side), default 15")
    g.add_argument("--shear-modulus", type=float, default=SHEAR_MODULUS, help="G, default 13.2")
    g.add_argument("--bulk-modulus", type=float, default=BULK_MODULUS, help="2D bulk modulus B, default 59")
    if not full:
        return
    g.add_argument("--element-length", type=float, default=None,
                   help=f"element side l (LJ lengths); default {DOMAIN_LENGTH} / L_EP")
    g.add_argument("--slip-systems", type=int, default=36, help="slip systems per element N (multiple of 4)")
    g.add_argument("--k", type=float, default=2.18, help="Weibull shape k of slip thresholds (Eq. 5)")
    g.add_argument("--lam", type=float, default=2.05, help="Weibull scale lambda of slip thresholds (Eq. 5)")
    g.add_argument("--chi", type=float, default=2.25, help="slip amplitude exponent chi (Eq. 7)")
    g.add_argument("--variant", default="C", help="model variant of appendix A.8: A (Weibull shear moduli per "
                   "element), B (pressure-sensitive thresholds tau_c + alpha_p p), C (original), D (shuffled kernel), "
                   "E (fixed homogeneous thresholds), F (two systems, constant amplitude), G (F + shuffled), "
                   "H (F + fixed thresholds), I (mean-field kernel)")
    g.add_argument("--tau-c", type=float, default=None, help="homogeneous slip threshold (variants E, H)")
    g.add_argument("--dgamma-pl", type=float, default=None, help="constant slip amplitude (variants F, G, H)")
    g.add_argument("--G-mean", type=float, default=None, help="mean of the Weibull shear moduli (variant A; 18.4)")
    g.add_argument("--G-shape", type=float, default=None, help="Weibull shape k_G of the shear moduli (variant A; 1.3)")
    g.add_argument("--alpha-p", type=float, default=None, help="pressure sensitivity alpha_p (variant B; 0.2)")
    g.add_argument("--p-mean", type=float, default=None,
                   help="mean hydrostatic offset <p> of a sample, compression positive (variant B; 1.95)")
    g.add_argument("--p-std", type=float, default=None, help="sample-to-sample std of the offset (variant B; 0.22)")
    r = p.add_argument_group("run")
    r.add_argument("--replicas", type=int, default=1, help="number of independent runs (replica indices 0..R-1)")
    r.add_argument("--first-replica", type=int, default=0, help="index of the first replica")
    r.add_argument("--seed", type=int, default=0, help="base seed; replica streams derive from (params, seed, replica)")
    r.add_argument("--threads", type=int, default=1, help="replicas run in parallel on this many cores")
    r.add_argument("--out", default=None, help="output parquet file")


def _check_run(args) -> None:
    """The lattice and run options, each named in its error (before any compute)."""
    if args.size < 2:
        raise ValueError(f"--size {args.size}: expected a lattice size L_EP >= 2")
    for opt, value, low in (("--replicas", args.replicas, 1), ("--threads", args.threads, 1),
                            ("--first-replica", args.first_replica, 0)):
        if value < low:
            raise ValueError(f"{opt} {value}: expected an integer >= {low}")
    gamma_max = getattr(args, "gamma_max", None)
    if gamma_max is not None and not gamma_max > 0:
        raise ValueError(f"--gamma-max {gamma_max}: expected a positive strain")


def _params(args):
    from ..params import EPMParams

    _check_run(args)
    l = args.element_length if args.element_length is not None else DOMAIN_LENGTH / args.size
    return EPMParams(L=args.size, l=l, N=args.slip_systems, k=args.k, lam=args.lam, chi=args.chi,
                     G=args.shear_modulus, B=args.bulk_modulus).validate()


def _variant(args):
    from ..variants import variant

    return variant(args.variant, tau_c=args.tau_c, dgamma_pl=args.dgamma_pl, G_mean=args.G_mean,
                   G_shape=args.G_shape, alpha_p=args.alpha_p, p_mean=args.p_mean, p_std=args.p_std)


def _meta(args, params, **extra):
    from .. import code_version

    return {"params": params.as_dict(), "variant": _variant(args).as_dict(), "seed": args.seed,
            "code_version": code_version(), "command": f"epcal {args.verb}", **extra}


# ----------------------------------------------------------------------- kernel
def _cmd_kernel(args) -> int:
    from ..elastic import eshelby_tensor, slip_stiffness, stiffness
    from ..kernel_cache import periodic_kernel

    if args.size < 2:
        raise ValueError(f"--size {args.size}: expected L_EP >= 2")
    K = periodic_kernel(args.size, args.shear_modulus, args.bulk_modulus)
    S = eshelby_tensor(K, args.shear_modulus, args.bulk_modulus)
    angles = np.array([0.0, 22.5, 45.0, 67.5])
    f = slip_stiffness(np.deg2rad(angles), K)
    print(f"periodic FEM lattice L_EP = {args.size}, G = {args.shear_modulus}, B = {args.bulk_modulus}")
    print("tensor convention: vectors (xx, yy, xy) of tensor components; S maps eps_pl -> eps")
    print("Eshelby tensor S of one element (rows xx, yy, xy):")
    for row in S:
        print("  " + "  ".join(f"{v: .6f}" for v in row))
    print("slip stiffness f(theta) = (C:(S-I):M):M, gamma_max = -2 tau / f:")
    for a, v in zip(angles, f):
        print(f"  theta = {a:5.1f} deg   f = {v: .6f}")
    if args.out:
        from ..atomicio import save_npz

        save_npz(args.out, kernel=K, S=S, C=stiffness(args.shear_modulus, args.bulk_modulus), theta_deg=angles, f=f)
        print(f"kernel written to {args.out}")
    return 0


# ----------------------------------------------------------------------- runs
def _write(df, path, meta, schema=None):
    from ..schema import write_table

    write_table(df, path, meta, schema)
    print(f"wrote {len(df)} rows to {path}")


def _cmd_quench(args) -> int:
    from ..schema import write_table
    from ..lattice_tables import state_frame
    from ..simulate import Model

    params = _params(args)
    if not args.T > 0:
        raise ValueError(f"--T {args.T}: expected a positive temperature")
    model = Model(params, variant=_variant(args))
    frames, infos = [], []
    for r in range(args.first_replica, args.first_replica + args.replicas):
        st, rng = model.new_state(args.seed, r)
        t0 = time.perf_counter()
        q = model.quench(st, args.T, rng)
        infos.append({"replica": r, "events": q.events, "blocks": q.blocks, "converged": q.converged,
                      "seconds": time.perf_counter() - t0})
        frames.append(state_frame(st, params, replica=r, label="quench"))
    import pandas as pd

    df = pd.concat(frames, ignore_index=True)
    for i in infos:
        print(json.dumps(i))
    if args.out:
        write_table(df, args.out, _meta(args, params, T=args.T, quench=infos))
        print(f"wrote quenched states of {args.replicas} replica(s) to {args.out}")
    return 0


def _cmd_aqs(args) -> int:
    from ..observables import macro_summary
    from ..schema import MACRO
    from ..simulate import run_ensemble

    params = _params(args)
    snaps = parse_snapshots(args.snapshots, args.gamma_max)
    if "quench" in snaps and args.T is None:
        raise ValueError("--snapshots quench needs --T (the KMC quench temperature)")
    t0 = time.perf_counter()
    ens = run_ensemble(params, range(args.first_replica, args.first_replica + args.replicas), seed=args.seed,
                       variant=_variant(args),
                       gamma_max=args.gamma_max, T_quench=args.T, threads=args.threads, snapshots=snaps)
    wall = time.perf_counter() - t0
    meta = _meta(args, params, gamma_max=args.gamma_max, T_quench=args.T)
    if args.out:
        _write(ens.macro, args.out, meta, MACRO)
    if args.states_out:
        _write(ens.states, args.states_out, meta)
    if args.summary:
        s = macro_summary(ens.macro)
        s["seconds_per_run"] = float(ens.runs["seconds_aqs"].median())
        s["seconds_quench_per_run"] = float(ens.runs["seconds_quench"].median())
        s["wall_seconds"] = wall
        print(json.dumps(s))
    return 0


def _cmd_probe(args) -> int:
    import pandas as pd

    from ..observables import probe_frame
    from ..params import EPMParams
    from ..schema import PROBE, read_metadata, read_table
    from ..lattice_tables import state_from_frame
    from ..simulate import PURPOSE_PROBE_STATIONARY, Model, rng_for

    meta = read_metadata(args.states)
    if "params" not in meta:
        raise ValueError(f"{args.states}: no epcal parameters in the file metadata (not an epcal state table)")
    params = EPMParams(**meta["params"]).validate()
    df = read_table(args.states)
    for col in ("replica", "label", "element", "theta", "tau_c"):
        if col not in df.columns:
            raise ValueError(f"{args.states}: column '{col}' missing (expected an epcal state table)")
    n_list = int_list(args.n, "--n")
    alpha = float_list(args.alpha, "--alpha")
    for n in n_list:
        if not 1 <= n <= params.L:
            raise ValueError(f"--n {n}: patch larger than the lattice (L_EP = {params.L}) or < 1")
    from ..variants import Variant

    model = Model(params, variant=Variant(**meta["variant"]) if meta.get("variant") else Variant())
    frames = []
    for (rep, label), g in df.groupby(["replica", "label"], sort=True):
        if args.label and label != args.label:
            continue
        st = state_from_frame(g, model)
        rng = rng_for(params, args.seed, int(rep), PURPOSE_PROBE_STATIONARY + 1 + int(st.step))
        out, corners = model.probe(st, rng, n_list, alpha, stride=args.stride)
        state_name = "quench" if label == "quench" else "stationary"
        frames.append(probe_frame(out, state=state_name, replica=int(rep), corners=corners, L=params.L,
                                  l=params.l, n_list=n_list, alpha_deg=alpha).assign(label=label))
    if not frames:
        raise ValueError(f"{args.states}: no state with label {args.label!r}")
    res = pd.concat(frames, ignore_index=True)
    if args.out:
        from .. import code_version

        _write(res, args.out, {"params": params.as_dict(), "variant": model.variant.as_dict(), "seed": args.seed,
                               "code_version": code_version(), "states": str(args.states), "n": n_list,
                               "alpha": alpha}, PROBE)
    else:
        print(res.groupby(["state", "n", "alpha"])[["tau_i", "tau_c", "delta_tau_c", "drop_tau_c"]].mean())
    return 0


def _cmd_bauschinger(args) -> int:
    from ..bauschinger import run_bauschinger

    params = _params(args)
    df = run_bauschinger(params, range(args.first_replica, args.first_replica + args.replicas), seed=args.seed,
                         variant=_variant(args),
                         gamma_max=args.gamma_max, T_quench=args.T, strain=args.strain, threads=args.threads)
    if args.out:
        _write(df, args.out, _meta(args, params, gamma_max=args.gamma_max, T_quench=args.T, strain=args.strain))
    else:
        import numpy as np

        from ..observables import loading_curve

        grid = np.linspace(0, args.strain, 11)
        for br in ("forward", "reverse"):
            print(br, " ".join(f"{v:.3f}" for v in loading_curve(df, br, grid)))
    return 0


def _cmd_rms(args) -> int:
    from ..observables import rms_deviation
    from ..schema import MACRO, read_table

    df = read_table(args.macro, MACRO)
    windows = float_list(args.windows, "--windows")
    r = rms_deviation(df, windows, gamma_min=args.gamma_min)
    if args.out:
        from .. import code_version

        _write(r, args.out, {"source": str(args.macro), "code_version": code_version()})
    else:
        print(r.to_string(index=False))
    return 0


def _cmd_size_scaling(args) -> int:
    import dataclasses

    import pandas as pd

    from ..observables import macro_summary
    from ..simulate import run_ensemble

    base = _params(args)
    rows = []
    for L in int_list(args.sizes, "--sizes"):
        p = dataclasses.replace(base, L=L).validate()
        ens = run_ensemble(p, range(args.first_replica, args.first_replica + args.replicas), seed=args.seed,
                           variant=_variant(args),
                           gamma_max=args.gamma_max, T_quench=args.T, threads=args.threads)
        per = [macro_summary(g)["sigma_std"] for _, g in ens.macro.groupby("replica")]
        rows.append({"L_EP": L, "domain_length": L * p.l, "sigma_std": float(np.mean(per)),
                     "sigma_std_sem": float(np.std(per, ddof=1) / np.sqrt(len(per))) if len(per) > 1 else np.nan,
                     "sigma_mean": macro_summary(ens.macro)["sigma_mean"]})
    df = pd.DataFrame(rows)
    slope = np.polyfit(np.log(df.domain_length), np.log(df.sigma_std), 1)[0] if len(df) > 1 else np.nan
    df["exponent"] = slope
    print(df.to_string(index=False))
    print(f"std(Sigma_ext) ~ L^{slope:.3f}   (paper: L^-0.94)")
    if args.out:
        _write(df, args.out, _meta(args, base, sizes=args.sizes, exponent=slope))
    return 0


def register(sub) -> None:
    p = sub.add_parser("kernel", help="FEM stress kernel, Eshelby tensor S and slip stiffness f(theta)",
                       description="Compute (and cache) the periodic FEM stress kernel of an L_EP x L_EP "
                                   "lattice; print the element's Eshelby tensor S and f(theta) at "
                                   "theta = 0, 22.5, 45, 67.5 degrees.")
    _model_options(p, full=False)
    p.add_argument("--out", default=None, help="optional .npz with kernel, S, C, f")
    p.set_defaults(func=_cmd_kernel)

    p = sub.add_parser("quench", help="KMC thermal quench (appendix A.3) of random initial states",
                       description="Thermal KMC at temperature T to stationarity, then T = 0 relaxation; "
                                   "writes the quenched states (pre-stress and slip systems) as parquet.")
    _model_options(p)
    p.add_argument("--T", type=float, required=True, help="KMC temperature (stress units, V_a = 1)")
    p.set_defaults(func=_cmd_quench)

    p = sub.add_parser("aqs", help="AQS simple shear runs (section 3.4): stress-strain tables",
                       description="Athermal quasistatic simple shear with dgamma = 1e-4 (elastic steps "
                                   "skipped exactly) from a random or KMC-quenched state.")
    _model_options(p)
    p.add_argument("--gamma-max", type=float, default=2.0, help="final external strain, default 2")
    p.add_argument("--T", type=float, default=None, help="quench temperature; default: random initial state")
    p.add_argument("--snapshots", default="", help="comma list of strains (and/or 'quench') for state snapshots")
    p.add_argument("--states-out", default=None, help="parquet file for the state snapshots")
    p.add_argument("--summary", action="store_true",
                   help="print one JSON line: sigma_mean, sigma_std, drop_mean, drops_per_strain, "
                        "slips_per_run, seconds_per_run")
    p.set_defaults(func=_cmd_aqs)

    p = sub.add_parser("bauschinger", help="reload test of section 5: unload, then load forward and in reverse",
                       description="Drive to the stationary state, unload until Sigma_ext <= 0, then load "
                                   "forward (alpha = 0) and in reverse (alpha = 90) with the strain origin reset "
                                   "(Fig. 5d).")
    _model_options(p)
    p.add_argument("--gamma-max", type=float, default=2.0, help="strain of the stationary state, default 2")
    p.add_argument("--T", type=float, default=None, help="quench temperature; default: random initial state")
    p.add_argument("--strain", type=float, default=0.1, help="reload strain, default 0.1")
    p.set_defaults(func=_cmd_bauschinger)

    p = sub.add_parser("size-scaling", help="finite-size scaling of std(Sigma_ext) (Fig. 5b)",
                       description="Stationary std of the external stress for several lattice sizes L_EP at "
                                   "fixed element length, and the fitted exponent of std ~ L^x (paper: -0.94).")
    _model_options(p)
    p.add_argument("--sizes", default="8,11,15,23", help="lattice sizes L_EP (comma list)")
    p.add_argument("--gamma-max", type=float, default=2.0, help="final strain, default 2")
    p.add_argument("--T", type=float, default=None, help="quench temperature; default: random initial state")
    p.set_defaults(func=_cmd_size_scaling)

    p = sub.add_parser("rms", help="root-mean-square deviation r(dgamma) of the external stress, Eq. (10)",
                       description="r(dgamma): std of Sigma_xy^ext in strain windows of width dgamma, averaged "
                                   "over the stationary regime (Fig. 5a), from a macro table.")
    p.add_argument("macro", help="macro table (parquet, macro schema)")
    p.add_argument("--windows", default="0.0002,0.0005,0.001,0.002,0.005,0.01,0.02,0.05,0.1,0.2,0.5",
                   help="window widths dgamma (comma list)")
    p.add_argument("--gamma-min", type=float, default=0.5, help="start of the stationary regime")
    p.add_argument("--out", default=None, help="output parquet")
    p.set_defaults(func=_cmd_rms)

    p = sub.add_parser("probe", help="local shear tests (section 3.5) on state snapshots",
                       description="Probe states written by 'epcal aqs --states-out' (or 'epcal quench') "
                                   "with n x n patches at every position (or a stride) and orientations alpha.")
    p.add_argument("--states", required=True, help="state parquet from epcal aqs/quench")
    p.add_argument("--label", default=None, help="only states with this label (e.g. 'gamma=2', 'quench')")
    p.add_argument("--n", default="1-8", help="patch sizes, e.g. '8' or '1-8' (default 1-8)")
    p.add_argument("--alpha", default=",".join(str(a) for a in range(0, 180, 15)),
                   help="orientations in degrees (default 0,15,...,165)")
    p.add_argument("--stride", type=int, default=1, help="patch corners every STRIDE elements (default 1)")
    p.add_argument("--seed", type=int, default=0, help="base seed of the avalanche random streams")
    p.add_argument("--out", default=None, help="output parquet (probe schema)")
    p.set_defaults(func=_cmd_probe)
