"""Heterogeneous elasticity of model A (appendix A.8.1): the exact FEM response of a lattice whose
elements each have their own shear modulus G_e (bulk modulus B common), fixed for the whole run.

G_e ~ Weibull with mean G_mean and shape k_G (paper: 18.4 and 1.3), drawn per sample from its own
seeded stream.  Nothing is translation invariant any more, so instead of the FFT kernel of
:mod:`epcal.elastic` the responses are solved on the assembled sparse stiffness (same bilinear
quads, full 2x2 Gauss, same tensor-component convention):

* :func:`influence_matrix` -- K[a, b] (3 x 3): stress change of element a per unit plastic strain
  in element b at fixed macroscopic strain (periodic lattice): one sparse LU of the stiffness
  (one node pinned), reused for the 3E right-hand sides (one per source element and component).
* the response to the external strain: stress of each element per unit simple shear gamma_ext
  (eps = (0, 0, gamma/2)), c_a = -sum_b K[a, b] (0, 0, 1/2) -- a uniform plastic strain equal to
  the macroscopic strain leaves the lattice stress free;
* per element the Eshelby tensor S_e = I + C_e^-1 K[e, e] and the Fourier coefficients of
  f_e(theta) = M:K[e, e]:M, the slip stiffness gamma_max needs (Eq. 6, A.7);
* :func:`patch_response` -- the fixed-boundary patch of the local shear test (section 3.5) with
  its elements' own moduli: eigenstrain kernel Kp[x, y] and the stress R_x of each element per
  unit affine boundary strain (R_x = C for a homogeneous patch).

Sum rules that still hold (tested): Maxwell-Betti reciprocity W K[a, b] = (W K[b, a])^T; the mean
stress change of a plastic strain p in element b is -(1/E) (W D_b)^T p / W, D_b the stress of b per
unit macroscopic strain (Hill/Levin: reduces to -C p / E when homogeneous).  What no longer holds:
translation invariance, and "a uniform plastic strain changes only the uniform stress".
"""
from __future__ import annotations

import collections
import hashlib
import math
import threading

import numpy as np

from .elastic import W, assemble, element_matrices, stiffness_field
from .slip import FIT_ANGLES, fit_slip_stiffness
from .tensors import slip_tensor
from .variant_kernels import HetLattice, PatchSet

#: simple shear gamma_ext = 1 in tensor components: eps_xy = 1/2
SIMPLE_SHEAR = np.array([0.0, 0.0, 0.5])


def weibull_moduli(rng: np.random.Generator, E: int, mean: float, shape: float) -> np.ndarray:
    """E shear moduli ~ Weibull(shape, scale) with scale = mean / Gamma(1 + 1/shape) (mean ``mean``)."""
    u = (rng.integers(0, 2**53, size=E) + 0.5) / 2.0**53  # open interval (0, 1): no zero modulus
    return mean / math.gamma(1.0 + 1.0 / shape) * (-np.log(u)) ** (1.0 / shape)


def _dofs(en: np.ndarray) -> np.ndarray:
    return np.stack([2 * en, 2 * en + 1], axis=2).reshape(len(en), 8)


def _eigenstrain_forces(Cs: np.ndarray, dofs: np.ndarray, ndof: int):
    """Sparse (ndof, 3E): nodal forces B^T W C_b e_n of a unit plastic strain component n in element b."""
    import scipy.sparse as sp

    _, Bbar = element_matrices(1.0, 1.0, 1.0)
    E = len(dofs)
    fe = np.einsum("dk,kl,blm->bdm", Bbar.T, W, Cs)  # (E, 8, 3)
    rows = np.repeat(dofs[:, :, None], 3, axis=2)
    cols = np.broadcast_to(3 * np.arange(E)[:, None, None] + np.arange(3), (E, 8, 3))
    return sp.csc_matrix((fe.ravel(), (rows.ravel(), cols.ravel())), shape=(ndof, 3 * E))


