"""The binary LJ potential: numpy reference (independent of LAMMPS) against LAMMPS lj/smooth."""
import math

import numpy as np
import pytest

from epcal.reference import potential as pot
from epcal.reference.lammps_driver import lammps_available

lammps_only = pytest.mark.skipif(not lammps_available(), reason="LAMMPS python module not importable")


@pytest.mark.parametrize("pair", sorted(pot.PAIRS))
def test_smoothing_is_c2_and_vanishes_at_cutoff(pair):
    s, e = pot.PAIRS[pair]
    h = 1e-6
    u = lambda r: pot.pair_energy_force(np.array([r]), s, e)[0][0]
    f = lambda r: pot.pair_energy_force(np.array([r]), s, e)[1][0]
    for r0 in (pot.R_IN,):
        # energy, force and force slope continuous across R_IN
        assert abs(u(r0 - h) - u(r0 + h)) < 1e-5
        assert abs(f(r0 - h) - f(r0 + h)) < 1e-5
        assert abs((f(r0 - h) - f(r0 - 2 * h)) / h - (f(r0 + 2 * h) - f(r0 + h)) / h) < 1e-3
    r_end = pot.R_OUT - 1e-9
    assert abs(u(r_end)) < 1e-12 and abs(f(r_end)) < 1e-12
    assert abs((f(r_end) - f(r_end - 1e-4)) / 1e-4) < 1e-3
    # force = -dU/dr everywhere, including the smoothing region
    for r in (0.9, 1.3, 1.9, 2.05, 2.2, 2.45):
        du = (u(r + h) - u(r - h)) / (2 * h)
        assert f(r) == pytest.approx(-du, rel=1e-5, abs=1e-8)


def test_composition_and_density():
    ns, nl = pot.composition(10000)
    assert ns + nl == 10000 and abs(nl / ns - (1 + math.sqrt(5)) / 4) < 1e-3
    assert pot.box_length(10000) == pytest.approx(98.8045, rel=1e-9)
    assert pot.PAIRS[(1, 1)][0] == pytest.approx(0.618034, rel=1e-5)
    assert pot.PAIRS[(2, 2)][0] == pytest.approx(1.175571, rel=1e-5)


def _config(n=90, seed=3, xy=0.7):
    """A loose random configuration with many pairs in the smoothing region [2, 2.5)."""
    rng = np.random.default_rng(seed)
    L = math.sqrt(n / 0.6)
    # jittered lattice: no overlaps, a broad distribution of distances
    m = int(math.ceil(math.sqrt(n)))
    g = np.array([(i, j) for i in range(m) for j in range(m)][:n], float) * (L / m)
    pos = g + rng.uniform(-0.25, 0.25, size=(n, 2))
    types = rng.permutation(np.array([1] * (n // 2) + [2] * (n - n // 2)))
    return pos, types, L, xy


@lammps_only
@pytest.mark.lammps
def test_lammps_energy_forces_virial_match_numpy():
    from epcal.reference.lammps_driver import Lammps, State

    pos, types, L, xy = _config()
    E, F, sig = pot.energy_forces_virial(pos, types, L, L, xy)
    with Lammps(State(pos, types, L, L, xy)) as lmp:
        ev = lmp.evaluate()
        f_l = lmp.forces()
        p = lmp.positions()
    # the configuration has pairs inside the smoothing region
    d = pos[:, None, :] - pos[None, :, :]
    r = np.hypot(d[..., 0], d[..., 1])
    assert ((r > pot.R_IN) & (r < pot.R_OUT)).sum() > 50
    # LAMMPS stored the same (wrapped) positions
    from epcal.reference.lammps_driver import min_image
    assert np.abs(min_image(p - pos, L, L, xy)).max() < 1e-12
    assert ev["pe"] == pytest.approx(E, rel=1e-12, abs=1e-10)
    assert np.abs(f_l - F).max() < 1e-10 * max(1.0, np.abs(F).max())
    assert np.allclose([ev["sxx"], ev["syy"], ev["sxy"]], [sig[0, 0], sig[1, 1], sig[0, 1]], rtol=1e-10, atol=1e-12)


@lammps_only
@pytest.mark.lammps
@pytest.mark.parametrize("r", [1.0, 1.7, 2.1, 2.3, 2.49])
def test_lammps_pair_energy_two_atoms(r):
    """Single pairs of every type at distances inside and beyond R_IN."""
    from epcal.reference.lammps_driver import Lammps, State

    L = 12.0
    for (a, b), (s, e) in pot.PAIRS.items():
        st = State(np.array([[3.0, 3.0], [3.0 + r, 3.0]]), np.array([a, b]), L, L, 0.0)
        with Lammps(st) as lmp:
            ev = lmp.evaluate()
            f = lmp.forces()
        u, fm = pot.pair_energy_force(np.array([r]), s, e)
        assert ev["pe"] == pytest.approx(u[0], rel=1e-12, abs=1e-13)
        assert f[1, 0] == pytest.approx(fm[0], rel=1e-10, abs=1e-12)  # repulsive = positive on the right atom


def test_sparse_hessian_matches_finite_differences_of_forces():
    from epcal.reference.newton import energy_forces_hessian

    rng = np.random.default_rng(5)
    m = 6
    x = np.array([(i, j) for i in range(m) for j in range(m)], float) * 1.05 + rng.uniform(-0.1, 0.1, (m * m, 2))
    types = rng.integers(1, 3, m * m)
    E, F, H = energy_forces_hessian(x, types)
    # energy and forces agree with the independent O(N^2) implementation (open box: huge periodic cell)
    E2, F2, _ = pot.energy_forces_virial(x, types, 1e3, 1e3, 0.0)
    assert E == pytest.approx(E2, rel=1e-12) and np.abs(F - F2).max() < 1e-10
    h = 1e-6
    Hd = H.toarray()
    for k in rng.choice(2 * m * m, 12, replace=False):
        xp, xm = x.copy(), x.copy()
        xp.ravel()[k] += h
        xm.ravel()[k] -= h
        col = -(energy_forces_hessian(xp, types, False)[1] - energy_forces_hessian(xm, types, False)[1]).ravel() / (2 * h)
        assert np.abs(col - Hd[:, k]).max() < 1e-4 * max(1.0, np.abs(col).max())
