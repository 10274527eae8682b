"""``ns-train soft-mining`` and its presets: the soft-mining sampler and loss on nerfacto, on the released code's
Instant-NGP base model, and on vanilla NeRF (brief A2, A5).

- ``soft-mining-ngp``: the released code's recipe on Blender (``blender-data``; brief A2.7): an Instant-NGP hash grid
  (nerfacto's: 16 levels, 2^19 entries, resolution 16 to 2048; the brief gives no size for the released radiance
  field) with one proposal network (5 levels up to 128, 128 proposal samples, then 64), no scene contraction,
  near/far 2/6, white background, 20,000 steps of 4096 rays, Adam 1e-2 (eps 1e-15, weight decay 1e-6) with cosine
  annealing to a tenth, alpha 0.6. Initial density 1 (``BLENDER_INIT_DENSITY``): lego at 100 px with 512 rays learns
  from it for every seed measured; small generated scenes with few rays (32-96 px, 64-256 rays) can collapse to the
  white background from it, with either sampler, and learn from 0.1 (the demo and the tests set 0.1).
- ``soft-mining-llff``: the same base model on forward-facing LLFF scenes as released: rays in NDC, ``llff-data``
  images_4, every 8th image held out, weight decay 1e-5, alpha 0.8.
- ``soft-mining``: nerfacto (its own recipe) with soft mining, Blender preset: white background, near/far 2/6, no
  camera optimiser, initial density 1 (``BLENDER_INIT_DENSITY``).
- ``soft-mining-vanilla-nerf``: nerfstudio's vanilla NeRF with the same sampler and loss (Blender preset): the
  sampler plugs into any model whose RGB loss is ``self.rgb_loss = MSELoss()``.

Every preset has a uniform twin that differs only in the sampler: ``--pipeline.sampler uniform`` (random image and
position per ray, plain MSE: the released code's ``--sampling_type uniform``). The soft-mining constants (``a = 20``,
``b = 0.02``, 10% lowest-error and 10% uniform re-initialisation, edge-PDF re-initialisation, weight clamp
``[0.2, mean + std]``, warm-up over 1000 steps) are the released code's (``--pipeline.datamanager.soft-mining.*`` and
``--pipeline.*`` flags).
"""

from __future__ import annotations

from nerfstudio.cameras.camera_optimizers import CameraOptimizerConfig
from nerfstudio.data.dataparsers.blender_dataparser import BlenderDataParserConfig
from nerfstudio.engine.optimizers import AdamOptimizerConfig, RAdamOptimizerConfig
from nerfstudio.engine.schedulers import CosineDecaySchedulerConfig
from nerfstudio.engine.trainer import TrainerConfig
from nerfstudio.models.nerfacto import NerfactoModelConfig
from nerfstudio.models.vanilla_nerf import NeRFModel, VanillaModelConfig
from nerfstudio.plugins.types import MethodSpecification

from dataparsers.llff import LLFFDataParserConfig
from nerfstudio_methods import compat
from nerfstudio_methods.nerfacto_presets import BLENDER_INIT_DENSITY, EVAL_RAYS_PER_CHUNK, nerfacto_trainer_config
from nerfstudio_methods.soft_mining.datamanager import SoftMiningDataManagerConfig, SoftMiningVanillaDataManagerConfig
from nerfstudio_methods.soft_mining.model import SoftMiningNGPModelConfig
from nerfstudio_methods.soft_mining.pipeline import SoftMiningPipelineConfig

# nerfstudio imports this module (an entry point) at the start of every ns-* command: install the fixes first.
compat.install()

BLENDER_ALPHA = 0.6
"""Importance exponent for Blender scenes (released ``train_ngp_nerf_prop.py``, brief A2.3)."""
LLFF_ALPHA = 0.8
"""Importance exponent for LLFF scenes (same source)."""


def soft_mining_nerfacto_config() -> TrainerConfig:
    """nerfacto + soft mining, Blender preset (``soft-mining``)."""
    model = NerfactoModelConfig(
        eval_num_rays_per_chunk=EVAL_RAYS_PER_CHUNK,
        average_init_density=BLENDER_INIT_DENSITY,
        # Blender poses are exact (nerfstudio's documented Blender recipe for nerfacto turns it off too)
        camera_optimizer=CameraOptimizerConfig(mode="off"),
        background_color="white",
        near_plane=2.0,
        far_plane=6.0,
    )
    pipeline = SoftMiningPipelineConfig(
        datamanager=SoftMiningDataManagerConfig(
            dataparser=BlenderDataParserConfig(), train_num_rays_per_batch=4096, eval_num_rays_per_batch=4096
        ),
        model=model,
        alpha=BLENDER_ALPHA,
    )
    return nerfacto_trainer_config("soft-mining", pipeline)


