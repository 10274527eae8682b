"""``dynamic-scene-data``: NVIDIA Dynamic Scenes in DynamicNeRF's layout, as MonoNeRF trains on them.

One scene is a "monocular video" over a camera rig: frame i is camera i at time i, nerfstudio time i / (N - 1)
(../shared/papers/mononerf.md §3 and §6). The files are read by :mod:`dataparsers.nvidia_dynamic`; this module turns
them into what the MonoNeRF model and datamanager consume:

- the training split: the supervised frames of every scene, each camera carrying its time and its scene index
  (``Cameras.metadata["scene_index"]``, which nerfstudio copies into ``RayBundle.metadata``);
- the whole video of every scene as a :class:`SceneVideo` (images, cameras, and the optional disparity, optical flow
  and motion masks at the training resolution) in ``DataparserOutputs.metadata["scenes"]``. These are model inputs,
  never nerfstudio sampling masks (mononerf.md §6);
- an evaluation split: DynamicNeRF's protocol (one rig camera at every time), MonoNeRF's camera x time grid from
  ``multiview_GT/``, the unseen-frames setup (train on the first k frames, evaluate on the rest), or the training
  frames themselves when no multi-view ground truth exists.

Poses follow DynamicNeRF's pipeline (mononerf.md §3): LLFF axes to OpenGL, scale by 1 / (5th-percentile near *
0.9), recentre on the average camera; the same :func:`dataparsers.llff.normalize_poses` as ``llff-data``. Each scene
is normalised on its own, as MonoNeRF loads every scene separately.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Dict, List, Literal, Optional, Tuple, Type

import numpy as np
import numpy.typing as npt
import torch
from jaxtyping import Bool, Float, Int
from nerfstudio.cameras.cameras import Cameras, CameraType
from nerfstudio.data.dataparsers.base_dataparser import DataParser, DataParserConfig, DataparserOutputs
from nerfstudio.data.datasets.base_dataset import InputDataset
from nerfstudio.data.scene_box import SceneBox
from nerfstudio.plugins.registry_dataparser import DataParserSpecification
from PIL import Image
from torch import Tensor

from dataparsers._common import DatasetFormatError, SettingError, image_size, require_dir
from dataparsers.llff import frustum_scene_box, normalize_poses
from dataparsers.nvidia_dynamic import (
    NvidiaDynamicScene,
    read_disparity,
    read_flow,
    read_frame,
    read_motion_mask,
    read_nvidia_dynamic_scene,
)
from nerfstudio_methods import compat

# nerfstudio imports this module (an entry point) at the start of every ns-* command: install the fixes first.
compat.install()

EvalSplit = Literal["auto", "view0", "grid", "unseen-frames", "training-frames"]
IgnorablePart = Literal["disparity", "flow", "motion-masks"]

MULTIVIEW_GT = "multiview_GT"
"""MonoNeRF's multi-view ground truth folder (mononerf.md §3): every rig camera at every time."""

OPTIONAL_PARTS = {
    "disparity": "disparity (disp/)",
    "flow": "optical flow (flow/)",
    "motion_mask": "motion masks (motion_masks/)",
}
"""Human names of the optional per-frame inputs, as :attr:`SceneVideo.missing` lists them."""


def multiview_gt_path(scene_dir: Path, time: int, camera: int) -> Path:
    """Ground truth of rig camera ``camera`` at frame ``time`` (both 0-based).

    MonoNeRF's ``readimage_gt`` numbers both from 1: ``multiview_GT/{t+1:08d}/cam{c+1:02d}.jpg`` (mononerf.md §3).
    The files are at images/ resolution; :class:`DynamicSceneDataset` resizes them to the training size.
    """
    return Path(scene_dir) / MULTIVIEW_GT / f"{time + 1:08d}" / f"cam{camera + 1:02d}.jpg"


