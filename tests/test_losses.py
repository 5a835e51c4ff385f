"""Physics and statistics of the calibration losses (epcal.losses)."""
from __future__ import annotations


import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import norm

from epcal import histograms as Hi
from epcal import losses as Lo
from epcal import resampling as Rs
from epcal.refdir import read_reference, read_reference_dir
from epcal.schema import MACRO, PROBE, TableError, write_table

G, DG = 13.2, 1e-4


def sawtooth(n_rep=3, n_av=400, seed=0, drop_scale=0.02, plateau=1.0, rep0=0):
    """A synthetic macro table: elastic branches of slope G, random drops around a plateau."""
    rng = np.random.default_rng(seed)
    rows = []
    for r in range(rep0, rep0 + n_rep):
        step, s = 0, 0.0
        rows.append((r, 0, 0.0, 0.0, 0.0, False))
        for _ in range(n_av):
            nst = int(rng.integers(1, 40)) if s > plateau - 0.05 else int(rng.integers(50, 200))
            step += nst
            s_b = s + G * DG * nst
            d = rng.exponential(drop_scale) if s_b > plateau - 0.05 else 0.3 * rng.exponential(drop_scale)
            rows.append((r, step, step * DG, s_b, s_b - d, True))
            s = s_b - d
        step += 5
        rows.append((r, step, step * DG, s + 5 * G * DG, s + 5 * G * DG, False))
    df = pd.DataFrame(rows, columns=["replica", "step", "gamma_ext", "sigma_before", "sigma_after", "avalanche"])
    return df


def test_macro_observables_hand_example():
    df = pd.DataFrame({
        "replica": [0, 0, 0, 0],
        "step": [5000, 5010, 5013, 5015],
        "gamma_ext": [0.5, 0.501, 0.5013, 0.5015],
        "sigma_before": [1.0, 1.1, 1.06, 1.04],
        "sigma_after": [1.0, 1.05, 1.02, 1.04],
        "avalanche": [False, True, True, False],
    })
    obs = Lo.macro_observables(df)
    np.testing.assert_allclose(np.sort(obs.values["drop"]), [0.04, 0.05])
    np.testing.assert_allclose(obs.values["incr"], [1.06 - 1.05])
    # strain grid: steps 5001..5009 on branch 0 (5000 is gamma=0.5, not > 0.5), 5010..5012, 5013..5014, 5015
    s = obs.values["sigma"]
    assert len(s) == 9 + 3 + 2 + 1
    np.testing.assert_allclose(s[0], 1.0 + 0.1 / 10)
    np.testing.assert_allclose(s[9], 1.05)
    np.testing.assert_allclose(s[-1], 1.04)


def test_sigma_samples_follow_elastic_branches():
    df = sawtooth(n_rep=2, n_av=50, seed=3)
    obs = Lo.macro_observables(df, gamma_min=0.0)
    # each replica contributes one sample per strain step after gamma = 0 (steps 1 .. last)
    assert len(obs.values["sigma"]) == df.groupby("replica")["step"].max().sum()
    # no sample exceeds the largest sigma_before, none is below the smallest sigma_after
    assert obs.values["sigma"].max() <= df["sigma_before"].max() + 1e-12
    assert obs.values["sigma"].min() >= df["sigma_after"].min() - 1e-12
    # increments on the EPM are multiples of G * dgamma
    q = obs.values["incr"] / (G * DG)
    np.testing.assert_allclose(q, np.round(q), atol=1e-6)


def overlap(ep, ref, bins=None, max_n=2000):
    """L[P] through the pipeline's one implementation (HistogramTarget on the reference's bins)."""
    ref = np.asarray(ref, float)
    return Hi.HistogramTarget(ref, bins or Hi.reference_bins(ref, max_n)).loss(ep)


def test_identical_samples_zero_and_disjoint_one():
    x = np.random.default_rng(1).normal(size=5000)
    assert overlap(x, x) == 0.0
    assert overlap(x + 100.0, x) == pytest.approx(1.0)
    assert overlap(np.array([]), x) != overlap(np.array([]), x)  # nan


