"""DTU in the IDR / NeuS / pixelNeRF-DVR layout (softmining_infonerf.md B4; real ``dtu_idr/dtu_scan65``)::

    image/000000.png ...   RGB photos (object in front of a textured background)
    mask/000.png ...       RGB, 0 or 255 in all three channels (like the real masks), 255 = object
    cameras.npz            per view i, float32 4x4: world_mat_i, scale_mat_i, camera_mat_i and the _inv of each

``world_mat_i = K @ world_to_camera`` (OpenCV camera axes, last row ``0 0 0 1``, ``K[2, 2] = 1``) in DTU-like world
units. ``scale_mat_i`` (the same for all views) maps the normalised world, where the object lies in the unit sphere,
into those units: ``diag(s, s, s, 1)`` with translation = the sphere's centre. Defaults ``s = 200`` and an offset of
a few hundred units (real scan65: s = 246.4, centre (-37.5, -42.6, 653.2)), so a reader that ignores ``scale_mat``
gets cameras hundreds of units from the object. ``camera_mat_i`` is the real files' pixel -> [-1, 1] normalisation
``[[2/W, 0, -1, 0], [0, 2/H, -1, 0], [0, 0, 1, 0], [0, 0, 0, 1]]`` (scan65: 2/1600 = 0.00125, 2/1200).

Pixel convention: IDR/OpenCV put the centre of pixel (0, 0) at (0, 0), whereas the renderer (nerfstudio) puts it at
(0.5, 0.5); so the stored principal point is the render camera's minus 0.5. As in the real data, cameras lie on a
cap on the -z side of the normalised world looking towards +z, with -y as the image's up direction.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nerfstudio_methods.scenegen.cameras import PinholeCamera, sphere_rig
from nerfstudio_methods.scenegen.formats._io import Logger, WriteSummary, no_log, write_image, write_npz
from nerfstudio_methods.scenegen.formats._shared import check_count, check_size, require
from nerfstudio_methods.scenegen.groundtruth import render_view, to_uint8
from nerfstudio_methods.scenegen.scene import object_scene

OPENCV_PIXEL_OFFSET = 0.5
"""Render-camera principal point minus the stored (OpenCV-convention) one."""


def camera_mat(width: int, height: int) -> np.ndarray:
    """The real files' ``camera_mat``: pixel coordinates -> [-1, 1] (scan65 at 1600x1200: 0.00125, 0.0016667, -1)."""
    return np.array(
        [[2.0 / width, 0.0, -1.0, 0.0], [0.0, 2.0 / height, -1.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]
    )


def scale_mat(scale: float, centre: Sequence[float]) -> np.ndarray:
    matrix = np.diag([scale, scale, scale, 1.0])
    matrix[:3, 3] = centre
    return matrix


def world_mat(camera: PinholeCamera, scale_matrix: np.ndarray) -> np.ndarray:
    """``K_4x4 @ world_to_camera`` for a camera given in the normalised world, in the scaled (DTU) world."""
    intrinsics = np.eye(4)
    intrinsics[:3, :3] = camera.intrinsics
    intrinsics[0, 2] -= OPENCV_PIXEL_OFFSET
    intrinsics[1, 2] -= OPENCV_PIXEL_OFFSET
    to_camera = camera.world_to_camera_opencv()
    # A DTU-world point X maps to the normalised world by scale_mat^-1, then into the camera.
    return intrinsics @ to_camera @ np.linalg.inv(scale_matrix)


def write_dtu(
    output: Path,
    width: int = 64,
    height: int = 48,
    num_cameras: int = 6,
    seed: int = 0,
    world_scale: float = 200.0,
    world_offset: Sequence[float] = (-40.0, 30.0, 620.0),
    principal_offset: tuple[float, float] = (1.25, -0.75),
    log: Logger = no_log,
) -> WriteSummary:
    """Write a DTU scan: ``num_cameras`` views of a random object (inside the unit sphere) with masks and cameras."""
    check_size(width, height)
    check_count("num_cameras", num_cameras, 1)
    require(num_cameras <= 999, f"num_cameras must be at most 999 (file names mask/000..999), got {num_cameras}")
    require(world_scale > 0 and math.isfinite(world_scale), f"world_scale must be positive, got {world_scale}")
    require(len(world_offset) == 3, "world_offset must have 3 values")
    output = Path(output)
    scene = object_scene(seed, radius=1.0, backdrop=True)
    backdrop_id = len(scene.primitives) - 1
    rig = sphere_rig(
        num_cameras,
        width,
        height,
        radius=3.0,
        fov_x_degrees=50.0,
        up="-y",
        pole="-z",
        min_elevation_degrees=35.0,
        max_elevation_degrees=75.0,
        seed=seed,
    )
    # Real DTU intrinsics have fx != fy and an off-centre principal point: keep readers honest.
    cameras = [
        PinholeCamera(
            fx=c.fx,
            fy=c.fx * 1.01,
            cx=c.cx + principal_offset[0],
            cy=c.cy + principal_offset[1],
            width=width,
            height=height,
            camera_to_world=c.camera_to_world,
        )
        for c in rig
    ]
    scale_matrix = scale_mat(world_scale, world_offset)
    summary = WriteSummary(format="dtu", root=output)
    arrays: dict[str, np.ndarray] = {}
    for i, camera in enumerate(cameras):
        render = render_view(scene, camera)
        summary.add(write_image(output / "image" / f"{i:06d}.png", to_uint8(render.rgb)))
        is_object = (render.primitive_id >= 0) & (render.primitive_id != backdrop_id)
        mask = np.repeat(np.where(is_object, 255, 0).astype(np.uint8)[..., None], 3, axis=-1)
        summary.add(write_image(output / "mask" / f"{i:03d}.png", mask))
        projection = world_mat(camera, scale_matrix)
        normalization = camera_mat(width, height)
        for name, matrix in (("world_mat", projection), ("scale_mat", scale_matrix), ("camera_mat", normalization)):
            # float32 like the real file.
            arrays[f"{name}_{i}"] = matrix.astype(np.float32)
            arrays[f"{name}_inv_{i}"] = np.linalg.inv(matrix).astype(np.float32)
    log(f"image, mask: {num_cameras} views of {width}x{height}")
    summary.add(write_npz(output / "cameras.npz", **arrays))
    log(f"cameras.npz: {len(arrays)} arrays")
    summary.details.update(
        {
            "size": f"{width}x{height}",
            "views": num_cameras,
            "world_scale": world_scale,
            "world_offset": list(world_offset),
        }
    )
    return summary
