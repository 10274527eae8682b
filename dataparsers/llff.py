"""``llff-data``: forward-facing captures stored as LLFF's ``poses_bounds.npy`` + ``images/`` or ``images_N/``.

nerfstudio 1.1.5 has no reader for this format. The pose pipeline follows NeRF's ``load_llff_data`` (the reference
used by every paper in this collection): rotation columns reordered to OpenGL, the whole scene scaled so that the
nearest depth bound becomes ``1 / bd_factor`` (``bd_factor = 0.75``), then re-centred on the average camera
(``recenter_poses``). Every ``holdout_every``-th image (8, "llffhold") is held out for evaluation.
See ../shared/papers/streamrf.md §3 for the file format.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from jaxtyping import Float
from nerfstudio.cameras.cameras import Cameras, CameraType
from nerfstudio.data.dataparsers.base_dataparser import DataParser, DataParserConfig, DataparserOutputs
from nerfstudio.data.scene_box import SceneBox
from nerfstudio.plugins.registry_dataparser import DataParserSpecification

from dataparsers._common import IMAGE_SUFFIXES, DatasetFormatError, image_size, list_images, require_dir
from dataparsers.poses_bounds import PosesBounds, read_poses_bounds
from nerfstudio_methods import compat
from nerfstudio_methods.rays import NDC_COEFFICIENTS_KEY, ndc_coefficients

# nerfstudio imports this module (an entry point) at the start of every ns-* command: install the fixes first.
compat.install()


def _normalize(vector: Float[np.ndarray, " 3"]) -> Float[np.ndarray, " 3"]:
    return vector / np.linalg.norm(vector)


def average_camera(camera_to_world: Float[np.ndarray, "n 3 4"]) -> Float[np.ndarray, "4 4"]:
    """NeRF's ``poses_avg``: mean centre, mean viewing (back) axis, mean up axis, orthonormalised."""
    centre = camera_to_world[:, :, 3].mean(axis=0)
    back = _normalize(camera_to_world[:, :, 2].sum(axis=0))
    up_hint = camera_to_world[:, :, 1].sum(axis=0)
    right = _normalize(np.cross(up_hint, back))
    up = np.cross(back, right)
    average = np.eye(4)
    average[:3, :] = np.stack([right, up, back, centre], axis=1)
    return average


def normalize_poses(
    camera_to_world: Float[np.ndarray, "n 3 4"],
    near_far: Float[np.ndarray, "n 2"],
    bd_factor: float,
    recenter: bool = True,
    near_percentile: float = 0.0,
) -> tuple[Float[np.ndarray, "n 3 4"], Float[np.ndarray, "n 2"], Float[np.ndarray, "3 4"], float]:
    """NeRF's load_llff_data: scale by 1 / (near * bd_factor), then recenter on the average camera.

    ``near`` is the ``near_percentile``-th percentile of the near bounds: 0 is the minimum (NeRF), 5 is
    DynamicNeRF's ``np.percentile(bds[:, 0], 5)`` (../shared/papers/mononerf.md §3). NeRF scales first and
    recentres on the average of the scaled poses; the two commute (scaling moves the average camera's centre with
    the others and leaves its rotation), so this recentres first.
    Returns the new poses and bounds with nerfstudio's ``dataparser_transform`` and ``dataparser_scale``
    (new = scale * (transform @ old)).
    """
    near = float(np.percentile(near_far[:, 0], near_percentile)) if near_percentile > 0 else float(near_far.min())
    scale = 1.0 / (near * bd_factor)
    transform = np.eye(4)
    if recenter:
        transform = np.linalg.inv(average_camera(camera_to_world))
    homogeneous = np.concatenate(
        [camera_to_world, np.tile([[[0.0, 0.0, 0.0, 1.0]]], (len(camera_to_world), 1, 1))], axis=1
    )
    normalized = (transform @ homogeneous)[:, :3, :]
    normalized[:, :, 3] *= scale
    return normalized, near_far * scale, transform[:3, :], scale


