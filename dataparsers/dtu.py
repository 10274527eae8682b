"""DTU MVS scenes in the IDR / NeuS / pixelNeRF-DVR layout and in MonoSDF's layout.

IDR layout (``../shared/papers/softmining_infonerf.md`` B4; ``../shared/data/SOURCES.md``, ``dtu_idr``)::

    <scan>/image/*.png        sorted; image i goes with camera i
    <scan>/mask/*.png         optional, sorted, one per image (255 = object)
    <scan>/cameras.npz        world_mat_i (3x4 or 4x4 projection, world -> pixels), scale_mat_i (4x4)

MonoSDF layout (``SOURCES.md``, ``dtu_monosdf``): ``<scan>/NNNNNN_rgb.png`` plus the same ``cameras.npz``. Those
matrices are for the ORIGINAL 1600x1200 images, which MonoSDF centre-cropped to 1200x1200 and resized (384x384).

Cameras come back as OpenGL camera-to-world matrices (x right, y up, z back; nerfstudio's convention) in the
normalised world of ``scale_mat`` (the object lies inside the unit sphere), with pinhole intrinsics in pixels of the
images as stored, using OpenCV's pixel convention (the centre of pixel (0, 0) is at (0, 0)). MonoSDF's crop and
scale are applied to those numbers as MonoSDF's own loader does (``cx' = (cx - 200) * s``); scaling in the
pixel-corner convention (what an image resize does) would differ by 0.5 * (1 - s) = 0.34 px at 384x384.

``dtu-data`` (:class:`DtuDataParserConfig`) turns either layout into nerfstudio's DataparserOutputs: cameras with
nerfstudio's principal point (OpenCV's + 0.5: nerfstudio casts rays through pixel centres at +0.5), InfoNeRF's and
RegNeRF's few-view splits (softmining_infonerf.md B3, B7), near / far and the object masks in ``metadata``.
"""

from __future__ import annotations

import hashlib
import io
import re
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import torch
from jaxtyping import Bool, Float, Int
from nerfstudio.data.dataparsers.base_dataparser import DataParser, DataParserConfig, DataparserOutputs
from nerfstudio.data.scene_box import SceneBox
from nerfstudio.plugins.registry_dataparser import DataParserSpecification
from PIL import Image

from dataparsers._common import (
    OPENCV_TO_OPENGL,
    DatasetFormatError,
    PinholeCameras,
    SettingError,
    check_camera_poses,
    check_finite,
    common_image_size,
    list_images,
    load_npz,
    read_image,
    require_dir,
)
from nerfstudio_methods import compat
from nerfstudio_methods.atomic import write_atomically

# nerfstudio imports this module (the dtu-data entry point) at the start of every ns-* command: install the fixes.
compat.install()

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
    cameras: PinholeCameras
    """In the normalised world where the object lies in the unit sphere; intrinsics in OpenCV's pixel convention."""
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


def _normalized_camera(
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
    decoded = [_normalized_camera(cameras, i, cameras_path) for i in selected]
    intrinsics = np.stack([k for k, _, _ in decoded])
    camera_to_world = np.stack([c2w @ OPENCV_TO_OPENGL for _, c2w, _ in decoded])
    check_finite(cameras_path, intrinsics, "the intrinsics (world_mat) of the selected views")
    check_camera_poses(cameras_path, camera_to_world, [f"world_mat_{i}" for i in selected])
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
        cameras=PinholeCameras(
            camera_to_world=camera_to_world,
            fx=intrinsics[:, 0, 0],
            fy=intrinsics[:, 1, 1],
            cx=cx,
            cy=cy,
            width=width,
            height=height,
        ),
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
        cameras=PinholeCameras(
            camera_to_world=camera_to_world,
            fx=fx,
            fy=fy,
            cx=cx,
            cy=cy,
            width=width,
            height=height,
        ),
        scale_mat=scale_mat,
    )


# ------------------------------------------------------------------------------------------------ dtu-data parser

DTU_VIEW_COUNT = 49
"""Views per scan in the IDR / pixelNeRF / MonoSDF releases (DTU's 49 camera positions)."""

INFONERF_TRAIN_VIEWS = (22, 25, 28)
"""InfoNeRF's ``train_scene`` for DTU (``configs/infonerf/dtu/scan114.txt``; brief B3); every other view is test."""

