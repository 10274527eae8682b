"""Time in video methods: nerfstudio's camera time <-> frame index, the default time, per-frame eval metrics.

Every video dataparser of this collection (``n3dv-data``, ``dynamic-scene-data``) gives frame ``i`` of a ``T``-frame
video the time ``i / (T - 1)`` in [0, 1] (``Cameras.times``, nerfstudio's DNeRF convention; mononerf.md §6), which is
what the viewer's Time slider and ``ns-render``'s ``render_time`` produce. Rays without times (``ns-render
interpolate`` drops them, nerfstudio_plugins.md §2) are shown at a configured default time.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

import torch
from jaxtyping import Float, Int
from torch import Tensor


def time_of_frame(frame: int | Tensor, num_frames: int) -> float | Tensor:
    """``frame / (T - 1)``; 0 for a single-frame video."""
    return frame / max(num_frames - 1, 1)


def continuous_frame(times: Float[Tensor, "*batch"], num_frames: int) -> Float[Tensor, "*batch"]:
    """The (fractional) frame position ``time * (T - 1)``, clamped to the video."""
    return (times.float() * max(num_frames - 1, 0)).clamp(0.0, max(num_frames - 1, 0))


def nearest_frame(times: Float[Tensor, "*batch"], num_frames: int) -> Int[Tensor, "*batch"]:
    """Index of the frame nearest to each time: ``round(time * (T - 1))``, clamped to ``[0, T - 1]``."""
    return torch.round(continuous_frame(times, num_frames)).long()


def ray_times(
    times: Optional[Tensor], count: int, default_time: float, device: torch.device | str
) -> Float[Tensor, " n"]:
    """Per-ray times, flattened; ``default_time`` for rays that carry none."""
    if times is None:
        return torch.full((count,), float(default_time), device=device)
    return times.reshape(-1).float().to(device)


METRIC_KEYS = ("psnr", "ssim", "lpips")


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


def evaluate_per_frame(
    pipeline: Any, output_path: Optional[Path] = None, get_std: bool = False, group_key: Optional[str] = None
) -> dict[str, float]:
    """``ns-eval`` for a video method: every evaluation image rendered once, the mean (and std) of each metric, the
    per-frame means (:func:`per_frame_means`) and the number of frames.

    The eval dataset's ``metadata["frame_index"]`` gives each image's frame. With ``group_key`` (e.g.
    ``"scene_index"`` in a multi-scene run) the per-frame means are also reported per group as
    ``{group}{g:02d}_{metric}_frame_XXXX`` and the group means as ``{metric}_{group}{g:02d}``. Rendered images go to
    ``output_path`` when given, named by group, frame and (with ``metadata["camera_index"]``) camera."""
    import torchvision.utils as vutils

    from nerfstudio_methods import compat

    pipeline.eval()
    dataset = pipeline.datamanager.eval_dataset
    frame_index = dataset.metadata["frame_index"]
    groups_of_images = dataset.metadata.get(group_key) if group_key else None
    cameras_of_images = dataset.metadata.get("camera_index")
    per_image: list[dict[str, float]] = []
    frames: list[int] = []
    groups: list[int] = []
    if output_path is not None:
        output_path.mkdir(parents=True, exist_ok=True)
    for position, (camera, batch) in enumerate(pipeline.datamanager.fixed_indices_eval_dataloader):
        started = time.perf_counter()
        outputs = pipeline.model.get_outputs_for_camera(camera=camera)
        metrics, images = pipeline.model.get_image_metrics_and_images(outputs, batch)
        seconds = max(time.perf_counter() - started, 1e-9)
        metrics["num_rays_per_sec"] = float(camera.height * camera.width) / seconds
        metrics["fps"] = 1.0 / seconds
        image_index = int(batch["image_idx"]) if "image_idx" in batch else position
        frame = int(frame_index[image_index])
        group = int(groups_of_images[image_index]) if groups_of_images is not None else 0
        frames.append(frame)
        groups.append(group)
        per_image.append(metrics)
        if output_path is not None:
            name = f"{group_key}{group:02d}_" if groups_of_images is not None else ""
            name += f"frame{frame:04d}"
            if cameras_of_images is not None:
                name += f"_cam{int(cameras_of_images[image_index]):02d}"
            for key, image in images.items():
                vutils.save_image(image.permute(2, 0, 1).cpu(), output_path / f"eval_{key}_{name}.png")
    pipeline.train()
    result: dict[str, float] = {}
    for key in per_image[0]:
        values = torch.tensor([metrics[key] for metrics in per_image], dtype=torch.float64)
        result[key] = float(values.mean())
        if get_std:
            result[f"{key}_std"] = float(values.std()) if len(values) > 1 else 0.0
    result.update(per_frame_means(per_image, frames))
    if groups_of_images is not None and len(set(groups)) > 1:
        for group in sorted(set(groups)):
            members = [i for i, g in enumerate(groups) if g == group]
            chosen = [per_image[i] for i in members]
            result.update(per_frame_means(chosen, [frames[i] for i in members], prefix=f"{group_key}{group:02d}_"))
            for key in METRIC_KEYS:
                values = [m[key] for m in chosen if key in m and math.isfinite(m[key])]
                if values:
                    result[f"{key}_{group_key}{group:02d}"] = float(sum(values) / len(values))
    result["num_frames"] = float(len(set(frames)))
    return compat.drop_nan_lpips(result)


def write_camera_path_across_time(path: Path, cameras: Any, fps: float) -> None:
    """Write a viewer-style camera path (``ns-render camera-path --camera-path-filename``) through ``cameras`` (a
    nerfstudio ``Cameras``) ordered by time, each keyframe with its ``render_time``: a video of the scene over time."""
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
