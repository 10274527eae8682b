"""LLFF's ``poses_bounds.npy``: the camera file shared by LLFF, N3DV, Meet Room and NVIDIA Dynamic Scenes.

Format (Fyusion/LLFF README, "Using your own poses"; see ../shared/papers/streamrf.md §3): an ``N x 17`` float
array. Each row is a row-major ``3 x 5`` matrix ``[R | t | (H, W, f)]`` (camera-to-world) followed by the near
and far depth bounds of that camera. The rotation columns are ordered ``[down, right, backwards]``; H, W and the
focal length f are in pixels of the full-resolution images.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from jaxtyping import Float

from dataparsers._common import DatasetFormatError, check_camera_poses, load_npy


@dataclass(frozen=True)
class PosesBounds:
    """Cameras of one ``poses_bounds.npy``, converted to nerfstudio's OpenGL camera axes."""

    camera_to_world: Float[np.ndarray, "n 3 4"]
    """Columns are the camera's [right, up, back] axes and its centre (OpenGL / nerfstudio convention)."""
    height: Float[np.ndarray, " n"]
    width: Float[np.ndarray, " n"]
    focal: Float[np.ndarray, " n"]
    """Focal length in pixels, for images of ``height x width`` (the full resolution)."""
    near_far: Float[np.ndarray, "n 2"]

    def __len__(self) -> int:
        return self.camera_to_world.shape[0]


def llff_to_opengl(matrix_3x4: Float[np.ndarray, "*b 3 4"]) -> Float[np.ndarray, "*b 3 4"]:
    """Reorder rotation columns from LLFF's [down, right, back] to OpenGL's [right, up, back]."""
    down, right, back, centre = (matrix_3x4[..., :, i] for i in range(4))
    return np.stack([right, -down, back, centre], axis=-1)


def opengl_to_llff(matrix_3x4: Float[np.ndarray, "*b 3 4"]) -> Float[np.ndarray, "*b 3 4"]:
    """Inverse of :func:`llff_to_opengl`."""
    right, up, back, centre = (matrix_3x4[..., :, i] for i in range(4))
    return np.stack([-up, right, back, centre], axis=-1)


def read_poses_bounds(path: Path) -> PosesBounds:
    """Read ``poses_bounds.npy``, raising :class:`DatasetFormatError` naming the file on any malformation."""
    array = load_npy(path, "poses_bounds.npy")
    if array.ndim != 2 or array.shape[1] != 17 or array.shape[0] == 0:
        raise DatasetFormatError(path, f"expected an N x 17 array (N >= 1), found shape {tuple(array.shape)}")
    if not np.issubdtype(array.dtype, np.floating):
        raise DatasetFormatError(path, f"expected floating-point values, found dtype {array.dtype}")
    if not np.all(np.isfinite(array)):
        raise DatasetFormatError(path, "contains NaN or infinite values")
    array = array.astype(np.float64)
    pose_hwf = array[:, :15].reshape(-1, 3, 5)
    height, width, focal = pose_hwf[:, 0, 4], pose_hwf[:, 1, 4], pose_hwf[:, 2, 4]
    if np.any(height <= 0) or np.any(width <= 0) or np.any(focal <= 0):
        raise DatasetFormatError(
            path, "image height, width and focal length (column 5 of each 3x5 pose) must be positive"
        )
    near_far = array[:, 15:17]
    if np.any(near_far[:, 0] <= 0) or np.any(near_far[:, 1] <= near_far[:, 0]):
        raise DatasetFormatError(path, "depth bounds must satisfy 0 < near < far for every camera")
    camera_to_world = llff_to_opengl(pose_hwf[:, :, :4])
    check_camera_poses(path, camera_to_world, [f"row {row}" for row in range(len(camera_to_world))])
    return PosesBounds(
        camera_to_world=camera_to_world,
        height=height,
        width=width,
        focal=focal,
        near_far=near_far,
    )


def poses_bounds_array(
    camera_to_world: Float[np.ndarray, "n 3 4"],
    height: int,
    width: int,
    focal: float,
    near_far: Float[np.ndarray, "n 2"],
) -> Float[np.ndarray, "n 17"]:
    """Build the ``N x 17`` array for OpenGL camera-to-world matrices (inverse of :func:`read_poses_bounds`)."""
    count = camera_to_world.shape[0]
    hwf = np.broadcast_to(np.array([height, width, focal], dtype=np.float64)[None, :, None], (count, 3, 1))
    pose_hwf = np.concatenate([opengl_to_llff(camera_to_world[:, :3, :4].astype(np.float64)), hwf], axis=2)
    return np.concatenate([pose_hwf.reshape(count, 15), np.asarray(near_far, dtype=np.float64)], axis=1)


def write_poses_bounds(
    path: Path,
    camera_to_world: Float[np.ndarray, "n 3 4"],
    height: int,
    width: int,
    focal: float,
    near_far: Float[np.ndarray, "n 2"],
) -> None:
    """Write ``poses_bounds.npy`` for OpenGL camera-to-world matrices and full-resolution pinhole intrinsics."""
    np.save(path, poses_bounds_array(camera_to_world, height, width, focal, near_far))
