"""Model B (appendix A.8.2): pressure-sensitive thresholds tau_c + alpha_p p, p = p0 - (Sxx + Syy)/2."""
import dataclasses

import numpy as np
import pandas as pd
import pytest

from epcal.params import EPMParams
from epcal.simulate import Model, ProbeSpec, run_ensemble
from epcal.variant_kernels import TAU_FLOOR
from epcal.variants import variant

P = EPMParams(L=8, l=6.6, N=12, k=2.0, lam=1.5, chi=2.0)
DG = 1e-4


def shifted_distance(st, model, alpha, p0):
    """Per system: max(tau_c + alpha p, ...) - M:Sigma with the state's full stress (numpy, independent)."""
    full = st.stress(model.params.G)
    p = p0 - 0.5 * (full[:, 0] + full[:, 1])
    q = (alpha * p)[:, None]
    s = st.systems
    thr = np.where(q >= 0, s.tau_c + q, np.maximum(s.tau_c + q, TAU_FLOOR))
    return thr - (s.a * (full[:, 0] - full[:, 1])[:, None] + s.b * full[:, 2][:, None])


def test_zero_sensitivity_is_bit_identical_to_model_c():
    """alpha_p = 0: quench, AQS and local shear tests give model C's bits (same seeds), whatever p0."""
    kw = dict(seed=5, gamma_max=0.8, T_quench=0.25, snapshots=(0.4,),
              probe=ProbeSpec(n_list=(1, 4), alpha_deg=(0.0, 45.0, 90.0), states=("quench", "stationary")))
    c = run_ensemble(P, [0, 1], variant=variant("C"), **kw)
    b = run_ensemble(P, [0, 1], variant=variant("B", alpha_p=0.0, p_mean=3.0, p_std=1.0), **kw)
    pd.testing.assert_frame_equal(c.macro, b.macro, check_exact=True)
    pd.testing.assert_frame_equal(c.probe, b.probe, check_exact=True)
    pd.testing.assert_frame_equal(c.states, b.states.drop(columns="pressure_offset"), check_exact=True)
    assert b.states["pressure_offset"].nunique() == 2  # one offset per sample, drawn from its own stream


@pytest.mark.parametrize("p_mean", [1.95, -6.0])
def test_skipping_identical_to_stepping_and_relaxed_states_stable(p_mean):
    """The next-activation prediction uses the shifted thresholds: skipping = stepping, bit for bit (also in
    tension, p_mean < 0, where effective thresholds hit the floor), and relaxed states have every shifted
    distance > 0."""
    model = Model(P, variant=variant("B", alpha_p=0.5, p_mean=p_mean, p_std=0.3))
    res = {}
    for skip in (True, False):
        st, rng = model.new_state(9, 0)
        model.quench(st, 0.25, rng)
        fwd = model.drive(st, rng, 0.3, skip=skip)
        unl = model.drive(st, rng, -1.0, skip=skip, stop_at_zero_stress=True)
        rev = model.drive(st, rng, steps=-800, skip=skip)
        res[skip] = (fwd + unl + rev, st)
    for x, y in zip(res[True][0], res[False][0]):
        assert np.array_equal(x, y)
    st = res[True][1]
    assert np.array_equal(st.sig, res[False][1].sig) and len(res[True][0][0]) > 20
    p0 = st.sample.pressure_offset
    dt = shifted_distance(st, model, 0.5, p0)
    assert dt.min() > 0
    if p_mean < 0:  # the floor was in play
        assert (st.systems.tau_c + 0.5 * (p0 - 0.5 * st.stress(P.G)[:, :2].sum(1))[:, None] < TAU_FLOOR).any()


@pytest.mark.parametrize("alpha,p0", [(0.0, 0.0), (0.2, 1.95), (0.3, 4.0)])
def test_first_yield_of_a_stress_free_lattice_follows_the_criterion(alpha, p0):
    """From a stress-free random state (uniform pressure p0), simple shear adds G gamma to Sxy and leaves p = p0:
    system s yields at the first step j with tau_c + alpha p0 - b G j dgamma <= 0, so the lattice's first
    avalanche is at j* = min over systems with b > 0 of that step: the yield stress G j* dgamma rises with the
    pressure by alpha p0 / b on the system that yields (tested exactly, step for step)."""
    model = Model(P, variant=variant("B", alpha_p=alpha, p_mean=p0, p_std=0.0))
    st, rng = model.new_state(2, 0)
    s = st.systems
    q = alpha * p0
    j = np.full(s.tau_c.shape, np.iinfo(np.int64).max)
    pos = s.b > 0
    j[pos] = np.ceil((s.tau_c[pos] + q) / (P.G * DG * s.b[pos])).astype(np.int64)
    # fix the estimate with the engine's exact predicate: ((tau_c - (a*0 + b*G*(j*dg))) + q) <= 0
    for _ in range(3):
        act = lambda jj: (s.tau_c - (s.a * 0.0 + s.b * (P.G * (jj * DG)))) + q <= 0  # noqa: E731
        j = np.where(pos & act(j - 1) & (j > 1), j - 1, j)
        j = np.where(pos & ~act(j), j + 1, j)
    steps, before, after, slips = model.drive(st, rng, 0.5)
    assert steps[1] == j.min() and slips[1] > 0
    assert before[1] == pytest.approx(P.G * j.min() * DG, abs=1e-12)


