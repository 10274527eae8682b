"""Helpers every dataset reader shares: image loading with clear messages, pinhole cameras; the error types
(:mod:`nerfstudio_methods.input_errors`) are re-exported here for the readers."""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from jaxtyping import Float, UInt8
from numpy.lib.npyio import NpzFile
from PIL import Image, UnidentifiedImageError

from nerfstudio_methods.input_errors import DatasetFormatError, SettingError, first_line
from nerfstudio_methods.pose_checks import check_camera_poses

if TYPE_CHECKING:
    from nerfstudio.cameras.cameras import Cameras

__all__ = [
    "DatasetFormatError",
    "SettingError",
    "check_camera_poses",
    "check_finite",
    "first_line",
]  # the readers import them from here


def check_finite(path: Path, values: np.ndarray, what: str) -> None:
    """Raise :class:`DatasetFormatError` naming ``path`` when ``values`` hold NaN or infinite entries."""
    bad = int(np.size(values) - np.count_nonzero(np.isfinite(values)))
    if bad:
        raise DatasetFormatError(path, f"{what} holds {bad} NaN or infinite value(s)")


OPENCV_TO_OPENGL: Float[np.ndarray, "4 4"] = np.diag([1.0, -1.0, -1.0, 1.0])
"""Right-multiplying an OpenCV camera-to-world matrix by this flips its y and z axes to OpenGL's (up, back)."""


@dataclass(frozen=True)
class PinholeCameras:
    """Ideal pinhole cameras (no distortion) sharing one image size, as the readers return them.

    Each reader documents its world frame and its pixel convention (where the centre of pixel (0, 0) lies).
    """

    camera_to_world: Float[np.ndarray, "n 4 4"]
    """OpenGL axes (x right, y up, z back; nerfstudio's convention)."""
    fx: Float[np.ndarray, " n"]
    fy: Float[np.ndarray, " n"]
    cx: Float[np.ndarray, " n"]
    cy: Float[np.ndarray, " n"]
    width: int
    height: int

    def __len__(self) -> int:
        return len(self.camera_to_world)

    def to_nerfstudio(self, indices: Sequence[int] | np.ndarray | None = None, pixel_offset: float = 0.0) -> Cameras:
        """nerfstudio ``Cameras`` (PERSPECTIVE) of the views ``indices`` (all by default), in this order.

        nerfstudio casts the ray of pixel (row i, column j) through the image point (j + 0.5, i + 0.5): its
        principal point is in a convention where the centre of pixel (0, 0) is at (0.5, 0.5). ``pixel_offset`` is
        added to cx and cy: 0.5 converts intrinsics in OpenCV's convention (centre of pixel (0, 0) at (0, 0)).
        """
        import torch
        from nerfstudio.cameras.cameras import Cameras, CameraType

        chosen = np.arange(len(self)) if indices is None else np.asarray(indices, dtype=np.int64)

        def column(values: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(values[chosen], dtype=np.float32))[:, None]

        return Cameras(
            camera_to_worlds=torch.from_numpy(np.ascontiguousarray(self.camera_to_world[chosen, :3, :4], np.float32)),
            fx=column(self.fx),
            fy=column(self.fy),
            cx=column(self.cx + pixel_offset),
            cy=column(self.cy + pixel_offset),
            width=self.width,
            height=self.height,
            camera_type=CameraType.PERSPECTIVE,
        )


def require_file(path: Path, what: str) -> Path:
    """Return ``path`` if it is a file, else raise naming what was expected there."""
    if not path.is_file():
        raise DatasetFormatError(path, f"missing {what}")
    return path


def require_dir(path: Path, what: str) -> Path:
    """Return ``path`` if it is a folder, else raise naming what was expected there."""
    if not path.is_dir():
        raise DatasetFormatError(path, f"missing folder: {what}")
    return path


def load_npy(path: Path, what: str) -> np.ndarray:
    """Load a .npy array, turning numpy's errors into one line naming the file."""
    require_file(path, what)
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise DatasetFormatError(path, f"unreadable {what} ({err})") from None


def read_image(path: Path) -> UInt8[np.ndarray, "h w c"]:
    """Read an 8-bit image as an HxWxC uint8 array (C is 1, 3 or 4), naming the file if it cannot be read."""
    require_file(path, "image")
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode not in ("L", "RGB", "RGBA"):
                img = img.convert("RGBA" if "A" in img.getbands() else "RGB")
            array = np.asarray(img, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise DatasetFormatError(path, f"unreadable image ({err})") from None
    if array.ndim == 2:
        array = array[:, :, None]
    return array


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def list_images(folder: Path) -> list[Path]:
    """Sorted image files (png/jpg) in ``folder``, raising if the folder is missing or holds none."""
    require_dir(folder, "image folder")
    images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
    if not images:
        raise DatasetFormatError(folder, "holds no .png or .jpg images")
    return images


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image file, checking that the file is a complete, readable image."""
    require_file(path, "image")
    try:
        with Image.open(path) as img:
            img.verify()  # catches truncated or corrupt files now, not later inside a DataLoader worker
            return img.size
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise DatasetFormatError(path, f"unreadable image ({err})") from None


def common_image_size(paths: list[Path] | tuple[Path, ...]) -> tuple[int, int]:
    """(width, height) shared by all images, raising on the first image whose size differs."""
    size = image_size(paths[0])
    for path in paths[1:]:
        if image_size(path) != size:
            raise DatasetFormatError(path, f"image size {image_size(path)} differs from {size} of {paths[0].name}")
    return size


def load_npz(path: Path, what: str) -> dict[str, np.ndarray]:
    """All arrays of an .npz archive, with numpy's and zipfile's errors turned into one line naming the file."""
    require_file(path, what)
    try:
        loaded = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise DatasetFormatError(path, f"unreadable {what} ({err})") from None
    if not isinstance(loaded, NpzFile):
        raise DatasetFormatError(path, f"{what} must be an .npz archive of named arrays, found a single array")
    try:
        with loaded:
            return {key: loaded[key] for key in loaded.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise DatasetFormatError(path, f"unreadable {what} ({err})") from None
