"""Checkpoint files that an interruption or a full disk cannot break.

nerfstudio 1.1.5's ``Trainer.save_checkpoint`` writes ``step-N.ckpt`` in place with ``torch.save``: a save that
fails (a full disk: torch's "unexpected pos" error, which never says why) or is killed leaves a truncated file
under a checkpoint's name. ``ns-eval``, ``ns-render``, ``ns-viewer`` and ``ns-train --load-dir`` then take the
highest step in the folder (``eval_utils.eval_load_checkpoint``, ``Trainer._load_checkpoint``), which is the broken
file, and refuse the run although an older checkpoint is good.

Now the checkpoint is written to a hidden file in the run folder (beside ``nerfstudio_models/``, where nerfstudio's
listing of step numbers does not see it) and renamed into place, so a checkpoint name only ever holds a complete
file. A save that fails says so in one line (the checkpoint, the reason - "no space left on device" when the disk is
full - and the last good checkpoint) and leaves no file behind. Loading without ``load_step`` picks the newest
checkpoint that is a complete archive, saying in one line which ones it skipped.
"""

from __future__ import annotations

import errno
import functools
import os
import re
import shutil
import sys
import zipfile
from pathlib import Path
from typing import Any, Callable, Optional

from nerfstudio_methods.atomic import replace_atomically
from nerfstudio_methods.compat import FixNotYetPossible
from nerfstudio_methods.input_errors import InputError, first_line

CHECKPOINT_NAME = re.compile(r"^step-(\d+)\.ckpt$")
LOW_SPACE_BYTES = 64 << 20
"""A failed write with less free space than this on the checkpoint's file system is reported as a full disk (torch
reports it as "unexpected pos" or "file write failed", without the OS error)."""


class CheckpointSaveError(InputError):
    """A checkpoint could not be written; the message names it, the reason and the last good checkpoint."""


def checkpoints_newest_first(folder: Path) -> list[tuple[int, Path]]:
    """(step, path) of the ``step-N.ckpt`` files in ``folder``, highest step first."""
    found = [
        (int(match.group(1)), folder / name) for name in os.listdir(folder) if (match := CHECKPOINT_NAME.match(name))
    ]
    return sorted(found, reverse=True)


def is_complete_archive(path: Path) -> bool:
    """Whether ``path`` is a whole ``torch.save`` zip archive: a truncated file has no central directory at its end.
    (Reads only the directory; a file damaged inside still fails later, at load, with its own one-line error.)"""
    try:
        with zipfile.ZipFile(path) as archive:
            return len(archive.namelist()) > 0
    except (OSError, zipfile.BadZipFile):
        return False


def newest_complete_checkpoint(
    folder: Path, say: Optional[Callable[[str], None]] = None, besides: Optional[Path] = None
) -> Optional[tuple[int, Path]]:
    """(step, path) of the newest checkpoint in ``folder`` (other than ``besides``) that is a complete archive, or
    None; ``say`` is told in one line about each newer one skipped."""
    for step, path in checkpoints_newest_first(folder) if folder.is_dir() else []:
        if path == besides:
            continue
        if is_complete_archive(path):
            return step, path
        if say is not None:
            say(f"warning: skipping {path}: not a complete checkpoint (truncated or corrupt); trying an older one")
    return None


def last_good_checkpoint(folder: Optional[Path], besides: Optional[Path] = None) -> str:
    """The newest complete checkpoint of ``folder`` for a one-line report, or "none"."""
    found = newest_complete_checkpoint(folder, besides=besides) if folder is not None else None
    return str(found[1]) if found else "none"


def newest_loadable_step(folder: Path, say: Callable[[str], None] = print) -> Optional[int]:
    """The highest step whose checkpoint is a complete archive (None when none is); each newer one skipped is said
    in one line."""
    found = newest_complete_checkpoint(folder, say)
    return found[0] if found else None


def step_to_load(folder: Path) -> Optional[int]:
    """The step a load without ``load_step`` takes from ``folder`` (:func:`newest_loadable_step`; None leaves the
    choice to nerfstudio, whose load then names the broken file). A folder without any ``step-N.ckpt`` is an
    :class:`InputError`: nerfstudio's listing failed on it with an IndexError (``ns-eval`` on a run that saved none)."""
    if not checkpoints_newest_first(folder):
        raise InputError(f"{folder}: no checkpoint (step-*.ckpt) to load here")
    return newest_loadable_step(folder)


