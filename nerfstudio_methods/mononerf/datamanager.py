"""``MonoNeRFDataManager``: each step, one frame per scene, half of its rays on static and half on moving pixels.

MonoNeRF draws every scene's rays from a single frame per step (its features, neighbour poses and depth
normalisation are per frame), with ``N / 2`` rays on static pixels and up to ``N / 2`` on moving ones, chosen by the
motion mask (mononerf.md §1 "Schedule"; ``N = train_num_rays_per_batch`` divided across scenes). The videos are in
memory already (the ``dynamic-scene-data`` parser's :class:`~dataparsers.dynamic_scene.SceneVideo`), so batches are
built directly from them on the training device; no image loader is started for training. Evaluation is
nerfstudio's (``ns-eval`` and ``ns-render dataset`` read the eval split's images).

Frames: with the unseen-frames setup only the first ``supervised_frames`` frames of a video are training frames.
The static stage (the first ``static_steps`` steps, told by the pipeline) may use every frame, as the released code
does (``static_stage_all_frames``), but only the static pixels of a scene with motion masks.

A training batch holds, per ray: ``image`` (RGB), ``pixel_uv`` (the pixel centre, x + 0.5 and y + 0.5),
``frame_index``, ``scene_index``, ``is_dynamic`` (motion mask; False without masks), ``disparity``,
``flow_forward`` / ``flow_backward`` (pixels) and their consistency masks, and per-ray flags ``has_motion_mask``,
``has_disparity``, ``has_flow`` for scenes whose optional parts are missing (their values are zeros then).
``frame_index`` and ``scene_index`` say where the targets were read; the model renders and supervises each ray at the
frame and scene its rays carry (``times``, converted by :mod:`nerfstudio_methods.timeline`, and
``metadata["scene_index"]``, both from the video's cameras), which are the same values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple, Type

import torch
from nerfstudio.cameras.rays import RayBundle
from nerfstudio.data.datamanagers.base_datamanager import VanillaDataManager, VanillaDataManagerConfig
from nerfstudio.utils.rich_utils import CONSOLE
from torch import Tensor

from dataparsers.dynamic_scene import DynamicSceneDataset, SceneVideo
from nerfstudio_methods.multiscene import rays_per_scene
from nerfstudio_methods.rays import cat_ray_bundles


@dataclass
class MonoNeRFDataManagerConfig(VanillaDataManagerConfig):
    """Rays from one frame per scene per step (see the module doc)."""

    _target: Type = field(default_factory=lambda: MonoNeRFDataManager)
    train_num_rays_per_batch: int = 1024
    """Rays per step over all scenes (``N_rand``), divided evenly across scenes."""
    dynamic_ray_fraction: float = 0.5
    """At most this fraction of a scene's rays lies on moving pixels (the rest on static ones)."""
    static_stage_all_frames: bool = True
    """The static stage also trains on the static pixels of frames after ``--training-frames`` (released unseen-frames
    script); scenes without motion masks keep to the training frames."""


def _frame_choice(video: SceneVideo, all_frames: bool) -> int:
    count = video.num_frames if all_frames else video.supervised_frames
    return int(torch.randint(count, (1,)))


def _pick(pool: Tensor, count: int) -> Tensor:
    """``count`` entries of ``pool`` drawn uniformly (without replacement when the pool is large enough)."""
    if count <= 0 or pool.numel() == 0:
        return pool[:0]
    if pool.numel() >= count:
        return pool[torch.randperm(pool.numel(), device="cpu")[:count].to(pool.device)]
    return pool[torch.randint(pool.numel(), (count,), device="cpu").to(pool.device)]


