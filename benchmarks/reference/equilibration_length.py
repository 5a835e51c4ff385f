"""How must the 2D binary LJ liquid be prepared to be *at equilibrium* at T = 0.351, and how long does it take?

Background: liquids made by random insertion and run directly at T = 0.351
(``glass.prepare_glass``) are still aging after 2000 LJ time units: the energy
per atom falls as a + b ln t (b ~ -0.017) and tau_alpha grows with the age
(resources/reference/README.md, "Equilibration").  The paper quenches an *equilibrated*
supercooled liquid at T = 0.351 = 1.132 T_g.

Protocol (all LAMMPS work through the project's own code: ``glass.random_insertion``,
``glass.sample_seed``, ``engine.Lammps``, ``glass._unwrapped``, ``glass.fs_self``,
``glass.equilibration_diagnostics``):

1. random insertion at the paper's density and composition, seed
   ``sample_seed(--seed, --replica)`` (default base seed 20261202, replica 0, i.e. the
   CLI's derivation), then the same overlap-removing CG as ``prepare_glass``
   (ftol = 1e-2 sqrt(N), 2000 iterations);
2. hot phase: velocities drawn at T_hot (seed ``sample_seed(seed, 0, 1)`` as in
   ``prepare_glass``), Nose-Hoover NVT at T_hot (default 0.5) for t_hot (default 300),
   sampled every ``--hot-every`` (0.5): pe per atom, temperature, pressure, and the
   two-time self-intermediate scattering function F_s(t_w, t_w + tau) (q = 2 pi, x and
   y averaged, centre-of-mass drift removed; all atoms and per species S / L) and MSD
   for the waiting times ``--hot-tw`` (default 0, 50, t_hot/2).  The sidecar gets
   ``equilibration_diagnostics`` of the hot run (energy plateau, tau_alpha from
   t_hot/2) -- tau_alpha at T = 0.5 should be a few time units;
3. cold phase: velocities rescaled to T (``velocity all scale``; t = 0 of this phase),
   new Nose-Hoover NVT at T (default 0.351, same tdamp) for t_total (default 8000),
   sampled every ``--every`` (5) -- and every ``--fine-every`` (0.5) during the first
   ``--fine-span`` (50) after each waiting time, so that the early decay of F_s is
   resolved -- with the same observables for the waiting times ``--tw`` (default
   0 500 1000 2000 4000 6000); each F_s / MSD window runs to tau = ``--tau-max`` (2000)
   or to the end of the run.  Unwrapped reference positions are stored at each t_w.

Equilibrium at T shows up as (i) pe(t) reaching a plateau (no ln t drift) and (ii)
F_s(t_w, t_w + tau) and MSD becoming independent of t_w (stationarity); the first
t_w after which they stop changing is the equilibration time.

Output (``--out``, required; a directory outside the work tree): ``trace_cold.parquet`` (rows = samples;
columns time, pe_per_atom, temperature, pressure, and for each waiting time W
``fs_twW``, ``fs_S_twW``, ``fs_L_twW``, ``msd_twW`` as functions of time (tau = time - W),
NaN outside the window), ``trace_hot.parquet`` (same columns for the hot phase) and
``trace.json`` (sidecar: parameters, seeds, LAMMPS version, git commit and dirty
files of the repository, wall time, progress, hot diagnostics, and a summary per
t_w: tau at F_s = 1/e and 0.1 (interpolated), MSD at tau = 10, 100, 1000, pe block
means).  The cold trace and the sidecar are rewritten atomically (tmp + rename)
every ``--write-every`` (500) time units, so a killed run leaves a valid partial
result; states (positions, velocities, types, box) are saved as npz at the end of the
hot phase, at each cold t_w and at the end (``states/``).

Run (one core, low priority, detached)::

    . /work/main/.venv/bin/activate
    OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 nohup setsid nice -n 19 \\
        python benchmarks/reference/equilibration_length.py --out /tmp/equil \\
        > /tmp/equil.log 2>&1 &

Quick check (a few tens of seconds)::

    python benchmarks/reference/equilibration_length.py --n-atoms 400 --t-hot 20 --hot-tw 0 10 \\
        --t-total 50 --tw 0 10 20 --tau-max 30 --write-every 20 --out /tmp/equil_tiny
"""
from __future__ import annotations

