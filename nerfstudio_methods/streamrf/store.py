"""The on-disk frame store of a StreamRF run, and random-access playback by replaying deltas.

Layout of ``<run>/streamrf_frames/`` (the same for the pilot grid, in ``pilot/``)::

    meta.json             grid spec and frame count; a resumed run must match it
    frame_00000.npz       frame 0, a whole grid (:class:`.codec.EncodedGrid`)
    frame_00001.npz ...   one delta per later frame (:class:`.codec.FrameDelta`)
    keyframe_00030.npz    optional whole grids every ``keyframe_every`` frames, so seeking replays few deltas

Every file is written to a temporary name, flushed to disk, then renamed over its final name (``os.replace`` is
atomic), so a frame file exists only once it is complete: an interruption at any moment loses at most the frame
being trained, and the finished frames are exactly the contiguous run ``frame_00000 ... frame_<F>``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from nerfstudio_methods.atomic import write_atomically
from nerfstudio_methods.input_errors import DatasetFormatError
from nerfstudio_methods.streamrf.codec import EncodedGrid, FrameDelta, apply_delta, decode_grid, read_record, to_bytes

FRAMES_DIR = "streamrf_frames"
"""Folder of a run (beside ``nerfstudio_models/``) holding its frames."""


class FrameStore:
    """Finished frames of one grid (the full grid, or the pilot grid) in one folder."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def frame_path(self, frame: int) -> Path:
        return self.root / f"frame_{frame:05d}.npz"

    def keyframe_path(self, frame: int) -> Path:
        return self.root / f"keyframe_{frame:05d}.npz"

    # --- metadata -----------------------------------------------------------------------------------------

    def read_meta(self) -> dict[str, Any] | None:
        path = self.root / "meta.json"
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text())
        except ValueError as err:
            raise DatasetFormatError(path, f"unreadable StreamRF store metadata ({err})") from None

    def ensure_meta(self, meta: dict[str, Any]) -> None:
        """Write ``meta`` for a new store, or check that an existing store was made with the same settings."""
        existing = self.read_meta()
        if existing is None:
            write_atomically(self.root / "meta.json", json.dumps(meta, indent=1, sort_keys=True).encode())
            return
        differing = sorted(key for key in meta if existing.get(key) != meta[key])
        if differing:
            details = ", ".join(f"{key}: stored {existing.get(key)!r}, now {meta[key]!r}" for key in differing)
            raise DatasetFormatError(
                self.root / "meta.json", f"the stored frames were trained with other settings ({details})"
            )

    # --- frames -------------------------------------------------------------------------------------------

    def write_frame(self, frame: int, record: EncodedGrid | FrameDelta) -> int:
        """Store one finished frame atomically; returns its size in bytes."""
        if (frame == 0) != isinstance(record, EncodedGrid):
            raise ValueError("frame 0 is a whole grid and every later frame a delta")
        data = to_bytes(record)
        write_atomically(self.frame_path(frame), data)
        return len(data)

    def write_keyframe(self, frame: int, record: EncodedGrid) -> int:
        data = to_bytes(record)
        write_atomically(self.keyframe_path(frame), data)
        return len(data)

    def num_finished(self) -> int:
        """Number of finished frames: frames 0, 1, ... present without a gap."""
        count = 0
        while self.frame_path(count).is_file():
            count += 1
        return count

    def frame_bytes(self, frame: int) -> int:
        return self.frame_path(frame).stat().st_size

    def keyframes(self) -> list[int]:
        if not self.root.is_dir():
            return []
        return sorted(int(p.stem.split("_")[1]) for p in self.root.glob("keyframe_*.npz"))

    def read_grid(self, path: Path) -> EncodedGrid:
        record = read_record(path)
        if not isinstance(record, EncodedGrid):
            raise DatasetFormatError(path, "expected a whole grid, found a delta")
        return record

    def read_delta(self, frame: int) -> FrameDelta:
        record = read_record(self.frame_path(frame))
        if not isinstance(record, FrameDelta):
            raise DatasetFormatError(self.frame_path(frame), "expected a delta, found a whole grid")
        return record

    def copy_finished_from(self, other: FrameStore) -> int:
        """Copy the finished frames (and meta, keyframes) of another run's store into this empty one."""
        count = other.num_finished()
        if self.root.resolve() == other.root.resolve() or count == 0:
            return self.num_finished()
        self.root.mkdir(parents=True, exist_ok=True)
        sources = [other.root / "meta.json"] + [other.frame_path(t) for t in range(count)]
        sources += [other.keyframe_path(t) for t in other.keyframes() if t < count]
        for source in sources:
            if source.is_file():
                write_atomically(self.root / source.name, source.read_bytes())
        for child in other.root.iterdir():
            if child.is_dir():
                FrameStore(self.root / child.name).copy_finished_from(FrameStore(child))
        return self.num_finished()

    def remove_frames_from(self, first: int) -> None:
        """Delete frames ``first, first + 1, ...`` (and their keyframes): used to drop frames that outran the other
        grid's store after an interruption."""
        frame = first
        while self.frame_path(frame).is_file():
            self.frame_path(frame).unlink()
            frame += 1
        for keyframe in self.keyframes():
            if keyframe >= first:
                self.keyframe_path(keyframe).unlink()

    def clear(self) -> None:
        if self.root.is_dir():
            shutil.rmtree(self.root)


class GridPlayer:
    """Random access to frame ``t`` of a store: the nearest of (cached frame, keyframe, frame 0) at or before ``t``,
    then the deltas up to ``t``. Seeking never trains; the last decoded frame is cached, so playing forward costs
    one delta per frame."""

    def __init__(self, store: FrameStore, device: torch.device | str = "cpu") -> None:
        self.store = store
        self.device = device
        self._cached: tuple[int, Tensor, Tensor] | None = None
        self.deltas_applied = 0
        """Deltas decoded so far (for tests and the benchmark's seek costs)."""

    def invalidate(self) -> None:
        self._cached = None

    def grid(self, frame: int) -> tuple[Float[Tensor, "n c"], Bool[Tensor, "z y x"]]:
        """Frame ``frame`` as occupied values (rows in flat order, :class:`.grid.SparseGrid`'s ``data``) and
        occupancy."""
        finished = self.store.num_finished()
        if not 0 <= frame < finished:
            raise IndexError(f"frame {frame} is not stored (the store holds {finished} frames)")
        if self._cached is not None and self._cached[0] == frame:
            return self._cached[1], self._cached[2]
        start = max([k for k in self.store.keyframes() if k <= frame], default=0)
        if self._cached is not None and start <= self._cached[0] <= frame:
            current, values, occupancy = self._cached
        else:
            path = self.store.keyframe_path(start) if start > 0 else self.store.frame_path(0)
            values, occupancy = decode_grid(self.store.read_grid(path), self.device)
            current = start
        while current < frame:
            current += 1
            values, occupancy = apply_delta(values, occupancy, self.store.read_delta(current))
            self.deltas_applied += 1
        self._cached = (frame, values, occupancy)
        return values, occupancy
