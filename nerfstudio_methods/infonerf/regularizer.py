"""Old path of :mod:`nerfstudio_methods.infonerf.losses`, kept so code and ``config.yml`` files that name it still
load (``InfoNeRFLossConfig`` is a config dataclass): everything here is re-exported from there."""

from nerfstudio_methods.infonerf.losses import (
    INFONERF_BATCH_KEYS,
    InfoNeRFLossConfig,
    InfoNeRFLossMixin,
    is_infonerf_batch,
    record_sample_opacities,
    seen_ray_outputs,
)

__all__ = [
    "INFONERF_BATCH_KEYS",
    "InfoNeRFLossConfig",
    "InfoNeRFLossMixin",
    "is_infonerf_batch",
    "record_sample_opacities",
    "seen_ray_outputs",
]
