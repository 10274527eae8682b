"""Data managers that draw each training batch from the soft-mining population (brief A5).

Why the population lives in the main process
    nerfacto's ``ParallelDataManager`` samples pixels and casts rays in worker processes, a few batches ahead of the
    model, through a queue. Soft mining cannot be prefetched: the positions of step ``t + 1`` are step ``t``'s
    positions moved by the gradient of step ``t``'s loss. So the soft-mining data managers keep every training image
    cached on the training device (loaded once, as ``ParallelDataManager``'s workers do), keep the population there
    too, and build each batch in the main process: a bilinear colour lookup and ``Cameras.generate_rays`` on ``N``
    coordinates, both a few vectorised tensor operations, small next to a NeRF step. No worker process is started
    (``num_processes`` and ``queue_size`` are unused), which also leaves their CPU cores to the model.

Two classes, one per base data manager, with the same behaviour (:class:`SoftMiningDataManagerMixin`):

- :class:`SoftMiningDataManager` (``ParallelDataManager``: nerfacto, tensorf, ...);
- :class:`SoftMiningVanillaDataManager` (``VanillaDataManager``: vanilla-nerf, instant-ngp, mip-NeRF, ...).

Evaluation batches and images come from the base class unchanged.

Each training batch holds, for the ``N = train_num_rays_per_batch`` samples:

- ``"image"``: the target colour at the sample, bilinear between pixel centres (differentiable in the position when
  ``drift_through_target``);
- ``"indices"``: ``(camera, row, column)`` of the pixel holding the sample (integer, as nerfstudio's samplers);
- other per-pixel data of the dataset (e.g. ``"mask"``, depth): the value of that pixel;
- ``"soft_mining_coords"``: the ``[N, 2]`` pixel coordinates ``(y, x)`` the rays go through, a leaf tensor that
  requires grad, so the backward pass leaves ``d loss / d position`` in its ``.grad`` for the Langevin step.
"""

from __future__ import annotations

import concurrent.futures
from dataclasses import dataclass, field
from typing import Dict, Tuple, Type

import torch
from nerfstudio.cameras.cameras import Cameras
from nerfstudio.cameras.rays import RayBundle
from nerfstudio.data.datamanagers.base_datamanager import VanillaDataManager, VanillaDataManagerConfig
from nerfstudio.data.datamanagers.parallel_datamanager import ParallelDataManager, ParallelDataManagerConfig
from nerfstudio.data.datasets.base_dataset import InputDataset
from nerfstudio.data.utils.nerfstudio_collate import nerfstudio_collate
from nerfstudio.utils.rich_utils import CONSOLE
from torch import Tensor

from nerfstudio_methods.soft_mining.sampler import (
    SoftMiningSampler,
    SoftMiningSamplerConfig,
    bilinear_lookup,
    sobel_edge_pdf,
)

COORDS_KEY = "soft_mining_coords"
"""Batch key of the ``[N, 2]`` pixel coordinates (a leaf that requires grad) the training rays go through."""


def load_training_images(dataset: InputDataset, device: torch.device | str) -> Dict[str, Tensor]:
    """Every image of ``dataset`` (and its other per-pixel data), collated into ``[M, H, W, ...]`` tensors on
    ``device``; ``"image_idx"`` is ``[M]``. Images are read by a thread pool, as ``ParallelDataManager`` does."""
    heights, widths = dataset.cameras.height.flatten(), dataset.cameras.width.flatten()
    if bool((heights != heights[0]).any() or (widths != widths[0]).any()):
        raise ValueError(
            "soft mining needs training images of one resolution (its population is a tensor over [M, H, W]); "
            f"this dataset has heights {sorted(set(heights.tolist()))} and widths {sorted(set(widths.tolist()))}"
        )
    with concurrent.futures.ThreadPoolExecutor() as executor:
        items = list(executor.map(dataset.__getitem__, range(len(dataset))))
    batch = nerfstudio_collate(items)
    return {key: value.to(device) for key, value in batch.items() if isinstance(value, Tensor)}


