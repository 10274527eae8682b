"""Exact per-pixel ground truth derived from the analytic scene: images, disparity, optical flow, masks.

Optical flow follows the definition RAFT estimates for DynamicNeRF's ``flow/NNN_fwd.npz`` (../shared/papers/
mononerf.md §3): for each pixel of frame i, where the scene point seen there appears in frame j (camera j at time
t_j), as an image-space displacement ``(dx, dy)`` in pixels. Here the seen point is the dominant primitive's surface
point; it is carried to t_j by that primitive's rigid translation and projected into camera j. The consistency
mask is 1 where that point is in front of camera j, inside its image and not occluded there (DynamicNeRF derives
the same mask from a forward/backward flow check; ours is exact visibility).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from jaxtyping import Bool, Float

from nerfstudio_methods.scenegen.cameras import PinholeCamera
from nerfstudio_methods.scenegen.scene import RenderResult, Scene, moving_mask

VISIBILITY_TOLERANCE = 1e-6
"""Relative distance tolerance for "the ray to the moved point hits it first"."""


def render_view(
    scene: Scene, camera: PinholeCamera, time: float = 0.0, background: Float[np.ndarray, "3"] | None = None
) -> RenderResult:
    """Render every pixel of ``camera`` at normalised time ``time``; outputs shaped ``(height, width, ...)``."""
    origins, directions = camera.rays()
    return scene.render(origins, directions, time=time, background=background)


def to_uint8(image: Float[np.ndarray, "*b"]) -> np.ndarray:
    """Quantise [0, 1] floats to uint8 with rounding (not truncation, which would bias every pixel down)."""
    return np.clip(np.round(np.asarray(image) * 255.0), 0, 255).astype(np.uint8)


def disparity(camera: PinholeCamera, render: RenderResult) -> Float[np.ndarray, "h w"]:
    """Inverse depth along the camera's viewing axis (``1 / z``) of the expected termination point; 0 where empty."""
    z = camera.z_depth(np.where(np.isfinite(render.depth), render.depth, 0.0))
    return np.where(np.isfinite(render.depth) & (z > 0), 1.0 / np.where(z > 0, z, 1.0), 0.0)


def motion_mask(scene: Scene, render: RenderResult) -> Bool[np.ndarray, "h w"]:
    """True where the pixel's dominant primitive moves (DynamicNeRF's ``motion_masks``: 255 = moving)."""
    return moving_mask(scene, render.primitive_id)


@dataclass(frozen=True)
class FlowResult:
    flow: Float[np.ndarray, "h w 2"]
    """Displacement ``(dx, dy)`` in pixels of the target camera's image (both cameras must share the resolution)."""
    mask: Float[np.ndarray, "h w"]
    """1.0 where the moved point is visible in the target frame, else 0.0."""
    target_points: Float[np.ndarray, "h w 3"]
    """The seen points carried to the target time (NaN where the pixel sees nothing)."""


def optical_flow(
    scene: Scene,
    source: PinholeCamera,
    source_time: float,
    target: PinholeCamera,
    target_time: float,
    source_render: RenderResult | None = None,
) -> FlowResult:
    """Exact optical flow from ``source`` at ``source_time`` to ``target`` at ``target_time``.

    Pixels that see nothing get flow 0 and mask 0. Visibility is decided exactly: a ray from the target camera's
    centre towards the moved point must have that primitive as its dominant primitive, entered at the point's
    distance.
    """
    render = source_render if source_render is not None else render_view(scene, source, source_time)
    pixels = source.pixel_centres()
    seen = render.primitive_id >= 0
    points = render.hit_point + scene.displacements(render.primitive_id, source_time, target_time)
    safe_points = np.where(seen[..., None], points, target.centre + target.forward)
    projected, depth = target.project(safe_points)
    flow = np.where(seen[..., None], projected - pixels, 0.0)

    offset = safe_points - target.centre
    distance = np.linalg.norm(offset, axis=-1)
    check = scene.render(np.broadcast_to(target.centre, offset.shape), offset, time=target_time)
    visible = (
        seen
        & (depth > 0)
        & (projected[..., 0] >= 0)
        & (projected[..., 0] < target.width)
        & (projected[..., 1] >= 0)
        & (projected[..., 1] < target.height)
        & (check.primitive_id == render.primitive_id)
        & (np.abs(check.hit_distance - distance) <= VISIBILITY_TOLERANCE * np.maximum(distance, 1.0))
    )
    return FlowResult(
        flow=flow.astype(np.float64),
        mask=visible.astype(np.float64),
        target_points=np.where(seen[..., None], points, np.nan),
    )
