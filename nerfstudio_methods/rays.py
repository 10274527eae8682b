"""Small helpers on nerfstudio's ray and camera containers that nerfstudio 1.1.5 lacks."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from jaxtyping import Float
from nerfstudio.cameras.cameras import Cameras
from nerfstudio.cameras.rays import RayBundle
from torch import Tensor

UNSEEN_POSE_POOL_KEY = "unseen_pose_pool"
"""Dataparser metadata key: a :class:`Cameras` of every pose the datamanager's faithful ``all-poses`` mode may draw
from (this module imports no datamanager, so dataparsers can use it: nerfstudio imports them mid-initialisation)."""


def _cat_optional(values: Sequence[Tensor | None], name: str, device: torch.device) -> Tensor | None:
    if all(value is None for value in values):
        return None
    if any(value is None for value in values):
        raise ValueError(f"cannot concatenate ray bundles: {name} is set on some bundles only")
    return torch.cat([value.to(device) for value in values if value is not None], dim=0)


def cat_ray_bundles(bundles: Sequence[RayBundle]) -> RayBundle:
    """Concatenate flat (``[num_rays]``-shaped) ray bundles along the ray axis, keeping every field and metadata key."""
    if not bundles:
        raise ValueError("cannot concatenate an empty list of ray bundles")
    flat = [bundle.flatten() for bundle in bundles]
    keys = set(flat[0].metadata)
    if any(set(bundle.metadata) != keys for bundle in flat):
        raise ValueError("cannot concatenate ray bundles with different metadata keys")
    device = flat[0].origins.device
    origins = torch.cat([bundle.origins.to(device) for bundle in flat])
    directions = torch.cat([bundle.directions.to(device) for bundle in flat])
    pixel_area = torch.cat([bundle.pixel_area.to(device) for bundle in flat])
    return RayBundle(
        origins=origins,
        directions=directions,
        pixel_area=pixel_area,
        camera_indices=_cat_optional([bundle.camera_indices for bundle in flat], "camera_indices", device),
        nears=_cat_optional([bundle.nears for bundle in flat], "nears", device),
        fars=_cat_optional([bundle.fars for bundle in flat], "fars", device),
        metadata={key: torch.cat([bundle.metadata[key].to(device) for bundle in flat]) for key in sorted(keys)},
        times=_cat_optional([bundle.times for bundle in flat], "times", device),
    )


def cameras_with_poses(cameras: Cameras, camera_to_worlds: Float[Tensor, "n 3 4"]) -> Cameras:
    """Copies of ``cameras`` (one camera, or as many as poses) with new poses and the same intrinsics."""
    flat = cameras.flatten()
    count = camera_to_worlds.shape[0]
    if len(flat) not in (1, count):
        raise ValueError(f"{len(flat)} cameras cannot take {count} poses")

    def expand(value: Tensor) -> Tensor:
        return value.expand(count, *value.shape[1:]) if value.shape[0] == 1 else value

    return Cameras(
        camera_to_worlds=camera_to_worlds.to(flat.camera_to_worlds),
        fx=expand(flat.fx),
        fy=expand(flat.fy),
        cx=expand(flat.cx),
        cy=expand(flat.cy),
        width=expand(flat.width),
        height=expand(flat.height),
        distortion_params=None if flat.distortion_params is None else expand(flat.distortion_params),
        camera_type=expand(flat.camera_type),
    )


def cat_cameras(cameras: Sequence[Cameras]) -> Cameras:
    """Concatenate flat camera sets (poses and per-camera intrinsics) into one."""
    flat = [camera_set.flatten() for camera_set in cameras]

    def cat(name: str) -> Tensor:
        return torch.cat([getattr(camera_set, name) for camera_set in flat])

    distortion = [camera_set.distortion_params for camera_set in flat]
    has_distortion = any(value is not None for value in distortion)
    return Cameras(
        camera_to_worlds=cat("camera_to_worlds"),
        fx=cat("fx"),
        fy=cat("fy"),
        cx=cat("cx"),
        cy=cat("cy"),
        width=cat("width"),
        height=cat("height"),
        distortion_params=torch.cat(
            [
                value if value is not None else torch.zeros(len(camera_set), 6, device=camera_set.device)
                for value, camera_set in zip(distortion, flat)
            ]
        )
        if has_distortion
        else None,
        camera_type=cat("camera_type"),
    )
