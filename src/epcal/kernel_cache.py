"""On-disk cache of the elastic kernels of :mod:`epcal.elastic` (the engine does no I/O).

The kernels depend only on the lattice size (L, or n for a patch), G and B, and cost seconds at
the paper's sizes, so every job of a sweep reads them from a shared folder.  A cache file is named
by a hash of (kind, size, G, B, the source of :mod:`epcal.elastic`): an edited kernel is never
served from a cache the old code wrote.  Writes are atomic (temporary file, then rename), so
concurrent jobs are safe; a read-only or full cache still returns the kernel.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from . import elastic
from .atomicio import atomic_path

_KERNEL_VERSION = 1


def cache_dir() -> Path:
    """Kernel cache folder: $EPCAL_CACHE_DIR/kernels, or ~/.cache/epcal/kernels."""
    env = os.environ.get("EPCAL_CACHE_DIR")
    base = Path(env) if env else Path.home() / ".cache" / "epcal"
    return base / "kernels"


def _code_digest() -> str:
    """Digest of the code that computes the kernels: the source of epcal.elastic (which imports no
    other epcal module)."""
    return hashlib.sha256(Path(elastic.__file__).read_bytes()).hexdigest()[:16]


def cache_path(kind: str, size: int, G: float, B: float) -> Path:
    key = f"{kind}|{int(size)}|{float(G)!r}|{float(B)!r}|v{_KERNEL_VERSION}|{_code_digest()}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return cache_dir() / f"{kind}-{int(size)}-{digest}.npy"


def cached(kind: str, size: int, G: float, B: float) -> np.ndarray:
    """Kernel ``kind`` ('periodic' or 'patch') of ``size`` (L or n), from the cache or computed."""
    path = cache_path(kind, size, G, B)
    if path.exists():
        try:
            return np.load(path)
        except (ValueError, OSError):
            pass  # corrupt: recompute
    if kind == "periodic":
        K = elastic.periodic_kernel_fft(int(size), G, B)
    elif kind == "patch":
        K = elastic.patch_kernel_direct(int(size), G, B)
    else:
        raise ValueError(f"unknown kernel kind {kind!r}")
    try:
        with atomic_path(path) as tmp:
            np.save(tmp, K)
    except OSError:
        pass  # read-only or full cache: still return the kernel
    return K


def periodic_kernel(L: int, G: float, B: float) -> np.ndarray:
    """Cached :func:`epcal.elastic.periodic_kernel_fft` (bi-periodic L x L lattice)."""
    return cached("periodic", L, G, B)


def patch_kernel(n: int, G: float, B: float) -> np.ndarray:
    """Cached :func:`epcal.elastic.patch_kernel_direct` (n x n patch, boundary nodes fixed)."""
    return cached("patch", n, G, B)
