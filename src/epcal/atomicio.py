"""Atomic file writes: every table, array and figure epcal writes goes through :func:`atomic_path`.

The content is written to a temporary file in the target's directory and renamed onto the
target only when the write has finished, so a reader (or a job killed mid-write) never sees a
half-written file under the real name.  A full disk is reported in one line, naming the file,
and leaves nothing behind.
"""
from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: the mode a plain open() gives a new file under this process's umask
_FILE_MODE = 0o666 & ~_umask()


class DiskFullError(OSError):
    """No space left on the device while writing a file (nothing was left behind)."""


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None):
    """Yield a temporary path next to ``path``; rename it onto ``path`` when the block succeeds.

    ``suffix`` (default: the target's own suffix) is the temporary name's ending, for writers
    that append one (``np.savez`` adds ``.npz`` to any other name).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + (path.suffix if suffix is None else suffix),
                               dir=path.parent)
    os.fchmod(fd, _FILE_MODE)  # mkstemp makes 0600: give the file the mode open() would (0666 & ~umask)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        _remove(tmp)
        if _disk_full(exc):
            raise DiskFullError(errno.ENOSPC, f"{path}: no space left on the device; nothing was written") from None
        raise
    except BaseException:
        _remove(tmp)
        raise


def _disk_full(exc: OSError) -> bool:
    """ENOSPC (or EDQUOT), also when a library (pyarrow) reports it only in its message."""
    return exc.errno in (errno.ENOSPC, errno.EDQUOT) or "No space left on device" in str(exc)


def _remove(tmp) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.remove(tmp)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def save_npz(path: str | os.PathLike, **arrays) -> Path:
    """``np.savez(path, **arrays)`` atomically (the target keeps its exact name)."""
    import numpy as np

    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, **arrays)
    return Path(path)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def copy_file(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Copy ``src`` onto ``dst`` atomically (content only)."""
    import shutil

    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)
    return Path(dst)