@dataclass
class SceneVideo:
    """One scene's whole monocular video at training resolution (mononerf.md §3): frame i = camera i at time i.

    Shared, read-only model input: ``InputDataset`` deep-copies its metadata, so :meth:`__deepcopy__` returns this
    object itself instead of a second copy of the whole video.
    """

    name: str
    images: Float[Tensor, "t h w 3"]
    """float32 in [0, 1]."""
    cameras: Cameras
    """The T frames' cameras in the scene's normalised world, times i / (T - 1), metadata {"scene_index": (T, 1)}."""
    disparity: Optional[Float[Tensor, "t h w"]]
    """Raw disparity of disp/*.npy (MiDaS: unknown affine scale), nearest-resized to the training size."""
    motion_mask: Optional[Bool[Tensor, "t h w"]]
    """True where the scene moves (motion_masks/*.png / 255 > 1e-3)."""
    flow_forward: Optional[Float[Tensor, "t h w 2"]]
    """Frame i -> i + 1 as (dx, dy) in pixels of the training resolution; zeros for the last frame."""
    flow_forward_mask: Optional[Float[Tensor, "t h w"]]
    """Forward/backward consistency mask of ``flow_forward``; zeros for the last frame."""
    flow_backward: Optional[Float[Tensor, "t h w 2"]]
    """Frame i -> i - 1 as (dx, dy) in pixels; zeros for the first frame."""
    flow_backward_mask: Optional[Float[Tensor, "t h w"]]
    """Consistency mask of ``flow_backward``; zeros for the first frame."""
    supervised_frames: int
    """Frames [0, k) are training frames: k = T except in the unseen-frames setup (mononerf.md §0)."""
    motion_mask_derived: bool = False
    """True when ``motion_mask`` was derived during training (the static branch's error, MonoNeRF pipeline) rather
    than read from motion_masks/: frames without a derived mask are then all "moving" (unknown)."""

    @property
    def num_frames(self) -> int:
        return int(self.images.shape[0])

    @property
    def missing(self) -> Tuple[str, ...]:
        """Human names of the absent optional parts, e.g. ("optical flow (flow/)", "motion masks (motion_masks/)")."""
        absent = {
            "disparity": self.disparity is None,
            "flow": self.flow_forward is None,
            "motion_mask": self.motion_mask is None,
        }
        return tuple(OPTIONAL_PARTS[key] for key, is_absent in absent.items() if is_absent)

    def __deepcopy__(self, memo: dict) -> SceneVideo:
        return self

    def to(self, device: torch.device | str) -> SceneVideo:
        """A copy with every tensor (and the cameras) on ``device``; absent parts stay None."""
        moved = {
            item.name: getattr(self, item.name).to(device)
            for item in fields(self)
            if isinstance(getattr(self, item.name), (Tensor, Cameras))
        }
        return replace(self, **moved)


@dataclass
class _Scene:
    """One scene as parsed: its folder, reader output, normalised poses and loaded video."""

    path: Path
    raw: NvidiaDynamicScene
    camera_to_world: Float[np.ndarray, "t 3 4"]
    near_far: Float[np.ndarray, "t 2"]
    transform: Float[np.ndarray, "3 4"]
    scale: float
    video: SceneVideo


@dataclass
class DynamicSceneDataParserConfig(DataParserConfig):
    """NVIDIA Dynamic Scenes in DynamicNeRF's layout, one or several scenes (mononerf.md §3 and §6)."""

    _target: Type = field(default_factory=lambda: DynamicSceneDataParser)
    data: Path = Path("data/nvidia_dynamic/Balloon1")
    """Scene folder (poses_bounds.npy, images/ or images_N/, optional disp/, flow/, motion_masks/, multiview_GT/);
    scene index 0 (mononerf.md §3)."""
    extra_scenes: Tuple[Path, ...] = ()
    """More scene folders for multi-scene training (scene index 1, 2, ...); each is normalised on its own, as
    MonoNeRF loads every scene separately (mononerf.md §0: Balloon1 + Balloon2)."""
    downscale_factor: int = 1
    """1 reads images/, N reads images_N/ (MonoNeRF trains on images_2/); the focal length is divided by N and
    disparity, flow and masks are resized to that size (mononerf.md §3)."""
    bd_factor: float = 0.9
    """The scene is scaled so that the near bound (see `near_percentile`) becomes 1 / bd_factor; DynamicNeRF's
    load_llff_data uses 0.9 (mononerf.md §3)."""
    near_percentile: float = 5.0
    """Percentile of the near bounds that `bd_factor` refers to: DynamicNeRF scales by 1 / (np.percentile(near, 5) *
    0.9) (mononerf.md §3); 0 takes the minimum, as NeRF / llff-data do."""
    eval_split: EvalSplit = "auto"
    """auto: unseen-frames when training_frames > 0, else view0 when every scene has multiview_GT/, else the training
    frames (with a warning). view0: DynamicNeRF's protocol, camera `eval_camera` at every time. grid: every camera x
    every time (MonoNeRF's 144-image protocol). Both read multiview_GT/ (mononerf.md §3)."""
    training_frames: int = 0
    """> 0: the unseen-frames setup: supervise frames [0, k) and evaluate frames k..T-1 at their own cameras
    (mononerf.md §0, "unseen frames"). 0: every frame is a training frame."""
    eval_camera: int = 0
    """Rig camera of the view0 split (DynamicNeRF evaluates camera 0, `v000_tXXX`; mononerf.md §3)."""
    scene_box_margin: float = 0.1
    """Relative margin of the scene box around the cameras and their frusta (as llff-data)."""
    ignore_parts: Tuple[IgnorablePart, ...] = ()
    """Optional inputs to leave unread even when present (disparity, flow, motion-masks): what a scene without them
    trains like (the MonoNeRF benchmark measures what each part is worth)."""


