"""ShapeNet SRN (cars) layout (../shared/papers/3da-ae.md §3)::

    <split>/<32-hex instance id>/rgb/000000.png    RGB, white background
    <split>/<id>/pose/000000.txt                   16 floats, row-major 4x4 camera-to-world, OpenCV camera axes
    <split>/<id>/intrinsics.txt                    "f cx cy 0." / "0. 0. 0." / "1." / "H W"

Poses are OpenGL camera-to-world (nerfstudio) times ``diag(1, -1, -1, 1)``, the flip pixelNeRF undoes; the world
is z-up and cameras look at the origin from radius 1.3 (pixelNeRF's cars near/far 0.8/1.8 bracket the objects,
which lie within radius 0.5). The default focal is SRN's normalised 1.025 (131.25 px at 128 px).
``intrinsics_resolution`` writes the intrinsics for another square size (e.g. 512, as EG3D says cars_train's are),
to exercise readers' rescaling by ``image width / line-4 width``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from nerfstudio_methods.scenegen.cameras import PinholeCamera, sphere_rig
from nerfstudio_methods.scenegen.formats._io import Logger, WriteSummary, no_log, write_image, write_text
from nerfstudio_methods.scenegen.formats._shared import check_count, check_size, require
from nerfstudio_methods.scenegen.groundtruth import render_view, to_uint8
from nerfstudio_methods.scenegen.scene import object_scene

SRN_NORMALIZED_FOCAL = 131.25 / 128
OBJECT_RADIUS = 0.5
CAMERA_DISTANCE = 1.3


def instance_ids(num_instances: int, seed: int) -> list[str]:
    """Deterministic, distinct 32-hex-digit ids (ShapeNet model ids look like ``1a1dcd236a1e6133860800e6696b8284``)."""
    rng = np.random.default_rng([seed, 0x5E4])
    ids: list[str] = []
    while len(ids) < num_instances:
        candidate = rng.bytes(16).hex()
        if candidate not in ids:
            ids.append(candidate)
    return ids


def format_pose(camera_to_world_opencv: np.ndarray) -> str:
    """One line of 16 row-major floats, as the SRN pose files (readers accept one line or four)."""
    return " ".join(f"{value:.9f}" for value in camera_to_world_opencv.reshape(-1)) + "\n"


def format_intrinsics(camera: PinholeCamera, resolution: tuple[int, int] | None = None) -> str:
    """SRN ``intrinsics.txt``: focal, principal point, grid barycenter, scale, then ``height width`` they refer to."""
    width, height = (camera.width, camera.height) if resolution is None else resolution
    factor = width / camera.width
    return (
        f"{camera.fx * factor:.6f} {camera.cx * factor:.6f} {camera.cy * factor:.6f} 0.\n"
        "0. 0. 0.\n"
        "1.\n"
        f"{height} {width}\n"
    )


def write_srn(
    output: Path,
    width: int = 64,
    height: int = 64,
    num_cameras: int = 6,
    num_instances: int = 4,
    split: str = "cars_train",
    seed: int = 0,
    intrinsics_resolution: int | None = None,
    log: Logger = no_log,
) -> WriteSummary:
    """Write ``num_instances`` instances (each a different random object scene) of ``num_cameras`` views."""
    check_size(width, height)
    require(width == height, f"SRN images are square, got {width}x{height}")
    check_count("num_cameras", num_cameras, 1)
    check_count("num_instances", num_instances, 1)
    require(bool(split) and "/" not in split and split not in (".", ".."), f"invalid split name {split!r}")
    require(
        intrinsics_resolution is None or intrinsics_resolution >= 1,
        f"intrinsics_resolution must be positive, got {intrinsics_resolution}",
    )
    output = Path(output)
    summary = WriteSummary(format="srn", root=output)
    fov_x = math.degrees(2 * math.atan(0.5 / SRN_NORMALIZED_FOCAL))
    ids = instance_ids(num_instances, seed)
    for index, instance in enumerate(ids):
        scene = object_scene(seed * 1009 + index, radius=OBJECT_RADIUS, background=(1.0, 1.0, 1.0))
        # Views over most of the sphere (3Da-AE later keeps those with camera z > -0.5).
        cameras = sphere_rig(
            num_cameras,
            width,
            height,
            radius=CAMERA_DISTANCE,
            fov_x_degrees=fov_x,
            up="+z",
            min_elevation_degrees=-30.0,
            max_elevation_degrees=75.0,
            seed=seed * 1009 + index,
        )
        folder = output / split / instance
        for view, camera in enumerate(cameras):
            render = render_view(scene, camera, background=np.ones(3))
            summary.add(write_image(folder / "rgb" / f"{view:06d}.png", to_uint8(render.rgb)))
            summary.add(write_text(folder / "pose" / f"{view:06d}.txt", format_pose(camera.camera_to_world_opencv())))
        resolution = None if intrinsics_resolution is None else (intrinsics_resolution, intrinsics_resolution)
        summary.add(write_text(folder / "intrinsics.txt", format_intrinsics(cameras[0], resolution)))
        log(f"{split}/{instance}: {num_cameras} views of {width}x{height}")
    summary.details.update({"split": split, "instances": len(ids), "views per instance": num_cameras})
    return summary
