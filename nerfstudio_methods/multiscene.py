"""Many scenes in one run: the scene index each camera carries, rays split over scenes, scene ranges per rank.

Multi-scene methods (MonoNeRF's multi-scene training, mononerf.md §1 "Schedule"; 3Da-AE) list the cameras of every
scene in one dataset. Each camera carries its scene's index in ``Cameras.metadata["scene_index"]`` (shape
``[num_cameras, 1]``), which nerfstudio copies into ``RayBundle.metadata["scene_index"]`` for every ray. Cameras
built outside the dataset (the viewer, ``ns-render`` camera paths) carry none: they show a configured scene.
"""

from __future__ import annotations

import torch
from jaxtyping import Int
from nerfstudio.cameras.rays import RayBundle
from torch import Tensor

SCENE_INDEX_KEY = "scene_index"


def scene_indices_of_rays(ray_bundle: RayBundle, default_scene: int = 0) -> Int[Tensor, " n"]:
    """The scene index of every ray of a flat bundle; ``default_scene`` for rays whose camera carries none."""
    count = ray_bundle.origins.reshape(-1, 3).shape[0]
    value = ray_bundle.metadata.get(SCENE_INDEX_KEY)
    if value is None:
        return torch.full((count,), int(default_scene), dtype=torch.long, device=ray_bundle.origins.device)
    return value.reshape(-1).round().long()


def rays_per_scene(total_rays: int, num_scenes: int) -> list[int]:
    """``total_rays`` divided across scenes as evenly as possible (MonoNeRF divides ``N_rand`` across scenes)."""
    if num_scenes <= 0:
        raise ValueError(f"need at least one scene, got {num_scenes}")
    if total_rays < num_scenes:
        raise ValueError(f"{total_rays} rays per batch cannot cover {num_scenes} scenes (at least one ray each)")
    base, extra = divmod(total_rays, num_scenes)
    return [base + (1 if scene < extra else 0) for scene in range(num_scenes)]


def scene_range_of_rank(num_scenes: int, world_size: int, rank: int) -> range:
    """The contiguous, disjoint range of scenes that process ``rank`` of ``world_size`` owns (sizes differ by <= 1)."""
    if not 0 <= rank < max(world_size, 1):
        raise ValueError(f"rank {rank} is outside a world of {world_size} processes")
    world_size = max(world_size, 1)
    base, extra = divmod(num_scenes, world_size)
    start = rank * base + min(rank, extra)
    return range(start, start + base + (1 if rank < extra else 0))