RELEASED_STEPS = 20000
"""``max_steps`` of the released ``train_ngp_nerf_prop.py`` (brief A2.7)."""
RELEASED_RAYS = 4096
"""Rays (population size) per step of the released code."""
RELEASED_WEIGHT_DECAY = {"blender": 1e-6, "llff": 1e-5}
"""Adam weight decay of the released code: 1e-6 for most Blender scenes, 1e-5 for LLFF (brief A2.7)."""


def released_optimizers(weight_decay: float, max_steps: int = RELEASED_STEPS) -> dict:
    """The released code's optimiser for the field and the proposal network: Adam lr 1e-2, eps 1e-15, with cosine
    annealing to lr / 10 over the run (brief A2.7, ``schedulers.py::create_scheduler``)."""
    return {
        group: {
            "optimizer": AdamOptimizerConfig(lr=1e-2, eps=1e-15, weight_decay=weight_decay),
            "scheduler": CosineDecaySchedulerConfig(warm_up_end=0, learning_rate_alpha=0.1, max_steps=max_steps),
        }
        for group in ("proposal_networks", "fields")
    }


def soft_mining_ngp_config(dataset: str = "blender") -> TrainerConfig:
    """The released code's base model and recipe with soft mining: ``soft-mining-ngp`` (Blender) or
    ``soft-mining-llff`` (LLFF in NDC). See the module doc."""
    model = SoftMiningNGPModelConfig(
        eval_num_rays_per_chunk=EVAL_RAYS_PER_CHUNK,
        disable_scene_contraction=True,
        num_proposal_iterations=1,
        # one NGPDensityField, 5 levels up to resolution 128; 128 proposal samples, then 64 (brief A2.7)
        proposal_net_args_list=[
            {"hidden_dim": 16, "log2_hashmap_size": 17, "num_levels": 5, "max_res": 128, "use_linear": False}
        ],
        num_proposal_samples_per_ray=(128,),
        num_nerf_samples_per_ray=64,
        # samples uniform in t: between near and far for Blender, in NDC (linear in disparity) for LLFF
        proposal_initial_sampler="uniform",
        use_appearance_embedding=False,  # one radiance field for all images, as Instant-NGP
        camera_optimizer=CameraOptimizerConfig(mode="off"),  # the released code trains with the given poses
    )
    if dataset == "blender":
        method_name, alpha = "soft-mining-ngp", BLENDER_ALPHA
        dataparser = BlenderDataParserConfig()
        model.background_color = "white"
        model.near_plane, model.far_plane = 2.0, 6.0
        model.average_init_density = BLENDER_INIT_DENSITY
    elif dataset == "llff":
        method_name, alpha = "soft-mining-llff", LLFF_ALPHA
        dataparser = LLFFDataParserConfig(downscale_factor=4)
        model.ndc = True
    else:
        raise ValueError(f"unknown soft-mining preset {dataset!r}")
    pipeline = SoftMiningPipelineConfig(
        datamanager=SoftMiningDataManagerConfig(
            dataparser=dataparser, train_num_rays_per_batch=RELEASED_RAYS, eval_num_rays_per_batch=RELEASED_RAYS
        ),
        model=model,
        alpha=alpha,
    )
    trainer = nerfacto_trainer_config(method_name, pipeline)
    trainer.max_num_iterations = RELEASED_STEPS
    trainer.optimizers = released_optimizers(RELEASED_WEIGHT_DECAY[dataset])
    return trainer


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
    config=soft_mining_nerfacto_config(),
    description="Soft mining (CVPR'24): nerfacto trained on Langevin-sampled pixels with importance-weighted loss; "
    "Blender preset",
)

soft_mining_ngp = MethodSpecification(
    config=soft_mining_ngp_config("blender"),
    description="Soft mining (CVPR'24) on the released code's base model (Instant-NGP hash grid, one proposal network, "
    "its 20k-step recipe); Blender preset. --pipeline.sampler uniform: the uniform baseline",
)

soft_mining_llff = MethodSpecification(
    config=soft_mining_ngp_config("llff"),
    description="Soft mining (CVPR'24) on the released code's base model in NDC; LLFF preset (alpha 0.8, llff-data "
    "images_4)",
)

soft_mining_vanilla_nerf = MethodSpecification(
    config=soft_mining_vanilla_nerf_config(),
    description="Soft mining (CVPR'24) with nerfstudio's vanilla NeRF; Blender preset",
)
