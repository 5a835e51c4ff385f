"""Orchestration of EPM runs in plain Python: lattice states, protocols, replica ensembles.

The numerics are in :mod:`epcal.dynamics` and :mod:`epcal.probe`; this module
builds states, seeds random streams and turns engine output into tables.

Random streams: replica r of parameters p with base seed s uses the xoshiro
state derived from (s, digest(p), r, purpose), so a replica gives the same bits
whether it runs alone, in a batch, or on another thread.
"""
from __future__ import annotations

import dataclasses
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

import numpy as np
import pandas as pd

from . import code_version
from .athermal import Drive, Records, aqs
from .dynamics import Lattice, SlipLaw, reduce_kernel, wrap_kernel
from .thermal import QuenchSchedule, kmc_quench
from .kernel_cache import patch_kernel, periodic_kernel
from .lattice_tables import LatticeState, state_frame
from .observables import macro_frame, probe_frame
from .params import EPMParams
from .probe import LocalTests, PatchKernels, flatten_patch_kernels, probe_kernel
from .samples import Sample, draw_sample, make_sample, slip_coefficients_of_elements
from .schema import DELTA_GAMMA
from .slip import SlipSystems, make_rng_state, slip_stiffness_coefficients
from .variants import ORIGINAL, Variant

PURPOSE_DYNAMICS, PURPOSE_PROBE_QUENCH, PURPOSE_PROBE_STATIONARY = 0, 1, 2


class RunawayAvalanche(RuntimeError):
    """An avalanche did not stop: more than FRACTURE_LIMIT slips per element (see dynamics).

    Happens for slip amplitudes close to gamma_max (small chi) when many elements slip
    at once; callers sweeping parameters treat such a point as failed.
    """


def _engine_call(fn, *args, context: str = ""):
    from .dynamics import RUNAWAY_MESSAGE

    try:
        return fn(*args)
    except RuntimeError as exc:
        if RUNAWAY_MESSAGE in str(exc):
            raise RunawayAvalanche(f"{context}: {RUNAWAY_MESSAGE}") from None
        raise


@dataclasses.dataclass
class QuenchInfo:
    events: int
    blocks: int
    converged: bool
    history: np.ndarray


