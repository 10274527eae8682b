"""A trainable StreamRF grid: its values, the lookups a training step differentiates through, sparse total
variation and the masked RMSprop step, stored sparsely (default) or densely.

Sparse (``--pipeline.model.grid-storage sparse``, :class:`SparseGridState`): the grid is a :class:`.grid.SparseGrid`
(``links`` + ``data [N, 28]``). A training lookup does not differentiate through the whole ``data``: it gathers the
distinct rows it reads into a small leaf tensor and remembers which rows those were, so the gradient exists only
for the voxels a batch touched (svox2's ``sparse_grad_indexer``) and no ``[N, 28]`` gradient is ever allocated. The
RMS state exists for occupied voxels only and only while a phase trains.

Dense (``grid-storage dense``, :class:`DenseGridState`): the original ``[28, Z, Y, X]`` tensor with ``grid_sample``
lookups, autograd over the whole tensor and :class:`.optim.MaskedRMSprop`; kept to compare speed and results.

Both exchange grids as :class:`.grid.SparseGrid` (resampling, codec, pilot lookups) and compute the same values.
"""

from __future__ import annotations

from typing import Any, Callable, Literal, Optional, Union

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from nerfstudio_methods.streamrf.grid import (
    DenseGrid,
    GridBox,
    GridSpec,
    SparseGrid,
    chunks,
    corner_sum,
    occupied_indices,
    trilinear,
)
from nerfstudio_methods.streamrf.optim import MaskedRMSprop, SparseRMSprop

GridStorage = Literal["sparse", "dense"]


def tv_cells(shape: tuple[int, int, int], fraction: float, device: torch.device) -> Int[Tensor, "4 n"]:
    """svox2's sparse TV cells: a random contiguous ``fraction`` of the voxels (flat order), each with its +x, +y and
    +z neighbours (clamped at the border): flat indices ``[centre, right, down, back]``."""
    depth, height, width = shape
    total = depth * height * width
    count = max(1, int(total * fraction))
    start = int(torch.randint(0, max(1, total - count + 1), (1,)))
    flat = torch.arange(start, start + count, device=device)
    z, rest = flat // (height * width), flat % (height * width)
    y, x = rest // width, rest % width

    def index(zz: Tensor, yy: Tensor, xx: Tensor) -> Tensor:
        return (zz * height + yy) * width + xx

    return torch.stack(
        [
            flat,
            index(z, y, (x + 1).clamp_max(width - 1)),
            index(z, (y + 1).clamp_max(height - 1), x),
            index((z + 1).clamp_max(depth - 1), y, x),
        ]
    )


def tv_axis_weights(shape: tuple[int, int, int]) -> tuple[float, float, float]:
    """svox2 weighs the x, y, z differences by resolution / 256."""
    depth, height, width = shape
    return width / 256.0, height / 256.0, depth / 256.0


def total_variation(
    values: Callable[[Tensor], Tensor], cells: Int[Tensor, "4 n"], shape: tuple[int, int, int]
) -> Tensor:
    """svox2's sparse TV with autograd: ``sqrt(dx^2 + dy^2 + dz^2)`` per cell and channel (forward differences
    weighted by :func:`tv_axis_weights`), summed over channels and averaged over the cells. ``values(flat)`` reads
    the voxels with flat indices ``flat`` ``[n, c]`` (0 for empty voxels)."""
    wx, wy, wz = tv_axis_weights(shape)
    centre, right, down, back = values(cells.reshape(-1)).split(cells.shape[1])
    dx, dy, dz = (right - centre) * wx, (down - centre) * wy, (back - centre) * wz
    return torch.sqrt(dx * dx + dy * dy + dz * dz + 1e-12).sum() / cells.shape[1]


TV_CHUNK = 1 << 16
"""Cells per chunk of :class:`SparseTotalVariation`."""


