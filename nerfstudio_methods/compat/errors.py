"""Clear errors. nerfstudio's ``ns-*`` commands print a full traceback for any exception. A malformed dataset raises
:class:`~nerfstudio_methods.input_errors.DatasetFormatError` deep inside ``ns-train`` (an impossible setting
:class:`~nerfstudio_methods.input_errors.SettingError`; both are ``InputError``); the command then prints that one
message (file or option, and problem) instead of a stack trace, and exits with status 2. So
does any error escaping nerfstudio's checkpoint loading (``ns-eval``, ``ns-render``, ``ns-viewer``,
``ns-train --load-dir``): a truncated or corrupt checkpoint, or an empty or missing checkpoint folder, is one line
naming the file; and any error escaping nerfstudio's own dataparsers or datasets while they read a file
(``blender-data`` on a missing or empty folder, a malformed ``transforms_*.json``, an unreadable image).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

from nerfstudio_methods.compat.run_folder import remove_unused_run_folder


def print_input_errors_without_traceback() -> None:
    """Chain a ``sys.excepthook`` that reports our input errors (bad dataset, bad config) in one line."""
    import sys

    from nerfstudio_methods.input_errors import InputError

    previous = sys.excepthook

    def excepthook(kind: type[BaseException], error: BaseException, trace: Any) -> None:
        remove_unused_run_folder()  # the launch failed before training was set up
        if isinstance(error, InputError):
            message: Optional[str] = str(error)
        else:
            message = checkpoint_error_message(error, trace) or dataset_error_message(error, trace)
        if message is not None:
            print(f"error: {message}", file=sys.stderr)
            sys.stderr.flush()
            stop_child_processes()
            os._exit(2)
        previous(kind, error, trace)

    sys.excepthook = excepthook


def stop_child_processes() -> None:
    """Terminate this process's worker processes before ``os._exit``: nerfstudio's parallel data manager (nerfacto's
    default) runs its ray-batch workers through ``multiprocessing`` / ``multiprocess``, and ``os._exit`` skips the
    atexit handler that stops them, so they lived on, holding the command's stdout and stderr open."""
    import sys

    for name in ("multiprocessing", "multiprocess"):
        module = sys.modules.get(name)
        if module is None or not hasattr(module, "active_children"):
            continue
        for child in module.active_children():
            child.terminate()
        for child in module.active_children():
            child.join(timeout=5)


# Where nerfstudio loads checkpoints: ns-eval / ns-render / ns-viewer (eval_utils) and ns-train --load-dir (Trainer).
_CHECKPOINT_LOADERS = {("eval_utils.py", "eval_load_checkpoint"), ("trainer.py", "_load_checkpoint")}


# Where nerfstudio's own dataparsers and datasets read files (blender-data, nerfstudio-data, ... and their images).
_DATA_READERS = {"_generate_dataparser_outputs", "get_dataparser_outputs", "get_numpy_image", "get_image_float32"}
_PATH_LOCALS = ("uri", "filename", "image_filename", "fname", "file_path", "path")


def _frames(trace: Any) -> list[Any]:
    """The frames of a traceback, outermost first."""
    frames = []
    while trace is not None:
        frames.append(trace.tb_frame)
        trace = trace.tb_next
    return frames


def _in_nerfstudio(frame: Any) -> bool:
    return "nerfstudio" in Path(frame.f_code.co_filename).parts


def dataset_error_message(error: BaseException, trace: Any) -> Optional[str]:
    """``<file>: <problem>`` when ``error`` escaped a nerfstudio dataparser or dataset reading a file (a missing or
    empty folder, a missing, malformed or unreadable file), else None."""
    from nerfstudio_methods.input_errors import first_line

    frames = _frames(trace)
    if not any(f.f_code.co_name in _DATA_READERS and _in_nerfstudio(f) for f in frames):
        return None
    if isinstance(error, OSError) and error.filename:
        path = Path(str(error.filename))
        if not path.parent.is_dir():
            return f"{path.parent}: folder not found (looking for {path.name})"
        return f"{path}: {error.strerror or first_line(error)}"
    for frame in reversed(frames):  # the innermost frame that names the file it was reading (a reader's own
        # argument, e.g. imageio's `uri`, before a caller's loop variable)
        for name in _PATH_LOCALS:
            value = frame.f_locals.get(name)
            if isinstance(value, (str, Path)) and str(value):
                kind = "JSON" if str(value).endswith(".json") else "file"
                return f"{value}: unreadable {kind} ({type(error).__name__}: {first_line(error)})"
    return None


def checkpoint_error_message(error: BaseException, trace: Any) -> Optional[str]:
    """``<checkpoint>: cannot load this checkpoint (...)`` when ``error`` escaped nerfstudio's checkpoint loading
    (a truncated or corrupt file, or one of another model), else None. The file is read from the loader's frame."""
    from nerfstudio_methods.input_errors import first_line

    loaders = [
        f
        for f in _frames(trace)
        if _in_nerfstudio(f) and (Path(f.f_code.co_filename).name, f.f_code.co_name) in _CHECKPOINT_LOADERS
    ]
    if not loaders:
        return None
    frame_locals = loaders[-1].f_locals
    checkpoint = frame_locals.get("load_path") or frame_locals.get("load_checkpoint")
    if checkpoint is None:
        folder = frame_locals.get("load_dir")
        if folder is None:
            return None
        if isinstance(error, (FileNotFoundError, IndexError)):
            return f"{folder}: no checkpoint (step-*.ckpt) to load here"
        checkpoint = folder
    return f"{checkpoint}: cannot load this checkpoint ({type(error).__name__}: {first_line(error)})"
