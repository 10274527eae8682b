"""StreamRF's voxel grid of density + degree-2 SH over the NDC box, stored sparsely as svox2 does, with pure-torch
trilinear lookup.

Storage (svox2 ``SparseGrid``, brief §1.1): an int32 index grid ``links`` ``[Z, Y, X]`` holding a row number for
every occupied voxel and -1 for an empty one, and a compact value array ``data`` ``[N, 28]`` for the occupied voxels
only. Rows are kept in flat (z, y, x) order of their voxels, so ``data`` is exactly what the codec stores and
``links`` is a running count of the occupancy. A dense ``[28, Z, Y, X]`` tensor (``to_dense``) is only built for
tests and for the ``--pipeline.model.grid-storage dense`` comparison path.

Lookup: voxel ``(i, j, k)`` has its centre at ``(i + 0.5) / X`` of the box along x (svox2's ``world2grid``, i.e.
``grid_sample(align_corners=False)``); positions are clamped to the outermost voxel centres (svox2 clamps, like
``padding_mode="border"``); the 8 corner voxels are read through ``links`` and an empty corner counts as 0, exactly
what a dense grid that is zero outside its occupancy gives.
"""

from __future__ import annotations

from typing import Any, Iterator, Optional, Protocol

import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float, Int
from torch import Tensor

from nerfstudio_methods.streamrf.masks import dilate
from nerfstudio_methods.streamrf.sh import SH_CHANNELS
from nerfstudio_methods.streamrf.spec import GridSpec

GRID_CHANNELS = 1 + SH_CHANNELS
"""Channel 0 is the raw density, channels 1..27 the SH coefficients (9 red, 9 green, 9 blue)."""

CHUNK = 1 << 18
"""Points (or rows) handled at once by whole-grid operations, so that none allocates per-voxel 28-channel
temporaries at N3DV / Meet Room sizes. An RMSprop update makes about ten ``[rows, 28]`` temporaries: 29 MB each at
this size; at 2^20 rows they took 1 GB of N3DV's 3 GB (measured, benchmarks/streamrf_memory.py)."""


def chunks(count: int, size: int = CHUNK) -> Iterator[slice]:
    for start in range(0, count, size):
        yield slice(start, min(start + size, count))


def trilinear(values: Float[Tensor, "c z y x"], coords: Float[Tensor, "n 3"]) -> Float[Tensor, "n c"]:
    """Trilinear interpolation of a dense ``values`` at normalised (x, y, z) coordinates (``grid_sample``)."""
    grid = coords.reshape(1, -1, 1, 1, 3).to(values.dtype)
    sampled = F.grid_sample(values[None], grid, mode="bilinear", padding_mode="border", align_corners=False)
    return sampled.reshape(values.shape[0], -1).transpose(0, 1)


def corners(
    resolution: tuple[int, int, int], coords: Float[Tensor, "n 3"]
) -> tuple[Int[Tensor, "n 8"], Float[Tensor, "n 8"]]:
    """Flat (z, y, x) indices of the 8 voxels around each point and their trilinear weights (svox2 conventions:
    centres at (i + 0.5) / n, positions clamped to the outermost centres). Corner ``k`` is ``(dz, dy, dx)`` = the bits
    of ``k``."""
    per_axis = []
    for axis, size in enumerate(resolution):
        u = ((coords[:, axis] + 1.0) * 0.5 * size - 0.5).clamp(0.0, size - 1.0)
        low = u.floor().clamp_max(max(size - 2, 0))
        frac = u - low
        low = low.long()
        per_axis.append((low, (low + 1).clamp_max(size - 1), frac))
    (x0, x1, fx), (y0, y1, fy), (z0, z1, fz) = per_axis
    x_res, y_res, _ = resolution
    index = []
    weight = []
    for dz in (0, 1):
        zi, wz = (z1, fz) if dz else (z0, 1.0 - fz)
        for dy in (0, 1):
            yi, wy = (y1, fy) if dy else (y0, 1.0 - fy)
            for dx in (0, 1):
                xi, wx = (x1, fx) if dx else (x0, 1.0 - fx)
                index.append((zi * y_res + yi) * x_res + xi)
                weight.append(wz * wy * wx)
    return torch.stack(index, dim=1), torch.stack(weight, dim=1)


