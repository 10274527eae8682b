"""``MonoNeRFPipeline``: nerfstudio's pipeline, telling the data manager when the static stage ends, evaluating per
frame (and per scene in a multi-scene run), and writing camera paths across time for ``ns-render camera-path``:

- ``<run>/camera_paths/fixed_camera.json``: the evaluation camera (``--eval-camera``, 0 by default) of the shown scene
  at every frame's time (DynamicNeRF's fixed-view, time-varying renders);
- ``<run>/camera_paths/input_video.json``: the training cameras at their own times (the input video re-rendered).

A scene without ``motion_masks/`` (most users' videos) gets them from what it has: halfway through the static stage
the static branch, fitted so far to every pixel of the training frames, renders each training frame, and pixels whose
colour it misses by more than ``static_error_ratio`` times the frame's median miss (dilated by
``motion_mask_dilation``) count as moving. From
then on the scene trains as one with masks: the rest of the static stage on static pixels only, stage 2 with half
its rays on moving pixels and the mask, order, static-flow and mask-flow losses on.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Dict, List, Optional, Type

import torch
from nerfstudio.cameras.cameras import Cameras
from nerfstudio.engine.callbacks import TrainingCallback, TrainingCallbackAttributes
from nerfstudio.pipelines.base_pipeline import VanillaPipeline, VanillaPipelineConfig
from nerfstudio.utils.rich_utils import CONSOLE

from nerfstudio_methods.evaluation import evaluate_per_frame
from nerfstudio_methods.mononerf.datamanager import MonoNeRFDataManager, MonoNeRFDataManagerConfig
from nerfstudio_methods.mononerf.model import MonoNeRFModel, MonoNeRFModelConfig
from nerfstudio_methods.mononerf.motion_masks import static_error_masks
from nerfstudio_methods.timeline import time_of_frame, write_camera_path_across_time


@dataclass
class MonoNeRFPipelineConfig(VanillaPipelineConfig):
    _target: Type = field(default_factory=lambda: MonoNeRFPipeline)
    datamanager: MonoNeRFDataManagerConfig = field(default_factory=MonoNeRFDataManagerConfig)
    model: MonoNeRFModelConfig = field(default_factory=MonoNeRFModelConfig)
    motion_masks_from_static_error: bool = True
    """Scenes without motion_masks/: derive them halfway through the static stage from the static branch's colour
    error (see the module doc). False: such a scene trains with every pixel static and the mask terms off."""
    static_error_ratio: float = 2.0
    """A training pixel is moving where the static render misses its colour (largest channel difference) by more
    than this many times the frame's median miss. Relative, because how well the static branch fits halfway through
    its stage varies by scene (an absolute 0.1 marked 94% of Balloon1's pixels); chosen by agreement with the true
    masks of generated tuning scenes (the benchmark's ``mask_tuning``)."""
    motion_mask_dilation: int = 1
    """Derived masks grow by this many pixels (the released masks are dilated too; mononerf.md §3)."""


class MonoNeRFPipeline(VanillaPipeline):
    config: MonoNeRFPipelineConfig

    def __init__(self, config: MonoNeRFPipelineConfig, *args, **kwargs) -> None:
        super().__init__(config, *args, **kwargs)
        if isinstance(self.datamanager, MonoNeRFDataManager):
            # The static stage may draw from every frame (unseen-frames setup); the model owns the stage length.
            self.datamanager.static_steps = config.model.static_steps
        self.masks_derived = False

    def get_train_loss_dict(self, step: int):
        self.derive_motion_masks_when_due(step)
        return super().get_train_loss_dict(step)

    def derive_motion_masks_when_due(self, step: int) -> None:
        """Give scenes without motion masks derived ones once the static stage is half done (again after a resume:
        derived masks are not in the checkpoint)."""
        if self.masks_derived or not self.config.motion_masks_from_static_error:
            return
        if step < self.mononerf.config.static_steps // 2:
            return
        self.masks_derived = True
        datamanager = self.datamanager
        assert isinstance(datamanager, MonoNeRFDataManager)
        model = self.mononerf
        for scene, video in enumerate(datamanager.videos):
            if video.motion_mask is not None:
                continue
            masks = static_error_masks(model, video, self.config.static_error_ratio, self.config.motion_mask_dilation)
            datamanager.videos[scene] = replace(video, motion_mask=masks, motion_mask_derived=True)
            model.scenes[scene] = replace(model.scenes[scene], motion_mask=masks.cpu(), motion_mask_derived=True)
            moving = float(masks[: video.supervised_frames].float().mean())
            CONSOLE.print(
                f"MonoNeRF: {video.name}: motion masks derived from the static branch's error at step {step} "
                f"(> {self.config.static_error_ratio:g} x median error): {moving:.1%} of the training frames' pixels move"
            )

    def get_training_callbacks(
        self, training_callback_attributes: TrainingCallbackAttributes
    ) -> List[TrainingCallback]:
        trainer = training_callback_attributes.trainer
        if trainer is not None and self.model.training:
            self.write_camera_paths(Path(trainer.base_dir) / "camera_paths")
        return super().get_training_callbacks(training_callback_attributes)

    def write_camera_paths(self, folder: Path) -> None:
        """The two camera paths of the module doc, for the scene the viewer shows."""
        datamanager = self.datamanager
        assert isinstance(datamanager, MonoNeRFDataManager)
        scenes = datamanager.scenes
        video = scenes[min(self.mononerf.config.default_scene, len(scenes) - 1)]
        cameras = video.cameras
        count = video.num_frames
        fixed = min(int(getattr(datamanager.config.dataparser, "eval_camera", 0)), count - 1)
        fixed_cameras = Cameras(
            camera_to_worlds=cameras.camera_to_worlds[fixed : fixed + 1].expand(count, 3, 4),
            fx=cameras.fx[fixed : fixed + 1].expand(count, 1),
            fy=cameras.fy[fixed : fixed + 1].expand(count, 1),
            cx=cameras.cx[fixed : fixed + 1].expand(count, 1),
            cy=cameras.cy[fixed : fixed + 1].expand(count, 1),
            width=cameras.width[:1].expand(count, 1),
            height=cameras.height[:1].expand(count, 1),
            times=time_of_frame(torch.arange(count, dtype=torch.float32)[:, None], count),
        )
        write_camera_path_across_time(folder / "fixed_camera.json", fixed_cameras, fps=float(count) / 2.0)
        write_camera_path_across_time(folder / "input_video.json", cameras, fps=float(count) / 2.0)

    @property
    def mononerf(self) -> MonoNeRFModel:
        model = self.model
        assert isinstance(model, MonoNeRFModel)
        return model

    def get_average_eval_image_metrics(
        self, step: Optional[int] = None, output_path: Optional[Path] = None, get_std: bool = False
    ) -> Dict[str, float]:
        """Means over the eval split, per frame (``psnr_frame_XXXX``) and, with several scenes, per scene."""
        return evaluate_per_frame(self, output_path=output_path, get_std=get_std, group_key="scene_index")