def _strain_operator(dofs: np.ndarray, ndof: int):
    """Sparse (3E, ndof): mean strain of each element from the nodal displacements (Bbar u)."""
    import scipy.sparse as sp

    _, Bbar = element_matrices(1.0, 1.0, 1.0)
    E = len(dofs)
    rows = np.broadcast_to(3 * np.arange(E)[:, None, None] + np.arange(3)[:, None], (E, 3, 8))
    cols = np.broadcast_to(dofs[:, None, :], (E, 3, 8))
    vals = np.broadcast_to(Bbar, (E, 3, 8))
    return sp.csr_matrix((vals.ravel(), (rows.ravel(), cols.ravel())), shape=(3 * E, ndof))


def influence_matrix(L: int, G: np.ndarray, B: float) -> np.ndarray:
    """K (E, E, 3, 3) of the bi-periodic L x L lattice with shear moduli G (L*L values): K[a, b] @ p is
    the stress change of element a from a plastic strain p in element b, at fixed macroscopic strain.

    One sparse LU of the stiffness (node 0 pinned: rigid translation; a periodic displacement has zero
    mean strain, so the macroscopic strain is held), solved for all 3E unit eigenstrains at once.
    """
    import scipy.sparse as sp
    import scipy.sparse.linalg as spla

    E = L * L
    G = np.ravel(np.asarray(G, float))
    Cs = stiffness_field(G, B, E)
    Kg, en = assemble(L, L, G, B, periodic=True)
    dofs = _dofs(en)
    ndof = Kg.shape[0]
    free = np.arange(2, ndof)
    lu = spla.splu(Kg[free][:, free].tocsc())
    U = np.zeros((ndof, 3 * E))
    U[free] = lu.solve(_eigenstrain_forces(Cs, dofs, ndof)[free].toarray())
    eps = _strain_operator(dofs, ndof) @ U  # (3E, 3E): strain of (a, m) per unit plastic strain (b, n)
    del U
    eps[np.arange(3 * E), np.arange(3 * E)] -= 1.0  # elastic strain = strain - plastic strain
    K = sp.block_diag(list(Cs), format="csr") @ eps
    return K.reshape(E, 3, E, 3).transpose(0, 2, 1, 3)


def slip_stiffness_field(K_self: np.ndarray) -> np.ndarray:
    """Fourier coefficients (E, 5) of f_e(theta) = M:K[e, e]:M for each self block (E, 3, 3)
    (as :func:`epcal.slip.slip_stiffness_coefficients`, vectorized over elements)."""
    M = slip_tensor(FIT_ANGLES)  # (17, 3)
    f = np.einsum("ti,ij,ejk,tk->et", M, W, K_self, M)
    return np.ascontiguousarray(fit_slip_stiffness(f, "f_e(theta)"))


