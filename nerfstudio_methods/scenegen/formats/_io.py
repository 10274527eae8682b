"""Atomic file writers: every file is written under a temporary hidden name, then renamed into place.

``os.replace`` within one folder is atomic, so an interrupted run leaves either the finished file or nothing under
the final name (at worst a hidden ``.<name>.partial-<pid><suffix>`` file, which is removed on normal errors).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

Logger = Callable[[str], None]


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path`` (same suffix, so tools that infer formats still work)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.partial-{os.getpid()}{path.suffix}")
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_image(path: Path, image: np.ndarray, quality: int = 95) -> Path:
    """Write a uint8 image: (H, W) -> L, (H, W, 3) -> RGB, (H, W, 4) -> RGBA. JPEG for .jpg, else PNG."""
    if image.dtype != np.uint8:
        raise TypeError(f"images must be uint8, got {image.dtype}")
    modes = {2: "L", 3: "RGB", 4: "RGBA"}
    mode = modes[2] if image.ndim == 2 else modes[image.shape[2]]
    pil_format = "JPEG" if path.suffix.lower() in (".jpg", ".jpeg") else "PNG"
    extra: dict[str, Any] = {"quality": quality} if pil_format == "JPEG" else {}
    with atomic_path(path) as temporary:
        Image.fromarray(image, mode=mode).save(temporary, format=pil_format, **extra)
    return path


def write_npy(path: Path, array: np.ndarray) -> Path:
    with atomic_path(path) as temporary, open(temporary, "wb") as handle:
        np.save(handle, array)
    return path


def write_npz(path: Path, **arrays: np.ndarray) -> Path:
    with atomic_path(path) as temporary, open(temporary, "wb") as handle:
        np.savez(handle, **arrays)  # pyright: ignore[reportArgumentType]
    return path


def write_text(path: Path, text: str) -> Path:
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")
    return path


def write_json(path: Path, content: dict[str, Any]) -> Path:
    return write_text(path, json.dumps(content, indent=4) + "\n")


def write_mp4(path: Path, frames: Iterable[np.ndarray], fps: float = 30.0, crf: int = 12) -> Path:
    """H.264 (libx264, yuv420p) mp4 via imageio-ffmpeg, as N3DV's videos are.

    ``crf`` 12 keeps read-back error small; frame sizes must be multiples of 16 (``macro_block_size=16``), so ffmpeg
    never resizes the frames.
    """
    import imageio.v2 as imageio

    with atomic_path(path) as temporary:
        writer = imageio.get_writer(
            str(temporary),
            format="FFMPEG",  # pyright: ignore[reportArgumentType]
            mode="I",
            fps=fps,
            codec="libx264",
            pixelformat="yuv420p",
            macro_block_size=16,
            quality=None,
            ffmpeg_params=["-crf", str(crf), "-preset", "medium"],
            ffmpeg_log_level="error",
        )
        try:
            for frame in frames:
                writer.append_data(frame)  # pyright: ignore[reportAttributeAccessIssue]
        finally:
            writer.close()
    return path


@dataclass
class WriteSummary:
    """What a format writer produced."""

    format: str
    root: Path
    files: list[Path] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def add(self, path: Path) -> Path:
        self.files.append(path)
        return path

    def describe(self) -> str:
        groups: dict[str, int] = {}
        for path in self.files:
            parts: tuple[str, ...] = path.relative_to(self.root).parts
            key = f"{parts[0]}/" if len(parts) > 1 else path.name
            groups[key] = groups.get(key, 0) + 1
        lines = [f"wrote {len(self.files)} files of format '{self.format}' under {self.root}"]
        lines += [f"  {name}: {count} file{'s' if count != 1 else ''}" for name, count in sorted(groups.items())]
        lines += [f"  {key} = {value}" for key, value in self.details.items()]
        return "\n".join(lines)


def no_log(message: str) -> None:
    """Default progress callback: silent."""
    del message
