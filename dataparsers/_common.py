"""Helpers every dataset reader shares: one error type and image loading with clear messages."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
from jaxtyping import UInt8
from numpy.lib.npyio import NpzFile
from PIL import Image, UnidentifiedImageError


class DatasetFormatError(ValueError):
    """A dataset folder or file does not follow its format. The message names the file and the problem."""

    def __init__(self, path: Path | str, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


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