class Model:
    """An EPM with its kernels: ``Model(params)`` then run protocols on states."""

    def __init__(self, params: EPMParams, dgamma: float = DELTA_GAMMA, variant: Variant = ORIGINAL):
        self.params = params.validate()
        self.dgamma = float(dgamma)
        self.variant = variant.validate()
        self.variant_opts = variant.options()
        self.N = variant.n_systems(params.N)  # slip systems per element actually simulated
        self.K = periodic_kernel(params.L, params.G, params.B)
        self.Kd, self.Kx = (wrap_kernel(k) for k in reduce_kernel(self.K))
        self.f_coef = slip_stiffness_coefficients(self.K)
        self._patch = {}

    # ------------------------------------------------------------------ states
    def draw_sample(self, seed: int, replica: int, stream_key: int | None = None) -> Sample | None:
        """Quenched per-sample data (models A and B; None otherwise), see :mod:`epcal.samples`."""
        return draw_sample(self.variant, self.params, seed, replica, stream_key)

    def make_sample(self, moduli=None, pressure_offset=None) -> Sample | None:
        return make_sample(self.variant, self.params, moduli, pressure_offset)

    def random_state(self, rng: np.ndarray, sample: Sample | None = None) -> LatticeState:
        """Random slip systems, no pre-stress, zero strain (section 3.2, A.3); models A and B need
        their ``sample`` (:meth:`draw_sample`)."""
        p = self.params
        E = p.L * p.L
        v = self.variant
        if (v.heterogeneous or v.pressure_sensitive) and sample is None:
            raise ValueError(f"model {v.name}: a state needs its sample (Model.draw_sample or Model.new_state)")
        systems = SlipSystems.random(E, p.N, p.k, p.lam, self.f_coef, rng, self.variant)
        if v.heterogeneous:  # gamma_max / tau from each element's own f_e(theta)
            systems.gamma_max_coef[:] = slip_coefficients_of_elements(systems.theta, sample.lattice.f_coef)
        return LatticeState(np.zeros((E, 3)), np.zeros((E, 3)), systems, 0, np.zeros(E, np.int64), sample)

    def new_state(self, seed: int, replica: int, stream_key: int | None = None):
        """(random state of replica ``replica`` with its sample, its dynamics stream)."""
        rng = rng_for(self.params, seed, replica, PURPOSE_DYNAMICS, stream_key)
        return self.random_state(rng, self.draw_sample(seed, replica, stream_key)), rng

    def _mechanics(self, state):
        """(G of the drive, het, pres): the arguments of models A and B (epcal.variant_kernels)."""
        v = self.variant
        if v.heterogeneous:
            if state._lattice is None:
                raise ValueError(f"model {v.name}: the state has no shear-modulus field (its sample)")
            return state._lattice.G_eff, state._lattice.kernels, None
        if v.pressure_sensitive:
            if state.sample is None or state.sample.pressure_offset is None:
                raise ValueError(f"model {v.name}: the state has no pressure offset (its sample)")
            return self.params.G, None, np.array([v.alpha_p, state.sample.pressure_offset])
        return self.params.G, None, None

    def _args(self, state):
        """(sig, eps_pl, systems, lattice, law): the state and model arguments of the engine kernels."""
        p = self.params
        if state.slip_count is None:
            state.slip_count = np.zeros(p.L * p.L, np.int64)
        return (state.sig, state.eps_pl, state.systems.arrays(), Lattice(self.Kd, self.Kx, p.L, self.f_coef),
                SlipLaw(float(p.k), float(p.lam), float(p.chi)))

    # ----------------------------------------------------------------- quench
    def quench(self, state: LatticeState, T: float, rng: np.ndarray, *, block: int | None = None,
               rtol: float = 0.05, min_blocks: int = 4, max_blocks: int = 400) -> QuenchInfo:
        """KMC at temperature T, then T = 0 relaxation and reset to pre-stress (A.3).

        After the quench the stress field becomes Sigma^0 (kept in ``sig``), the
        plastic and elastic strains are reset to zero, the slip systems are kept.
        """
        if not T > 0:
            raise ValueError(f"quench temperature T = {T!r}: expected > 0")
        if state.step != 0:
            raise ValueError("the KMC quench runs at gamma_ext = 0")
        p = self.params
        E = p.L * p.L
        block = E if block is None else int(block)
        history = np.zeros((max_blocks, 2))
        _, het, pres = self._mechanics(state)
        schedule = QuenchSchedule(block, float(rtol), int(min_blocks), int(max_blocks))
        events, blocks, ok = _engine_call(kmc_quench, *self._args(state), float(T), rng, state.slip_count, schedule,
                                          history, self.variant_opts, het, pres,
                                          context=f"KMC quench at T = {T} with {p}")
        state.eps_pl[:] = 0.0
        return QuenchInfo(int(events), int(blocks), bool(ok), history[:blocks].copy())

    # -------------------------------------------------------------------- AQS
    def drive(self, state: LatticeState, rng: np.ndarray, gamma_end: float | None = None, *,
              steps: int | None = None, skip: bool = True, stop_at_zero_stress: bool = False,
              chunk: int = 4096):
        """AQS simple shear of ``state`` to gamma_end (or by ``steps``, signed); section 3.4.

        Returns record arrays (step, sigma_before, sigma_after, n_slips) including a
        first and a last non-avalanche record.
        """
        p = self.params
        if steps is None:
            if gamma_end is None:
                raise ValueError("drive: give gamma_end or steps")
            n_end = int(round(gamma_end / self.dgamma))
        else:
            n_end = state.step + int(steps)
        s0 = state.external_stress(p.G, self.dgamma)
        rows_step, rows_b = [np.array([state.step])], [np.array([s0])]
        rows_a, rows_s = [np.array([s0])], [np.array([0])]
        n = state.step
        G, het, pres = self._mechanics(state)
        while True:
            rs = np.empty(chunk, np.int64)
            rb = np.empty(chunk)
            ra = np.empty(chunk)
            rn = np.empty(chunk, np.int64)
            drive = Drive(float(G), self.dgamma, int(n), int(n_end), bool(stop_at_zero_stress), bool(skip))
            n, cnt, done = _engine_call(aqs, *self._args(state), drive, rng, state.slip_count, Records(rs, rb, ra, rn),
                                        self.variant_opts, het, pres,
                                        context=f"AQS with {p} near gamma_ext = {n * self.dgamma:.4f}")
            state.step = int(n)
            rows_step.append(rs[:cnt]); rows_b.append(rb[:cnt]); rows_a.append(ra[:cnt]); rows_s.append(rn[:cnt])
            if done:
                break
        s1 = state.external_stress(p.G, self.dgamma)
        rows_step.append(np.array([state.step])); rows_b.append(np.array([s1]))
        rows_a.append(np.array([s1])); rows_s.append(np.array([0]))
        return (np.concatenate(rows_step), np.concatenate(rows_b), np.concatenate(rows_a),
                np.concatenate(rows_s))

    # ------------------------------------------------------------------ probe
    def patch_kernels(self, n_list):
        key = tuple(int(n) for n in n_list)
        if key not in self._patch:
            p = self.params
            for n in key:
                if n < 1 or n > p.L:
                    raise ValueError(f"patch size n = {n}: expected 1 <= n <= L_EP = {p.L}")
            self._patch[key] = flatten_patch_kernels([patch_kernel(n, p.G, p.B) for n in key])
        return self._patch[key]

    def probe(self, state: LatticeState, rng: np.ndarray, n_list, alpha_deg, stride: int = 1,
              corners: np.ndarray | None = None) -> np.ndarray:
        """Local shear tests of ``state`` (section 3.5); raw output (P, len(n), len(alpha), 11)."""
        p = self.params
        n_arr = np.asarray(n_list, np.int64)
        if corners is None:
            if stride < 1:
                raise ValueError(f"probe stride = {stride}: expected >= 1")
            i, j = np.meshgrid(np.arange(0, p.L, stride), np.arange(0, p.L, stride), indexing="ij")
            corners = (i * p.L + j).ravel()
        corners = np.asarray(corners, np.int64)
        _, _, pres = self._mechanics(state)
        if self.variant.heterogeneous:  # each patch with its own moduli: kernels per (corner, n)
            from .heterogeneous import patch_set

            self.patch_kernels(n_arr)  # validates the sizes
            kd, kx, pf, het = patch_set(state.sample.shear_moduli, p.L, p.B, n_arr, corners)
            unused = np.zeros(len(n_arr), np.int64)
            kernels = PatchKernels(kd, kx, unused, pf, unused)
        else:
            kernels = self.patch_kernels(n_arr)
            het = None
        alpha = np.deg2rad(np.asarray(alpha_deg, float))
        out = np.empty((len(corners), len(n_arr), len(alpha), 11))
        _, _, systems, lattice, law = self._args(state)
        tests = LocalTests(corners, n_arr, np.cos(2 * alpha), np.sin(2 * alpha))
        _engine_call(probe_kernel, state.stress(p.G, self.dgamma), systems, lattice, law, p.G, tests, kernels, rng, out,
                     self.variant_opts, het, pres, context=f"local shear test with {p}")
        return out, corners


