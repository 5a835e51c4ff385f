"""Athermal quasi-static (AQS) simple shear of the glass (paper section 2.1).

Each step: affine simple shear x += dgamma * y of box and atoms, then CG
minimization.  Speed-up: the minimization starts from the affine map *plus the
previous step's non-affine displacement* (the linear response of an elastic
branch repeats from one step to the next, so the first guess is already
accurate to O(dgamma^2) and CG needs few iterations).  After a plastic step the
previous non-affine displacement is a bad guess and is not used.  With CG the guess is u_n
(``order=1``: a linear extrapolation doubles the unconverged part of u_n at loose tolerances).

``solver="newton"``: L-BFGS (memory 8) preconditioned by a stored, reused sparse LU of the
Hessian of the periodic glass (atom 0 pinned), of the pairs closer than ``precond_cutoff`` = 2.0
(numba Hessian kernel + symmetric-mode single-precision SuperLU), with an
energy line search; the iterations use the numba energy/force kernels of
:class:`epcal.reference.pair_lists.PeriodicPairList` and LAMMPS
(``run 0``) judges the final tolerance and computes the stress.  First guess 2 u_n - u_{n-1}
(order 2; with a tight solver it is better than u_n).  The factorization is renewed at the start
of a step after a step with more than ``refactor_iters`` iterations or once the iterations beyond
``base_iters`` per step since the last one add up to ``refactor_excess``.  An avalanche that the
iteration does not get through within ``newton_maxiter`` iterations (counted in ``n_fallback``):
plain L-BFGS compiled in one loop (:mod:`epcal.reference.lbfgs`) down the
avalanche until the energy stalls, then the preconditioned iteration with a fresh factorization in
the new basin (up to ``avalanche_rounds`` rounds, then plain L-BFGS to the tolerance); LAMMPS CG
only if all of this fails (``n_cg``).  The ``iterations`` column counts all iterations of the
step (quasi-Newton, L-BFGS, CG).  The force kernel runs on numba's threads (NUMBA_NUM_THREADS;
the rules set it to the job's ``threads``) in fixed chunks: the same bits on 1 or 2 threads.
"""
from __future__ import annotations

import time

import numpy as np

from .lammps_driver import Lammps, min_image

#: a step whose max non-affine displacement exceeds this is not used as first guess for the next
EXTRAPOLATE_DMAX = 0.05


