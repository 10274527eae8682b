"""NVIDIA Dynamic Scenes in DynamicNeRF's layout (``../shared/papers/mononerf.md`` §3 and §6).

Layout of one scene (DynamicNeRF ``load_llff.py``, MonoNeRF ``LLFFDataset``, RoDynRF ``nvidia.py``)::

    <scene>/poses_bounds.npy     (N, 17); H, W, f at images/ resolution
    <scene>/images/*.png         full resolution (Balloon1: 960x540)
    <scene>/images_<factor>/     downscaled images (factor=2: 480x270)
    <scene>/disp/*.npy           MiDaS disparity, one per frame, sorted
    <scene>/flow/NNN_fwd.npz     frame i -> i+1 for i = 0..N-2; keys flow (H, W, 2) and mask (H, W)
    <scene>/flow/NNN_bwd.npz     frame i -> i-1 for i = 1..N-1
    <scene>/motion_masks/*.png   one per frame, sorted; > 1e-3 after / 255 means moving

Frame i is taken by camera i at time i (a "monocular" video over a 12-camera rig). Disparity, flow and motion
masks are optional: None when absent, :class:`DatasetFormatError` when present but incomplete or malformed. They
may be stored at another resolution than the chosen images; the loaders resize them with nearest-neighbour
sampling as DynamicNeRF does (flow vectors scaled with the image).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from jaxtyping import Bool, Float
from PIL import Image

from dataparsers._common import (
    DatasetFormatError,
    PinholeCameras,
    check_finite,
    image_size,
    list_images,
    load_npy,
    load_npz,
    read_image,
    require_dir,
    require_file,
)
from dataparsers.poses_bounds import read_poses_bounds
from nerfstudio_methods.timeline import time_of_frame

MOTION_THRESHOLD = 1e-3
"""DynamicNeRF / MonoNeRF threshold on mask / 255 above which a pixel counts as moving."""


@dataclass(frozen=True)
class NvidiaDynamicScene:
    """Frames, cameras and the paths of the optional per-frame supervision of one scene."""

    image_paths: tuple[Path, ...]
    cameras: PinholeCameras
    """In the world of ``poses_bounds.npy`` (no bd_factor or recentring); principal point at the image centre."""
    near_far: Float[np.ndarray, "n 2"]
    times: Float[np.ndarray, " n"]
    """Time of frame i is i / (N - 1), in [0, 1] like nerfstudio's DNeRF parser (mononerf.md §6)."""
    disparity_paths: tuple[Path, ...] | None
    flow_forward_paths: tuple[Path | None, ...] | None
    """``flow/NNN_fwd.npz`` per frame (None for the last frame), or None when there is no flow/ folder."""
    flow_backward_paths: tuple[Path | None, ...] | None
    """``flow/NNN_bwd.npz`` per frame (None for the first frame), or None when there is no flow/ folder."""
    motion_mask_paths: tuple[Path, ...] | None

    def __len__(self) -> int:
        return len(self.image_paths)


@dataclass(frozen=True)
class OpticalFlow:
    """One RAFT flow file: per-pixel displacement in pixels and its forward-backward consistency mask."""

    flow: Float[np.ndarray, "h w 2"]
    """(dx, dy) from this frame to its neighbour, in pixels of the returned resolution."""
    mask: Float[np.ndarray, "h w"]


def _image_folder(scene_dir: Path, factor: int) -> tuple[Path, int]:
    """The folder of images at ``factor`` and the factor its files still need to be downscaled by (1 or ``factor``).

    DynamicNeRF's ``_minify`` writes ``images_<factor>/`` with ImageMagick when it is missing; here a missing
    ``images_<factor>/`` is read from ``images/`` and downscaled in memory instead (nothing is written)."""
    if factor < 1:
        raise ValueError(f"factor must be >= 1, got {factor}")
    name = "images" if factor == 1 else f"images_{factor}"
    if factor > 1 and not (scene_dir / name).exists() and (scene_dir / "images").is_dir():
        return scene_dir / "images", factor
    return require_dir(scene_dir / name, f"images at factor {factor} ({name}/)"), 1


