"""Rendering a StreamRF grid: NDC rays, uniform marching with empty-space skipping, Plenoxels' compositing.

As svox2 (brief §1.1): rays are converted to NDC (near plane 1, ``ndc_coeffs = (2 fx / W, 2 fy / H)``) and their NDC
directions normalised; samples are taken every ``step_size`` voxels (0.5) measured in grid-index space, and each
sample's opacity uses its NDC length: ``alpha = 1 - exp(-relu(sigma) * dt)``. Colour is ``relu(SH(d) . c + 0.5)``,
rays stop contributing once their transmittance drops below ``stop_thresh``, and what transmittance is left is
filled with grey (``background_brightness 0.5``).

Two samplers produce the same quantities:

- :func:`render_rays_torch` (CPU and GPU): every ray marched to the end of the box in one batch; samples whose 8
  corner voxels are all empty are skipped before the 28-channel lookup (they would read exact zeros).
- :class:`NerfaccSampler` (CUDA only): nerfacc's ``OccGridEstimator`` built from the grid's occupancy, which skips
  empty space and stops rays early on the GPU. It marches in grid-index space so that its samples are the torch
  marcher's (0.5 voxel, midpoints inside the box, same early stop); ``scripts/streamrf_sampler_check.py`` compares
  the two samplers' colours on a CUDA machine (no GPU on the development machines).
"""

from __future__ import annotations

from typing import Any

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from nerfstudio_methods.rays import depth_from_ndc_z
from nerfstudio_methods.streamrf.grid import GridLookup, GridSpec
from nerfstudio_methods.streamrf.sh import sh_bases, sh_to_rgb


def ray_box(
    origins: Float[Tensor, "n 3"], directions: Float[Tensor, "n 3"], radius: tuple[float, float, float]
) -> tuple[Float[Tensor, " n"], Float[Tensor, " n"]]:
    """Entry and exit distances of rays through the box ``[-radius, radius]`` (slab test; entry clamped at 0)."""
    bound = origins.new_tensor(radius)
    safe = torch.where(directions.abs() < 1e-12, torch.full_like(directions, 1e-12), directions)
    t1, t2 = (-bound - origins) / safe, (bound - origins) / safe
    t_near = torch.minimum(t1, t2).amax(-1).clamp_min(0.0)
    t_far = torch.maximum(t1, t2).amin(-1)
    return t_near, t_far


def march_steps(spec: GridSpec, directions: Float[Tensor, "n 3"], step_size: float) -> Float[Tensor, " n"]:
    """NDC length of a ``step_size``-voxel step in grid-index space along each (unit) direction."""
    scale = directions.new_tensor(spec.index_space_scale())
    return step_size / (directions * scale).norm(dim=-1).clamp_min(1e-12)


MARCH_CHUNK = 1 << 20
"""Samples marched at once by :func:`render_rays_torch` (a group of whole rays; a longer ray is one group)."""


def ray_groups(num_steps: Int[Tensor, " n"], limit: int) -> list[tuple[int, int]]:
    """Consecutive ray ranges ``[first, last)`` with at most ``limit`` samples each (a ray with more is alone);
    one empty range when there are no rays."""
    ends = torch.cumsum(num_steps, 0)
    count = int(num_steps.shape[0])
    groups: list[tuple[int, int]] = []
    first = 0
    while first < count:
        before = int(ends[first - 1]) if first else 0
        last = max(int(torch.searchsorted(ends, before + limit, right=True)), first + 1)
        groups.append((first, min(last, count)))
        first = last
    return groups or [(0, 0)]


