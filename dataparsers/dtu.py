"""DTU MVS scenes in the IDR / NeuS / pixelNeRF-DVR layout and in MonoSDF's layout.

IDR layout (``../shared/papers/softmining_infonerf.md`` B4; ``../shared/data/SOURCES.md``, ``dtu_idr``)::

    <scan>/image/*.png        sorted; image i goes with camera i
    <scan>/mask/*.png         optional, sorted, one per image (255 = object)
    <scan>/cameras.npz        world_mat_i (3x4 or 4x4 projection, world -> pixels), scale_mat_i (4x4)

MonoSDF layout (``SOURCES.md``, ``dtu_monosdf``): ``<scan>/NNNNNN_rgb.png`` plus the same ``cameras.npz``. Those
matrices are for the ORIGINAL 1600x1200 images, which MonoSDF centre-cropped to 1200x1200 and resized (384x384).

Cameras come back as OpenGL camera-to-world matrices (x right, y up, z back; nerfstudio's convention) in the
normalised world of ``scale_mat`` (the object lies inside the unit sphere), with pinhole intrinsics in pixels of the
images as stored, using OpenCV's pixel convention (the centre of pixel (0, 0) is at (0, 0)).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from jaxtyping import Bool, Float, Int

from dataparsers._common import (
    DatasetFormatError,
    common_image_size,
    list_images,
    load_npz,
    read_image,
    require_dir,
)

OPENCV_TO_OPENGL: Float[np.ndarray, "4 4"] = np.diag([1.0, -1.0, -1.0, 1.0])
"""Right-multiplying an OpenCV camera-to-world matrix by this flips its y and z axes to OpenGL's (up, back)."""

DTU_ORIGINAL_SIZE = (1600, 1200)
"""(width, height) of the DTU images that ``world_mat_i`` describes in MonoSDF's cameras.npz (SOURCES.md)."""

_WORLD_MAT_KEY = re.compile(r"^world_mat_(\d+)$")


@dataclass(frozen=True)
class DtuScene:
    """Images and cameras of one DTU scan (selected views only)."""

    image_paths: tuple[Path, ...]
    mask_paths: tuple[Path, ...] | None
    """One mask per image (paired by sorted order), or None when the layout has no masks."""
    view_indices: Int[np.ndarray, " n"]
    """Index ``i`` of each view in ``cameras.npz`` (``world_mat_i``), which is also its position in the sorted images."""
    camera_to_world: Float[np.ndarray, "n 4 4"]
    """OpenGL axes (x right, y up, z back), in the normalised world where the object lies in the unit sphere."""
    fx: Float[np.ndarray, " n"]
    fy: Float[np.ndarray, " n"]
    cx: Float[np.ndarray, " n"]
    cy: Float[np.ndarray, " n"]
    width: int
    height: int
    scale_mat: Float[np.ndarray, "n 4 4"]
    """Normalised world -> DTU world (millimetres); needed to export meshes back into DTU's frame for evaluation."""

    def __len__(self) -> int:
        return len(self.image_paths)


def decompose_projection(
    projection: Float[np.ndarray, "3 4"],
) -> tuple[Float[np.ndarray, "3 3"], Float[np.ndarray, "4 4"]]:
    """Split ``P = K [R | t]`` into intrinsics ``K`` (``K[2,2] = 1``) and an OpenCV camera-to-world matrix.

    Follows IDR / NeuS ``load_K_Rt_from_P`` and InfoNeRF ``load_dtu.py`` (brief B4, steps 1-2): OpenCV's RQ
    decomposition, ``K /= K[2,2]``, rotation ``R^T`` and the camera centre ``t[:3] / t[3]``.
    """
    projection = np.asarray(projection, dtype=np.float64)
    # A projection matrix is defined up to scale, sign included. Fix the sign so that det(M) > 0, which puts the
    # points in front of the camera at positive depth and gives a rotation (not a reflection) with positive focal.
    if np.linalg.det(projection[:, :3]) < 0:
        projection = -projection
    intrinsics, rotation, centre_homogeneous = cv2.decomposeProjectionMatrix(projection)[:3]
    intrinsics = intrinsics / intrinsics[2, 2]
    camera_to_world = np.eye(4)
    camera_to_world[:3, :3] = rotation.T
    camera_to_world[:3, 3] = centre_homogeneous[:3, 0] / centre_homogeneous[3, 0]
    return intrinsics, camera_to_world