REGNERF_TRAIN_VIEWS = (25, 22, 28, 40, 44, 48, 0, 8, 13)
"""RegNeRF / pixelNeRF train views (``regnerf/internal/datasets.py``, ``dtu_split_type='pixelnerf'``); the first n."""

REGNERF_EXCLUDED_VIEWS = (3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 36, 37, 38, 39)
"""Views RegNeRF leaves out of its test set (brief B3)."""

SplitMode = Literal["infonerf", "regnerf", "all"]
DtuLayout = Literal["idr", "monosdf"]


def detect_dtu_layout(scan_dir: Path) -> DtuLayout:
    """``"idr"`` when the scan holds ``image/``, ``"monosdf"`` when it holds ``NNNNNN_rgb.png`` files."""
    scan_dir = require_dir(Path(scan_dir), "DTU scan")
    idr = (scan_dir / "image").is_dir()
    monosdf = any(scan_dir.glob("[0-9]*_rgb.png"))
    if idr and monosdf:
        raise DatasetFormatError(
            scan_dir, "holds both image/ (IDR layout) and NNNNNN_rgb.png (MonoSDF layout): pick one with --layout"
        )
    if not (idr or monosdf):
        raise DatasetFormatError(
            scan_dir,
            "is not a DTU scan: expected image/ + cameras.npz (IDR / NeuS / pixelNeRF layout) "
            "or NNNNNN_rgb.png + cameras.npz (MonoSDF layout)",
        )
    return "idr" if idr else "monosdf"


def dtu_split_views(
    split_mode: SplitMode,
    split: str,
    view_count: int,
    train_views: tuple[int, ...] = INFONERF_TRAIN_VIEWS,
    num_train_views: int = 3,
) -> list[int]:
    """View ids (``world_mat_i`` / i-th sorted image) of ``split`` ("train", or "val" / "test" for evaluation).

    - "infonerf": train = ``train_views``; eval = every other view of the scan (46 of 49 for the default).
    - "regnerf": train = ``REGNERF_TRAIN_VIEWS[:num_train_views]``; eval = the 25 views of ``range(49)`` that are
      neither in the full 9-view train list nor in ``REGNERF_EXCLUDED_VIEWS`` (the same 25 for any n).
    - "all": every view of the scan in both.

    The fixed lists may name views the scan does not have; the caller reports those.
    """
    is_train = split == "train"
    if split_mode == "all":
        return list(range(view_count))
    if split_mode == "infonerf":
        if not train_views or len(set(train_views)) != len(train_views):
            raise SettingError("--train-views", f"must be non-empty and without repeats, got {list(train_views)}")
        if is_train:
            return list(train_views)
        return [i for i in range(view_count) if i not in train_views]
    if split_mode == "regnerf":
        if not 1 <= num_train_views <= len(REGNERF_TRAIN_VIEWS):
            raise SettingError("--num-train-views", f"must be in 1..{len(REGNERF_TRAIN_VIEWS)}, got {num_train_views}")
        if is_train:
            return list(REGNERF_TRAIN_VIEWS[:num_train_views])
        held_out = set(REGNERF_TRAIN_VIEWS) | set(REGNERF_EXCLUDED_VIEWS)
        return [i for i in range(DTU_VIEW_COUNT) if i not in held_out]
    raise ValueError(f"unknown split_mode {split_mode!r}")


