"""``epcal reference ...``: the atomistic reference (LAMMPS) and the import check.

Verbs (called by workflow/rules/reference.smk):

* ``prepare``  one glass sample: random insertion, NVT liquid at T = 0.351,
  quench, CG minimization, moduli G and B
* ``shear``    AQS simple shear of a glass (resumable from its checkpoint)
* ``probe``    local yield stress tests of one state (resumable)
* ``tables``   the reference directory (macro, macro_steps, probe, reference.yaml)
* ``check``    validate any reference directory (e.g. a user's own MD tables)

The campaign verbs (``collect``, ``restore``, ``assemble``, ``pressure-sensitivity``): :mod:`epcal.cli.campaign`.

``prepare``, ``shear`` and ``probe`` run as they are on one core, or under MPI
(``mpirun -np N epcal reference ...``, ``srun -n N ...``): LAMMPS then spreads each
instance over the N ranks (no mpi4py needed: LAMMPS initializes MPI), every rank
runs the same Python code, and only rank 0 writes files and logs.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("reference", help="atomistic reference data (LAMMPS) and import check",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    vs = p.add_subparsers(dest="reference_verb", metavar="ACTION", required=True)

    q = vs.add_parser("check", help="validate a reference directory; report every problem with file, column, row",
                      description="The pipeline's own check (epcal.refdir): the table contracts, reference.yaml "
                                  "and the probe rows the calibration reads (losses.R, alpha_plus/minus; quench.R, "
                                  "quench.alpha) and, with --config, at least two values of each macroscale "
                                  "observable beyond its losses.gamma_min.  Without --config: the probe rows of the "
                                  "default config (R auto, alpha 0 and 90, quench calibrated).")
    q.add_argument("dir", help="directory with macro.parquet, probe.parquet, reference.yaml")
    q.add_argument("--config", default=None,
                   help="a pipeline config file: check against its losses and quench sections")
    q.set_defaults(func=cmd_check)

    q = vs.add_parser("prepare", help="prepare one glass sample (LAMMPS)")
    q.add_argument("--n-atoms", type=int, required=True)
    q.add_argument("--replica", type=int, required=True)
    q.add_argument("--seed", type=int, required=True,
                   help="base seed; the sample's seed is derived from (seed, replica)")
    q.add_argument("--t-equil", type=float, required=True, help="NVT run length at T (LJ time units)")
    q.add_argument("--temperature", type=float, default=0.351)
    q.add_argument("--dt", type=float, default=0.005)
    q.add_argument("--quench-ftol", type=float, default=1e-10, help="CG tolerance on the force 2-norm")
    q.add_argument("--n-trace", type=int, default=100,
                   help="samples of the liquid's energy and F_s(q, t) trace (spacing t_equil / n_trace)")
    q.add_argument("--out-state", required=True, help="npz of the quenched glass")
    q.add_argument("--out-info", required=True, help="json: diagnostics, moduli, seeds")
    q.add_argument("--out-trace", required=True, help="parquet: energy and F_s(q,t) trace of the liquid")
    q.set_defaults(func=cmd_prepare)

    q = vs.add_parser("shear", help="AQS simple shear of one glass (resumable)")
    q.add_argument("--state", required=True, help="npz of the quenched glass")
    q.add_argument("--replica", type=int, required=True)
    q.add_argument("--gamma-max", type=float, required=True)
    q.add_argument("--dgamma", type=float, default=1e-4)
    q.add_argument("--ftol", type=float, default=1e-4, help="tolerance on the force 2-norm per step (LAMMPS fnorm)")
    q.add_argument("--solver", choices=("cg", "newton"), default="cg",
                   help="per-step relaxation: LAMMPS CG from the previous non-affine displacement, or quasi-Newton "
                        "(L-BFGS preconditioned by a reused sparse Hessian factorization; compiled descent "
                        "through avalanches; force kernel on NUMBA_NUM_THREADS threads)")
    q.add_argument("--checkpoint", required=True, help="npz checkpoint (resumed if it exists)")
    q.add_argument("--checkpoint-every", type=int, default=500)
    q.add_argument("--out-steps", required=True, help="parquet, one row per AQS step")
    q.add_argument("--out-state", required=True, help="npz of the final (stationary) state")
    q.add_argument("--snapshot", nargs=2, action="append", default=[], metavar=("GAMMA", "PATH"),
                   help="also save the state at external strain GAMMA (< gamma-max, a multiple of dgamma) "
                        "as PATH; repeatable.  Kept next to the checkpoint until the run ends, so a resumed "
                        "run still delivers it")
    q.set_defaults(func=cmd_shear)

    q = vs.add_parser("probe", help="local yield stress tests on one state (resumable)")
    q.add_argument("--state", required=True)
    q.add_argument("--state-name", choices=("quench", "stationary"), required=True)
    q.add_argument("--replica", type=int, required=True)
    q.add_argument("--R", type=float, nargs="+", required=True)
    q.add_argument("--alpha", type=float, nargs="+", required=True, help="orientations in degrees")
    q.add_argument("--alpha-by-R", action="append", default=[], metavar="R:A1,A2,...",
                   help="other orientations at one of the radii (e.g. 30:0,15,30,...,165); repeatable")
    q.add_argument("--grid", type=float, required=True, help="grid spacing of patch centres")
    q.add_argument("--coarse", type=int, default=20, help="coarse step in units of dgamma")
    q.add_argument("--ftol", type=float, default=1e-8)
    q.add_argument("--solver", choices=("newton", "cg"), default="newton",
                   help="patch relaxation: modified Newton with the sparse Hessian (CG fallback) or LAMMPS CG only")
    q.add_argument("--gamma-max", type=float, default=0.5, help="give up a test beyond this local strain")
    q.add_argument("--chunk", type=int, default=0,
                   help="this job's share of the grid: centres ic with ic %% n == chunk")
    q.add_argument("--n-chunks", type=int, default=1)
    q.add_argument("--checkpoint", required=True, help="parquet of finished patches (resumed if it exists)")
    q.add_argument("--out", required=True)
    q.set_defaults(func=cmd_probe)

    q = vs.add_parser("bauschinger", help="Bauschinger test of one stationary state: unload to zero stress, "
                      "reload forward and in reverse (section 5, Fig. 5d)")
    q.add_argument("--state", required=True, help="npz of a stationary state (from 'shear --out-state')")
    q.add_argument("--replica", type=int, required=True)
    q.add_argument("--strain", type=float, default=0.1, help="reloading strain of each branch")
    q.add_argument("--dgamma", type=float, default=1e-4)
    q.add_argument("--ftol", type=float, default=5e-4, help="tolerance on the force 2-norm per step (LAMMPS fnorm)")
    q.add_argument("--out", required=True, help="parquet, one row per step (branch unload | forward | reverse)")
    q.set_defaults(func=cmd_bauschinger)

    q = vs.add_parser("tables", help="assemble the reference directory from the per-sample results")
    q.add_argument("--steps", nargs="+", required=True)
    q.add_argument("--probes", nargs="+", required=True)
    q.add_argument("--infos", nargs="+", required=True)
    q.add_argument("--bauschinger", nargs="*", default=[], help="per-sample Bauschinger tables (optional)")
    q.add_argument("--config", required=True, help="the atomistic config (provenance): inline JSON or a JSON file")
    q.add_argument("--d-threshold", type=float, default=0.05)
    q.add_argument("--command", default="", help="command line recorded in the provenance")
    q.add_argument("--wall-times", nargs="*", default=[], help="snakemake benchmark files (provenance)")
    q.add_argument("--out", required=True, help="reference directory")
    q.set_defaults(func=cmd_tables)

    from .campaign import register_verbs

    register_verbs(vs)


# ------------------------------------------------------------------------------------------
def _meta(args, **extra) -> dict:
    from epcal import code_version

    params = {k: v for k, v in vars(args).items() if k not in ("func",) and not callable(v)}
    return {"code_version": code_version(), "parameters": params, **extra}


def _check_needs(config):
    """The needs of a pipeline config file (its losses and quench sections), or the default config's."""
    import yaml

    from epcal.refneeds import DEFAULT_NEEDS, needs_from_config

    if config is None:
        return DEFAULT_NEEDS
    try:
        cfg = yaml.safe_load(Path(config).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"--config {config}: cannot be read as YAML ({exc})") from None
    if not isinstance(cfg, dict):
        raise ValueError(f"--config {config}: expected a pipeline config (a mapping)")
    return needs_from_config(cfg)