@dataclass
class DynamicSceneDataParser(DataParser):
    """Parser for ``dynamic-scene-data``; frame i of a scene is camera i at time i / (T - 1)."""

    config: DynamicSceneDataParserConfig
    includes_time: bool = True
    _scenes: Optional[List[_Scene]] = field(default=None, init=False, repr=False)

    @property
    def scene_paths(self) -> List[Path]:
        return [Path(self.config.data), *(Path(p) for p in self.config.extra_scenes)]

    def scenes(self) -> List[_Scene]:
        """Every scene, read once per parser (nerfstudio parses the train and the eval split from one instance)."""
        if self._scenes is None:
            self._scenes = [self._load_scene(path, index) for index, path in enumerate(self.scene_paths)]
        return self._scenes

    # ------------------------------------------------------------------------------------------------ loading

    def _load_scene(self, path: Path, index: int) -> _Scene:
        require_dir(path, "dynamic scene folder (poses_bounds.npy, images/, ...)")
        raw = read_nvidia_dynamic_scene(path, factor=self.config.downscale_factor)
        count = len(raw)
        supervised = self._supervised_frames(path, count)
        camera_to_world, near_far, transform, scale = normalize_poses(
            raw.cameras.camera_to_world[:, :3, :4],
            raw.near_far,
            self.config.bd_factor,
            recenter=True,
            near_percentile=self.config.near_percentile,
        )
        height, width = raw.cameras.height, raw.cameras.width
        cameras = _cameras(
            camera_to_world,
            raw.cameras.fx,
            raw.cameras.fy,
            raw.cameras.cx,
            raw.cameras.cy,
            np.full(count, width),
            np.full(count, height),
            raw.times,
            np.full(count, index),
        )
        video = SceneVideo(
            name=path.name,
            images=torch.from_numpy(np.stack([read_frame(p, width, height) for p in raw.image_paths])),
            cameras=cameras,
            disparity=None,
            motion_mask=None,
            flow_forward=None,
            flow_forward_mask=None,
            flow_backward=None,
            flow_backward_mask=None,
            supervised_frames=supervised,
        )
        ignored = set(self.config.ignore_parts)
        if raw.disparity_paths is not None and "disparity" not in ignored:
            video.disparity = torch.from_numpy(
                np.stack([read_disparity(p, height, width) for p in raw.disparity_paths])
            )
        if raw.motion_mask_paths is not None and "motion-masks" not in ignored:
            video.motion_mask = torch.from_numpy(
                np.stack([read_motion_mask(p, height, width) for p in raw.motion_mask_paths])
            )
        if raw.flow_forward_paths is not None and raw.flow_backward_paths is not None and "flow" not in ignored:
            video.flow_forward, video.flow_forward_mask = _stack_flows(raw.flow_forward_paths, height, width)
            video.flow_backward, video.flow_backward_mask = _stack_flows(raw.flow_backward_paths, height, width)
        return _Scene(path, raw, camera_to_world, near_far, transform, scale, video)

    def _supervised_frames(self, path: Path, count: int) -> int:
        k = self.config.training_frames
        if k < 0 or k >= count or (k == 0 and self.config.eval_split == "unseen-frames"):
            raise SettingError(
                "--training-frames",
                f"must be in 1..{count - 1} for the unseen-frames setup ({path} has {count} frames; "
                f"0 trains on all of them), got {k}",
            )
        return k if k > 0 else count

    # ------------------------------------------------------------------------------------------------ splits

    def resolve_eval_split(self) -> EvalSplit:
        """The evaluation split "auto" stands for (see :attr:`DynamicSceneDataParserConfig.eval_split`)."""
        split = self.config.eval_split
        if split != "auto":
            return split
        if self.config.training_frames > 0:
            return "unseen-frames"
        without = [p for p in self.scene_paths if not (p / MULTIVIEW_GT).is_dir()]
        if not without:
            return "view0"
        warnings.warn(
            f"dynamic-scene-data: no multi-view ground truth ({MULTIVIEW_GT}/) found in "
            f"{', '.join(str(p) for p in without)}; evaluating on the training frames (seen camera/time pairs) "
            "instead of novel views",
            stacklevel=2,
        )
        return "training-frames"

    def _views(self, split: str) -> Tuple[List[Tuple[int, int, int, Path]], Optional[EvalSplit]]:
        """(scene, frame, rig camera, image file) of every view of ``split``, and the resolved eval split."""
        scenes = self.scenes()
        if split == "train":
            return [
                (s, i, i, scene.raw.image_paths[i])
                for s, scene in enumerate(scenes)
                for i in range(scene.video.supervised_frames)
            ], None
        kind = self.resolve_eval_split()
        views: List[Tuple[int, int, int, Path]] = []
        for s, scene in enumerate(scenes):
            count, supervised = len(scene.raw), scene.video.supervised_frames
            if kind == "training-frames":
                views += [(s, i, i, scene.raw.image_paths[i]) for i in range(supervised)]
            elif kind == "unseen-frames":
                if supervised == count:
                    raise SettingError(
                        "--training-frames", "the unseen-frames eval split needs k > 0 (frames k.. are held out)"
                    )
                views += [(s, i, i, scene.raw.image_paths[i]) for i in range(supervised, count)]
            else:
                if kind == "view0":
                    if not 0 <= self.config.eval_camera < count:
                        raise SettingError("--eval-camera", f"must be in 0..{count - 1} for {scene.path}")
                    cameras = [self.config.eval_camera]
                else:
                    cameras = list(range(count))
                for t in range(count):
                    for c in cameras:
                        views.append((s, t, c, self._checked_gt(scene, t, c)))
        return views, kind

    def _checked_gt(self, scene: _Scene, time: int, camera: int) -> Path:
        path = multiview_gt_path(scene.path, time, camera)
        if not path.is_file():
            raise DatasetFormatError(path, f"missing multi-view ground truth (camera {camera} at frame {time})")
        width, height = image_size(path)
        expected = scene.raw.cameras.width / scene.raw.cameras.height
        if not np.isclose(width / height, expected, rtol=1e-2):
            raise DatasetFormatError(
                path,
                f"size {width}x{height} does not have the aspect ratio of the "
                f"{scene.raw.cameras.width}x{scene.raw.cameras.height} training images",
            )
        return path

    def _generate_dataparser_outputs(self, split: str = "train", **kwargs) -> DataparserOutputs:
        scenes = self.scenes()
        views, kind = self._views(split)
        if not views:
            raise SettingError("dynamic-scene-data", f"the {split} split is empty")
        scene_index = np.array([v[0] for v in views])
        frame_index = np.array([v[1] for v in views])
        camera_index = np.array([v[2] for v in views])
        # Rig camera c's pose and intrinsics at frame t's time: on the training video c == t.
        cameras = _cameras(
            np.stack([scenes[s].camera_to_world[c] for s, _, c, _ in views]),
            np.array([scenes[s].raw.cameras.fx[c] for s, _, c, _ in views]),
            np.array([scenes[s].raw.cameras.fy[c] for s, _, c, _ in views]),
            np.array([scenes[s].raw.cameras.cx[c] for s, _, c, _ in views]),
            np.array([scenes[s].raw.cameras.cy[c] for s, _, c, _ in views]),
            np.array([scenes[s].raw.cameras.width for s, _, _, _ in views]),
            np.array([scenes[s].raw.cameras.height for s, _, _, _ in views]),
            np.array([scenes[s].raw.times[t] for s, t, _, _ in views]),
            scene_index,
        )
        metadata: Dict[str, object] = {
            "forward_facing": True,  # the viewer starts at a training camera (compat)
            "scenes": [scene.video for scene in scenes],
            "scene_names": [scene.video.name for scene in scenes],
            "scene_index": torch.from_numpy(scene_index).long(),
            "frame_index": torch.from_numpy(frame_index).long(),
            "camera_index": torch.from_numpy(camera_index).long(),
            "near_far": torch.from_numpy(np.stack([scenes[s].near_far[c] for s, _, c, _ in views])).float(),
        }
        if kind is not None:
            metadata["eval_split"] = kind
        first = scenes[0]
        return DataparserOutputs(
            image_filenames=[v[3] for v in views],
            cameras=cameras,
            scene_box=self._scene_box(scenes),
            dataparser_transform=torch.from_numpy(first.transform).float(),
            dataparser_scale=first.scale,
            metadata=metadata,
        )

    def _scene_box(self, scenes: List[_Scene]) -> SceneBox:
        """The llff-data box (cameras and frusta to the far bound) of every scene, joined."""
        boxes = [
            frustum_scene_box(
                s.camera_to_world,
                s.near_far,
                s.raw.cameras.fx,
                s.raw.cameras.width,
                s.raw.cameras.height,
                self.config.scene_box_margin,
            ).aabb
            for s in scenes
        ]
        stacked = torch.stack(boxes)
        return SceneBox(aabb=torch.stack([stacked[:, 0].min(dim=0).values, stacked[:, 1].max(dim=0).values]))