def links_of(occupancy: Bool[Tensor, "z y x"]) -> Int[Tensor, "z y x"]:
    """svox2's ``links``: the row of each occupied voxel in flat order, -1 for empty voxels (int32)."""
    flat = occupancy.reshape(-1)
    links = torch.cumsum(flat, 0, dtype=torch.int32)
    links.sub_(1).masked_fill_(~flat, -1)
    return links.reshape(occupancy.shape)


def occupied_indices(occupancy: Bool[Tensor, "z y x"]) -> Int[Tensor, " n"]:
    """Flat indices of the occupied voxels, in row order."""
    return torch.nonzero(occupancy.reshape(-1))[:, 0]


class CornerSum(torch.autograd.Function):
    """``out[n] = sum_k weights[n, k] * rows[index[n, k]]``: the trilinear sum over gathered rows, with a backward
    that scatters into ``rows`` (``index_add_``) and keeps only the indices and weights, not the 8 gathered copies."""

    @staticmethod
    def forward(ctx: Any, rows: Tensor, index: Tensor, weights: Tensor) -> Tensor:  # type: ignore[override]
        out = rows.new_zeros(index.shape[0], rows.shape[1])
        ctx.num_rows = rows.shape[0]
        ctx.save_for_backward(index, weights)
        if rows.shape[0] == 0:  # every corner empty (the weights are all 0)
            return out
        for k in range(index.shape[1]):
            out.addcmul_(rows[index[:, k]], weights[:, k : k + 1])
        return out

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Optional[Tensor], None, None]:  # type: ignore[override]
        index, weights = ctx.saved_tensors
        grad = grad_out.new_zeros(ctx.num_rows, grad_out.shape[1])
        if ctx.num_rows == 0:
            return grad, None, None
        for k in range(index.shape[1]):
            grad.index_add_(0, index[:, k], grad_out * weights[:, k : k + 1])
        return grad, None, None


def corner_sum(rows: Float[Tensor, "m c"], index: Int[Tensor, "n 8"], weights: Float[Tensor, "n 8"]) -> Tensor:
    return CornerSum.apply(rows, index, weights)  # type: ignore[no-any-return]


class GridLookup(Protocol):
    """What the renderers need from a grid: its box, occupancy and trilinear values at points."""

    @property
    def spec(self) -> GridSpec: ...

    @property
    def occupancy(self) -> Bool[Tensor, "z y x"]: ...

    def query(self, coords: Float[Tensor, "n 3"]) -> Float[Tensor, "n c"]:
        """Trilinear values at normalised coordinates (0 from empty voxels)."""
        ...

    def query_occupied(self, coords: Float[Tensor, "n 3"]) -> tuple[Int[Tensor, " m"], Float[Tensor, "m c"]]:
        """The points with at least one occupied corner of non-zero weight (the others read exact zeros), and
        their values."""
        ...


class GridBox:
    """A grid's box and occupancy, read-only: what every grid and every trainable grid state exposes."""

    def __init__(self, spec: GridSpec, occupancy: Bool[Tensor, "z y x"]) -> None:
        self._spec = spec
        self._occupancy = occupancy

    @property
    def spec(self) -> GridSpec:
        return self._spec

    @property
    def occupancy(self) -> Bool[Tensor, "z y x"]:
        return self._occupancy