class HeterogeneousLattice:
    """The elastic responses of one sample of model A (see module docstring).

    Attributes: ``G`` (E,) moduli; ``load`` (E, 3) stress per unit gamma_ext; ``G_eff`` = mean of
    load[:, 2] (the macroscopic shear modulus of the sample); ``K_self`` (E, 3, 3); ``f_coef``
    (E, 5); ``kernels`` the :class:`epcal.variant_kernels.HetLattice` the numba kernels read.
    """

    def __init__(self, L: int, G: np.ndarray, B: float):
        self.L, self.B = int(L), float(B)
        self.G = np.ascontiguousarray(np.ravel(G), dtype=float)
        E = self.L ** 2
        K = influence_matrix(self.L, self.G, self.B).reshape(E, E, 9)  # (a, b, 3*3)
        K2 = K.reshape(E, E, 3, 3).transpose(0, 2, 1, 3).reshape(3 * E, 3 * E)  # (a m, b n)
        self.K_self = np.ascontiguousarray(K[np.arange(E), np.arange(E)].reshape(E, 3, 3))
        self.load = np.ascontiguousarray((-K2.reshape(3 * E, E, 3) @ SIMPLE_SHEAR).sum(axis=1).reshape(E, 3))
        self.G_eff = float(self.load[:, 2].mean())
        self.f_coef = slip_stiffness_field(self.K_self)
        kd = np.ascontiguousarray((K2[:, 0::3] - K2[:, 1::3]).T)  # (source b, target a * 3 + comp)
        kx = np.ascontiguousarray(0.5 * K2[:, 2::3].T)
        load_d = np.ascontiguousarray(self.load[:, 0] - self.load[:, 1])
        load_x = np.ascontiguousarray(self.load[:, 2])
        self.kernels = HetLattice(load_d, load_x, 0.5 * np.abs(load_d) + np.abs(load_x), kd, kx, self.f_coef)
        self.nbytes = kd.nbytes + kx.nbytes + self.K_self.nbytes

    def eshelby_tensors(self) -> np.ndarray:
        """S_e = I + C_e^-1 K[e, e] (E, 3, 3), the strain response of each element to its own eigenstrain."""
        Cs = stiffness_field(self.G, self.B, len(self.G))
        return np.eye(3) + np.linalg.solve(Cs, self.K_self)


# ------------------------------------------------------------------ fixed-boundary patches
def patch_response(Gp: np.ndarray, B: float) -> tuple[np.ndarray, np.ndarray]:
    """Fixed-boundary patch of n x n elements with moduli Gp (n, n) (section 3.5, model A).

    Returns (Kp, R): Kp (m, m, 3, 3), Kp[x, y] @ p the stress change of element x (flat i*n + j) from
    a plastic strain p in y at fixed boundary; R (m, 3, 3), R[x] @ eps the stress of x when the
    boundary nodes follow the affine strain eps (tensor components).  Dense solve of the interior.
    """
    n = Gp.shape[0]
    m = n * n
    G = np.ravel(Gp).astype(float)
    Cs = stiffness_field(G, B, m)
    Kg, en = assemble(n, n, G, B, periodic=False)
    dofs = _dofs(en)
    ndof = Kg.shape[0]
    nodes = n + 1
    ni, nj = np.divmod(np.arange(nodes * nodes), nodes)
    interior = (ni > 0) & (ni < n) & (nj > 0) & (nj < n)
    free = np.stack([2 * np.flatnonzero(interior), 2 * np.flatnonzero(interior) + 1], axis=1).ravel()
    # right-hand sides: 3m unit eigenstrains, then the 3 unit affine boundary strains (u = eps x)
    U = np.zeros((ndof, 3 * m + 3))
    for k, e0 in enumerate(np.eye(3)):
        U[0::2, 3 * m + k] = e0[0] * ni + e0[2] * nj
        U[1::2, 3 * m + k] = e0[2] * ni + e0[1] * nj
    U[free] = 0.0
    if free.size:
        Kd = Kg.toarray()
        fixed = np.setdiff1d(np.arange(ndof), free)
        rhs = np.concatenate([_eigenstrain_forces(Cs, dofs, ndof)[free].toarray(),
                              -Kd[np.ix_(free, fixed)] @ U[fixed, 3 * m:]], axis=1)
        U[free] = np.linalg.solve(Kd[np.ix_(free, free)], rhs)
    eps = (_strain_operator(dofs, ndof) @ U).reshape(m, 3, 3 * m + 3)
    elastic = eps[:, :, :3 * m].reshape(m, 3, m, 3).transpose(0, 2, 1, 3).copy()  # (x, y, 3, 3)
    elastic[np.arange(m), np.arange(m)] -= np.eye(3)
    Kp = np.einsum("xij,xyjk->xyik", Cs, elastic)
    R = np.einsum("xij,xjk->xik", Cs, eps[:, :, 3 * m:])
    return Kp, R