def frustum_scene_box(
    camera_to_world: Float[np.ndarray, "n 3 4"],
    near_far: Float[np.ndarray, "n 2"],
    focal: Float[np.ndarray, " n"],
    width: int,
    height: int,
    margin: float,
) -> SceneBox:
    """Axis-aligned box around every camera centre and each camera's frustum out to its far bound.

    ``margin`` is relative to the box's extent on each axis.
    """
    corners_px = np.array([[0, 0], [width, 0], [0, height], [width, height], [width / 2, height / 2]], dtype=np.float64)
    points = [camera_to_world[:, :, 3]]
    for u, v in corners_px:
        # OpenGL camera: x right, y up, looking down -z; a pixel at depth d sits at d * (x, y, -1).
        direction_cam = np.stack([(u - width / 2) / focal, -(v - height / 2) / focal, -np.ones_like(focal)], axis=-1)
        direction_world = np.einsum("nij,nj->ni", camera_to_world[:, :, :3], direction_cam)
        points.append(camera_to_world[:, :, 3] + direction_world * near_far[:, 1:2])
    stacked = np.concatenate(points, axis=0)
    low, high = stacked.min(axis=0), stacked.max(axis=0)
    pad = (high - low) * margin
    return SceneBox(aabb=torch.from_numpy(np.stack([low - pad, high + pad])).float())


def image_folder_name(downscale_factor: int) -> str:
    """``images`` for full resolution, ``images_N`` for a factor-N downscale (LLFF's ``_minify`` naming)."""
    return "images" if downscale_factor == 1 else f"images_{downscale_factor}"


def _available_factors(data: Path) -> list[int]:
    factors = []
    for child in data.iterdir() if data.is_dir() else []:
        match = re.fullmatch(r"images(?:_(\d+))?", child.name)
        if match and child.is_dir():
            factors.append(int(match.group(1) or 1))
    return sorted(factors)


@dataclass
class LLFFDataParserConfig(DataParserConfig):
    """Forward-facing LLFF data (``poses_bounds.npy`` + ``images_N/``)."""

    _target: type = field(default_factory=lambda: LLFF)
    data: Path = Path("data/nerf_llff_data/fern")
    """Scene folder holding poses_bounds.npy and images/ or images_N/."""
    downscale_factor: int = 8
    """Read images_N/ (1 reads images/). poses_bounds.npy stores the full-resolution focal; it is rescaled to match."""
    holdout_every: int = 8
    """Every N-th image (0, N, 2N, ...) is held out for eval, as in NeRF's llffhold. 0 trains and evaluates on all."""
    bd_factor: float = 0.75
    """Scale the scene so that the nearest depth bound becomes 1 / bd_factor (NeRF's load_llff_data)."""
    recenter: bool = True
    """Move the average camera to the origin with identity rotation (NeRF's recenter_poses)."""
    scene_box_margin: float = 0.1
    """Relative margin added around the box that holds every camera and every camera's frustum up to `far`."""
    alpha_color: Literal["none", "white", "black"] = "none"
    """LLFF images are opaque photographs; a background colour is only for RGBA inputs."""


