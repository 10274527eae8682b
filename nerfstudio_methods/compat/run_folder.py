"""The run folder of an ``ns-train`` launch.

No run folder left by a failed launch: ``ns-train`` saves ``outputs/<exp>/<method>/<timestamp>/config.yml``
before it reads any data. When the launch then fails before the trainer is set up (a bad dataset, a refused
multi-process launch), the folders it created are removed again, as long as they hold nothing but that file.

One run per folder: nerfstudio lets two ``ns-train`` runs write the same folder (same experiment name and
``--timestamp``); both exit 0 and leave one's config.yml beside the other's checkpoints. A launch now takes a lock
file (``.ns-train.lock``, holding its process id) before it writes config.yml, and a second launch into a folder
whose lock holder is still running stops in one line. The lock goes when the run ends; a lock left by a process that
no longer runs (killed) is taken over, with one line saying so.
"""

from __future__ import annotations

import atexit
import functools
import os
from pathlib import Path
from typing import Any, Optional

from nerfstudio_methods.compat import FixNotYetPossible
from nerfstudio_methods.input_errors import InputError

LOCK_NAME = ".ns-train.lock"


class RunFolderInUse(InputError):
    """Another running ``ns-train`` holds the run folder's lock."""


def process_is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True


def take_run_lock(folder: Path) -> None:
    """Create ``folder/.ns-train.lock`` with this process's id; raise :class:`RunFolderInUse` when a running process
    holds it, take it over (saying so) when its holder is gone."""
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / LOCK_NAME
    while True:
        try:
            descriptor = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                holder = int(lock.read_text().strip() or "0")
            except (OSError, ValueError):
                holder = 0
            if holder not in (0, os.getpid()) and process_is_running(holder):
                raise RunFolderInUse(
                    f"{folder}: another ns-train (process {holder}) is writing this run folder; choose another "
                    "--timestamp or --experiment-name, or wait for it to finish"
                ) from None
            print(f"warning: {lock}: taking over the lock of process {holder}, which no longer runs")
            lock.unlink(missing_ok=True)
            continue
        with os.fdopen(descriptor, "w") as file:
            file.write(str(os.getpid()))
        _HELD_LOCKS.append(lock)
        return


_HELD_LOCKS: list[Path] = []


def release_run_locks() -> None:
    """Remove the locks this process took (at exit, and on the way out of a failed launch). Never raises."""
    while _HELD_LOCKS:
        lock = _HELD_LOCKS.pop()
        try:
            if lock.read_text().strip() == str(os.getpid()):
                lock.unlink()
        except OSError:
            pass


_UNUSED_RUN: dict[str, Any] = {}
"""The run folder this ``ns-train`` launch created, while it holds nothing but its config.yml: ``config`` (the file),
``text`` (what was written), ``created`` (the folders the save made, deepest first). Cleared once the trainer is set
up (data read, model built), so only a launch that fails before that can remove it."""


def forget_run_folder() -> None:
    """The trainer is set up: its data was read and its model built, so the run folder stays whatever happens next."""
    _UNUSED_RUN.clear()


def remove_unused_run_folder() -> Optional[Path]:
    """Remove the run folder that this launch created, if training never got set up and it holds nothing but the
    config.yml written by this launch; then the parents the save created, while empty (``outputs/<exp>/<method>``).
    Returns the removed run folder, or None. Never raises: it runs on the way out of a failed launch."""
    release_run_locks()
    record = dict(_UNUSED_RUN)
    _UNUSED_RUN.clear()
    if not record:
        return None
    config: Path = record["config"]
    try:
        if [entry.name for entry in config.parent.iterdir()] != [config.name] or config.read_text("utf8") != record[
            "text"
        ]:
            return None  # something else was written there: keep it all
        config.unlink()
        for folder in record["created"]:
            os.rmdir(folder)  # fails (and stops) on the first folder that is not empty
    except OSError:
        pass
    return None if config.parent.exists() else config.parent


def remember_new_run_folders() -> None:
    """Wrap ``ExperimentConfig.save_config`` (``ns-train`` writes config.yml before it reads any data) to remember the
    folders it creates, and ``Trainer.setup`` to forget them once data and model are set up (idempotent).

    Why remove afterwards rather than check the data first: nerfstudio reads the data while it builds the pipeline,
    in the dataparser of whichever method and format was chosen (ours, nerfstudio's, other plugins'), and some read
    a lot (videos decoded into a frame cache); running them twice to pre-check would double that cost and still
    miss failures of the model's set-up or a refused multi-process launch. A folder this launch made and that holds
    only the config it wrote loses nothing when removed, whatever made the launch fail.
    """
    import sys

    # Dataparser plugins are imported while nerfstudio's experiment_config / trainer modules are still importing;
    # importing them from here would close a cycle. Patch once both have finished (a later install(), e.g. from
    # a method's config module, which nerfstudio imports after its trainer).
    ExperimentConfig = getattr(sys.modules.get("nerfstudio.configs.experiment_config"), "ExperimentConfig", None)
    Trainer = getattr(sys.modules.get("nerfstudio.engine.trainer"), "Trainer", None)
    if ExperimentConfig is None or Trainer is None:
        raise FixNotYetPossible("nerfstudio's trainer is not imported yet")

    atexit.register(release_run_locks)
    if not getattr(ExperimentConfig.save_config, "_nerfstudio_methods", False):
        save_config = ExperimentConfig.save_config

        @functools.wraps(save_config)
        def save_config_remembering_folders(self: Any) -> None:
            base_dir = Path(self.get_base_dir())
            created = [folder for folder in (base_dir, *base_dir.parents) if not folder.exists()]
            take_run_lock(base_dir)
            save_config(self)
            config = base_dir / "config.yml"
            if created and config.is_file():
                _UNUSED_RUN.update(config=config, text=config.read_text("utf8"), created=created)

        save_config_remembering_folders._nerfstudio_methods = True  # type: ignore[attr-defined]
        ExperimentConfig.save_config = save_config_remembering_folders  # type: ignore[method-assign]

    if not getattr(Trainer.setup, "_nerfstudio_methods", False):
        setup = Trainer.setup

        @functools.wraps(setup)
        def setup_then_keep_folder(self: Any, *args: Any, **kwargs: Any) -> None:
            setup(self, *args, **kwargs)
            forget_run_folder()

        setup_then_keep_folder._nerfstudio_methods = True  # type: ignore[attr-defined]
        Trainer.setup = setup_then_keep_folder  # type: ignore[method-assign]