def cmd_check(args) -> int:
    from epcal.refdir import inspect_reference_dir

    rep = inspect_reference_dir(args.dir, _check_needs(args.config))
    if rep.problems:
        raise ValueError(f"{len(rep.problems)} problem(s):\n" + "\n".join(rep.problems))
    print(f"{args.dir}: OK (macro.parquet, probe.parquet, reference.yaml follow the epcal schema)")
    for note in rep.notes:
        print(f"  {note}")
    return 0


def cmd_prepare(args) -> int:
    import pandas as pd

    from epcal.atomicio import write_text
    from epcal.reference import glass
    from epcal.reference.lammps_driver import is_root, lammps_version, world_size
    from epcal.schema import write_table

    seed = glass.sample_seed(args.seed, args.replica)
    g, info = glass.prepare_glass(args.n_atoms, seed, args.t_equil, temperature=args.temperature, dt=args.dt,
                                  quench_ftol=args.quench_ftol, n_trace=args.n_trace)
    version = lammps_version()  # collective under MPI: every rank creates the instance
    if not is_root():
        return 0
    Path(args.out_state).parent.mkdir(parents=True, exist_ok=True)
    g.save(args.out_state, seed=seed, replica=args.replica)
    tr = info.pop("trace")
    diag = tr["diagnostics"]
    write_table(pd.DataFrame({k: tr[k] for k in ("time", "pe_per_atom", "temperature", "fs", "msd")}),
                args.out_trace, _meta(args, seed=seed))
    out = {"replica": args.replica, "seed": seed, "n_atoms": g.n, "box": [g.lx, g.ly, g.xy],
           "equilibration": diag, "lammps_version": version, "mpi_ranks": world_size(), **_meta(args),
           **info}
    write_text(args.out_info, json.dumps(out, indent=1, default=_jd))
    print(f"glass replica {args.replica}: seed {seed}, G={info['moduli']['G']:.3f} B={info['moduli']['B']:.3f}, "
          f"plateau={diag['energy_plateau']} window/tau_alpha={diag['window_over_tau_alpha']:.1f}, "
          f"quench fnorm={info['quench']['fnorm2']:.2e} in {info['seconds_total']:.0f}s")
    return 0