class SoftMiningDataManagerMixin:
    """Training batches from a :class:`SoftMiningSampler` over cached images (see module doc).

    Expects the host class to provide ``config.soft_mining``, ``config.train_num_rays_per_batch``, ``train_dataset``
    and ``device``, as nerfstudio's ``VanillaDataManager`` and ``ParallelDataManager`` do.
    """

    config: SoftMiningDataManagerConfig | SoftMiningVanillaDataManagerConfig
    train_dataset: InputDataset
    device: torch.device | str
    soft_mining_sampler: SoftMiningSampler
    train_images: Dict[str, Tensor]
    train_cameras: Cameras
    uniform_sampling: bool = False
    """Draw every batch uniformly (:meth:`SoftMiningSampler.uniform_batch`) instead of from the population: the
    pipeline's ``sampler="uniform"`` baseline."""

    def setup_soft_mining(self) -> None:
        """Cache the training images on the device and start the population (uniform over the images)."""
        CONSOLE.print("Soft mining: caching the training images...")
        self.train_images = load_training_images(self.train_dataset, self.device)
        self.train_cameras = self.train_dataset.cameras.to(self.device)
        images = self.train_images["image"]
        mask = self.train_images.get("mask")
        config = self.config.soft_mining
        # The population's first draw must not advance the global RNG: the model is built after the data manager,
        # so a run with soft mining would otherwise start from other weights than the same run with uniform pixels.
        device = torch.device(self.device)
        with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
            self.soft_mining_sampler = config.setup(
                num_samples=self.config.train_num_rays_per_batch,
                image_size=(images.shape[1], images.shape[2]),
                num_images=images.shape[0],
                edge_pdf=sobel_edge_pdf(images) if config.reinit_distribution == "edge" else None,
                mask=None if mask is None else mask[..., 0],
                device=self.device,
            )
        CONSOLE.print(
            f"Soft mining: {self.config.train_num_rays_per_batch} samples over {images.shape[0]} images of "
            f"{images.shape[2]}x{images.shape[1]} px"
        )

    def next_train(self, step: int) -> Tuple[RayBundle, Dict]:
        """Rays through the population's current positions and the targets there (see module doc)."""
        self.train_count += 1  # type: ignore[attr-defined]
        sampler = self.soft_mining_sampler
        config = self.config.soft_mining
        if self.uniform_sampling:
            image_ids, positions = sampler.uniform_batch()
            drifts = False
        else:
            image_ids, positions = sampler.image_ids, sampler.positions
            # Without drift the gradient at the positions is never used: skip the backward pass into them (it made
            # a step 14% dearer on one CPU thread with the torch hash grid: benchmarks/soft_mining_step_cost.py).
            drifts = config.langevin_drift != 0.0
        coords = sampler.pixel_coords(positions).detach().requires_grad_(drifts)
        rows, cols = sampler.pixel_indices(positions).unbind(-1)
        through_target = drifts and config.drift_through_target and config.continuous_positions
        target = bilinear_lookup(self.train_images["image"], image_ids, coords if through_target else coords.detach())
        camera_indices = self.train_images["image_idx"][image_ids].long()
        batch: Dict = {
            key: value[image_ids, rows, cols]
            for key, value in self.train_images.items()
            if key not in ("image", "image_idx") and value.dim() >= 3
        }
        batch["image"] = target
        batch["indices"] = torch.stack([camera_indices, rows, cols], -1)
        batch[COORDS_KEY] = coords
        ray_bundle = self.train_cameras.generate_rays(camera_indices=camera_indices[:, None], coords=coords)
        return ray_bundle, batch

    def soft_mining_step(self, log_error_grad: Tensor | None, error: Tensor) -> Dict[str, int]:
        """Advance the population by one Langevin step (:meth:`SoftMiningSampler.step`)."""
        return self.soft_mining_sampler.step(log_error_grad, error)

    def get_train_rays_per_batch(self) -> int:
        return self.soft_mining_sampler.num_samples


@dataclass
class SoftMiningDataManagerConfig(ParallelDataManagerConfig):
    """nerfacto's data manager with soft-mining training batches (no worker processes; see module doc)."""

    _target: Type = field(default_factory=lambda: SoftMiningDataManager)
    soft_mining: SoftMiningSamplerConfig = field(default_factory=SoftMiningSamplerConfig)
    """The Langevin population's constants."""


class SoftMiningDataManager(SoftMiningDataManagerMixin, ParallelDataManager):
    """``ParallelDataManager`` whose training batches come from the soft-mining population in the main process."""

    config: SoftMiningDataManagerConfig

    def setup_train(self) -> None:
        self.train_pixel_sampler = None
        self.setup_soft_mining()


@dataclass
class SoftMiningVanillaDataManagerConfig(VanillaDataManagerConfig):
    """vanilla-nerf's / instant-ngp's data manager with soft-mining training batches."""

    _target: Type = field(default_factory=lambda: SoftMiningVanillaDataManager)
    soft_mining: SoftMiningSamplerConfig = field(default_factory=SoftMiningSamplerConfig)
    """The Langevin population's constants."""


class SoftMiningVanillaDataManager(SoftMiningDataManagerMixin, VanillaDataManager):
    """``VanillaDataManager`` whose training batches come from the soft-mining population."""

    config: SoftMiningVanillaDataManagerConfig

    def setup_train(self) -> None:
        self.train_pixel_sampler = None
        self.setup_soft_mining()