class SparseGrid(GridBox):
    """Values of the occupied voxels (rows in flat order) plus the occupancy and its ``links``; see the module doc."""

    def __init__(
        self,
        spec: GridSpec,
        data: Float[Tensor, "n c"],
        occupancy: Bool[Tensor, "z y x"],
        links: Optional[Int[Tensor, "z y x"]] = None,
    ) -> None:
        if tuple(occupancy.shape) != spec.shape:
            raise ValueError(f"occupancy of shape {tuple(occupancy.shape)} for a grid of shape {spec.shape}")
        super().__init__(spec, occupancy)
        self.data = data
        self._links = links

    @property
    def links(self) -> Int[Tensor, "z y x"]:
        if self._links is None:
            self._links = links_of(self._occupancy)
        return self._links

    @property
    def num_occupied(self) -> int:
        return int(self.data.shape[0])

    @classmethod
    def from_dense(
        cls, spec: GridSpec, values: Float[Tensor, "c z y x"], occupancy: Bool[Tensor, "z y x"]
    ) -> SparseGrid:
        flat = values.detach().reshape(values.shape[0], -1)
        return cls(spec, flat[:, occupancy.reshape(-1)].transpose(0, 1).contiguous(), occupancy)

    def to_dense(self) -> Float[Tensor, "c z y x"]:
        dense = self.data.new_zeros(self.data.shape[1], self.spec.num_voxels)
        dense[:, occupied_indices(self.occupancy)] = self.data.detach().transpose(0, 1).to(dense.dtype)
        return dense.reshape(-1, *self.spec.shape)

    def rows(self, flat: Int[Tensor, "..."]) -> Int[Tensor, "..."]:
        """Row of each voxel with flat index ``flat`` (int64), -1 where empty."""
        return self.links.reshape(-1)[flat].long()

    def corner_rows(self, coords: Float[Tensor, "n 3"]) -> tuple[Int[Tensor, "n 8"], Float[Tensor, "n 8"]]:
        """Rows of the 8 corners (-1 where empty) and their trilinear weights."""
        flat, weights = corners(self.spec.resolution, coords)
        return self.rows(flat), weights

    def near_occupied(self, coords: Float[Tensor, "n 3"]) -> Bool[Tensor, " n"]:
        out = torch.zeros(coords.shape[0], dtype=torch.bool, device=coords.device)
        out[self.occupied_corners(coords)[0]] = True
        return out

    def occupied_corners(
        self, coords: Float[Tensor, "n 3"]
    ) -> tuple[Int[Tensor, " m"], Int[Tensor, "m 8"], Float[Tensor, "m 8"]]:
        """The points with at least one occupied corner of non-zero weight, with their corner rows (-1 where empty)
        and weights; the other points read exact zeros. In chunks, so the corners of all points never coexist."""
        found: list[tuple[Tensor, Tensor, Tensor]] = []
        for part in chunks(coords.shape[0]):
            rows, weights = self.corner_rows(coords[part])
            near = torch.nonzero(((rows >= 0) & (weights > 0)).any(1))[:, 0]
            found.append((near + part.start, rows[near], weights[near]))
        if not found:
            empty = coords.new_zeros(0, 8)
            return torch.zeros(0, dtype=torch.long, device=coords.device), empty.long(), empty
        index, rows, weights = (torch.cat(items) for items in zip(*found))
        return index, rows, weights

    def query(self, coords: Float[Tensor, "n 3"]) -> Float[Tensor, "n c"]:
        out = self.data.new_zeros(coords.shape[0], self.data.shape[1])
        if self.num_occupied == 0:
            return out
        for part in chunks(coords.shape[0]):
            rows, weights = self.corner_rows(coords[part])
            empty = rows < 0
            out[part] = corner_sum(self.data, rows.masked_fill(empty, 0), weights.masked_fill(empty, 0.0))
        return out

    def query_occupied(self, coords: Float[Tensor, "n 3"]) -> tuple[Int[Tensor, " m"], Float[Tensor, "m c"]]:
        index, rows, weights = self.occupied_corners(coords)
        if self.num_occupied == 0:
            return index, self.data.new_zeros(index.shape[0], self.data.shape[1])
        empty = rows < 0
        return index, corner_sum(self.data, rows.masked_fill(empty, 0), weights.masked_fill(empty, 0.0))


class DenseGrid(GridBox):
    """A dense ``[C, Z, Y, X]`` tensor (zero outside ``occupancy``) looked up with ``grid_sample``."""

    def __init__(self, spec: GridSpec, values: Float[Tensor, "c z y x"], occupancy: Bool[Tensor, "z y x"]) -> None:
        super().__init__(spec, occupancy)
        self.values = values

    def query(self, coords: Float[Tensor, "n 3"]) -> Float[Tensor, "n c"]:
        return trilinear(self.values, coords)

    def query_occupied(self, coords: Float[Tensor, "n 3"]) -> tuple[Int[Tensor, " m"], Float[Tensor, "m c"]]:
        near = trilinear(self._occupancy[None].to(self.values.dtype), coords)[:, 0] > 0
        index = torch.nonzero(near)[:, 0]
        return index, trilinear(self.values, coords[index])


