"""Helpers shared by the format writers: argument checks, downscaling, depth bounds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from jaxtyping import Float

from dataparsers.poses_bounds import write_poses_bounds
from nerfstudio_methods.scenegen.cameras import PinholeCamera
from nerfstudio_methods.scenegen.formats._io import atomic_path
from nerfstudio_methods.scenegen.scene import RenderResult


def require(condition: bool, message: str) -> None:
    """Raise ``ValueError(message)``: writers report bad arguments as one line, which the CLI prints."""
    if not condition:
        raise ValueError(message)


def check_size(width: int, height: int, minimum: int = 8, multiple: int = 1) -> None:
    require(
        width >= minimum and height >= minimum,
        f"image size must be at least {minimum}x{minimum} px, got {width}x{height}",
    )
    require(
        width % multiple == 0 and height % multiple == 0,
        f"image width and height must be multiples of {multiple}, got {width}x{height}",
    )


def check_count(name: str, value: int, minimum: int) -> None:
    require(value >= minimum, f"{name} must be at least {minimum}, got {value}")


def box_downscale(image: Float[np.ndarray, "h w c"], factor: int) -> Float[np.ndarray, "hf wf c"]:
    """Average ``factor x factor`` pixel blocks (area resampling, like LLFF's ``mogrify -resize`` / cv2 INTER_AREA).

    The block of pixels ``[f*i, f*i+f)`` has its centre exactly at the centre of downscaled pixel i, so the result
    matches the camera from :meth:`PinholeCamera.scaled`.
    """
    height, width = image.shape[:2]
    require(height % factor == 0 and width % factor == 0, f"{width}x{height} is not divisible by factor {factor}")
    blocks = image.reshape(height // factor, factor, width // factor, factor, *image.shape[2:])
    return blocks.mean(axis=(1, 3))


def depth_bounds(
    cameras: list[PinholeCamera], renders: list[RenderResult], margin: float = 0.1
) -> Float[np.ndarray, "n 2"]:
    """Per-camera near/far like LLFF's ``imgs2poses``: 0.1 and 99.9 percentiles of visible-surface z depths.

    LLFF takes them from the COLMAP points each camera sees; here the points are the exact expected termination
    points of the camera's pixels. ``margin`` widens them (near * (1 - margin), far * (1 + margin)) so the true
    surfaces are strictly inside, since the percentiles clip the extreme 0.1 %.
    """
    bounds = np.zeros((len(cameras), 2))
    for index, (camera, render) in enumerate(zip(cameras, renders)):
        finite = np.isfinite(render.depth)
        require(bool(np.any(finite)), f"camera {index} sees nothing: cannot compute depth bounds")
        z = camera.z_depth(np.where(finite, render.depth, 0.0))[finite]
        near, far = np.percentile(z, 0.1), np.percentile(z, 99.9)
        bounds[index] = (near * (1.0 - margin), far * (1.0 + margin))
    return bounds


def unpremultiply(
    premultiplied: Float[np.ndarray, "h w 3"], alpha: Float[np.ndarray, "h w"]
) -> Float[np.ndarray, "h w 3"]:
    """Straight (non-premultiplied) color for an RGBA PNG; 0 where alpha is 0."""
    safe = np.where(alpha > 0, alpha, 1.0)[..., None]
    return np.clip(np.where(alpha[..., None] > 0, premultiplied / safe, 0.0), 0.0, 1.0)


def write_poses(path: Path, cameras: list[PinholeCamera], near_far: Float[np.ndarray, "n 2"]) -> Path:
    """``poses_bounds.npy`` via the repo's :func:`write_poses_bounds`, atomically (temporary name, then rename).

    One H, W, f for all rows, as every reader takes the intrinsics from the first row (streamrf.md §3).
    """
    first = cameras[0]
    require(
        all(
            c.fx == first.fx and c.fy == first.fx and (c.width, c.height) == (first.width, first.height)
            for c in cameras
        ),
        "poses_bounds.npy needs one shared focal length (fx == fy) and image size",
    )
    with atomic_path(path) as temporary:
        write_poses_bounds(
            temporary,
            np.stack([c.camera_to_world for c in cameras]),
            first.height,
            first.width,
            first.fx,
            near_far,
        )
    return path
