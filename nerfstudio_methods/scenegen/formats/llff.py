"""LLFF forward-facing layout, as the real ``nerf_llff_data/fern`` (../shared/data/SOURCES.md)::

    poses_bounds.npy      (N, 17) float64: 3x5 [R | t | (H, W, f)] in LLFF's [down, right, back] axis order, near, far
    images/image000.png   full resolution; H, W and f in poses_bounds are for these
    images_<k>/image000.png  downscaled by k (fern ships images_8, 504x378 for 4032x3024)

Near/far per camera come from the true depths of the visible surfaces, as LLFF's ``imgs2poses`` takes them from the
COLMAP points (see :func:`_shared.depth_bounds`). Downscaled images are box-filtered from the full-resolution render
(area resampling), and the full size must be divisible by every factor so the intrinsics scale exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from nerfstudio_methods.scenegen.cameras import forward_facing_rig
from nerfstudio_methods.scenegen.formats._io import Logger, WriteSummary, no_log, write_image
from nerfstudio_methods.scenegen.formats._shared import (
    box_downscale,
    check_count,
    check_size,
    depth_bounds,
    require,
    write_poses,
)
from nerfstudio_methods.scenegen.groundtruth import render_view, to_uint8
from nerfstudio_methods.scenegen.scene import forward_facing_scene

CANDIDATE_FACTORS = (2, 4, 8)
MIN_DOWNSCALED_SIZE = 8


def default_factors(width: int, height: int) -> list[int]:
    """Those of 2, 4, 8 that divide the size and leave images of at least 8 px."""
    return [
        f
        for f in CANDIDATE_FACTORS
        if width % f == 0 and height % f == 0 and min(width, height) // f >= MIN_DOWNSCALED_SIZE
    ]


def image_name(index: int) -> str:
    """LLFF's image naming, as fern's ``images_8/image000.png``."""
    return f"image{index:03d}.png"


def write_llff(
    output: Path,
    width: int = 128,
    height: int = 96,
    num_cameras: int = 6,
    factors: Sequence[int] | None = None,
    seed: int = 0,
    spread: float = 0.3,
    log: Logger = no_log,
) -> WriteSummary:
    """Write an LLFF dataset of the static :func:`forward_facing_scene` from a spiral of forward-facing cameras."""
    check_size(width, height)
    check_count("num_cameras", num_cameras, 2)
    require(num_cameras <= 999, f"num_cameras must be at most 999 (file names image000..image999), got {num_cameras}")
    factors = default_factors(width, height) if factors is None else sorted(set(factors))
    for factor in factors:
        require(factor >= 2, f"downscale factors must be >= 2, got {factor}")
        require(
            width % factor == 0 and height % factor == 0,
            f"image size {width}x{height} is not divisible by downscale factor {factor}",
        )
    output = Path(output)
    scene = forward_facing_scene(seed)
    cameras = forward_facing_rig(num_cameras, width, height, spread=spread, seed=seed)
    renders = [render_view(scene, camera) for camera in cameras]
    summary = WriteSummary(format="llff", root=output)
    for index, render in enumerate(renders):
        summary.add(write_image(output / "images" / image_name(index), to_uint8(render.rgb)))
    log(f"images: {num_cameras} images of {width}x{height}")
    for factor in factors:
        for index, render in enumerate(renders):
            small = box_downscale(render.rgb, factor)
            summary.add(write_image(output / f"images_{factor}" / image_name(index), to_uint8(small)))
        log(f"images_{factor}: {num_cameras} images of {width // factor}x{height // factor}")
    near_far = depth_bounds(cameras, renders)
    poses_path = output / "poses_bounds.npy"
    summary.add(write_poses(poses_path, cameras, near_far))
    log(f"poses_bounds.npy: {num_cameras} cameras, near {near_far[:, 0].min():.3f}, far {near_far[:, 1].max():.3f}")
    summary.details.update({"size": f"{width}x{height}", "cameras": num_cameras, "factors": list(factors)})
    return summary