@dataclass
class DtuDataParserConfig(DataParserConfig):
    """DTU scans in the IDR / NeuS / pixelNeRF layout or MonoSDF's, with InfoNeRF's and RegNeRF's few-view splits."""

    _target: type = field(default_factory=lambda: DtuDataParser)
    data: Path = Path("data/DTU/scan114")
    """Scan folder: image/ (+ mask/) + cameras.npz, or NNNNNN_rgb.png + cameras.npz."""
    layout: Literal["auto", "idr", "monosdf"] = "auto"
    """Folder layout; "auto" picks idr when image/ exists and monosdf when NNNNNN_rgb.png files do."""
    cameras_file: str = "cameras.npz"
    """IDR layout only: cameras_sphere.npz reads NeuS's normalisation instead (same intrinsics, other scale_mat)."""
    split_mode: SplitMode = "infonerf"
    """"infonerf": train on train_views, evaluate on all other views; "regnerf": pixelNeRF/RegNeRF protocol (first
    num_train_views of 25,22,28,40,44,48,0,8,13; 25 test views); "all": train and evaluate on every view."""
    train_views: tuple[int, ...] = INFONERF_TRAIN_VIEWS
    """Train view ids for split_mode "infonerf"."""
    num_train_views: int = 3
    """Number of train views (1-9) for split_mode "regnerf"."""
    focal_mode: Literal["per_view", "mean"] = "per_view"
    """"mean": fx = fy = mean over all views of (fx + fy) / 2, as InfoNeRF's load_dtu.py (brief B4 step 4)."""
    principal_point: Literal["per_view", "image_centre"] = "per_view"
    """"image_centre": ignore the calibrated cx, cy like InfoNeRF's get_rays (rays through integer pixel
    coordinates minus W/2, H/2), i.e. nerfstudio cx = W/2 + 0.5. The calibrated point is ~7 px off at 384x384."""
    use_masks: bool = False
    """Put the object masks into nerfstudio's mask_filenames. nerfstudio treats them as SAMPLING masks: training
    rays come only from the object, the background is never supervised. Off by default; the masks are always in
    metadata["object_mask_filenames"] for masked metrics. IDR layout only (mask/); RGB masks are converted to
    single-channel copies in mask_cache_dir, since nerfstudio's mask loader needs one channel. nerfstudio 1.1.5's
    masked pixel sampler fails on a split of exactly one image (mask.squeeze() drops the image axis)."""
    mask_cache_dir: Path | None = None
    """Where single-channel copies of RGB masks go for use_masks; default <system temp>/nerfstudio_methods_dtu_masks."""
    near: float = 0.1
    """Near bound for the model, exposed as metadata["near"] (InfoNeRF's hard-coded DTU value, brief B3)."""
    far: float = 5.0
    """Far bound, metadata["far"]. Cameras are ~2.7 (MonoSDF) to ~4 units from the object at the origin."""
    scene_box_bound: float | None = None
    """Half-size of the cube scene box. None: the smallest cube holding the unit sphere (the object) and every
    camera centre, plus 10%, so that nothing between the cameras and the object falls outside it."""