import argparse
import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))
from epcal.atomicio import write_text  # noqa: E402
from epcal.reference import glass  # noqa: E402
from epcal.reference import potential as pot  # noqa: E402
from epcal.reference.lammps_driver import Lammps, lammps_version  # noqa: E402
from epcal.schema import write_table  # noqa: E402


# ----------------------------------------------------------------------------- helpers
def git_info(repo: Path) -> dict:
    def run(*a):
        r = subprocess.run(["git", "-C", str(repo), *a], capture_output=True, text=True, timeout=10)
        return r.stdout.strip() if r.returncode == 0 else None

    status = run("status", "--porcelain")
    return {"commit": run("rev-parse", "HEAD"), "dirty": bool(status),
            "dirty_files": status.splitlines() if status else []}


def _thermo(lmp: Lammps, key: str) -> float:
    return float(lmp.lmp.get_thermo(key))


def _pressure(lmp: Lammps, temperature: float) -> float:
    """Total pressure: kinetic (2N - 2 degrees of freedom, 2D) + virial (the engine's virial-only compute)."""
    lx, ly, _ = lmp.box()
    sxx, syy, _ = lmp.stress()
    return float((2 * lmp.n - 2) * temperature / (2 * lx * ly) - 0.5 * (sxx + syy))


class TwoTime:
    """Unwrapped reference positions at each waiting time and the two-time observables."""

    def __init__(self, waits, tau_max: float, types: np.ndarray):
        self.waits = [float(w) for w in waits]
        self.tau_max = float(tau_max)
        self.refs: dict[float, np.ndarray] = {}
        self.masks = {"": slice(None), "S": types == 1, "L": types == 2}

    @staticmethod
    def tag(w: float) -> str:
        return f"{w:g}"

    def columns(self) -> list[str]:
        out = []
        for w in self.waits:
            t = self.tag(w)
            out += [f"fs_tw{t}", f"fs_S_tw{t}", f"fs_L_tw{t}", f"msd_tw{t}"]
        return out

    def sample(self, t: float, xu: np.ndarray, row: dict, eps: float = 1e-9):
        for w in self.waits:
            tg = self.tag(w)
            if w not in self.refs and abs(t - w) < eps:
                self.refs[w] = xu.copy()
            if w in self.refs and t - w <= self.tau_max + eps:
                d = xu - self.refs[w]
                d -= d.mean(0)  # remove centre-of-mass drift (as glass.equilibrate)
                for sp, m in self.masks.items():
                    row[f"fs_{sp + '_' if sp else ''}tw{tg}"] = glass.fs_self(d[m])
                row[f"msd_tw{tg}"] = float((d ** 2).sum(1).mean())
            else:
                for c in (f"fs_tw{tg}", f"fs_S_tw{tg}", f"fs_L_tw{tg}", f"msd_tw{tg}"):
                    row[c] = float("nan")


def schedule(t_total: float, every: float, dt: float, extra_fine=(), fine_every=None, fine_span=0.0,
             marks=()) -> np.ndarray:
    """Sorted unique sample step numbers (> 0): multiples of ``every``, fine steps after each of
    ``extra_fine`` and the ``marks`` (waiting times, write times)."""
    n = int(round(t_total / dt))
    ev = max(1, int(round(every / dt)))
    steps = set(range(ev, n + 1, ev))
    if fine_every:
        fe = max(1, int(round(fine_every / dt)))
        for w in extra_fine:
            s0 = int(round(w / dt))
            steps.update(s for s in range(s0 + fe, min(n, s0 + int(round(fine_span / dt))) + 1, fe))
    steps.update(int(round(m / dt)) for m in marks if 0 < m <= t_total + 1e-9)
    steps.add(n)
    return np.array(sorted(s for s in steps if 0 < s <= n))


def crossing(tau: np.ndarray, f: np.ndarray, level: float) -> float:
    """First tau where f falls below ``level`` (linear interpolation); NaN if it never does."""
    ok = np.isfinite(f)
    tau, f = tau[ok], f[ok]
    below = np.flatnonzero(f < level)
    if not len(below):
        return float("nan")
    i = below[0]
    if i == 0:
        return float(tau[0])
    t0, t1, f0, f1 = tau[i - 1], tau[i], f[i - 1], f[i]
    return float(t0 + (f0 - level) / (f0 - f1) * (t1 - t0))


