"""N3DV (Neural 3D Video) and Meet Room multi-view videos (``../shared/papers/streamrf.md`` §3).

Layout of one scene::

    <scene>/cam00.mp4 ... cam20.mp4    N3DV (some ids missing: unsynchronised cameras were deleted)
    <scene>/cam_0.mp4 ... cam_12.mp4   Meet Room
    <scene>/poses_bounds.npy           one row per video, in the order of the sorted camera ids

Camera 0 (``cam00`` / ``cam_0``), the centre camera, is the test camera in both datasets. Videos sort by their
integer id (``cam_10`` after ``cam_9``). ``poses_bounds.npy`` stores H, W and f of the full-resolution videos;
the principal point is the image centre and fx = fy = f, as in StreamRF's loader.

StreamRF's ``prepare_dataset.py`` also writes a PNG layout, ``<scene>/frames/<t:04d>/images/camNN.png`` with a
copy of ``poses_bounds.npy`` in every ``frames/<t:04d>/``; :func:`read_prepared_frame` reads one such frame.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

import cv2
import numpy as np
import torch
from jaxtyping import Float, Int, UInt8
from nerfstudio.cameras.cameras import Cameras, CameraType
from nerfstudio.data.dataparsers.base_dataparser import DataParserConfig, DataparserOutputs
from nerfstudio.plugins.registry_dataparser import DataParserSpecification

from dataparsers._common import (
    DatasetFormatError,
    PinholeCameras,
    common_image_size,
    first_line,
    read_image,
    require_dir,
    require_file,
)
from dataparsers.llff import LLFF
from dataparsers.poses_bounds import read_poses_bounds
from nerfstudio_methods import compat
from nerfstudio_methods.timeline import time_of_frame

# nerfstudio imports this module (an entry point) at the start of every ns-* command: install the fixes first.
compat.install()

_VIDEO_NAME = re.compile(r"^cam_?(\d+)\.mp4$", re.IGNORECASE)
_IMAGE_NAME = re.compile(r"^cam_?(\d+)\.png$", re.IGNORECASE)

TEST_CAMERA_ID = 0
"""``cam00`` (N3DV README) / ``cam_0`` (StreamRF issue #10) is held out for testing."""


@dataclass(frozen=True)
class N3dvScene:
    """Cameras of one multi-view video scene; one source file per camera."""

    sources: tuple[Path, ...]
    """The camera's ``.mp4`` video, or for a prepared frame (:func:`read_prepared_frame`) its ``.png`` image."""
    camera_ids: Int[np.ndarray, " n"]
    """Integer id parsed from the file name (``cam07.mp4`` -> 7), ascending."""
    cameras: PinholeCameras
    """In the world of ``poses_bounds.npy`` (no recentring or rescaling); principal point at the image centre; size of
    the frames this scene's readers return (after ``downscale``)."""
    near_far: Float[np.ndarray, "n 2"]

    def __len__(self) -> int:
        return len(self.sources)

    @property
    def test_camera_index(self) -> int | None:
        """Position of camera 0 (the test camera) in this scene, or None if its video is missing."""
        matches = np.flatnonzero(self.camera_ids == TEST_CAMERA_ID)
        return int(matches[0]) if matches.size else None


def _sorted_by_camera_id(folder: Path, pattern: re.Pattern[str], what: str) -> tuple[list[Path], list[int]]:
    """Files of ``folder`` named like ``cam<id>`` / ``cam_<id>``, sorted by the integer id."""
    found = sorted((int(m.group(1)), p) for p in folder.iterdir() if (m := pattern.match(p.name)))
    if not found:
        raise DatasetFormatError(folder, f"holds no {what}")
    ids = [camera_id for camera_id, _ in found]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise DatasetFormatError(folder, f"camera ids {duplicates} appear in more than one file name")
    return [path for _, path in found], ids


def list_n3dv_videos(scene_dir: Path) -> list[Path]:
    """``cam*.mp4`` videos of a scene, sorted by integer camera id (the order of the rows of poses_bounds.npy)."""
    scene_dir = require_dir(Path(scene_dir), "N3DV / Meet Room scene")
    return _sorted_by_camera_id(scene_dir, _VIDEO_NAME, "cam<id>.mp4 / cam_<id>.mp4 videos")[0]


def _scene_from_poses(
    poses_path: Path, sources: list[Path], ids: list[int], size: tuple[int, int], downscale: float
) -> N3dvScene:
    """Pair sources with the rows of poses_bounds.npy and scale the intrinsics to the returned frame size."""
    poses = read_poses_bounds(poses_path)
    if len(poses) != len(sources):
        raise DatasetFormatError(poses_path, f"has {len(poses)} cameras but the scene has {len(sources)} videos/images")
    if downscale <= 0:
        raise ValueError(f"downscale must be positive, got {downscale}")
    source_width, source_height = size
    # Like cv2.resize(fx=1/downscale), StreamRF's --scale: N3DV 2704x2028 at downscale 2 -> 1352x1014.
    width, height = round(source_width / downscale), round(source_height / downscale)
    # poses_bounds holds the full-resolution H, W, f; the stored videos may already be smaller.
    scale_x, scale_y = width / poses.width, height / poses.height
    if not np.allclose(scale_x, scale_y, rtol=1e-2):
        raise DatasetFormatError(
            poses_path,
            f"image size {poses.width[0]:g}x{poses.height[0]:g} does not match the aspect ratio of the "
            f"{source_width}x{source_height} frames",
        )
    camera_to_world = np.tile(np.eye(4), (len(poses), 1, 1))
    camera_to_world[:, :3, :4] = poses.camera_to_world
    return N3dvScene(
        sources=tuple(sources),
        camera_ids=np.asarray(ids, dtype=np.int64),
        cameras=PinholeCameras(
            camera_to_world=camera_to_world,
            fx=poses.focal * scale_x,
            fy=poses.focal * scale_y,
            cx=np.full(len(poses), width / 2.0),
            cy=np.full(len(poses), height / 2.0),
            width=width,
            height=height,
        ),
        near_far=poses.near_far,
    )


def read_n3dv_scene(scene_dir: Path, downscale: float = 1.0) -> N3dvScene:
    """Read the cameras of an N3DV / Meet Room scene; frames come from :func:`read_n3dv_frame`.

    ``downscale`` divides the returned frame size (StreamRF: N3DV 2, Meet Room 1); the intrinsics follow. All
    videos must share the size of the first one, which is probed without decoding pixels.
    """
    scene_dir = require_dir(Path(scene_dir), "N3DV / Meet Room scene")
    videos, ids = _sorted_by_camera_id(scene_dir, _VIDEO_NAME, "cam<id>.mp4 / cam_<id>.mp4 videos")
    sizes = [video_size(video) for video in videos]
    for video, size in zip(videos, sizes):
        if size != sizes[0]:
            raise DatasetFormatError(video, f"frame size {size} differs from {sizes[0]} of {videos[0].name}")
    return _scene_from_poses(scene_dir / "poses_bounds.npy", videos, ids, sizes[0], downscale)


def _decodes_with_pyav(use_pyav: bool | None) -> bool:
    # nerfstudio depends on PyAV, which seeks to the nearest keyframe; imageio-ffmpeg's pipe reader is the fallback.
    return use_pyav if use_pyav is not None else importlib.util.find_spec("av") is not None


def _decoder_error(path: Path, err: BaseException) -> DatasetFormatError:
    # ffmpeg's messages run to dozens of lines of build configuration; the first line carries the reason.
    return DatasetFormatError(path, f"unreadable video ({first_line(err, limit=None)})")


_FFMPEG_ERRORS = (OSError, RuntimeError, ValueError, KeyError)
"""What imageio-ffmpeg's reader raises for a file it cannot read (KeyError: a header without the field asked for)."""


def _pyav_errors() -> tuple[type[BaseException], ...]:
    from av import FFmpegError

    return (FFmpegError, OSError, ValueError)


@contextlib.contextmanager
def _decoder_errors(path: Path, errors: tuple[type[BaseException], ...]) -> Iterator[None]:
    """The decoder's ``errors`` as one DatasetFormatError naming the video; the package's own pass unchanged."""
    try:
        yield
    except DatasetFormatError:
        raise
    except errors as err:
        raise _decoder_error(path, err) from None


def _ffmpeg_reader(path: Path) -> Any:
    """imageio's v2 ffmpeg reader (typed Any: imageio's stubs give only the base class of its plugins)."""
    import imageio.v2 as iio2

    return iio2.get_reader(path, format="ffmpeg")


@contextlib.contextmanager
def _pyav_video_stream(path: Path) -> Iterator[tuple[Any, Any]]:
    """The opened container and its first video stream (PyAV)."""
    import av

    with av.open(str(path)) as container:
        if not container.streams.video:
            raise DatasetFormatError(path, "holds no video stream")
        yield container, container.streams.video[0]


def _pyav_frames_from(path: Path, first: int) -> Iterator[tuple[int, Any]]:
    """``(frame number, PyAV frame)`` from the keyframe before frame ``first`` to the end, decoded once.

    PyAV directly rather than imageio's pyav plugin: that plugin runs ``gc.collect()`` twice on every close, which
    costs about a second per call in a process holding torch and nerfstudio.
    """
    with _pyav_video_stream(path) as (container, stream):
        rate, time_base = stream.average_rate or stream.guessed_rate, stream.time_base
        start = stream.start_time or 0
        # Timestamp units per frame, assuming a constant frame rate (true of N3DV and Meet Room; imageio assumes it too).
        pts_per_frame = float(1 / (rate * time_base)) if rate and time_base else None
        if pts_per_frame is not None and first > 0:
            container.seek(start + round(first * pts_per_frame), stream=stream, backward=True)
        for position, frame in enumerate(container.decode(stream)):
            if pts_per_frame is None or frame.pts is None:
                yield position, frame
            else:
                yield round((frame.pts - start) / pts_per_frame), frame


def video_size(path: Path, use_pyav: bool | None = None) -> tuple[int, int]:
    """(width, height) of a video's frames, from its stream header; ``use_pyav=None`` picks PyAV when installed."""
    require_file(path, "video")
    if _decodes_with_pyav(use_pyav):
        with _decoder_errors(path, _pyav_errors()), _pyav_video_stream(path) as (_, stream):
            return int(stream.codec_context.width), int(stream.codec_context.height)
    with _decoder_errors(path, _FFMPEG_ERRORS), _ffmpeg_reader(path) as reader:
        width, height = reader.get_meta_data()["size"]
        return int(width), int(height)


def _decode_pyav(path: Path, frame_index: int) -> np.ndarray | None:
    """Seek to the keyframe before ``frame_index`` and decode forward; None when the video is shorter."""
    for index, frame in _pyav_frames_from(path, frame_index):
        if index == frame_index:
            return frame.to_ndarray(format="rgb24")
        if index > frame_index:
            raise DatasetFormatError(
                path, f"frame {frame_index} is missing (the decoder went from before it to {index})"
            )
    return None


def decode_video_frame(path: Path, frame_index: int, use_pyav: bool | None = None) -> UInt8[np.ndarray, "h w 3"]:
    """Frame ``frame_index`` (0-based) of a video as RGB uint8; ``use_pyav=None`` picks PyAV when installed."""
    require_file(path, "video")
    if frame_index < 0:
        raise ValueError(f"frame_index must be >= 0, got {frame_index}")
    if _decodes_with_pyav(use_pyav):
        with _decoder_errors(path, _pyav_errors()):
            frame = _decode_pyav(path, frame_index)
    else:
        try:
            with _ffmpeg_reader(path) as reader:
                frame = reader.get_data(frame_index)
        except IndexError:  # imageio-ffmpeg's answer past the last frame
            frame = None
        except (OSError, RuntimeError, ValueError) as err:
            raise _decoder_error(path, err) from None
    if frame is None:
        raise DatasetFormatError(path, f"has no frame {frame_index}")
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise DatasetFormatError(path, f"decoded to {frame.dtype} {frame.shape}, expected 8-bit RGB frames")
    return frame


def video_frame_count_and_fps(path: Path, use_pyav: bool | None = None) -> tuple[int, float]:
    """(number of frames, frames per second) of a video from its container header, without decoding pixels.

    Falls back to counting decoded frames when the header has no frame count (some muxers leave it 0).
    """
    require_file(path, "video")
    if _decodes_with_pyav(use_pyav):
        with _decoder_errors(path, _pyav_errors()), _pyav_video_stream(path) as (container, stream):
            rate = stream.average_rate or stream.guessed_rate
            count = int(stream.frames or 0)
            if count <= 0:
                count = sum(1 for _ in container.decode(stream))
            return count, float(rate) if rate else 0.0
    with _decoder_errors(path, _FFMPEG_ERRORS), _ffmpeg_reader(path) as reader:
        return int(reader.count_frames()), float(reader.get_meta_data().get("fps", 0.0))


def iter_video_frames(
    path: Path, frame_numbers: Sequence[int], use_pyav: bool | None = None
) -> Iterator[tuple[int, UInt8[np.ndarray, "h w 3"]]]:
    """Decode a video once, front to back, yielding ``(frame number, RGB frame)`` for the wanted frame numbers.

    Holds one frame in memory at a time; decoding starts at the keyframe before the first wanted frame (PyAV) and
    stops after the last. Raises :class:`DatasetFormatError` if the video ends before a wanted frame.
    """
    require_file(path, "video")
    wanted = sorted(set(int(n) for n in frame_numbers))
    if not wanted:
        return
    if wanted[0] < 0:
        raise ValueError(f"frame numbers must be >= 0, got {wanted[0]}")
    remaining = iter(wanted)
    target = next(remaining)
    last_seen = -1

    def frames_ffmpeg() -> Iterator[tuple[int, np.ndarray]]:
        with _ffmpeg_reader(path) as reader:
            for index, frame in enumerate(reader):
                yield index, np.asarray(frame)

    if _decodes_with_pyav(use_pyav):
        frames = ((index, frame.to_ndarray(format="rgb24")) for index, frame in _pyav_frames_from(path, wanted[0]))
        errors = _pyav_errors()
    else:
        frames, errors = frames_ffmpeg(), (OSError, RuntimeError, ValueError)
    with _decoder_errors(path, errors):
        for index, frame in frames:
            last_seen = index
            if index < target:
                continue
            if index > target:
                raise DatasetFormatError(
                    path, f"frame {target} is missing (the decoder went from before it to {index})"
                )
            yield index, frame
            target = next(remaining, None)
            if target is None:
                return
    raise DatasetFormatError(path, f"has no frame {target} (it ends after frame {last_seen})")


def _resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    if image.shape[:2] == (height, width):
        return image
    # INTER_AREA, as StreamRF's loaders use when they apply --scale.
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


def read_n3dv_frame(scene: N3dvScene, frame_index: int = 0) -> UInt8[np.ndarray, "n h w 3"]:
    """Frame ``frame_index`` of every camera, resized to the scene's size: shape (cameras, height, width, 3).

    For a prepared frame (PNG sources) ``frame_index`` must be 0: each ``frames/<t>`` folder is its own scene.
    """
    frames = []
    for source in scene.sources:
        if source.suffix.lower() == ".png":
            if frame_index != 0:
                raise ValueError("a prepared frame holds a single time step; read frames/<t:04d> for time t")
            frame = read_image(source)
            if frame.shape[2] != 3:
                raise DatasetFormatError(source, f"expected an RGB image, found {frame.shape[2]} channels")
        else:
            frame = decode_video_frame(source, frame_index)
        frames.append(_resize(frame, scene.cameras.width, scene.cameras.height))
    return np.stack(frames)


def list_prepared_frames(scene_dir: Path) -> list[Path]:
    """``frames/<t:04d>`` folders of StreamRF's prepared layout, sorted by time."""
    frames_dir = require_dir(Path(scene_dir) / "frames", "StreamRF prepared frames (frames/)")
    frames = sorted((p for p in frames_dir.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name))
    if not frames:
        raise DatasetFormatError(frames_dir, "holds no numbered frame folders")
    return frames


def read_prepared_frame(frame_dir: Path, downscale: float = 1.0) -> N3dvScene:
    """One time step of StreamRF's prepared layout: ``images/cam*.png`` and that folder's ``poses_bounds.npy``."""
    frame_dir = Path(frame_dir)
    image_dir = require_dir(frame_dir / "images", "prepared images (images/)")
    images, ids = _sorted_by_camera_id(image_dir, _IMAGE_NAME, "cam<id>.png images")
    return _scene_from_poses(frame_dir / "poses_bounds.npy", images, ids, common_image_size(images), downscale)


# --- frame cache ----------------------------------------------------------------------------------------------


def _video_signature(path: Path) -> dict[str, int]:
    stat = path.stat()
    return {"bytes": int(stat.st_size), "mtime_ns": int(stat.st_mtime_ns)}


def cached_frame_path(cache_dir: Path, frame_number: int, camera_id: int) -> Path:
    """Where frame ``frame_number`` of camera ``camera_id`` is cached: ``<cache>/<frame:05d>/cam<id:02d>.png``."""
    return cache_dir / f"{frame_number:05d}" / f"cam{camera_id:02d}.png"


def _write_png_atomically(path: Path, image: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    Image.fromarray(image).save(staging, format="PNG")
    os.replace(staging, path)  # readers never see a half-written image


def cache_video_frames(
    scene: N3dvScene,
    camera_positions: Sequence[int],
    frame_numbers: Sequence[int],
    cache_dir: Path,
    log: Callable[[str], None] = lambda message: None,
) -> dict[tuple[int, int], Path]:
    """Decode the wanted frames of the wanted cameras once into ``cache_dir`` (PNG, at the scene's size).

    Each video is decoded at most once per call, front to back, holding one frame in memory. Frames already cached
    from the same video file (same size and modification time, recorded in ``cache_dir/videos.json``) are reused.
    Returns ``{(camera position, frame number): png path}``.
    """
    cache_dir.mkdir(parents=True, exist_ok=True)
    index_path = cache_dir / "videos.json"
    try:
        index = json.loads(index_path.read_text()) if index_path.is_file() else {}
    except (OSError, ValueError):
        index = {}  # a damaged index only costs a re-decode
    paths: dict[tuple[int, int], Path] = {}
    for position in camera_positions:
        video = scene.sources[position]
        camera_id = int(scene.camera_ids[position])
        signature = {**_video_signature(video), "width": scene.cameras.width, "height": scene.cameras.height}
        fresh = index.get(video.name) == signature
        wanted = {n: cached_frame_path(cache_dir, n, camera_id) for n in frame_numbers}
        missing = [n for n, path in wanted.items() if not (fresh and path.is_file())]
        if missing:
            log(f"decoding {video.name}: {len(missing)} frame(s) into {cache_dir}")
            for frame_number, frame in iter_video_frames(video, missing):
                resized = _resize(frame, scene.cameras.width, scene.cameras.height)
                _write_png_atomically(wanted[frame_number], resized)
            index[video.name] = signature
            staging = index_path.with_name(f".videos.json.{os.getpid()}.tmp")
            staging.write_text(json.dumps(index, indent=1, sort_keys=True))
            os.replace(staging, index_path)
        paths.update({(position, n): path for n, path in wanted.items()})
    return paths


# --- nerfstudio dataparser ``n3dv-data`` ------------------------------------------------------------------------

N3DV_DOWNSCALE = 2
"""N3DV is captured at 2704x2028 and everyone trains at 1352x1014 (StreamRF ``--scale 0.5``; brief §3)."""
MEET_ROOM_DOWNSCALE = 1
"""Meet Room is 1280x720 and StreamRF trains it at full size (``--scale 1.0``)."""
MEET_ROOM_CAMERAS = 13
"""Meet Room: 13 synchronised Azure Kinect cameras, ``cam_0.mp4`` ... ``cam_12.mp4`` (brief §3)."""

Layout = Literal["auto", "n3dv", "meetroom"]


def detect_layout(videos: Sequence[Path]) -> Literal["n3dv", "meetroom"]:
    """``meetroom`` when the videos are named ``cam_<id>.mp4``, ``n3dv`` for ``cam<NN>.mp4``; mixed names raise."""
    underscored = {video.name.lower().startswith("cam_") for video in videos}
    if len(underscored) > 1:
        raise DatasetFormatError(
            videos[0].parent, "mixes N3DV (camNN.mp4) and Meet Room (cam_N.mp4) video names; use one naming"
        )
    return "meetroom" if underscored.pop() else "n3dv"


def default_frame_cache_dir(data: Path, downscale: int) -> Path:
    """``<scene>/frames_cache/x<downscale>`` if the scene folder is writable, else a per-scene folder in ~/.cache."""
    if os.access(data, os.W_OK):
        return data / "frames_cache" / f"x{downscale}"
    root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "nerfstudio_methods" / "n3dv"
    key = hashlib.sha1(str(data.resolve()).encode()).hexdigest()[:16]
    return root / f"{data.name}-{key}" / f"x{downscale}"


@dataclass
class N3dvDataParserConfig(DataParserConfig):
    """N3DV / Meet Room multi-view videos (``camNN.mp4`` or ``cam_N.mp4`` + ``poses_bounds.npy``)."""

    _target: type = field(default_factory=lambda: N3dv)
    data: Path = Path("data/n3dv/coffee_martini")
    """Scene folder holding the camera videos and poses_bounds.npy."""
    layout: Layout = "auto"
    """"n3dv" (cam00.mp4 ...), "meetroom" (cam_0.mp4 ... cam_12.mp4: exactly 13 cameras required) or "auto"
    (detected from the video names)."""
    downscale_factor: Optional[int] = None
    """Divide the video frames' width and height by this (cv2 INTER_AREA, as StreamRF's ``--scale``). None: 2 for
    N3DV (2704x2028 -> 1352x1014), 1 for Meet Room."""
    frame_start: int = 0
    """First video frame used (0-based)."""
    num_frames: Optional[int] = None
    """Number of frames used from ``frame_start`` on (after ``fps`` subsampling); None: to the end of the videos.
    The published N3DV protocol uses the first 300 frames (flame_salmon_1 has 1200)."""
    fps: Optional[float] = None
    """Frame rate to train at: every round(video fps / fps)-th frame is used. None: every frame (30 fps)."""
    test_camera_id: int = TEST_CAMERA_ID
    """Camera id held out for evaluation (cam00 / cam_0, the centre camera); all others train."""
    frame_cache_dir: Optional[Path] = None
    """Where decoded frames are cached as PNGs; None: <data>/frames_cache/x<downscale> (or ~/.cache when the scene
    folder is read-only). Each video is decoded once; later runs reuse the cache."""
    bd_factor: float = 0.75
    """Scale the scene so that the nearest depth bound becomes 1 / bd_factor (NeRF's load_llff_data)."""
    recenter: bool = True
    """Move the average camera to the origin with identity rotation (NeRF's recenter_poses)."""
    scene_box_margin: float = 0.1
    """Relative margin of the scene box around the cameras and their frusta (see ``llff-data``)."""


@dataclass(frozen=True)
class FrameSelection:
    """The video frames a run uses: ``frame_numbers[k]`` is shown at normalised time ``k / (len - 1)``."""

    frame_numbers: tuple[int, ...]
    video_fps: float

    @property
    def fps(self) -> float:
        step = self.frame_numbers[1] - self.frame_numbers[0] if len(self.frame_numbers) > 1 else 1
        return self.video_fps / step if self.video_fps > 0 else 30.0 / step

    def times(self) -> np.ndarray:
        count = len(self.frame_numbers)
        return time_of_frame(np.arange(count, dtype=np.float64), count)


def select_frames(
    video_frames: int, video_fps: float, start: int, count: int | None, fps: float | None, where: Path
) -> FrameSelection:
    """Frame numbers for a frame range and target frame rate, with one clear error if the videos are too short."""
    if start < 0:
        raise DatasetFormatError(where, f"frame_start must be >= 0, got {start}")
    step = 1
    if fps is not None:
        if fps <= 0:
            raise DatasetFormatError(where, f"fps must be positive, got {fps}")
        if video_fps > 0 and fps > video_fps * 1.001:
            raise DatasetFormatError(where, f"fps {fps:g} is above the videos' {video_fps:g} fps")
        step = max(1, round(video_fps / fps)) if video_fps > 0 else 1
    available = len(range(start, video_frames, step))
    if available == 0:
        raise DatasetFormatError(where, f"frame_start {start} is past the end of the videos ({video_frames} frames)")
    if count is not None:
        if count < 1:
            raise DatasetFormatError(where, f"num_frames must be >= 1, got {count}")
        if count > available:
            raise DatasetFormatError(
                where,
                f"asks for {count} frames from frame {start} (every {step}) but the videos have {video_frames} frames",
            )
        available = count
    return FrameSelection(tuple(range(start, start + available * step, step)), video_fps)


@dataclass
class N3dv(LLFF):
    """``n3dv-data``: one image per (camera, frame), frame-major, with ``Cameras.times`` in [0, 1].

    Built on ``llff-data`` (:class:`dataparsers.llff.LLFF`): the same poses_bounds reading, ``bd_factor`` scaling and
    recentring, and scene box. The test split is the held-out camera (cam00 / cam_0) at every selected frame; the
    train split is every other camera at every selected frame. Images come from the on-disk frame cache, so
    nerfstudio loads only the images it is asked for (the StreamRF datamanager loads one frame at a time).

    ``metadata``: ``frame_index`` (per image, 0..T-1), ``num_frames`` T, ``frame_numbers`` (video frame of each
    time step), ``fps``, ``camera_ids`` (per image), ``ndc_intrinsics`` (fx, fy, width, height of the capture,
    which define StreamRF's NDC space), ``near_far``.
    """

    config: N3dvDataParserConfig  # type: ignore[assignment]
    includes_time: bool = True

    def __post_init__(self) -> None:
        self._probed: tuple[N3dvScene, str, FrameSelection] | None = None

    def downscale(self, layout: str) -> int:
        if self.config.downscale_factor is not None:
            if self.config.downscale_factor < 1:
                raise DatasetFormatError(
                    self.config.data, f"downscale_factor must be >= 1, got {self.config.downscale_factor}"
                )
            return self.config.downscale_factor
        return MEET_ROOM_DOWNSCALE if layout == "meetroom" else N3DV_DOWNSCALE

    def probe(self) -> tuple[N3dvScene, str, FrameSelection]:
        """Cameras, layout and frame selection, checked once per parser: videos of one size and one length."""
        if self._probed is not None:
            return self._probed
        data = require_dir(Path(self.config.data), "N3DV / Meet Room scene folder")
        videos = list_n3dv_videos(data)
        detected = detect_layout(videos)
        layout = detected if self.config.layout == "auto" else self.config.layout
        if self.config.layout != "auto" and layout != detected:
            expected = "cam_<id>.mp4" if layout == "meetroom" else "cam<NN>.mp4"
            raise DatasetFormatError(data, f"--layout {layout} expects videos named {expected}, found {videos[0].name}")
        if self.config.layout == "meetroom" and len(videos) != MEET_ROOM_CAMERAS:
            raise DatasetFormatError(
                data, f"Meet Room has {MEET_ROOM_CAMERAS} cameras (cam_0 ... cam_12), found {len(videos)} videos"
            )
        scene = read_n3dv_scene(data, downscale=self.downscale(layout))
        counts = [video_frame_count_and_fps(video) for video in videos]
        lengths = [count for count, _ in counts]
        if len(set(lengths)) > 1:
            shortest = int(np.argmin(lengths))
            longest = int(np.argmax(lengths))
            raise DatasetFormatError(
                videos[shortest],
                f"has {lengths[shortest]} frames but {videos[longest].name} has {lengths[longest]}: "
                "the videos must be synchronised and of one length",
            )
        selection = select_frames(
            lengths[0], counts[0][1], self.config.frame_start, self.config.num_frames, self.config.fps, data
        )
        if scene.test_camera_index is None and self.config.test_camera_id == TEST_CAMERA_ID:
            raise DatasetFormatError(data, "has no camera 0 video (cam00.mp4 / cam_0.mp4), the held-out test camera")
        if self.config.test_camera_id not in scene.camera_ids.tolist():
            raise DatasetFormatError(data, f"has no video for the test camera id {self.config.test_camera_id}")
        self._probed = (scene, layout, selection)
        return self._probed

    def _generate_dataparser_outputs(self, split: str = "train", **kwargs) -> DataparserOutputs:
        from nerfstudio.utils.rich_utils import CONSOLE

        scene, layout, selection = self.probe()
        test_position = int(np.flatnonzero(scene.camera_ids == self.config.test_camera_id)[0])
        if split == "train":
            positions = [i for i in range(len(scene)) if i != test_position]
        else:
            positions = [test_position]
        cache_dir = self.config.frame_cache_dir or default_frame_cache_dir(
            Path(self.config.data), self.downscale(layout)
        )
        paths = cache_video_frames(scene, positions, selection.frame_numbers, Path(cache_dir), log=CONSOLE.print)
        cameras_np = scene.cameras
        camera_to_world, near_far, transform, scale = self.normalize(
            cameras_np.camera_to_world[:, :3, :], scene.near_far
        )
        num_frames = len(selection.frame_numbers)
        times = selection.times()
        image_positions = [(frame, position) for frame in range(num_frames) for position in positions]
        chosen = np.array([position for _, position in image_positions], dtype=np.int64)
        frame_index = np.array([frame for frame, _ in image_positions], dtype=np.int64)

        def column(values: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))[:, None]

        cameras = Cameras(
            camera_to_worlds=torch.from_numpy(np.ascontiguousarray(camera_to_world[chosen], np.float32)),
            fx=column(cameras_np.fx[chosen]),
            fy=column(cameras_np.fy[chosen]),
            cx=column(cameras_np.cx[chosen]),
            cy=column(cameras_np.cy[chosen]),
            width=cameras_np.width,
            height=cameras_np.height,
            camera_type=CameraType.PERSPECTIVE,
            times=torch.from_numpy(times[frame_index]).float(),
        )
        # StreamRF's NDC space is defined by the capture's (shared) intrinsics: ndc_coeffs = (2 fx / W, 2 fy / H).
        reference = 0
        ndc_intrinsics = torch.tensor(
            [cameras_np.fx[reference], cameras_np.fy[reference], cameras_np.width, cameras_np.height],
            dtype=torch.float64,
        )
        return DataparserOutputs(
            image_filenames=[paths[(position, selection.frame_numbers[frame])] for frame, position in image_positions],
            cameras=cameras,
            scene_box=self.scene_box(camera_to_world, near_far, cameras_np.fx, cameras_np.width, cameras_np.height),
            dataparser_scale=scale,
            dataparser_transform=torch.from_numpy(transform).float(),
            metadata={
                "forward_facing": True,  # the viewer starts at a training camera (compat)
                "frame_index": torch.from_numpy(frame_index),
                "num_frames": num_frames,
                "frame_numbers": list(selection.frame_numbers),
                "fps": selection.fps,
                "camera_ids": [int(scene.camera_ids[p]) for p in chosen],
                "layout": layout,
                "ndc_intrinsics": ndc_intrinsics,
                "near_far": torch.from_numpy(near_far[chosen]).float(),
                "near": float(near_far[:, 0].min()),
                "far": float(near_far[:, 1].max()),
            },
        )


n3dv_dataparser = DataParserSpecification(
    config=N3dvDataParserConfig(),
    description="N3DV / Meet Room multi-view videos (camNN.mp4 or cam_N.mp4 + poses_bounds.npy), cam00 held out, "
    "frames decoded once into an on-disk cache, Cameras.times in [0, 1]",
)