@dataclass
class LLFF(DataParser):
    """Parser for LLFF's poses_bounds.npy format; the base for the other poses_bounds formats (N3DV, NVIDIA)."""

    config: LLFFDataParserConfig

    def read_cameras(self) -> tuple[PosesBounds, list[Path]]:
        """Poses and the image files they belong to, validated against each other."""
        data = self.config.data
        require_dir(data, "LLFF scene folder")
        poses = read_poses_bounds(data / "poses_bounds.npy")
        folder = data / image_folder_name(self.config.downscale_factor)
        if not folder.is_dir():
            found = ", ".join(image_folder_name(f) for f in _available_factors(data)) or "none"
            raise DatasetFormatError(
                folder, f"missing image folder for --downscale-factor {self.config.downscale_factor} (found: {found})"
            )
        images = list_images(folder)
        if len(images) != len(poses):
            raise DatasetFormatError(
                folder,
                f"holds {len(images)} images ({', '.join(IMAGE_SUFFIXES)}) but poses_bounds.npy has {len(poses)} cameras",
            )
        return poses, images

    def _generate_dataparser_outputs(self, split: str = "train", **kwargs) -> DataparserOutputs:
        poses, images = self.read_cameras()
        sizes = {image_size(path): path for path in images}
        if len(sizes) != 1:
            raise DatasetFormatError(images[0].parent, f"images differ in size: {sorted(sizes)}")
        ((width, height),) = sizes
        # LLFF stores H, W, f for the full-resolution capture; rescale f to the images actually read.
        scale_xy = np.stack([width / poses.width, height / poses.height])
        if np.any(np.abs(scale_xy[0] / scale_xy[1] - 1.0) > 0.02):
            raise DatasetFormatError(
                images[0],
                f"is {width}x{height}, not the aspect ratio of the {poses.width[0]:.0f}x{poses.height[0]:.0f} in poses_bounds.npy",
            )
        focal = poses.focal * scale_xy[0]

        camera_to_world, near_far, transform, scale = self.normalize(poses.camera_to_world, poses.near_far)
        indices = self.split_indices(len(images), split)
        cameras = Cameras(
            camera_to_worlds=torch.from_numpy(camera_to_world[indices]).float(),
            fx=torch.from_numpy(focal[indices]).float()[:, None],
            fy=torch.from_numpy(focal[indices]).float()[:, None],
            cx=width / 2.0,
            cy=height / 2.0,
            width=width,
            height=height,
            camera_type=CameraType.PERSPECTIVE,
        )
        return DataparserOutputs(
            image_filenames=[images[i] for i in indices],
            cameras=cameras,
            alpha_color=self._alpha_color(),
            scene_box=self.scene_box(camera_to_world, near_far, focal, width, height),
            dataparser_scale=scale,
            dataparser_transform=torch.from_numpy(transform).float(),
            metadata={
                "forward_facing": True,  # the viewer starts at a training camera (compat)
                "near_far": torch.from_numpy(near_far[indices]).float(),
                "near": float(near_far[:, 0].min()),
                "far": float(near_far[:, 1].max()),
                # NeRF's NDC map of this capture (one focal for the whole scene, as NeRF's hwf)
                NDC_COEFFICIENTS_KEY: ndc_coefficients(float(focal.mean()), float(focal.mean()), width, height),
            },
        )

    def split_indices(self, count: int, split: str) -> list[int]:
        """LLFF's holdout: every ``holdout_every``-th image is eval (val/test), the rest train."""
        every = self.config.holdout_every
        if every <= 0 or count < 2:
            return list(range(count))
        held_out = list(range(0, count, every))
        if split == "train":
            return [i for i in range(count) if i not in held_out]
        return held_out

    def normalize(
        self, camera_to_world: Float[np.ndarray, "n 3 4"], near_far: Float[np.ndarray, "n 2"]
    ) -> tuple[Float[np.ndarray, "n 3 4"], Float[np.ndarray, "n 2"], Float[np.ndarray, "3 4"], float]:
        """:func:`normalize_poses` with this config's ``bd_factor`` and ``recenter``."""
        return normalize_poses(camera_to_world, near_far, self.config.bd_factor, self.config.recenter)

    def scene_box(
        self,
        camera_to_world: Float[np.ndarray, "n 3 4"],
        near_far: Float[np.ndarray, "n 2"],
        focal: Float[np.ndarray, " n"],
        width: int,
        height: int,
    ) -> SceneBox:
        """:func:`frustum_scene_box` with this config's ``scene_box_margin``."""
        return frustum_scene_box(camera_to_world, near_far, focal, width, height, self.config.scene_box_margin)

    def _alpha_color(self) -> torch.Tensor | None:
        return {"none": None, "white": torch.ones(3), "black": torch.zeros(3)}[self.config.alpha_color]


llff_dataparser = DataParserSpecification(
    config=LLFFDataParserConfig(),
    description="LLFF forward-facing scenes: poses_bounds.npy + images/ or images_N/ (NeRF's load_llff_data conventions)",
)