class AQS:
    """AQS driver around a periodic :class:`Lammps` instance."""

    def __init__(self, lmp: Lammps, dgamma: float = 1e-4, ftol: float = 1e-6, etol: float = 0.0,
                 extrapolate: bool = True, maxiter: int = 100000, order: int | None = None, solver: str = "cg",
                 newton_maxiter: int = 25, refactor_iters: int = 25,
                 refactor_excess: int = 80, avalanche: str = "lbfgs", precond_cutoff: float | None = 2.0):
        if solver not in ("cg", "newton"):
            raise ValueError(f"solver must be 'cg' or 'newton', got {solver!r}")
        self.solver = solver
        self.newton_maxiter = int(newton_maxiter)
        self.lbfgs_m = 8
        self.refactor_iters = int(refactor_iters)
        self.refactor_excess = int(refactor_excess)
        self.max_disp = 0.1  # largest displacement component of one iteration (line-search start)
        self._lu = None
        self._refactor = False
        self._pairs = None
        self.n_factor = 0
        self.n_fallback = 0
        self.t_factor = 0.0
        self.fail_log = []
        self.trace = None
        self.lu_single = True
        self.avalanche = avalanche
        self.avalanche_maxiter = 4000
        # the descent of an avalanche has stalled when the energy fell by less than stall_frac of its
        # drop so far over the last stall_window iterations (tested every 25)
        # (100, 1e-2) over (100, 1e-3): 13 % less time over 10 replayed avalanches, same minima
        self.stall_window = 100
        self.stall_frac = 1e-2
        self._n_desc = 0
        self.base_iters = 2  # iterations per step with a fresh factorization (beyond them: "excess")
        # pairs beyond this distance left out of the preconditioning Hessian (None: all pairs).  At 2.0
        # (the LJ range; the smoothing tail has small, negative stiffness) the factorization has half
        # the fill, for a few more iterations per step (benchmarks/reference/RESULTS.md)
        self.precond_cutoff = None if precond_cutoff is None else float(precond_cutoff)
        self.avalanche_rounds = 3  # descent-until-stall + fresh factorization rounds of one avalanche
        self.n_eval = np.zeros(1, np.int64)  # force evaluations of the compiled avalanche descent
        self.nchunk = 2  # pair-list chunks of the force kernel (threads share them; fixed: same bits on 1 or 2)
        self.avalanche_m = 20  # L-BFGS memory of the plain descent (fewer iterations per avalanche than 8)
        self.n_cg = 0
        self._excess = 0
        self.lmp = lmp
        self.dgamma = dgamma
        self.ftol = ftol
        self.etol = etol
        self.extrapolate = extrapolate
        # first guess: u_n for CG (see above); 2 u_n - u_{n-1} for the quasi-Newton solver, which
        # converges the step tightly (fewer iterations per step than from u_n)
        self.order = int(order) if order is not None else (2 if solver == "newton" else 1)
        self.maxiter = maxiter
        self._u_prev = None
        self._u_prev2 = None

    def step(self) -> dict:
        lmp = self.lmp
        t0 = time.perf_counter()
        x0 = lmp.positions()
        lx, ly, xy0 = lmp.box()
        lmp.shear_box(self.dgamma)
        xa = x0.copy()
        xa[:, 0] += self.dgamma * xa[:, 1]  # affine image of x0 (before any re-wrap)
        _, _, xy1 = lmp.box()
        guess = self.guess() if self.extrapolate and self._u_prev is not None else None
        res = None
        if self.solver == "newton":
            res = self._newton(xa + guess if guess is not None else xa.copy())
            if res is None:
                # an avalanche the quasi-Newton iteration did not get through within newton_maxiter
                # iterations; the stored Hessian belongs to the old basin and is renewed
                self.n_fallback += 1
                its = self._it_fail
                if self.avalanche == "lbfgs":
                    self._refactor = True  # the stored Hessian belongs to the old basin
                    res, n = self._avalanche(self._x_fail)
                    its += n
                    if res is not None:
                        res.iterations = its
                if res is None:
                    self.n_cg += 1
                    self._refactor = True
                    lmp.set_positions(self._x_fail)
                    res = lmp.minimize(etol=self.etol, ftol=self.ftol, maxiter=self.maxiter)
                    res.iterations += its
        if res is None:
            if guess is not None and self.solver != "newton":
                lmp.set_positions(xa + guess)
            res = lmp.minimize(etol=self.etol, ftol=self.ftol, maxiter=self.maxiter)
        x1 = lmp.positions()
        u = min_image(x1 - xa, lx, ly, xy1)
        d = np.hypot(u[:, 0], u[:, 1])
        dmax = float(d.max())
        elastic = dmax < EXTRAPOLATE_DMAX
        self._u_prev2 = self._u_prev if elastic else None
        self._u_prev = u if elastic else None
        s = lmp.stress()
        return {"sxx": s[0], "syy": s[1], "sxy": s[2], "pe": res.energy, "fnorm": res.fnorm2,
                "iterations": res.iterations, "d_max": dmax, "d_rms": float(np.sqrt((d**2).mean())),
                "seconds": time.perf_counter() - t0}

    def _factor(self, x) -> bool:
        """Sparse LU of the Hessian at ``x`` (positions prepared by the pair list, current box),
        atom 0 pinned (removes the translations); numba Hessian kernel, symmetric-mode SuperLU."""
        return self._install(self._splu(self._hessian_block(x)))

    def _hessian_block(self, x):
        A = self._pairs.hessian(x, self.precond_cutoff)[2:, 2:].tocsc()
        # a preconditioner only: single precision factorizes faster
        return A.astype(np.float32) if self.lu_single else A

    @staticmethod
    def _splu(A):
        """(LU or None, seconds): symmetric-mode SuperLU (MMD on A + A^T, diagonal pivots); thread-safe."""
        import scipy.sparse.linalg as spla

        t0 = time.perf_counter()
        try:
            lu = spla.splu(A, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0, options={"SymmetricMode": True})
        except RuntimeError:
            lu = None
        return lu, time.perf_counter() - t0

    def _install(self, lu_t) -> bool:
        lu, t = lu_t
        self._lu = lu
        if lu is None:
            return False
        self._lu_dtype = np.float32 if self.lu_single else np.float64
        self.t_factor += t
        self.n_factor += 1
        self._excess = 0
        return True

    def _newton(self, x, precond=True, maxiter=None):
        """Quasi-Newton relaxation from ``x``: L-BFGS (memory ``lbfgs_m``) preconditioned by a stored,
        reused sparse LU of the Hessian (atom 0 pinned), with an energy line search.

        Energies and forces of the iterations come from the numba kernels of
        :class:`epcal.reference.pair_lists.PeriodicPairList` (the same pair potential as
        LAMMPS); once their force norm is below ``ftol``, LAMMPS (``run 0``) evaluates the
        state and is the judge of the tolerance exactly as for its own minimizer (and computes the
        stress).  With the stored Hessian of a nearby state the first iteration is (close to) a
        Newton step; through a rearrangement the preconditioner is a stale Hessian but stays
        positive definite, so the line-searched L-BFGS iteration is a descent method and
        converges to a minimum.  The factorization is renewed at the start of the next step when
        a step needed more than ``refactor_iters`` iterations, or at once when the line search
        fails; if it fails with a fresh one, None (the caller goes on with :meth:`_avalanche`).
        ``precond=False``: plain L-BFGS in numpy, the slow reference of the compiled descent
        (:meth:`_descend`; the two are tested to take the same iterates).
        """
        from .lammps_driver import MinResult
        from .pair_lists import PeriodicPairList

        lmp = self.lmp
        if self._pairs is None:
            self._pairs = PeriodicPairList(lmp.types(), nchunk=self.nchunk)
        t0 = time.perf_counter()
        box = lmp.box()
        x = self._pairs.prepare(x, box)
        self._x_fail, self._it_fail = x, 0
        fresh = False
        if precond and (self._lu is None or self._refactor):
            self._refactor = False
            if not self._factor(x):
                return None
            fresh = True
        E, F = self._pairs.energy_forces(x)
        S, Y = [], []
        Ehist = []
        it = 0
        while True:
            fn = float(np.sqrt((F * F).sum()))
            if fn < self.ftol:
                lmp.set_positions(x)
                ev = lmp.evaluate()
                if ev["fnorm"] < self.ftol:
                    break
            if it >= (maxiter or self.newton_maxiter):
                self.fail_log.append(("maxiter", it))
                self._x_fail, self._it_fail = x, it
                return None
            if self.trace is not None:
                self.trace.append((it, E, fn))
            if not precond:  # stall test of the plain L-BFGS descent of an avalanche
                Ehist.append(E)
                if it >= 100 and it % 25 == 0 and Ehist[-101] - E < 1e-3 * (Ehist[0] - E):
                    self.fail_log.append(("stall", it))
                    self._x_fail, self._it_fail = x, it
                    return None
            g = -F[1:].ravel()  # gradient, atom 0 pinned
            # two-loop recursion with H0^-1 = stored LU
            q = g.copy()
            al = []
            for s_, y_ in zip(reversed(S), reversed(Y)):
                rho = 1.0 / (y_ @ s_)
                a = rho * (s_ @ q)
                q -= a * y_
                al.append((rho, a))
            if precond:
                r = self._lu.solve(q.astype(self._lu_dtype)).astype(float)
            else:  # plain L-BFGS: H0 = (s.y / y.y) I of the newest pair
                r = q * ((S[-1] @ Y[-1]) / (Y[-1] @ Y[-1]) if S else 1e-2)
            for (s_, y_), (rho, a) in zip(zip(S, Y), reversed(al)):
                b = rho * (y_ @ r)
                r += (a - b) * s_
            p = -r
            gp = g @ p
            ok = bool(np.all(np.isfinite(p)) and gp < 0)
            if ok:
                amax = np.abs(p).max()
                step = min(1.0, self.max_disp / amax) if amax > 0 else 1.0
                while True:
                    xt = x.copy()
                    xt[1:] += step * p.reshape(-1, 2)
                    Et, Ft = self._pairs.energy_forces(self._pairs.follow(xt))
                    if Et <= E + 1e-4 * step * gp or (Et <= E + 1e-12 * abs(E) and
                                                     (Ft * Ft).sum() < fn * fn):
                        break
                    step *= 0.5
                    if step < 1e-4:
                        ok = False
                        break
            it += 1
            if not ok:
                if S:  # drop the curvature memory, keep the (positive definite) preconditioner
                    S, Y = [], []
                    self.fail_log.append(("memory", it))
                    continue
                self.fail_log.append(("precond", it, fresh))
                self._x_fail, self._it_fail = x, it
                return None
            gt = -Ft[1:].ravel()
            s_ = (xt - x)[1:].ravel()
            y_ = gt - g
            if s_ @ y_ > 1e-16 * (s_ @ s_):
                S.append(s_)
                Y.append(y_)
                if len(S) > (self.lbfgs_m if precond else self.avalanche_m):
                    S.pop(0)
                    Y.pop(0)
            x, E, F = xt, Et, Ft
        # renew the stored Hessian (at the start of the next step) after a rearrangement, or when the
        # iterations it has cost beyond a fresh one's (~2 per step) add up to about one factorization
        if not precond:
            return MinResult(iterations=it, fnorm2=float(ev["fnorm"]), fnorm_inf=float(ev["fmax"]),
                             energy=float(ev["pe"]), seconds=time.perf_counter() - t0)
        self._excess += max(0, it - self.base_iters)
        if it > self.refactor_iters or self._excess > self.refactor_excess:
            self._refactor = True
        return MinResult(iterations=it, fnorm2=float(ev["fnorm"]), fnorm_inf=float(ev["fmax"]),
                         energy=float(ev["pe"]), seconds=time.perf_counter() - t0)

    def _avalanche(self, x):
        """Minimize through an avalanche from ``x``: (MinResult or None, iterations).

        Plain L-BFGS (compiled) down the avalanche until the
        energy stalls, then the preconditioned iteration with a fresh factorization in the new basin.
        If that state is not yet convex (no descent direction), another round (at most
        ``avalanche_rounds``), then plain L-BFGS to the force tolerance."""
        its = 0
        for _ in range(self.avalanche_rounds):
            res = self._descend(x)
            its += self._n_desc
            if res is not None:
                return res, its
            self._refactor = True
            res = self._newton(self._x_fail)
            its += self._it_fail if res is None else res.iterations
            if res is not None:
                return res, its
            x = self._x_fail
        res = self._descend(x, stall=False)
        its += self._n_desc
        return res, its

    def _descend(self, x, stall=True):
        """Plain L-BFGS (memory ``avalanche_m``) down an avalanche from ``x`` in one compiled loop
        (:func:`epcal.reference.lbfgs.lbfgs_descent`; the same iterates as ``_newton(precond=False)``, tested),
        leaving it only to rebuild the pair list.  A MinResult once LAMMPS confirms the force
        tolerance; None when the energy stalls above it (the slow tail of the new basin, for the
        preconditioned iteration with a fresh factorization), at ``avalanche_maxiter`` or when no
        descent step is found (``self._x_fail``, ``self._it_fail``: where it stopped).  ``stall=False``:
        no stall test (on to the force tolerance)."""
        from . import lbfgs
        from . import potential as pot
        from .lammps_driver import MinResult

        t0 = time.perf_counter()
        pl = self._pairs
        x = pl.prepare(x, self.lmp.box())
        nd = 2 * (len(x) - 1)
        m = self.avalanche_m
        S, Y, rho = np.zeros((m, nd)), np.zeros((m, nd)), np.zeros(m)
        mem = np.zeros(2, np.int64)
        Ehist = np.zeros(self.avalanche_maxiter + 1)
        E, F = pl.energy_forces(x)
        it, ftol = 0, self.ftol
        while True:
            xa_ref, margin = pl.validity()
            status, it, x, E, F = lbfgs.lbfgs_descent(
                x, E, F, pl.pi, pl.pj, pl.pt, pl.sx, pl.sy, pl.par, pot.R_IN, pot.R_OUT, pl.nchunk, xa_ref, margin,
                S, Y, rho, mem, Ehist, it, self.avalanche_maxiter, ftol, self.max_disp, self.stall_window,
                self.stall_frac if stall else 0.0, self.n_eval)
            self._n_desc = it
            self.last_descent = Ehist[:it]  # energies of the descent, for diagnostics
            if status == lbfgs.REBUILD:
                pl._build(np.ascontiguousarray(x), pl.box)
                continue
            if status == lbfgs.CONVERGED:
                self.lmp.set_positions(x)
                ev = self.lmp.evaluate()
                if ev["fnorm"] < self.ftol:
                    return MinResult(iterations=it, fnorm2=float(ev["fnorm"]), fnorm_inf=float(ev["fmax"]),
                                     energy=float(ev["pe"]), seconds=time.perf_counter() - t0)
                ftol = 0.5 * min(ftol, float(np.sqrt((F[1:] ** 2).sum())))  # LAMMPS' norm is the judge
                continue
            self.fail_log.append(({lbfgs.MAXITER: "maxiter", lbfgs.STALLED: "stall"}.get(status, "descent"), it))
            self._x_fail, self._it_fail = x, it
            return None

    def guess(self) -> np.ndarray:
        """Predicted non-affine displacement of the next step: u_n (order 1) or the linear
        extrapolation u_n + (u_n - u_{n-1}) = 2 u_n - u_{n-1} (order 2) on an elastic branch."""
        if self.order >= 2 and self._u_prev2 is not None:
            return 2.0 * self._u_prev - self._u_prev2
        return self._u_prev

    def reset_guess(self):
        self._u_prev = None
        self._u_prev2 = None

    def reset_solver(self):
        """Forget the stored factorization and pair list (rebuilt at the next step).

        Called at every checkpoint, so that the run after a checkpoint does exactly what a run
        resumed from it does: a resumed run is the same run, step for step.
        """
        self._lu = None
        self._pairs = None
        self._refactor = False
        self._excess = 0