def _jd(o):
    import numpy as np

    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    raise TypeError(type(o))


def cmd_shear(args) -> int:
    from epcal.atomicio import copy_file
    from epcal.reference import shear
    from epcal.reference.lammps_driver import State, is_root, world_size
    from epcal.schema import write_table

    n_steps = int(round(args.gamma_max / args.dgamma))
    ck = Path(args.checkpoint)
    snaps = {}  # step -> (side file next to the checkpoint, output path)
    for g, path in args.snapshot:
        k = _strain_step(g, args.dgamma, "--snapshot")
        if not 0 < k < n_steps:
            raise ValueError(f"--snapshot {g}: must lie strictly between 0 and --gamma-max {args.gamma_max}")
        snaps[k] = (ck.with_name(f"{ck.stem}.step{k}.npz"), Path(path))
    if ck.exists():
        st, start, rows, u_prev = shear.resume(ck)
        if is_root():
            print(f"resuming from step {start} ({ck})")
    else:
        st, start, rows, u_prev = State.load(args.state), 0, [], None
    missing = [str(side) for k, (side, _) in snaps.items() if k <= start and not side.exists()]
    if missing:
        raise ValueError(f"{ck}: resumed at step {start}, but the snapshot(s) {', '.join(missing)} taken before it "
                         "are missing; delete the checkpoint to rerun from the start")
    t0 = time.perf_counter()
    df, final = shear.run_aqs(st, n_steps, dgamma=args.dgamma, ftol=args.ftol, replica=args.replica,
                            start_step=start, checkpoint=ck, checkpoint_every=args.checkpoint_every,
                            snapshots={k: side for k, (side, _) in snaps.items() if k > start},
                            rows=rows, u_prev=u_prev, log=sys.stdout, solver=args.solver)
    wall = time.perf_counter() - t0
    if not is_root():
        return 0
    for side, out in snaps.values():
        copy_file(side, out)
    final.save(args.out_state, step=n_steps, gamma=n_steps * args.dgamma)
    write_table(df, args.out_steps, _meta(args, wall_seconds=wall, mpi_ranks=world_size()))
    done = df.iloc[start + 1:] if len(df) > start + 1 else df
    print(f"AQS replica {args.replica}: {n_steps} steps, {1e3 * done['seconds'].mean():.1f} ms/step, "
          f"{done['iterations'].mean():.1f} CG iterations/step")
    return 0


