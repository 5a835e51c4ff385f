"""Atomistic Bauschinger (reload) test of section 5: protocol invariants on a small sheared glass (LAMMPS)."""
import numpy as np
import pytest

from epcal.reference.lammps_driver import lammps_available

pytestmark = [pytest.mark.lammps,
              pytest.mark.skipif(not lammps_available(), reason="LAMMPS python module not importable")]


@pytest.fixture(scope="module")
def reloaded():
    from epcal.reference.shear import run_aqs
    from epcal.reference.bauschinger import bauschinger_test
    from epcal.reference.glass import prepare_glass

    g, info = prepare_glass(256, seed=5, t_equil=30.0, n_trace=10, quench_ftol=1e-10)
    _, sheared = run_aqs(g, 600, ftol=1e-6)  # gamma = 0.06: past the first plastic events of 256 atoms
    df = bauschinger_test(sheared, 3, 0.06, strain=0.02, ftol=1e-6)
    return df, info["moduli"]["G"]


def test_unloading_stops_at_the_first_step_with_zero_stress(reloaded):
    df, _ = reloaded
    un = df[df.branch == "unload"].sort_values("gamma_load")
    assert un["sxy"].iloc[0] > 0 and un["sxy"].iloc[-1] <= 0
    assert (un["sxy"].iloc[:-1] > 0).all()
    assert np.allclose(np.diff(un["gamma_ext"]), -1e-4)


def test_both_reloads_start_from_the_unloaded_state_with_elastic_slope(reloaded):
    """Forward and reverse branches start from the same state (stress of opposite loading sense) and
    load elastically at first: slope of sigma_load within 35 % of the glass's shear modulus (a 256-atom
    glass is elastically heterogeneous; a wrong sign or strain convention would be off by 2x or flip)."""
    df, G = reloaded
    fw = df[df.branch == "forward"].sort_values("gamma_load")
    rv = df[df.branch == "reverse"].sort_values("gamma_load")
    assert len(fw) == len(rv) == 201
    assert fw["sxy"].iloc[0] == pytest.approx(rv["sxy"].iloc[0], abs=1e-9)
    assert fw["sigma_load"].iloc[0] == pytest.approx(-rv["sigma_load"].iloc[0], abs=1e-9)
    for br in (fw, rv):
        slope = np.polyfit(br["gamma_load"].iloc[:20], br["sigma_load"].iloc[:20], 1)[0]
        assert slope == pytest.approx(G, rel=0.35)
    assert (fw["gamma_ext"].diff().iloc[1:] > 0).all() and (rv["gamma_ext"].diff().iloc[1:] < 0).all()
