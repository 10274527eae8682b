"""Unfinished videos: ``ns-render`` on a video method's run keeps only the cameras whose time falls on a trained
frame (the pipeline's ``trained_cameras``) and says in one line how many frames are missing, instead of showing
the newest frame at every later time. A moved or copied StreamRF run reads the frames and checkpoints beside the
``config.yml`` it is loaded from (:func:`config_file_being_loaded`).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Optional

from nerfstudio_methods.compat import FixNotYetPossible


def render_only_trained_frames() -> None:
    """Wrap ``ns-render``'s ``_render_trajectory_video`` (looked up when a render command runs it): a pipeline with
    ``trained_cameras`` (a video method whose run may be unfinished) keeps only the cameras of trained frames and
    the video's length shrinks with them; none left is one line and exit status 2. Installed again from such a
    pipeline's set-up, since ``nerfstudio.scripts.render`` is still importing when plugins load."""
    import sys

    render = sys.modules.get("nerfstudio.scripts.render")
    if render is None:
        return  # this command renders no trajectory (ns-train, ns-eval, ns-viewer)
    original = getattr(render, "_render_trajectory_video", None)
    if original is None:
        raise FixNotYetPossible("nerfstudio's render script is still importing")
    if getattr(original, "_nerfstudio_methods", False):
        return

    @functools.wraps(original)
    def render_trained_frames(pipeline: Any, cameras: Any, *args: Any, **kwargs: Any) -> Any:
        select = getattr(pipeline, "trained_cameras", None)
        kept = select(cameras) if select is not None else None
        if kept is not None:
            if len(kept) == 0:
                print("error: no camera of this path falls on a trained frame of the run", file=sys.stderr)
                raise SystemExit(2)
            if "seconds" in kwargs:
                kwargs["seconds"] = kwargs["seconds"] * len(kept) / len(cameras)
            cameras = cameras[kept]
        return original(pipeline, cameras, *args, **kwargs)

    render_trained_frames._nerfstudio_methods = True  # type: ignore[attr-defined]
    render._render_trajectory_video = render_trained_frames  # type: ignore[attr-defined]


def config_file_being_loaded() -> Optional[Path]:
    """The ``config.yml`` that nerfstudio's ``eval_setup`` (``ns-eval``, ``ns-render``, ``ns-viewer``) is loading,
    when it is on the call stack: a config asked for its checkpoint folder from there can answer with the folder the
    file is in now, wherever the run was moved or copied to."""
    import sys

    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name == "eval_setup" and frame.f_globals.get("__name__") == "nerfstudio.utils.eval_utils":
            path = frame.f_locals.get("config_path")
            return Path(path) if path is not None else None
        frame = frame.f_back
    return None