def patch_set(G: np.ndarray, L: int, B: float, n_list, corners) -> tuple:
    """Flattened fixed-boundary responses of every (corner, n) patch of the lattice with moduli G (E,).

    Returns (kd_flat, kx_flat, patch_f_coef, PatchSet) for :func:`epcal.probe.probe_kernel` (its ``het``): the
    reduced patch kernel of (p, i) at kd_flat[k_off[p, i]:] laid out [y, x, 3] (as
    :func:`epcal.probe.flatten_patch_kernels`), the f_x coefficients and loading responses of its
    elements at patch_f_coef[patch_f_off[p, i] + x] and resp[patch_f_off[p, i] + x] (3 x 3, row-major).
    Patches of the same moduli are built once (:data:`PATCHES`).
    """
    from .dynamics import reduce_kernel

    Gl = np.asarray(G, float).reshape(L, L)
    P, S = len(corners), len(n_list)
    k_off = np.empty((P, S), np.int64)
    patch_f_off = np.empty((P, S), np.int64)
    kd_parts, kx_parts, pf_parts, r_parts = [], [], [], []
    kpos = epos = 0
    for p, c in enumerate(corners):
        ci, cj = divmod(int(c), L)
        for i, n in enumerate(n_list):
            Gp = Gl[np.ix_((ci + np.arange(n)) % L, (cj + np.arange(n)) % L)]

            def build(Gp=Gp, n=n):
                Kp, R = patch_response(Gp, B)
                Kd, Kx = reduce_kernel(Kp)
                return (np.ascontiguousarray(Kd.transpose(1, 0, 2)).ravel(),
                        np.ascontiguousarray(Kx.transpose(1, 0, 2)).ravel(),
                        slip_stiffness_field(Kp[np.arange(n * n), np.arange(n * n)]), R.reshape(-1, 9))

            hit = PATCHES.get((int(n), float(B), moduli_key(Gp)), build, lambda v: sum(a.nbytes for a in v))
            kd_parts.append(hit[0]); kx_parts.append(hit[1]); pf_parts.append(hit[2]); r_parts.append(hit[3])
            k_off[p, i] = kpos
            patch_f_off[p, i] = epos
            kpos += hit[0].size
            epos += n * n
    return (np.concatenate(kd_parts), np.concatenate(kx_parts), np.ascontiguousarray(np.concatenate(pf_parts)),
            PatchSet(k_off, patch_f_off, np.ascontiguousarray(np.concatenate(r_parts))))


class BoundedCache:
    """Thread-safe in-process cache holding at most ``max_bytes`` of values (least recently used out).

    A calibration with common random numbers meets the same samples (moduli fields) at every
    parameter point: their lattices and patch responses are built once."""

    def __init__(self, max_bytes: int = 1 << 29):
        self.max_bytes = int(max_bytes)
        self._d: collections.OrderedDict = collections.OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, key, build, nbytes):
        with self._lock:
            if key in self._d:
                self._d.move_to_end(key)
                return self._d[key]
        value = build()  # outside the lock: replicas build their lattices in parallel
        with self._lock:
            if key not in self._d:
                self._d[key] = value
                self._size += nbytes(value)
            while len(self._d) > 1 and self._size > self.max_bytes:
                _, old = self._d.popitem(last=False)
                self._size -= nbytes(old)
        return value


def moduli_key(G: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(G, float).tobytes()).hexdigest()


#: lattices of model A's samples (at L_EP = 15 one is 2.4 MB, at 29 one is 34 MB)
LATTICES = BoundedCache(1 << 29)
#: reduced fixed-boundary patch responses of model A
PATCHES = BoundedCache(1 << 29)


def lattice(L: int, G: np.ndarray, B: float) -> HeterogeneousLattice:
    """The (cached) :class:`HeterogeneousLattice` of moduli G."""
    return LATTICES.get((int(L), float(B), moduli_key(G)), lambda: HeterogeneousLattice(L, G, B),
                        lambda v: v.nbytes)
