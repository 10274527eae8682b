"""ShapeNet SRN scenes (SRN / pixelNeRF / 3Da-AE layout, ``../shared/papers/3da-ae.md`` §3).

Layout of one instance ``<split>/<shapenet_model_id>/``::

    rgb/000000.png ...      128x128 PNG, white background
    pose/000000.txt ...     16 floats, row-major 4x4 camera-to-world, OpenCV camera axes (1 line or 4 lines)
    intrinsics.txt          line 1 "f cx cy 0.", line 2 barycentre, line 3 scale, line 4 "height width",
                            optional line 5 world2cam flag (SRN ``util.py::parse_intrinsics``)

The units trap (3da-ae.md §3): cars_train's intrinsics are for 512x512 images while the PNGs are 128x128, so f, cx
and cy are rescaled by ``image_width / width_from_line_4``. Cameras come back in nerfstudio's OpenGL axes
(x right, y up, z back): OpenCV camera-to-world ``@ diag(1, -1, -1, 1)``, as pixelNeRF's ``_coord_trans``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from jaxtyping import Float

from dataparsers._common import (
    OPENCV_TO_OPENGL,
    DatasetFormatError,
    PinholeCameras,
    image_size,
    list_images,
    require_dir,
    require_file,
)


@dataclass(frozen=True)
class SrnInstance:
    """One SRN object: its views, their cameras and the shared intrinsics."""

    name: str
    """ShapeNet model id (the instance folder's name)."""
    image_paths: tuple[Path, ...]
    cameras: PinholeCameras
    """SRN's world (+z up); every view has the intrinsics of ``intrinsics.txt``, in pixels of the stored images."""

    def __len__(self) -> int:
        return len(self.image_paths)


def list_srn_instances(split_dir: Path) -> list[Path]:
    """Instance folders of one split (e.g. ``cars_train``), sorted by name so the order is reproducible.

    Plain files next to the instances (3Da-AE's ``dataset.json``, ``cameras.json``) and hidden folders are skipped.
    """
    split_dir = require_dir(Path(split_dir), "SRN split")
    instances = sorted(p for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not instances:
        raise DatasetFormatError(split_dir, "holds no instance folders")
    return instances


def _read_floats(path: Path, what: str) -> list[list[float]]:
    """Whitespace-separated numbers of a text file, one list per non-empty line."""
    require_file(path, what)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise DatasetFormatError(path, f"unreadable {what} ({err})") from None
    try:
        return [[float(token) for token in line.split()] for line in text.splitlines() if line.strip()]
    except ValueError as err:
        raise DatasetFormatError(path, f"{what} must hold only numbers ({err})") from None


def read_srn_pose(path: Path) -> Float[np.ndarray, "4 4"]:
    """A 4x4 matrix written as 16 numbers, row-major, on one line or on four (SRN ``data_util.load_pose``)."""
    values = [value for line in _read_floats(path, "pose file") for value in line]
    if len(values) != 16:
        raise DatasetFormatError(path, f"expected 16 numbers (a row-major 4x4 matrix), found {len(values)}")
    matrix = np.asarray(values, dtype=np.float64).reshape(4, 4)
    if not np.all(np.isfinite(matrix)):
        raise DatasetFormatError(path, "contains NaN or infinite values")
    # The last row of a rigid transform is fixed; anything else means a transposed or projective matrix.
    if not np.allclose(matrix[3], [0.0, 0.0, 0.0, 1.0], atol=1e-6):
        raise DatasetFormatError(path, f"last row must be 0 0 0 1, found {matrix[3].tolist()}")
    return matrix


def read_srn_intrinsics(
    path: Path, image_width: int, image_height: int
) -> tuple[tuple[float, float, float, float], bool]:
    """``(fx, fy, cx, cy)`` rescaled to the stored images, and the world2cam flag of line 5 (False when absent)."""
    lines = _read_floats(path, "intrinsics.txt")
    if len(lines) < 4:
        raise DatasetFormatError(
            path, f"expected at least 4 lines (f cx cy 0 / barycentre / scale / H W), found {len(lines)}"
        )
    if len(lines[0]) < 3:
        raise DatasetFormatError(path, f"line 1 must start with 'f cx cy', found {lines[0]}")
    if len(lines[3]) != 2:
        raise DatasetFormatError(path, f"line 4 must be 'height width', found {lines[3]}")
    focal, cx, cy = lines[0][:3]
    height, width = lines[3]
    if focal <= 0 or height <= 0 or width <= 0:
        raise DatasetFormatError(path, "focal length, height and width must be positive")
    scale_x, scale_y = image_width / width, image_height / height
    # One focal length serves both axes, so the images must keep the aspect ratio that line 4 describes.
    if not np.isclose(scale_x, scale_y, rtol=1e-3):
        raise DatasetFormatError(
            path, f"{width:g}x{height:g} (line 4) does not match the {image_width}x{image_height} images' aspect ratio"
        )
    world_to_camera = len(lines) >= 5 and len(lines[4]) == 1 and lines[4][0] != 0
    return (focal * scale_x, focal * scale_y, cx * scale_x, cy * scale_y), world_to_camera


def read_srn_instance(instance_dir: Path) -> SrnInstance:
    """Read one instance: sorted ``rgb/*.png`` paired by file stem with ``pose/*.txt``, plus ``intrinsics.txt``.

    Only the first image's header is read for the image size (SRN renders every view of an instance alike).
    """
    instance_dir = require_dir(Path(instance_dir), "SRN instance")
    images = list_images(instance_dir / "rgb")
    pose_dir = require_dir(instance_dir / "pose", "SRN poses (pose/)")
    poses = sorted(pose_dir.glob("*.txt"))
    if len(poses) != len(images):
        raise DatasetFormatError(pose_dir, f"has {len(poses)} pose files but rgb/ has {len(images)} images")
    for image, pose in zip(images, poses):
        if image.stem != pose.stem:
            raise DatasetFormatError(pose, f"does not match image {image.name} (files pair by name)")
    width, height = image_size(images[0])
    intrinsics, world_to_camera = read_srn_intrinsics(instance_dir / "intrinsics.txt", width, height)
    matrices = np.stack([read_srn_pose(pose) for pose in poses])
    if world_to_camera:
        # SRN's optional line-5 flag says the pose files store world-to-camera matrices.
        matrices = np.linalg.inv(matrices)
    count = len(matrices)
    fx, fy, cx, cy = (np.full(count, value) for value in intrinsics)
    return SrnInstance(
        name=instance_dir.name,
        image_paths=tuple(images),
        cameras=PinholeCameras(
            camera_to_world=matrices @ OPENCV_TO_OPENGL, fx=fx, fy=fy, cx=cx, cy=cy, width=width, height=height
        ),
    )