# ------------------------------------------------------------------ ensembles
@dataclasses.dataclass(frozen=True)
class ProbeSpec:
    """Which local shear tests to run on each replica."""

    n_list: tuple[int, ...] = (8,)
    alpha_deg: tuple[float, ...] = (0.0, 90.0)
    states: tuple[str, ...] = ("stationary",)
    stride: int = 1

    def __post_init__(self):
        bad = [s for s in self.states if s not in ("quench", "stationary")]
        if bad:
            raise ValueError(f"probe states {bad}: expected 'quench' and/or 'stationary'")


@dataclasses.dataclass
class Ensemble:
    macro: pd.DataFrame
    probe: pd.DataFrame
    meta: dict
    runs: pd.DataFrame  # one row per replica: timings, quench events
    states: pd.DataFrame = dataclasses.field(default_factory=pd.DataFrame)  # snapshots (state_frame)


def rng_for(params: EPMParams, seed: int, replica: int, purpose: int, stream_key: int | None = None) -> np.ndarray:
    """Random stream of (seed, parameters, replica, purpose); with ``stream_key`` the parameters are
    replaced by that key, so runs at different parameters share their streams (common random
    numbers, as an optimizer over parameters wants)."""
    return make_rng_state(seed, params.digest() if stream_key is None else int(stream_key), replica, purpose)


