"""Periodic sparse Hessian; Newton AQS == CG AQS; the reference verbs under ``mpirun -np 2`` == 1 rank."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from epcal.reference.lammps_driver import lammps_available

pytestmark = [pytest.mark.lammps,
              pytest.mark.skipif(not lammps_available(), reason="LAMMPS python module not importable")]


@pytest.fixture(scope="module")
def glass():
    from epcal.reference.glass import prepare_glass

    g, _ = prepare_glass(400, seed=11, t_equil=5.0, n_trace=10, quench_ftol=1e-10)
    return g


def test_periodic_hessian_matches_lammps_forces_and_finite_differences(glass):
    from epcal.reference.lammps_driver import Lammps
    from epcal.reference.newton import energy_forces_hessian

    with Lammps(glass) as lmp:
        lmp.shear_box(0.37)  # a strongly tilted cell (the tilt is flipped back into [-lx/2, lx/2])
        st = lmp.state()
        ev = lmp.evaluate()
        F_lmp = lmp.forces()
    box = (st.lx, st.ly, st.xy)
    assert st.xy != 0.0
    E, F, H = energy_forces_hessian(st.pos, st.types, box=box)
    assert E == pytest.approx(ev["pe"], rel=1e-12)
    assert np.abs(F - F_lmp).max() < 1e-9
    assert abs(H - H.T).max() < 1e-9
    h = 1e-6
    for k in (0, 1, 2 * 123, 2 * 399 + 1):
        xp, xm = st.pos.copy(), st.pos.copy()
        xp.ravel()[k] += h
        xm.ravel()[k] -= h
        col = -(energy_forces_hessian(xp, st.types, False, box)[1]
                - energy_forces_hessian(xm, st.types, False, box)[1]).ravel() / (2 * h)
        assert np.abs(H[:, k].toarray().ravel() - col).max() < 1e-5 * max(1.0, np.abs(col).max())


def test_periodic_numba_kernels_match_energy_forces_hessian_and_lammps(glass):
    """The numba pair-list kernels of the AQS solver: same energy, forces and Hessian as
    energy_forces_hessian / LAMMPS in a tilted cell, the list reused (images carried) over small
    tilt changes and rebuilt at a flip of the tilt."""
    from epcal.reference.lammps_driver import Lammps
    from epcal.reference.newton import energy_forces_hessian
    from epcal.reference.pair_lists import PeriodicPairList

    pl = PeriodicPairList(glass.types)
    with Lammps(glass) as lmp:
        for dg in (0.0, 3e-3, 3e-3, 0.37):
            lmp.shear_box(dg)
            st = lmp.state()
            ev = lmp.evaluate()
            F_lmp = lmp.forces()
            box = (st.lx, st.ly, st.xy)
            x = pl.prepare(st.pos, box)
            E, F = pl.energy_forces(x)
            E2, F2, H2 = energy_forces_hessian(st.pos, st.types, box=box)
            assert E == pytest.approx(ev["pe"], rel=1e-12)
            assert np.abs(F - F_lmp).max() < 1e-9
            assert np.abs(F - F2).max() < 1e-9
            assert abs(pl.hessian(x) - H2).max() < 1e-8
    assert pl.n_build == 2  # built once, reused for the two small shears, rebuilt at the flip


def test_newton_aqs_equals_cg_aqs(glass):
    """Same stress-strain curve (plastic events included) from the modified Newton relaxation and from CG,
    both to ftol 1e-8 (stress error of either ~1e-9)."""
    from epcal.reference.shear import run_aqs

    cg, _ = run_aqs(glass, 150, ftol=1e-8, solver="cg")
    nw, _ = run_aqs(glass, 150, ftol=1e-8, solver="newton")
    assert (nw["fnorm"] < 1e-8).all()
    assert np.abs(cg["sxy"] - nw["sxy"]).max() < 1e-6
    assert np.abs(cg["pe"] - nw["pe"]).max() < 1e-8 * 400
    assert nw["iterations"].iloc[1:].median() < 0.2 * cg["iterations"].iloc[1:].median()


def test_newton_aqs_avalanche_path_equals_cg_aqs(glass):
    """The avalanche path of the quasi-Newton solver (plain L-BFGS until the energy stalls, then the
    preconditioned iteration with a fresh factorization), forced on every step that needs more than
    3 iterations: same stress-strain curve as CG, both to ftol 1e-8."""
    from epcal.reference.aqs import AQS
    from epcal.reference.shear import run_aqs
    from epcal.reference.lammps_driver import Lammps

    cg, _ = run_aqs(glass, 150, ftol=1e-8, solver="cg")
    with Lammps(glass) as lmp:
        a = AQS(lmp, ftol=1e-8, solver="newton", newton_maxiter=3)
        rows = [a.step() for _ in range(150)]
    assert a.n_fallback >= 5  # the avalanche path was taken
    assert max(r["fnorm"] for r in rows) < 1e-8
    assert np.abs(np.array([r["sxy"] for r in rows]) - cg["sxy"].to_numpy()[1:]).max() < 1e-6
    assert np.abs(np.array([r["pe"] for r in rows]) - cg["pe"].to_numpy()[1:]).max() < 1e-8 * 400


def test_compiled_avalanche_descent_equals_python_lbfgs(glass):
    """Fast path == slow path: the compiled plain L-BFGS descent (lbfgs.lbfgs_descent) and the numpy
    loop of AQS._newton(precond=False) take the same iterates from a strongly sheared glass (energies
    equal to round-off over the first 40 iterations, both decreasing)."""
    from epcal.reference.aqs import AQS
    from epcal.reference.lammps_driver import Lammps

    with Lammps(glass) as lmp:
        lmp.shear_box(0.05)  # affine shear far beyond the elastic branch: a descent of many iterations
        x0 = lmp.positions()
        a = AQS(lmp, ftol=1e-12, solver="newton")
        a.trace = []
        a.stall_frac = 0.0
        a.avalanche_maxiter = 40
        assert a._newton(x0.copy(), precond=False, maxiter=40) is None  # stops at maxiter
        e_py = np.array([t[1] for t in a.trace])
        assert a._descend(x0.copy()) is None
        e_nb = a.last_descent
    assert len(e_py) == len(e_nb) == 40
    assert np.all(np.diff(e_nb) < 0)
    assert e_nb[0] - e_nb[-1] > 1.0  # a real descent, not a converged start
    assert np.abs(e_py - e_nb).max() < 1e-11 * abs(e_nb[0])  # measured 1.2e-10 of 876 at iteration 40


def _mpirun():
    exe = Path(sys.executable).parent / "mpirun"
    return str(exe) if exe.exists() else shutil.which("mpirun")


@pytest.mark.skipif(_mpirun() is None, reason="no mpirun (the mpich wheel of lammps[mpi] provides one)")
def test_shear_and_probe_under_mpirun_equal_one_rank(glass, tmp_path):
    """``mpirun -np 2 epcal reference shear|probe`` gives the 1-rank result: LAMMPS sums forces in another
    order on 2 ranks, so minima agree to the force tolerance (ftol 1e-6: stresses to < 1e-6; measured ~1e-7)."""
    glass.save(tmp_path / "g.npz")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for k in ("PMI_RANK", "PMI_SIZE", "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "SLURM_PROCID", "SLURM_NTASKS"):
        env.pop(k, None)
    out = {}
    for np_ in (1, 2):
        d = tmp_path / f"np{np_}"
        d.mkdir()
        cli = [sys.executable, "-m", "epcal.cli", "reference"]
        pre = [_mpirun(), "-np", str(np_)] if np_ > 1 else []
        subprocess.run(pre + cli + ["shear", "--state", str(tmp_path / "g.npz"), "--replica", "0",
                                    "--gamma-max", "0.01", "--ftol", "1e-6", "--checkpoint", str(d / "ck.npz"),
                                    "--out-steps", str(d / "steps.parquet"), "--out-state", str(d / "st.npz")],
                       check=True, env=env, timeout=120, capture_output=True)
        subprocess.run(pre + cli + ["probe", "--state", str(tmp_path / "g.npz"), "--state-name", "quench",
                                    "--replica", "0", "--R", "5", "--alpha", "0", "--grid", "40",
                                    "--checkpoint", str(d / "ckp.parquet"), "--out", str(d / "probe.parquet")],
                       check=True, env=env, timeout=120, capture_output=True)
        out[np_] = (pd.read_parquet(d / "steps.parquet"), pd.read_parquet(d / "probe.parquet"))
    (s1, p1), (s2, p2) = out[1], out[2]
    assert len(s1) == len(s2) == 101
    assert np.abs(s1["sxy"] - s2["sxy"]).max() < 1e-6
    assert len(p1) == len(p2) >= 1
    assert (p1["gamma_c"].to_numpy() == p2["gamma_c"].to_numpy()).all()
    assert np.abs(p1["tau_c"] - p2["tau_c"]).max() < 1e-6