@pytest.mark.parametrize("dmu", [0.0, 0.5, 1.0, 2.0])
def test_two_gaussians_analytic_overlap(dmu):
    """1 - L = 2 Phi(-|dmu| / (2 sigma)) for two unit-variance Gaussians.

    Tolerance: the finite-sample floor of the binned estimate is about
    sqrt(n_bins / (2 pi n)) ~ 0.01 at n = 2e5 with ~60 bins, plus binning bias
    O((h/sigma)^2) < 0.005: we allow 0.02.
    """
    rng = np.random.default_rng(42)
    a = rng.normal(0.0, 1.0, 200_000)
    b = rng.normal(dmu, 1.0, 200_000)
    expected = 1.0 - 2.0 * norm.cdf(-abs(dmu) / 2.0)
    assert overlap(b, a, max_n=200_000) == pytest.approx(expected, abs=0.02)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.floats(0.1, 10.0), st.floats(-5, 5))
def test_invariances(seed, scale, shift):
    rng = np.random.default_rng(seed)
    a = rng.gamma(2.0, 1.0, 800)
    b = rng.gamma(2.5, 1.1, 600)
    L = overlap(b, a)
    assert 0.0 <= L <= 1.0
    # sample order does not matter
    assert overlap(rng.permutation(b), rng.permutation(a)) == pytest.approx(L, abs=1e-12)
    # the binning follows the reference: affine changes of units leave L unchanged
    # (up to values landing exactly on a bin edge)
    assert overlap(scale * b + shift, scale * a + shift) == pytest.approx(L, abs=0.01)


def test_binning_stable_under_resampling():
    """Bins depend only on the reference; a bootstrap of the EPM moves L by O(1/sqrt(n))."""
    rng = np.random.default_rng(7)
    ref = rng.normal(0, 1, 50_000)
    ep = rng.normal(0.3, 1.1, 20_000)
    bins = Hi.reference_bins(ref)
    base = overlap(ep, ref, bins)
    boots = [overlap(rng.choice(ep, ep.size), ref, bins) for _ in range(20)]
    assert np.std(boots) < 0.02
    assert abs(np.mean(boots) - base) < 0.03
    # the bins from a resampled reference are nearly the same (FD width varies like the IQR)
    b2 = Hi.reference_bins(rng.choice(ref, ref.size))
    assert b2.width == pytest.approx(bins.width, rel=0.05)


def test_quantized_bins_hold_whole_quanta():
    q = G * DG
    bins = Hi.reference_bins(np.random.default_rng(0).exponential(0.02, 5000), quantum=q)
    m = round(bins.width / q)
    assert m >= 1 and bins.width == pytest.approx(m * q)
    vals = np.arange(0, 200) * q
    counts = np.bincount(bins.index(vals) - bins.index(vals).min())
    assert set(counts[1:-1].tolist()) == {m}


def test_relative_loss_and_lstat():
    assert Lo.relative_loss(2.0, 2.0) == 0.0
    assert Lo.relative_loss(1.0, 2.0) == pytest.approx(0.5)
    assert Lo.relative_loss(-1.0, 1.0) == pytest.approx(2.0)
    assert Lo.l_stat(0.1, 0.2, 0.4) == pytest.approx(0.5 * (0.1 + 0.3))


# ----------------------------------------------------------------- reference directories and evaluator
def probe_table(n_rep=4, seed=0, shift=0.0, R=(25.0, 30.0, 40.0), states=("quench", "stationary")):
    rng = np.random.default_rng(seed)
    rows = []
    for s in states:
        for r in range(n_rep):
            for R_ in R:
                for a in (0.0, 45.0, 90.0):
                    m = 50
                    ti = rng.normal(0.3 if a == 0 else -0.3, 0.2, m) + shift
                    dt = rng.gamma(2.0, 0.5, m) + shift
                    tc = ti + dt
                    drop = rng.gamma(2.0, 0.05, m)
                    rows.append(pd.DataFrame({"state": s, "replica": r, "x": rng.uniform(0, 98, m),
                                              "y": rng.uniform(0, 98, m), "R": R_, "alpha": a,
                                              "tau_i": ti, "tau_c": tc, "delta_tau_c": dt,
                                              "drop_tau_c": drop, "sigma_vm": np.abs(ti) + 0.1}))
    return pd.concat(rows, ignore_index=True)


def write_reference(path, macro, probe, **meta):
    path.mkdir(parents=True, exist_ok=True)
    write_table(macro, path / "macro.parquet", {}, MACRO)
    write_table(probe, path / "probe.parquet", {}, PROBE)
    m = {"domain_length": 98.8045, "shear_modulus": G, "bulk_modulus": 59.0, "delta_gamma": DG,
         "description": "synthetic"}
    m.update(meta)
    (path / "reference.yaml").write_text(yaml.safe_dump(m))
    return path


