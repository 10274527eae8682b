"""Time in video methods: nerfstudio's camera time <-> frame index, the default time, per-frame eval metrics.

Every video dataparser of this collection (``n3dv-data``, ``dynamic-scene-data``) gives frame ``i`` of a ``T``-frame
video the time ``i / (T - 1)`` in [0, 1] (``Cameras.times``, nerfstudio's DNeRF convention; mononerf.md §6), which is
what the viewer's Time slider and ``ns-render``'s ``render_time`` produce. Rays without times (``ns-render
interpolate`` drops them, nerfstudio_plugins.md §2) are shown at a configured default time.

Every conversion between a frame and its time goes through this module: :func:`time_of_frame` (used by the
dataparsers, the scene generator's writers and the methods alike, on ints, numpy arrays or tensors) and
:func:`continuous_frame` / :func:`nearest_frame` back. It is a shared module, not a method: ``dataparsers`` may import
it (as they import ``nerfstudio_methods.rays``), and it imports torch only where a function needs it, so the
scene generator, which never loads torch, can use it too.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, TypeVar, overload

from jaxtyping import Float, Int

if TYPE_CHECKING:
    import numpy as np
    import torch
    from torch import Tensor

    Frames = TypeVar("Frames", np.ndarray, Tensor)


@overload
def time_of_frame(frame: int | float, num_frames: int) -> float: ...
@overload
def time_of_frame(frame: Frames, num_frames: int) -> Frames: ...
def time_of_frame(frame, num_frames):
    """The time of ``frame`` (an int, or a numpy array / tensor of frames) in a ``num_frames``-frame video:
    ``frame / (T - 1)``; 0 for a single-frame video."""
    return frame / max(num_frames - 1, 1)


def continuous_frame(times: Float[Tensor, "*batch"], num_frames: int) -> Float[Tensor, "*batch"]:
    """The (fractional) frame position ``time * (T - 1)``, clamped to the video."""
    return (times.float() * max(num_frames - 1, 0)).clamp(0.0, max(num_frames - 1, 0))


def nearest_frame(times: Float[Tensor, "*batch"], num_frames: int) -> Int[Tensor, "*batch"]:
    """Index of the frame nearest to each time: ``round(time * (T - 1))``, clamped to ``[0, T - 1]``."""
    return continuous_frame(times, num_frames).round().long()


def ray_times(
    times: Optional[Tensor], count: int, default_time: float, device: torch.device | str
) -> Float[Tensor, " n"]:
    """Per-ray times, flattened; ``default_time`` for rays that carry none."""
    import torch

    if times is None:
        return torch.full((count,), float(default_time), device=device)
    return times.reshape(-1).float().to(device)


METRIC_KEYS = ("psnr", "ssim", "lpips", "released_psnr", "released_ssim")
"""Metrics given per frame and per scene when a method reports them (``released_*``: MonoNeRF's 8-bit evaluation)."""


def per_frame_means(
    per_image: Sequence[dict[str, float]], frames: Sequence[int], keys: Sequence[str] = METRIC_KEYS, prefix: str = ""
) -> dict[str, float]:
    """``{prefix}{key}_frame_XXXX``: the mean of each metric over the evaluation images of each frame (NaNs, e.g.
    LPIPS without its weights, left out), so a reader sees whether quality drifts over the video."""
    result: dict[str, float] = {}
    for key in keys:
        for frame in sorted(set(frames)):
            values = [m[key] for m, f in zip(per_image, frames) if f == frame and key in m and math.isfinite(m[key])]
            if values:
                result[f"{prefix}{key}_frame_{frame:04d}"] = float(sum(values) / len(values))
    return result


def write_camera_path_across_time(path: Path, cameras: Any, fps: float) -> None:
    """Write a viewer-style camera path (``ns-render camera-path --camera-path-filename``) through ``cameras`` (a
    nerfstudio ``Cameras``) ordered by time, each keyframe with its ``render_time``: a video of the scene over time."""
    import torch

    from nerfstudio_methods.atomic import write_atomically

    keyframes = []
    for index in range(len(cameras)):
        camera = cameras[index]
        matrix = torch.eye(4)
        matrix[:3, :4] = camera.camera_to_worlds.detach().cpu()
        height, width, fy = float(camera.height), float(camera.width), float(camera.fy)
        keyframes.append(
            {
                "camera_to_world": matrix.reshape(-1).tolist(),
                "fov": math.degrees(2.0 * math.atan(height / (2.0 * fy))),
                "aspect": width / height,
                "render_time": float(camera.times) if camera.times is not None else 0.0,
            }
        )
    keyframes.sort(key=lambda keyframe: keyframe["render_time"])
    first = cameras[0]
    path_json = {
        "camera_type": "perspective",
        "render_height": int(first.height),
        "render_width": int(first.width),
        "fps": fps,
        "seconds": len(keyframes) / fps,
        "camera_path": keyframes,
    }
    write_atomically(path, json.dumps(path_json, indent=1).encode())