class MonoNeRFDataManager(VanillaDataManager[DynamicSceneDataset]):
    """See the module doc."""

    config: MonoNeRFDataManagerConfig

    def __init__(self, *args, **kwargs) -> None:
        self.static_steps = 0
        super().__init__(*args, **kwargs)

    @property
    def scenes(self) -> List[SceneVideo]:
        return list(self.train_dataparser_outputs.metadata["scenes"])

    def setup_train(self) -> None:
        """Keep the videos on the training device; no image loader or pixel sampler is needed."""
        self.videos = [video.to(self.device) for video in self.scenes]
        self.split = rays_per_scene(self.config.train_num_rays_per_batch, len(self.videos))
        CONSOLE.print(
            f"MonoNeRF: {len(self.videos)} scene(s), {self.split} rays per step from one frame of each"
            f" (<= {self.config.dynamic_ray_fraction:.0%} on moving pixels)"
        )

    def get_train_rays_per_batch(self) -> int:
        return self.config.train_num_rays_per_batch

    def next_train(self, step: int) -> Tuple[RayBundle, Dict]:
        self.train_count += 1
        bundles, batches = [], []
        static_stage = step < self.static_steps
        for scene, video in enumerate(self.videos):
            # Without motion masks every pixel counts as static, so the static stage would fit the unseen frames'
            # moving content too: then it keeps to the training frames (derived masks cover only those).
            all_frames = (
                static_stage
                and self.config.static_stage_all_frames
                and video.motion_mask is not None
                and not video.motion_mask_derived
            )
            frame = _frame_choice(video, all_frames)
            bundle, batch = self.rays_of_frame(scene, video, frame, self.split[scene])
            bundles.append(bundle)
            batches.append(batch)
        merged = {key: torch.cat([batch[key] for batch in batches]) for key in batches[0]}
        return cat_ray_bundles(bundles), merged

    def rays_of_frame(
        self, scene: int, video: SceneVideo, frame: int, count: int
    ) -> Tuple[RayBundle, Dict[str, Tensor]]:
        """``count`` rays of ``frame`` of ``video`` (on the training device): static and moving pixels by the motion
        mask, with every per-pixel target."""
        images = video.images
        height, width = images.shape[1:3]
        motion = video.motion_mask
        if motion is None:
            pixels = _pick(torch.arange(height * width, device=images.device), count)
        else:
            moving = motion[frame].reshape(-1)
            dynamic_pool = torch.nonzero(moving)[:, 0]
            static_pool = torch.nonzero(~moving)[:, 0]
            num_dynamic = min(int(count * self.config.dynamic_ray_fraction), dynamic_pool.numel())
            if static_pool.numel() == 0:
                num_dynamic = count
            pixels = torch.cat([_pick(static_pool, count - num_dynamic), _pick(dynamic_pool, num_dynamic)])
        rows, columns = pixels // width, pixels % width
        coords = torch.stack([rows, columns], dim=-1).float() + 0.5
        frames = torch.full((pixels.numel(), 1), frame, dtype=torch.long, device=self.device)
        bundle = video.cameras.generate_rays(camera_indices=frames, coords=coords)
        ones = torch.ones(pixels.numel(), dtype=torch.bool, device=self.device)

        def per_pixel(key: str, channels: int) -> Tensor:
            value: Optional[Tensor] = getattr(video, key)
            if value is None:
                return torch.zeros((pixels.numel(), channels), device=self.device).squeeze(-1)
            return value[frame].reshape(height * width, -1)[pixels].float().squeeze(-1)

        batch = {
            "image": images[frame].reshape(-1, 3)[pixels],
            "pixel_uv": torch.stack([columns, rows], dim=-1).float() + 0.5,
            "frame_index": frames[:, 0],
            "scene_index": torch.full_like(frames[:, 0], scene),
            "is_dynamic": per_pixel("motion_mask", 1).bool(),
            "has_motion_mask": ones & (motion is not None),
            "disparity": per_pixel("disparity", 1),
            "has_disparity": ones & (video.disparity is not None),
            "flow_forward": per_pixel("flow_forward", 2),
            "flow_forward_mask": per_pixel("flow_forward_mask", 1),
            "flow_backward": per_pixel("flow_backward", 2),
            "flow_backward_mask": per_pixel("flow_backward_mask", 1),
            "has_flow": ones & (video.flow_forward is not None),
        }
        return bundle, batch