def _frame_count_matches(paths: list[Path], expected: int, folder: Path, what: str) -> list[Path]:
    if len(paths) != expected:
        raise DatasetFormatError(folder, f"has {len(paths)} {what} but poses_bounds.npy has {expected} frames")
    return paths


def _optional_sorted(folder: Path, suffix: str, expected: int, what: str) -> tuple[Path, ...] | None:
    """Sorted ``*suffix`` files of an optional folder: None if the folder is absent, an error if the count differs."""
    if not folder.exists():
        return None
    require_dir(folder, what)
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() == suffix and not p.name.startswith("."))
    return tuple(_frame_count_matches(paths, expected, folder, what))


def _flow_paths(flow_dir: Path, count: int) -> tuple[tuple[Path | None, ...], tuple[Path | None, ...]] | None:
    """Forward and backward flow file per frame, requiring every file DynamicNeRF's loader opens."""
    if not flow_dir.exists():
        return None
    require_dir(flow_dir, "optical flow (flow/)")
    forward = tuple(flow_dir / f"{i:03d}_fwd.npz" if i < count - 1 else None for i in range(count))
    backward = tuple(flow_dir / f"{i:03d}_bwd.npz" if i > 0 else None for i in range(count))
    for path in (*forward, *backward):
        if path is not None:
            require_file(path, "optical flow file")
    return forward, backward


def read_nvidia_dynamic_scene(scene_dir: Path, factor: int = 1) -> NvidiaDynamicScene:
    """Read a DynamicNeRF-layout scene, with images from ``images/`` (factor 1) or ``images_<factor>/``.

    Without ``images_<factor>/`` the paths are those of ``images/`` and the cameras are at the downscaled size; the
    loader downscales the frames (:func:`read_frame`).

    As DynamicNeRF's ``_load_data``: H and W come from the images, f is divided by ``factor``, and the principal
    point is the image centre (mononerf.md §6). The chosen images must be poses_bounds' size / factor (±1 px).
    """
    scene_dir = Path(scene_dir)
    poses_path = scene_dir / "poses_bounds.npy"
    poses = read_poses_bounds(poses_path)
    count = len(poses)
    image_dir, pending = _image_folder(scene_dir, factor)
    images = _frame_count_matches(list_images(image_dir), count, image_dir, "images")
    width, height = image_size(images[0])
    for path in images[1:]:
        if image_size(path) != (width, height):
            raise DatasetFormatError(
                path, f"image size {image_size(path)} differs from {(width, height)} of {images[0].name}"
            )
    # Files read from images/ for a missing images_<factor>/: the frames are downscaled when loaded.
    width, height = round(width / pending), round(height / pending)
    expected = poses.width[0] / factor, poses.height[0] / factor
    if abs(width - expected[0]) > 1 or abs(height - expected[1]) > 1:
        raise DatasetFormatError(
            image_dir,
            f"images are {width}x{height} but poses_bounds.npy's {poses.width[0]:g}x{poses.height[0]:g} / factor "
            f"{factor} is {expected[0]:g}x{expected[1]:g}",
        )
    camera_to_world = np.tile(np.eye(4), (count, 1, 1))
    camera_to_world[:, :3, :4] = poses.camera_to_world
    flows = _flow_paths(scene_dir / "flow", count)
    return NvidiaDynamicScene(
        image_paths=tuple(images),
        cameras=PinholeCameras(
            camera_to_world=camera_to_world,
            fx=poses.focal / factor,
            fy=poses.focal / factor,
            cx=np.full(count, width / 2.0),
            cy=np.full(count, height / 2.0),
            width=width,
            height=height,
        ),
        near_far=poses.near_far,
        times=time_of_frame(np.arange(count, dtype=np.float64), count),
        disparity_paths=_optional_sorted(scene_dir / "disp", ".npy", count, "disparity maps (disp/*.npy)"),
        flow_forward_paths=None if flows is None else flows[0],
        flow_backward_paths=None if flows is None else flows[1],
        motion_mask_paths=_optional_sorted(
            scene_dir / "motion_masks", ".png", count, "motion masks (motion_masks/*.png)"
        ),
    )


