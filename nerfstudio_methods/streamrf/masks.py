"""Occupancy masks: svox2's 26-neighbourhood dilation, erosion, StreamRF's narrow band and pilot-mask upsampling.

``dilate`` equals svox2's ``_C.dilate`` (brief §5): a voxel becomes occupied if any of its 26 neighbours (or itself)
is; neighbours outside the grid are ignored. Erosion is its dual, ``not dilate(not mask)``: a voxel stays if all
its in-grid neighbours are occupied.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from jaxtyping import Bool
from torch import Tensor

from nerfstudio_methods.streamrf.grid import GridSpec, trilinear

NARROW_BAND_INNER = 6
"""The band reaches 6 voxels inside the occupied region: ``erode^6`` (brief §1.3, full pass)."""


def dilate(mask: Bool[Tensor, "z y x"], times: int = 1) -> Bool[Tensor, "z y x"]:
    """``times`` rounds of 3x3x3 max-pooling (max_pool3d pads with -inf, so the border clamps like ``_C.dilate``)."""
    if times <= 0:
        return mask.clone()
    grid = mask[None, None].to(torch.float32)
    for _ in range(times):
        grid = F.max_pool3d(grid, kernel_size=3, stride=1, padding=1)
    return grid[0, 0] > 0.5


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
    """StreamRF's ``resample_mask``: trilinear interpolation of the 0/1 mask at the target voxel centres, then > 0."""
    centres = target.voxel_centres(mask.device).reshape(-1, 3)
    values = trilinear(mask[None].to(torch.float32), centres)[:, 0]
    return (values > 0).reshape(target.shape)
