"""LPIPS: torchmetrics' LPIPS downloads the AlexNet (or VGG/SqueezeNet) backbone when it is built, so offline
``ns-train nerfacto`` crashes at start. When the backbone's weights are not in the torch hub cache, LPIPS is
left out of the metrics with one warning. It is never computed with random weights.
"""

from __future__ import annotations

import functools
import math
import os
import warnings
from pathlib import Path
from typing import Any

_LPIPS_BACKBONE_WEIGHTS = {"alex": "AlexNet_Weights", "vgg": "VGG16_Weights", "squeeze": "SqueezeNet1_1_Weights"}


def lpips_weights_path(net_type: str = "alex") -> Path:
    """Where torchvision keeps the LPIPS backbone's pretrained weights ($TORCH_HOME/hub/checkpoints/...)."""
    import torch
    import torchvision.models

    weights = getattr(torchvision.models, _LPIPS_BACKBONE_WEIGHTS[net_type]).DEFAULT
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)


def lpips_available(net_type: str = "alex") -> bool:
    """True when LPIPS can be computed without a download: the backbone weights are in the torch hub cache."""
    return lpips_weights_path(net_type).is_file()


@functools.cache
def _warn_lpips_missing(path: str) -> None:
    warnings.warn(
        f"LPIPS is left out of the metrics: its backbone weights are not at {path} and cannot be downloaded here. "
        "Copy the file there (or set TORCH_HOME) to report LPIPS.",
        stacklevel=3,
    )


def make_lpips_offline_safe() -> None:
    """Build LPIPS only when its weights are cached; otherwise an LPIPS that returns NaN, which pipelines drop."""
    import torch
    from torchmetrics import Metric
    from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity as LPIPS

    original_init = LPIPS.__init__
    original_forward = LPIPS.forward

    def __init__(self: Any, net_type: Any = "alex", reduction: Any = "mean", normalize: bool = False, **kwargs: Any):
        self.weights_missing = net_type in _LPIPS_BACKBONE_WEIGHTS and not lpips_available(net_type)
        if not self.weights_missing:
            original_init(self, net_type=net_type, reduction=reduction, normalize=normalize, **kwargs)
            return
        Metric.__init__(self, **kwargs)
        self.net = None
        self.reduction = reduction
        self.normalize = normalize
        self.add_state("all_scores", default=[], dist_reduce_fx=None)
        _warn_lpips_missing(str(lpips_weights_path(net_type)))
        # Patched here, not at install: plugins are imported while nerfstudio's pipeline module is half-initialised.
        _drop_unavailable_lpips_from_pipeline_metrics()

    def forward(self: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(self, "weights_missing", False):
            return torch.tensor(math.nan)
        return original_forward(self, *args, **kwargs)

    LPIPS.__init__ = __init__  # type: ignore[method-assign]
    LPIPS.forward = forward  # type: ignore[method-assign]


def drop_nan_lpips(metrics: dict[str, Any]) -> dict[str, Any]:
    """Remove ``lpips`` (and ``lpips_std``) when it is NaN, i.e. when LPIPS could not be computed."""
    lpips = metrics.get("lpips")
    if isinstance(lpips, float) and math.isnan(lpips):
        metrics.pop("lpips")
        metrics.pop("lpips_std", None)
    return metrics


@functools.cache
def _drop_unavailable_lpips_from_pipeline_metrics() -> None:
    from nerfstudio.pipelines.base_pipeline import VanillaPipeline

    average = VanillaPipeline.get_average_image_metrics
    per_image = VanillaPipeline.get_eval_image_metrics_and_images

    @functools.wraps(average)
    def get_average_image_metrics(self: Any, *args: Any, **kwargs: Any) -> Any:
        return drop_nan_lpips(average(self, *args, **kwargs))

    @functools.wraps(per_image)
    def get_eval_image_metrics_and_images(self: Any, *args: Any, **kwargs: Any) -> Any:
        metrics, images = per_image(self, *args, **kwargs)
        return drop_nan_lpips(metrics), images

    VanillaPipeline.get_average_image_metrics = get_average_image_metrics  # type: ignore[method-assign]
    VanillaPipeline.get_eval_image_metrics_and_images = get_eval_image_metrics_and_images  # type: ignore[method-assign]
