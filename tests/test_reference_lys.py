"""Local yield stress method: frozen boundary, onset search, bisection == plain stepping."""
import numpy as np
import pytest

from epcal.reference.lammps_driver import lammps_available

pytestmark = [pytest.mark.lammps,
              pytest.mark.skipif(not lammps_available(), reason="LAMMPS python module not importable")]


@pytest.fixture(scope="module")
def glass():
    from epcal.reference.glass import prepare_glass

    g, info = prepare_glass(400, seed=7, t_equil=20.0, n_trace=10, quench_ftol=1e-10)
    return g


def test_m_tensor_conventions():
    from epcal.reference.lys import m_tensor, resolved

    s = np.array([0.3, -0.2, 0.7])  # sxx, syy, sxy
    S = np.array([[s[0], s[2]], [s[2], s[1]]])
    for a in (0.0, 30.0, 45.0, 90.0, 135.0):
        M = m_tensor(a)
        assert np.trace(M) == pytest.approx(0.0)
        assert (M * M).sum() == pytest.approx(0.5)
        assert resolved(s, a) == pytest.approx((M * S).sum())
    assert resolved(s, 0.0) == pytest.approx(s[2])  # forward = the external simple shear xy
    assert resolved(s, 90.0) == pytest.approx(-s[2])  # backward


def test_frozen_atoms_follow_the_affine_map_exactly(glass):
    from epcal.reference.lys import Patch, m_tensor

    with Patch(glass, (glass.lx / 2, glass.ly / 2), 5.0) as p:
        assert 0 < p.n_mobile < len(p.X0)
        r = np.hypot(*p.X0.T)
        assert (r[: p.n_mobile] < 5.0).all() and (r[p.n_mobile:] >= 5.0).all()
        assert (r < 5.0 + 2.5).all()  # only atoms within R + cutoff
        M = m_tensor(30.0)
        x, u = p.move(p.x_init, 0, 150, M)
        target = p.affine(150, M)
        # frozen atoms: exactly the affine map (bit for bit up to the affine arithmetic)
        assert np.abs(x[p.n_mobile:] - target[p.n_mobile:]).max() < 1e-12
        # relaxed atoms did relax (non-affine displacement)
        assert np.abs(u).max() > 1e-4
        # and the patch stress changed by about G * gamma in the resolved direction
        from epcal.reference.lys import resolved
        p.lmp.command("run 0 post no")
        dtau = resolved(p.patch_stress(), 30.0) - resolved(p.sigma_init, 30.0)
        assert 0.05 * 150e-4 < dtau < 40 * 150e-4


@pytest.fixture(scope="module")
def sheared(glass):
    """The glass after AQS to gamma = 0.12: many patches close to threshold in the forward direction."""
    from epcal.reference.shear import run_aqs

    _, st = run_aqs(glass, 1200, ftol=1e-4)
    return st


def test_bisection_equals_plain_stepping(sheared):
    """Coarse steps (13, not a power of 2) + bisection give the same grid step and stresses as plain
    stepping, on the patches of a sheared glass that yield first (plain stepping is costly)."""
    from epcal.reference.lys import Patch, grid_centres

    candidates = []
    for c in grid_centres(sheared.lx, sheared.ly, sheared.lx / 3):
        for alpha in (0.0, 20.0, 90.0):
            with Patch(sheared, c, 5.0) as p:
                fast = p.probe(alpha, coarse=13, k_max=1500)
            if fast is not None:
                candidates.append((fast.k_c, tuple(c), alpha, fast))
    candidates.sort(key=lambda t: t[0])
    chosen = candidates[:4]
    assert len(chosen) == 4 and chosen[-1][0] < 800
    n_bisected = 0
    for k_c, c, alpha, fast in chosen:
        with Patch(sheared, c, 5.0) as p:
            plain = p.probe_plain(alpha, k_max=1500)
        assert plain is not None
        assert fast.k_c == plain.k_c, (c, alpha)
        assert np.allclose(fast.sigma_c, plain.sigma_c, atol=1e-6)
        assert np.allclose(fast.sigma_f, plain.sigma_f, atol=1e-6)
        assert fast.tau_c > fast.tau_f  # an instability is a drop of the resolved stress
        n_bisected += fast.k_c % 13 != 0
        assert fast.minimizations < plain.minimizations or plain.k_c < 20
    assert n_bisected >= 1  # the onset was found inside a coarse step at least once


def test_pair_list_kernels_match_the_numpy_reference(glass):
    """The numba energy/force/Hessian kernels of the Newton relaxation (Verlet list with skin)
    equal energy_forces_hessian on the relaxed atoms, also after the list has to be rebuilt."""
    from epcal.reference.lys import Patch
    from epcal.reference.newton import energy_forces_hessian
    from epcal.reference.pair_lists import PairList

    with Patch(glass, (glass.lx / 2, glass.ly / 2), 5.0) as p:
        nm = p.n_mobile
        pl = PairList(p.types, nm)
        rng = np.random.default_rng(3)
        x = p.x_init.copy()
        e_prev = None
        for amp in (0.0, 0.02, 0.3):  # the last move exceeds skin / 2: list rebuilt
            x = x.copy()
            x[:nm] += rng.normal(0.0, amp, (nm, 2)) if amp else 0.0
            E0, F0, H0 = energy_forces_hessian(x, p.types)
            E1, F1 = pl.energy_forces(x)
            assert np.abs(F1 - F0[:nm]).max() < 1e-9 * max(1.0, np.abs(F0).max())
            dof = np.arange(2 * nm)
            H1 = pl.hessian(x)
            assert abs(H1 - H0[dof][:, dof]).max() < 1e-9 * abs(H0).max()
            # energies differ by the frozen-frozen pairs only, which the mobile moves leave alone
            if e_prev is not None:
                assert (E1 - E0) == pytest.approx(e_prev, abs=1e-9 * abs(E0))
            e_prev = E1 - E0
