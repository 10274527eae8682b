"""StreamRF's compressed frames: a full grid (frame 0, keyframes) and per-frame deltas, replayed bit-exactly.

A delta from the previous grid to the new one (``compress_saving``, brief §1.3 step 6) classifies voxels as

- *added*: occupied now, not before: all 28 values stored;
- *removed*: occupied before, not now: implied by the new occupancy, values become 0;
- *kept*: occupied in both. A kept voxel is stored only if ``sum |delta SH| > sh_keep_threshold`` (L1 over its 27 SH
  coefficients; a density change alone never triggers a save). Every other kept voxel is **reverted** to its
  previous value, and the encoder continues from the reverted grid, so encoder and decoder never drift.

Storage (the repo's ``grid_delta_full_z`` npz): the new occupancy as a bit-packed mask over the whole grid, the
"changed" flags as a bit-packed mask over the kept voxels only, and fp16 values. Stored values are rounded to fp16
*in the grid the encoder continues from* too, which is what makes replay exact: :func:`encode_delta` returns the grid
that :func:`apply_delta` rebuilds, computed by that same function.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Tuple

import numpy as np
import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from nerfstudio_methods.input_errors import DatasetFormatError
from nerfstudio_methods.streamrf.grid import chunks, copy_rows

VALUE_DTYPE = np.float16


def pack_mask(mask: Bool[Tensor, "..."]) -> np.ndarray:
    """Flatten (C order) and pack 8 voxels per byte (``np.packbits``, big-endian bit order)."""
    return np.packbits(mask.detach().reshape(-1).cpu().numpy().astype(np.bool_))


def unpack_mask(bits: np.ndarray, count: int, device: torch.device | str = "cpu") -> Bool[Tensor, " n"]:
    """Inverse of :func:`pack_mask` for ``count`` voxels."""
    if bits.size * 8 < count:
        raise ValueError(f"packed mask holds {bits.size * 8} bits, fewer than the {count} voxels")
    unpacked = np.unpackbits(bits, count=count).astype(np.bool_)
    return torch.from_numpy(unpacked).to(device)


def to_fp16(values: Float[Tensor, "..."]) -> Float[Tensor, "..."]:
    """Round to the stored precision (fp16) and back to fp32: what the decoder will see."""
    return values.to(torch.float16).to(values.dtype)


@dataclass
class EncodedGrid:
    """A whole grid: occupancy bits plus fp16 values ``[n_occupied, 28]`` in flat (z, y, x) order (the sparse grid's
    rows as they are)."""

    shape: tuple[int, int, int]
    occupancy_bits: np.ndarray
    values: np.ndarray

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "kind": np.array("grid"),
            "shape": np.array(self.shape, dtype=np.int64),
            "occupancy_bits": self.occupancy_bits,
            "values": self.values,
        }


@dataclass
class FrameDelta:
    """Changes from one frame's grid to the next (see module doc)."""

    shape: tuple[int, int, int]
    occupancy_bits: np.ndarray
    """New occupancy over the whole grid, bit-packed."""
    added_values: np.ndarray
    """fp16 ``[n_added, 28]`` for voxels occupied now and not before, in flat order."""
    changed_bits: np.ndarray
    """Bit-packed flags over the kept voxels (occupied before and now), in flat order."""
    changed_values: np.ndarray
    """fp16 ``[n_changed, 28]`` for the kept voxels whose SH changed beyond the keep threshold."""

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "kind": np.array("delta"),
            "shape": np.array(self.shape, dtype=np.int64),
            "occupancy_bits": self.occupancy_bits,
            "added_values": self.added_values,
            "changed_bits": self.changed_bits,
            "changed_values": self.changed_values,
        }

    @property
    def num_added(self) -> int:
        return int(self.added_values.shape[0])

    @property
    def num_changed(self) -> int:
        return int(self.changed_values.shape[0])


OccupiedValues = Tuple[Float[Tensor, "n c"], Bool[Tensor, "z y x"]]
"""A grid as the codec sees it: the occupied voxels' values (rows in flat (z, y, x) order, :class:`.grid.SparseGrid`'s
``data``) and the occupancy."""


def encode_grid(data: Float[Tensor, "n c"], occupancy: Bool[Tensor, "z y x"]) -> tuple[EncodedGrid, OccupiedValues]:
    """Store a whole grid; returns it and the grid the decoder rebuilds (fp16-rounded values)."""
    if int(occupancy.sum()) != data.shape[0]:
        raise ValueError("grid values do not match its occupancy")
    encoded = EncodedGrid(
        shape=tuple(occupancy.shape),  # type: ignore[arg-type]
        occupancy_bits=pack_mask(occupancy),
        values=data.detach().cpu().numpy().astype(VALUE_DTYPE),
    )
    return encoded, decode_grid(encoded, data.device)


def decode_grid(encoded: EncodedGrid, device: torch.device | str = "cpu") -> OccupiedValues:
    shape = encoded.shape
    count = int(np.prod(shape))
    occupancy = unpack_mask(encoded.occupancy_bits, count, device)
    if int(occupancy.sum()) != encoded.values.shape[0]:
        raise ValueError("grid values do not match its occupancy")
    return _from_fp16(encoded.values, device), occupancy.reshape(shape)