def count_views(cameras: dict[str, np.ndarray], path: Path) -> int:
    """Number of ``world_mat_i`` keys, which must be numbered 0..n-1 without gaps."""
    indices = sorted(int(m.group(1)) for key in cameras if (m := _WORLD_MAT_KEY.match(key)))
    if not indices:
        raise DatasetFormatError(path, "holds no world_mat_<i> arrays")
    if indices != list(range(len(indices))):
        missing = sorted(set(range(indices[-1] + 1)) - set(indices))
        raise DatasetFormatError(path, f"world_mat_<i> keys are not numbered 0..{indices[-1]}: missing {missing}")
    return len(indices)


def _matrix(cameras: dict[str, np.ndarray], key: str, path: Path, shapes: tuple[tuple[int, int], ...]) -> np.ndarray:
    """One finite float matrix from the npz, with one of the allowed shapes."""
    if key not in cameras:
        raise DatasetFormatError(path, f"missing key {key!r}")
    matrix = cameras[key]
    if matrix.shape not in shapes or not np.issubdtype(matrix.dtype, np.number):
        raise DatasetFormatError(
            path, f"{key} must be a numeric array of shape {' or '.join(map(str, shapes))}, found {matrix.shape}"
        )
    matrix = matrix.astype(np.float64)
    if not np.all(np.isfinite(matrix)):
        raise DatasetFormatError(path, f"{key} contains NaN or infinite values")
    return matrix


def _normalised_camera(
    cameras: dict[str, np.ndarray], index: int, path: Path
) -> tuple[Float[np.ndarray, "3 3"], Float[np.ndarray, "4 4"], Float[np.ndarray, "4 4"]]:
    """K, OpenCV camera-to-world in the normalised world, and scale_mat of view ``index``."""
    world_mat = _matrix(cameras, f"world_mat_{index}", path, ((4, 4), (3, 4)))
    scale_mat = _matrix(cameras, f"scale_mat_{index}", path, ((4, 4),))
    if not np.allclose(scale_mat[3], [0.0, 0.0, 0.0, 1.0]) or np.linalg.det(scale_mat[:3, :3]) <= 0:
        raise DatasetFormatError(path, f"scale_mat_{index} is not an affine map with positive scale")
    # world_mat @ scale_mat projects normalised points: it is the same as subtracting scale_mat's translation from
    # the camera centre and dividing by its scale (brief B4 step 2), as IDR and NeuS compute it.
    intrinsics, camera_to_world = decompose_projection((world_mat @ scale_mat)[:3])
    if intrinsics[0, 0] <= 0 or intrinsics[1, 1] <= 0:
        raise DatasetFormatError(
            path, f"world_mat_{index} does not decompose into a camera with positive focal lengths"
        )
    return intrinsics, camera_to_world, scale_mat


def _select_views(view_indices: list[int] | None, image_count: int, path: Path) -> list[int]:
    if view_indices is None:
        return list(range(image_count))
    bad = [i for i in view_indices if not 0 <= i < image_count]
    if bad:
        raise DatasetFormatError(path, f"view indices {bad} are out of range for {image_count} images")
    return list(view_indices)


def _read_cameras(
    cameras_path: Path, image_count: int, selected: list[int]
) -> tuple[Float[np.ndarray, "n 3 3"], Float[np.ndarray, "n 4 4"], Float[np.ndarray, "n 4 4"]]:
    """Intrinsics (as in the file), OpenGL camera-to-world and scale_mat for the selected views."""
    cameras = load_npz(cameras_path, "camera file")
    view_count = count_views(cameras, cameras_path)
    # Images pair with cameras by position, so a prefix of the views is fine (SOURCES.md, dtu_scan65) but an
    # image without a camera is not.
    if view_count < image_count:
        raise DatasetFormatError(
            cameras_path, f"has {view_count} views (world_mat_<i>) but there are {image_count} images"
        )
    decoded = [_normalised_camera(cameras, i, cameras_path) for i in selected]
    intrinsics = np.stack([k for k, _, _ in decoded])
    camera_to_world = np.stack([c2w @ OPENCV_TO_OPENGL for _, c2w, _ in decoded])
    scale_mat = np.stack([s for _, _, s in decoded])
    return intrinsics, camera_to_world, scale_mat


def _check_principal_point(cx: np.ndarray, cy: np.ndarray, width: int, height: int, path: Path) -> None:
    # A principal point outside the image means the matrices describe another resolution (for example the
    # 1600x1200 originals next to 4x downscaled images), which would silently give wrong rays.
    if np.any((cx < 0) | (cx > width) | (cy < 0) | (cy > height)):
        raise DatasetFormatError(
            path,
            f"principal point ({cx.max():.1f}, {cy.max():.1f}) lies outside the {width}x{height} images: "
            "the projection matrices are for another image size",
        )


