"""Vectorized elementary functions (epcal.vecmath) against numpy's, to a stated ulp bound."""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from epcal.vecmath import vexp, vlog, vsincos


def _ulp_err(got, ref):
    return np.abs(got - ref) / np.spacing(np.abs(ref))


def _log(x):
    x = np.ascontiguousarray(x, float)
    out = np.empty_like(x)
    vlog(x, out, np.empty(x.size, np.int64), np.empty_like(x))
    return out


def _exp(x):
    x = np.ascontiguousarray(x, float)
    out = np.empty_like(x)
    vexp(x, out, np.empty_like(x))
    return out


def test_log_within_two_ulp_over_the_normal_range():
    rng = np.random.default_rng(0)
    x = np.concatenate([np.exp(rng.uniform(-700, 700, 200_000)), rng.uniform(0, 2, 100_000),
                        1 + rng.uniform(-1e-8, 1e-8, 10_000),
                        [2.2250738585072014e-308, 1.7e308, 0.5, 2.0, np.sqrt(2), np.sqrt(0.5), 1 - 2**-53, 1 + 2**-52]])
    x = x[x > 0]
    got, ref = _log(x), np.log(x)
    nz = ref != 0
    assert _ulp_err(got[nz], ref[nz]).max() <= 2
    assert np.all(got[~nz] == 0.0)  # ln 1 = 0 exactly


def test_exp_within_two_ulp():
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.uniform(-700, 700, 200_000), rng.uniform(-1, 1, 100_000), [0.0, -0.0, 1e-300, np.log(2) / 2]])
    assert _ulp_err(_exp(x), np.exp(x)).max() <= 2
    assert _exp(np.array([0.0]))[0] == 1.0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-3.9, 3.9), min_size=1, max_size=40))
def test_sincos_absolute_error_and_pythagoras(xs):
    x = np.array(xs)
    s, c = np.empty_like(x), np.empty_like(x)
    vsincos(x, s, c)
    assert np.abs(s - np.sin(x)).max() <= 4e-16
    assert np.abs(c - np.cos(x)).max() <= 4e-16
    assert np.abs(s * s + c * c - 1).max() <= 1e-15


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(1e-300, 1e300), min_size=1, max_size=40))
def test_log_exp_round_trip(xs):
    """exp(ln x) = x to a few ulp (the composition the Weibull sampler uses)."""
    x = np.array(xs)
    assert np.all(np.abs(_exp(_log(x)) - x) <= 1e-12 * x)
    assert np.all(_ulp_err(_log(x)[x != 1], np.log(x)[x != 1]) <= 2)
    assert np.all(_log(x)[x == 1] == 0.0)
