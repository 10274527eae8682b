"""The shape and extent of a StreamRF voxel grid (kept apart from :mod:`.grid` so the occupancy-mask operations in
:mod:`.masks`, which :mod:`.grid` uses, can name it without an import cycle)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor


@dataclass(frozen=True)
class GridSpec:
    """Resolution ``(X, Y, Z)`` of a grid spanning ``[-radius, radius]`` on each axis, centred at 0 (NDC)."""

    resolution: tuple[int, int, int]
    radius: tuple[float, float, float]

    @property
    def shape(self) -> tuple[int, int, int]:
        """Tensor shape ``(Z, Y, X)`` of one channel."""
        x, y, z = self.resolution
        return (z, y, x)

    @property
    def num_voxels(self) -> int:
        x, y, z = self.resolution
        return x * y * z

    def normalize(self, points: Float[Tensor, "*b 3"]) -> Float[Tensor, "*b 3"]:
        """Box coordinates in [-1, 1] (grid_sample's convention) of NDC points."""
        return points / points.new_tensor(self.radius)

    def voxel_centres(self, device: torch.device | str = "cpu") -> Float[Tensor, "z y x 3"]:
        """Normalised ([-1, 1]) coordinates (x, y, z) of every voxel centre, indexed ``[k, j, i]``."""
        axes = [(torch.arange(n, device=device, dtype=torch.float32) + 0.5) / n * 2.0 - 1.0 for n in self.resolution]
        zz, yy, xx = torch.meshgrid(axes[2], axes[1], axes[0], indexing="ij")
        return torch.stack([xx, yy, zz], dim=-1)

    def centres_of(self, flat: Int[Tensor, " n"]) -> Float[Tensor, "n 3"]:
        """Normalised coordinates of the voxels with flat (z, y, x) indices ``flat``."""
        x_res, y_res, _ = self.resolution
        ijk = torch.stack([flat % x_res, (flat // x_res) % y_res, flat // (x_res * y_res)], dim=-1)
        size = torch.tensor(self.resolution, device=flat.device, dtype=torch.float32)
        return (ijk.to(torch.float32) + 0.5) / size * 2.0 - 1.0

    def index_space_scale(self) -> tuple[float, float, float]:
        """Voxels per NDC unit along each axis (the grid's anisotropic scaling, svox2's ``_scaling * gsz``)."""
        return tuple(n / (2.0 * r) for n, r in zip(self.resolution, self.radius))  # type: ignore[return-value]

    def scaled(self, factor: float) -> GridSpec:
        """The same box at ``factor`` times the resolution (pilot grid: factor 1 / pilot_factor)."""
        return GridSpec(tuple(max(1, round(n * factor)) for n in self.resolution), self.radius)  # type: ignore[arg-type]