class SparseTotalVariation(torch.autograd.Function):
    """:func:`total_variation` over gathered rows, with an analytic gradient computed chunk by chunk (svox2 adds its
    TV gradient in place, ``inplace_tv_grad``): no per-cell tensors are kept for the backward pass.

    ``rows`` ``[m, C]`` holds the voxels read; ``index`` ``[4, n]`` the row of each cell's centre / right / down /
    back voxel, ``present`` whether that voxel is occupied (an empty one reads 0)."""

    @staticmethod
    def forward(ctx: Any, rows: Tensor, index: Tensor, present: Tensor, channels: slice, weights: tuple) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(rows, index, present)
        ctx.channels, ctx.weights = channels, weights
        total = rows.new_zeros((), dtype=torch.float64)
        for part in chunks(index.shape[1], TV_CHUNK):
            _, _, norm = SparseTotalVariation.differences(rows, index[:, part], present[:, part], channels, weights)
            total += norm.sum(dtype=torch.float64)
        return (total / index.shape[1]).to(rows.dtype)

    @staticmethod
    def differences(rows: Tensor, index: Tensor, present: Tensor, channels: slice, weights: tuple):
        if rows.shape[0] == 0:  # every voxel read is empty (index all 0, present all False)
            rows = rows.new_zeros(1, rows.shape[1])
        centre, right, down, back = (rows[index[k], channels] * present[k, :, None] for k in range(4))
        diffs = [(right - centre) * weights[0], (down - centre) * weights[1], (back - centre) * weights[2]]
        norm = torch.sqrt(diffs[0] * diffs[0] + diffs[1] * diffs[1] + diffs[2] * diffs[2] + 1e-12)
        return centre, diffs, norm

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor):  # type: ignore[override]
        rows, index, present = ctx.saved_tensors
        channels, weights = ctx.channels, ctx.weights
        grad = torch.zeros_like(rows)
        if rows.shape[0] == 0:
            return grad, None, None, None, None
        target = grad[:, channels]
        scale = grad_out / index.shape[1]
        for part in chunks(index.shape[1], TV_CHUNK):
            _, diffs, norm = SparseTotalVariation.differences(rows, index[:, part], present[:, part], channels, weights)
            # d norm / d (right, down, back) = w * d / norm; the centre gets minus their sum
            neighbours = [diffs[k] * (weights[k] * scale) / norm for k in range(3)]
            centre = -(neighbours[0] + neighbours[1] + neighbours[2])
            for k, part_grad in enumerate([centre, *neighbours]):
                target.index_add_(0, index[k, part], part_grad * present[k, part, None])
        return grad, None, None, None, None


class SparseGridState:
    """A trainable sparse grid; see the module doc."""

    storage: GridStorage = "sparse"

    def __init__(self, grid: SparseGrid) -> None:
        self.optimizer = SparseRMSprop()
        self.set(grid)

    def set(self, grid: SparseGrid) -> None:
        """Replace the grid (new occupancy or resolution); the optimiser state starts again."""
        self.grid = SparseGrid(grid.spec, grid.data.detach().contiguous(), grid.occupancy, grid._links)
        self.values = self.grid.data.requires_grad_(True)
        """The occupied voxels' values ``[N, 28]``; a gradient set on it directly is used by :meth:`step` too."""
        self.pending: list[tuple[Tensor, Tensor]] = []
        self.optimizer.reset()

    @property
    def spec(self) -> GridSpec:
        return self.grid.spec

    @property
    def occupancy(self) -> Bool[Tensor, "z y x"]:
        return self.grid.occupancy

    def sparse(self) -> SparseGrid:
        return SparseGrid(self.spec, self.values.detach(), self.occupancy, self.grid.links)

    def lookup(self) -> SparseGrid:
        """The grid for rendering without training."""
        return self.sparse()

    def occupied_values(self) -> Float[Tensor, "n c"]:
        return self.values.detach()

    # --- differentiable lookups -------------------------------------------------------------------------------

    def _leaf(self, rows: Int[Tensor, "..."], valid: Bool[Tensor, "..."]) -> tuple[Tensor, Int[Tensor, "..."]]:
        """A leaf tensor holding the distinct rows ``rows[valid]`` (remembered for :meth:`step`), and the index of
        each entry of ``rows`` in it (0 where not valid)."""
        data = self.values.detach()
        mark = torch.zeros(data.shape[0], dtype=torch.bool, device=data.device)
        mark[rows[valid]] = True
        distinct = torch.nonzero(mark)[:, 0]
        slot = torch.cumsum(mark, 0, dtype=torch.int32)  # 1 + the leaf row of each marked grid row
        index = torch.zeros_like(rows)
        if data.shape[0] > 0:
            index = torch.where(valid, slot[rows.clamp_min(0)].long() - 1, index)
        leaf = data[distinct]
        if torch.is_grad_enabled():
            leaf.requires_grad_(True)
            self.pending.append((distinct, leaf))
        return leaf, index

    def _gathered(self, rows: Int[Tensor, "n k"], weights: Float[Tensor, "n k"]) -> Float[Tensor, "n c"]:
        """``sum_k weights * data[rows]`` (rows -1 read 0) through a leaf holding only the distinct rows read."""
        valid = rows >= 0
        leaf, index = self._leaf(rows, valid)
        return corner_sum(leaf, index, weights.masked_fill(~valid, 0.0))

    def query(self, coords: Float[Tensor, "n 3"]) -> Float[Tensor, "n c"]:
        rows, weights = self.grid.corner_rows(coords)
        return self._gathered(rows, weights)

    def query_occupied(self, coords: Float[Tensor, "n 3"]) -> tuple[Int[Tensor, " m"], Float[Tensor, "m c"]]:
        index, rows, weights = self.grid.occupied_corners(coords)
        return index, self._gathered(rows, weights)

    def total_variation(self, channels: slice, fraction: float) -> Tensor:
        cells = tv_cells(self.spec.shape, fraction, self.values.device)
        rows = self.grid.rows(cells)
        present = rows >= 0
        leaf, index = self._leaf(rows, present)
        return SparseTotalVariation.apply(leaf, index, present, channels, tv_axis_weights(self.spec.shape))  # type: ignore[no-any-return]

    # --- optimiser ----------------------------------------------------------------------------------------------

    def allowed(self, mask: Optional[Bool[Tensor, "z y x"]]) -> Optional[Bool[Tensor, " n"]]:
        """The per-row form of a voxel mask of trainable voxels (None: every occupied voxel)."""
        return None if mask is None else mask.reshape(-1)[occupied_indices(self.occupancy)]

    def step(self, allowed: Optional[Tensor], lr_density: float, lr_sh: float) -> int:
        """Masked RMSprop with the gradients of this step's lookups (summed per voxel); returns voxels updated."""
        parts = [(rows, leaf.grad) for rows, leaf in self.pending if leaf.grad is not None]
        self.pending = []  # the leaves go: each part's gradient is freed once it is summed below
        if self.values.grad is not None:
            parts.append((torch.arange(self.values.shape[0], device=self.values.device), self.values.grad))
            self.values.grad = None
        if not parts:
            return 0
        if len(parts) == 1:
            rows, grads = parts.pop()
        else:  # one summed gradient per voxel, as a dense gradient would hold; no concatenated copy of the parts
            mark = torch.zeros(self.values.shape[0], dtype=torch.bool, device=self.values.device)
            for part_rows, _ in parts:
                mark[part_rows] = True
            rows = torch.nonzero(mark)[:, 0]
            slot = torch.cumsum(mark, 0, dtype=torch.int32)
            del mark
            grads = parts[0][1].new_zeros(rows.shape[0], parts[0][1].shape[1])
            while parts:
                part_rows, part_grad = parts.pop()
                grads.index_add_(0, slot[part_rows].long() - 1, part_grad)
                del part_rows, part_grad
            del slot
        return self.optimizer.step(self.values.detach(), rows, grads, allowed, lr_density, lr_sh)

    def reset_optimizer(self) -> None:
        self.optimizer.reset()
        self.pending = []


