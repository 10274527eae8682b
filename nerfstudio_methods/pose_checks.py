"""Camera poses checked as they are read: finite, with a proper rotation, in one line naming the file and the camera.
Used by this package's dataparsers (through ``dataparsers._common``) and by the ``blender_poses`` fix to nerfstudio's
own Blender reader; this module imports neither."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from jaxtyping import Float

from nerfstudio_methods.input_errors import DatasetFormatError

ROTATION_TOLERANCE = 1e-3
"""Largest entry of ``R^T R - I`` accepted in a camera-to-world rotation: float32 files round at 1e-7, while a broken
pose (zeros, a scaled or sheared matrix, swapped rows) is off by order 1."""


def check_camera_poses(
    path: Path, camera_to_world: Float[np.ndarray, "n r 4"], labels: Sequence[str] | None = None
) -> None:
    """Raise :class:`DatasetFormatError` naming ``path`` and the camera when a camera-to-world matrix is not finite
    or its 3x3 part is not a proper rotation (orthonormal within :data:`ROTATION_TOLERANCE`, determinant +1).
    A NaN or degenerate pose otherwise trains on NaN rays into an all-NaN model."""
    for index, matrix in enumerate(np.asarray(camera_to_world, dtype=np.float64)):
        label = labels[index] if labels is not None else f"camera {index}"
        if not np.all(np.isfinite(matrix[:3, :4])):
            raise DatasetFormatError(path, f"{label}: the pose holds NaN or infinite values")
        rotation = matrix[:3, :3]
        error = float(np.abs(rotation.T @ rotation - np.eye(3)).max())
        determinant = float(np.linalg.det(rotation))
        if error > ROTATION_TOLERANCE or determinant <= 0:
            raise DatasetFormatError(
                path,
                f"{label}: the pose's 3x3 part is not a rotation (max |R^T R - I| = {error:.3g}, det = "
                f"{determinant:.3g})",
            )


def check_blender_transforms(path: Path) -> None:
    """Raise :class:`DatasetFormatError` naming ``path`` (a ``transforms_<split>.json``) and the frame when a frame's
    ``transform_matrix`` is not a 4x4 matrix of numbers, or not a finite proper rotation (``check_camera_poses``).
    nerfstudio's Blender reader stacks the matrices unchecked: a NaN trains to an all-NaN model, and a 3x4 matrix
    failed in numpy, reported against the last image file it had named. A missing or malformed file is left to
    that reader, which names it."""
    try:
        frames = json.loads(path.read_text("utf8"))["frames"]
        labels = [f"frames[{i}] ({frame['file_path']})" for i, frame in enumerate(frames)]
    except (OSError, ValueError, KeyError, TypeError):
        return
    matrices = []
    for label, frame in zip(labels, frames):
        try:
            matrix = np.array(frame["transform_matrix"], dtype=np.float64)
        except (KeyError, TypeError, ValueError):
            raise DatasetFormatError(path, f"{label}: transform_matrix is missing or not a matrix of numbers") from None
        if matrix.shape != (4, 4):
            shape = "x".join(map(str, matrix.shape)) or "a single number"
            raise DatasetFormatError(path, f"{label}: transform_matrix is {shape}, expected 4x4")
        matrices.append(matrix)
    check_camera_poses(path, np.array(matrices).reshape(-1, 4, 4), labels)