@dataclass
class DtuDataParser(DataParser):
    """Cameras in nerfstudio's conventions (OpenGL axes, principal point with pixel centres at +0.5) in the world
    normalised by ``scale_mat`` (object inside the unit sphere); ``dataparser_transform`` / ``dataparser_scale``
    map DTU's world (millimetres) into it."""

    config: DtuDataParserConfig

    def layout(self) -> DtuLayout:
        return detect_dtu_layout(self.config.data) if self.config.layout == "auto" else self.config.layout

    def read_scene(self) -> DtuScene:
        """Every view of the scan, through the layout's reader."""
        data = Path(self.config.data)
        if self.layout() == "idr":
            return read_dtu_scene(data, cameras_file=self.config.cameras_file)
        if self.config.cameras_file != "cameras.npz":
            raise DatasetFormatError(data, "the MonoSDF layout has only cameras.npz; --cameras-file is for IDR scans")
        return read_monosdf_dtu_scene(data)

    def split_views(self, split: str, view_count: int) -> list[int]:
        """The split's view ids, raising when the scan lacks some of them."""
        config = self.config
        views = dtu_split_views(config.split_mode, split, view_count, config.train_views, config.num_train_views)
        missing = [i for i in views if not 0 <= i < view_count]
        if missing:
            raise DatasetFormatError(
                config.data,
                f"split_mode {config.split_mode!r} needs views {missing} for the {split} split, but the scan has "
                f"only {view_count} views (0..{view_count - 1})",
            )
        if not views:
            raise DatasetFormatError(config.data, f"the {split} split of split_mode {config.split_mode!r} is empty")
        return views

    def _generate_dataparser_outputs(self, split: str = "train", **kwargs) -> DataparserOutputs:
        config = self.config
        scene = self.read_scene()
        views = self.split_views(split, len(scene))
        cameras = self.intrinsics_for_mode(scene.cameras)
        transform, scale = world_normalization(scene.scale_mat, Path(config.data) / config.cameras_file)
        object_masks = None if scene.mask_paths is None else [scene.mask_paths[i] for i in views]
        mask_filenames = None
        if config.use_masks:
            if object_masks is None:
                raise DatasetFormatError(Path(config.data) / "mask", "missing folder: object masks (for --use-masks)")
            mask_filenames = [self.single_channel_mask(path) for path in object_masks]
        return DataparserOutputs(
            image_filenames=[scene.image_paths[i] for i in views],
            # The readers use OpenCV's pixel convention; nerfstudio casts rays through pixel centres at +0.5.
            cameras=cameras.to_nerfstudio(views, pixel_offset=0.5),
            scene_box=self.scene_box(cameras),
            mask_filenames=mask_filenames,
            dataparser_transform=torch.from_numpy(transform).float(),
            dataparser_scale=scale,
            metadata={
                "near": config.near,
                "far": config.far,
                "view_indices": views,
                "object_mask_filenames": object_masks,
                "scale_mat": torch.from_numpy(scene.scale_mat[0]).float(),
            },
        )

    def intrinsics_for_mode(self, cameras: PinholeCameras) -> PinholeCameras:
        """Apply focal_mode and principal_point; both are computed over ALL views, whatever the split."""
        if self.config.focal_mode == "mean":
            focal = np.full(len(cameras), float(np.mean((cameras.fx + cameras.fy) / 2)))
            cameras = replace(cameras, fx=focal, fy=focal.copy())
        if self.config.principal_point == "image_centre":
            # InfoNeRF's rays go through integer pixel coordinates minus W/2: OpenCV convention with cx = W/2.
            cameras = replace(
                cameras,
                cx=np.full(len(cameras), cameras.width / 2.0),
                cy=np.full(len(cameras), cameras.height / 2.0),
            )
        return cameras

    def scene_box(self, cameras: PinholeCameras) -> SceneBox:
        bound = self.config.scene_box_bound
        if bound is None:
            bound = 1.1 * max(1.0, float(np.abs(cameras.camera_to_world[:, :3, 3]).max()))
        return SceneBox(aabb=torch.tensor([[-bound] * 3, [bound] * 3], dtype=torch.float32))

    def single_channel_mask(self, path: Path) -> Path:
        """``path`` if it has one channel, else a cached single-channel copy (nerfstudio's loader needs one)."""
        with Image.open(path) as image:
            if image.mode in ("L", "1"):
                return path
        cache = self.config.mask_cache_dir or Path(tempfile.gettempdir()) / "nerfstudio_methods_dtu_masks"
        key = hashlib.sha1(str(path.resolve().parent).encode()).hexdigest()[:16]
        target = cache / key / path.name
        if not target.exists() or target.stat().st_mtime < path.stat().st_mtime:
            encoded = io.BytesIO()
            Image.fromarray(read_dtu_mask(path).astype(np.uint8) * 255).save(encoded, format="PNG")
            write_atomically(target, encoded.getvalue())  # processes sharing the cache never read half a PNG
        return target


def world_normalization(scale_mats: Float[np.ndarray, "n 4 4"], path: Path) -> tuple[Float[np.ndarray, "3 4"], float]:
    """nerfstudio's ``dataparser_transform`` and ``dataparser_scale`` (normalised = scale * (transform @ DTU)).

    ``scale_mat`` maps the normalised world into DTU's; it must be one uniform scale plus a translation, the same for
    every view (true of IDR, NeuS, pixelNeRF and MonoSDF files): nerfstudio's transform is rigid.
    """
    first = scale_mats[0]
    if not np.allclose(scale_mats, first, rtol=1e-6, atol=1e-6 * np.abs(first).max()):
        raise DatasetFormatError(path, "scale_mat_<i> differ between views: the views would be in different worlds")
    diagonal = np.diag(first)[:3]
    if not (np.allclose(first[:3, :3], np.diag(diagonal)) and np.allclose(diagonal, diagonal[0], rtol=1e-6)):
        raise DatasetFormatError(path, "scale_mat_0 is not a uniform scale plus a translation")
    transform = np.eye(4)[:3]
    transform[:, 3] = -first[:3, 3]
    return transform, 1.0 / float(diagonal[0])


dtu_dataparser = DataParserSpecification(
    config=DtuDataParserConfig(),
    description="DTU scans (IDR/NeuS/pixelNeRF or MonoSDF layout) with InfoNeRF / RegNeRF few-view splits",
)
