"""Occupancy masks: svox2's 26-neighbourhood dilation, erosion, StreamRF's narrow band and pilot-mask upsampling.

``dilate`` equals svox2's ``_C.dilate`` (brief §5): a voxel becomes occupied if any of its 26 neighbours (or itself)
is; neighbours outside the grid are ignored. Erosion is its dual, ``not dilate(not mask)``: a voxel stays if all
its in-grid neighbours are occupied.
"""

from __future__ import annotations

import torch
from jaxtyping import Bool
from torch import Tensor

from nerfstudio_methods.streamrf.spec import GridSpec

NARROW_BAND_INNER = 6
"""The band reaches 6 voxels inside the occupied region: ``erode^6`` (brief §1.3, full pass)."""


def dilate(mask: Bool[Tensor, "z y x"], times: int = 1) -> Bool[Tensor, "z y x"]:
    """``times`` rounds of a 3x3x3 maximum, clamped at the border like ``_C.dilate``. The 3x3x3 cube is separable
    into one 3-voxel OR per axis, done on the boolean mask in place (no float copy of the grid)."""
    grid = mask.clone()
    for _ in range(times):
        for axis in range(3):
            length = grid.shape[axis]
            if length < 2:
                continue
            before = grid.clone()
            grid.narrow(axis, 1, length - 1).logical_or_(before.narrow(axis, 0, length - 1))  # from voxel i - 1
            grid.narrow(axis, 0, length - 1).logical_or_(before.narrow(axis, 1, length - 1))  # from voxel i + 1
    return grid


def erode(mask: Bool[Tensor, "z y x"], times: int = 1) -> Bool[Tensor, "z y x"]:
    """``not dilate(not mask)``: out-of-grid neighbours count as occupied."""
    return ~dilate(~mask, times)


def narrow_band(active: Bool[Tensor, "z y x"], outer: int, inner: int = NARROW_BAND_INNER) -> Bool[Tensor, "z y x"]:
    """``dilate^outer(active) XOR erode^inner(active)``: a shell from ``outer`` voxels outside the occupied region to
    ``inner`` voxels inside it; deep interior voxels are frozen (StreamRF full pass, ``--apply_narrow_band``)."""
    return dilate(active, outer) ^ erode(active, inner)


def student_mask(change_mask: Bool[Tensor, "z y x"]) -> Bool[Tensor, "z y x"]:
    """``dilate(dilate(erode(change)))``: the pilot's changed voxels without isolated specks, grown by two."""
    return dilate(erode(change_mask, 1), 2)


def upsample_mask(mask: Bool[Tensor, "z y x"], source: GridSpec, target: GridSpec) -> Bool[Tensor, "z y x"]:
    """StreamRF's ``resample_mask``: trilinear interpolation of the 0/1 mask at the target voxel centres, then > 0.

    A trilinear weight is a product of one weight per axis, so the result is > 0 exactly where some set source voxel
    has a non-zero weight on every axis: computed axis by axis on booleans (an OR over the 1 or 2 source voxels
    each target voxel touches), never as a float grid at the target resolution."""
    out = mask
    # tensor dims are (z, y, x); resolutions are (x, y, z)
    for dim, (source_size, target_size) in ((2, (source.resolution[0], target.resolution[0])),
                                            (1, (source.resolution[1], target.resolution[1])),
                                            (0, (source.resolution[2], target.resolution[2]))):  # fmt: skip
        centre = (torch.arange(target_size, dtype=torch.float64, device=mask.device) + 0.5) / target_size
        u = (centre * source_size - 0.5).clamp(0.0, source_size - 1.0)
        low = u.floor().clamp_max(max(source_size - 2, 0))
        frac = u - low
        low = low.long()
        high = (low + 1).clamp_max(source_size - 1)
        picked = out.index_select(dim, low) & _along(frac < 1.0, dim)
        picked |= out.index_select(dim, high) & _along(frac > 0.0, dim)
        out = picked
    return out


def _along(flags: Bool[Tensor, " n"], dim: int) -> Bool[Tensor, "..."]:
    """``flags`` shaped to broadcast along tensor dimension ``dim`` of a (z, y, x) grid."""
    shape = [1, 1, 1]
    shape[dim] = flags.shape[0]
    return flags.reshape(shape)
