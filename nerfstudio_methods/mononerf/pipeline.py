"""``MonoNeRFPipeline``: nerfstudio's pipeline, telling the data manager when the static stage ends and evaluating
per frame (and per scene in a multi-scene run)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Optional, Type

from nerfstudio.pipelines.base_pipeline import VanillaPipeline, VanillaPipelineConfig

from nerfstudio_methods.mononerf.datamanager import MonoNeRFDataManager, MonoNeRFDataManagerConfig
from nerfstudio_methods.mononerf.model import MonoNeRFModel, MonoNeRFModelConfig
from nerfstudio_methods.timeline import evaluate_per_frame


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
