"""NeRF-synthetic ("Blender") layout, as the real ``nerf_synthetic/lego`` (../shared/data/SOURCES.md)::

    transforms_{train,val,test}.json   {"camera_angle_x": float, "frames": [{"file_path": "./train/r_0",
                                        "rotation": float, "transform_matrix": 4x4 OpenGL camera-to-world}]}
    {train,val,test}/r_<i>.png         RGBA, straight alpha = accumulation, transparent background

``file_path`` has no extension (loaders append ``.png``). The world is z-up and cameras sit on the upper hemisphere
looking at the origin, like lego's. Loads with nerfstudio's ``BlenderDataParserConfig`` (principal point at the
image centre, focal from ``camera_angle_x``). With ``dynamic=True`` every frame also gets D-NeRF's ``"time"`` in
[0, 1] and the scene moves.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from nerfstudio_methods.scenegen.cameras import sphere_rig
from nerfstudio_methods.scenegen.formats._io import Logger, WriteSummary, no_log, write_image, write_json
from nerfstudio_methods.scenegen.formats._shared import check_count, check_size, require, unpremultiply
from nerfstudio_methods.scenegen.groundtruth import render_view, to_uint8
from nerfstudio_methods.scenegen.scene import object_scene
from nerfstudio_methods.timeline import time_of_frame

BLENDER_ROTATION = 2 * math.pi / 500
"""The constant ``rotation`` of every frame in the NeRF-synthetic JSONs (0.012566370614359171); unused by loaders."""

SPLITS = ("train", "val", "test")


def write_blender(
    output: Path,
    width: int = 40,
    height: int = 40,
    num_cameras: int = 6,
    num_val: int = 2,
    num_test: int = 2,
    seed: int = 0,
    dynamic: bool = False,
    fov_x_degrees: float = 40.0,
    camera_distance: float = 3.2,
    log: Logger = no_log,
) -> WriteSummary:
    """Write a Blender-format dataset; ``num_cameras`` is the number of training views."""
    check_size(width, height)
    check_count("num_cameras", num_cameras, 1)
    # nerfstudio's Blender parser reads the first image of every split it loads, so no split may be empty.
    check_count("num_val", num_val, 1)
    check_count("num_test", num_test, 1)
    require(0 < fov_x_degrees < 180, f"fov_x_degrees must be in (0, 180), got {fov_x_degrees}")
    require(camera_distance > 1.5, f"camera_distance must exceed 1.5 (the scene has radius 1), got {camera_distance}")
    output = Path(output)
    scene = object_scene(seed, dynamic=dynamic)
    summary = WriteSummary(format="blender", root=output)
    counts = {"train": num_cameras, "val": num_val, "test": num_test}
    camera_angle_x = math.radians(fov_x_degrees)
    for split_index, split in enumerate(SPLITS):
        count = counts[split]
        # A different rig phase per split, so val/test views differ from the training views.
        cameras = sphere_rig(
            count,
            width,
            height,
            radius=camera_distance,
            fov_x_degrees=fov_x_degrees,
            up="+z",
            seed=seed * 3 + split_index,
        )
        frames = []
        for index, camera in enumerate(cameras):
            time = time_of_frame(index, count) if dynamic else 0.0
            # Render over black to get premultiplied color; PNG stores straight color plus alpha.
            render = render_view(scene, camera, time, background=np.zeros(3))
            rgba = np.concatenate(
                [unpremultiply(render.rgb, render.accumulation), render.accumulation[..., None]], axis=-1
            )
            summary.add(write_image(output / split / f"r_{index}.png", to_uint8(rgba)))
            frame: dict[str, object] = {
                "file_path": f"./{split}/r_{index}",
                "rotation": BLENDER_ROTATION,
                "transform_matrix": camera.camera_to_world_4x4().tolist(),
            }
            if dynamic:
                frame["time"] = time
            frames.append(frame)
        log(f"{split}: {count} images")
        json_path = output / f"transforms_{split}.json"
        write_json(json_path, {"camera_angle_x": camera_angle_x, "frames": frames})
        summary.add(json_path)
    summary.details.update(
        {"size": f"{width}x{height}", "views": counts, "camera_angle_x": camera_angle_x, "dynamic": dynamic}
    )
    return summary