def read_dtu_scene(
    scene_dir: Path, view_indices: list[int] | None = None, cameras_file: str = "cameras.npz"
) -> DtuScene:
    """Read a DTU scan in the IDR / NeuS / pixelNeRF-DVR layout (brief B4).

    ``view_indices`` selects views by their index ``i`` (``world_mat_i`` and the i-th sorted image); all by default.
    ``cameras_file`` may be ``cameras_sphere.npz`` (NeuS), whose ``scale_mat`` differs but whose intrinsics do not.
    The intrinsics are those of the projection matrices, so they must describe the stored images.
    """
    scene_dir = Path(scene_dir)
    images = list_images(require_dir(scene_dir / "image", "DTU images (image/)"))
    masks = _list_masks(scene_dir / "mask", len(images))
    selected = _select_views(view_indices, len(images), scene_dir)
    intrinsics, camera_to_world, scale_mat = _read_cameras(scene_dir / cameras_file, len(images), selected)
    chosen_images = [images[i] for i in selected]
    width, height = common_image_size(chosen_images)
    cx, cy = intrinsics[:, 0, 2], intrinsics[:, 1, 2]
    _check_principal_point(cx, cy, width, height, scene_dir / cameras_file)
    return DtuScene(
        image_paths=tuple(chosen_images),
        mask_paths=None if masks is None else tuple(masks[i] for i in selected),
        view_indices=np.asarray(selected, dtype=np.int64),
        camera_to_world=camera_to_world,
        fx=intrinsics[:, 0, 0],
        fy=intrinsics[:, 1, 1],
        cx=cx,
        cy=cy,
        width=width,
        height=height,
        scale_mat=scale_mat,
    )


def _list_masks(mask_dir: Path, image_count: int) -> list[Path] | None:
    if not mask_dir.exists():
        return None
    masks = list_images(mask_dir)
    if len(masks) != image_count:
        raise DatasetFormatError(mask_dir, f"has {len(masks)} masks but there are {image_count} images")
    return masks


def read_dtu_mask(path: Path) -> Bool[np.ndarray, "h w"]:
    """Object mask: True where the first channel is above half intensity (IDR/NeuS masks are 0 or 255)."""
    return read_image(path)[:, :, 0] > 127


def read_monosdf_dtu_scene(scene_dir: Path, view_indices: list[int] | None = None) -> DtuScene:
    """Read a DTU scan in MonoSDF's layout (``NNNNNN_rgb.png`` + ``cameras.npz``; SOURCES.md, ``dtu_monosdf``).

    The matrices are for the 1600x1200 originals; the images were centre-cropped to a square and resized. As in
    MonoSDF's ``center_crop_for_dtu``: ``cx -= (1600 - 1200) / 2``, then fx, fy, cx, cy scale by image_size / 1200.
    """
    scene_dir = Path(scene_dir)
    require_dir(scene_dir, "MonoSDF DTU scene")
    images = sorted(scene_dir.glob("[0-9]*_rgb.png"))
    if not images:
        raise DatasetFormatError(scene_dir, "holds no NNNNNN_rgb.png images")
    selected = _select_views(view_indices, len(images), scene_dir)
    intrinsics, camera_to_world, scale_mat = _read_cameras(scene_dir / "cameras.npz", len(images), selected)
    chosen_images = [images[i] for i in selected]
    width, height = common_image_size(chosen_images)
    if width != height:
        raise DatasetFormatError(chosen_images[0], f"MonoSDF DTU images are square crops, found {width}x{height}")
    original_width, original_height = DTU_ORIGINAL_SIZE
    crop = min(original_width, original_height)
    scale = width / crop
    fx, fy = intrinsics[:, 0, 0] * scale, intrinsics[:, 1, 1] * scale
    cx = (intrinsics[:, 0, 2] - (original_width - crop) / 2) * scale
    cy = (intrinsics[:, 1, 2] - (original_height - crop) / 2) * scale
    _check_principal_point(cx, cy, width, height, scene_dir / "cameras.npz")
    return DtuScene(
        image_paths=tuple(chosen_images),
        mask_paths=None,
        view_indices=np.asarray(selected, dtype=np.int64),
        camera_to_world=camera_to_world,
        fx=fx,
        fy=fy,
        cx=cx,
        cy=cy,
        width=width,
        height=height,
        scale_mat=scale_mat,
    )