def render_rays_torch(
    grid: GridLookup,
    origins: Float[Tensor, "n 3"],
    directions: Float[Tensor, "n 3"],
    valid: Bool[Tensor, " n"],
    step_size: float = 0.5,
    background: float = 0.5,
    stop_thresh: float = 1e-7,
) -> dict[str, Tensor]:
    """Render NDC rays (unit directions) through the grid in pure torch; see the module doc.

    Samples are kept packed (ray by ray, in marching order) and only those near occupied voxels are looked up and
    composited: memory and time grow with the samples that matter, not with rays x the longest ray."""
    spec = grid.spec
    count = origins.shape[0]
    device = origins.device
    t_near, t_far = ray_box(origins, directions, spec.radius)
    valid = valid & (t_far > t_near)
    dt = march_steps(spec, directions, step_size)
    # samples at t_near + (k + 0.5) dt whose midpoints lie inside the box (as nerfacc's marcher takes them)
    num_steps = torch.where(valid, torch.ceil((t_far - t_near) / dt - 0.5), torch.zeros_like(dt)).clamp_min(0).long()
    # Marched a group of rays at a time: every sample of a batch (20,000 rays x hundreds of steps on N3DV's grid)
    # never exists at once, only those near occupied voxels are kept.
    ray_parts: list[Tensor] = []
    value_parts: list[Tensor] = []
    z_parts: list[Tensor] = []
    for first, last in ray_groups(num_steps, MARCH_CHUNK):
        steps_here = num_steps[first:last]
        ray_of_sample = torch.repeat_interleave(torch.arange(first, last, device=device), steps_here)
        start = (torch.cumsum(steps_here, 0) - steps_here)[ray_of_sample - first]
        step = torch.arange(ray_of_sample.shape[0], device=device) - start
        del start
        t = t_near[ray_of_sample] + (step.to(origins.dtype) + 0.5) * dt[ray_of_sample]
        del step
        points = origins[ray_of_sample] + t[:, None] * directions[ray_of_sample]
        del t
        # Empty-space skipping: a sample whose 8 corner voxels are all empty interpolates exact zeros.
        used, looked_up = grid.query_occupied(spec.normalize(points))
        ray_parts.append(ray_of_sample[used])
        z_parts.append(points[used, 2])
        value_parts.append(looked_up)
        del ray_of_sample, points, used
    ray, depth = torch.cat(ray_parts), depth_from_ndc_z(torch.cat(z_parts))
    looked_up = value_parts[0] if len(value_parts) == 1 else torch.cat(value_parts)
    del ray_parts, z_parts, value_parts
    color = sh_to_rgb(looked_up[:, 1:], sh_bases(directions[ray]))
    optical = torch.relu(looked_up[:, 0]) * dt[ray]
    out = composite_packed(optical, color, depth, ray, count, background, stop_thresh)
    out["num_samples"] = torch.bincount(ray, minlength=count).to(origins.dtype)
    return out


def composite_packed(
    optical: Float[Tensor, " m"],
    rgb: Float[Tensor, "m 3"],
    depth: Float[Tensor, " m"],
    ray: Int[Tensor, " m"],
    count: int,
    background: float,
    stop_thresh: float,
) -> dict[str, Tensor]:
    """:func:`composite` on packed samples (sorted by ray, in marching order) of optical depth ``sigma * dt``:
    the transmittance before a sample is ``exp(-sum of the ray's earlier optical depths)`` (an exclusive cumulative
    sum per ray, in float64 so that the running sum over all rays keeps its precision)."""

    def transmittance_before(depths: Tensor) -> tuple[Tensor, Tensor]:
        running = torch.cumsum(depths.double(), 0)
        total = running.new_zeros(count).index_add_(0, ray, depths.double())
        ray_end = torch.cumsum(total, 0)
        ray_start = ray_end - total
        before = running - depths.double() - ray_start[ray]
        return torch.exp(-before).to(depths.dtype), torch.exp(-total).to(depths.dtype)

    with torch.no_grad():
        keep = (transmittance_before(optical)[0] >= stop_thresh).to(optical.dtype)
    optical = optical * keep
    before, left = transmittance_before(optical)
    weights = before * (1.0 - torch.exp(-optical))
    accumulation = optical.new_zeros(count, 1).index_add_(0, ray, weights[:, None])
    color = optical.new_zeros(count, 3).index_add_(0, ray, weights[:, None] * rgb)
    weighted_depth = optical.new_zeros(count, 1).index_add_(0, ray, (weights * depth)[:, None])
    return {
        "rgb": color + left[:, None] * background,
        "accumulation": accumulation,
        "depth": weighted_depth / accumulation.clamp_min(1e-6),
    }


