"""No run folder left by a failed launch: ``ns-train`` saves ``outputs/<exp>/<method>/<timestamp>/config.yml``
before it reads any data. When the launch then fails before the trainer is set up (a bad dataset, a refused
multi-process launch), the folders it created are removed again, as long as they hold nothing but that file.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any, Optional

from nerfstudio_methods.compat import FixNotYetPossible

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

    if not getattr(ExperimentConfig.save_config, "_nerfstudio_methods", False):
        save_config = ExperimentConfig.save_config

        @functools.wraps(save_config)
        def save_config_remembering_folders(self: Any) -> None:
            base_dir = Path(self.get_base_dir())
            created = [folder for folder in (base_dir, *base_dir.parents) if not folder.exists()]
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
