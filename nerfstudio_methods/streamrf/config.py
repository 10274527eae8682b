"""``ns-train streamrf`` (N3DV settings) and ``ns-train streamrf-meetroom`` (Meet Room settings).

Defaults follow StreamRF's README commands and configs (brief §1.2-1.3): N3DV frame 0 on a 128^3 -> 256^2x128 ->
512^2x128 grid for 128k steps of 5,000 rays; later frames 750 pilot steps at half resolution then 500 full steps
of 20,000 rays, narrow band, SH keep/prune 1.0/0.2 (pilot 0.5/0.1), dilation 2/2 (pilot 1/1), stop threshold
0.01, TV 5e-4/5e-3. Meet Room: 256^2x128 -> 512^2x128 -> 768^2x128, pilot 1000 steps (density lr 0.3, SH 1e-2 ->
1e-4), full SH lr constant 1e-2, keep/prune 1.5/0.3, stop threshold 1e-7, TV 5e-3/5e-2, frames at full size.

Evaluation: ``ns-eval`` renders the held-out camera (cam00 / cam_0) at every frame and reports the means and
``psnr_frame_XXXX`` / ``ssim_frame_XXXX``. ``ns-render camera-path --camera-path-filename
<run>/camera_paths/heldout_camera.json`` renders the held-out camera across time as a video.
"""

from __future__ import annotations

from nerfstudio.configs.base_config import ViewerConfig
from nerfstudio.plugins.types import MethodSpecification

from dataparsers.n3dv import N3dvDataParserConfig
from nerfstudio_methods import compat
from nerfstudio_methods.streamrf.datamanager import StreamRFDataManagerConfig
from nerfstudio_methods.streamrf.model import StreamRFModelConfig
from nerfstudio_methods.streamrf.pipeline import StreamRFPipelineConfig
from nerfstudio_methods.streamrf.trainer import StreamRFTrainerConfig

# nerfstudio imports this module (an entry point) at the start of every ns-* command: install the fixes first.
compat.install()


def _trainer(method_name: str, layout: str, model: StreamRFModelConfig) -> StreamRFTrainerConfig:
    return StreamRFTrainerConfig(
        method_name=method_name,
        steps_per_eval_batch=500,
        steps_per_eval_image=5000,
        steps_per_eval_all_images=0,
        steps_per_save=2000,
        save_only_latest_checkpoint=True,
        mixed_precision=False,
        pipeline=StreamRFPipelineConfig(
            datamanager=StreamRFDataManagerConfig(dataparser=N3dvDataParserConfig(layout=layout)),  # type: ignore[arg-type]
            model=model,
        ),
        optimizers={},
        viewer=ViewerConfig(num_rays_per_chunk=1 << 15),
        vis="viewer",
    )


def streamrf_n3dv_config() -> StreamRFTrainerConfig:
    return _trainer("streamrf", "auto", StreamRFModelConfig(eval_num_rays_per_chunk=1 << 15))


def streamrf_meetroom_config() -> StreamRFTrainerConfig:
    model = StreamRFModelConfig(
        eval_num_rays_per_chunk=1 << 15,
        frame0_resolutions=((256, 256, 128), (512, 512, 128), (768, 768, 128)),
        tv_density=5e-3,
        tv_sh=5e-2,
        stop_thresh=1e-7,
        lr_sh=1e-2,
        lr_sh_final=1e-2,
        sh_keep_threshold=1.5,
        sh_prune_threshold=0.3,
        pilot_steps=1000,
        pilot_frame0_steps=10000,
        pilot_lr_density=0.3,
        pilot_lr_sh=1e-2,
        pilot_lr_sh_final=1e-4,
        pilot_lr_sh_decay_steps=1000,
        pilot_sh_keep_threshold=1.0,
        pilot_sh_prune_threshold=0.1,
    )
    return _trainer("streamrf-meetroom", "meetroom", model)


streamrf = MethodSpecification(
    config=streamrf_n3dv_config(),
    description="StreamRF (NeurIPS'22): streaming voxel radiance fields for multi-view video; N3DV settings",
)

streamrf_meetroom = MethodSpecification(
    config=streamrf_meetroom_config(),
    description="StreamRF (NeurIPS'22) with its Meet Room settings (13 cameras cam_0..cam_12, full-size frames)",
)
