"""Time in video methods: nerfstudio's camera time <-> frame index, the default time, per-frame eval metrics.

Every video dataparser of this collection (``n3dv-data``, ``dynamic-scene-data``) gives frame ``i`` of a ``T``-frame
video the time ``i / (T - 1)`` in [0, 1] (``Cameras.times``, nerfstudio's DNeRF convention; mononerf.md §6), which is
what the viewer's Time slider and ``ns-render``'s ``render_time`` produce. Rays without times (``ns-render
interpolate`` drops them, nerfstudio_plugins.md §2) are shown at a configured default time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Optional

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