def test_evaluator_zero_on_itself_and_bootstrap(tmp_path):
    macro = sawtooth(n_rep=6, n_av=300, seed=5)
    probe = probe_table(n_rep=6, seed=5)
    ref = read_reference(write_reference(tmp_path / "ref", macro, probe))
    ev = Lo.Evaluator(ref)
    res = ev.evaluate(macro, probe, n_boot=16, seed=1)
    full = res[res.boot == -1].iloc[0]
    for c in ("L_sigma", "L_drop", "L_incr", "L_macro", "L_meso_plus", "L_meso_minus", "L_stat"):
        assert full[c] == pytest.approx(0.0, abs=1e-12), c
    boot = res[res.boot >= 0]
    assert len(boot) == 3 * 16 and (boot["L_stat"] > 0).all()
    assert (boot["resample"].value_counts() == 16).all()
    # a shifted EPM is worse, and the loss grows with the shift
    L = []
    for sh in (0.0, 0.05, 0.2):
        m2 = macro.assign(sigma_before=macro.sigma_before + sh, sigma_after=macro.sigma_after + sh)
        L.append(ev.evaluate(m2, probe_table(n_rep=6, seed=9, shift=sh)).iloc[0])
    assert L[0]["L_sigma"] < L[1]["L_sigma"] < L[2]["L_sigma"]
    assert L[0]["L_meso_plus"] < L[2]["L_meso_plus"]
    # exactly the configured R: a reference without it is an error naming what it has
    assert ev.ref_R == 30.0
    bad = read_reference(write_reference(tmp_path / "bad", macro, probe_table(n_rep=6, seed=5, R=(25.0, 30.5))))
    with pytest.raises(TableError, match=r"no 'stationary' rows at R = 30 .*R = 25, 30\.5"):
        Lo.Evaluator(bad)


def test_bootstrap_is_order_invariant(tmp_path):
    macro = sawtooth(n_rep=5, n_av=600, seed=2)
    ref = read_reference(write_reference(tmp_path / "ref", sawtooth(4, 600, 11), probe_table(4, 11)))
    ev = Lo.Evaluator(ref)
    probe = probe_table(5, 3)
    a = ev.evaluate(macro, probe, n_boot=8, seed=4)
    perm = macro.sample(frac=1.0, random_state=0)
    b = ev.evaluate(perm, probe.sample(frac=1.0, random_state=1), n_boot=8, seed=4)
    pd.testing.assert_frame_equal(a, b, check_exact=False, atol=1e-12)


def test_reference_errors_name_file_and_column(tmp_path):
    macro = sawtooth(2, 50, 0)
    probe = probe_table(2, 0)
    d = write_reference(tmp_path / "ok", macro, probe)
    read_reference_dir(d)
    # bad column type in the probe table
    bad = probe.assign(tau_c=probe.tau_c.astype(str))
    bad.to_parquet(d / "probe.parquet")
    with pytest.raises(TableError, match=r"probe\.parquet.*'tau_c'"):
        read_reference_dir(d)
    # missing column in the macro table
    d2 = write_reference(tmp_path / "m", macro, probe)
    macro.drop(columns=["sigma_after"]).to_parquet(d2 / "macro.parquet")
    with pytest.raises(TableError, match=r"macro\.parquet.*'sigma_after'.*missing"):
        read_reference_dir(d2)
    # missing key in reference.yaml
    d3 = write_reference(tmp_path / "y", macro, probe)
    (d3 / "reference.yaml").write_text(yaml.safe_dump({"domain_length": 98.8}))
    with pytest.raises(TableError, match=r"reference\.yaml.*'shear_modulus'"):
        read_reference_dir(d3)
    # no stationary probe rows
    d4 = write_reference(tmp_path / "s", macro, probe[probe.state == "quench"])
    with pytest.raises(TableError, match=r"probe\.parquet.*'state'.*stationary"):
        read_reference_dir(d4)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="macro.parquet"):
        read_reference_dir(tmp_path / "empty")


