"""Elastic kernels of the bilinear-quad FEM lattice (paper section 3, A.7; DESIGN.md section 2).

Tensor convention (stated once, used everywhere): symmetric 2x2 tensors are
stored as 3-vectors of *tensor components* ``(t_xx, t_yy, t_xy)`` -- never the
engineering shear 2 eps_xy.  The double contraction is therefore
``A:B = A_xx B_xx + A_yy B_yy + 2 A_xy B_xy = A @ W @ B`` with ``W = diag(1, 1, 2)``
(:func:`epcal.tensors.ddot`).  The isotropic stiffness ``sigma = (B - G) tr(eps) I + 2 G eps``
is the 3x3 matrix :func:`stiffness` acting on such vectors.

A *kernel* maps a plastic strain (3-vector) in one element to the stress change
(3-vector) of every element: ``dSigma[e'] = K[e' - e] @ deps_pl[e]``.

* :func:`periodic_kernel_fft` -- bi-periodic L x L lattice, macroscopic strain held
  fixed, via FFT of the block-circulant stiffness (exact FEM, full 2x2 Gauss).
* :func:`patch_kernel_direct` -- n x n patch with all boundary nodes fixed (local
  shear test, section 3.5).
* :func:`eshelby_tensor` and :func:`slip_stiffness` -- S of an element in its
  own lattice and f(theta) = (C:(S - I):M(theta)):M(theta) of Eq. (6).

The kernels do not depend on the element side l (2D elasticity is scale free),
only on L (or n), G and B.  :mod:`epcal.kernel_cache` keeps them on disk (this module does
no I/O).
"""
from __future__ import annotations

import numpy as np

from .tensors import ddot, slip_tensor  # noqa: F401 (the engine's names for them)

#: contraction weights for tensor-component 3-vectors, A:B = A @ W @ B
W = np.diag([1.0, 1.0, 2.0])
_GAUSS = 1.0 / np.sqrt(3.0)
#: local node order of an element: (0,0), (1,0), (1,1), (0,1) in units of l
CORNERS = np.array([(0, 0), (1, 0), (1, 1), (0, 1)])


def stiffness(G: float, B: float) -> np.ndarray:
    """Isotropic 2D stiffness C on tensor-component vectors: sigma = C @ eps."""
    return np.array([[B + G, B - G, 0.0], [B - G, B + G, 0.0], [0.0, 0.0, 2.0 * G]])


# ----------------------------------------------------------------- Q4 element
def _b_matrix(xi: float, eta: float, l: float) -> np.ndarray:
    """Strain-displacement matrix (3 x 8, tensor components) at natural point (xi, eta)."""
    sx = np.array([-1.0, 1.0, 1.0, -1.0])
    sy = np.array([-1.0, -1.0, 1.0, 1.0])
    dndx = (2.0 / l) * 0.25 * sx * (1.0 + sy * eta)
    dndy = (2.0 / l) * 0.25 * sy * (1.0 + sx * xi)
    Bm = np.zeros((3, 8))
    Bm[0, 0::2] = dndx
    Bm[1, 1::2] = dndy
    Bm[2, 0::2] = 0.5 * dndy
    Bm[2, 1::2] = 0.5 * dndx
    return Bm