def _strain_step(gamma, dgamma: float, option: str) -> int:
    """The AQS step of external strain ``gamma`` (a multiple of ``dgamma``, else an error naming ``option``)."""
    g = float(gamma)
    k = int(round(g / dgamma))
    if abs(k * dgamma - g) > 1e-9 * max(1.0, abs(g)):
        raise ValueError(f"{option} {gamma}: not a multiple of the strain step {dgamma}")
    return k


def cmd_bauschinger(args) -> int:
    import numpy as np

    from epcal.reference.bauschinger import bauschinger_test
    from epcal.reference.lammps_driver import State, is_root
    from epcal.schema import write_table

    st = State.load(args.state)
    gamma0 = float(np.load(args.state).get("gamma", 0.0))
    t0 = time.perf_counter()
    df = bauschinger_test(st, args.replica, gamma0, strain=args.strain, dgamma=args.dgamma, ftol=args.ftol,
                          log=sys.stdout if is_root() else None)
    if is_root():
        write_table(df, args.out, _meta(args, wall_seconds=time.perf_counter() - t0, gamma0=gamma0))
        print(f"Bauschinger test replica {args.replica}: {len(df)} steps -> {args.out}")
    return 0


def cmd_probe(args) -> int:
    import pandas as pd

    from epcal.atomicio import atomic_path, write_text
    from epcal.reference import lys
    from epcal.reference.lammps_driver import State, is_root, world_size
    from epcal.schema import PROBE, write_table

    root = is_root()  # under MPI only rank 0 writes (checkpoints, output, log)

    alphas = _alpha_by_R(args.R, args.alpha, args.alpha_by_R)
    st = State.load(args.state)
    gamma_ext = float(st.meta.get("gamma", 0.0)) if args.state_name == "stationary" else 0.0
    ck = Path(args.checkpoint)
    ck_done = ck.with_name(ck.name + ".done.json")
    ck_rows: list[dict] = []
    done: set = set()
    if ck.exists() and ck_done.exists():
        ck_rows = pd.read_parquet(ck).to_dict("records")
        done = {(int(i), float(r)) for i, r in json.loads(ck_done.read_text())}
        if root:
            print(f"resuming: {len(done)} patches done, {len(ck_rows)} tests")

    def on_patch(key, new_rows):
        ck_rows.extend({**r, "patch": key[0]} for r in new_rows)
        done.add(key)
        if not root:
            return
        with atomic_path(ck) as tmp:
            pd.DataFrame(ck_rows, columns=[*lys.PROBE_COLUMNS, "patch"]).to_parquet(tmp)
        # rows first, then the list of done patches: a crash in between only redoes a patch
        write_text(ck_done, json.dumps(sorted(done)))

    t0 = time.perf_counter()
    k_max = int(round(args.gamma_max / 1e-4))
    n_patch = 0
    for key, new in lys.probe_state(st, args.state_name, args.replica, args.R, alphas, args.grid,
                                    coarse=args.coarse, ftol=args.ftol, k_max=k_max, done=done,
                                    on_patch=on_patch, log=sys.stdout if root else None, chunk=args.chunk,
                                    solver=args.solver, n_chunks=args.n_chunks):
        n_patch += 1
        if root and n_patch % 10 == 0:
            print(f"{len(done)} patches done, {time.perf_counter() - t0:.0f} s", flush=True)
    df = pd.DataFrame(ck_rows, columns=[*lys.PROBE_COLUMNS, "patch"])
    df = df.drop_duplicates(subset=["patch", "R", "alpha"], keep="last").drop(columns="patch")
    df = df.astype({"replica": "int64", "state": str}).reset_index(drop=True)
    df["gamma_ext"] = gamma_ext
    if not root:
        return 0
    write_table(df, args.out, _meta(args, wall_seconds=time.perf_counter() - t0, mpi_ranks=world_size()), PROBE)
    print(f"probe {args.state_name} replica {args.replica}: {len(df)} tests")
    return 0


