"""Speed of the atomistic reference at the paper's scale (10^4 atoms).

    nice -n 10 python benchmarks/reference/bench_reference.py [--n-atoms 10000] [--out results.json]
    python benchmarks/reference/bench_reference.py --glass bench_glass.npz --preshear 0.075 ...  (flowing state)
    mpirun -np 2 python benchmarks/reference/bench_reference.py ...   (LAMMPS on 2 ranks; rank 0 reports)

1. a glass of N atoms (short liquid run: the timing, not the glass quality, matters here);
2. AQS per-step time and stress error of several minimization settings, each
   from the same glass for ``--steps`` steps: LAMMPS CG from the affine map at
   ftol 1e-10 (baseline), etol 1e-14 (baseline), and epcal's setting (first
   guess = previous non-affine displacement, loose force tolerance).  Stress
   error = |sigma_xy - sigma_xy after re-minimizing that state to ftol 1e-10|,
   sampled every ``--sample`` steps;
3. local yield stress tests at R = 30 (coarse steps + bisection), time per test.
"""
from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np


def warm_up(glass):
    """Compile (or load from numba's cache) every kernel of the newton solver outside the timings:
    a factorization and a few iterations of the compiled descent on the glass itself."""
    from epcal.reference.aqs import AQS
    from epcal.reference.lammps_driver import Lammps

    with Lammps(glass) as lmp:
        a = AQS(lmp, ftol=1e-3, solver="newton")
        a.avalanche_maxiter = 3
        x = lmp.positions()
        a._newton(x, maxiter=2)
        a._descend(x)


