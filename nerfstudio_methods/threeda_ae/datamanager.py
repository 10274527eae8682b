"""``MultiSceneImageDataManager``: batches of whole images drawn from many scenes, each process from its own scenes.

3Da-AE trains on whole images (the decoder needs them) of random scenes: an epoch is one shuffled pass over every
training image of every scene, ``images_per_batch`` at a time (3da-ae.md §1.5, batch 32). Cameras carry their
scene's index (``metadata["scene_index"]``, from ``srn-data``), and are its one carrier: batches hold the images and
their cameras, and the model reads each image's scene from its camera. Under several processes each owns a contiguous,
disjoint range of scenes (:func:`~nerfstudio_methods.multiscene.scene_range_of_rank`) and only loads, trains and
evaluates those; all processes run the same number of steps per epoch (computed from the total image count).
The training images are kept in memory as uint8.
"""

from __future__ import annotations

import math
import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Dict, List, Literal, Tuple, Type

import torch
from nerfstudio.cameras.cameras import Cameras
from nerfstudio.data.datamanagers.full_images_datamanager import FullImageDatamanager, FullImageDatamanagerConfig
from nerfstudio.data.dataparsers.base_dataparser import DataParserConfig
from nerfstudio.data.datasets.base_dataset import InputDataset
from nerfstudio.utils.rich_utils import CONSOLE
from rich.progress import track
from torch import Tensor

from dataparsers.srn import SrnDataParserConfig
from nerfstudio_methods.multiscene import process_rank_and_count, scene_indices_of_cameras, scene_range_of_rank


def scene_of_images(dataset: InputDataset) -> Tensor:
    """The scene index of every image of a dataset, from its cameras (0 for single-scene data)."""
    return scene_indices_of_cameras(dataset.cameras).cpu()


def load_uint8_images(dataset: InputDataset, indices: List[int], what: str) -> Tensor:
    """``[len(indices), H, W, 3]`` uint8 images (alpha composited on the dataset's background), with progress."""

    def load(index: int) -> Tensor:
        image = dataset.get_image_float32(index)[..., :3]
        return (image * 255).round().clamp(0, 255).to(torch.uint8)

    with ThreadPoolExecutor(max_workers=2) as pool:
        images = list(track(pool.map(load, indices), total=len(indices), description=f"Loading {what}", transient=True))
    return torch.stack(images) if images else torch.zeros(0, 1, 1, 3, dtype=torch.uint8)


@dataclass
class MultiSceneImageDataManagerConfig(FullImageDatamanagerConfig):
    """Whole images of many scenes (see the module doc)."""

    _target: Type = field(default_factory=lambda: MultiSceneImageDataManager)
    dataparser: DataParserConfig = field(default_factory=SrnDataParserConfig)
    images_per_batch: int = 32
    """Images per step and process (3Da-AE's batch size)."""
    cache_images: Literal["cpu", "gpu"] = "cpu"
    cache_images_type: Literal["uint8", "float32"] = "uint8"


