"""``MonoNeRFPipeline``: nerfstudio's pipeline, telling the data manager when the static stage ends, evaluating per
frame (and per scene in a multi-scene run), and writing camera paths across time for ``ns-render camera-path``:

- ``<run>/camera_paths/fixed_camera.json``: the evaluation camera (``--eval-camera``, 0 by default) of the shown scene
  at every frame's time (DynamicNeRF's fixed-view, time-varying renders);
- ``<run>/camera_paths/input_video.json``: the training cameras at their own times (the input video re-rendered).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Type

import torch
from nerfstudio.cameras.cameras import Cameras
from nerfstudio.engine.callbacks import TrainingCallback, TrainingCallbackAttributes
from nerfstudio.pipelines.base_pipeline import VanillaPipeline, VanillaPipelineConfig

from nerfstudio_methods.mononerf.datamanager import MonoNeRFDataManager, MonoNeRFDataManagerConfig
from nerfstudio_methods.mononerf.model import MonoNeRFModel, MonoNeRFModelConfig
from nerfstudio_methods.timeline import evaluate_per_frame, write_camera_path_across_time


@dataclass
class MonoNeRFPipelineConfig(VanillaPipelineConfig):
    _target: Type = field(default_factory=lambda: MonoNeRFPipeline)
    datamanager: MonoNeRFDataManagerConfig = field(default_factory=MonoNeRFDataManagerConfig)
    model: MonoNeRFModelConfig = field(default_factory=MonoNeRFModelConfig)


class MonoNeRFPipeline(VanillaPipeline):
    config: MonoNeRFPipelineConfig

    def __init__(self, config: MonoNeRFPipelineConfig, *args, **kwargs) -> None:
        super().__init__(config, *args, **kwargs)
        if isinstance(self.datamanager, MonoNeRFDataManager):
            # The static stage may draw from every frame (unseen-frames setup); the model owns the stage length.
            self.datamanager.static_steps = config.model.static_steps

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
            times=torch.arange(count, dtype=torch.float32)[:, None] / max(count - 1, 1),
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
