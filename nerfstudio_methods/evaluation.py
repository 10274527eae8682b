"""``ns-eval`` over a whole eval split, with means per frame (videos) and per scene (multi-scene runs)."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Callable, Optional

import torch
from jaxtyping import Float
from torch import Tensor

from nerfstudio_methods.timeline import METRIC_KEYS, per_frame_means


def image_quality(
    rgb: Float[Tensor, "h w 3"], image: Float[Tensor, "h w 3"], psnr: Callable, ssim: Callable, lpips: Callable
) -> dict[str, float]:
    """PSNR, SSIM and LPIPS (torchmetrics callables) of a rendered image against its ground truth, both in [0, 1];
    LPIPS is NaN when it is not finite (no weights offline)."""
    pred, gt = rgb.permute(2, 0, 1)[None], image.permute(2, 0, 1)[None]
    metrics = {"psnr": float(psnr(pred, gt)), "ssim": float(ssim(pred, gt)), "lpips": float(lpips(pred, gt))}
    if not math.isfinite(metrics["lpips"]):
        metrics["lpips"] = math.nan
    return metrics


def evaluate_eval_images(
    pipeline: Any,
    output_path: Optional[Path] = None,
    get_std: bool = False,
    group_key: Optional[str] = None,
    frame_key: Optional[str] = None,
    frames_available: Optional[int] = None,
) -> dict[str, float]:
    """``ns-eval``: every evaluation image rendered once, the mean (and std) of each metric, and means per group.

    With ``frame_key`` (``"frame_index"`` for videos) the eval dataset's metadata gives each image's frame and the
    per-frame means (:func:`~nerfstudio_methods.timeline.per_frame_means`) and the number of frames are added. With
    ``group_key`` (``"scene_index"`` in a multi-scene run: the cameras' ``metadata``, else the dataset's) the means are
    also reported per group as ``{metric}_{group}{g:02d}`` (and per frame as ``{group}{g:02d}_{metric}_frame_XXXX``).
    Rendered images go to ``output_path`` when given, named by group, frame and (with ``metadata["camera_index"]``)
    camera. With ``frames_available`` (a video whose later frames were never trained) only the images of frames below
    it are rendered and measured."""
    import torchvision.utils as vutils

    from nerfstudio_methods.compat.lpips import drop_nan_lpips

    pipeline.eval()
    dataset = pipeline.datamanager.eval_dataset
    frame_index = dataset.metadata[frame_key] if frame_key else None
    groups_of_images = None
    if group_key:
        # A multi-scene run's cameras carry their scene (the one the model renders): group by it, else by the metadata.
        carried = (dataset.cameras.metadata or {}).get(group_key)
        groups_of_images = (
            carried.reshape(len(dataset.cameras), -1)[:, 0] if carried is not None else dataset.metadata.get(group_key)
        )
    cameras_of_images = dataset.metadata.get("camera_index")
    per_image: list[dict[str, float]] = []
    frames: list[int] = []
    groups: list[int] = []
    if output_path is not None:
        output_path.mkdir(parents=True, exist_ok=True)
    for position, (camera, batch) in enumerate(pipeline.datamanager.fixed_indices_eval_dataloader):
        image_index = int(batch["image_idx"]) if "image_idx" in batch else position
        frame = int(frame_index[image_index]) if frame_index is not None else 0
        if frames_available is not None and frame >= frames_available:
            continue
        started = time.perf_counter()
        outputs = pipeline.model.get_outputs_for_camera(camera=camera)
        metrics, images = pipeline.model.get_image_metrics_and_images(outputs, batch)
        seconds = max(time.perf_counter() - started, 1e-9)
        metrics["num_rays_per_sec"] = float(camera.height * camera.width) / seconds
        metrics["fps"] = 1.0 / seconds
        group = int(groups_of_images[image_index]) if groups_of_images is not None else 0
        frames.append(frame)
        groups.append(group)
        per_image.append(metrics)
        if output_path is not None:
            name = f"{group_key}{group:02d}_" if groups_of_images is not None else ""
            name += f"frame{frame:04d}" if frame_index is not None else f"image{image_index:04d}"
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
    if frame_index is not None:
        result.update(per_frame_means(per_image, frames))
    if groups_of_images is not None and len(set(groups)) > 1:
        for group in sorted(set(groups)):
            members = [i for i, g in enumerate(groups) if g == group]
            chosen = [per_image[i] for i in members]
            if frame_index is not None:
                prefix = f"{group_key}{group:02d}_"
                result.update(per_frame_means(chosen, [frames[i] for i in members], prefix=prefix))
            for key in METRIC_KEYS:
                values = [m[key] for m in chosen if key in m and math.isfinite(m[key])]
                if values:
                    result[f"{key}_{group_key}{group:02d}"] = float(sum(values) / len(values))
    if frame_index is not None:
        result["num_frames"] = float(len(set(frames)))
    result["num_images"] = float(len(per_image))  # how many images the means are over (e.g. 144 for a 12 x 12 grid)
    return drop_nan_lpips(result)


def evaluate_per_frame(
    pipeline: Any,
    output_path: Optional[Path] = None,
    get_std: bool = False,
    group_key: Optional[str] = None,
    frames_available: Optional[int] = None,
) -> dict[str, float]:
    """``ns-eval`` for a video method: :func:`evaluate_eval_images` with the eval
    dataset's ``metadata["frame_index"]`` giving each image's frame (per-frame means and ``num_frames`` added); only
    frames below ``frames_available`` when given."""
    return evaluate_eval_images(
        pipeline, output_path, get_std, group_key=group_key, frame_key="frame_index", frames_available=frames_available
    )