def _cameras(
    camera_to_world: Float[np.ndarray, "n 3 4"],
    fx: Float[np.ndarray, " n"],
    fy: Float[np.ndarray, " n"],
    cx: Float[np.ndarray, " n"],
    cy: Float[np.ndarray, " n"],
    width: Int[np.ndarray, " n"],
    height: Int[np.ndarray, " n"],
    times: Float[np.ndarray, " n"],
    scene_index: Int[np.ndarray, " n"],
) -> Cameras:
    """nerfstudio Cameras with times and a per-camera scene index (copied into ``RayBundle.metadata``)."""

    def column(values: np.ndarray) -> Tensor:
        return torch.from_numpy(np.asarray(values, dtype=np.float32))[:, None]

    return Cameras(
        camera_to_worlds=torch.from_numpy(np.asarray(camera_to_world, dtype=np.float32)),
        fx=column(fx),
        fy=column(fy),
        cx=column(cx),
        cy=column(cy),
        width=torch.from_numpy(np.asarray(width, dtype=np.int64))[:, None],
        height=torch.from_numpy(np.asarray(height, dtype=np.int64))[:, None],
        camera_type=CameraType.PERSPECTIVE,
        times=column(times),
        metadata={"scene_index": torch.from_numpy(np.asarray(scene_index, dtype=np.int64))[:, None]},
    )