def summarize(df: pd.DataFrame, tt: TwoTime, block: float) -> dict:
    out = {"two_time": {}}
    time_ = df["time"].to_numpy()
    for w in tt.waits:
        tg = tt.tag(w)
        if f"fs_tw{tg}" not in df or w not in tt.refs:
            continue
        tau = np.concatenate([[0.0], time_[time_ > w] - w])
        s = {}
        for sp in ("", "S_", "L_"):
            f = np.concatenate([[1.0], df[f"fs_{sp}tw{tg}"].to_numpy()[time_ > w]])
            s[f"tau_1/e_{sp or 'all_'}".rstrip("_")] = crossing(tau, f, math.exp(-1))
            s[f"tau_0.1_{sp or 'all_'}".rstrip("_")] = crossing(tau, f, 0.1)
        msd = np.concatenate([[0.0], df[f"msd_tw{tg}"].to_numpy()[time_ > w]])
        for tq in (10.0, 100.0, 1000.0):
            ok = np.isfinite(msd)
            s[f"msd_at_{tq:g}"] = float(np.interp(tq, tau[ok], msd[ok])) if ok.any() and tau[ok][-1] >= tq else float("nan")
        s["tau_covered"] = float(np.nanmax(np.where(np.isfinite(msd), tau, np.nan)))
        out["two_time"][tg] = s
    edges = np.arange(0.0, time_[-1] + block, block) if len(time_) else []
    blocks = []
    for a, b in zip(edges[:-1], edges[1:]):
        m = (time_ > a) & (time_ <= b)
        if m.any():
            blocks.append({"t0": float(a), "t1": float(b), "pe_mean": float(df["pe_per_atom"][m].mean()),
                           "T_mean": float(df["temperature"][m].mean()), "n": int(m.sum())})
    out["pe_blocks"] = blocks
    m = time_ >= min(50.0, time_[-1] / 2) if len(time_) else []
    if len(time_) and m.sum() > 3:
        b, a = np.polyfit(np.log(time_[m]), df["pe_per_atom"].to_numpy()[m], 1)
        out["pe_fit_a_plus_b_ln_t"] = {"a": float(a), "b": float(b), "t_from": float(time_[m][0])}
    return out


def save_state(lmp: Lammps, path: Path, **extra):
    st = lmp.state()
    st.save(path, vel=lmp.velocities(), **extra)


