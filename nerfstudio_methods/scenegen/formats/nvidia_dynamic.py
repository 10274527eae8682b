"""NVIDIA Dynamic Scenes in DynamicNeRF's layout (../shared/papers/mononerf.md §3; real ``nvidia_dynamic/Balloon1``)::

    poses_bounds.npy            (N, 17) LLFF rows; H, W, f at images/ resolution
    images/000.png ...          frame i, taken by camera i at time i / (N - 1) (the "monocular video")
    images_2/000.png ...        the same, downscaled by 2 (the training resolution)
    disp/000.npy ...            float32 (H, W) disparity at images/ resolution
    flow/000_fwd.npz ...        i = 0..N-2: keys flow (H, W, 2) float32 (dx, dy) in pixels, mask (H, W) float32
    flow/001_bwd.npz ...        i = 1..N-1 (frame i to frame i - 1)
    motion_masks/000.png ...    uint8, 255 = moving
    multiview_GT/00000001/cam01.jpg ...  every camera at every time (MonoNeRF's 12 x 12 evaluation)

Differences from the real data, by design: ``disp`` is the TRUE disparity ``1 / z`` in scene units, while the real
files hold MiDaS output with an unknown affine scale (Balloon1: about 1.1e3 to 6.4e3), so readers must not assume
either scale. ``flow`` and its ``mask`` are exact (the real ones are RAFT with a forward/backward check), stored at
images/ resolution like ``disp`` (loaders resize both to the training size). ``multiview_GT`` uses MonoNeRF's
1-based numbering for both time and camera (``readimage_gt`` formats ``%08d`` / ``cam%02d`` with t, c in 1..12 and
halves the images itself), so it is written at images/ resolution: ``multiview_GT/{t+1:08d}/cam{c+1:02d}.jpg`` is
camera c at time t / (N - 1); ``images/{i:03d}.png`` equals ``multiview_GT/{i+1:08d}/cam{i+1:02d}.jpg`` up to JPEG.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nerfstudio_methods.scenegen.cameras import forward_facing_rig
from nerfstudio_methods.scenegen.formats._io import Logger, WriteSummary, no_log, write_image, write_npy, write_npz
from nerfstudio_methods.scenegen.formats._shared import (
    box_downscale,
    check_count,
    check_size,
    depth_bounds,
    require,
    write_poses,
)
from nerfstudio_methods.scenegen.groundtruth import disparity, motion_mask, optical_flow, render_view, to_uint8
from nerfstudio_methods.scenegen.scene import forward_facing_scene
from nerfstudio_methods.timeline import time_of_frame

frame_time = time_of_frame
"""The time of frame i, ``i / (N - 1)`` (:func:`nerfstudio_methods.timeline.time_of_frame`, under the name this
module gave it before)."""


def write_nvidia_dynamic(
    output: Path,
    width: int = 64,
    height: int = 36,
    num_frames: int = 12,
    seed: int = 0,
    multiview_gt: bool = True,
    spread: float = 0.3,
    log: Logger = no_log,
) -> WriteSummary:
    """Write a DynamicNeRF-layout scene of ``num_frames`` frames from as many cameras (frame i = camera i)."""
    check_size(width, height, minimum=8, multiple=2)
    check_count("num_frames", num_frames, 2)
    require(num_frames <= 999, f"num_frames must be at most 999 (file names 000..999), got {num_frames}")
    output = Path(output)
    scene = forward_facing_scene(seed, dynamic=True)
    # A left-to-right line so consecutive frames come from neighbouring cameras, as on the NVIDIA rig.
    cameras = forward_facing_rig(num_frames, width, height, spread=spread, seed=seed, layout="line")
    times = [time_of_frame(i, num_frames) for i in range(num_frames)]
    renders = [render_view(scene, camera, time) for camera, time in zip(cameras, times)]
    summary = WriteSummary(format="nvidia-dynamic", root=output)

    for i, render in enumerate(renders):
        summary.add(write_image(output / "images" / f"{i:03d}.png", to_uint8(render.rgb)))
        summary.add(write_image(output / "images_2" / f"{i:03d}.png", to_uint8(box_downscale(render.rgb, 2))))
    log(f"images, images_2: {num_frames} frames of {width}x{height} and {width // 2}x{height // 2}")

    summary.add(write_poses(output / "poses_bounds.npy", cameras, depth_bounds(cameras, renders)))
    log(f"poses_bounds.npy: {num_frames} cameras")

    for i, (camera, render) in enumerate(zip(cameras, renders)):
        summary.add(write_npy(output / "disp" / f"{i:03d}.npy", disparity(camera, render).astype(np.float32)))
        moving = motion_mask(scene, render)
        summary.add(write_image(output / "motion_masks" / f"{i:03d}.png", np.where(moving, 255, 0).astype(np.uint8)))
    log(f"disp, motion_masks: {num_frames} each")

    for i in range(num_frames):
        for suffix, j in (("fwd", i + 1), ("bwd", i - 1)):
            if not 0 <= j < num_frames:
                continue
            result = optical_flow(scene, cameras[i], times[i], cameras[j], times[j], source_render=renders[i])
            summary.add(
                write_npz(
                    output / "flow" / f"{i:03d}_{suffix}.npz",
                    flow=result.flow.astype(np.float32),
                    mask=result.mask.astype(np.float32),
                )
            )
    log(f"flow: {num_frames - 1} forward and {num_frames - 1} backward")

    if multiview_gt:
        for t, time in enumerate(times):
            for c, camera in enumerate(cameras):
                image = to_uint8(render_view(scene, camera, time).rgb)
                summary.add(write_image(output / "multiview_GT" / f"{t + 1:08d}" / f"cam{c + 1:02d}.jpg", image))
        log(f"multiview_GT: {num_frames} times x {num_frames} cameras")
    summary.details.update({"size": f"{width}x{height}", "frames": num_frames, "times": "i / (N - 1)"})
    return summary
