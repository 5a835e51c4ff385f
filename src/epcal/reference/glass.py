"""Glass preparation (paper section 2.1): random insertion, equilibrated supercooled
liquid at T = 0.351, instantaneous quench, CG minimization.

The equilibration is *shown*, not assumed: :func:`prepare_glass` returns a
trace of the potential energy and of the self-intermediate scattering function
F_s(q, t) = < cos(q . dr_i(t)) > (q = 2 pi / sigma_SL, averaged over atoms and
the x and y directions) measured from the start of the second half of the run.
The diagnostics state whether the energy has reached a plateau (the means of
the last two quarters agree within their combined block error, and the linear
drift over the second half is below 3 standard errors) and how many
structural relaxation times tau_alpha (F_s < 1/e) the second half spans.
"""
from __future__ import annotations

import math
import time

import numpy as np

from . import potential as pot
from .lammps_driver import Lammps, State

#: wave number of F_s(q, t): first peak of the structure factor, q = 2 pi / sigma_SL
Q_FS = 2.0 * math.pi


def sample_seed(base_seed: int, replica: int, salt: int = 0) -> int:
    """Positive 31-bit seed of one sample, derived from (base_seed, replica, salt) only."""
    ss = np.random.SeedSequence([int(base_seed), int(replica), int(salt)])
    return int(ss.generate_state(1, dtype=np.uint32)[0] % (2**31 - 2)) + 1


def random_insertion(n_atoms: int, seed: int, density: float = pot.DENSITY) -> State:
    """Uniformly random positions at the paper's density and composition, types shuffled."""
    rng = np.random.default_rng(seed)
    L = pot.box_length(n_atoms, density)
    ns, nl = pot.composition(n_atoms)
    types = np.array([1] * ns + [2] * nl, dtype=np.int32)
    rng.shuffle(types)
    return State(rng.random((n_atoms, 2)) * L, types, L, L, 0.0)


def _unwrapped(lmp: Lammps, lx: float, ly: float) -> np.ndarray:
    pos = lmp.positions()
    img = np.zeros(lmp.n, dtype=np.int32)
    lmp.lmp.lib.lammps_gather_atoms(lmp.lmp.lmp, b"image", 0, 1, img.ctypes.data)
    ix = (img & 1023) - 512
    iy = ((img >> 10) & 1023) - 512
    return pos + np.stack([ix * lx, iy * ly], axis=1)


def fs_self(disp: np.ndarray, q: float = Q_FS) -> float:
    """Self-intermediate scattering function for displacements ``disp`` (N, 2), q along x and y."""
    return float(0.5 * (np.cos(q * disp[:, 0]).mean() + np.cos(q * disp[:, 1]).mean()))


