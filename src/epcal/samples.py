"""Quenched per-sample data of models A and B (appendix A.8.1-A.8.2), drawn from a seeded stream.

A sample of model A carries its shear-modulus field G_e (non-evolving) and the elastic responses of
that lattice (:class:`epcal.heterogeneous.HeterogeneousLattice`, cached by moduli); a sample of model
B carries its hydrostatic offset p0 ~ N(p_mean, p_std), the sample's mean pressure that the paper
adds by hand to the computed stresses.  Both come from the stream of (seed, parameter digest or the
calibration's stream key, replica, :data:`PURPOSE_SAMPLE`), separate from the dynamics stream: the
same seed gives the same field and offset, whatever the batching or threads.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from .slip import slip_stiffness_at

#: random-stream purpose of the per-sample data (far from the probe purposes 3 + step of the CLI)
PURPOSE_SAMPLE = 1 << 40


@dataclasses.dataclass(frozen=True)
class Sample:
    """shear_moduli (E,) and its lattice (model A); pressure_offset p0 (model B)."""

    shear_moduli: np.ndarray | None = None
    pressure_offset: float | None = None
    lattice: object | None = None  # epcal.heterogeneous.HeterogeneousLattice


def sample_generator(seed: int, key: int, replica: int) -> np.random.Generator:
    words = [int(w) % (1 << 64) for w in (seed, key, replica, PURPOSE_SAMPLE)]
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(words)))


def make_sample(variant, params, moduli=None, pressure_offset=None) -> Sample | None:
    """The Sample of ``variant`` with these quenched data (None for the variants without any)."""
    if variant.heterogeneous:
        from .heterogeneous import lattice

        G = np.ascontiguousarray(moduli, dtype=float)
        if G.shape != (params.L * params.L,) or not np.all(G > 0):
            raise ValueError(f"model {variant.name}: shear moduli must be {params.L ** 2} positive values")
        return Sample(shear_moduli=G, lattice=lattice(params.L, G, params.B))
    if variant.pressure_sensitive:
        if pressure_offset is None or not np.isfinite(pressure_offset):
            raise ValueError(f"model {variant.name}: needs a finite pressure offset p0")
        return Sample(pressure_offset=float(pressure_offset))
    return None


def draw_sample(variant, params, seed: int, replica: int, stream_key: int | None = None) -> Sample | None:
    """The quenched data of replica ``replica``: G_e ~ Weibull(mean G_mean, shape G_shape) per element
    (A), p0 ~ Normal(p_mean, p_std) (B); None for every other variant."""
    if not (variant.heterogeneous or variant.pressure_sensitive):
        return None
    gen = sample_generator(seed, params.digest() if stream_key is None else stream_key, replica)
    if variant.heterogeneous:
        from .heterogeneous import weibull_moduli

        return make_sample(variant, params, moduli=weibull_moduli(gen, params.L * params.L, variant.G_mean,
                                                                 variant.G_shape))
    return make_sample(variant, params, pressure_offset=gen.normal(variant.p_mean, variant.p_std))


def slip_coefficients_of_elements(theta: np.ndarray, f_coef: np.ndarray) -> np.ndarray:
    """gamma_max / tau = -2 / f_e(theta) for systems theta (E, N) with per-element coefficients (E, 5)."""
    return -2.0 / slip_stiffness_at(f_coef[:, None, :], theta)