class MultiSceneImageDataManager(FullImageDatamanager):
    """See the module doc."""

    config: MultiSceneImageDataManagerConfig

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.rank, self.world_size = process_rank_and_count()
        self.num_scenes = int(self.train_dataset.metadata.get("num_scenes", 1))
        self.owned_scenes = scene_range_of_rank(self.num_scenes, self.world_size, self.rank)
        train_scenes = scene_of_images(self.train_dataset)
        eval_scenes = scene_of_images(self.eval_dataset)
        self.train_indices = [i for i, s in enumerate(train_scenes.tolist()) if s in self.owned_scenes]
        self.eval_indices = [i for i, s in enumerate(eval_scenes.tolist()) if s in self.owned_scenes]
        if not self.train_indices:
            raise ValueError(f"process {self.rank} owns no training images (scenes {self.owned_scenes})")
        # Same number of steps per epoch on every process: the total image count over all processes' batches.
        total = len(train_scenes)
        self.steps_per_epoch = max(1, math.ceil(total / (self.world_size * self.config.images_per_batch)))
        self._random = random.Random(self.config.train_cameras_sampling_seed + self.rank)
        self._order: List[int] = []
        self.train_images = torch.zeros(0, 1, 1, 3, dtype=torch.uint8)
        if self.world_size > 1:
            CONSOLE.print(
                f"3Da-AE: process {self.rank} of {self.world_size} trains scenes "
                f"{self.owned_scenes.start}-{self.owned_scenes.stop - 1} ({len(self.train_indices)} images)"
            )

    def setup_train(self) -> None:
        """Nothing to start: the training images are loaded on first use (:meth:`load_training_images`)."""

    def load_training_images(self) -> None:
        """Load this process's training images (uint8, in memory)."""
        positions = self.train_indices
        images = load_uint8_images(self.train_dataset, positions, "training images")
        self.train_images = images
        self._row_of_index = {index: row for row, index in enumerate(positions)}

    def image_size(self) -> Tuple[int, int]:
        cameras = self.train_dataset.cameras
        return int(cameras.height[0]), int(cameras.width[0])

    def get_train_rays_per_batch(self) -> int:
        height, width = self.image_size()
        return self.config.images_per_batch * height * width

    def _next_indices(self, count: int) -> List[int]:
        chosen: List[int] = []
        while len(chosen) < count:
            if not self._order:
                self._order = list(self.train_indices)
                self._random.shuffle(self._order)
            chosen.append(self._order.pop())
        return chosen

    def next_train(self, step: int) -> Tuple[Cameras, Dict]:  # type: ignore[override]
        """``images_per_batch`` training images of this process's scenes: cameras ``[B]`` and a batch with
        ``image`` ``[B, H, W, 3]`` in [0, 1] and ``image_idx`` ``[B]`` (each image's scene is its camera's)."""
        if not hasattr(self, "_row_of_index"):
            self.load_training_images()
        indices = self._next_indices(self.config.images_per_batch)
        rows = torch.tensor([self._row_of_index[i] for i in indices])
        index_tensor = torch.tensor(indices)
        cameras = self.train_dataset.cameras[index_tensor].to(self.device)
        batch = {
            "image": self.train_images[rows].to(self.device).float() / 255.0,
            "image_idx": index_tensor.to(self.device),
        }
        return cameras, batch

    def sample_training_images(self, count: int) -> Tensor:
        """Up to ``count`` training images ``[n, 3, H, W]`` in [0, 1] (evenly spread), e.g. to calibrate latents."""
        if not hasattr(self, "_row_of_index"):
            self.load_training_images()
        rows = torch.linspace(0, len(self.train_images) - 1, min(count, len(self.train_images))).round().long()
        return self.train_images[rows].permute(0, 3, 1, 2).float() / 255.0

    def _held_out_image(self, index: int) -> Tensor:
        return self.eval_dataset.get_image_float32(index)[..., :3].to(self.device)

    def _random_held_out_indices(self, count: int) -> List[int]:
        """Held-out images of this process's scenes (of all scenes when it owns none), drawn with replacement."""
        pool = self.eval_indices or list(range(len(self.eval_dataset)))
        return [pool[self._random.randrange(len(pool))] for _ in range(min(count, len(pool)))]

    def next_eval_batch(self, step: int) -> Tuple[Cameras, Dict]:
        """A batch of held-out images of this process's scenes, shaped like :meth:`next_train`'s."""
        chosen = self._random_held_out_indices(self.config.images_per_batch)
        images = [self._held_out_image(i) for i in chosen]
        index_tensor = torch.tensor(chosen)
        batch = {
            "image": torch.stack(images).to(self.device),
            "image_idx": index_tensor.to(self.device),
        }
        return self.eval_dataset.cameras[index_tensor].to(self.device), batch

    def next_eval_image(self, step: int) -> Tuple[Cameras, Dict]:
        """One held-out image of this process's scenes (nerfstudio's eval image during training)."""
        (index,) = self._random_held_out_indices(1)
        camera = self.eval_dataset.cameras[index : index + 1].to(self.device)
        return camera, {"image": self._held_out_image(index), "image_idx": index}

    @property
    def fixed_indices_eval_dataloader(self) -> List[Tuple[Cameras, Dict]]:  # type: ignore[override]
        """Every held-out image with its camera (``ns-eval``); loaded here, without nerfstudio's pinned-memory
        cache (which needs CUDA)."""
        items = []
        for index in range(len(self.eval_dataset)):
            camera = self.eval_dataset.cameras[index : index + 1].to(self.device)
            items.append((camera, {"image": self._held_out_image(index), "image_idx": index}))
        return items