class DenseGridState(GridBox):
    """A trainable dense ``[28, Z, Y, X]`` grid (the comparison path); see the module doc."""

    storage: GridStorage = "dense"

    def __init__(self, grid: SparseGrid) -> None:
        self.set(grid)

    def set(self, grid: SparseGrid) -> None:
        GridBox.__init__(self, grid.spec, grid.occupancy)
        self.values = grid.to_dense().contiguous().requires_grad_(True)
        self.optimizer = MaskedRMSprop(tuple(self.values.shape), self.values.device)

    def sparse(self) -> SparseGrid:
        return SparseGrid.from_dense(self.spec, self.values.detach(), self.occupancy)

    def lookup(self) -> DenseGrid:
        return DenseGrid(self.spec, self.values.detach(), self.occupancy)

    def occupied_values(self) -> Float[Tensor, "n c"]:
        return self.sparse().data

    def query(self, coords: Float[Tensor, "n 3"]) -> Float[Tensor, "n c"]:
        return trilinear(self.values, coords)

    def query_occupied(self, coords: Float[Tensor, "n 3"]) -> tuple[Int[Tensor, " m"], Float[Tensor, "m c"]]:
        return DenseGrid(self.spec, self.values, self.occupancy).query_occupied(coords)

    def total_variation(self, channels: slice, fraction: float) -> Tensor:
        data = self.values[channels].reshape(self.values[channels].shape[0], -1)
        cells = tv_cells(self.spec.shape, fraction, data.device)
        return total_variation(lambda flat: data[:, flat].transpose(0, 1), cells, self.spec.shape)

    def allowed(self, mask: Optional[Bool[Tensor, "z y x"]]) -> Bool[Tensor, "z y x"]:
        return self.occupancy if mask is None else self.occupancy & mask

    def step(self, allowed: Optional[Tensor], lr_density: float, lr_sh: float) -> int:
        if self.values.grad is None:
            return 0
        mask = self.occupancy if allowed is None else allowed
        updated = self.optimizer.step(self.values, self.values.grad, mask, lr_density, lr_sh)
        self.values.grad = None
        with torch.no_grad():
            self.values.mul_(self.occupancy)
        return updated

    def reset_optimizer(self) -> None:
        self.optimizer.reset()


GridState = Union[SparseGridState, DenseGridState]


def make_state(grid: SparseGrid, storage: GridStorage = "sparse") -> GridState:
    return SparseGridState(grid) if storage == "sparse" else DenseGridState(grid)