def initial_grid(
    spec: GridSpec, init_density: float = 0.1, init_sh: float = 0.0, device: torch.device | str = "cpu"
) -> SparseGrid:
    """Plenoxels' start: every voxel occupied, density 0.1, SH 0 (brief §1.2)."""
    data = torch.full((spec.num_voxels, GRID_CHANNELS), init_sh, device=device)
    data[:, 0] = init_density
    return SparseGrid(spec, data, torch.ones(spec.shape, dtype=torch.bool, device=device))


def reoccupy(grid: SparseGrid, occupancy: Bool[Tensor, "z y x"]) -> SparseGrid:
    """The same values on a new occupancy: voxels in both keep theirs, new ones start at 0, the others are dropped."""
    before, now = grid.occupancy.reshape(-1), occupancy.reshape(-1)
    data = grid.data.new_zeros(int(now.sum()), grid.data.shape[1])
    copy_rows(data, torch.nonzero(before[now])[:, 0], grid.data.detach(), torch.nonzero(now[before])[:, 0])
    return SparseGrid(grid.spec, data, occupancy)


def copy_rows(target: Tensor, target_rows: Int[Tensor, " n"], source: Tensor, source_rows: Int[Tensor, " n"]) -> None:
    """``target[target_rows] = source[source_rows]`` in chunks (no full-size gathered copy)."""
    for part in chunks(target_rows.shape[0]):
        target[target_rows[part]] = source[source_rows[part]].to(target.dtype)


def kept_voxels(grid: SparseGrid, density_threshold: float, dilation: int) -> Bool[Tensor, "z y x"]:
    """The voxels :func:`resample` keeps at the same resolution: density >= threshold (empty voxels read 0),
    dilated."""
    density = torch.zeros(grid.spec.num_voxels, device=grid.data.device)
    density[occupied_indices(grid.occupancy)] = grid.data[:, 0].detach()
    return dilate(density.reshape(grid.spec.shape) >= density_threshold, dilation)


def resample(grid: SparseGrid, target: GridSpec, density_threshold: float, dilation: int) -> SparseGrid:
    """svox2's ``resample``: trilinear values at the target's voxel centres; keep voxels whose interpolated density
    is >= ``density_threshold``, dilated ``dilation`` times; the others are empty.

    Used for frame-0 upsampling, the pilot grid (downsampling by ``pilot_factor``) and re-sparsifying at the same
    resolution after each frame (``sparsify_voxel_grid``). Only the density is evaluated at every target voxel (one
    channel, in chunks); the 28 channels are interpolated for the kept voxels only, so no 28-channel grid of the
    target's size is ever allocated.
    """
    source = grid.spec
    if source.radius != target.radius:
        raise ValueError("resample keeps the box: source and target radii must match")
    device = grid.data.device
    if source.resolution == target.resolution:
        return reoccupy(grid, kept_voxels(grid, density_threshold, dilation))
    # one channel may be dense at the source resolution (4 bytes per voxel): grid_sample is faster
    source_density = torch.zeros(source.num_voxels, device=device)
    source_density[occupied_indices(grid.occupancy)] = grid.data[:, 0].detach()
    source_density = source_density.reshape(1, *source.shape)
    density = torch.zeros(target.num_voxels, device=device)
    for part in chunks(target.num_voxels):
        flat = torch.arange(part.start, part.stop, device=device)
        density[part] = trilinear(source_density, target.centres_of(flat))[:, 0]
    del source_density
    occupancy = dilate(density.reshape(target.shape) >= density_threshold, dilation)
    del density
    kept = occupied_indices(occupancy)
    data = grid.data.new_empty(kept.shape[0], grid.data.shape[1])
    values = SparseGrid(source, grid.data.detach(), grid.occupancy, grid.links)
    for part in chunks(kept.shape[0]):
        data[part] = values.query(target.centres_of(kept[part]))
    return SparseGrid(target, data, occupancy)