def write_reason(error: BaseException, folder: Path) -> str:
    """Why a write into ``folder`` failed, in words: a full disk when the OS says so or free space is nearly gone."""
    cause: Optional[BaseException] = error
    while cause is not None:
        if isinstance(cause, OSError) and cause.errno == errno.ENOSPC:
            return "no space left on device"
        cause = cause.__cause__ or cause.__context__
    try:
        if shutil.disk_usage(folder).free < LOW_SPACE_BYTES:
            return "no space left on device"
    except OSError:
        pass
    return first_line(error)


def save_atomically(save: Callable[[Path], None], path: Path) -> None:
    """``save(temporary)`` into a hidden file of ``path``'s run folder, then rename it to ``path``; on failure remove
    the partial file and raise :class:`CheckpointSaveError`."""
    try:
        # Staged in the run folder: nerfstudio parses a step number out of every name in nerfstudio_models/. The
        # staging file is per process, as nerfstudio has every rank of a multi-process run save the same checkpoint.
        replace_atomically(path, save, staging_folder=path.parent.parent)
    except Exception as error:  # noqa: BLE001 - every failure becomes the one-line report
        raise CheckpointSaveError(
            f"{path}: could not save the checkpoint: {write_reason(error, path.parent)} (the last good checkpoint: "
            f"{last_good_checkpoint(path.parent, besides=path)})"
        ) from error


def write_checkpoints_atomically() -> None:
    """Replace ``Trainer.save_checkpoint`` with the same content written by :func:`save_atomically`, and make
    ``Trainer._load_checkpoint`` (``ns-train --load-dir``) pick the newest complete checkpoint (idempotent)."""
    Trainer = getattr(sys.modules.get("nerfstudio.engine.trainer"), "Trainer", None)
    if Trainer is None:
        raise FixNotYetPossible("nerfstudio's trainer is not imported yet")
    import torch

    if not getattr(Trainer.save_checkpoint, "_nerfstudio_methods", False):
        original = Trainer.save_checkpoint

        @functools.wraps(original)
        def save_checkpoint(self: Any, step: int) -> None:
            # nerfstudio's save_checkpoint (engine/trainer.py), with the file written atomically
            self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
            path: Path = self.checkpoint_dir / f"step-{step:09d}.ckpt"
            pipeline = self.pipeline.module if hasattr(self.pipeline, "module") else self.pipeline
            state = {
                "step": step,
                "pipeline": pipeline.state_dict(),
                "optimizers": {k: v.state_dict() for (k, v) in self.optimizers.optimizers.items()},
                "schedulers": {k: v.state_dict() for (k, v) in self.optimizers.schedulers.items()},
                "scalers": self.grad_scaler.state_dict(),
            }
            save_atomically(lambda target: torch.save(state, target), path)
            if self.config.save_only_latest_checkpoint:
                for other in self.checkpoint_dir.glob("*.ckpt"):
                    if other != path:
                        other.unlink()

        save_checkpoint._nerfstudio_methods = True  # type: ignore[attr-defined]
        Trainer.save_checkpoint = save_checkpoint  # type: ignore[method-assign]

    if not getattr(Trainer._load_checkpoint, "_nerfstudio_methods", False):
        load = Trainer._load_checkpoint

        @functools.wraps(load)
        def load_newest_complete(self: Any) -> None:
            folder = self.config.load_dir
            if folder is not None and self.config.load_step is None and Path(folder).is_dir():
                self.config.load_step = step_to_load(Path(folder))
            load(self)

        load_newest_complete._nerfstudio_methods = True  # type: ignore[attr-defined]
        Trainer._load_checkpoint = load_newest_complete  # type: ignore[method-assign]


def load_newest_complete_checkpoint() -> None:
    """Make ``eval_utils.eval_load_checkpoint`` (``ns-eval``, ``ns-render``, ``ns-viewer``) pick the newest complete
    checkpoint when the config names no ``load_step`` (idempotent)."""
    eval_utils: Any = sys.modules.get("nerfstudio.utils.eval_utils")
    if eval_utils is None:
        return  # this command loads no checkpoint through eval_utils (ns-train)
    if not hasattr(eval_utils, "eval_load_checkpoint"):
        raise FixNotYetPossible("nerfstudio's eval utils are still importing")
    if getattr(eval_utils.eval_load_checkpoint, "_nerfstudio_methods", False):
        return
    eval_load = eval_utils.eval_load_checkpoint

    @functools.wraps(eval_load)
    def eval_load_newest_complete(config: Any, pipeline: Any) -> Any:
        if config.load_dir is not None and config.load_step is None and Path(config.load_dir).is_dir():
            config.load_step = step_to_load(Path(config.load_dir))
        return eval_load(config, pipeline)

    eval_load_newest_complete._nerfstudio_methods = True  # type: ignore[attr-defined]
    eval_utils.eval_load_checkpoint = eval_load_newest_complete