def test_weighted_counts_equal_the_pooled_sample():
    """loss_from_counts with integer replica / reference-unit weights == the loss of the pooled sample
    built by repeating each replica and unit that many times (the bootstrap path is the plain one)."""
    rng = np.random.default_rng(5)
    ref_units = [rng.normal(0, 1, rng.integers(50, 200)) for _ in range(6)]
    ep_reps = [rng.normal(0.2, 1.2, rng.integers(50, 200)) for _ in range(5)]
    ref = np.concatenate(ref_units)
    unit = np.concatenate([np.full(len(u), i) for i, u in enumerate(ref_units)])
    bins = Hi.reference_bins(ref)
    t = Hi.HistogramTarget(ref, bins, unit, len(ref_units))
    vals = np.concatenate(ep_reps)
    rep = np.concatenate([np.full(len(r), i) for i, r in enumerate(ep_reps)])
    counts, off = t.replica_counts(vals, rep, np.arange(len(ep_reps)))
    W = Rs.bootstrap_weights(rng, 4, len(ep_reps))
    V = Rs.bootstrap_weights(rng, 4, len(ref_units))
    L = t.loss_from_counts(counts, off, W, V)
    for b in range(4):
        ep_b = np.concatenate([np.tile(r, int(w)) for r, w in zip(ep_reps, W[b])])
        ref_b = np.concatenate([np.tile(u, int(v)) for u, v in zip(ref_units, V[b])])
        assert L[b] == pytest.approx(Hi.HistogramTarget(ref_b, bins).loss(ep_b), abs=1e-12)
    assert t.loss_from_counts(counts, off, np.ones((1, 5)), np.ones((1, 6)))[0] == pytest.approx(t.loss(vals), abs=1e-15)


def test_reference_units_two_level_draw():
    """Samples drawn with replacement; within each drawn sample its stationary states (told apart by
    gamma_ext) are redrawn among themselves, its quench state goes with the sample."""
    rows = []
    for r in range(5):
        for state, g in [("quench", 0.0), ("stationary", 1.0), ("stationary", 1.5), ("stationary", 2.0)]:
            rows.append({"replica": r, "state": state, "gamma_ext": g})
    probe = pd.DataFrame(rows)
    macro = pd.DataFrame({"replica": np.arange(5)})
    u = Rs.ReferenceUnits(macro, probe)
    assert len(u.samples) == 5 and len(u.units) == 20
    V = u.weights(seed=3, n_boot=200)
    assert np.all(V["sample"].sum(axis=1) == 5)
    unit_sample = np.array([x[0] for x in u.units])
    quench = np.array([x[1] == "quench" for x in u.units])
    for b in range(200):
        for s in range(5):
            ws = V["sample"][b, s]
            assert V["unit"][b, (unit_sample == s) & quench].sum() == ws
            assert V["unit"][b, (unit_sample == s) & ~quench].sum() == 3 * ws
    assert np.array_equal(u.weights(3, 200)["unit"], V["unit"])  # seeded


def test_reference_bootstrap_spread_of_a_mean_magnitude(tmp_path):
    """The reference-only bootstrap rows of L_meso move like the reference's own sampling error:
    for F = mean tau_c over n_ref samples, std(L[F]) ~ std(tau_c) / sqrt(n_ref) / |mean tau_c|."""
    macro = sawtooth(40, 900, 11)
    probe = probe_table(40, 11)
    ref = read_reference(write_reference(tmp_path / "ref", macro, probe))
    ev = Lo.Evaluator(ref, ref_seed=9)
    r = ev.evaluate(sawtooth(8, 900, 3), probe_table(8, 5), n_boot=400, seed=1, details=True)
    assert list(r["resample"].unique()) == ["full", "joint", "epm", "reference"]
    refrows = Lo.select_probe(probe, "stationary", 30.0, 0.0)
    per_rep = refrows.groupby("replica")["tau_c"].mean()
    expect = per_rep.std(ddof=1) / np.sqrt(len(per_rep)) / abs(refrows["tau_c"].mean())
    ep_mean = r["mean_tau_c_plus"].iloc[0]
    L_ref = r.loc[r["resample"] == "reference", "L_mean_tau_c_plus"]
    # L = |1 - F_EP / F_MD|: its spread over reference draws is |F_EP / F_MD| times the relative error of F_MD
    scale = abs(ep_mean / refrows["tau_c"].mean())
    assert L_ref.std() == pytest.approx(scale * expect, rel=0.2)
    # the EPM-only rows keep the reference whole: its magnitude never moves there
    assert r.loc[r["resample"] == "epm", "L_macro"].std() > 0