def element_matrices(G: float, B: float, l: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Stiffness K_e (8 x 8, full 2x2 Gauss) and mean strain operator Bbar (3 x 8).

    DOFs ordered (ux, uy) per corner in :data:`CORNERS` order.  The element
    strain is the average of the symmetric gradient, which for Q4 is Bbar u.
    """
    C = stiffness(G, B)
    Ke = np.zeros((8, 8))
    detJ = (l / 2.0) ** 2
    for xi in (-_GAUSS, _GAUSS):
        for eta in (-_GAUSS, _GAUSS):
            Bm = _b_matrix(xi, eta, l)
            Ke += Bm.T @ W @ C @ Bm * detJ
    return Ke, _b_matrix(0.0, 0.0, l)


# ------------------------------------------------------------ periodic kernel
def periodic_kernel_fft(L: int, G: float, B: float) -> np.ndarray:
    """Stress kernel of the bi-periodic L x L lattice at fixed macroscopic strain.

    Returns K with shape (L, L, 3, 3): K[dx, dy] @ eps_pl is the stress change in
    the element at offset (dx, dy) (periodic) from a plastic strain eps_pl in the
    element at (0, 0).  The periodic stiffness is block circulant; each Fourier
    mode q is solved with its 2x2 stiffness.  q = 0 carries no displacement
    (macroscopic strain fixed), giving the uniform term -C eps_pl / L^2.
    """
    l = 1.0
    C = stiffness(G, B)
    Ke, Bbar = element_matrices(G, B, l)
    q = 2 * np.pi * np.fft.fftfreq(L)
    qx, qy = np.meshgrid(q, q, indexing="ij")
    phase = np.exp(1j * (qx[..., None] * CORNERS[:, 0] + qy[..., None] * CORNERS[:, 1]))  # (L,L,4)
    Bb = Bbar.reshape(3, 4, 2)
    Bq = np.einsum("ijc,mcd->ijmd", phase, Bb)  # (L,L,3,2)
    Kc = Ke.reshape(4, 2, 4, 2)
    Kq = np.einsum("ijc,cadb,ijd->ijab", phase.conj(), Kc, phase)  # (L,L,2,2)
    # force per unit plastic strain e_m: l^2 Bq^H W C e_m -> (L,L,2,3)
    F = l * l * np.einsum("ijmd,mn->ijdn", Bq.conj(), W @ C)
    Kq[0, 0] = np.eye(2)
    F[0, 0] = 0.0
    U = np.linalg.solve(Kq, F)  # (L,L,2,3)
    dEps = np.einsum("ijmd,ijdn->ijmn", Bq, U)  # (L,L,3,3) strain per unit eps_pl
    dSig = np.einsum("ab,ijbn->ijan", C, dEps - np.eye(3))
    K = np.fft.ifft2(dSig, axes=(0, 1))
    if np.abs(K.imag).max() > 1e-9 * np.abs(K.real).max():
        raise RuntimeError("periodic kernel is not real: FFT conventions broken")
    return np.ascontiguousarray(K.real)


def assemble(nx: int, ny: int, G, B: float, periodic: bool):
    """Sparse global stiffness of an nx x ny element grid (scipy CSR) and the node map.

    Nodes: (nx x ny) when periodic, else (nx+1) x (ny+1); node (i, j) sits at (x, y) = (i, j)
    and has DOFs 2*node + (0, 1).  ``G``: one shear modulus, or one per element (array of
    nx*ny values, flat index i*ny + j; model A).  Returns (K, element_nodes) with
    element_nodes (nx*ny, 4).
    """
    import scipy.sparse as sp

    mx, my = (nx, ny) if periodic else (nx + 1, ny + 1)
    i, j = np.meshgrid(np.arange(nx), np.arange(ny), indexing="ij")
    i, j = i.ravel(), j.ravel()
    en = np.stack([((i + cx) % mx) * my + (j + cy) % my for cx, cy in CORNERS], axis=1)
    dofs = np.stack([2 * en, 2 * en + 1], axis=2).reshape(len(en), 8)
    rows = np.repeat(dofs, 8, axis=1).ravel()
    cols = np.tile(dofs, (1, 8)).ravel()
    if np.ndim(G) == 0:
        Ke, _ = element_matrices(G, B, 1.0)
        vals = np.tile(Ke.ravel(), len(en))
    else:  # K_e is linear in (G, B): G_e K_e(1, 0) + B K_e(0, 1)
        KG, _ = element_matrices(1.0, 0.0, 1.0)
        KB, _ = element_matrices(0.0, 1.0, 1.0)
        vals = (np.ravel(G)[:, None] * KG.ravel() + B * KB.ravel()).ravel()
    K = sp.csr_matrix((vals, (rows, cols)), shape=(2 * mx * my, 2 * mx * my))
    return K, en


def stiffness_field(G, B: float, E: int) -> np.ndarray:
    """Stiffness of each of E elements, (E, 3, 3): one G for all, or one per element (model A)."""
    if np.ndim(G) == 0:
        return np.broadcast_to(stiffness(G, B), (E, 3, 3))
    return np.stack([stiffness(g, B) for g in np.ravel(G)])


def solve_periodic_direct(eps_pl: np.ndarray, G, B: float, macro=None) -> np.ndarray:
    """Stress field (L, L, 3) of a plastic strain field eps_pl (L, L, 3) by a direct sparse FEM solve.

    Independent of the FFT path and of the influence matrix of model A: assembles the periodic
    stiffness, pins one node (rigid translation) and solves at the macroscopic strain ``macro``
    (tensor components; default zero).  ``G`` may be one value per element (L, L).  Used by tests.
    """
    import scipy.sparse.linalg as spla

    L = eps_pl.shape[0]
    Cs = stiffness_field(G, B, L * L)
    K, en = assemble(L, L, G, B, periodic=True)
    _, Bbar = element_matrices(1.0, 1.0, 1.0)
    ep = eps_pl.reshape(-1, 3)
    e0 = np.zeros(3) if macro is None else np.asarray(macro, float)
    fe = np.einsum("dk,kl,elm,em->ed", Bbar.T, W, Cs, ep - e0)  # (E, 8)
    dofs = np.stack([2 * en, 2 * en + 1], axis=2).reshape(len(en), 8)
    f = np.zeros(K.shape[0])
    np.add.at(f, dofs.ravel(), fe.ravel())
    free = np.arange(2, K.shape[0])
    u = np.zeros(K.shape[0])
    u[free] = spla.spsolve(K[free][:, free].tocsc(), f[free])
    eps = (Bbar @ u[dofs].T).T + e0
    return np.einsum("eab,eb->ea", Cs, eps - ep).reshape(L, L, 3)


# --------------------------------------------------------------- patch kernel
def patch_kernel_direct(n: int, G: float, B: float) -> np.ndarray:
    """Stress kernel of an n x n patch with its boundary nodes fixed (section 3.5).

    Returns Kp with shape (n*n, n*n, 3, 3): Kp[a, b] @ eps_pl is the stress change
    of element a (flat index i*n + j) from a plastic strain eps_pl in element b,
    at fixed boundary displacement.  Dense solve of the interior nodes.
    """
    C = stiffness(G, B)
    E = n * n
    Kp = np.empty((E, E, 3, 3))
    if n == 1:
        Kp[0, 0] = -C
        return Kp
    K, en = assemble(n, n, G, B, periodic=False)
    _, Bbar = element_matrices(G, B, 1.0)
    m = n + 1
    ni, nj = np.divmod(np.arange(m * m), m)
    interior_nodes = np.flatnonzero((ni > 0) & (ni < n) & (nj > 0) & (nj < n))
    free = np.stack([2 * interior_nodes, 2 * interior_nodes + 1], axis=1).ravel()
    Kii = K[free][:, free].toarray()
    dofs = np.stack([2 * en, 2 * en + 1], axis=2).reshape(E, 8)
    # force vectors for unit plastic strain components in every element: (ndof, E*3)
    Fall = np.zeros((K.shape[0], E * 3))
    fe = Bbar.T @ W @ C  # (8, 3)
    for b in range(E):
        Fall[dofs[b], 3 * b:3 * b + 3] += fe
    U = np.zeros((K.shape[0], E * 3))
    U[free] = np.linalg.solve(Kii, Fall[free])
    eps = np.einsum("md,adx->amx", Bbar, U[dofs])  # (E, 3, E*3)
    eps = eps.reshape(E, 3, E, 3).transpose(0, 2, 1, 3)  # (a, b, 3, 3)
    eps[np.arange(E), np.arange(E)] -= np.eye(3)
    Kp[:] = np.einsum("xy,abyn->abxn", C, eps)
    return Kp


def solve_patch_direct(eps_pl: np.ndarray, G, B: float, boundary=None) -> np.ndarray:
    """Stress (n, n, 3) of a plastic strain field (n, n, 3) in a fixed-boundary patch, sparse solve.

    Independent route for tests: eliminates the boundary DOFs of the assembled sparse stiffness
    and solves for the given field at once.  ``boundary``: affine strain (tensor components)
    imposed on the boundary nodes, u = eps x (default zero); ``G`` may be one per element (n, n).
    """
    import scipy.sparse.linalg as spla

    n = eps_pl.shape[0]
    Cs = stiffness_field(G, B, n * n)
    ep = eps_pl.reshape(-1, 3)
    e0 = np.zeros(3) if boundary is None else np.asarray(boundary, float)
    K, en = assemble(n, n, G, B, periodic=False)
    _, Bbar = element_matrices(1.0, 1.0, 1.0)
    dofs = np.stack([2 * en, 2 * en + 1], axis=2).reshape(len(en), 8)
    f = np.zeros(K.shape[0])
    np.add.at(f, dofs.ravel(), np.einsum("dk,kl,elm,em->ed", Bbar.T, W, Cs, ep).ravel())
    m = n + 1
    ni, nj = np.divmod(np.arange(m * m), m)
    u = np.stack([e0[0] * ni + e0[2] * nj, e0[2] * ni + e0[1] * nj], axis=1).ravel()  # affine everywhere
    inner = np.flatnonzero((ni > 0) & (ni < n) & (nj > 0) & (nj < n))
    free = np.stack([2 * inner, 2 * inner + 1], axis=1).ravel()
    if free.size:
        fixed = np.setdiff1d(np.arange(K.shape[0]), free)
        Kc = K.tocsc()
        u[free] = spla.spsolve(Kc[free][:, free], f[free] - Kc[free][:, fixed] @ u[fixed])
    eps = (Bbar @ u[dofs].T).T
    return np.einsum("eab,eb->ea", Cs, eps - ep).reshape(n, n, 3)


# --------------------------------------------------------- Eshelby and f(theta)
def eshelby_tensor(K: np.ndarray, G: float, B: float) -> np.ndarray:
    """Eshelby tensor S (3x3 on tensor-component vectors) of an element in its lattice.

    Strain response of an element to a unit eigenstrain in itself (A.7):
    dSigma = C (S - I) eps_pl = K[0, 0] eps_pl, hence S = I + C^-1 K[0, 0].
    Accepts a periodic kernel (L, L, 3, 3) or a self block (3, 3).
    """
    K0 = K[0, 0] if K.ndim == 4 else K
    return np.eye(3) + np.linalg.solve(stiffness(G, B), K0)


def slip_stiffness(theta, K: np.ndarray) -> np.ndarray:
    """f(theta) = (C:(S - I):M(theta)):M(theta) = M:K0 M, negative (Eq. 6, A.7)."""
    K0 = K[0, 0] if K.ndim == 4 else K
    M = slip_tensor(theta)
    return ddot(M, M @ K0.T)
