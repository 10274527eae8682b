"""nerfacto's training recipe, shared by every preset of this package that builds on nerfacto (``soft-mining*``,
``infonerf-nerfacto*``), so that ``ns-train nerfacto`` and those presets differ only in what their method adds."""

from __future__ import annotations

from nerfstudio.configs.base_config import ViewerConfig
from nerfstudio.engine.optimizers import AdamOptimizerConfig
from nerfstudio.engine.schedulers import ExponentialDecaySchedulerConfig
from nerfstudio.engine.trainer import TrainerConfig
from nerfstudio.pipelines.base_pipeline import VanillaPipelineConfig

BLENDER_INIT_DENSITY = 1.0
"""nerfacto's initial density scale on white-background scenes. nerfacto's method config uses 0.01; on lego with a white
background that renders almost pure background at first, the only colour signal is "darker" (the object), and the
colour head's sigmoid saturates at black within ~10 steps (measured with the torch implementation at lr 1e-2, 3e-3:
exactly grey renders, held-out PSNR stuck at 17 dB; see the soft-mining benchmark note). With 1.0 the first renders
are grey everywhere, the background pulls the colours up and the object's pulls them apart, and the head stays alive.
"""

EVAL_RAYS_PER_CHUNK = 1 << 15
"""nerfacto's rays per chunk for full-image renders (evaluation and viewer)."""


def nerfacto_optimizers() -> dict:
    """nerfacto's optimisers (nerfstudio 1.1.5 ``method_configs["nerfacto"]``)."""
    return {
        "proposal_networks": {
            "optimizer": AdamOptimizerConfig(lr=1e-2, eps=1e-15),
            "scheduler": ExponentialDecaySchedulerConfig(lr_final=0.0001, max_steps=200000),
        },
        "fields": {
            "optimizer": AdamOptimizerConfig(lr=1e-2, eps=1e-15),
            "scheduler": ExponentialDecaySchedulerConfig(lr_final=0.0001, max_steps=200000),
        },
        "camera_opt": {
            "optimizer": AdamOptimizerConfig(lr=1e-3, eps=1e-15),
            "scheduler": ExponentialDecaySchedulerConfig(lr_final=1e-4, max_steps=5000),
        },
    }


def nerfacto_trainer_config(method_name: str, pipeline: VanillaPipelineConfig) -> TrainerConfig:
    """A ``TrainerConfig`` with nerfacto's recipe (30k steps, mixed precision, its optimisers, eval/save cadence,
    viewer chunk size) around ``pipeline``."""
    return TrainerConfig(
        method_name=method_name,
        steps_per_eval_batch=500,
        steps_per_save=2000,
        max_num_iterations=30000,
        mixed_precision=True,
        pipeline=pipeline,
        optimizers=nerfacto_optimizers(),
        viewer=ViewerConfig(num_rays_per_chunk=EVAL_RAYS_PER_CHUNK),
        vis="viewer",
    )


__all__ = ["BLENDER_INIT_DENSITY", "EVAL_RAYS_PER_CHUNK", "nerfacto_optimizers", "nerfacto_trainer_config"]