def _from_fp16(values: np.ndarray, device: torch.device | str) -> Float[Tensor, "n c"]:
    return torch.from_numpy(values).to(device).to(torch.float32)


def sh_change(
    previous: Float[Tensor, "n c"],
    previous_rows: Int[Tensor, " m"],
    current: Float[Tensor, "k c"],
    current_rows: Int[Tensor, " m"],
) -> Float[Tensor, " m"]:
    """L1 norm of the change of the 27 SH values from ``previous[previous_rows]`` to ``current[current_rows]``
    (``compress_saving``'s keep test), in chunks."""
    out = current.new_empty(current_rows.shape[0])
    for part in chunks(current_rows.shape[0]):
        before = previous[previous_rows[part], 1:].to(current.dtype)
        out[part] = (current[current_rows[part], 1:] - before).abs().sum(1)
    return out


def encode_delta(
    previous: Float[Tensor, "n c"],
    previous_occupancy: Bool[Tensor, "z y x"],
    current: Float[Tensor, "m c"],
    current_occupancy: Bool[Tensor, "z y x"],
    sh_keep_threshold: float,
) -> tuple[FrameDelta, OccupiedValues]:
    """Delta from ``previous`` to ``current`` (occupied values, rows in flat order); returns it and the grid the
    decoder rebuilds from ``previous``.

    The caller continues training from the returned grid (kept-but-unchanged voxels reverted, stored values rounded
    to fp16), so a decoder that replays every delta from the same start reproduces each frame exactly.
    """
    before, now = previous_occupancy.reshape(-1), current_occupancy.reshape(-1)
    kept_now = before[now]  # rows of ``current`` whose voxel was occupied before, in flat order
    kept_before = now[before]  # the same voxels' rows of ``previous``
    current = current.detach()
    kept_rows = torch.nonzero(kept_now)[:, 0]
    previous_rows = torch.nonzero(kept_before)[:, 0]
    changed = sh_change(previous.detach(), previous_rows, current, kept_rows) > sh_keep_threshold
    delta = FrameDelta(
        shape=tuple(current_occupancy.shape),  # type: ignore[arg-type]
        occupancy_bits=pack_mask(current_occupancy),
        added_values=current[~kept_now].cpu().numpy().astype(VALUE_DTYPE),
        changed_bits=pack_mask(changed),
        changed_values=current[kept_rows[changed]].cpu().numpy().astype(VALUE_DTYPE),
    )
    return delta, apply_delta(previous, previous_occupancy, delta)


def apply_delta(
    previous: Float[Tensor, "n c"], previous_occupancy: Bool[Tensor, "z y x"], delta: FrameDelta
) -> OccupiedValues:
    """Replay one delta (``compress_loading``): kept voxels keep their previous values unless stored, removed ones
    are dropped, added and changed ones take the stored fp16 values."""
    shape = tuple(previous_occupancy.shape)
    if tuple(delta.shape) != shape:
        raise ValueError(f"delta for a {delta.shape} grid applied to a {shape} grid")
    device = previous.device
    before = previous_occupancy.reshape(-1)
    now = unpack_mask(delta.occupancy_bits, before.numel(), device)
    kept_now, kept_before = before[now], now[before]
    kept_rows = torch.nonzero(kept_now)[:, 0]
    changed = unpack_mask(delta.changed_bits, kept_rows.numel(), device)
    if int((~kept_now).sum()) != delta.num_added or int(changed.sum()) != delta.num_changed:
        raise ValueError("delta does not match the grid it is applied to (wrong previous frame?)")
    values = previous.new_zeros(kept_now.shape[0], previous.shape[1], dtype=torch.float32)
    copy_rows(values, kept_rows, previous.detach(), torch.nonzero(kept_before)[:, 0])
    values[~kept_now] = _from_fp16(delta.added_values, device)
    values[kept_rows[changed]] = _from_fp16(delta.changed_values, device)
    return values, now.reshape(shape)


def to_bytes(encoded: EncodedGrid | FrameDelta) -> bytes:
    """``np.savez_compressed`` of the record (as the repo's ``grid_delta_full_z``), in memory."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **encoded.arrays())
    return buffer.getvalue()


def read_record(path: Path) -> EncodedGrid | FrameDelta:
    """Load a stored grid or delta, raising :class:`DatasetFormatError` naming the file if it is damaged."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise DatasetFormatError(path, f"unreadable StreamRF frame ({err})") from None
    try:
        kind = str(arrays["kind"])
        shape = tuple(int(n) for n in arrays["shape"])
        if kind == "grid":
            return EncodedGrid(shape, arrays["occupancy_bits"], arrays["values"])  # type: ignore[arg-type]
        if kind == "delta":
            return FrameDelta(
                shape,  # type: ignore[arg-type]
                arrays["occupancy_bits"],
                arrays["added_values"],
                arrays["changed_bits"],
                arrays["changed_values"],
            )
    except KeyError as err:
        raise DatasetFormatError(path, f"StreamRF frame lacks the array {err}") from None
    raise DatasetFormatError(path, f"unknown StreamRF record kind {kind!r}")