def test_local_shear_test_uses_the_shifted_threshold():
    """n = 1 patch (fixed boundary: the element is strained affinely, its pressure unchanged by the traceless
    pure shear): the onset strain is min over systems of (Delta tau_c + alpha_p p) / (G cos 2(theta - alpha))."""
    alpha, model = 0.4, Model(P, variant=variant("B", alpha_p=0.4, p_mean=1.95, p_std=0.22))
    st, rng = model.new_state(3, 0)
    model.quench(st, 0.25, rng)
    model.drive(st, rng, 0.3)
    al = np.deg2rad([0.0, 20.0, 90.0, 135.0])
    out, corners = model.probe(st, rng.copy(), [1, 3], np.rad2deg(al))
    dt = shifted_distance(st, model, alpha, st.sample.pressure_offset)
    s = st.systems
    for q_, a_ in enumerate(al):
        c = s.b * np.cos(2 * a_) - 2 * s.a * np.sin(2 * a_)
        g = np.where(c > 0, dt / (P.G * np.where(c > 0, c, 1)), np.inf).min(axis=1)
        assert np.allclose(out[:, 0, q_, 0], g[corners], rtol=1e-12, atol=0)
    assert np.isfinite(out[:, 1]).all()


def test_criterion_is_homogeneous_bit_for_bit():
    """tau_c + alpha_p p, gamma_max(tau) (Eq. 6) and the rates exp(-Delta tau / T) are homogeneous of degree one
    in stresses: doubling lambda, p0 (mean and std), T and the strain step doubles every stress and strain of
    the run exactly (binary scaling), quench and AQS, with the same random streams."""
    recs = []
    for s in (1.0, 2.0):
        p = dataclasses.replace(P, lam=P.lam * s)
        model = Model(p, dgamma=DG * s, variant=variant("B", alpha_p=0.3, p_mean=3.0 * s, p_std=0.2 * s))
        st, rng = model.new_state(4, 0, stream_key=77)
        model.quench(st, 0.25 * s, rng)
        recs.append((model.drive(st, rng, 0.5 * s), st.sig.copy()))
    (r1, s1), (r2, s2) = recs
    assert np.array_equal(r1[0], r2[0]) and np.array_equal(r1[3], r2[3])  # same steps, same slips
    assert np.array_equal(2 * r1[1], r2[1]) and np.array_equal(2 * r1[2], r2[2]) and np.array_equal(2 * s1, s2)


def test_uniform_pressure_raises_the_stationary_flow_stress():
    """A uniform pressure P shifts every threshold by alpha_p P.  Were the slips unchanged, the flow stress would
    rise by alpha_p P / <cos 2 theta> of the yielding systems (>= alpha_p P); but larger thresholds give larger
    slips (gamma_max grows with tau, Eq. 6) and larger stress drops, so the stationary stress rises by less.
    Measured at this size with 8 replicas: 0.57 alpha_p P (P = 1, 2, 4 with alpha_p = 0.2); asserted: a rise
    between 0.35 and 0.85 alpha_p P, with larger drops."""
    out = {}
    for P0 in (0.0, 2.0):
        ens = run_ensemble(P, range(6), seed=3, gamma_max=2.0, variant=variant("B", alpha_p=0.2, p_mean=P0, p_std=0.0))
        st = ens.macro[ens.macro.gamma_ext > 0.5]
        drops = (st.sigma_before - st.sigma_after)[st.n_slips > 0]
        out[P0] = (st.groupby("replica").sigma_after.mean().mean(), drops.mean())
    rise = (out[2.0][0] - out[0.0][0]) / (0.2 * 2.0)
    assert 0.35 < rise < 0.85, rise
    assert out[2.0][1] > out[0.0][1]
