"""Projecting points into frames: pixel-aligned feature lookup and scene-flow-induced optical flow.

Conventions (mononerf_contract.md "Pixel convention"): OpenGL camera axes (x right, y up, looking down -z), nerfstudio's
pixel centres (pixel (row i, col j) is centred at image point (j + 0.5, i + 0.5)); a camera-frame point (x, y, z)
projects to ``u = fx x / (-z) + cx``, ``v = -fy y / (-z) + cy`` (the released ``encoder.index`` and ``render_3d_point``,
mononerf.md §1 "Pixel-aligned lookup"). Feature maps cover the image exactly and are read bilinearly like
``grid_sample(align_corners=False, padding_mode="border")``.
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from torch import Tensor

from nerfstudio_methods.rays import NDC_NEAR, ndc_to_world

NDC_Z_MAX = 1.0 - 1e-3
"""NDC z is clamped here before going back to world space, as the released ``NDC2world`` does: points at or beyond
NDC z = 1 lie at infinity, and the flow and smoothness losses would see unbounded world positions."""

_MIN_DEPTH = 1e-6


def ndc_points_to_world(
    points: Float[Tensor, "*batch 3"], ndc_coeffs: tuple[float, float], near: float = NDC_NEAR
) -> Float[Tensor, "*batch 3"]:
    """NDC -> world with the released clamp ``z_ndc <= 1 - 1e-3`` (``NDC2world``, mononerf.md §1)."""
    clamped = torch.cat([points[..., :2], points[..., 2:].clamp(max=NDC_Z_MAX)], dim=-1)
    return ndc_to_world(clamped, ndc_coeffs, near)


def project_points(
    points_world: Float[Tensor, "n 3"],
    camera_to_world: Float[Tensor, "n 3 4"],
    fx: Float[Tensor, " n"],
    fy: Float[Tensor, " n"],
    cx: Float[Tensor, " n"],
    cy: Float[Tensor, " n"],
) -> tuple[Float[Tensor, "n 2"], Float[Tensor, " n"]]:
    """Pixel positions ``(u, v)`` and depths (along the viewing axis, positive in front) of world points, each in its
    own camera.

    The world -> camera transform is ``R^T (p - t)`` of the camera-to-world ``[R | t]``. A depth below 1e-6 in
    magnitude is replaced by 1e-6 (keeping its sign) so that no division by zero happens; points behind the camera
    project mirrored, as in the released code, and callers that care check ``depth > 0``."""
    rotation = camera_to_world[:, :, :3]
    offset = points_world - camera_to_world[:, :, 3]
    points_camera = torch.einsum("nji,nj->ni", rotation, offset)
    depth = -points_camera[:, 2]
    safe_depth = torch.where(depth.abs() < _MIN_DEPTH, torch.full_like(depth, _MIN_DEPTH), depth)
    u = fx * points_camera[:, 0] / safe_depth + cx
    v = -fy * points_camera[:, 1] / safe_depth + cy
    return torch.stack([u, v], dim=-1), depth


def sample_feature_maps(
    maps: Float[Tensor, "t c h w"],
    frame: Int[Tensor, " n"],
    uv: Float[Tensor, "n 2"],
    image_size: tuple[int, int],
) -> Float[Tensor, "n c"]:
    """Bilinear features at image points ``uv`` (pixels of a ``W x H`` image), each point reading the map of its own
    ``frame``.

    Equals ``grid_sample(maps[frame], (2u/W - 1, 2v/H - 1), align_corners=False, padding_mode="border")``: the map
    pixel coordinate is ``u w / W - 0.5``, clamped to ``[0, w - 1]`` (border padding). Implemented as a gather of the
    four neighbours from the ``[t, c, h*w]`` view of ``maps`` (no copy of the feature volume, no per-frame loop);
    differentiable w.r.t. ``uv`` and ``maps``."""
    width, height = image_size
    t, c, h, w = maps.shape
    if uv.shape[0] == 0:
        return maps.new_zeros(0, c)
    x = (uv[:, 0] * (w / width) - 0.5).clamp(0.0, w - 1)
    y = (uv[:, 1] * (h / height) - 0.5).clamp(0.0, h - 1)
    x0 = x.detach().floor().clamp(max=w - 2 if w > 1 else 0).long()
    y0 = y.detach().floor().clamp(max=h - 2 if h > 1 else 0).long()
    x1 = (x0 + 1).clamp(max=w - 1)
    y1 = (y0 + 1).clamp(max=h - 1)
    fx = (x - x0.to(x)).unsqueeze(-1)
    fy = (y - y0.to(y)).unsqueeze(-1)
    flat = maps.reshape(t, c, h * w)
    frame = frame.long()

    def read(yi: Tensor, xi: Tensor) -> Tensor:
        return flat[frame, :, yi * w + xi]

    top = read(y0, x0) * (1.0 - fx) + read(y0, x1) * fx
    bottom = read(y1, x0) * (1.0 - fx) + read(y1, x1) * fx
    return top * (1.0 - fy) + bottom * fy


def induced_flow(
    points_ndc: Float[Tensor, "n samples 3"],
    weights: Float[Tensor, "n samples"],
    ndc_coeffs: tuple[float, float],
    camera_to_world: Float[Tensor, "n 3 4"],
    fx: Float[Tensor, " n"],
    fy: Float[Tensor, " n"],
    cx: Float[Tensor, " n"],
    cy: Float[Tensor, " n"],
    pixel_uv: Float[Tensor, "n 2"],
    near: float = NDC_NEAR,
) -> Float[Tensor, "n 2"]:
    """Optical flow (pixels) induced by the scene flow: ``project(world(sum_k w_k x_k)) - pixel_uv``.

    ``points_ndc`` are a ray's samples advected to the neighbour frame (``x_f`` or ``x_b``, NDC), ``weights`` the
    dynamic branch's ``w_d`` at the current frame, the camera the neighbour frame's, ``pixel_uv`` the ray's own pixel
    centre (j + 0.5, i + 0.5) (the released ``induce_flow``, mononerf.md §1 losses table "optical flow")."""
    expected_ndc = (weights[..., None] * points_ndc).sum(dim=-2)
    uv, _ = project_points(ndc_points_to_world(expected_ndc, ndc_coeffs, near), camera_to_world, fx, fy, cx, cy)
    return uv - pixel_uv