def _check_aspect(path: Path, shape: tuple[int, ...], height: int, width: int) -> None:
    # Nearest-neighbour resizing is only a change of resolution when the aspect ratio is kept.
    if not np.isclose(shape[1] / shape[0], width / height, rtol=1e-2):
        raise DatasetFormatError(
            path, f"size {shape[1]}x{shape[0]} does not have the aspect ratio of {width}x{height} images"
        )


def _resize_nearest(array: np.ndarray, height: int, width: int) -> np.ndarray:
    if array.shape[:2] == (height, width):
        return array
    return cv2.resize(array, (width, height), interpolation=cv2.INTER_NEAREST)


def read_disparity(path: Path, height: int, width: int) -> Float[np.ndarray, "h w"]:
    """A ``disp/NNN.npy`` map (raw MiDaS disparity, unnormalised) at ``height x width``."""
    disparity = load_npy(path, "disparity map")
    if disparity.ndim == 3 and disparity.shape[2] == 1:
        disparity = disparity[:, :, 0]
    if disparity.ndim != 2 or not np.issubdtype(disparity.dtype, np.floating):
        raise DatasetFormatError(path, f"expected a 2-D float array, found {disparity.dtype} {disparity.shape}")
    check_finite(path, disparity, "the disparity map")
    _check_aspect(path, disparity.shape, height, width)
    return _resize_nearest(disparity.astype(np.float32), height, width)


def read_flow(path: Path, height: int, width: int) -> OpticalFlow:
    """A ``flow/NNN_fwd.npz`` or ``NNN_bwd.npz`` file at ``height x width``, vectors rescaled with the image."""
    require_file(path, "optical flow file")
    arrays = load_npz(path, "optical flow archive")
    missing = [key for key in ("flow", "mask") if key not in arrays]
    if missing:
        raise DatasetFormatError(path, f"missing keys {missing} (found {sorted(arrays)})")
    flow, mask = arrays["flow"], arrays["mask"]
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise DatasetFormatError(path, f"flow must have shape (H, W, 2), found {flow.shape}")
    if mask.shape != flow.shape[:2]:
        raise DatasetFormatError(path, f"mask shape {mask.shape} does not match flow shape {flow.shape[:2]}")
    check_finite(path, flow, "the flow")
    _check_aspect(path, flow.shape, height, width)
    # Vectors are in pixels, so they scale with the image. DynamicNeRF's resize_flow swaps the two ratios
    # (mononerf.md §3), which only matters when the aspect ratio changes; this uses the right ones.
    scale = np.array([width / flow.shape[1], height / flow.shape[0]], dtype=np.float32)
    flow = _resize_nearest(flow.astype(np.float32), height, width) * scale
    mask = _resize_nearest(mask.astype(np.float32), height, width)
    return OpticalFlow(flow=flow, mask=mask)


def read_motion_mask(path: Path, height: int, width: int) -> Bool[np.ndarray, "h w"]:
    """A ``motion_masks/*.png`` at ``height x width``: True where the scene moves (value / 255 > 1e-3)."""
    image = read_image(path)
    # Gray masks have one channel; for RGB(A) masks any colour channel counts, the alpha channel does not.
    color = image[:, :, :3] if image.shape[2] >= 3 else image[:, :, :1]
    moving = (color.max(axis=2) / 255.0 > MOTION_THRESHOLD).astype(np.uint8)
    _check_aspect(path, moving.shape, height, width)
    return _resize_nearest(moving, height, width).astype(bool)


def read_frame(path: Path, width: int, height: int) -> Float[np.ndarray, "h w 3"]:
    """An RGB frame as float32 in [0, 1] at ``width x height`` (box-filtered down when the file is larger, as for
    ``images/`` read in place of a missing ``images_<factor>/``); gray images become three equal channels."""
    image = read_image(path)
    rgb = image[:, :, :3] if image.shape[2] >= 3 else np.repeat(image[:, :, :1], 3, axis=2)
    if rgb.shape[:2] != (height, width):
        rgb = np.asarray(Image.fromarray(rgb).resize((width, height), resample=Image.Resampling.BOX))
    return rgb.astype(np.float32) / 255.0