def equilibrate(lmp: Lammps, temperature: float, seed: int, t_total: float, dt: float = 0.005,
                n_samples: int = 100, tdamp: float = 0.5) -> dict:
    """NVT (Nose-Hoover) MD at ``temperature`` for ``t_total``; returns the trace and diagnostics."""
    lx, ly, _ = lmp.box()
    lmp.command(f"timestep {dt!r}")
    lmp.command(f"velocity all create {temperature!r} {seed} mom yes rot no dist gaussian")
    lmp.command(f"fix nvt all nvt temp {temperature!r} {temperature!r} {tdamp!r}")
    nsteps = int(round(t_total / dt))
    chunk = max(1, nsteps // n_samples)
    half = n_samples // 2
    times, pe, temp, fs, msd = [], [], [], [], []
    ref = None
    for k in range(1, n_samples + 1):
        lmp.command(f"run {chunk} post no")
        t = k * chunk * dt
        times.append(t)
        pe.append(lmp.lmp.get_thermo("pe") / lmp.n)
        temp.append(lmp.lmp.get_thermo("temp"))
        xu = _unwrapped(lmp, lx, ly)
        if k == half:
            ref = xu.copy()
        if ref is not None:
            d = xu - ref
            d -= d.mean(0)  # remove centre-of-mass drift
            fs.append(fs_self(d))
            msd.append(float((d**2).sum(1).mean()))
        else:
            fs.append(float("nan"))
            msd.append(float("nan"))
    lmp.command("unfix nvt")
    times = np.array(times)
    pe = np.array(pe)
    return {"time": times, "pe_per_atom": pe, "temperature": np.array(temp), "fs": np.array(fs),
            "msd": np.array(msd), "diagnostics": equilibration_diagnostics(times, pe, np.array(fs), half)}


def equilibration_diagnostics(times, pe, fs, half) -> dict:
    n = len(pe)
    q3, q4 = pe[n // 2: 3 * n // 4], pe[3 * n // 4:]
    err = math.hypot(q3.std(ddof=1) / math.sqrt(max(len(q3) / 5, 1)), q4.std(ddof=1) / math.sqrt(max(len(q4) / 5, 1)))
    t2, p2 = times[n // 2:], pe[n // 2:]
    slope, icpt = np.polyfit(t2, p2, 1)
    resid = p2 - (slope * t2 + icpt)
    # standard error of the slope, inflated for correlated samples (blocks of 5)
    se_slope = resid.std(ddof=2) / (np.sqrt(((t2 - t2.mean()) ** 2).sum()) + 1e-300) * math.sqrt(5)
    drift = slope * (t2[-1] - t2[0])
    t_ref = times[half - 1]
    below = np.flatnonzero(fs[half:] < math.exp(-1))
    tau_alpha = float(times[half + below[0]] - t_ref) if len(below) else float("nan")
    window = float(times[-1] - t_ref)
    return {
        "pe_q3": float(q3.mean()), "pe_q4": float(q4.mean()), "pe_quarter_error": float(err),
        "energy_plateau": bool(abs(q4.mean() - q3.mean()) < 3 * err + 1e-12 or abs(slope) < 3 * se_slope),
        "pe_drift_second_half": float(drift), "pe_slope_second_half": float(slope),
        "pe_slope_stderr": float(se_slope),
        "tau_alpha": tau_alpha, "window": window,
        "decorrelated": bool(np.isfinite(tau_alpha)),
        "window_over_tau_alpha": float(window / tau_alpha) if np.isfinite(tau_alpha) else 0.0,
        "fs_final": float(fs[-1]),
    }


def quench(lmp: Lammps, ftol: float, maxiter: int = 200000):
    """Instantaneous quench: zero velocities, CG minimization to ``ftol`` (2-norm of the force vector)."""
    lmp.command("velocity all set 0.0 0.0 0.0")
    res = lmp.minimize(etol=0.0, ftol=ftol, maxiter=maxiter)
    return res


def measure_moduli(lmp: Lammps, strain: float = 1e-5, ftol: float = 1e-10) -> dict:
    """Shear modulus G and 2D bulk modulus B of the current (minimized) glass.

    Central finite differences of the relaxed virial stress under +-``strain``:
    simple shear xy (G_xy = d sigma_xy / d gamma), pure shear (exx = -eyy = e:
    G_pure = d (sxx - syy)/2 / d(2e)) and isotropic dilation (exx = eyy = e:
    B = d (sxx + syy)/2 / d(2e)).  G is the mean of the two shear moduli (the
    glass is isotropic on average).  The state is restored afterwards.
    """
    st = lmp.state()
    base = lmp.evaluate()

    def relaxed(apply) -> np.ndarray:
        lmp.command(f"change_box all xy final {st.xy!r} x final 0 {st.lx!r} y final 0 {st.ly!r} units box")
        lmp.set_positions(st.pos)
        apply()
        lmp.minimize(etol=0.0, ftol=ftol, maxiter=100000)
        return lmp.stress()

    out = {}
    sp = relaxed(lambda: lmp.shear_box(strain))
    sm = relaxed(lambda: lmp.shear_box(-strain))
    out["G_xy"] = float((sp[2] - sm[2]) / (2 * strain))
    sp = relaxed(lambda: lmp.strain_box(strain, -strain))
    sm = relaxed(lambda: lmp.strain_box(-strain, strain))
    out["G_pure"] = float(((sp[0] - sp[1]) - (sm[0] - sm[1])) / 2 / (2 * 2 * strain))
    sp = relaxed(lambda: lmp.strain_box(strain, strain))
    sm = relaxed(lambda: lmp.strain_box(-strain, -strain))
    out["B"] = float(((sp[0] + sp[1]) - (sm[0] + sm[1])) / 2 / (2 * 2 * strain))
    out["G"] = 0.5 * (out["G_xy"] + out["G_pure"])
    # restore
    lmp.command(f"change_box all xy final {st.xy!r} x final 0 {st.lx!r} y final 0 {st.ly!r} units box")
    lmp.set_positions(st.pos)
    lmp.evaluate()
    out["pressure"] = -0.5 * (base["sxx"] + base["syy"])
    return out


def prepare_glass(n_atoms: int, seed: int, t_equil: float, temperature: float = pot.T_LIQUID,
                  dt: float = 0.005, quench_ftol: float = 1e-10, n_trace: int = 100,
                  log: str | None = None) -> tuple[State, dict]:
    """Make one glass sample; returns the quenched state and a dict with trace and diagnostics."""
    t0 = time.perf_counter()
    st = random_insertion(n_atoms, seed)
    with Lammps(st, log=log) as lmp:
        # remove the overlaps of random insertion (dmax-limited CG), then melt/equilibrate
        lmp.minimize(etol=0.0, ftol=1e-2 * math.sqrt(n_atoms), maxiter=2000)
        trace = equilibrate(lmp, temperature, sample_seed(seed, 0, 1), t_equil, dt=dt, n_samples=n_trace)
        t1 = time.perf_counter()
        qres = quench(lmp, quench_ftol)
        moduli = measure_moduli(lmp, ftol=quench_ftol)
        glass = lmp.state()
        stress = lmp.evaluate()
    info = {
        "trace": trace, "quench": qres.__dict__, "moduli": moduli, "stress": stress,
        "seconds_md": t1 - t0, "seconds_total": time.perf_counter() - t0,
    }
    glass.meta = {"seed": seed}
    return glass, info