def aqs_variant(glass, steps, sample, **kw):
    from epcal.reference.aqs import AQS
    from epcal.reference.lammps_driver import Lammps

    if kw.get("solver") == "newton":
        warm_up(glass)
    lmp = Lammps(glass)
    a = AQS(lmp, **kw)
    t, it, err, cpu = [], [], [], []
    for k in range(1, steps + 1):
        c0 = time.process_time()
        r = a.step()
        cpu.append(time.process_time() - c0)
        t.append(r["seconds"])
        it.append(r["iterations"])
        if k % sample == 0:
            s = lmp.stress()[2]
            st = lmp.state()
            lmp.minimize(etol=0.0, ftol=1e-10, maxiter=200000)
            err.append(abs(lmp.stress()[2] - s))
            lmp.set_positions(st.pos)
            lmp.evaluate()
    lmp.close()
    t = np.array(t)
    extra = {"factorizations": a.n_factor, "factor_seconds": getattr(a, "t_factor", None),
             "precond_cutoff": getattr(a, "precond_cutoff", None),
             "avalanche_steps": a.n_fallback, "cg_finishes": getattr(a, "n_cg", None)} \
        if kw.get("solver") == "newton" else {}
    extra["seconds_per_step_max"] = float(t.max())
    extra["steps_over_0.2s"] = int((t > 0.2).sum())
    top = np.argsort(t)[::-1][:6]
    extra["slowest_steps"] = [(int(k) + 1, round(float(t[k]), 3), int(it[k])) for k in top]  # (step, s, iterations)
    extra["seconds_without_slowest_5"] = float(np.sort(t)[:-5].mean()) if len(t) > 5 else None
    return {"settings": {k: v for k, v in kw.items()}, "steps": steps, **extra,
            "seconds_per_step_mean": float(t.mean()), "seconds_per_step_median": float(np.median(t)),
            "cpu_seconds_per_step_mean": float(np.mean(cpu)), "cpu_seconds_per_step_median": float(np.median(cpu)),
            "cg_iterations_mean": float(np.mean(it)), "cg_iterations_median": float(np.median(it)),
            "stress_error_max": float(max(err)) if err else None,
            "stress_error_median": float(np.median(err)) if err else None}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-atoms", type=int, default=10000)
    ap.add_argument("--t-equil", type=float, default=20.0)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--sample", type=int, default=10)
    ap.add_argument("--baseline-steps", type=int, default=5)
    ap.add_argument("--R", type=float, default=30.0)
    ap.add_argument("--n-lys", type=int, default=4)
    ap.add_argument("--skip-baseline", action="store_true")
    ap.add_argument("--skip-aqs", action="store_true")
    ap.add_argument("--ftols", type=float, nargs="*", default=[1e-2, 3e-3, 1e-3],
                    help="force tolerances of the fast AQS variants")
    ap.add_argument("--newton-ftols", type=float, nargs="*", default=[1e-4],
                    help="force tolerances of the AQS variants with the modified-Newton solver")
    ap.add_argument("--glass", help="npz of a glass to reuse (else made and saved to bench_glass.npz)")
    ap.add_argument("--preshear", type=float, default=0.0,
                    help="first shear the glass to this strain (AQS, dgamma 5e-4, newton solver, ftol 1e-3; then "
                         "re-minimized to ftol 1e-8) and time the flowing state; saved to --preshear-out")
    ap.add_argument("--preshear-out", default="bench_flow.npz")
    ap.add_argument("--out", default="bench_reference.json")
    args = ap.parse_args()

    from epcal import code_version
    from epcal.reference.lammps_driver import State, lammps_version
    from epcal.reference.glass import prepare_glass
    from epcal.reference.lys import Patch

    from epcal.reference.lammps_driver import is_root, world_size

    if not is_root():  # under mpirun: every rank runs the benchmark, rank 0 reports
        import builtins
        builtins.print = lambda *a, **k: None
    import numba

    out = {"mpi_ranks": world_size(), "numba_threads": numba.get_num_threads(), "code_version": code_version(),
           "lammps": lammps_version(), "machine": platform.node(),
           "processor": platform.processor(), "n_atoms": args.n_atoms}
    if args.glass:
        glass = State.load(args.glass)
    else:
        t0 = time.perf_counter()
        glass, info = prepare_glass(args.n_atoms, 4242, args.t_equil, n_trace=10)
        out["prepare_seconds"] = time.perf_counter() - t0
        out["moduli"] = info["moduli"]
        glass.save("bench_glass.npz")
    if args.preshear > 0:
        from epcal.reference.aqs import AQS
        from epcal.reference.lammps_driver import Lammps

        t0 = time.perf_counter()
        with Lammps(glass) as lmp:
            a = AQS(lmp, dgamma=5e-4, ftol=1e-3, solver="newton")
            for _ in range(int(round(args.preshear / 5e-4))):
                a.step()
            lmp.minimize(etol=0.0, ftol=1e-8, maxiter=200000)
            glass = lmp.state()
            out["preshear"] = {"gamma": args.preshear, "sxy": float(lmp.stress()[2]),
                               "seconds": time.perf_counter() - t0}
        if is_root():
            glass.save(args.preshear_out)
    print(json.dumps(out), flush=True)
    res = []
    variants = [dict(ftol=f, extrapolate=True) for f in args.ftols]
    variants += [dict(ftol=f, extrapolate=True, solver="newton") for f in args.newton_ftols]
    if not args.skip_baseline:
        variants = [dict(ftol=1e-10, extrapolate=False), dict(ftol=0.0, etol=1e-14, extrapolate=False)] + variants
    for v in ([] if args.skip_aqs else variants):
        n = args.baseline_steps if not v.get("extrapolate") else args.steps
        r = aqs_variant(glass, n, min(args.sample, n), **v)
        print(json.dumps(r), flush=True)
        res.append(r)
    out["aqs"] = res
    # local yield stress tests at R
    rng = np.random.default_rng(1)
    lys = []
    for i in range(args.n_lys):
        c = rng.uniform(0, glass.lx, 2)
        t0 = time.perf_counter()
        c0 = time.process_time()
        with Patch(glass, c, args.R, ftol=1e-7) as p:
            setup = time.perf_counter() - t0
            for alpha in (0.0, 90.0):
                nw = getattr(p, "newton", None)
                n0 = (nw.n_factor if nw else 0, p.n_fallback, getattr(p, "n_newton_fail", 0))
                c0 = time.process_time()
                r = p.probe(alpha, coarse=20)
                cpu = time.process_time() - c0
                row = {"patch": i, "R": args.R, "n_atoms_patch": len(p.X0), "n_mobile": p.n_mobile, "alpha": alpha,
                       "setup_seconds": setup, "seconds": r.seconds if r else None, "cpu_seconds": cpu,
                       "minimizations": r.minimizations if r else None, "gamma_c": r.gamma_c if r else None,
                       "tau_c": r.tau_c if r else None, "drop_tau_c": (r.tau_c - r.tau_f) if r else None,
                       "factorizations": (nw.n_factor if nw else 0) - n0[0], "cg_fallbacks": p.n_fallback - n0[1],
                       "newton_rejections": getattr(p, "n_newton_fail", 0) - n0[2]}
                print(json.dumps(row), flush=True)
                lys.append(row)
    if lys:
        sec = [r["seconds"] for r in lys if r["seconds"] is not None]
        cpu = [r["cpu_seconds"] for r in lys if r["seconds"] is not None]
        out["lys_summary"] = {"tests": len(sec), "wall_median": float(np.median(sec)), "wall_min": min(sec),
                              "wall_max": max(sec), "cpu_median": float(np.median(cpu)), "cpu_min": min(cpu),
                              "cpu_max": max(cpu)}
        print(json.dumps(out["lys_summary"]), flush=True)
    out["lys"] = lys
    if not is_root():
        return
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