class NerfaccSampler:
    """nerfacc 0.5's occupancy-grid sampler over the grid's box (CUDA only; see the module doc).

    It marches in grid-index space, where the box is ``[0, X] x [0, Y] x [0, Z]`` and nerfacc's fixed step is
    ``step_size`` voxels, exactly svox2's (and :func:`render_rays_torch`'s) step on an anisotropic grid; densities
    are divided by each ray's index-space stretch, so that ``sigma * dt`` is the NDC optical depth. Its occupancy
    grid is the sparse grid's occupancy dilated once: a point in a cell none of whose 26 neighbours is occupied
    reads 8 empty corners (exact zeros), every other point may not, so nerfacc skips exactly the samples the torch
    marcher skips.
    """

    def __init__(self, spec: GridSpec, device: torch.device | str) -> None:
        from nerfacc import OccGridEstimator

        x, y, z = spec.resolution
        self.spec = spec
        self.estimator: Any = OccGridEstimator(
            roi_aabb=torch.tensor([0.0, 0.0, 0.0, float(x), float(y), float(z)]), resolution=[x, y, z], levels=1
        ).to(device)

    @staticmethod
    def available(device: torch.device | str) -> bool:
        if torch.device(device).type != "cuda" or not torch.cuda.is_available():
            return False
        try:
            import nerfacc  # noqa: F401
        except ImportError:
            return False
        return True

    def set_occupancy(self, occupancy: Bool[Tensor, "z y x"]) -> None:
        from nerfstudio_methods.streamrf.masks import dilate

        # nerfacc indexes its binaries [level, x, y, z]; ours are [z, y, x].
        self.estimator.binaries = dilate(occupancy, 1).permute(2, 1, 0).contiguous()[None]

    def render(
        self,
        grid: GridLookup,
        origins: Float[Tensor, "n 3"],
        directions: Float[Tensor, "n 3"],
        valid: Bool[Tensor, " n"],
        step_size: float,
        background: float,
        stop_thresh: float,
    ) -> dict[str, Tensor]:
        from nerfacc import accumulate_along_rays, render_weight_from_density

        count = origins.shape[0]
        scale = origins.new_tensor(self.spec.index_space_scale())
        # index space: NDC point p -> (p + radius) * scale; a unit NDC direction stretches by |d * scale|
        stretched = directions * scale
        stretch = stretched.norm(dim=-1).clamp_min(1e-12)
        index_origins = (origins + origins.new_tensor(self.spec.radius)) * scale
        index_directions = stretched / stretch[:, None]
        t_near, t_far = ray_box(origins, directions, self.spec.radius)
        t_near = torch.where(valid & (t_far > t_near), t_near, t_far)  # invalid rays: an empty interval

        def midpoints(t_starts: Tensor, t_ends: Tensor, ray_indices: Tensor) -> Tensor:
            ndc_t = (t_starts + t_ends) / 2 / stretch[ray_indices]
            return origins[ray_indices] + directions[ray_indices] * ndc_t[:, None]

        def sigma_fn(t_starts: Tensor, t_ends: Tensor, ray_indices: Tensor) -> Tensor:
            mid = midpoints(t_starts, t_ends, ray_indices)
            return torch.relu(grid.query(self.spec.normalize(mid))[:, 0]) / stretch[ray_indices]

        with torch.no_grad():
            ray_indices, t_starts, t_ends = self.estimator.sampling(
                index_origins,
                index_directions,
                sigma_fn=sigma_fn,
                render_step_size=step_size,
                near_plane=0.0,
                far_plane=1e10,
                t_min=t_near * stretch,
                t_max=t_far * stretch,
                early_stop_eps=stop_thresh,
                alpha_thre=0.0,
                stratified=False,
            )
        mid = midpoints(t_starts, t_ends, ray_indices)
        looked_up = grid.query(self.spec.normalize(mid))
        sigma = torch.relu(looked_up[:, 0]) / stretch[ray_indices]
        color = sh_to_rgb(looked_up[:, 1:], sh_bases(directions[ray_indices]))
        weights, _, _ = render_weight_from_density(t_starts, t_ends, sigma, ray_indices=ray_indices, n_rays=count)
        rgb = accumulate_along_rays(weights, color, ray_indices=ray_indices, n_rays=count)
        accumulation = accumulate_along_rays(weights, None, ray_indices=ray_indices, n_rays=count)
        depth = accumulate_along_rays(
            weights, depth_from_ndc_z(mid[:, 2])[:, None], ray_indices=ray_indices, n_rays=count
        )
        samples = torch.bincount(ray_indices, minlength=count).to(origins.dtype)
        return {
            "rgb": rgb + (1.0 - accumulation) * background,
            "accumulation": accumulation,
            "depth": depth / accumulation.clamp_min(1e-6),
            "num_samples": samples,
        }