def test_scaled_macro_loss_matches_scaling_the_table(tmp_path):
    """The surrogate of the scaled search: scaling observables == evaluating the scaled table."""
    ref = read_reference(write_reference(tmp_path / "ref", sawtooth(4, 900, 11), probe_table(4, 11)))
    ev = Lo.Evaluator(ref)
    macro = sawtooth(n_rep=4, n_av=900, seed=3)
    obs_all = Lo.macro_observables(macro, 0.0)
    for s in (0.8, 1.0, 1.3):
        scaled = macro.assign(sigma_before=macro.sigma_before * s, sigma_after=macro.sigma_after * s,
                              gamma_ext=macro.gamma_ext * s)
        full = ev.evaluate(scaled).iloc[0]
        fast = ev.macro_loss_scaled(obs_all, s)
        # (a*s - b*s) vs (a - b)*s differ by rounding, which can move a value lying exactly on a
        # bin edge: a few values out of thousands.  (The quantized increments are requantized, not
        # scaled: tests/test_lambda_profile.py.)
        for k in ("L_sigma", "L_drop"):
            assert fast[k] == pytest.approx(full[k], abs=0.005), (s, k)
        if s == 1.0:
            assert fast["L_incr"] == pytest.approx(full["L_incr"], abs=0.005)


def test_reference_sample_draws_do_not_depend_on_the_probe_rows():
    """The macro stage (no probe rows) and the meso stage resample the same samples in each row."""
    macro = pd.DataFrame({"replica": np.arange(6)})
    probe = pd.DataFrame({"replica": np.repeat(np.arange(6), 3), "state": ["quench", "stationary", "stationary"] * 6,
                          "gamma_ext": [0.0, 1.0, 2.0] * 6})
    with_probe = Rs.ReferenceUnits(macro, probe).weights(7, 50)["sample"]
    without = Rs.ReferenceUnits(macro, probe.iloc[:0]).weights(7, 50)["sample"]
    assert np.array_equal(with_probe, without)


def _cluster_sums(x):
    """(n, s1, s2) per unit of x (units, rows) for one quantity."""
    return (np.full((x.shape[0], 1), float(x.shape[1])), x.sum(axis=1)[:, None], (x * x).sum(axis=1)[:, None])


def test_magnitude_std_of_clustered_rows_is_unbiased():
    """Rows share their unit's random offset (x = a_u + e, Var a = tau^2, Var e = s^2): the pooled
    variance of U units is low by Var(mean) = tau^2 / U + s^2 / (U n); the magnitude's variance
    equals the hand formula (pooled + spread of unit means / (U - 1)) and is unbiased for sigma^2 =
    tau^2 + s^2 (Monte Carlo over 4000 draws), where the plain pooled variance is not."""
    rng = np.random.default_rng(11)
    tau, s, U, n = 1.0, 0.5, 4, 30
    sigma2 = tau ** 2 + s ** 2
    ours, plain = [], []
    for _ in range(4000):
        x = rng.normal(0.0, tau, (U, 1)) + rng.normal(0.0, s, (U, n))
        v = Lo.magnitudes_from_sums(*_cluster_sums(x), np.ones((1, U)))[0, 1] ** 2
        hand = x.var() + x.mean(axis=1).var(ddof=1) / U
        assert v == pytest.approx(hand, rel=1e-9)
        ours.append(v)
        plain.append(x.var())
    se = np.std(ours) / np.sqrt(len(ours))
    assert abs(np.mean(ours) - sigma2) < 3 * se
    assert np.mean(plain) < sigma2 - 10 * se  # the ensemble-size bias the correction removes


@given(st.lists(st.integers(0, 3), min_size=3, max_size=6), st.integers(0, 10 ** 6))
@settings(max_examples=40, deadline=None)
def test_magnitude_weights_are_unit_multiplicities(w, seed):
    """A bootstrap weight w_u is the unit drawn w_u times: the same magnitudes as the sums of the
    units repeated (unequal row counts; no correction with at most one unit drawn)."""
    rng = np.random.default_rng(seed)
    units = [rng.normal(rng.normal(), 1.0, rng.integers(1, 6)) for _ in w]
    if sum(w) == 0:
        return
    sums = [np.array([[len(u)]], float) for u in units], [np.array([[u.sum()]]) for u in units], \
        [np.array([[(u * u).sum()]]) for u in units]
    n, s1, s2 = (np.vstack(a) for a in sums)
    got = Lo.magnitudes_from_sums(n, s1, s2, np.array([w], float))[0]
    rep = [i for i, k in enumerate(w) for _ in range(k)]
    want = Lo.magnitudes_from_sums(n[rep], s1[rep], s2[rep], np.ones((1, len(rep))))[0]
    assert got == pytest.approx(want, rel=1e-9, abs=1e-12)
    if len(rep) == 1:  # one unit: its own pooled std, nothing to correct with
        assert got[1] == pytest.approx(units[rep[0]].std(), rel=1e-9, abs=1e-12)
