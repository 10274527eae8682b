"""Small helpers on nerfstudio's ray and camera containers that nerfstudio 1.1.5 lacks."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from jaxtyping import Bool, Float
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
    """Concatenate flat (``[num_rays]``-shaped) ray bundles along the ray axis, keeping every field and every
    per-ray (tensor) metadata key.

    Non-tensor metadata is left out: nerfstudio's viewer camera carries ``{"cam_idx": <int>}`` (viewer/utils.py
    ``get_camera``), which ``Cameras.generate_rays`` copies into the rays unchanged; it is not a per-ray value, and
    calling ``.to()`` on it killed the viewer's render thread."""
    if not bundles:
        raise ValueError("cannot concatenate an empty list of ray bundles")
    flat = [bundle.flatten() for bundle in bundles]
    keys = {key for key, value in flat[0].metadata.items() if isinstance(value, Tensor)}
    if any({key for key, value in bundle.metadata.items() if isinstance(value, Tensor)} != keys for bundle in flat):
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


# --- NDC (forward-facing scenes) ----------------------------------------------------------------------------------

NDC_NEAR = 1.0
"""NeRF, StreamRF and DynamicNeRF / MonoNeRF put the NDC near plane at depth 1 of the normalised (``bd_factor``-scaled,
recentred) scene (streamrf.md §1.1, mononerf.md §1)."""


NDC_COEFFICIENTS_KEY = "ndc_coefficients"
"""Dataparser metadata key of a forward-facing scene's NDC scale factors ``(2 fx / W, 2 fy / H)`` (llff-data)."""


def ndc_coefficients(fx: float, fy: float, width: float, height: float) -> tuple[float, float]:
    """NeRF's NDC scale factors ``(2 fx / W, 2 fy / H)``: x and y in NDC are ``-coeff * x / z`` of the camera frame."""
    return 2.0 * fx / width, 2.0 * fy / height


def ndc_rays(
    origins: Float[Tensor, "n 3"],
    directions: Float[Tensor, "n 3"],
    ndc_coeffs: tuple[float, float],
    near: float = NDC_NEAR,
    normalize: bool = True,
) -> tuple[Float[Tensor, "n 3"], Float[Tensor, "n 3"], Bool[Tensor, " n"]]:
    """NeRF's ``ndc_rays`` / svox2's ``convert_to_ndc``: shift origins to the near plane and project to NDC.

    With ``normalize`` (svox2, StreamRF) the NDC directions have unit length. Without it (NeRF, DynamicNeRF,
    MonoNeRF) a ray runs from NDC z = -1 at ``t = 0`` (the near plane) to z = 1 at ``t = 1`` (infinity), so samples
    are drawn in ``t`` in [0, 1]. Rays that do not travel into the scene (``d_z >= 0``, e.g. from a free viewer
    camera looking backwards) are flagged invalid; callers render them as background."""
    valid = directions[:, 2] < -1e-6
    dz = torch.where(valid, directions[:, 2], torch.full_like(directions[:, 2], -1.0))
    t = -(near + origins[:, 2]) / dz
    shifted = origins + t[:, None] * directions
    oz = torch.where(shifted[:, 2].abs() > 1e-9, shifted[:, 2], torch.full_like(shifted[:, 2], -near))
    cx, cy = ndc_coeffs
    ndc_origins = torch.stack([-cx * shifted[:, 0] / oz, -cy * shifted[:, 1] / oz, 1.0 + 2.0 * near / oz], dim=-1)
    ndc_directions = torch.stack(
        [
            -cx * (directions[:, 0] / dz - shifted[:, 0] / oz),
            -cy * (directions[:, 1] / dz - shifted[:, 1] / oz),
            -2.0 * near / oz,
        ],
        dim=-1,
    )
    if normalize:
        ndc_directions = ndc_directions / ndc_directions.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return ndc_origins, ndc_directions, valid


def ndc_to_world(
    points: Float[Tensor, "*batch 3"], ndc_coeffs: tuple[float, float], near: float = NDC_NEAR
) -> Float[Tensor, "*batch 3"]:
    """Inverse of the NDC projection (DynamicNeRF's ``NDC2world``): world z = 2 near / (z_ndc - 1), then x and y.

    NDC z is clamped just below 1 (the point at infinity)."""
    cx, cy = ndc_coeffs
    z = 2.0 * near / (points[..., 2].clamp(max=1.0 - 1e-6) - 1.0)
    return torch.stack([-points[..., 0] * z / cx, -points[..., 1] * z / cy, z], dim=-1)


def depth_from_ndc_z(z: Tensor, near: float = NDC_NEAR) -> Tensor:
    """Scene depth (along -z of the recentred scene) of an NDC z value: z_ndc = 1 + 2 near / z_world."""
    return 2.0 * near / (1.0 - z).clamp_min(1e-4)
