"""``blender-fewshot-data``: NeRF-synthetic (Blender) scenes with few training views (InfoNeRF / DietNeRF split, brief B3).

- train: the frames ``train_views`` of ``transforms_train.json`` (default 26, 86, 2, 55: InfoNeRF's 4 views, the first
  four of DietNeRF's 8-view list), or, with ``num_train_views``, the first N of DietNeRF's list
  (26, 86, 2, 55, 75, 93, 16, 73) when N <= 8, else N evenly spaced frames;
- test: ``transforms_test.json`` frames ``[::eval_skip]`` (25 images for the usual 200), the customary held-out set.
  When the scene has no ``transforms_test.json`` (our local lego ships train and val only), the val frames
  ``[::eval_skip]`` are used instead, with a printed notice;
- val: ``transforms_val.json`` frames ``[::eval_skip]``.

The train outputs' metadata carries ``unseen_pose_pool``: the poses nerf-pytorch's ``load_blender_data(testskip=8)``
loads (all train frames, val[::8], test[::8]), used only by the datamanager's faithful ``all-poses`` mode.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Tuple, Type

import numpy as np
import torch
from nerfstudio.data.dataparsers.base_dataparser import DataparserOutputs
from nerfstudio.data.dataparsers.blender_dataparser import Blender, BlenderDataParserConfig
from nerfstudio.plugins.registry_dataparser import DataParserSpecification
from nerfstudio.utils.rich_utils import CONSOLE

from dataparsers._common import DatasetFormatError, SettingError
from nerfstudio_methods import compat
from nerfstudio_methods.rays import UNSEEN_POSE_POOL_KEY, cat_cameras

compat.install()

DIETNERF_VIEWS = (26, 86, 2, 55, 75, 93, 16, 73)
"""DietNeRF's 8-view Blender list; InfoNeRF uses its first four."""


@dataclass
class BlenderFewShotDataParserConfig(BlenderDataParserConfig):
    """Blender scenes with few training views (InfoNeRF, DietNeRF protocol)."""

    _target: Type = field(default_factory=lambda: BlenderFewShot)
    train_views: Tuple[int, ...] = (26, 86, 2, 55)
    """Indices into transforms_train.json's frames used for training."""
    num_train_views: Optional[int] = None
    """If set, overrides train_views: the first N of DietNeRF's 8-view list (N <= 8) or N evenly spaced frames."""
    eval_skip: int = 8
    """Keep every eval_skip-th frame of the test/val split (testskip=8: 25 test images)."""


def select_train_views(num_frames: int, train_views: Tuple[int, ...], num_train_views: Optional[int]) -> list[int]:
    """The training frame indices for the given options."""
    if num_train_views is not None:
        if num_train_views <= 0:
            raise SettingError("--num-train-views", f"must be at least 1, got {num_train_views}")
        if num_train_views <= len(DIETNERF_VIEWS) and max(DIETNERF_VIEWS[:num_train_views]) < num_frames:
            return list(DIETNERF_VIEWS[:num_train_views])
        return sorted({int(i) for i in np.linspace(0, num_frames - 1, num_train_views).round()})
    return list(train_views)


class BlenderFewShot(Blender):
    """nerfstudio's Blender parser with InfoNeRF's few-shot train split and test[::8] (see module doc)."""

    config: BlenderFewShotDataParserConfig

    def _split_outputs(self, split: str, skip: int = 1) -> DataparserOutputs:
        outputs = super()._generate_dataparser_outputs(split)
        keep = list(range(0, len(outputs.image_filenames), skip))
        return self._subset(outputs, keep)

    @staticmethod
    def _subset(outputs: DataparserOutputs, keep: list[int]) -> DataparserOutputs:
        return DataparserOutputs(
            image_filenames=[outputs.image_filenames[i] for i in keep],
            cameras=outputs.cameras[torch.tensor(keep, dtype=torch.long)],
            alpha_color=outputs.alpha_color,
            scene_box=outputs.scene_box,
            dataparser_scale=outputs.dataparser_scale,
            metadata=dict(outputs.metadata),
        )

    def _has_split(self, split: str) -> bool:
        return (self.data / f"transforms_{split}.json").is_file()

    def _generate_dataparser_outputs(self, split: str = "train", **kwargs) -> DataparserOutputs:
        skip = self.config.eval_skip
        if split == "train":
            everything = super()._generate_dataparser_outputs("train")
            count = len(everything.image_filenames)
            views = select_train_views(count, self.config.train_views, self.config.num_train_views)
            bad = [i for i in views if not 0 <= i < count]
            if bad:
                raise DatasetFormatError(
                    self.data / "transforms_train.json",
                    f"train view(s) {bad} out of range: the split has {count} frames "
                    "(choose others with --train-views or --num-train-views)",
                )
            outputs = self._subset(everything, views)
            pool = [everything.cameras] + [
                self._split_outputs(name, skip).cameras for name in ("val", "test") if self._has_split(name)
            ]
            outputs.metadata[UNSEEN_POSE_POOL_KEY] = cat_cameras(pool)
            return outputs
        if split == "test" and not self._has_split("test"):
            CONSOLE.print(
                f"[bold yellow]{self.data} has no transforms_test.json; evaluating on transforms_val.json"
                f"[::{skip}] instead of the customary test[::{skip}]"
            )
            split = "val"
        return self._split_outputs(split, skip)


blender_fewshot_dataparser = DataParserSpecification(
    config=BlenderFewShotDataParserConfig(),
    description="Blender (NeRF-synthetic) with InfoNeRF's few-shot train views and test[::8]",
)
