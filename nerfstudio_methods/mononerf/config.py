"""``ns-train mononerf`` (the released settings, for CUDA) and ``ns-train mononerf-cpu`` (a CPU-sized preset).

Defaults follow the released code (mononerf.md §1 "Schedule / hyper-parameters"): 150,001 static then 150,001
dynamic steps, 1,024 rays per step divided across scenes, 64 NDC samples, Adam 5e-4 decaying by 0.1 over 300k
steps for both the static and the dynamic MLPs, gradient norm clipped to 10 for the dynamic one, checkpoints every
10k steps. The preset ``mononerf-cpu`` keeps the method and every loss but uses small encoders and MLPs, 32 samples,
256 rays and the released 2-step Euler trajectories, for minutes-long CPU runs on small videos.

Modes (README "MonoNeRF"): one scene (``--data``); several scenes (``--extra-scenes``); unseen frames
(``--training-frames K``); unseen scene (``--pipeline.model.pretrained-checkpoint`` of a multi-scene run plus a short
schedule).
"""

from __future__ import annotations

from nerfstudio.configs.base_config import ViewerConfig
from nerfstudio.engine.optimizers import AdamOptimizerConfig
from nerfstudio.engine.schedulers import ExponentialDecaySchedulerConfig
from nerfstudio.engine.trainer import TrainerConfig
from nerfstudio.plugins.types import MethodSpecification

from dataparsers.dynamic_scene import DynamicSceneDataParserConfig
from nerfstudio_methods import compat
from nerfstudio_methods.mononerf.datamanager import MonoNeRFDataManagerConfig
from nerfstudio_methods.mononerf.model import MonoNeRFModelConfig
from nerfstudio_methods.mononerf.pipeline import MonoNeRFPipelineConfig

# nerfstudio imports this module (an entry point) at the start of every ns-* command: install the fixes first.
compat.install()

LEARNING_RATE = 5e-4
"""``lrate`` (mononerf.md §1)."""
DECAY_STEPS = 300_000
"""``lr = 5e-4 * 0.1 ** (step / 300000)`` (``lrate_decay``)."""


def _optimizers(max_norm: float = 10.0) -> dict:
    def group(clip: float | None) -> dict:
        return {
            "optimizer": AdamOptimizerConfig(lr=LEARNING_RATE, eps=1e-8, max_norm=clip),
            "scheduler": ExponentialDecaySchedulerConfig(lr_final=LEARNING_RATE * 0.1, max_steps=DECAY_STEPS),
        }

    return {"static": group(None), "dynamic": group(max_norm)}


def _trainer(method_name: str, datamanager: MonoNeRFDataManagerConfig, model: MonoNeRFModelConfig) -> TrainerConfig:
    return TrainerConfig(
        method_name=method_name,
        steps_per_eval_batch=0,
        steps_per_eval_image=20000,
        steps_per_eval_all_images=0,
        steps_per_save=10000,
        max_num_iterations=300002,
        mixed_precision=False,
        pipeline=MonoNeRFPipelineConfig(datamanager=datamanager, model=model),
        optimizers=_optimizers(),
        viewer=ViewerConfig(num_rays_per_chunk=model.eval_num_rays_per_chunk),
        vis="viewer",
    )


def mononerf_config() -> TrainerConfig:
    """The released settings: 150,001 static + 150,001 dynamic steps of 1,024 rays."""
    return _trainer(
        "mononerf",
        MonoNeRFDataManagerConfig(dataparser=DynamicSceneDataParserConfig(), train_num_rays_per_batch=1024),
        MonoNeRFModelConfig(static_steps=150001, eval_num_rays_per_chunk=1024),
    )


def mononerf_cpu_config() -> TrainerConfig:
    """Small encoders and MLPs, 32 samples, 256 rays, Euler trajectories, 1,000 static + 2,000 dynamic steps."""
    config = _trainer(
        "mononerf-cpu",
        MonoNeRFDataManagerConfig(dataparser=DynamicSceneDataParserConfig(), train_num_rays_per_batch=256),
        MonoNeRFModelConfig(
            static_steps=1000,
            video_encoder="small",
            image_encoder="small",
            hidden_width=64,
            code_channels=32,
            code_hidden=128,
            num_samples=32,
            # The released 2-step Euler: 12 velocity evaluations per step against ~80 for dopri5 (5x the step time
            # on 2 CPU cores); --pipeline.model.trajectory-solver ode for the paper's Neural ODE.
            trajectory_solver="euler",
            # The blending weight waits while the dynamic branch learns colour: without it b collapsed to 0 within
            # ~20 steps of stage 2 in CPU runs and the dynamic branch never entered the image (README "MonoNeRF").
            blending_warmup_steps=150,
            eval_num_rays_per_chunk=4096,
        ),
    )
    config.max_num_iterations = 3000
    config.steps_per_save = 500
    config.steps_per_eval_image = 500
    return config


mononerf = MethodSpecification(
    config=mononerf_config(),
    description="MonoNeRF (ICCV'23): generalizable dynamic radiance fields from monocular videos; released settings",
)

mononerf_cpu = MethodSpecification(
    config=mononerf_cpu_config(),
    description="MonoNeRF with small encoders and MLPs, 32 samples and 256 rays: a CPU-sized preset",
)
