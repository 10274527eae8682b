"""ShapeNet SRN scenes (SRN / pixelNeRF / 3Da-AE layout, ``../shared/papers/3da-ae.md`` §3).

Layout of one instance ``<split>/<shapenet_model_id>/``::

    rgb/000000.png ...      128x128 PNG, white background
    pose/000000.txt ...     16 floats, row-major 4x4 camera-to-world, OpenCV camera axes (1 line or 4 lines)
    intrinsics.txt          line 1 "f cx cy 0.", line 2 barycentre, line 3 scale, line 4 "height width",
                            optional line 5 world2cam flag (SRN ``util.py::parse_intrinsics``)

The units trap (3da-ae.md §3): cars_train's intrinsics are for 512x512 images while the PNGs are 128x128, so f, cx
and cy are rescaled by ``image_width / width_from_line_4``. Cameras come back in nerfstudio's OpenGL axes
(x right, y up, z back): OpenCV camera-to-world ``@ diag(1, -1, -1, 1)``, as pixelNeRF's ``_coord_trans``.

``srn-data`` (:class:`SrnDataParser`) turns a range of instances into one multi-scene nerfstudio dataset, as 3Da-AE
reads cars_train (3da-ae.md §3 and §6): views below the camera-height threshold dropped, the first 10 sorted views of
each scene held out, every camera tagged with its scene's local index (``Cameras.metadata["scene_index"]``, which
nerfstudio copies into ``RayBundle.metadata``; the one carrier of the scene index to the model), SRN units kept (cameras at radius 1.3, objects in ``[-1, 1]^3``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Type

import numpy as np
import torch
from jaxtyping import Float, Int
from nerfstudio.cameras.cameras import Cameras, CameraType
from nerfstudio.data.dataparsers.base_dataparser import DataParser, DataParserConfig, DataparserOutputs
from nerfstudio.data.scene_box import SceneBox
from nerfstudio.plugins.registry_dataparser import DataParserSpecification
from torch import Tensor

from dataparsers._common import (
    OPENCV_TO_OPENGL,
    DatasetFormatError,
    PinholeCameras,
    check_camera_poses,
    image_size,
    list_images,
    require_dir,
    require_file,
)
from nerfstudio_methods import compat

# nerfstudio imports this module (an entry point) at the start of every ns-* command: install the fixes first.
compat.install()

MIN_CAMERA_HEIGHT = -0.5
"""3Da-AE's view filter (``preprocess_shapenet_above.py``, 3da-ae.md §3): keep views whose camera centre has world
z (the OpenCV pose's ``pose[11]``, i.e. ``[2, 3]``) above -0.5, giving ``cars_above_train``."""
NUM_EVAL_VIEWS = 10
"""3Da-AE's ``ObjectDataset`` holds out the first 10 sorted views of every scene (3da-ae.md §3)."""
SCENE_BOUND = 1.0
"""Half-size of the scene box: EG3D / 3Da-AE tri-planes span ``box_warp`` 2, i.e. ``[-1, 1]^3`` (3da-ae.md §6)."""
EVAL_SPLITS = ("val", "test")


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

    An image without ``pose/<stem>.txt`` is an error naming that file; so is a pose file without an image.

    Only the first image's header is read for the image size (SRN renders every view of an instance alike).
    """
    instance_dir = require_dir(Path(instance_dir), "SRN instance")
    images = list_images(instance_dir / "rgb")
    pose_dir = require_dir(instance_dir / "pose", "SRN poses (pose/)")
    poses = [pose_dir / f"{image.stem}.txt" for image in images]
    for image, pose in zip(images, poses):
        if not pose.is_file():
            raise DatasetFormatError(pose, f"missing pose file for image rgb/{image.name} (files pair by name)")
    extra = sorted({p.name for p in pose_dir.glob("*.txt")} - {p.name for p in poses})
    if extra:
        raise DatasetFormatError(
            pose_dir,
            f"has {len(poses) + len(extra)} pose files but rgb/ has {len(images)} images ({extra[0]} has no image)",
        )
    width, height = image_size(images[0])
    intrinsics, world_to_camera = read_srn_intrinsics(instance_dir / "intrinsics.txt", width, height)
    matrices = np.stack([read_srn_pose(pose) for pose in poses])
    if world_to_camera:
        # SRN's optional line-5 flag says the pose files store world-to-camera matrices.
        matrices = np.linalg.inv(matrices)
    check_camera_poses(instance_dir / "pose", matrices, [pose.name for pose in poses])
    count = len(matrices)
    fx, fy, cx, cy = (np.full(count, value) for value in intrinsics)
    return SrnInstance(
        name=instance_dir.name,
        image_paths=tuple(images),
        cameras=PinholeCameras(
            camera_to_world=matrices @ OPENCV_TO_OPENGL, fx=fx, fy=fy, cx=cx, cy=cy, width=width, height=height
        ),
    )


# ------------------------------------------------------------------------------------------------------ srn-data


@dataclass
class SrnDataParserConfig(DataParserConfig):
    """ShapeNet SRN instances (e.g. cars_train) as one multi-scene dataset, 3Da-AE's way (3da-ae.md §3 and §6)."""

    _target: Type = field(default_factory=lambda: SrnDataParser)
    data: Path = Path("data/shapenet")
    """Folder holding the split folder (``data/<split>/<instance id>/``), or the split folder itself."""
    split: str = "cars_train"
    """Split folder below `data`; when ``data/<split>`` is not a folder, `data` itself is the split folder. 3Da-AE
    trains on cars_train only (3da-ae.md §3)."""
    scene_start: int = 0
    """Local scene 0 is the instance at this position in the instances sorted by id (3Da-AE's unsorted glob order
    is not reproducible; 3da-ae.md §3)."""
    num_scenes: Optional[int] = None
    """How many instances from `scene_start` (None: all the rest)."""
    min_camera_height: Optional[float] = MIN_CAMERA_HEIGHT
    """Keep only views whose camera centre has world z above this (3Da-AE's cars_above_train filter, -0.5;
    3da-ae.md §3). None keeps every view."""
    num_eval_views: int = NUM_EVAL_VIEWS
    """The first N sorted kept views of each scene are the val/test split, the rest train (3Da-AE's
    ObjectDataset, 10; 3da-ae.md §3)."""


@dataclass(frozen=True)
class SrnScene:
    """One selected instance and how its kept views split."""

    instance: SrnInstance
    train_views: tuple[int, ...]
    """Indices into ``instance.image_paths`` of the training views, sorted."""
    eval_views: tuple[int, ...]
    """The held-out views (the first `num_eval_views` kept ones), sorted."""


@dataclass
class SrnDataParser(DataParser):
    """Parser for ``srn-data``: every view of the selected scenes, cameras tagged with their local scene index.

    Cameras keep SRN's world and units (z up, cameras at radius 1.3, ``dataparser_transform`` the identity and
    ``dataparser_scale`` 1), in nerfstudio's OpenGL axes, with the intrinsics rescaled to the stored PNGs. The
    principal point of ``intrinsics.txt`` is used as is: SRN's cx = cy = 256 at 512 px is the image centre, W / 2,
    with pixel centres at +0.5 as in EG3D's ray sampler (3Da-AE; normalised cx = 0.5) and in nerfstudio.
    """

    config: SrnDataParserConfig
    _scenes: Optional[List[SrnScene]] = field(default=None, init=False, repr=False)

    def split_dir(self) -> Path:
        """``data/<split>`` when that is a folder, else ``data`` itself."""
        data = require_dir(Path(self.config.data), "SRN data (the split folder or the folder holding it)")
        candidate = data / self.config.split
        return candidate if candidate.is_dir() else data

    def instance_dirs(self) -> List[Path]:
        """The selected instance folders, sorted by id: positions ``scene_start .. scene_start + num_scenes - 1``."""
        split_dir = self.split_dir()
        instances = list_srn_instances(split_dir)
        start, count, available = self.config.scene_start, self.config.num_scenes, len(instances)
        if count is not None and count < 1:
            raise DatasetFormatError(split_dir, f"--num-scenes must be at least 1, got {count}")
        stop = available if count is None else start + count
        if not 0 <= start < available or stop > available:
            wanted = f"--scene-start {start}"
            if count is not None:
                wanted += f" --num-scenes {count} (scenes {start}..{stop - 1})"
            raise DatasetFormatError(
                split_dir, f"holds {available} instance folders (scenes 0..{available - 1}), out of range for {wanted}"
            )
        return instances[start:stop]

    def scenes(self) -> List[SrnScene]:
        """Every selected scene, read once per parser (nerfstudio parses the train and the eval split from one)."""
        if self._scenes is None:
            if self.config.num_eval_views < 0:
                raise DatasetFormatError(
                    self.split_dir(), f"--num-eval-views must be at least 0, got {self.config.num_eval_views}"
                )
            self._scenes = [self._split_scene(read_srn_instance(path)) for path in self.instance_dirs()]
        return self._scenes

    def _split_scene(self, instance: SrnInstance) -> SrnScene:
        kept = kept_views(instance.cameras.camera_to_world, self.config.min_camera_height)
        held_out = self.config.num_eval_views
        if len(kept) <= held_out:
            height = self.config.min_camera_height
            if height is None:
                kept_text = f"{len(instance)} views"
            else:
                kept_text = (
                    f"{len(kept)} of {len(instance)} views have camera height > {height:g} (--min-camera-height)"
                )
            raise DatasetFormatError(
                instance.image_paths[0].parent.parent,
                f"no training views left: {kept_text}, the first {held_out} held out (--num-eval-views)",
            )
        return SrnScene(instance, train_views=tuple(kept[held_out:]), eval_views=tuple(kept[:held_out]))

    def _views(self, split: str) -> List[Tuple[int, int]]:
        """(local scene index, view index in the instance) of every image of ``split``, scene by scene."""
        views = [
            (s, v)
            for s, scene in enumerate(self.scenes())
            for v in (scene.train_views if split == "train" else scene.eval_views)
        ]
        if not views:
            raise DatasetFormatError(
                self.split_dir(), f"the {split} split is empty: --num-eval-views is 0, so no views are held out"
            )
        return views

    def _generate_dataparser_outputs(self, split: str = "train", **kwargs) -> DataparserOutputs:
        if split != "train" and split not in EVAL_SPLITS:
            raise ValueError(f"srn-data: unknown split {split!r} (train, val or test)")
        scenes = self.scenes()
        views = self._views(split)
        for s, v in views:
            check_image(scenes[s].instance, v)
        scene_index = torch.tensor([s for s, _ in views], dtype=torch.long)
        cameras = srn_cameras([scenes[s].instance.cameras for s, _ in views], [v for _, v in views], scene_index)
        assert cameras.metadata is not None
        metadata: Dict[str, object] = {
            # A view of the cameras' column, not a second copy: to list the images by scene (``ns-eval``'s
            # per-scene means, benchmarks). The model reads the scene of what it renders from the cameras.
            "scene_index": cameras.metadata["scene_index"][:, 0],
            "scene_names": [scene.instance.name for scene in scenes],
            "num_scenes": len(scenes),
            "scene_start": self.config.scene_start,
            "view_names": [scenes[s].instance.image_paths[v].stem for s, v in views],
        }
        return DataparserOutputs(
            image_filenames=[scenes[s].instance.image_paths[v] for s, v in views],
            cameras=cameras,
            # SRN renders on white (3da-ae.md §3): RGBA files are composited onto it, as 3Da-AE's [..., :3] sees them.
            alpha_color=torch.ones(3),
            scene_box=SceneBox(aabb=torch.tensor([[-SCENE_BOUND] * 3, [SCENE_BOUND] * 3], dtype=torch.float32)),
            dataparser_transform=torch.eye(4)[:3],
            dataparser_scale=1.0,
            metadata=metadata,
        )


def kept_views(camera_to_world: Float[np.ndarray, "n 4 4"], min_camera_height: Optional[float]) -> List[int]:
    """Indices of the views whose camera centre has world z > ``min_camera_height`` (all when None; 3da-ae.md §3).

    The centre is the translation column, the same for the OpenCV and the OpenGL camera-to-world.
    """
    if min_camera_height is None:
        return list(range(len(camera_to_world)))
    return [int(i) for i in np.flatnonzero(camera_to_world[:, 2, 3] > min_camera_height)]


def check_image(instance: SrnInstance, view: int) -> None:
    """Raise naming the file when a view's PNG is unreadable or not the size ``intrinsics.txt`` was rescaled to."""
    path = instance.image_paths[view]
    expected = (instance.cameras.width, instance.cameras.height)
    size = image_size(path)
    if size != expected:
        raise DatasetFormatError(
            path,
            f"image size {size[0]}x{size[1]} differs from {expected[0]}x{expected[1]} of the instance's first view",
        )


def srn_cameras(per_view: List[PinholeCameras], view_indices: List[int], scene_index: Int[Tensor, " v"]) -> Cameras:
    """nerfstudio PERSPECTIVE cameras of view ``view_indices[i]`` of ``per_view[i]``, with ``metadata["scene_index"]``
    ``[V, 1]`` (copied per ray into ``RayBundle.metadata`` by ``Cameras.generate_rays``)."""

    def column(values: List[float], dtype: torch.dtype = torch.float32) -> Tensor:
        return torch.tensor(values, dtype=dtype)[:, None]

    pairs = list(zip(per_view, view_indices))
    camera_to_world: Float[Tensor, "v 3 4"] = torch.from_numpy(
        np.stack([cams.camera_to_world[v, :3, :4] for cams, v in pairs]).astype(np.float32)
    )
    return Cameras(
        camera_to_worlds=camera_to_world,
        fx=column([float(cams.fx[v]) for cams, v in pairs]),
        fy=column([float(cams.fy[v]) for cams, v in pairs]),
        cx=column([float(cams.cx[v]) for cams, v in pairs]),
        cy=column([float(cams.cy[v]) for cams, v in pairs]),
        width=column([cams.width for cams, _ in pairs], torch.long),
        height=column([cams.height for cams, _ in pairs], torch.long),
        camera_type=CameraType.PERSPECTIVE,
        metadata={"scene_index": scene_index[:, None]},
    )


srn_dataparser = DataParserSpecification(
    config=SrnDataParserConfig(),
    description="ShapeNet SRN instances (cars_train layout) as one multi-scene dataset: 3Da-AE's camera-height "
    "filter and first-10-views hold-out, cameras tagged with their scene index",
)