def _stack_flows(
    paths: Tuple[Optional[Path], ...], height: int, width: int
) -> Tuple[Float[Tensor, "t h w 2"], Float[Tensor, "t h w"]]:
    """Flows and masks of every frame; frames without a neighbour (None) get zero flow and a zero mask."""
    flows = np.zeros((len(paths), height, width, 2), np.float32)
    masks = np.zeros((len(paths), height, width), np.float32)
    for i, path in enumerate(paths):
        if path is not None:
            result = read_flow(path, height, width)
            flows[i], masks[i] = result.flow, result.mask
    return torch.from_numpy(flows), torch.from_numpy(masks)


class DynamicSceneDataset(InputDataset):
    """Images at their camera's size: multiview_GT/ is stored at images/ resolution, training may use images_N/.

    A file of another size is box-filtered (area average, as an image pyramid downscale) to the camera's width x
    height, so evaluation compares against ground truth at the training resolution (MonoNeRF halves its GT too;
    mononerf.md §3).
    """

    def get_numpy_image(self, image_idx: int) -> npt.NDArray[np.uint8]:
        path = self._dataparser_outputs.image_filenames[image_idx]
        size = (int(self.cameras.width[image_idx, 0]), int(self.cameras.height[image_idx, 0]))
        with Image.open(path) as pil_image:
            converted = pil_image if pil_image.mode in ("RGB", "RGBA", "L") else pil_image.convert("RGB")
            if converted.size != size:
                converted = converted.resize(size, resample=Image.Resampling.BOX)
            image = np.array(converted, dtype=np.uint8)
        if image.ndim == 2:
            image = np.repeat(image[:, :, None], 3, axis=2)
        return image


dynamic_scene_dataparser = DataParserSpecification(
    config=DynamicSceneDataParserConfig(),
    description="NVIDIA Dynamic Scenes (DynamicNeRF layout): monocular video + disparity/flow/motion masks, "
    "multi-scene, view0 / camera x time / unseen-frames evaluation",
)
