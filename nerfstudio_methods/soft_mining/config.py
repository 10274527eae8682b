"""``ns-train soft-mining`` and its presets: nerfacto / vanilla NeRF trained with soft mining (brief A2, A5).

- ``soft-mining``: nerfacto with the soft-mining data manager and loss, Blender preset (``blender-data``): alpha 0.6,
  white background, near/far 2/6 (brief A2.7), no camera optimiser, initial density 1 (``BLENDER_INIT_DENSITY``).
- ``soft-mining-llff``: the same for forward-facing LLFF scenes (``llff-data``, images_4 as the released code):
  alpha 0.8.
- ``soft-mining-vanilla-nerf``: nerfstudio's vanilla NeRF with the same sampler and loss (Blender preset): the
  sampler plugs into any model whose RGB loss is ``self.rgb_loss = MSELoss()``.

Every preset keeps its base method's training recipe (nerfacto's / vanilla-nerf's optimisers, 4096 / 1024 rays), so
``ns-train nerfacto`` and ``ns-train soft-mining`` differ only in how pixels are chosen and weighted. The soft-mining
constants (``a = 20``, ``b = 0.02``, 10% lowest-error and 10% uniform re-initialisation, edge-PDF re-initialisation,
weight clamp ``[0.2, mean + std]``, warm-up over 1000 steps) are the released code's (``--pipeline.datamanager.
soft-mining.*`` and ``--pipeline.*`` flags).
"""

from __future__ import annotations

from nerfstudio.cameras.camera_optimizers import CameraOptimizerConfig
from nerfstudio.data.dataparsers.blender_dataparser import BlenderDataParserConfig
from nerfstudio.engine.optimizers import RAdamOptimizerConfig
from nerfstudio.engine.trainer import TrainerConfig
from nerfstudio.models.nerfacto import NerfactoModelConfig
from nerfstudio.models.vanilla_nerf import NeRFModel, VanillaModelConfig
from nerfstudio.plugins.types import MethodSpecification

from dataparsers.llff import LLFFDataParserConfig
from nerfstudio_methods import compat
from nerfstudio_methods.nerfacto_presets import BLENDER_INIT_DENSITY, EVAL_RAYS_PER_CHUNK, nerfacto_trainer_config
from nerfstudio_methods.soft_mining.datamanager import SoftMiningDataManagerConfig, SoftMiningVanillaDataManagerConfig
from nerfstudio_methods.soft_mining.pipeline import SoftMiningPipelineConfig

# nerfstudio imports this module (an entry point) at the start of every ns-* command: install the fixes first.
compat.install()

BLENDER_ALPHA = 0.6
"""Importance exponent for Blender scenes (released ``train_ngp_nerf_prop.py``, brief A2.3)."""
LLFF_ALPHA = 0.8
"""Importance exponent for LLFF scenes (same source)."""


def soft_mining_nerfacto_config(dataset: str = "blender") -> TrainerConfig:
    """nerfacto + soft mining with the preset for ``dataset`` ("blender" or "llff")."""
    if dataset == "blender":
        method_name, alpha = "soft-mining", BLENDER_ALPHA
        dataparser = BlenderDataParserConfig()
        model = NerfactoModelConfig(
            eval_num_rays_per_chunk=EVAL_RAYS_PER_CHUNK,
            average_init_density=BLENDER_INIT_DENSITY,
            # Blender poses are exact (nerfstudio's documented Blender recipe for nerfacto turns it off too)
            camera_optimizer=CameraOptimizerConfig(mode="off"),
            background_color="white",
            near_plane=2.0,
            far_plane=6.0,
        )
    elif dataset == "llff":
        method_name, alpha = "soft-mining-llff", LLFF_ALPHA
        dataparser = LLFFDataParserConfig(downscale_factor=4)
        model = NerfactoModelConfig(
            eval_num_rays_per_chunk=EVAL_RAYS_PER_CHUNK,
            average_init_density=0.01,
            camera_optimizer=CameraOptimizerConfig(mode="SO3xR3"),
        )
    else:
        raise ValueError(f"unknown soft-mining preset {dataset!r}")
    pipeline = SoftMiningPipelineConfig(
        datamanager=SoftMiningDataManagerConfig(
            dataparser=dataparser, train_num_rays_per_batch=4096, eval_num_rays_per_batch=4096
        ),
        model=model,
        alpha=alpha,
    )
    return nerfacto_trainer_config(method_name, pipeline)


def soft_mining_vanilla_nerf_config() -> TrainerConfig:
    """nerfstudio's vanilla-nerf + soft mining, Blender preset."""
    return TrainerConfig(
        method_name="soft-mining-vanilla-nerf",
        pipeline=SoftMiningPipelineConfig(
            datamanager=SoftMiningVanillaDataManagerConfig(dataparser=BlenderDataParserConfig()),
            model=VanillaModelConfig(_target=NeRFModel, background_color="white"),
            alpha=BLENDER_ALPHA,
        ),
        optimizers={
            "fields": {"optimizer": RAdamOptimizerConfig(lr=5e-4, eps=1e-08), "scheduler": None},
            "temporal_distortion": {"optimizer": RAdamOptimizerConfig(lr=5e-4, eps=1e-08), "scheduler": None},
        },
        vis="viewer",
    )


soft_mining = MethodSpecification(
    config=soft_mining_nerfacto_config("blender"),
    description="Soft mining (CVPR'24): nerfacto trained on Langevin-sampled pixels with importance-weighted loss; "
    "Blender preset",
)

soft_mining_llff = MethodSpecification(
    config=soft_mining_nerfacto_config("llff"),
    description="Soft mining (CVPR'24) with nerfacto; LLFF preset (alpha 0.8, llff-data images_4)",
)

soft_mining_vanilla_nerf = MethodSpecification(
    config=soft_mining_vanilla_nerf_config(),
    description="Soft mining (CVPR'24) with nerfstudio's vanilla NeRF; Blender preset",
)
