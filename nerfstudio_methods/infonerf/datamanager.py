"""InfoNeRF's extra training rays for any nerfstudio data manager (brief B1, B2, B7).

Batch layout, in this order (the losses rely on it)::

    [ seen (train_num_rays_per_batch) | unseen (num_unseen_rays) | near-seen | near-unseen ]

- *seen*: pixels of the training images, with their colours (``batch["image"]``), drawn by the base data manager;
  the only rays with an RGB loss.
- *unseen*: ``num_unseen_rays`` random pixels of ONE camera pose per step that is not a training view, no colours.
  Where the pose comes from is ``unseen_pose_source``:

  - ``"orbit"`` (default, clean): a random camera on the training cameras' orbit looking at the world origin
    (:func:`.poses.random_orbit_poses`); only training poses are used.
  - ``"perturb"`` (clean): a training pose rotated about the origin by up to ``perturb_max_deg`` per axis.
  - ``"all-poses"`` (faithful): one of all loaded poses, as the released code does (``np.random.choice(len(images))``).
    For Blender that is 100 train + val[::8] + test[::8] poses, i.e. it *includes the test poses* (no test colours
    are used, but it is pose leakage). The pool is the dataparser's ``metadata["unseen_pose_pool"]`` when it
    provides one (:mod:`.blender` does), else the distinct poses of its train, val and test splits (for dtu-data's
    "infonerf" split: all 49 views, as the released code).

- *near-seen*, *near-unseen* (only with ``neighbour_rays``): the same pixels seen from neighbour cameras, each camera
  rotated about the world origin by ``Rx Ry Rz`` with angles ~ U[-neighbour_max_deg, neighbour_max_deg]; one rotation
  per image per step (``GetNearC2W``, ``rot_from_origin``).

``batch`` also carries ``n_seen``, ``n_unseen``, ``n_near`` (ints), ``neighbour_rotations`` (``[n_near, 3, 3]``) and
``unseen_camera_to_world`` (``[3, 4]``, when there are unseen rays).

The unseen and neighbour rays get camera index 0 (unseen) or their source image's index (near-seen): valid indices.
A model with per-camera parameters (nerfacto's appearance embedding, a camera optimiser) would apply image 0's to
the unseen rays, so the InfoNeRF presets turn those off.

Three data managers, one behaviour (:class:`InfoNeRFDataManagerMixin`, which appends the extra rays to whatever
``next_train`` of the base class returns):

- :class:`InfoNeRFDataManager` (``VanillaDataManager``; ``infonerf``): seen rays drawn as nerf-pytorch does, all from
  one image per step, from the image centre for ``precrop_iters`` steps;
- :class:`InfoNeRFParallelDataManager` (``ParallelDataManager``; nerfacto's, ``infonerf-nerfacto``): seen rays from
  nerfstudio's worker processes, unchanged;
- your own: ``class MyDataManager(InfoNeRFDataManagerMixin, SomeDataManager)`` with a config that mixes in
  :class:`InfoNeRFRaysConfig`. The base must return rays whose ``batch["indices"]`` holds ``(camera, row, column)``
  per ray (nerfstudio's pixel samplers do) and have ``train_dataset`` and ``device``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Literal, Tuple, Type

import torch
from nerfstudio.cameras.cameras import Cameras
from nerfstudio.cameras.rays import RayBundle
from nerfstudio.data.datamanagers.base_datamanager import VanillaDataManager, VanillaDataManagerConfig
from nerfstudio.data.datamanagers.parallel_datamanager import ParallelDataManager, ParallelDataManagerConfig
from nerfstudio.data.dataparsers.base_dataparser import DataParser, DataparserOutputs
from nerfstudio.data.datasets.base_dataset import InputDataset
from nerfstudio.utils.rich_utils import CONSOLE
from torch import Tensor

from nerfstudio_methods.infonerf.poses import (
    random_neighbour_rotations,
    random_orbit_poses,
    random_perturbed_poses,
    rotate_about_origin,
)
from nerfstudio_methods.rays import UNSEEN_POSE_POOL_KEY, cameras_with_poses, cat_cameras, cat_ray_bundles

UnseenPoseSource = Literal["orbit", "perturb", "all-poses"]


@dataclass
class InfoNeRFRaysConfig:
    """Options of InfoNeRF's extra rays; mix into a data manager config."""

    num_unseen_rays: int = 1024
    """Rays cast from an unseen pose each step, for the entropy loss (N_entropy); 0 casts none."""
    unseen_pose_source: UnseenPoseSource = "orbit"
    """Where unseen poses come from: "orbit"/"perturb" use training poses only (clean); "all-poses" draws from every
    loaded pose including the test poses, as the released code does (faithful, pose leakage)."""
    orbit_elevation_margin_deg: float = 10.0
    """"orbit": widen the training cameras' elevation range by this much on each side."""
    perturb_max_deg: float = 30.0
    """"perturb": per-axis bound of the rotation about the origin applied to a training pose."""
    neighbour_rays: bool = False
    """Also cast every seen and unseen ray from a slightly rotated neighbour camera (needed by the KL loss)."""
    neighbour_max_deg: float = 5.0
    """Per-axis bound (degrees) of the neighbour camera's rotation about the world origin (``near_c2w_rot``)."""


