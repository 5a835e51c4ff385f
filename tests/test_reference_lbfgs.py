"""Kernels of the AQS avalanche descent: cell-list pairs == k-d tree pairs, chunked (threaded)
forces == serial forces (same bits on 1 or 2 threads), the ring-buffer two-loop recursion == the
textbook L-BFGS two-loop, and the compiled descent reaching LAMMPS' force tolerance."""
import numba
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from epcal.reference import potential as pot
from epcal.reference.pair_lists import PeriodicPairList, _cell_pairs


def _random_cell(seed, n, tilt):
    """n atoms at the glass density in a square cell of tilt xy = tilt * ly, positions shifted by
    random lattice vectors (unwrapped images, as the AQS positions are)."""
    rng = np.random.default_rng(seed)
    L = np.sqrt(n / 1.2)
    box = (L, L, tilt * L)
    s = rng.uniform(0, L, (n, 2))
    x = np.column_stack([s[:, 0] + tilt * s[:, 1], s[:, 1]])
    k = rng.integers(-2, 3, (n, 2))
    x[:, 0] += k[:, 0] * box[0] + k[:, 1] * box[2]
    x[:, 1] += k[:, 1] * box[1]
    types = rng.integers(1, 3, n)
    return x, box, types


def _pair_set(i, j, nx, ny):
    out = set()
    for a, b, u, v in zip(i, j, nx, ny):
        out.add((a, b, int(u), int(v)) if a < b else (b, a, -int(u), -int(v)))
    return out


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31), n=st.integers(300, 1500), tilt=st.floats(-0.6, 0.6))
def test_cell_list_pairs_equal_kdtree_pairs(seed, n, tilt):
    """Same pairs (i, j) and the same image shifts from the cell list and the k-d tree, in tilted
    cells with atoms on arbitrary periodic images; every pair vector shorter than the cutoff."""
    x, box, types = _random_cell(seed, n, tilt)
    rc = pot.R_OUT + 0.3
    pi, pj, nx, ny = _cell_pairs(x, *box, rc)
    kd = PeriodicPairList(types)
    kd._build(x, box, kdtree=True)
    assert _pair_set(pi, pj, nx, ny) == _pair_set(kd.pi, kd.pj, kd.nx, kd.ny)
    d = x[pi] - x[pj] + np.column_stack([nx * box[0] + ny * box[2], ny * box[1]])
    assert (np.hypot(d[:, 0], d[:, 1]) < rc).all()


def test_chunked_forces_equal_serial_and_do_not_depend_on_threads():
    from epcal.reference.pair_kernels import energy_forces_chunked

    x, box, types = _random_cell(3, 1200, 0.2)
    x = x * 1.0
    pl = PeriodicPairList(types)
    x = pl.prepare(x * 1.02, box)  # spread a little: fewer overlapping random atoms
    E0, F0 = pl.energy_forces(x)
    args = (x, pl.pi, pl.pj, pl.pt, pl.sx, pl.sy, pl.par, pot.R_IN, pot.R_OUT)
    E1, F1 = energy_forces_chunked(*args, 3)
    assert E1 == pytest.approx(E0, rel=1e-12)
    assert np.abs(F1 - F0).max() <= 1e-12 * np.abs(F0).max()
    nt = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        E1a, F1a = energy_forces_chunked(*args, 3)
    finally:
        numba.set_num_threads(nt)
    assert E1a == E1 and np.array_equal(F1a, F1)  # the chunks fix the summation order


def test_two_loop_ring_buffer_equals_textbook_lbfgs():
    """H^-1 g of the ring buffer (after wrap-around, with H0 = c I) == Nocedal & Wright Alg. 7.4 on
    the last m pairs, and H^-1 y_k = s_k for the newest pair (the secant condition)."""
    from epcal.reference.lbfgs import push_pair, two_loop_first, two_loop_second

    rng = np.random.default_rng(5)
    n, m = 40, 5
    A = rng.normal(size=(n, n))
    A = A @ A.T + n * np.eye(n)  # SPD: every pair has s.y > 0
    S, Y, rho = np.zeros((m, n)), np.zeros((m, n)), np.zeros(m)
    mem = np.zeros(2, np.int64)
    pairs = []
    for _ in range(8):  # 8 > m: the buffer wraps around
        s = rng.normal(size=n)
        y = A @ s
        push_pair(s, y, S, Y, rho, mem)
        pairs.append((s, y))
    pairs = pairs[-m:]
    c = 0.37
    g = rng.normal(size=n)

    def textbook(v):
        q = v.copy()
        al = []
        for s, y in reversed(pairs):
            a = (s @ q) / (y @ s)
            q -= a * y
            al.append(a)
        r = c * q
        for (s, y), a in zip(pairs, reversed(al)):
            b = (y @ r) / (y @ s)
            r += (a - b) * s
        return r

    def ring(v):
        q = v.copy()
        alpha = np.zeros(m)
        two_loop_first(q, S, Y, rho, mem, alpha)
        q *= c
        two_loop_second(q, S, Y, rho, mem, alpha)
        return q

    assert mem[0] == m
    np.testing.assert_allclose(ring(g), textbook(g), rtol=1e-12, atol=1e-14)
    s_new, y_new = pairs[-1]
    np.testing.assert_allclose(ring(y_new), s_new, rtol=1e-10, atol=1e-12)
    # a pair of negative curvature is not stored
    push_pair(g, -g, S, Y, rho, mem)
    np.testing.assert_allclose(ring(g), textbook(g), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("r_cut", [None, 2.0, 1.6])
def test_preconditioner_hessian_sum_rules(r_cut):
    """The (possibly truncated) Hessian of the periodic pair list is symmetric and annihilates rigid
    translations (each row sums to zero per component); r_cut = R_OUT gives the full Hessian, and a
    truncated one equals the full one on the blocks of pairs closer than r_cut."""
    x, box, types = _random_cell(7, 600, 0.3)
    pl = PeriodicPairList(types)
    x = pl.prepare(x, box)
    H = pl.hessian(x, r_cut).tocsr()
    assert abs(H - H.T).max() <= 1e-12 * abs(H).max()
    for c in (0, 1):
        t = np.zeros(H.shape[0])
        t[c::2] = 1.0
        assert np.abs(H @ t).max() <= 1e-10 * abs(H).max()
    full = pl.hessian(x).tocsr()
    if r_cut is None:
        assert abs(full - pl.hessian(x, pot.R_OUT)).max() == 0.0
    else:
        d = x[pl.pi] - x[pl.pj] + np.column_stack([pl.sx, pl.sy])
        r = np.hypot(d[:, 0], d[:, 1])
        close = np.flatnonzero(r < r_cut)
        far = np.flatnonzero((r >= r_cut) & (r < pot.R_OUT))
        i, j = pl.pi[close[0]], pl.pj[close[0]]
        assert H[2 * i, 2 * j] == full[2 * i, 2 * j] != 0.0
        i, j = pl.pi[far[0]], pl.pj[far[0]]
        assert H[2 * i, 2 * j] == 0.0 and full[2 * i, 2 * j] != 0.0
