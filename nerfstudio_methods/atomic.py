"""Atomic file writes: readers (and an interrupted run) see either the old file or the whole new one."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Optional


def replace_atomically(path: Path, write: Callable[[Path], object], staging_folder: Optional[Path] = None) -> None:
    """``write(staging)`` into a hidden file of this process (in ``staging_folder``, by default ``path``'s own, which
    must be on the same file system), flushed to disk, then renamed to ``path``: readers see either the old file or
    the whole new one, never a part. On any failure the staging file is removed and the error raised."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = (staging_folder or path.parent) / f".{path.name}.{os.getpid()}.tmp"
    try:
        write(staging)
        descriptor = os.open(staging, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.replace(staging, path)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise
    try:  # persist the rename itself (POSIX); not available everywhere
        directory = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through :func:`replace_atomically`."""
    replace_atomically(path, lambda staging: staging.write_bytes(data))