def _alpha_by_R(R_values, alpha, specs) -> dict:
    """{R: orientations}: ``alpha`` at every R, replaced at single radii by ``--alpha-by-R R:A1,A2,...``."""
    out = {float(R): [float(a) for a in alpha] for R in R_values}
    for spec in specs:
        try:
            r, vals = spec.split(":", 1)
            r, vals = float(r), [float(a) for a in vals.split(",") if a.strip()]
        except ValueError:
            raise ValueError(f"--alpha-by-R {spec!r}: expected R:A1,A2,... (numbers)") from None
        if r not in out:
            raise ValueError(f"--alpha-by-R {spec!r}: R = {r:g} is not one of --R {' '.join(f'{x:g}' for x in out)}")
        if not vals:
            raise ValueError(f"--alpha-by-R {spec!r}: no orientations given")
        out[r] = vals
    return out


def cmd_tables(args) -> int:
    import pandas as pd

    from epcal.reference.assemble import write_reference_dir

    cfg = json.loads(args.config if args.config.lstrip().startswith("{") else Path(args.config).read_text())
    steps = pd.concat([pd.read_parquet(p) for p in args.steps], ignore_index=True)
    probes = pd.concat([pd.read_parquet(p) for p in args.probes], ignore_index=True)
    infos = [json.loads(Path(p).read_text()) for p in args.infos]
    # equilibration traces of the liquids (energy plateau, F_s decorrelation), when next to the infos
    traces = []
    for p, d in zip(args.infos, infos):
        tp = Path(p).with_name(f"equilibration_{d['replica']}.parquet")
        if tp.exists():
            traces.append(pd.read_parquet(tp).assign(replica=int(d["replica"])))
    bau = pd.concat([pd.read_parquet(p) for p in args.bauschinger], ignore_index=True) if args.bauschinger else None
    wall = {}
    for p in args.wall_times:
        try:
            wall[Path(p).name] = float(pd.read_csv(p, sep="\t")["s"].iloc[0])
        except (OSError, KeyError, ValueError, IndexError, pd.errors.ParserError):
            continue  # the benchmark file of an interrupted job: no wall time recorded
    ref = write_reference_dir(args.out, steps, probes, infos, cfg, args.d_threshold, traces=traces,
                              bauschinger=bau, command=args.command, wall=wall)
    print(f"reference written to {args.out}: {ref['n_avalanches']} avalanches, "
          f"{ref['n_probe_tests']} probe tests, G={ref['shear_modulus']:.3f}, B={ref['bulk_modulus']:.3f}")
    return 0
