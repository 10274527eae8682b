"""ffmpeg: ``ns-render`` writes videos through an ``ffmpeg`` found on PATH. When there is none, the binary shipped
in the ``imageio-ffmpeg`` wheel is put on PATH.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


def put_ffmpeg_on_path() -> Path | None:
    """Make ``ffmpeg`` resolvable on PATH, linking imageio-ffmpeg's bundled binary if no system one exists."""
    if shutil.which("ffmpeg"):
        return None
    import imageio_ffmpeg

    bundled = Path(imageio_ffmpeg.get_ffmpeg_exe())
    link_dir = Path(tempfile.gettempdir()) / f"nerfstudio-methods-bin-{os.getuid()}"
    link_dir.mkdir(parents=True, exist_ok=True)
    link = link_dir / "ffmpeg"
    if not (link.exists() and link.resolve() == bundled.resolve()):
        staging = link_dir / f".ffmpeg-{os.getpid()}"
        staging.unlink(missing_ok=True)
        staging.symlink_to(bundled)
        os.replace(staging, link)  # atomic, so concurrent ns-* processes never see a half-made link
    os.environ["PATH"] = f"{link_dir}{os.pathsep}{os.environ.get('PATH', '')}"
    return link
