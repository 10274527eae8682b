"""A dense voxel grid of density + degree-2 SH over StreamRF's NDC box, with pure-torch trilinear lookup.

svox2 keeps a sparse grid (``links`` into ``density_data``/``sh_data``, brief §1.1). We keep one dense tensor of
``1 + 27`` channels, ``[C, Z, Y, X]``, plus a boolean occupancy: values are kept at exactly 0 outside the occupancy,
so trilinear interpolation treats empty voxels as 0, as svox2 does. Voxel ``(i, j, k)`` has its centre at
``(i + 0.5) / X`` of the box along x (svox2's ``world2grid``), which is ``grid_sample(align_corners=False)``;
positions are clamped to the outermost voxel centres (``padding_mode="border"``), as svox2 clamps them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float
from torch import Tensor

from nerfstudio_methods.streamrf.sh import SH_CHANNELS

GRID_CHANNELS = 1 + SH_CHANNELS
"""Channel 0 is the raw density, channels 1..27 the SH coefficients (9 red, 9 green, 9 blue)."""


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

    def index_space_scale(self) -> tuple[float, float, float]:
        """Voxels per NDC unit along each axis (the grid's anisotropic scaling, svox2's ``_scaling * gsz``)."""
        return tuple(n / (2.0 * r) for n, r in zip(self.resolution, self.radius))  # type: ignore[return-value]

    def scaled(self, factor: float) -> GridSpec:
        """The same box at ``factor`` times the resolution (pilot grid: factor 1 / pilot_factor)."""
        return GridSpec(tuple(max(1, round(n * factor)) for n in self.resolution), self.radius)  # type: ignore[arg-type]


def trilinear(values: Float[Tensor, "c z y x"], coords: Float[Tensor, "n 3"]) -> Float[Tensor, "n c"]:
    """Trilinear interpolation of ``values`` at normalised (x, y, z) coordinates (voxel centres at (i + 0.5) / X)."""
    grid = coords.reshape(1, -1, 1, 1, 3).to(values.dtype)
    sampled = F.grid_sample(values[None], grid, mode="bilinear", padding_mode="border", align_corners=False)
    return sampled.reshape(values.shape[0], -1).transpose(0, 1)


def empty_grid(
    spec: GridSpec, device: torch.device | str = "cpu"
) -> tuple[Float[Tensor, "c z y x"], Bool[Tensor, "z y x"]]:
    """All-zero values and an empty occupancy."""
    return torch.zeros(GRID_CHANNELS, *spec.shape, device=device), torch.zeros(
        spec.shape, dtype=torch.bool, device=device
    )


def initial_grid(
    spec: GridSpec, init_density: float = 0.1, init_sh: float = 0.0, device: torch.device | str = "cpu"
) -> tuple[Float[Tensor, "c z y x"], Bool[Tensor, "z y x"]]:
    """Plenoxels' start: every voxel occupied, density 0.1, SH 0 (brief §1.2)."""
    values = torch.full((GRID_CHANNELS, *spec.shape), init_sh, device=device)
    values[0] = init_density
    return values, torch.ones(spec.shape, dtype=torch.bool, device=device)


def resample(
    values: Float[Tensor, "c z y x"],
    source: GridSpec,
    target: GridSpec,
    density_threshold: float,
    dilation: int,
) -> tuple[Float[Tensor, "c z y x"], Bool[Tensor, "z y x"]]:
    """svox2's ``resample``: trilinear values at the target's voxel centres; keep voxels whose interpolated density
    is >= ``density_threshold``, dilated ``dilation`` times; zero everything else.

    Used for frame-0 upsampling, the pilot grid (downsampling by ``pilot_factor``) and re-sparsifying at the same
    resolution after each frame (``sparsify_voxel_grid``).
    """
    from nerfstudio_methods.streamrf.masks import dilate

    if source.radius != target.radius:
        raise ValueError("resample keeps the box: source and target radii must match")
    if source.resolution == target.resolution:
        new_values = values.clone()
    else:
        centres = target.voxel_centres(values.device).reshape(-1, 3)
        new_values = trilinear(values, centres).transpose(0, 1).reshape(values.shape[0], *target.shape).contiguous()
    occupancy = dilate(new_values[0] >= density_threshold, dilation)
    new_values = new_values * occupancy
    return new_values, occupancy