# ----------------------------------------------------------------------------- run
def run_phase(lmp: Lammps, name: str, temperature: float, t_total: float, steps: np.ndarray, dt: float,
              tt: TwoTime, on_sample=None, on_write=None, write_every=None):
    """Sample the running NVT trajectory at ``steps``; returns the rows."""
    lx, ly, _ = lmp.box()
    rows = []
    prev = 0
    next_write = write_every
    t_start = time.perf_counter()
    # t = 0 sample (reference positions of t_w = 0)
    xu = glass._unwrapped(lmp, lx, ly)
    lmp.evaluate()
    T_now = _thermo(lmp, "temp")
    row = {"time": 0.0, "pe_per_atom": _thermo(lmp, "pe") / lmp.n, "temperature": T_now,
           "pressure": _pressure(lmp, T_now)}
    tt.sample(0.0, xu, row)
    rows.append(row)
    for s in steps:
        lmp.command(f"run {int(s - prev)} post no")
        prev = int(s)
        t = s * dt
        xu = glass._unwrapped(lmp, lx, ly)
        T_now = _thermo(lmp, "temp")
        row = {"time": float(t), "pe_per_atom": _thermo(lmp, "pe") / lmp.n,
               "temperature": T_now, "pressure": _pressure(lmp, T_now)}
        tt.sample(float(t), xu, row)
        rows.append(row)
        if on_sample:
            on_sample(t, rows)
        if write_every and t + 1e-9 >= next_write:
            on_write(rows, t, time.perf_counter() - t_start)
            print(f"[{name}] t = {t:g} / {t_total:g}  pe = {row['pe_per_atom']:.5f}  T = {row['temperature']:.4f}  "
                  f"wall {time.perf_counter() - t_start:.0f} s", flush=True)
            next_write += write_every
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-atoms", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=20261202, help="base seed (insertion seed = sample_seed(seed, replica))")
    ap.add_argument("--replica", type=int, default=0)
    ap.add_argument("--t-hot", type=float, default=300.0, help="length of the hot NVT run")
    ap.add_argument("--T-hot", type=float, default=0.5, help="temperature of the hot run")
    ap.add_argument("--hot-every", type=float, default=0.5, help="sampling interval of the hot run")
    ap.add_argument("--hot-tw", type=float, nargs="+", default=None,
                    help="waiting times of the hot run (default 0, 50, t_hot/2)")
    ap.add_argument("--temperature", type=float, default=pot.T_LIQUID, help="target temperature T")
    ap.add_argument("--t-total", type=float, default=8000.0, help="length of the run at T")
    ap.add_argument("--every", type=float, default=5.0, help="sampling interval at T")
    ap.add_argument("--fine-every", type=float, default=0.5, help="sampling interval just after each t_w")
    ap.add_argument("--fine-span", type=float, default=50.0, help="span of fine sampling after each t_w")
    ap.add_argument("--tw", type=float, nargs="+", default=[0, 500, 1000, 2000, 4000, 6000],
                    help="waiting times of the run at T")
    ap.add_argument("--tau-max", type=float, default=2000.0, help="longest tau of each F_s / MSD window")
    ap.add_argument("--dt", type=float, default=0.005)
    ap.add_argument("--tdamp", type=float, default=0.5, help="Nose-Hoover damping time")
    ap.add_argument("--write-every", type=float, default=500.0, help="checkpoint interval (time units at T)")
    ap.add_argument("--out", required=True, help="output directory (outside the work tree)")
    args = ap.parse_args(argv)
    hot_tw = args.hot_tw if args.hot_tw is not None else [0.0, 50.0, args.t_hot / 2]
    hot_tw = sorted(set(float(w) for w in hot_tw if w <= args.t_hot))
    tw = sorted(set(float(w) for w in args.tw if w <= args.t_total))

    out = Path(args.out)
    (out / "states").mkdir(parents=True, exist_ok=True)
    t_wall0 = time.time()
    seed = glass.sample_seed(args.seed, args.replica)
    vseed = glass.sample_seed(seed, 0, 1)
    meta = {
        "script": str(Path(__file__).resolve()), "argv": sys.argv, "parameters": vars(args),
        "hot_tw": hot_tw, "tw": tw, "insertion_seed": seed, "velocity_seed": vseed,
        "lammps_version": lammps_version(), "git": git_info(ROOT), "q": glass.Q_FS,
        "density": pot.DENSITY, "box_length": pot.box_length(args.n_atoms),
        "composition_S_L": pot.composition(args.n_atoms),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    sidecar = {"meta": meta, "status": "starting"}

    def write_sidecar(status: str, **extra):
        sidecar.update(status=status, wall_s=time.time() - t_wall0, **extra)
        write_text(out / "trace.json", json.dumps(sidecar, indent=1, default=_jd))

    state = {"phase": "setup"}

    def on_term(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
    write_sidecar("running")
    st = glass.random_insertion(args.n_atoms, seed)
    try:
        with Lammps(st) as lmp:
            n = args.n_atoms
            m = lmp.minimize(etol=0.0, ftol=1e-2 * math.sqrt(n), maxiter=2000)  # as prepare_glass
            sidecar["insertion_cg"] = m.__dict__
            lmp.command(f"timestep {args.dt!r}")

            # ---- hot phase
            state["phase"] = "hot"
            lmp.command(f"velocity all create {args.T_hot!r} {vseed} mom yes rot no dist gaussian")
            lmp.command(f"fix nvt all nvt temp {args.T_hot!r} {args.T_hot!r} {args.tdamp!r}")
            tt_hot = TwoTime(hot_tw, args.t_hot, st.types)
            steps = schedule(args.t_hot, args.hot_every, args.dt, marks=hot_tw)
            t0 = time.perf_counter()
            rows = run_phase(lmp, "hot", args.T_hot, args.t_hot, steps, args.dt, tt_hot)
            hot = pd.DataFrame(rows)
            write_table(hot, out / "trace_hot.parquet", {"phase": "hot", **meta})
            save_state(lmp, out / "states" / "end_hot.npz", t=args.t_hot, T=args.T_hot)
            # diagnostics of the project (plateau, tau_alpha from the mid-point), on the uniform samples
            u = hot[hot["time"] > 0].reset_index(drop=True)
            half_tag = TwoTime.tag(args.t_hot / 2)
            diag = None
            if f"fs_tw{half_tag}" in u and np.allclose(np.diff(u["time"]), args.hot_every):
                half = int(np.flatnonzero(np.isclose(u["time"], args.t_hot / 2))[0]) + 1
                diag = glass.equilibration_diagnostics(u["time"].to_numpy(), u["pe_per_atom"].to_numpy(),
                                                       u[f"fs_tw{half_tag}"].to_numpy(), half)
            sidecar["hot"] = {"diagnostics": diag, "summary": summarize(hot, tt_hot, block=args.t_hot / 4),
                              "seconds": time.perf_counter() - t0}
            print(f"[hot] done in {time.perf_counter() - t0:.0f} s: "
                  f"tau_1/e = {[(w, s['tau_1/e_all']) for w, s in sidecar['hot']['summary']['two_time'].items()]}, "
                  f"pe last quarter {sidecar['hot']['summary']['pe_blocks'][-1]['pe_mean']:.5f}", flush=True)
            write_sidecar("running")
            lmp.command("unfix nvt")

            # ---- cold phase
            state["phase"] = "cold"
            lmp.command(f"velocity all scale {args.temperature!r}")
            lmp.command(f"fix nvt all nvt temp {args.temperature!r} {args.temperature!r} {args.tdamp!r}")
            tt = TwoTime(tw, args.tau_max, st.types)
            writes = np.arange(args.write_every, args.t_total + 1e-9, args.write_every)
            steps = schedule(args.t_total, args.every, args.dt, extra_fine=tw, fine_every=args.fine_every,
                             fine_span=args.fine_span, marks=list(tw) + list(writes))
            saved = set()
            t0 = time.perf_counter()

            def on_sample(t, rows_):
                for w in tw:
                    if w not in saved and abs(t - w) < 1e-9:
                        save_state(lmp, out / "states" / f"cold_tw{TwoTime.tag(w)}.npz", t=t, T=args.temperature)
                        saved.add(w)

            def on_write(rows_, t, wall):
                df = pd.DataFrame(rows_)
                write_table(df, out / "trace_cold.parquet", {"phase": "cold", "t_reached": t, **meta})
                sidecar["cold"] = {"t_reached": float(t), "seconds": wall,
                                   "summary": summarize(df, tt, block=args.write_every)}
                write_sidecar("running")

            if 0.0 in tw:
                save_state(lmp, out / "states" / "cold_tw0.npz", t=0.0, T=args.temperature)
                saved.add(0.0)
            rows = run_phase(lmp, "cold", args.temperature, args.t_total, steps, args.dt, tt,
                             on_sample=on_sample, on_write=on_write, write_every=args.write_every)
            on_write(rows, args.t_total, time.perf_counter() - t0)
            save_state(lmp, out / "states" / "end_cold.npz", t=args.t_total, T=args.temperature)
            lmp.command("unfix nvt")
    except KeyboardInterrupt as exc:
        write_sidecar(f"interrupted in phase {state['phase']} ({exc})")
        print(f"interrupted ({exc}); partial results in {out}", flush=True)
        return 130
    write_sidecar("done")
    s = sidecar["cold"]["summary"]
    print(f"done in {time.time() - t_wall0:.0f} s -> {out}")
    for w, v in s["two_time"].items():
        print(f"  t_w = {w:>6}: tau_1/e = {v['tau_1/e_all']:.2f} (S {v['tau_1/e_S']:.2f}, L {v['tau_1/e_L']:.2f}), "
              f"tau_0.1 = {v['tau_0.1_all']:.1f}, MSD(10) = {v['msd_at_10']:.3f}, covered {v['tau_covered']:g}")
    for b in s["pe_blocks"]:
        print(f"  pe({b['t0']:g}, {b['t1']:g}] = {b['pe_mean']:.5f}  T = {b['T_mean']:.4f}")
    if "pe_fit_a_plus_b_ln_t" in s:
        print(f"  pe = a + b ln t: {s['pe_fit_a_plus_b_ln_t']}")
    return 0


def _jd(o):
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (np.floating, np.integer, np.bool_)):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    return str(o)


if __name__ == "__main__":
    raise SystemExit(main())
