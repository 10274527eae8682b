"""N3DV (Neural 3D Video) layout (../shared/papers/streamrf.md §3)::

    cam00.mp4 ... camNN.mp4   synchronised videos of one dynamic scene, 30 fps; cam00 = centre reference (test) camera
    poses_bounds.npy          (N, 17) LLFF rows, in the sorted order of the video files that exist

Real N3DV deleted unsynchronised cameras, so some ids are missing; ``missing_cameras`` reproduces that (the rig keeps
its slot, only the file and its poses_bounds row are absent). Frame k of every video shows the scene at normalised
time ``k / (num_frames - 1)``. Videos are H.264/yuv420p written by imageio-ffmpeg; sizes must be multiples of 16 so
ffmpeg does not resize them. Near/far come from the first frame's true depths.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from nerfstudio_methods.scenegen.cameras import PinholeCamera, forward_facing_rig
from nerfstudio_methods.scenegen.formats._io import Logger, WriteSummary, no_log, write_mp4
from nerfstudio_methods.scenegen.formats._shared import check_count, check_size, depth_bounds, require, write_poses
from nerfstudio_methods.scenegen.groundtruth import render_view, to_uint8
from nerfstudio_methods.scenegen.scene import Scene, forward_facing_scene, moving_mask, room_scene
from nerfstudio_methods.timeline import time_of_frame

FPS = 30.0
MACRO_BLOCK = 16


def video_name(camera_id: int) -> str:
    return f"cam{camera_id:02d}.mp4"


def camera_ids(num_cameras: int, missing_cameras: Sequence[int] = ()) -> list[int]:
    """The first ``num_cameras`` ids that are not missing (ids of the files that get written)."""
    missing = set(missing_cameras)
    ids = [i for i in range(num_cameras + len(missing)) if i not in missing]
    return ids[:num_cameras]


def _frames(scene: Scene, camera: PinholeCamera, num_frames: int, moving_area: list[float]) -> Iterator[np.ndarray]:
    """The frames of one camera's video; appends each frame's share of pixels that show a moving object."""
    for frame in range(num_frames):
        view = render_view(scene, camera, time_of_frame(frame, num_frames))
        moving_area.append(float(moving_mask(scene, view.primitive_id).mean()))
        yield to_uint8(view.rgb)


def write_n3dv(
    output: Path,
    width: int = 64,
    height: int = 48,
    num_cameras: int = 5,
    num_frames: int = 8,
    seed: int = 0,
    missing_cameras: Sequence[int] = (),
    crf: int = 12,
    log: Logger = no_log,
    kind: Literal["objects", "room"] = "objects",
) -> WriteSummary:
    """Write an N3DV scene: ``num_cameras`` videos (ids skipping ``missing_cameras``) and ``poses_bounds.npy``.

    ``kind``: ``"objects"`` (:func:`.scene.forward_facing_scene`: a drifting and a circling ball among static ones,
    most of the view in motion) or ``"room"`` (:func:`.scene.room_scene`: a static room with one or two small moving
    objects, as N3DV's real videos). The summary reports the largest share of any frame's pixels showing a moving
    object (``moving_area_max``)."""
    check_size(width, height, minimum=16, multiple=MACRO_BLOCK)
    check_count("num_cameras", num_cameras, 2)
    check_count("num_frames", num_frames, 1)
    require(0 not in set(missing_cameras), "camera 0 (cam00, the centre test camera) cannot be missing")
    require(all(i > 0 for i in missing_cameras), "missing camera ids must be positive")
    ids = camera_ids(num_cameras, missing_cameras)
    # Two-digit names sort in id order only up to cam99, which is what readers rely on (sorted file order).
    require(ids[-1] <= 99, f"camera ids must stay <= 99 (cam00..cam99), got {ids[-1]}")
    output = Path(output)
    require(kind in ("objects", "room"), f"unknown n3dv scene kind {kind!r} (objects or room)")
    scene = room_scene(seed) if kind == "room" else forward_facing_scene(seed, dynamic=True)
    rig = forward_facing_rig(ids[-1] + 1, width, height, seed=seed)
    cameras = [rig[i] for i in ids]
    summary = WriteSummary(format="n3dv", root=output)
    moving_area: list[float] = []
    for camera_id, camera in zip(ids, cameras):
        summary.add(
            write_mp4(output / video_name(camera_id), _frames(scene, camera, num_frames, moving_area), fps=FPS, crf=crf)
        )
        log(f"{video_name(camera_id)}: {num_frames} frames of {width}x{height}")
    first_frames = [render_view(scene, camera, 0.0) for camera in cameras]
    summary.add(write_poses(output / "poses_bounds.npy", cameras, depth_bounds(cameras, first_frames)))
    log(f"poses_bounds.npy: {len(cameras)} rows in sorted video order")
    summary.details.update(
        {
            "size": f"{width}x{height}",
            "camera_ids": ids,
            "frames": num_frames,
            "fps": FPS,
            "test_camera": "cam00",
            "kind": kind,
            "moving_area_max": max(moving_area),
        }  # fmt: skip
    )
    return summary