@dataclass
class InfoNeRFDataManagerConfig(VanillaDataManagerConfig, InfoNeRFRaysConfig):
    """Seen rays as in nerf-pytorch (vanilla data manager) plus InfoNeRF's unseen and neighbour rays."""

    _target: Type = field(default_factory=lambda: InfoNeRFDataManager)
    seen_rays_from_one_image: bool = True
    """Draw all seen rays of a step from one random training image (nerf-pytorch ``no_batching``, as InfoNeRF);
    False draws each ray from a random image (nerfstudio's pixel sampling)."""
    precrop_iters: int = 0
    """Steps during which pixels are drawn from the image centre only (nerf-pytorch ``precrop_iters``)."""
    precrop_frac: float = 0.5
    """Fraction of the image height and width kept during the pre-crop steps."""


@dataclass
class InfoNeRFParallelDataManagerConfig(ParallelDataManagerConfig, InfoNeRFRaysConfig):
    """nerfacto's data manager (seen rays from worker processes) plus InfoNeRF's unseen and neighbour rays."""

    _target: Type = field(default_factory=lambda: InfoNeRFParallelDataManager)


def sample_pixels(
    num: int, height: int, width: int, crop_frac: float | None = None, generator: torch.Generator | None = None
) -> Tuple[Tensor, Tensor]:
    """Random pixel rows and columns, optionally inside the central ``crop_frac`` window (nerf-pytorch's precrop)."""
    y_low, y_high, x_low, x_high = 0, height, 0, width
    if crop_frac is not None:
        half_h, half_w = int(height // 2 * crop_frac), int(width // 2 * crop_frac)
        if half_h > 0 and half_w > 0:
            y_low, y_high = height // 2 - half_h, height // 2 + half_h
            x_low, x_high = width // 2 - half_w, width // 2 + half_w
    y = torch.randint(y_low, y_high, (num,), generator=generator)
    x = torch.randint(x_low, x_high, (num,), generator=generator)
    return y, x


def unique_poses(cameras: Cameras) -> Cameras:
    """``cameras`` without repeated poses (splits may share views, e.g. val = test): the first of each is kept."""
    poses = cameras.camera_to_worlds.reshape(len(cameras), -1)
    distance = torch.cdist(poses.double(), poses.double())
    earlier_twin = (distance < 1e-6).tril(diagonal=-1).any(dim=1)
    return cameras[torch.nonzero(~earlier_twin)[:, 0]]


class InfoNeRFDataManagerMixin:
    """Appends InfoNeRF's unseen and neighbour rays to the base data manager's training rays (see module doc).

    The host class provides ``config`` (with :class:`InfoNeRFRaysConfig`'s fields), ``train_dataset``, ``device``,
    ``dataparser`` and ``train_dataparser_outputs``, as nerfstudio's vanilla and parallel data managers do.
    """

    config: InfoNeRFDataManagerConfig | InfoNeRFParallelDataManagerConfig
    train_dataset: InputDataset
    device: torch.device | str
    dataparser: DataParser
    train_dataparser_outputs: DataparserOutputs
    _unseen_pool: Cameras | None = None
    _train_cameras: Cameras | None = None

    @property
    def train_cameras(self) -> Cameras:
        """The training cameras, on the data manager's device."""
        if self._train_cameras is None:
            self._train_cameras = self.train_dataset.cameras.to(self.device)
        return self._train_cameras

    def unseen_pool(self) -> Cameras:
        """All loaded poses for the faithful "all-poses" mode (built on first use)."""
        if self._unseen_pool is None:
            pool = self.train_dataparser_outputs.metadata.get(UNSEEN_POSE_POOL_KEY)
            if not isinstance(pool, Cameras):
                camera_sets = [self.train_dataparser_outputs.cameras]
                for split in ("val", "test"):
                    try:
                        camera_sets.append(self.dataparser.get_dataparser_outputs(split=split).cameras)
                    except Exception as err:  # noqa: BLE001 - a dataparser without this split
                        CONSOLE.print(f"[yellow]InfoNeRF all-poses: no {split!r} split ({err}); not in the pool")
                pool = unique_poses(cat_cameras(camera_sets))
            self._unseen_pool = pool.to(self.device)
            CONSOLE.print(
                f"InfoNeRF: unseen rays come from all {len(self._unseen_pool)} loaded poses, held-out poses included"
            )
        return self._unseen_pool

    def sample_unseen_camera(self) -> Cameras:
        """One camera (pose and intrinsics) for this step's unseen rays."""
        source = self.config.unseen_pose_source
        if source == "all-poses":
            pool = self.unseen_pool()
            index = int(torch.randint(len(pool), ()))
            return pool[index : index + 1]
        train = self.train_cameras
        index = int(torch.randint(len(train), ()))
        template = train[index : index + 1]
        if source == "orbit":
            pose = random_orbit_poses(1, train.camera_to_worlds, self.config.orbit_elevation_margin_deg)
        elif source == "perturb":
            pose = random_perturbed_poses(1, train.camera_to_worlds, self.config.perturb_max_deg)
        else:
            raise ValueError(f"unknown unseen_pose_source {source!r}")
        return cameras_with_poses(template, pose)

    def add_infonerf_rays(self, seen: RayBundle, batch: Dict, crop_frac: float | None = None) -> Tuple[RayBundle, Dict]:
        """``seen`` followed by this step's unseen and neighbour rays; ``batch`` gains the ray counts (module doc).

        ``batch["indices"]`` gives each seen ray's ``(camera, row, column)``; its neighbour goes through the same
        pixel centre. ``crop_frac`` keeps the unseen pixels inside the image's central window (pre-crop steps).
        """
        n_seen = len(seen)
        camera_index = batch["indices"][:, 0].long().cpu()
        seen_coords = batch["indices"][:, 1:].to(self.device, torch.float32) + 0.5
        bundles = [seen.flatten()]
        batch.update(n_seen=n_seen, n_unseen=0, n_near=0)

        # unseen rays
        n_unseen = self.config.num_unseen_rays
        unseen_camera, unseen_coords = None, None
        zeros = torch.zeros((n_unseen, 1), dtype=torch.long, device=self.device)
        if n_unseen > 0:
            unseen_camera = self.sample_unseen_camera().to(self.device)
            unseen_height, unseen_width = int(unseen_camera.height[0, 0]), int(unseen_camera.width[0, 0])
            y_unseen, x_unseen = sample_pixels(n_unseen, unseen_height, unseen_width, crop_frac)
            unseen_coords = torch.stack([y_unseen, x_unseen], dim=-1).to(self.device, torch.float32) + 0.5
            bundles.append(unseen_camera.generate_rays(camera_indices=zeros, coords=unseen_coords))
            batch["n_unseen"] = n_unseen
            batch["unseen_camera_to_world"] = unseen_camera.camera_to_worlds[0]

        # neighbour rays: same pixels, cameras rotated about the world origin (one rotation per image)
        if self.config.neighbour_rays:
            train = self.train_cameras
            rotations = random_neighbour_rotations(len(train) + 1, self.config.neighbour_max_deg, device=self.device)
            near_train = cameras_with_poses(train, rotate_about_origin(train.camera_to_worlds, rotations[:-1]))
            bundles.append(
                near_train.generate_rays(camera_indices=camera_index.to(self.device)[:, None], coords=seen_coords)
            )
            near_rotations = [rotations[camera_index.to(self.device)]]
            if unseen_camera is not None and unseen_coords is not None:
                near_unseen_camera = cameras_with_poses(
                    unseen_camera, rotate_about_origin(unseen_camera.camera_to_worlds, rotations[-1:])
                )
                bundles.append(near_unseen_camera.generate_rays(camera_indices=zeros, coords=unseen_coords))
                near_rotations.append(rotations[-1:].expand(n_unseen, 3, 3))
            batch["n_near"] = n_seen + batch["n_unseen"]
            batch["neighbour_rotations"] = torch.cat(near_rotations)
        return cat_ray_bundles(bundles), batch

    def next_train(self, step: int) -> Tuple[RayBundle, Dict]:
        """The base class's training rays followed by InfoNeRF's (see module doc)."""
        seen, batch = super().next_train(step)  # type: ignore[misc]
        return self.add_infonerf_rays(seen, batch)


class InfoNeRFDataManager(InfoNeRFDataManagerMixin, VanillaDataManager):
    """Vanilla data manager whose training batches add InfoNeRF's unseen and neighbour rays (see module doc)."""

    config: InfoNeRFDataManagerConfig

    def next_train(self, step: int) -> Tuple[RayBundle, Dict]:
        """[seen | unseen | near-seen | near-unseen] rays and the seen pixels' data (see module doc)."""
        self.train_count += 1
        image_batch = next(self.iter_train_image_dataloader)
        assert isinstance(image_batch, dict)
        images = image_batch["image"]
        if not isinstance(images, Tensor):
            raise ValueError("InfoNeRF needs training images of one resolution")
        num_images, height, width = images.shape[:3]
        crop = self.config.precrop_frac if step < self.config.precrop_iters else None

        # seen rays, as nerf-pytorch draws them (one image per step, pre-crop)
        n_seen = self.config.train_num_rays_per_batch
        if self.config.seen_rays_from_one_image:
            image = torch.full((n_seen,), int(torch.randint(num_images, ())), dtype=torch.long)
        else:
            image = torch.randint(num_images, (n_seen,))
        y, x = sample_pixels(n_seen, height, width, crop)
        batch: Dict = {
            key: value[image, y, x] for key, value in image_batch.items() if key != "image_idx" and value is not None
        }
        camera_index = image_batch["image_idx"].cpu()[image].long()
        batch["indices"] = torch.stack([camera_index, y, x], dim=-1)
        seen = self.train_ray_generator(batch["indices"])
        return self.add_infonerf_rays(seen, batch, crop)


class InfoNeRFParallelDataManager(InfoNeRFDataManagerMixin, ParallelDataManager):
    """nerfacto's ``ParallelDataManager`` whose training batches add InfoNeRF's unseen and neighbour rays."""

    config: InfoNeRFParallelDataManagerConfig
