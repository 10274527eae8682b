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

import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from jaxtyping import Float, Int, UInt8

from dataparsers._common import (
    DatasetFormatError,
    PinholeCameras,
    common_image_size,
    read_image,
    require_dir,
    require_file,
)
from dataparsers.poses_bounds import read_poses_bounds

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


def _use_pyav() -> bool:
    # nerfstudio depends on PyAV, which seeks to the nearest keyframe; imageio-ffmpeg's pipe reader is the fallback.
    return importlib.util.find_spec("av") is not None


def _decoder_error(path: Path, err: BaseException) -> DatasetFormatError:
    # ffmpeg's messages run to dozens of lines of build configuration; the first line carries the reason.
    first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return DatasetFormatError(path, f"unreadable video ({first_line})")


def _ffmpeg_reader(path: Path) -> Any:
    """imageio's v2 ffmpeg reader (typed Any: imageio's stubs give only the base class of its plugins)."""
    import imageio.v2 as iio2

    return iio2.get_reader(path, format="ffmpeg")


def _pyav_errors() -> tuple[type[BaseException], ...]:
    from av import FFmpegError

    return (FFmpegError, OSError, ValueError)


def video_size(path: Path, use_pyav: bool | None = None) -> tuple[int, int]:
    """(width, height) of a video's frames, from its stream header; ``use_pyav=None`` picks PyAV when installed."""
    require_file(path, "video")
    if use_pyav if use_pyav is not None else _use_pyav():
        import av

        try:
            with av.open(str(path)) as container:
                if not container.streams.video:
                    raise DatasetFormatError(path, "holds no video stream")
                context = container.streams.video[0].codec_context
                return int(context.width), int(context.height)
        except _pyav_errors() as err:
            if isinstance(err, DatasetFormatError):
                raise
            raise _decoder_error(path, err) from None
    try:
        with _ffmpeg_reader(path) as reader:
            width, height = reader.get_meta_data()["size"]
            return int(width), int(height)
    except (OSError, RuntimeError, ValueError, KeyError) as err:
        raise _decoder_error(path, err) from None


def _decode_pyav(path: Path, frame_index: int) -> np.ndarray | None:
    """Seek to the keyframe before ``frame_index`` and decode forward; None when the video is shorter.

    PyAV directly rather than imageio's pyav plugin: that plugin runs ``gc.collect()`` twice on every close, which
    costs about a second per call in a process holding torch and nerfstudio.
    """
    import av

    with av.open(str(path)) as container:
        if not container.streams.video:
            raise DatasetFormatError(path, "holds no video stream")
        stream = container.streams.video[0]
        rate, time_base = stream.average_rate or stream.guessed_rate, stream.time_base
        start = stream.start_time or 0
        # Timestamp units per frame, assuming a constant frame rate (true of N3DV and Meet Room; imageio assumes it too).
        pts_per_frame = float(1 / (rate * time_base)) if rate and time_base else None
        if pts_per_frame is not None and frame_index > 0:
            container.seek(start + round(frame_index * pts_per_frame), stream=stream, backward=True)
        for position, frame in enumerate(container.decode(stream)):
            if pts_per_frame is None or frame.pts is None:
                index = position
            else:
                index = round((frame.pts - start) / pts_per_frame)
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
    if use_pyav if use_pyav is not None else _use_pyav():
        try:
            frame = _decode_pyav(path, frame_index)
        except _pyav_errors() as err:
            if isinstance(err, DatasetFormatError):
                raise
            raise _decoder_error(path, err) from None
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