def run_replica(model: Model, replica: int, *, seed: int, gamma_max: float = 2.0,
                T_quench: float | None = None, probe: ProbeSpec | None = None, skip: bool = True,
                snapshots: Sequence[float] = (), stream_key: int | None = None):
    """One run: initial state (random or KMC-quenched), AQS to gamma_max, optional probing.

    ``snapshots``: strains at which state tables are taken, and/or the string
    'quench' for the initial (quenched) state.
    Returns (macro table, probe tables, run info, final state, state tables).
    """
    p = model.params
    t0 = time.perf_counter()
    state, rng = model.new_state(seed, replica, stream_key)
    qinfo = None
    if T_quench is not None:
        qinfo = model.quench(state, T_quench, rng)
    t1 = time.perf_counter()
    probes, snaps = [], []
    if probe is not None and "quench" in probe.states:
        if T_quench is None:
            raise ValueError("probing the quench state needs T_quench")
        out, corners = model.probe(state, rng_for(p, seed, replica, PURPOSE_PROBE_QUENCH, stream_key), probe.n_list,
                                   probe.alpha_deg, probe.stride)
        probes.append(probe_frame(out, state="quench", replica=replica, corners=corners, L=p.L, l=p.l,
                                  n_list=probe.n_list, alpha_deg=probe.alpha_deg))
    want = {float(g) for g in snapshots if g != "quench"}
    targets = sorted({g for g in want if 0 < g < gamma_max} | {float(gamma_max)})
    if "quench" in snapshots:
        snaps.append(state_frame(state, p, replica=replica, label="quench"))
    segments = []
    for g in targets:
        segments.append(model.drive(state, rng, g, skip=skip))
        if g in want:
            snaps.append(state_frame(state, p, replica=replica, label=f"gamma={g:g}"))
    recs = tuple(np.concatenate([seg[c][(1 if i else 0):(None if i == len(segments) - 1 else -1)]
                                 for i, seg in enumerate(segments)]) for c in range(4))
    t2 = time.perf_counter()
    if probe is not None and "stationary" in probe.states:
        out, corners = model.probe(state, rng_for(p, seed, replica, PURPOSE_PROBE_STATIONARY, stream_key),
                                   probe.n_list,
                                   probe.alpha_deg, probe.stride)
        probes.append(probe_frame(out, state="stationary", replica=replica, corners=corners, L=p.L, l=p.l,
                                  n_list=probe.n_list, alpha_deg=probe.alpha_deg))
    t3 = time.perf_counter()
    macro = macro_frame(replica, *recs, dgamma=model.dgamma)
    run = {"replica": replica, "seconds_quench": t1 - t0, "seconds_aqs": t2 - t1, "seconds_probe": t3 - t2,
           "quench_events": qinfo.events if qinfo else 0, "quench_converged": qinfo.converged if qinfo else True,
           "slips": int(recs[3].sum())}
    return macro, probes, run, state, snaps


def run_ensemble(params: EPMParams, replicas: Sequence[int], *, seed: int, gamma_max: float = 2.0,
                 T_quench: float | None = None, probe: ProbeSpec | None = None, threads: int = 1,
                 skip: bool = True, snapshots: Sequence[float] = (), variant: Variant = ORIGINAL,
                 stream_key: int | None = None) -> Ensemble:
    """Run replicas (in parallel on ``threads``) and collect their tables.

    Results are independent of ``threads`` and of how replicas are batched.
    """
    if gamma_max <= 0:
        raise ValueError(f"gamma_max = {gamma_max}: expected > 0")
    if threads < 1:
        raise ValueError(f"threads = {threads}: expected >= 1")
    model = Model(params, variant=variant)
    replicas = [int(r) for r in replicas]
    if probe is not None:
        model.patch_kernels(probe.n_list)  # validate sizes and build kernels before any run

    def one(r):
        return run_replica(model, r, seed=seed, gamma_max=gamma_max, T_quench=T_quench, probe=probe, skip=skip,
                           snapshots=snapshots, stream_key=stream_key)

    if threads == 1 or len(replicas) <= 1:
        results = [one(r) for r in replicas]
    else:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            results = list(pool.map(one, replicas))
    macro = pd.concat([r[0] for r in results], ignore_index=True) if results else pd.DataFrame()
    probes = [f for r in results for f in r[1]]
    probe_df = pd.concat(probes, ignore_index=True) if probes else pd.DataFrame()
    runs = pd.DataFrame([r[2] for r in results])
    snaps = [f for r in results for f in r[4]]
    states = pd.concat(snaps, ignore_index=True) if snaps else pd.DataFrame()
    meta = {"params": params.as_dict(), "seed": int(seed), "gamma_max": float(gamma_max),
            "T_quench": T_quench, "probe": dataclasses.asdict(probe) if probe else None,
            "replicas": replicas, "code_version": code_version(), "dgamma": DELTA_GAMMA,
            "variant": variant.as_dict()}
    return Ensemble(macro, probe_df, meta, runs, states)
