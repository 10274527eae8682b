"""``StreamRFDataManager``: rays from one frame of a multi-view video at a time.

The ``n3dv-data`` parser lists every (camera, frame) image, frame-major, with ``metadata["frame_index"]``. Loading them
all (nerfstudio's ``CacheDataloader``) would hold the whole video in memory (24.7 GB for N3DV at 1352x1014), so this
manager loads the training images of the frame being trained (:meth:`set_frame`) and samples rays uniformly over
them (StreamRF shuffles all rays of a frame, with replacement). Evaluation images are loaded one at a time by
nerfstudio's eval dataloaders. Rays carry their camera's time, so the model can tell frames apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Tuple, Type

import torch
from nerfstudio.cameras.rays import RayBundle
from nerfstudio.configs.dataparser_configs import AnnotatedDataParserUnion
from nerfstudio.data.datamanagers.base_datamanager import VanillaDataManager, VanillaDataManagerConfig
from nerfstudio.data.utils.dataloaders import FixedIndicesEvalDataloader, RandIndicesEvalDataloader
from nerfstudio.model_components.ray_generators import RayGenerator
from nerfstudio.utils.rich_utils import CONSOLE
from torch import Tensor

from dataparsers.n3dv import N3dvDataParserConfig


@dataclass
class StreamRFDataManagerConfig(VanillaDataManagerConfig):
    """One frame's training images in memory at a time."""

    _target: Type = field(default_factory=lambda: StreamRFDataManager)
    dataparser: AnnotatedDataParserUnion = field(default_factory=N3dvDataParserConfig)
    """``n3dv-data`` (a subcommand: ``ns-train streamrf n3dv-data --data SCENE``)."""
    train_num_rays_per_batch: int = 20000
    """Rays per step for later frames and the pilot (StreamRF's video scripts: 20,000)."""
    frame0_num_rays_per_batch: int = 5000
    """Rays per step while training frame 0 (opt.py's default batch of 5,000)."""
    eval_num_rays_per_batch: int = 4096


class StreamRFDataManager(VanillaDataManager):
    """See the module doc. ``set_frame(t)`` selects the frame rays are drawn from."""

    config: StreamRFDataManagerConfig

    def __init__(self, config: StreamRFDataManagerConfig, *args, **kwargs) -> None:
        self.frame = -1
        self.frame_images: Tensor | None = None
        self.frame_image_indices: Tensor | None = None
        self.rays_per_batch = config.frame0_num_rays_per_batch
        super().__init__(config, *args, **kwargs)

    @property
    def num_frames(self) -> int:
        return int(self.train_dataparser_outputs.metadata["num_frames"])

    def frame_indices_of(self, dataset_metadata: dict) -> Tensor:
        return dataset_metadata["frame_index"]

    def setup_train(self) -> None:
        """Only the ray generator: images are loaded per frame by :meth:`set_frame`."""
        self.train_ray_generator = RayGenerator(self.train_dataset.cameras.to(self.device))

    def setup_eval(self) -> None:
        """Per-image eval loaders only (no cache of all eval images)."""
        self.eval_ray_generator = RayGenerator(self.eval_dataset.cameras.to(self.device))
        self.fixed_indices_eval_dataloader = FixedIndicesEvalDataloader(
            input_dataset=self.eval_dataset, device=self.device, num_workers=0
        )
        self.eval_dataloader = RandIndicesEvalDataloader(
            input_dataset=self.eval_dataset, device=self.device, num_workers=0
        )

    def set_frame(self, frame: int) -> None:
        """Load the training images of ``frame`` (all training cameras) onto the device."""
        if frame == self.frame:
            return
        frame_index = self.train_dataparser_outputs.metadata["frame_index"]
        indices = torch.nonzero(frame_index == frame)[:, 0]
        if indices.numel() == 0:
            raise ValueError(f"frame {frame} has no training images (the run has {self.num_frames} frames)")
        images = [self.train_dataset.get_image_float32(int(i))[..., :3] for i in indices]
        self.frame_images = torch.stack(images).to(self.device)
        self.frame_image_indices = indices.to(self.device)
        self.frame = frame
        self.rays_per_batch = (
            self.config.frame0_num_rays_per_batch if frame == 0 else self.config.train_num_rays_per_batch
        )

    def set_rays_per_batch(self, count: int) -> None:
        self.rays_per_batch = count

    def _sample(self, images: Tensor, image_indices: Tensor, count: int) -> Tuple[Tensor, Tensor]:
        num_images, height, width = images.shape[:3]
        which = torch.randint(num_images, (count,), device=images.device)
        y = torch.randint(height, (count,), device=images.device)
        x = torch.randint(width, (count,), device=images.device)
        indices = torch.stack([image_indices[which], y, x], dim=-1)
        return indices, images[which, y, x]

    def next_train(self, step: int) -> Tuple[RayBundle, Dict]:
        self.train_count += 1
        if self.frame_images is None or self.frame_image_indices is None:
            CONSOLE.print("StreamRF: no frame selected yet, training frame 0")
            self.set_frame(0)
        assert self.frame_images is not None and self.frame_image_indices is not None
        indices, pixels = self._sample(self.frame_images, self.frame_image_indices, self.rays_per_batch)
        return self.train_ray_generator(indices), {"image": pixels, "indices": indices}

    def next_eval(self, step: int) -> Tuple[RayBundle, Dict]:
        """Rays of the held-out camera at the frame being trained."""
        self.eval_count += 1
        frame_index = self.eval_dataset.metadata["frame_index"]
        matches = torch.nonzero(frame_index == max(self.frame, 0))[:, 0]
        index = int(matches[0]) if matches.numel() else 0
        image = self.eval_dataset.get_image_float32(index)[..., :3].to(self.device)
        indices, pixels = self._sample(
            image[None], torch.tensor([index], device=self.device), self.config.eval_num_rays_per_batch
        )
        return self.eval_ray_generator(indices), {"image": pixels, "indices": indices}

    def get_train_rays_per_batch(self) -> int:
        return self.rays_per_batch
